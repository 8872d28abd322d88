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
// server spans can name the ones they overlapped, and which requests they
// struck, for the incident log.
type incidents struct {
	// armed counts, for the kinds that strike inside a request, how many
	// requests are still to be hit, and armedID is the incident's ID.
	armed   [numKinds]atomic.Int32
	armedID [numKinds]atomic.Int64
	nextID  atomic.Int64
	// strikes are those of the incident armed last.
	strikes atomic.Pointer[strikes]

	log *incidentLog // nil: none

	mu     sync.Mutex
	recent [64]window // a ring of the latest incidents
	next   int
	// hits holds, by trace, the incidents that struck each request, the
	// latest maxHits requests, for the incident log.
	hits     map[trace.TraceID][]hit
	hitOrder []trace.TraceID
}

// maxHits bounds incidents.hits: an anomaly is logged seconds after its
// request, and a few thousand requests are struck in an hour.
const maxHits = 4096

// hit is an incident striking a request at a moment: the spans of the
// request in progress then are the incident's.
type hit struct {
	kind kind
	id   int64
	at   time.Time
}

type window struct {
	kind       kind
	id         int64
	start, end time.Time // end is zero while the incident lasts
}

func newIncidents(log *incidentLog) *incidents {
	return &incidents{log: log, hits: map[trace.TraceID][]hit{}}
}

// arm makes the next n requests that can be hit by kind k hit, and returns
// the incident's ID and a channel closed once every strike has ended
// (endStrike). Only one incident is armed at a time.
func (inc *incidents) arm(k kind, n int32) (int64, <-chan struct{}) {
	id := inc.nextID.Add(1)
	st := &strikes{done: make(chan struct{})}
	st.left.Store(n)
	inc.strikes.Store(st)
	inc.armedID[k].Store(id)
	inc.armed[k].Store(n)
	return id, st.done
}

// strikes counts an armed incident's strikes still to end; done is closed
// when none is left.
type strikes struct {
	left atomic.Int32
	done chan struct{}
}

// beginStrike is begin for an armed incident striking a request: its end
// also counts the strike as ended.
func (inc *incidents) beginStrike(k kind, id int64) (end func()) {
	st := inc.strikes.Load()
	endWindow := inc.begin(k, id)
	return func() {
		endWindow()
		if st != nil && st.left.Add(-1) == 0 {
			close(st.done)
		}
	}
}

// take reports whether the current request is hit by an armed incident of
// kind k, and disarms it if so; it returns the incident's ID.
func (inc *incidents) take(k kind) (int64, bool) {
	for {
		n := inc.armed[k].Load()
		if n <= 0 {
			return 0, false
		}
		if inc.armed[k].CompareAndSwap(n, n-1) {
			return inc.armedID[k].Load(), true
		}
	}
}

// strike records that incident id, of kind k, struck the request whose
// span ctx carries, now: once the request has waited for it, or while it
// does. Each span of the request in progress then was slowed by it.
func (inc *incidents) strike(ctx context.Context, k kind, id int64) {
	tid := trace.SpanContextFromContext(ctx).TraceID()
	if !tid.IsValid() || id == 0 {
		return
	}
	now := time.Now()
	inc.mu.Lock()
	defer inc.mu.Unlock()
	if _, ok := inc.hits[tid]; !ok {
		if len(inc.hitOrder) == maxHits {
			delete(inc.hits, inc.hitOrder[0])
			inc.hitOrder = inc.hitOrder[1:]
		}
		inc.hitOrder = append(inc.hitOrder, tid)
	}
	inc.hits[tid] = append(inc.hits[tid], hit{kind: k, id: id, at: now})
}

// begin records that incident id, of kind k, starts now; the returned
// func records its end, and writes it to the incident log.
func (inc *incidents) begin(k kind, id int64) (end func()) {
	inc.mu.Lock()
	i := inc.next
	start := time.Now()
	inc.recent[i] = window{kind: k, id: id, start: start}
	inc.next = (i + 1) % len(inc.recent)
	inc.mu.Unlock()
	return func() {
		now := time.Now()
		inc.mu.Lock()
		if w := &inc.recent[i]; w.id == id && w.start.Equal(start) && w.end.IsZero() {
			w.end = now
		}
		inc.mu.Unlock()
		inc.log.write(incidentRecord{Type: "incident", ID: id, Kind: k.String(), Start: start, End: now})
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
// interval, so that a fresh start shows one soon. Incidents never overlap:
// the next is timed from the end of the one before (an armed one ends when
// its last strike has, or after maxArmed if no request comes), so that a
// slowed request has one cause.
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
			id := inc.nextID.Add(1)
			end := inc.begin(k, id)
			svc.catalog.refresh(catalogRefreshHold, id)
			end()
		case queueBacklog:
			id := inc.nextID.Add(1)
			end := inc.begin(k, id)
			svc.fulfil.reconcile(ctx, id)
			end()
		default: // struck by the next requests
			n := int32(1)
			if k == downstreamErrors {
				n = downstreamFailures
			}
			_, struck := inc.arm(k, n)
			t := time.NewTimer(maxArmed)
			select {
			case <-struck:
			case <-t.C:
				inc.armed[k].Store(0) // no request came: disarmed
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
}

// maxArmed bounds how long an armed incident waits for its requests.
const maxArmed = 30 * time.Second
