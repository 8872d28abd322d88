package bucketstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// EnvStore is the environment variable that names the store, by the
// location [OpenStore] takes: a directory path or a bucket URL. The
// examples' -store flag defaults to it and, when it is unset, to
// [DefaultDir] of the example's name.
const EnvStore = "OTELFR_STORE"

// ErrNoLocation is returned by [OpenStore] for an empty location.
var ErrNoLocation = errors.New("otelfr/bucketstore: no store location")

// DefaultDir returns the directory a program named program keeps its
// snapshots in when [EnvStore] is unset: otelfr-PROGRAM under
// [os.TempDir].
func DefaultDir(program string) string {
	return filepath.Join(os.TempDir(), "otelfr-"+program)
}

// OpenStore opens the store at location, so that one string chooses it
// wherever a store is configured (the [EnvStore] variable, a -store flag).
// A location without a scheme is a directory: OpenStore returns an
// [snapstore.DirStore] over it, with its default retention, and ignores
// opts. A location with a scheme (s3://, gs://, file:///…, …) is a bucket
// URL, opened as by [Open] with a spool, so that the snapshot path never
// waits on the network: the spool is a directory named by a hash of the
// URL under otelfr/spool in [os.UserCacheDir] (or [os.TempDir] without
// one), so that a restarted process uploads what its predecessor left.
// A spool has one owner at a time: processes that open the same URL at
// once on one host (replicas of a service) take one directory each, the
// first free of up to 16, and a restarted process the one its predecessor
// left. A [WithSpool] in opts wins over that one (and fails with
// [ErrSpoolBusy] if another holds it); WithSpool("", 0) means no spool.
//
// It returns the store and the function that stops it: for a bucket,
// [Store.Shutdown], which uploads what the spool holds until its context
// is done; for a directory, a no-op. OpenStore returns the interface, not
// a concrete type, because the location picks one of two at run time; a
// caller that needs the bucket's own methods calls [Open].
func OpenStore(ctx context.Context, location string, opts ...Option) (snapstore.Store, func(context.Context) error, error) {
	if location == "" {
		return nil, nil, ErrNoLocation
	}
	if !hasScheme(location) {
		d, err := snapstore.NewDirStore(location)
		if err != nil {
			return nil, nil, err
		}
		return d, func(context.Context) error { return nil }, nil
	}
	if _, err := url.Parse(location); err != nil {
		return nil, nil, fmt.Errorf("otelfr/bucketstore: store location: %w", err)
	}
	// Processes of one user on one host that share the URL (replicas,
	// or a restart overlapping its predecessor) each take the first spool
	// no other holds: a restarted process finds its predecessor's.
	var err error
	for i := range maxSpools {
		var s *Store
		s, err = Open(ctx, location, append([]Option{WithSpool(spoolDir(location, i), 0)}, opts...)...)
		if err == nil {
			return s, s.Shutdown, nil
		}
		if !errors.Is(err, ErrSpoolBusy) {
			break
		}
	}
	return nil, nil, err
}

// hasScheme reports whether location begins with a URL scheme and "://",
// which no directory path a user would write does (a Windows path has a
// drive letter and ":\" instead).
func hasScheme(location string) bool {
	scheme, _, ok := strings.Cut(location, "://")
	if !ok || scheme == "" {
		return false
	}
	for i, c := range scheme {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// maxSpools bounds the default spools of one bucket URL on a host, one per
// process that has it open at once.
const maxSpools = 16

// spoolDir returns the i-th default spool directory for the bucket at
// urlstr: named by the URL, so that two stores in different buckets never
// share one.
func spoolDir(urlstr string, i int) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	sum := sha256.Sum256([]byte(urlstr))
	name := hex.EncodeToString(sum[:8])
	if i > 0 {
		name += "." + strconv.Itoa(i)
	}
	return filepath.Join(base, "otelfr", "spool", name)
}
