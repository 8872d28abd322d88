package otelfr

import (
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	otel.SetErrorHandler(handled)
	goleak.VerifyTestMain(m)
}

// handled collects what the package reports to otel.Handle.
var handled = &errorSink{}

type errorSink struct {
	mu   sync.Mutex
	errs []error
}

func (s *errorSink) Handle(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

// take returns the errors handled since the last call.
func (s *errorSink) take() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := s.errs
	s.errs = nil
	return errs
}
