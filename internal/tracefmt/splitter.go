package tracefmt

import (
	"errors"
	"fmt"
)

// Splitter reads the framing of a trace as it is written to it, in chunks
// of any size, and hands each piece to its callbacks in order: the header,
// then every batch and end-of-generation marker. It holds at most one
// batch: a batch that arrives whole in one Write is passed straight from
// the caller's buffer, without a copy; one split across Writes is
// assembled in a buffer of at most MaxBatchSize plus a header.
//
// The callbacks' errors, and framing errors, stop the Splitter: Write
// returns the error then and from then on. Offsets are from the start of
// the trace. Version 1.26 end-of-generation markers are recognized in any
// trace; whether one belongs there is the caller's to judge.
type Splitter struct {
	// Header, if set, is called with the trace's HeaderLen-byte header.
	Header func(h [HeaderLen]byte) error
	// Batch, if set, is called for each batch. b.Payload is valid only
	// during the call, unless Assembled says where it is.
	Batch func(b Batch, off int64) error
	// EndOfGeneration, if set, is called for each end-of-generation
	// marker.
	EndOfGeneration func(off int64) error

	off       int64 // bytes consumed
	hdr       [HeaderLen]byte
	buf       []byte // a batch split across Writes, its first bytes
	need      int    // the whole batch's length once its header is in buf; 0 before
	assembled bool   // the batch being passed on is in buf
	err       error
}

// Assembled reports, during a Batch call, whether the batch was split
// across Writes and so assembled in the Splitter's own buffer, which the
// next such batch reuses. Otherwise b.Payload is a part of the buffer
// passed to Write, and lives as long as the caller keeps that.
func (s *Splitter) Assembled() bool { return s.assembled }

// maxHeaderLen is the longest batch header: the event type, the
// experiment ID and four uvarints.
const maxHeaderLen = 2 + 4*MaxVarintLen

var errTruncated = errors.New("truncated")

// Write implements io.Writer. It returns len(p) and nil unless the trace
// is malformed or a callback failed.
func (s *Splitter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := len(p)
	if err := s.write(p); err != nil {
		s.err = err
		return 0, err
	}
	return n, nil
}

func (s *Splitter) write(p []byte) error {
	if s.off < HeaderLen {
		k := copy(s.hdr[s.off:], p)
		s.off += int64(k)
		p = p[k:]
		if s.off < HeaderLen {
			return nil
		}
		if s.Header != nil {
			if err := s.Header(s.hdr); err != nil {
				return err
			}
		}
	}
	for len(p) > 0 {
		if len(s.buf) > 0 {
			// Complete the batch held back from an earlier Write.
			if s.need == 0 {
				k := min(len(p), maxHeaderLen-len(s.buf))
				s.buf = append(s.buf, p[:k]...)
				n, err := batchLen(s.buf)
				if errors.Is(err, errTruncated) {
					p = p[k:]
					continue
				}
				if err != nil {
					return fmt.Errorf("offset %d: %w", s.off, err)
				}
				// Give back what went beyond a short batch.
				extra := max(0, len(s.buf)-n)
				s.buf = s.buf[:len(s.buf)-extra]
				p = p[k-extra:]
				s.need = n
			}
			k := min(len(p), s.need-len(s.buf))
			s.buf = append(s.buf, p[:k]...)
			p = p[k:]
			if len(s.buf) < s.need {
				continue
			}
			s.assembled = true
			err := s.emit(s.buf)
			s.assembled = false
			if err != nil {
				return err
			}
			s.buf, s.need = s.buf[:0], 0
			continue
		}
		if p[0] == EvEndOfGeneration {
			if s.EndOfGeneration != nil {
				if err := s.EndOfGeneration(s.off); err != nil {
					return err
				}
			}
			s.off++
			p = p[1:]
			continue
		}
		n, err := batchLen(p)
		if err == nil && n <= len(p) {
			if err := s.emit(p[:n]); err != nil {
				return err
			}
			p = p[n:]
			continue
		}
		if err != nil && !errors.Is(err, errTruncated) {
			return fmt.Errorf("offset %d: %w", s.off, err)
		}
		if s.buf == nil {
			s.buf = make([]byte, 0, maxHeaderLen+MaxBatchSize)
		}
		if err == nil {
			s.need = n
		}
		s.buf = append(s.buf, p...)
		p = nil
	}
	return nil
}

// emit passes the whole batch b on and counts it consumed.
func (s *Splitter) emit(b []byte) error {
	h, _, err := ReadBatch(b, 0)
	if err != nil {
		return fmt.Errorf("offset %d: %w", s.off, err) // unreachable: batchLen checked it
	}
	if s.Batch != nil {
		if err := s.Batch(h, s.off); err != nil {
			return err
		}
	}
	s.off += int64(len(b))
	return nil
}

// Close reports whether the trace written ended cleanly: after its header
// and a whole batch or marker. It returns the error that stopped the
// Splitter, if any.
func (s *Splitter) Close() error {
	switch {
	case s.err != nil:
		return s.err
	case s.off < HeaderLen:
		return fmt.Errorf("%d bytes is too short for a trace header", s.off)
	case len(s.buf) > 0:
		return fmt.Errorf("offset %d: truncated batch: %d bytes", s.off, len(s.buf))
	}
	return nil
}

// Offset returns how many bytes of the trace the Splitter has passed on.
func (s *Splitter) Offset() int64 { return s.off }

// batchLen returns the length of the batch, header included, that starts
// data. Its error wraps errTruncated when data may be the start of a
// batch too short to tell.
func batchLen(data []byte) (int, error) {
	p := 0
	switch data[0] {
	case EvEventBatch:
		p = 1
	case EvExperimentalBatch:
		p = 2
	default:
		return 0, fmt.Errorf("want a batch, found event type %d", data[0])
	}
	var gen, size uint64
	gen, p = Uvarint(data, p)
	p = SkipUvarint(data, p) // M
	p = SkipUvarint(data, p) // ts
	size, p = Uvarint(data, p)
	switch {
	case p < 0 && len(data) < maxHeaderLen:
		return 0, errTruncated
	case p < 0:
		return 0, errors.New("bad batch header")
	case gen == 0:
		return 0, errors.New("batch of generation 0")
	case size > MaxBatchSize:
		return 0, fmt.Errorf("batch size %d exceeds %d", size, MaxBatchSize)
	}
	return p + int(size), nil
}
