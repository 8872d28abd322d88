package tracefmt

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVersion(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		want    int
		wantErr string
	}{
		{"Go126", "go 1.26 trace\x00\x00\x00", 26, ""},
		{"Go125", "go 1.25 trace\x00\x00\x00", 25, ""},
		{"OneDigit", "go 1.5 trace\x00\x00\x00\x00", 5, ""},
		{"FollowedByBatches", "go 1.26 trace\x00\x00\x00\x01\x01", 26, ""},
		{"LeadingZero", "go 1.025 trace\x00\x00", 25, ""},
		{"Empty", "", 0, "0 bytes is too short"},
		{"Short", "go 1.26", 0, "7 bytes is too short"},
		{"Text", "hello, this is not a trace", 0, `is not "go 1.N trace"`},
		{"Go2", "go 2.00 trace\x00\x00\x00", 0, `is not "go 1.N trace"`},
		{"NoVersion", "go 1. trace\x00\x00\x00\x00\x00", 0, `is not "go 1.N trace"`},
		{"NoPadding", "go 1.26 trace\x00\x00x", 0, "not padded"},
		{"NotANumber", "go 1.xx trace\x00\x00\x00", 0, "no version number"},
		{"Negative", "go 1.-5 trace\x00\x00\x00", 0, "no version number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Version([]byte(tt.header))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, v)
		})
	}
}

func TestHeader(t *testing.T) {
	h26, h5 := Header(26), Header(5)
	assert.Equal(t, "go 1.26 trace\x00\x00\x00", string(h26[:]))
	assert.Equal(t, "go 1.5 trace\x00\x00\x00\x00", string(h5[:]))
	for _, v := range []int{0, 5, 25, 26, 99, 12345} {
		h := Header(v)
		got, err := Version(h[:])
		require.NoError(t, err, "version %d", v)
		assert.Equal(t, v, got)
	}
	assert.Panics(t, func() { Header(-1) })
	assert.Panics(t, func() { Header(123456) }, "17 bytes")
	assert.Zero(t, testing.AllocsPerRun(10, func() { _ = Header(26) }))
}

// appendBatch appends an event batch as the runtime writes it: the size
// padded to MaxVarintLen bytes.
func appendBatch(b []byte, gen, m, ts uint64, payload []byte) []byte {
	b = append(b, EvEventBatch)
	b = binary.AppendUvarint(b, gen)
	b = binary.AppendUvarint(b, m)
	b = binary.AppendUvarint(b, ts)
	size := uint64(len(payload))
	for i := range MaxVarintLen {
		c := byte(size & 0x7f)
		if i < MaxVarintLen-1 {
			c |= 0x80
		}
		b = append(b, c)
		size >>= 7
	}
	return append(b, payload...)
}

func TestReadBatch(t *testing.T) {
	t.Run("Events", func(t *testing.T) {
		data := appendBatch([]byte("xx"), 3, ^uint64(0), 1000, []byte{16, 5, 1, 2})
		data = append(data, EvEndOfGeneration)
		b, next, err := ReadBatch(data, 2)
		require.NoError(t, err)
		assert.Equal(t, Batch{Gen: 3, M: ^uint64(0), Ts: 1000, Payload: []byte{16, 5, 1, 2}}, b)
		assert.Equal(t, len(data)-1, next)
		assert.Equal(t, len(b.Payload), cap(b.Payload), "no spare capacity")
		assert.Equal(t, KindEvents, b.Kind())
	})
	t.Run("Experimental", func(t *testing.T) {
		data := appendBatch(nil, 1, 2, 3, []byte{EvSync})
		// An experimental batch has the experiment ID where an event batch
		// has nothing.
		data = append([]byte{EvExperimentalBatch, 7}, data[1:]...)
		b, next, err := ReadBatch(data, 0)
		require.NoError(t, err)
		assert.Equal(t, Batch{Exp: true, Gen: 1, M: 2, Ts: 3, Payload: []byte{EvSync}}, b)
		assert.Equal(t, len(data), next)
		assert.Equal(t, KindExperimental, b.Kind(), "whatever it holds")
	})
	t.Run("NoAllocations", func(t *testing.T) {
		data := appendBatch(nil, 1, 2, 3, []byte{EvSync})
		assert.Zero(t, testing.AllocsPerRun(10, func() { _, _, _ = ReadBatch(data, 0) }))
	})

	big := appendBatch(nil, 1, 0, 0, make([]byte, MaxBatchSize+1))
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"NotABatch", []byte{EvStacks, 1, 1, 1, 0}, "offset 0: want a batch, found event type 2"},
		{"EndOfGeneration", []byte{EvEndOfGeneration}, "found event type 52"},
		{"OnlyTheEventType", []byte{EvEventBatch}, "truncated or bad header"},
		{"TruncatedHeader", appendBatch(nil, 1, 2, 3, nil)[:8], "truncated or bad header"},
		{"ExperimentWithoutID", []byte{EvExperimentalBatch}, "truncated or bad header"},
		{"VarintOverflow", append([]byte{EvEventBatch}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0), "truncated or bad header"},
		{"GenerationZero", appendBatch(nil, 0, 1, 1, nil), "generation 0"},
		{"TooBig", big, "size 65537 exceeds 65536"},
		{"TruncatedPayload", appendBatch(nil, 1, 1, 1, []byte{1, 2, 3})[:15], "truncated: 1 of 3 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadBatch(tt.data, 0)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestKind(t *testing.T) {
	tests := []struct {
		payload []byte
		want    Kind
	}{
		{nil, KindEvents},
		{[]byte{16}, KindEvents},
		{[]byte{EvSync}, KindSync},
		{[]byte{EvCPUSamples}, KindCPUSamples},
		{[]byte{EvStrings}, KindStrings},
		{[]byte{EvStacks}, KindStacks},
	}
	for _, tt := range tests {
		b := Batch{Gen: 1, Payload: tt.payload}
		assert.Equal(t, tt.want, b.Kind(), "%v", tt.payload)
	}
}

