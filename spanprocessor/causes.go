package spanprocessor

import (
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// causeKey is the attribute under which a Diagnoser returns its grouping
// key; package analysis defines it as DiagnosisCauseKey, and a test keeps
// the two equal without making this package import the trace parser.
const causeKey = attribute.Key("otelfr.diagnosis.cause")

// maxCauses caps the distinct values of the otelfr.causes metric's cause
// attribute, so that a program with many causes cannot grow a backend's
// series without bound: the first maxCauses causes seen keep their own
// series, and later ones are counted under otherCause.
const maxCauses = 64

// otherCause is the cause attribute's value for the causes over maxCauses.
const otherCause = "other"

// causeOf returns the grouping key among a Diagnoser's attributes, or "".
func causeOf(attrs []attribute.KeyValue) string {
	for _, kv := range attrs {
		if kv.Key == causeKey && kv.Value.Type() == attribute.STRING {
			return kv.Value.AsString()
		}
	}
	return ""
}

// causeCounts counts diagnosed anomalies by cause, for the otelfr.causes
// metric. Only the worker counts, once per diagnosed span, so a mutex
// costs nothing on the hot path.
type causeCounts struct {
	mu    sync.Mutex
	n     map[string]*causeCount
	order []string // first seen first, for a stable observation order
	other causeCount
}

type causeCount struct {
	n    int64
	opts metric.ObserveOption
}

// count adds one anomaly of cause; an empty cause (no diagnosis) is not
// counted.
func (c *causeCounts) count(cause string) {
	if cause == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.n[cause]; ok {
		cc.n++
		return
	}
	if len(c.n) >= maxCauses {
		c.other.n++
		return
	}
	if c.n == nil {
		c.n = map[string]*causeCount{}
	}
	c.n[cause] = &causeCount{n: 1, opts: metric.WithAttributeSet(attribute.NewSet(attribute.String("cause", cause)))}
	c.order = append(c.order, cause)
}

var otherCauseAttrs = metric.WithAttributeSet(attribute.NewSet(attribute.String("cause", otherCause)))

// observe reports the counts to o under inst.
func (c *causeCounts) observe(o metric.Observer, inst metric.Int64ObservableCounter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.order {
		cc := c.n[k]
		o.ObserveInt64(inst, cc.n, cc.opts)
	}
	if c.other.n > 0 {
		o.ObserveInt64(inst, c.other.n, otherCauseAttrs)
	}
}

// snapshot returns the counts by cause, overflow under otherCause.
func (c *causeCounts) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int64, len(c.n)+1)
	for k, cc := range c.n {
		m[k] = cc.n
	}
	if c.other.n > 0 {
		m[otherCause] = c.other.n
	}
	return m
}
