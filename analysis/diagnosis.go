package analysis

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Diagnosis explains where a span's time went, from a snapshot of the
// execution trace. Analyze returns it.
//
// Its JSON encoding uses the field tags below, with durations as strings in
// Go syntax ("12.5ms") and times in RFC 3339.
type Diagnosis struct {
	// Span is the span as given to Analyze, with TraceID, Name, Start and
	// End filled in from the trace where they were missing and known.
	Span Span `json:"span"`
	// Status is StatusComplete or StatusPartial.
	Status Status `json:"status"`
	// Verdict is one line explaining why the span took its time, for
	// example "78% of 240 ms blocked on sync.Mutex in cache.(*Cache).Get;
	// released by goroutine 41 in cache.(*Cache).refresh". For a failed
	// span (Span.Error set) it leads with the failure and gives the timing
	// second: "error: " + Span.Error + "; then " + the timing, as in
	// "error: Unavailable from inventory.Inventory/Reserve (server.address
	// inventory:50051): connection refused; then 100% of 57 µs running in
	// syscall.write".
	Verdict string `json:"verdict"`
	// Cause is the verdict's grouping key: the dominant state, the place
	// it names and the root cause, without goroutine IDs, durations,
	// shares or line numbers, so that diagnoses of one problem on any
	// replica share it, for example "blocked.mutex in
	// cache.(*Cache).Get; root: cache.(*Cache).refresh". The
	// package documentation (# Causes) tells how it is formed.
	Cause string `json:"cause,omitempty"`
	// Start and End bound the analyzed interval: the span's interval,
	// cut to the snapshot's window. Duration is End-Start.
	Start    time.Time     `json:"start"`
	End      time.Time     `json:"end"`
	Duration time.Duration `json:"duration"`
	// Task is the span's runtime/trace task; 0 when the span's identity
	// was logged outside any task and its goroutine stands for it.
	Task uint64 `json:"task,omitempty"`
	// MainGoroutine started the span (or, if the start is outside the
	// window, ended it). Its buckets drive the verdict.
	MainGoroutine int64 `json:"main_goroutine"`
	// Goroutines worked for the span; the main goroutine comes first.
	Goroutines []Goroutine `json:"goroutines"`
	// GC is the garbage collector's share of the interval.
	GC GC `json:"gc"`
	// Episodes are the longest blocking episodes of the span's goroutines
	// (roles main, task and child), longest first; WithTopEpisodes sets
	// how many.
	Episodes []Episode `json:"episodes"`
	// Chain is the wait chain behind the main goroutine's dominant wait,
	// when another goroutine ended it: the goroutine that ended most of
	// it, what that goroutine did meanwhile, the goroutine that ended its
	// own wait, and so on, up to the one that was running, waiting for a
	// P, in a system call, asleep or on the network, at most 4 hops and no
	// goroutine twice. Empty when the dominant state is not a wait of
	// that kind, or a timer ended it (see Episodes' Timeout).
	Chain []Hop `json:"chain,omitempty"`
	// RanWhileRunnable is, when the main goroutine was mostly runnable,
	// who held the Ps it waited for: the other goroutines' running time
	// within its runnable time, grouped by function, the busiest first, at
	// most 5.
	RanWhileRunnable []FuncTime `json:"ran_while_runnable,omitempty"`
	// GOMAXPROCS is its value at the end of the interval, 0 if unknown.
	GOMAXPROCS int `json:"gomaxprocs,omitempty"`
	// Parsed tells how much of the snapshot the analysis read.
	Parsed Parsed `json:"parsed"`
}

// Role says why a goroutine is part of a diagnosis.
type Role string

const (
	// RoleMain: the goroutine that started the span (or, when the start
	// is outside the window, ended it).
	RoleMain Role = "main"
	// RoleTask: another goroutine with events in the span's runtime/trace
	// task or a subtask (regions, logs, child spans' tasks).
	RoleTask Role = "task"
	// RoleChild: created during the span by one of its goroutines,
	// transitively.
	RoleChild Role = "child"
	// RoleWaker: woke one of the span's goroutines from a wait during the
	// span: the holder of a contended mutex, the sender on a channel.
	RoleWaker Role = "waker"
)

