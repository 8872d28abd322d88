package tracefmt

import (
	"bytes"
	"fmt"
	"strconv"
)

// Event types that the framing involves, from internal/trace/tracev2.
const (
	EvEventBatch        = 1  // start of a batch
	EvStacks            = 2  // first event of a stack table batch
	EvStrings           = 4  // first event of a string table batch
	EvCPUSamples        = 6  // first event of a CPU samples batch
	EvCPUSample         = 7  // [ts, m, p, g, stack], in a CPU samples batch
	EvFrequency         = 8  // [freq], in a sync batch
	EvExperimentalBatch = 49 // start of an experimental batch
	EvSync              = 50 // first event of a sync batch
	EvClockSnapshot     = 51 // [dt, mono, sec, nsec], in a sync batch
	EvEndOfGeneration   = 52 // a lone byte between batches (Go 1.26+)
)

// Sizes of the framing.
const (
	HeaderLen    = 16       // length of the trace header
	MaxBatchSize = 64 << 10 // tracev2.MaxBatchSize: the largest payload
	MaxVarintLen = 10       // the longest uvarint, as for a uint64
)

// Version returns the N of the "go 1.N trace" header at the start of data,
// which must be padded with NUL bytes to [HeaderLen]. Like the runtime's own
// reader it takes N as a decimal integer, so it also accepts spellings the
// runtime never writes, such as "go 1.025 trace"; compare the header with
// [Header] to reject them.
func Version(data []byte) (int, error) {
	const prefix, suffix = "go 1.", " trace"
	if len(data) < HeaderLen {
		return 0, fmt.Errorf("%d bytes is too short for a trace header", len(data))
	}
	h := data[len(prefix):HeaderLen]
	i := bytes.Index(h, []byte(suffix))
	if !bytes.HasPrefix(data, []byte(prefix)) || i <= 0 {
		return 0, fmt.Errorf("header %q is not \"go 1.N trace\"", data[:HeaderLen])
	}
	for _, c := range h[i+len(suffix):] {
		if c != 0 {
			return 0, fmt.Errorf("header %q is not padded with NUL bytes", data[:HeaderLen])
		}
	}
	v, err := strconv.Atoi(string(h[:i]))
	if err != nil || v < 0 {
		return 0, fmt.Errorf("header %q has no version number", data[:HeaderLen])
	}
	return v, nil
}

// Header returns the header that Go 1.version writes: "go 1.N trace" padded
// with NUL bytes. It panics if version is negative or too large to fit.
func Header(version int) [HeaderLen]byte {
	var h [HeaderLen]byte
	b := append(h[:0], "go 1."...)
	b = strconv.AppendInt(b, int64(version), 10)
	b = append(b, " trace"...)
	if version < 0 || len(b) > HeaderLen {
		panic(fmt.Sprintf("tracefmt: no header for version %d", version))
	}
	return h
}
