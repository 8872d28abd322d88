package otelfr

import (
	"hash"
	"io"

	"github.com/otelfr/otel-flightrecorder/internal/yield"
)

// streamBufferSize is how much a snapshot written to an io.Writer gathers
// before each write: a file takes a 16 MiB window in 16 writes instead of
// the runtime's one per batch, up to 64 KiB each, without the process
// holding more than this of it.
const streamBufferSize = 1 << 20

// snapshotStream is the one pass a snapshot makes on its way out of the
// flight recorder: each piece the runtime writes goes through the window
// scan, and the SHA-256 when hash is set, and on to dst.
//
// Unbuffered, each piece is passed straight on. Buffered (streaming to a
// store), pieces are gathered into one 1 MiB buffer, written to dst
// whenever it fills; the stream is not hashed then: at about 1 ms per MiB
// the SHA-256 was three quarters of the pass, and the store's caller
// hashes the trace after it is stored (snapstore.Checksummer).
type snapshotStream struct {
	dst  io.Writer
	hash hash.Hash // nil: not hashed
	win  windowWriter
	n    int64
	err  error // of dst; the write stops there

	buf []byte // nil when unbuffered

	sinceYield int
}

func (s *snapshotStream) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	written := len(p)
	for len(p) > 0 {
		// The runtime writes at most a 64 KiB batch at a time; others may
		// write more, and neither the hash nor a copy can be preempted.
		q := p[:min(len(p), copyChunk)]
		p = p[len(q):]
		s.n += int64(len(q))
		s.sinceYield += len(q)
		if s.hash != nil {
			s.hash.Write(q)
		}
		if s.buf == nil {
			_, _ = s.win.Write(q) // never fails: its error waits for window
			if _, err := s.dst.Write(q); err != nil {
				s.err = err
				return 0, err
			}
			q = nil
		}
		for len(q) > 0 {
			// Into the buffer first, and scanned there: the scan keeps
			// the batches it needs where they are until the buffer is
			// flushed, instead of copying each.
			k := copy(s.buf[len(s.buf):cap(s.buf)], q)
			_, _ = s.win.Write(s.buf[len(s.buf) : len(s.buf)+k])
			s.buf = s.buf[:len(s.buf)+k]
			q = q[k:]
			if len(s.buf) == cap(s.buf) {
				if err := s.flush(); err != nil {
					return 0, err
				}
			}
		}
		if s.sinceYield >= yieldEvery {
			// Let the goroutines and threads waiting behind this one
			// run: the snapshot is background work, requests are not.
			yield.Background()
			s.sinceYield = 0
		}
	}
	return written, nil
}

// flush writes the buffer gathered to dst.
func (s *snapshotStream) flush() error {
	if s.err != nil || len(s.buf) == 0 {
		return s.err
	}
	s.win.settle() // before the buffer leaves: it is dst's for the Write
	_, s.err = s.dst.Write(s.buf)
	s.buf = s.buf[:0]
	return s.err
}

// close flushes what is left. It returns the first error of dst.
func (s *snapshotStream) close() error {
	if s.buf == nil {
		return s.err
	}
	return s.flush()
}

// readFrom reads r to its end into the stream: a buffered stream reads
// straight into its buffer, sparing the copy that Write makes from the
// caller's; an unbuffered one reads into buf and writes that.
func (s *snapshotStream) readFrom(r io.Reader, buf []byte) error {
	for {
		if s.err != nil {
			return s.err
		}
		q := buf
		if s.buf != nil {
			if len(s.buf) == cap(s.buf) {
				if err := s.flush(); err != nil {
					return err
				}
			}
			q = s.buf[len(s.buf):cap(s.buf)]
		}
		n, err := r.Read(q)
		if n > 0 {
			q = q[:n]
			if s.buf == nil {
				if _, werr := s.Write(q); werr != nil {
					return werr
				}
			} else {
				for p := q; len(p) > 0; {
					k := min(len(p), copyChunk)
					_, _ = s.win.Write(p[:k]) // never fails: its error waits for window
					if s.hash != nil {
						s.hash.Write(p[:k])
					}
					p = p[k:]
				}
				s.n += int64(n)
				s.buf = s.buf[:len(s.buf)+n]
				if s.sinceYield += n; s.sinceYield >= yieldEvery {
					yield.Background()
					s.sinceYield = 0
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
