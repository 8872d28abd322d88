package analysis

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"

	xtrace "golang.org/x/exp/trace"

	"github.com/otelfr/otel-flightrecorder/internal/tracefmt"
)

// Analyze diagnoses span from data, a Go execution trace such as a
// snapshot of the flight recorder (otelfr.Snapshot.Data).
//
// The span is found through the messages that otelfr logs under
// otelfr.LogCategory when it starts and ends: inside the span's
// runtime/trace task when otelfr's TracerProvider wrapper is used, or on the
// goroutine that starts and ends it when only the span processor is. The
// diagnosis covers the span's interval cut to the snapshot's window (see
// [Span] for where the interval comes from) and the goroutines that worked
// for it (see [Role]); Status says whether the window cut it.
//
// Analyze parses only the trace generations (about a second each) that
// overlap the span, plus the one before when a goroutine of the span was
// already waiting when the first of them began, to learn why, or when
// goroutines that held the Ps while the span's waited were created before
// it, to learn what they were.
//
// Errors: ErrNotTrace (ErrMalformed for a corrupt or truncated trace),
// ErrUnsupportedVersion, or ErrSpanNotFound when the snapshot holds neither
// the start nor the end of the span. The Diagnosis is nil whenever the
// error is not.
func Analyze(data []byte, span Span, opts ...Option) (*Diagnosis, error) {
	_, d, err := analyze(data, span, opts)
	return d, err
}

// analyze is Analyze, and returns the builder behind the diagnosis too.
func analyze(data []byte, span Span, opts []Option) (*builder, *Diagnosis, error) {
	cfg := newConfig(opts)
	span.Error = oneLine(span.Error, maxErrorSummary)
	gens, err := generations(data)
	if err != nil {
		return nil, nil, err
	}
	if !span.SpanID.IsValid() {
		return nil, nil, fmt.Errorf("%w: the span ID is zero", ErrSpanNotFound)
	}
	// The span's times, when given, bound the search: a span that just
	// ended is in the last generations. One generation more on each side
	// absorbs the error of comparing wall-clock times with trace time.
	lo, hi := 0, len(gens)-1
	if !span.Start.IsZero() {
		lo = max(0, containing(gens, span.Start)-1)
	}
	if !span.End.IsZero() {
		hi = min(hi, containing(gens, span.End)+1)
	}
	startGen, endGen := findMarkers(data, gens, lo, hi, span)
	if startGen < 0 && endGen < 0 {
		return nil, nil, fmt.Errorf("%w: span %s is not logged in the snapshot's %d generations", ErrSpanNotFound, span.SpanID, len(gens))
	}
	first, last := selectGenerations(gens, span, startGen, endGen)
	if endGen < 0 && span.End.IsZero() && startGen >= 0 {
		// Only the start is logged (the wrapper logs the end of long
		// spans only) and no end time is given: the span's task ends it,
		// most often in the generation it started in. Look there first,
		// then twice as far each time until its end is found.
		last = startGen
	}
	for {
		b, d, earlier, err := analyzeGenerations(data, gens, first, last, span, cfg)
		if err != nil {
			return b, d, err
		}
		if last < len(gens)-1 && span.End.IsZero() && !b.endSeen() {
			last = min(len(gens)-1, last+(last-first+1))
			continue
		}
		if !earlier || first == 0 {
			return b, d, err
		}
		// A goroutine of the span was waiting since before the first
		// generation, for a reason only the one before can tell, or one
		// that held the Ps is named there.
		first--
		cfg.noEarlier = true
	}
}

// generations checks data's header and splits it into generations.
func generations(data []byte) ([]generation, error) {
	v, err := traceVersion(data)
	if err != nil {
		return nil, err
	}
	if v != 25 && v != 26 {
		return nil, unsupported(data, v)
	}
	return splitGenerations(data, v)
}

// unsupported returns the error for a trace of Go 1.v, with the parser's
// own message when it refuses the version.
func unsupported(data []byte, v int) error {
	if _, err := xtrace.NewReader(bytes.NewReader(data[:tracefmt.HeaderLen])); err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupportedVersion, err)
	}
	return fmt.Errorf("%w: go 1.%d trace; analysis needs Go 1.25 or later, whose traces carry clock snapshots", ErrUnsupportedVersion, v)
}