func TestUvarint(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 1 << 35, 1<<63 - 1, 1 << 63, ^uint64(0)} {
		b := binary.AppendUvarint([]byte{0xff}, v)
		got, p := Uvarint(b, 1)
		assert.Equal(t, v, got)
		assert.Equal(t, len(b), p)
		assert.Equal(t, len(b), SkipUvarint(b, 1))
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"Empty", nil},
		{"Truncated", []byte{0x80, 0x80}},
		{"Overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}},
		{"TooLong", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, p := Uvarint(tt.b, 0)
			assert.Equal(t, -1, p)
			assert.Zero(t, v)
			assert.Equal(t, -1, SkipUvarint(tt.b, 0))
		})
	}
	t.Run("EarlierError", func(t *testing.T) {
		v, p := Uvarint([]byte{1}, -1)
		assert.Equal(t, -1, p)
		assert.Zero(t, v)
		assert.Equal(t, -1, SkipUvarint([]byte{1}, -1))
	})
}

// FuzzUvarint checks Uvarint and SkipUvarint against encoding/binary.
func FuzzUvarint(f *testing.F) {
	f.Add([]byte{0x80, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		want, n := binary.Uvarint(b)
		v, p := Uvarint(b, 0)
		if n <= 0 {
			if p != -1 {
				t.Fatalf("Uvarint(%x) = %d, %d; binary.Uvarint fails with %d", b, v, p, n)
			}
		} else if v != want || p != n {
			t.Fatalf("Uvarint(%x) = %d, %d; want %d, %d", b, v, p, want, n)
		}
		if q := SkipUvarint(b, 0); q != p {
			t.Fatalf("SkipUvarint(%x) = %d; Uvarint ends at %d", b, q, p)
		}
	})
}

func TestReadSyncEvent(t *testing.T) {
	payload := []byte{EvSync, EvFrequency}
	payload = binary.AppendUvarint(payload, 15625000)
	snapAt := len(payload)
	payload = append(payload, EvClockSnapshot)
	for _, a := range []uint64{7, 12345, 1_700_000_000, 999_999_999} {
		payload = binary.AppendUvarint(payload, a)
	}

	ev, p, err := ReadSyncEvent(payload, 1)
	require.NoError(t, err)
	assert.Equal(t, SyncEvent{Type: EvFrequency, Freq: 15625000}, ev)
	assert.Equal(t, snapAt, p)
	ev, p, err = ReadSyncEvent(payload, p)
	require.NoError(t, err)
	assert.Equal(t, SyncEvent{Type: EvClockSnapshot, Dt: 7, Sec: 1_700_000_000, Nsec: 999_999_999}, ev, "mono skipped")
	assert.Equal(t, len(payload), p)
	assert.Zero(t, testing.AllocsPerRun(10, func() { _, _, _ = ReadSyncEvent(payload, snapAt) }))

	tests := []struct {
		name    string
		b       []byte
		p       int
		wantErr string
	}{
		{"ZeroFrequency", []byte{EvSync, EvFrequency, 0}, 1, "bad frequency"},
		{"NoFrequency", []byte{EvSync, EvFrequency}, 1, "bad frequency"},
		{"TruncatedSnapshot", payload[:len(payload)-1], snapAt, "bad clock snapshot"},
		{"UnexpectedEvent", []byte{EvSync, EvStrings}, 1, "unexpected event type 4"},
		{"PastTheEnd", []byte{EvSync}, 1, "no event at 1 of 1 bytes"},
		{"EarlierError", payload, -1, "no event at -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p, err := ReadSyncEvent(tt.b, tt.p)
			require.ErrorContains(t, err, tt.wantErr)
			assert.Equal(t, -1, p)
		})
	}
}
