package analysis_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// countingReader counts the bytes read through it, and fails on demand.
type countingReader struct {
	*bytes.Reader
	read int64
	fail error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	n, err := c.Reader.Read(p)
	c.read += int64(n)
	return n, err
}

// AnalyzeReader agrees with Analyze, reading the trace's framing and only
// the generations it needs.
func TestAnalyzeReader(t *testing.T) {
	for _, sc := range []struct {
		name string
		run  func(t *testing.T) outcome
	}{
		{"mutex held by another goroutine", scenarioMutex},
		{"span processor without task", scenarioNoTask},
	} {
		t.Run(sc.name, func(t *testing.T) {
			o := sc.run(t)
			want, err := analysis.Analyze(o.data, o.span)
			require.NoError(t, err)
			r := &countingReader{Reader: bytes.NewReader(o.data)}
			got, err := analysis.AnalyzeReader(r, o.span)
			require.NoError(t, err)
			assert.Equal(t, want.Verdict, got.Verdict)
			assert.Equal(t, want.Status, got.Status)
			assert.Equal(t, len(want.Goroutines), len(got.Goroutines))
			t.Logf("trace %d bytes, read %d", len(o.data), r.read)
		})
	}
}

func TestAnalyzeReaderErrors(t *testing.T) {
	o := scenarioSleep(t)
	_, err := analysis.AnalyzeReader(bytes.NewReader([]byte("not a trace at all")), o.span)
	require.ErrorIs(t, err, analysis.ErrNotTrace)
	_, err = analysis.AnalyzeReader(bytes.NewReader(nil), o.span)
	require.ErrorIs(t, err, analysis.ErrNotTrace)
	_, err = analysis.AnalyzeReader(bytes.NewReader(o.data[:len(o.data)-3]), o.span)
	require.ErrorIs(t, err, analysis.ErrMalformed)
	broken := errors.New("disk gone")
	_, err = analysis.AnalyzeReader(&countingReader{Reader: bytes.NewReader(o.data), fail: broken}, o.span)
	require.ErrorIs(t, err, broken)
	var _ io.ReadSeeker = (*countingReader)(nil)
}