// findMarkers returns the indexes of the generations holding the span's
// start and end messages, or -1. It searches the raw bytes of the string
// batches: a log message is stored verbatim in its generation's string
// table, so this costs a scan of a small part of the trace instead of a
// parse.
func findMarkers(data []byte, gens []generation, lo, hi int, span Span) (startGen, endGen int) {
	startGen, endGen = -1, -1
	spanHex := []byte(hex.EncodeToString(span.SpanID[:]))
	var traceHex []byte
	if span.TraceID.IsValid() {
		traceHex = []byte(hex.EncodeToString(span.TraceID[:]))
	}
	const idsLen = 32 + 1 // "<trace> " before the span ID
	for g := lo; g <= hi && g < len(gens); g++ {
		for _, r := range gens[g].strings {
			b := data[r[0]:r[1]]
			for p := 0; ; {
				i := bytes.Index(b[p:], spanHex)
				if i < 0 {
					break
				}
				i += p
				p = i + len(spanHex)
				if i < idsLen+len("end ") || b[i-1] != ' ' {
					continue
				}
				tr := b[i-idsLen : i-1]
				if !isLowerHex(tr) || (traceHex != nil && !bytes.Equal(tr, traceHex)) {
					continue
				}
				switch head := b[:i-idsLen]; {
				case bytes.HasSuffix(head, []byte("start ")):
					if startGen < 0 {
						startGen = g
					}
				case bytes.HasSuffix(head, []byte("end ")):
					endGen = g
				}
			}
		}
	}
	return startGen, endGen
}

// containing returns the index of the generation whose time range holds w:
// the last one that starts at or before it (the first if none does).
func containing(gens []generation, w time.Time) int {
	i, _ := slices.BinarySearchFunc(gens, w, func(g generation, w time.Time) int {
		return g.start().Compare(w)
	})
	// i is the first generation starting at or after w.
	if i == len(gens) || gens[i].start().After(w) {
		i--
	}
	return max(i, 0)
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// selectGenerations returns the first and last generation to parse: from
// the one holding the span's start marker to the one holding its end
// marker. A missing marker is replaced by the generation that holds the
// span's own start or end time when given (the markers are exact, times
// can straddle a generation boundary by microseconds), else by the first or
// last generation: a span without a start in the window began before it.
func selectGenerations(gens []generation, span Span, startGen, endGen int) (first, last int) {
	first, last = startGen, endGen
	switch {
	case first >= 0:
	case !span.Start.IsZero():
		first = containing(gens, span.Start)
	default:
		first = 0
	}
	switch {
	case last >= 0:
	case !span.End.IsZero():
		last = containing(gens, span.End)
	default:
		last = len(gens) - 1
	}
	if last < first {
		first, last = last, first
	}
	return first, last
}

// analyzeGenerations parses gens[first:last+1] and diagnoses the span. It
// reports earlier when gens[first-1] would tell more: a goroutine of the
// span was waiting, for an unknown reason, since before gens[first] began,
// or one that held the Ps while the span's waited for them is named only
// by its ID and was created before (a fan-out started in the generation
// before: its goroutines ran to their ends without a stack).
func analyzeGenerations(data []byte, gens []generation, first, last int, span Span, cfg config) (*builder, *Diagnosis, bool, error) {
	body := data[gens[first].off:gens[last].end]
	tl := newTimeline(span)
	if err := tl.read(io.MultiReader(bytes.NewReader(data[:tracefmt.HeaderLen]), bytes.NewReader(body))); err != nil {
		return nil, nil, false, err
	}
	b := &builder{tl: tl, span: span, cfg: cfg, atWindowStart: first == 0, atWindowEnd: last == len(gens)-1}
	d, err := b.build()
	if err != nil {
		return nil, nil, false, err
	}
	d.Parsed = Parsed{
		Generations:      last - first + 1,
		TotalGenerations: len(gens),
		Bytes:            int64(tracefmt.HeaderLen + len(body)),
		TotalBytes:       int64(len(data)),
	}
	return b, d, (b.unknownWait || b.unnamedHolder) && !cfg.noEarlier, nil
}