// Goroutine is one goroutine's time within the analyzed interval.
type Goroutine struct {
	ID   int64 `json:"id"`
	Role Role  `json:"role"`
	// Entry is the goroutine's entry function, when a stack shows it.
	Entry string `json:"entry,omitempty"`
	// Time is how long the goroutine existed within the interval; the
	// buckets add up to it.
	Time    time.Duration `json:"time"`
	Buckets Buckets       `json:"buckets"`
	// Segments are the goroutine's states in time order, clipped to the
	// interval, adjacent stretches of one state merged: the lanes of a
	// timeline.
	Segments []Segment `json:"segments,omitempty"`
}

// Segment is a stretch of time a goroutine spent in one State.
type Segment struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	State State     `json:"state"`
}

// GC is the garbage collector's share of a diagnosis's interval.
type GC struct {
	// MarkOverlap is how long a GC mark phase ran during the interval,
	// and Cycles how many mark phases overlapped it.
	MarkOverlap time.Duration `json:"mark_overlap"`
	Cycles      int           `json:"cycles"`
	// STWOverlap is how long the world was stopped during the interval,
	// and STWs how many stop-the-world phases overlapped it. It is an
	// overlap, not a pause the span necessarily felt: a goroutine that was
	// blocked anyway lost nothing.
	STWOverlap time.Duration `json:"stw_overlap"`
	STWs       int           `json:"stws"`
	// STW splits STWOverlap by the runtime's reason for stopping the
	// world, the longest first, each with the goroutine that stopped it:
	// the collector's own stops, and those of goroutine profiles,
	// runtime.ReadMemStats, GOMAXPROCS changes and the like.
	STW []STWCause `json:"stw,omitempty"`
	// Phases are the mark phases and stop-the-world phases that overlap
	// the interval, clipped to it, in time order.
	Phases []GCPhase `json:"phases,omitempty"`
	// Assist is the StateGCAssist time of the span's own goroutines (roles
	// main, task and child): mark work they did, or waited to do, to pay
	// for their allocations.
	Assist time.Duration `json:"assist"`
}

