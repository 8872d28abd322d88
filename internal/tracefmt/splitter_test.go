package tracefmt

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// splitTrace is a trace of two generations, with an empty batch, a batch
// whose header is longer than the payload and one near MaxBatchSize.
func splitTrace() []byte {
	h := Header(26)
	data := h[:]
	data = appendBatch(data, 1, 0, 10, []byte{EvSync, 1, 2})
	data = appendBatch(data, 1, ^uint64(0), 11, nil)
	data = appendBatch(data, 1, 3, 12, make([]byte, MaxBatchSize-7))
	data = append(data, EvEndOfGeneration)
	data = appendBatch(data, 2, 3, 13, []byte{16, 1, 2, 3})
	data = appendBatch(data, 2, 4, 14, make([]byte, 1000))
	return append(data, EvEndOfGeneration)
}

// record returns what a Splitter passes on, one line per piece.
func record(s *Splitter) *[]string {
	var got []string
	s.Header = func(h [HeaderLen]byte) error { got = append(got, fmt.Sprintf("header %q", h)); return nil }
	s.Batch = func(b Batch, off int64) error {
		got = append(got, fmt.Sprintf("batch at %d: gen %d M %d ts %d, %d bytes %x", off, b.Gen, b.M, b.Ts, len(b.Payload), b.Payload[:min(len(b.Payload), 4)]))
		return nil
	}
	s.EndOfGeneration = func(off int64) error { got = append(got, fmt.Sprintf("end at %d", off)); return nil }
	return &got
}

func TestSplitter(t *testing.T) {
	data := splitTrace()
	var whole Splitter
	want := record(&whole)
	n, err := whole.Write(data)
	require.NoError(t, err)
	require.Equal(t, len(data), n)
	require.NoError(t, whole.Close())
	require.Len(t, *want, 8)
	assert.Equal(t, int64(len(data)), whole.Offset())

	for _, chunk := range []int{1, 2, 3, 7, 13, 16, 17, 41, 42, 43, 1000, MaxBatchSize, MaxBatchSize + 100} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			var s Splitter
			got := record(&s)
			for p := 0; p < len(data); p += chunk {
				_, err := s.Write(data[p:min(p+chunk, len(data))])
				require.NoError(t, err)
			}
			require.NoError(t, s.Close())
			assert.Equal(t, *want, *got)
		})
	}
	t.Run("NoCopyForWholeBatches", func(t *testing.T) {
		var s Splitter
		assert.Zero(t, testing.AllocsPerRun(10, func() {
			s = Splitter{}
			_, _ = s.Write(data)
		}))
	})
	t.Run("Assembled", func(t *testing.T) {
		// In chunks of 1000 bytes: a batch within one chunk is passed from
		// it, one across chunks is assembled.
		const chunk = 1000
		// aliases reports whether b starts within data[off:off+maxHeaderLen].
		aliases := func(b []byte, off int64) bool {
			for i := off; i < min(off+maxHeaderLen, int64(len(data))); i++ {
				if &data[i] == &b[0] {
					return true
				}
			}
			return false
		}
		var s Splitter
		var whole, assembled int
		s.Batch = func(b Batch, off int64) error {
			if len(b.Payload) == 0 {
				return nil
			}
			end := off + maxHeaderLen + int64(len(b.Payload))
			if s.Assembled() {
				assembled++
				assert.False(t, aliases(b.Payload, off), "batch at %d: assembled, yet in the caller's buffer", off)
				assert.Less(t, off/chunk, (off+int64(len(b.Payload)))/chunk, "batch at %d: assembled, yet within one chunk", off)
			} else {
				whole++
				assert.True(t, aliases(b.Payload, off), "batch at %d: not assembled, yet not in the caller's buffer", off)
				assert.LessOrEqual(t, end-maxHeaderLen, (off/chunk+1)*chunk, "batch at %d: within one chunk", off)
			}
			return nil
		}
		for p := 0; p < len(data); p += chunk {
			_, err := s.Write(data[p:min(p+chunk, len(data))])
			require.NoError(t, err)
		}
		assert.Positive(t, whole)
		assert.Positive(t, assembled)
		assert.False(t, s.Assembled(), "outside a Batch call")
	})
}

func TestSplitterErrors(t *testing.T) {
	data := splitTrace()
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"ShortHeader", data[:10], "10 bytes is too short"},
		{"TruncatedBatch", data[:len(data)-5], "truncated batch"},
		{"TruncatedHeader", data[:HeaderLen+3], "truncated batch"},
		{"NotABatch", append(data[:HeaderLen:HeaderLen], EvStacks, 1, 2), "offset 16: want a batch, found event type 2"},
		{"GenerationZero", appendBatch(data[:HeaderLen:HeaderLen], 0, 1, 1, nil), "generation 0"},
		{"TooBig", appendBatch(data[:HeaderLen:HeaderLen], 1, 1, 1, make([]byte, MaxBatchSize+1)), "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Splitter
			_, werr := s.Write(tt.data)
			err := s.Close()
			require.ErrorContains(t, err, tt.wantErr)
			if werr != nil {
				require.Equal(t, werr, err)
				_, again := s.Write([]byte{1})
				require.Equal(t, werr, again, "a stopped Splitter stays stopped")
			}
		})
	}
	t.Run("CallbackError", func(t *testing.T) {
		stop := fmt.Errorf("stop")
		s := Splitter{Batch: func(Batch, int64) error { return stop }}
		_, err := s.Write(data)
		require.ErrorIs(t, err, stop)
		require.ErrorIs(t, s.Close(), stop)
	})
}
