package bucketstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/otelfr/otel-flightrecorder/internal/yield"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

var (
	_ snapstore.Creator     = (*Store)(nil)
	_ snapstore.Checksummer = (*Store)(nil)
)

// Create implements [snapstore.Creator]: the trace goes to a file, never
// into memory whole. With [WithSpool] that file is the spool's, and Commit
// returns as Save does, without waiting on the network; the uploader
// streams the trace from it. Without a spool it is a temporary file of
// [os.TempDir], which Commit uploads from and removes. After Close or
// Shutdown began it returns [ErrClosed].
//
// Commit takes a snapshot without its SHA-256 ([snapstore.Checksummer]):
// with a spool, it is spooled without one until [Store.SetSHA256]
// records it; without, Commit hashes the file before uploading it.
func (s *Store) Create(ctx context.Context) (snapstore.SnapshotWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.spoolErr != nil {
		return nil, s.spoolErr
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	dir := os.TempDir()
	if s.spool != nil {
		dir = s.spool.dir
	}
	f, err := os.CreateTemp(dir, spoolTmpGlob)
	if err != nil {
		return nil, fmt.Errorf("otelfr/bucketstore: saving: %w", err)
	}
	return &writer{s: s, f: f}, nil
}

// writer is a snapshot being written into a Store.
type writer struct {
	s *Store
	f *os.File // nil once committed or aborted
	n int64
}

func (w *writer) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, os.ErrClosed
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("otelfr/bucketstore: saving: %w", err)
	}
	return n, nil
}

// Commit implements [snapstore.SnapshotWriter].
func (w *writer) Commit(ctx context.Context, snap *otelfr.Snapshot) (snapstore.Info, error) {
	if w.f == nil {
		return snapstore.Info{}, os.ErrClosed
	}
	f := w.f
	w.f = nil
	defer os.Remove(f.Name()) // renamed into the spool on success
	err := f.Close()
	switch {
	case err != nil:
		err = fmt.Errorf("otelfr/bucketstore: saving %s: %w", snap.ID, err)
	case !snapstore.ValidID(snap.ID):
		err = snapstore.ErrInvalidID
	default:
		err = ctx.Err()
	}
	if err != nil {
		return snapstore.Info{}, err
	}
	m := snapstore.NewInfo(snap, w.n, snap.SHA256)
	m.Resource = w.s.res
	if w.s.spool == nil {
		if m.SHA256 == "" {
			// Commit uploads, far slower than hashing the local file;
			// and a later SetSHA256 would read the trace back from the
			// bucket.
			if m.SHA256, err = hashFile(f.Name()); err != nil {
				return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: saving %s: %w", snap.ID, err)
			}
		}
		return w.s.putFile(ctx, m, f.Name())
	}
	if w.s.closed.Load() {
		return snapstore.Info{}, ErrClosed
	}
	if err := w.s.spool.commit(m, f.Name()); err != nil {
		return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: saving %s: %w", m.ID, err)
	}
	w.s.wakeUploader()
	return m, nil
}

// Abort implements [snapstore.SnapshotWriter].
func (w *writer) Abort() {
	if w.f == nil {
		return
	}
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
	w.f = nil
}

// putFile writes the snapshot whose trace is the file at path straight
// to the bucket, as Save does without a spool.
func (s *Store) putFile(ctx context.Context, m snapstore.Info, path string) (snapstore.Info, error) {
	meta, err := json.Marshal(m)
	if err != nil {
		return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: saving %s: %w", m.ID, err)
	}
	ctx = untraced(ctx)
	mk := metaKey(m.ID, m.TakenAt)
	if err := s.putTrace(ctx, path, m.ID, mk); err != nil {
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: saving %s: %w", m.ID, ErrExists)
		}
		return snapstore.Info{}, err
	}
	if err := s.b.WriteAll(ctx, mk, meta, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		err = fmt.Errorf("otelfr/bucketstore: saving %s: %w", m.ID, err)
		if derr := s.b.Delete(context.WithoutCancel(ctx), traceKey(m.ID)); derr != nil {
			err = errors.Join(err, fmt.Errorf("otelfr/bucketstore: removing the trace of %s: %w", m.ID, derr))
		}
		return snapstore.Info{}, err
	}
	return m, nil
}

// SetSHA256 implements [snapstore.Checksummer], as AddSpans does: for a
// spooled snapshot it rewrites the spooled metadata (uploaded with it, or
// again after an upload in flight), and otherwise the metadata object.
func (s *Store) SetSHA256(ctx context.Context, id, sum string) error {
	if !snapstore.ValidID(id) {
		return snapstore.ErrInvalidID
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.spool != nil {
		if ok, err := s.spool.setSHA256(id, sum); ok {
			return err
		}
	}
	unlock := s.locks.lock(id)
	defer unlock()
	ctx = untraced(ctx)
	key, m, err := s.lookup(ctx, id)
	if err != nil {
		return err
	}
	switch m.SHA256 {
	case sum:
		return nil
	case "":
	default:
		return fmt.Errorf("otelfr/bucketstore: %s: %w", id, snapstore.ErrChecksumMismatch)
	}
	m.SHA256 = sum
	meta, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("otelfr/bucketstore: recording the SHA-256 of %s: %w", id, err)
	}
	if err := s.b.WriteAll(ctx, key, meta, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("otelfr/bucketstore: recording the SHA-256 of %s: %w", id, err)
	}
	return nil
}

// hashFile returns the hex SHA-256 of the file at path.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
		yield.Background() // background work: let queued requests run
	}
}