// GCPhase is a garbage collector phase within a diagnosis's interval.
type GCPhase struct {
	// Kind is "mark" or "stw".
	Kind string `json:"kind"`
	// Reason is a stop-the-world's reason (see STWCause); empty for a
	// mark phase.
	Reason string    `json:"reason,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// Episode is one stretch of a goroutine's time in a blocked state.
type Episode struct {
	Goroutine int64 `json:"goroutine"`
	State     State `json:"state"`
	// Reason is the runtime's reason for the wait, e.g. "sync" or
	// "chan receive"; empty for syscalls and unknown reasons.
	Reason string `json:"reason,omitempty"`
	// Start and Duration are clipped to the diagnosis's interval.
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
	// Stack is where the goroutine blocked, innermost frame first.
	Stack []Frame `json:"stack,omitempty"`
	// Waker made the goroutine runnable again; nil when no goroutine did
	// (timers, the network poller, a syscall's return) or the episode
	// had not ended.
	Waker *Waker `json:"waker,omitempty"`
	// Timeout is set when a timer ended the episode: a context's
	// deadline, or another timer (whose goroutine, if any, is Waker).
	Timeout Timeout `json:"timeout,omitempty"`
}

// Waker is the goroutine that ended a blocking episode, with its stack at
// that moment: the code that unlocked the mutex, sent on the channel.
type Waker struct {
	Goroutine int64   `json:"goroutine"`
	Stack     []Frame `json:"stack,omitempty"`
}

// Frame is one frame of a stack.
type Frame struct {
	Func string `json:"func"`
	File string `json:"file"`
	Line int    `json:"line"`
}

// String returns "Func (File:Line)".
func (f Frame) String() string { return fmt.Sprintf("%s (%s:%d)", f.Func, f.File, f.Line) }

// Parsed tells how much of a snapshot an analysis parsed.
type Parsed struct {
	// Generations and Bytes were parsed (the header included) out of
	// TotalGenerations and TotalBytes.
	Generations      int   `json:"generations"`
	TotalGenerations int   `json:"total_generations"`
	Bytes            int64 `json:"bytes"`
	TotalBytes       int64 `json:"total_bytes"`
}

// main returns the main goroutine's entry, or nil.
func (d *Diagnosis) main() *Goroutine {
	for i := range d.Goroutines {
		if d.Goroutines[i].Role == RoleMain {
			return &d.Goroutines[i]
		}
	}
	return nil
}

// minBucketShare is the smallest share of the main goroutine's time that a
// bucket needs to become an attribute: smaller ones are noise in a span's
// detail view, and the JSON has them all.
const minBucketShare = 0.01

// Attributes returns the diagnosis as attributes for the attachment span,
// under the Diagnosis* keys: the verdict, the cause, the status, the number of
// goroutines and, as DiagnosisBucketKeyPrefix + state name, the
// main goroutine's buckets in milliseconds, largest first, leaving out
// those under 1% of its time.
func (d *Diagnosis) Attributes() []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		DiagnosisVerdictKey.String(d.Verdict),
		DiagnosisCauseKey.String(d.Cause),
		DiagnosisStatusKey.String(string(d.Status)),
		DiagnosisGoroutinesKey.Int(len(d.Goroutines)),
	}
	m := d.main()
	if m == nil {
		return attrs
	}
	type bucket struct {
		s State
		d time.Duration
	}
	var bs []bucket
	for s, dur := range m.Buckets {
		if dur > 0 && float64(dur) >= minBucketShare*float64(m.Time) {
			bs = append(bs, bucket{State(s), dur})
		}
	}
	slices.SortStableFunc(bs, func(a, b bucket) int { return cmp.Compare(b.d, a.d) })
	for _, b := range bs {
		attrs = append(attrs, attribute.Float64(DiagnosisBucketKeyPrefix+b.s.String(), ms(b.d)))
	}
	return attrs
}

// maxStackAttrFrames bounds the frames of a stack attribute.
const maxStackAttrFrames = 16

// Events returns one EpisodeEventName span event per episode in
// d.Episodes, at the episode's start, with the Episode*Key
// attributes: state, duration in milliseconds, goroutine, stack and, when
// known, the waker and its stack. A stack is one "function (file:line)"
// per line, innermost first, at most 16 frames.
func (d *Diagnosis) Events() []sdktrace.Event {
	evs := make([]sdktrace.Event, 0, len(d.Episodes))
	for _, ep := range d.Episodes {
		attrs := []attribute.KeyValue{
			EpisodeStateKey.String(ep.State.String()),
			EpisodeDurationKey.Float64(ms(ep.Duration)),
			EpisodeGoroutineKey.Int64(ep.Goroutine),
			EpisodeStackKey.String(formatStack(ep.Stack, maxStackAttrFrames)),
		}
		if ep.Waker != nil {
			attrs = append(attrs,
				EpisodeWakerKey.Int64(ep.Waker.Goroutine),
				EpisodeWakerStackKey.String(formatStack(ep.Waker.Stack, maxStackAttrFrames)),
			)
		}
		evs = append(evs, sdktrace.Event{Name: EpisodeEventName, Time: ep.Start, Attributes: attrs})
	}
	return evs
}

// ms converts d to milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/1e3) / 1e3
}

func formatStack(frames []Frame, limit int) string {
	var b strings.Builder
	for i, f := range frames {
		if i == limit {
			fmt.Fprintf(&b, "... %d more", len(frames)-limit)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(f.String())
	}
	return b.String()
}
