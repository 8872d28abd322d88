package bucketstore

import (
	"context"

	"github.com/otelfr/otel-flightrecorder/internal/selftrace"
)

// untraced returns ctx for the bucket calls the store makes on behalf of
// the process it serves (Save, AddSpans, SetSHA256 and the uploader's):
// see selftrace.Untraced.
func untraced(ctx context.Context) context.Context { return selftrace.Untraced(ctx) }
