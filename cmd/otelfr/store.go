package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	// The bucket drivers: s3:// (AWS S3 and S3-compatible servers), gs://,
	// azblob:// and file://. A fleet's viewer reads whichever bucket the
	// fleet writes to; the cloud SDKs they bring are linked into this
	// command only, never into a program that imports otelfr's packages.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// openStore opens the store at location for reading, as bucketstore's
// OpenStore reads a location: a URL (SCHEME://…) is a bucket, opened
// without a spool, as otelfr only reads; anything else is a directory,
// opened read-only, so that otelfr never removes a snapshot from under the
// process that writes there. It returns the store, the function that
// closes it, and the location as the logs may show it (a directory made
// absolute, a URL without any user information).
func openStore(ctx context.Context, location string) (snapstore.Store, func() error, string, error) {
	if strings.Contains(location, "://") {
		u, err := url.Parse(location)
		if err == nil && (u.Scheme == "" || !strings.HasPrefix(location, u.Scheme+"://")) {
			err = errors.New("want SCHEME://…")
		}
		if err != nil {
			return nil, nil, "", fmt.Errorf("not a bucket URL: %w", err)
		}
		s, err := bucketstore.Open(ctx, location)
		if err != nil {
			return nil, nil, "", err
		}
		return s, s.Close, u.Redacted(), nil
	}
	d, err := snapstore.NewDirStore(location, snapstore.WithReadOnly())
	if err != nil {
		return nil, nil, "", err
	}
	shown, err := filepath.Abs(location)
	if err != nil {
		shown = location
	}
	return d, func() error { return nil }, shown, nil
}

// storeUsage says what a store location is, for the flags' help.
const storeUsage = "a directory, or a bucket URL (s3://BUCKET?region=REGION, file:///DIR)"

// describeOpenError says what went wrong opening the store at location,
// shown without any user information a URL holds.
func describeOpenError(location string, err error) string {
	if u, perr := url.Parse(location); perr == nil && u.User != nil {
		location = u.Redacted()
	}
	return fmt.Sprintf("opening the store %s: %v", printable(location), err)
}
