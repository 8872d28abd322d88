// Package testutil holds helpers shared by the module's tests.
package testutil

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	xtrace "golang.org/x/exp/trace"
)

// ErrorSink collects what is reported to otel.Handle.
type ErrorSink struct {
	mu   sync.Mutex
	errs []error
}

// InstallErrorSink makes a new ErrorSink the global OpenTelemetry error
// handler. Call it once per test binary, from TestMain: the global handler
// delegates to the first handler set.
func InstallErrorSink() *ErrorSink {
	s := &ErrorSink{}
	otel.SetErrorHandler(s)
	return s
}

// Handle implements otel.ErrorHandler.
func (s *ErrorSink) Handle(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

// Take returns the errors handled since the last call.
func (s *ErrorSink) Take() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := s.errs
	s.errs = nil
	return errs
}

// ReadTrace parses every event of a Go execution trace, failing the test at
// the first error, and returns the events. msgAndArgs say what the trace
// is, for the failure message.
func ReadTrace(t testing.TB, data []byte, msgAndArgs ...any) []xtrace.Event {
	t.Helper()
	r, err := xtrace.NewReader(bytes.NewReader(data))
	require.NoError(t, err, msgAndArgs...)
	var events []xtrace.Event
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			return events
		}
		require.NoError(t, err, msgAndArgs...)
		events = append(events, ev)
	}
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}
