package bucketstore

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// DefaultSpoolBytes is the spool's bound when [WithSpool] is given
// maxBytes <= 0.
const DefaultSpoolBytes = 256 << 20

// Option configures a [Store].
type Option interface {
	apply(config) config
}

type config struct {
	res *resource.Resource

	spoolDir   string // "" for no spool
	spoolBytes int64
	mp         metric.MeterProvider
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		c = o.apply(c)
	}
	if c.res == nil {
		c.res = resource.Default()
	}
	if c.spoolBytes <= 0 {
		c.spoolBytes = DefaultSpoolBytes
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	return c
}

// WithResource sets the resource of the process whose snapshots the store
// saves: its service, instance, host and Kubernetes attributes are written
// into every snapshot's Info.Resource, so that a viewer of a shared bucket can
// tell the replicas apart. The default is [resource.Default]; nil keeps the
// default. Pass the resource given to the TracerProvider.
func WithResource(r *resource.Resource) Option {
	return optionFunc(func(c config) config {
		if r != nil {
			c.res = r
		}
		return c
	})
}

// WithSpool makes Save write each snapshot to the local directory dir,
// created (mode 0700) if needed, and return without waiting on the
// network; a background uploader then moves the snapshots to the bucket,
// oldest first, retrying with backoff while the bucket is down. The
// spooled traces total at most maxBytes: to make room, the oldest spooled
// snapshots are dropped, and counted (see [Store.Stats]). maxBytes <= 0
// means [DefaultSpoolBytes]. An empty dir means no spool, the default:
// Save then writes to the bucket before it returns. See the package
// documentation, under Spool.
//
// dir belongs to one Store at a time; a Store opened on a directory that
// a previous process left snapshots in uploads them.
func WithSpool(dir string, maxBytes int64) Option {
	return optionFunc(func(c config) config {
		c.spoolDir, c.spoolBytes = dir, maxBytes
		return c
	})
}

// WithMeterProvider sets the MeterProvider the spool's counters are
// published with (see [Store.Stats] for the instruments). The default is
// the global one, [otel.GetMeterProvider]; nil keeps the default. Without
// [WithSpool] no instrument is registered.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c config) config {
		if mp != nil {
			c.mp = mp
		}
		return c
	})
}
