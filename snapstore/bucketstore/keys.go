package bucketstore

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// The key layout; see the package documentation.
const (
	keyRoot     = "otelfr/v1/"
	tracePrefix = keyRoot + "trace/"
	metaPrefix  = keyRoot + "meta/"
	traceExt    = ".trace"
	metaExt     = ".json"

	// invWidth is the width of the inverted timestamp, MaxInt64 in decimal.
	invWidth = 19
	// stampLayout is the readable UTC time after it, for people browsing
	// the bucket.
	stampLayout = "20060102T150405Z"

	// metaKeyAttr names the trace object's attribute that holds its
	// metadata object's key, so that an ID leads to its metadata without a
	// listing.
	metaKeyAttr = "otelfr-meta-key"
)

func traceKey(id string) string { return tracePrefix + id + traceExt }

// metaKey returns the key of the metadata of snapshot id taken at t. Keys
// sort in lexical order newest first: the inverted timestamp,
// MaxInt64 - t in nanoseconds since the Unix epoch, is fixed width. Times
// before the epoch or after 2262 are clamped.
func metaKey(id string, t time.Time) string {
	var ns int64
	switch {
	case !t.After(time.Unix(0, 0)):
	case t.After(time.Unix(0, math.MaxInt64)):
		ns = math.MaxInt64
	default:
		ns = t.UnixNano()
	}
	stamp := time.Unix(0, ns).UTC().Format(stampLayout)
	return fmt.Sprintf("%s%0*d-%s-%s%s", metaPrefix, invWidth, math.MaxInt64-ns, stamp, id, metaExt)
}

// idOfMetaKey returns the snapshot ID a metadata key names, or false for a
// key not laid out by metaKey.
func idOfMetaKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, metaPrefix)
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, metaExt)
	head := invWidth + 1 + len(stampLayout) + 1
	if !ok || len(rest) <= head || rest[invWidth] != '-' || rest[head-1] != '-' {
		return "", false
	}
	id := rest[head:]
	return id, snapstore.ValidID(id)
}
