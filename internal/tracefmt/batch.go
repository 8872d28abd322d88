package tracefmt

import "fmt"

// Batch is the header of one batch and its payload.
type Batch struct {
	Exp     bool   // an experimental batch
	Gen     uint64 // generation number, never 0
	M       uint64 // the M that wrote it, or ^0 for none
	Ts      uint64 // base timestamp, in trace clock units
	Payload []byte // at most MaxBatchSize bytes, with no spare capacity
}

// Kind tells batches apart by their first event.
type Kind uint8

// Kinds of batch.
const (
	KindEvents       Kind = iota // timed events; also an empty batch
	KindSync                     // EvSync: frequency and clock snapshot
	KindCPUSamples               // EvCPUSamples
	KindStrings                  // EvStrings: the string table
	KindStacks                   // EvStacks: the stack table
	KindExperimental             // an EvExperimentalBatch, whatever it holds
)

// Kind returns the kind of the batch.
func (b *Batch) Kind() Kind {
	if b.Exp {
		return KindExperimental
	}
	if len(b.Payload) == 0 {
		return KindEvents
	}
	switch b.Payload[0] {
	case EvSync:
		return KindSync
	case EvCPUSamples:
		return KindCPUSamples
	case EvStrings:
		return KindStrings
	case EvStacks:
		return KindStacks
	}
	return KindEvents
}

// ReadBatch reads the batch at data[p], where p < len(data), and returns
// the offset just past it. It checks the framing (the batch event, a nonzero
// generation, a size within MaxBatchSize and within data) but not the
// payload.
func ReadBatch(data []byte, p int) (b Batch, next int, err error) {
	off := p
	switch data[p] {
	case EvEventBatch:
		p++
	case EvExperimentalBatch:
		b.Exp = true
		p += 2 // the experiment ID byte
	default:
		return b, 0, fmt.Errorf("offset %d: want a batch, found event type %d", off, data[p])
	}
	var size uint64
	b.Gen, p = Uvarint(data, p)
	b.M, p = Uvarint(data, p)
	b.Ts, p = Uvarint(data, p)
	size, p = Uvarint(data, p)
	switch {
	case p < 0:
		return b, 0, fmt.Errorf("batch at offset %d: truncated or bad header", off)
	case b.Gen == 0:
		return b, 0, fmt.Errorf("batch at offset %d: generation 0", off)
	case size > MaxBatchSize:
		return b, 0, fmt.Errorf("batch at offset %d: size %d exceeds %d", off, size, MaxBatchSize)
	case size > uint64(len(data)-p):
		return b, 0, fmt.Errorf("batch at offset %d: truncated: %d of %d bytes", off, len(data)-p, size)
	}
	next = p + int(size)
	b.Payload = data[p:next:next]
	return b, next, nil
}
