package spanprocessor_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
)

// handled collects what the package reports to otel.Handle.
var handled *testutil.ErrorSink

func TestMain(m *testing.M) {
	handled = testutil.InstallErrorSink()
	goleak.VerifyTestMain(m)
}
