package bucketstore_test

import (
	"testing"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
)

// handled collects what the package reports to otel.Handle.
var handled *testutil.ErrorSink

func TestMain(m *testing.M) {
	handled = testutil.InstallErrorSink()
	testutil.VerifyTestMain(m, handled)
}
