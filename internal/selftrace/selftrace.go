// Package selftrace marks the contexts of otelfr's own work, such as the
// bucket calls that store snapshots, so that otelfr's samplers leave the
// spans that libraries record for that work unrecorded, and they never
// come back as anomalies to snapshot.
package selftrace

import "context"

type key struct{}

// Mark returns ctx marked as otelfr's own work.
func Mark(ctx context.Context) context.Context { return context.WithValue(ctx, key{}, true) }

// Marked reports whether ctx, or a context it derives from, was marked.
func Marked(ctx context.Context) bool {
	v, _ := ctx.Value(key{}).(bool)
	return v
}
