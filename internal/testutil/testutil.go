// Package testutil holds helpers shared by the module's tests.
package testutil

import (
	"sync"

	"go.opentelemetry.io/otel"
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
