// Package testutil holds helpers shared by the module's tests.
package testutil

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.uber.org/goleak"
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

// Verify returns code, the result of testing.M.Run, or 1 with the errors
// printed if errors were handled that no test took with Take: a test
// expecting an error asserts on it, and any other is a bug.
func (s *ErrorSink) Verify(code int) int {
	errs := s.Take()
	if len(errs) == 0 {
		return code
	}
	fmt.Fprintf(os.Stderr, "FAIL: %d unexpected errors reported to otel.Handle:\n", len(errs))
	for _, err := range errs {
		fmt.Fprintf(os.Stderr, "\t%v\n", err)
	}
	return 1
}

// VerifyTestMain runs the tests of m and exits, failing if an error
// reached sink that no test took (see [ErrorSink.Verify]) or if goroutines
// leaked (goleak).
func VerifyTestMain(m *testing.M, sink *ErrorSink) {
	code := sink.Verify(m.Run())
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
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

// envSubprocess names the test that a re-executed test binary runs.
const envSubprocess = "OTELFR_TEST_SUBPROCESS"

// InSubprocess runs the calling test again in a child process, for what
// would kill the test binary (a runtime throw is not a panic and cannot be
// recovered). In the child it returns true: the test then does its work,
// and any failure, or the process dying, fails the child. In the parent it
// returns false after the child has exited, failing t if the child failed,
// with the child's output.
func InSubprocess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envSubprocess) == t.Name() {
		return true
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envSubprocess+"="+t.Name())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the child process failed:\n%s", out)
	require.Contains(t, string(out), "--- PASS: "+t.Name(), "the child process ran the test:\n%s", out)
	return false
}
