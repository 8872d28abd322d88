package correlation

import (
	"testing"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.VerifyTestMain(m, testutil.InstallErrorSink())
}
