package main

import (
	"context"
	"log"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// incidentsKey lists, on a server span, the incidents that were in
// progress while the request ran: a hint for the reader of the trace, who
// confirms the cause in the snapshot.
const incidentsKey = attribute.Key("demo.incidents")

// kind is an incident's real cause.
type kind int

const (
	lockContention   kind = iota // a catalog refresh holds the price lock
	gcPressure                   // an order renders a bulk invoice: an allocation burst
	slowDownstream               // the inventory service reads slowly
	cpuSaturation                // fraud scoring runs far more goroutines than cores
	queueBacklog                 // a reconciliation burst fills the fulfilment queue
	downstreamErrors             // the inventory service fails a few requests
	numKinds
)

func (k kind) String() string {
	return [...]string{
		"lock_contention", "gc_pressure", "slow_downstream",
		"cpu_saturation", "queue_backlog", "downstream_errors",
	}[k]
}

func (k kind) describe() string {
	return [...]string{
		"the catalog refresh holds the price lock for " + catalogRefreshHold.String(),
		"the next order renders a bulk invoice, an allocation burst",
		"the inventory service's next read takes " + slowReadDelay.String(),
		"the next order's fraud scoring fans out to many more goroutines than there are cores",
		"a reconciliation burst fills the fulfilment queue",
		"the inventory service fails its next " + strconv.Itoa(downstreamFailures) + " requests",
	}[k]
}

// incidents schedules incidents and remembers when they happened, so that
// server spans can name the ones they overlapped.
type incidents struct {
	// armed counts, for the kinds that strike inside a request, how many
	// requests are still to be hit.
	armed [numKinds]atomic.Int32

	mu     sync.Mutex
	recent [16]window // a ring of the latest incidents
	next   int
}

type window struct {
	kind       kind
	start, end time.Time // end is zero while the incident lasts
}

func newIncidents() *incidents { return &incidents{} }

// take reports whether the current request is hit by an armed incident of
// kind k, and disarms it if so.
func (inc *incidents) take(k kind) bool {
	for {
		n := inc.armed[k].Load()
		if n <= 0 {
			return false
		}
		if inc.armed[k].CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// begin records that an incident of kind k starts now; the returned func
// records its end.
func (inc *incidents) begin(k kind) (end func()) {
	inc.mu.Lock()
	i := inc.next
	inc.recent[i] = window{kind: k, start: time.Now()}
	inc.next = (i + 1) % len(inc.recent)
	inc.mu.Unlock()
	return func() {
		inc.mu.Lock()
		if w := &inc.recent[i]; w.kind == k && w.end.IsZero() {
			w.end = time.Now()
		}
		inc.mu.Unlock()
	}
}

// during returns the kinds of the incidents that overlapped [start, end].
func (inc *incidents) during(start, end time.Time) []string {
	inc.mu.Lock()
	defer inc.mu.Unlock()
	var kinds []string
	for _, w := range inc.recent {
		if w.start.IsZero() || w.start.After(end) || (!w.end.IsZero() && w.end.Before(start)) {
			continue
		}
		name := w.kind.String()
		dup := false
		for _, k := range kinds {
			dup = dup || k == name
		}
		if !dup {
			kinds = append(kinds, name)
		}
	}
	return kinds
}

// tag wraps a handler that runs inside otelhttp's server span, and adds
// [incidentsKey] to the span when incidents overlapped the request.
func (inc *incidents) tag(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		if kinds := inc.during(start, time.Now()); len(kinds) > 0 {
			trace.SpanFromContext(r.Context()).SetAttributes(incidentsKey.StringSlice(kinds))
		}
	})
}

// run starts an incident about every mean interval (±25%), cycling through
// the kinds, until ctx ends. The first comes after a quarter of the
// interval, so that a fresh start shows one soon.
func (inc *incidents) run(ctx context.Context, mean time.Duration, svc *orders) {
	wait := mean / 4
	for i := 0; ; i++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = mean*3/4 + rand.N(mean/2+1)

		k := kind(i % int(numKinds))
		log.Printf("incident: %s: %s", k, k.describe())
		switch k {
		case lockContention:
			end := inc.begin(k)
			svc.catalog.refresh(catalogRefreshHold)
			end()
		case queueBacklog:
			end := inc.begin(k)
			svc.fulfil.reconcile(ctx)
			end()
		case downstreamErrors:
			inc.armed[k].Store(downstreamFailures)
		default: // struck by the next request
			inc.armed[k].Store(1)
		}
	}
}
