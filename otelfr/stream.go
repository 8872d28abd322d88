package otelfr

import (
	"hash"
	"io"
	"runtime"
)

// streamBufferSize is how much a snapshot written to an io.Writer gathers
// before each write: a file takes a 16 MiB window in 16 writes instead of
// the runtime's one per batch, up to 64 KiB each, without the process
// holding more than two such buffers of it.
const streamBufferSize = 1 << 20

// snapshotStream is the one pass a snapshot makes on its way out of the
// flight recorder: each piece the runtime writes goes through the window
// scan and the SHA-256, and on to dst.
//
// Unbuffered (no hasher), each piece is hashed and passed straight on.
// Buffered, pieces are gathered into 1 MiB buffers, and each full buffer
// is written to dst while the hasher's goroutine hashes it: the SHA-256,
// the costliest step of the pass (about 1 ms per MiB), then overlaps the
// write instead of adding to it. Two buffers take turns.
type snapshotStream struct {
	dst  io.Writer
	hash hash.Hash
	win  windowWriter
	n    int64
	err  error // of dst; the write stops there

	buf    []byte
	hasher *hasher // nil when unbuffered

	sinceYield int
}

// hasher hashes buffers on a goroutine of its own, and hands each back on
// free once hashed.
type hasher struct {
	in   chan []byte
	free chan []byte
	done chan struct{}
}

// newHasher starts a hasher feeding h, with the buffers bufs to take turns.
func newHasher(h hash.Hash, bufs [][]byte) *hasher {
	hs := &hasher{in: make(chan []byte, len(bufs)), free: make(chan []byte, len(bufs)), done: make(chan struct{})}
	for _, b := range bufs {
		hs.free <- b[:0]
	}
	go func() {
		defer close(hs.done)
		for b := range hs.in {
			for p := b; len(p) > 0; {
				// One call over a whole buffer cannot be preempted.
				k := min(len(p), copyChunk)
				h.Write(p[:k])
				p = p[k:]
			}
			hs.free <- b[:0]
		}
	}()
	return hs
}

// buffered makes s gather its writes in bufs, hashing them on a goroutine
// of its own. The caller calls close.
func (s *snapshotStream) buffered(bufs [][]byte) {
	s.hasher = newHasher(s.hash, bufs)
	s.buf = <-s.hasher.free
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
		_, _ = s.win.Write(q) // never fails: its error waits for window
		s.n += int64(len(q))
		s.sinceYield += len(q)
		if s.hasher == nil {
			s.hash.Write(q)
			if _, err := s.dst.Write(q); err != nil {
				s.err = err
				return 0, err
			}
			q = nil
		}
		for len(q) > 0 {
			k := copy(s.buf[len(s.buf):cap(s.buf)], q)
			s.buf = s.buf[:len(s.buf)+k]
			q = q[k:]
			if len(s.buf) == cap(s.buf) {
				if err := s.flush(); err != nil {
					return 0, err
				}
			}
		}
		if s.sinceYield >= yieldEvery {
			// Let the goroutines queued behind this one run: the
			// snapshot is background work, requests are not.
			runtime.Gosched()
			s.sinceYield = 0
		}
	}
	return written, nil
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
		if s.hasher != nil {
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
			if s.hasher == nil {
				if _, werr := s.Write(q); werr != nil {
					return werr
				}
			} else {
				for p := q; len(p) > 0; {
					k := min(len(p), copyChunk)
					_, _ = s.win.Write(p[:k]) // never fails: its error waits for window
					p = p[k:]
				}
				s.n += int64(n)
				s.buf = s.buf[:len(s.buf)+n]
				if s.sinceYield += n; s.sinceYield >= yieldEvery {
					runtime.Gosched()
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

// flush hands the buffer gathered to the hasher and writes it to dst,
// then takes the other buffer once the hasher is done with it.
func (s *snapshotStream) flush() error {
	if s.err != nil || len(s.buf) == 0 {
		return s.err
	}
	b := s.buf
	s.hasher.in <- b
	_, s.err = s.dst.Write(b)
	s.buf = <-s.hasher.free
	return s.err
}

// close flushes what is left and waits for the hasher, which is then done
// with the buffers. It returns the first error of dst.
func (s *snapshotStream) close() error {
	if s.hasher == nil {
		return s.err
	}
	err := s.flush()
	close(s.hasher.in)
	<-s.hasher.done
	return err
}
