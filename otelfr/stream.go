package otelfr

import (
	"hash"
	"io"
	"runtime"
)

// streamBufferSize is how much a snapshot written to an io.Writer gathers
// before each write: a file takes a 16 MiB window in 16 writes instead of
// the runtime's one per batch, up to 64 KiB each, without the process
// holding more than this much of it.
const streamBufferSize = 1 << 20

// snapshotStream is the one pass a snapshot makes on its way out of the
// flight recorder: each piece the runtime writes goes through the SHA-256
// and the window scan, and on to dst, gathered in buf when buf has room
// (cap(buf) > 0) and passed straight through otherwise.
type snapshotStream struct {
	dst  io.Writer
	buf  []byte
	hash hash.Hash
	win  windowWriter
	n    int64
	err  error // of dst; the write stops there

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
		s.hash.Write(q)
		_, _ = s.win.Write(q) // never fails: its error waits for window
		s.n += int64(len(q))
		s.sinceYield += len(q)
		if cap(s.buf) == 0 {
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

// flush writes what buf gathered to dst.
func (s *snapshotStream) flush() error {
	if s.err != nil || len(s.buf) == 0 {
		return s.err
	}
	_, s.err = s.dst.Write(s.buf)
	s.buf = s.buf[:0]
	return s.err
}
