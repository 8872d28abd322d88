package bucketstore

import "go.opentelemetry.io/otel/sdk/resource"

// Option configures a [Store].
type Option interface {
	apply(config) config
}

type config struct {
	res *resource.Resource
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
	return c
}

// WithResource sets the resource of the process whose snapshots the store
// saves: its service, instance, host and Kubernetes attributes are written
// into every snapshot's [Meta], so that a viewer of a shared bucket can
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
