package analysis

import (
	"errors"
	"fmt"
)

var (
	// ErrNotTrace is returned when the data is not a Go execution trace: it
	// does not start with a "go 1.N trace" header. [ErrMalformed] also
	// matches it with [errors.Is].
	ErrNotTrace = errors.New("analysis: not a Go execution trace")

	// ErrMalformed is returned when the data starts like a Go execution
	// trace but is truncated or corrupt. errors.Is(ErrMalformed, ErrNotTrace)
	// is true.
	ErrMalformed = fmt.Errorf("%w: malformed or truncated trace", ErrNotTrace)

	// ErrUnsupportedVersion is returned for an execution trace from a Go
	// version this package cannot analyze: the parser refuses it (a Go
	// release newer than golang.org/x/exp/trace knows), or it predates Go
	// 1.25, whose traces first carry the clock snapshots that relate trace
	// time to span time. The error wraps the parser's message when there is
	// one.
	ErrUnsupportedVersion = errors.New("analysis: unsupported execution trace version")

	// ErrSpanNotFound is returned by [Analyze] when the snapshot holds no
	// trace of the span: neither its start nor its end was logged (under
	// otelfr.LogCategory) within the snapshot's window.
	ErrSpanNotFound = errors.New("analysis: span not found in the snapshot")

	// ErrProfileKind is returned by [WriteProfile] and [ParseProfileKind]
	// for a profile kind that is none of [ProfileKinds].
	ErrProfileKind = errors.New("analysis: unknown profile kind")
)
