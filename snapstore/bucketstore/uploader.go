package bucketstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/otelfr/otel-flightrecorder/snapstore"
	"go.opentelemetry.io/otel"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// The uploader's retry schedule: after the nth failure in a row it waits
// a random time between half and all of min(backoffBase*2^(n-1),
// backoffMax), so that replicas that lost the bucket together do not
// retry together.
const (
	backoffBase = time.Second
	backoffMax  = 30 * time.Second

	// reportEvery is how often a run of failures is reported to
	// otel.Handle after its first failure.
	reportEvery = time.Minute

	// attemptTimeout bounds one upload, so that a connection that hangs
	// without failing holds up the spool for a while only: a 64 MiB trace
	// at 1 MiB/s takes about a minute.
	attemptTimeout = 5 * time.Minute
)

// errConflict marks a spooled snapshot whose ID the bucket holds with
// another trace: it can never be uploaded.
var errConflict = errors.New("otelfr/bucketstore: the bucket holds another snapshot with this ID")

// upload runs until the spool is empty after Shutdown began, or until
// s.runCtx is cancelled. It uploads the spooled snapshots oldest first.
func (s *Store) upload() {
	defer close(s.done)
	var failures int   // in a row
	var unreported int // failures since the last report
	var lastReport time.Time
	for {
		j, ctx, ok := s.spool.next(s.runCtx)
		if !ok {
			select {
			case <-s.drain:
				return
			default:
			}
			select {
			case <-s.wake:
			case <-s.drain:
			case <-s.runCtx.Done():
				return
			}
			continue
		}
		actx, cancel := context.WithTimeout(untraced(ctx), attemptTimeout)
		traceUp, err := s.put(actx, j)
		cancel()
		if err != nil && s.runCtx.Err() != nil {
			s.spool.abandon(j, traceUp) // stopped: not a failure of the bucket's
			return
		}
		switch s.spool.settle(j, traceUp, err) {
		case uploaded, again:
			failures, unreported = 0, 0
			continue
		case gone:
			if errors.Is(err, errConflict) {
				otel.Handle(fmt.Errorf("otelfr/bucketstore: dropped spooled %s: %w", j.meta.ID, err))
			}
			continue
		}
		failures++
		unreported++
		if now := time.Now(); failures == 1 || now.Sub(lastReport) >= reportEvery {
			if unreported == 1 {
				otel.Handle(fmt.Errorf("otelfr/bucketstore: uploading %s, will retry: %w", j.meta.ID, err))
			} else {
				otel.Handle(fmt.Errorf("otelfr/bucketstore: %d uploads failed since %s, will retry; the latest, of %s: %w",
					unreported, lastReport.Format(time.RFC3339), j.meta.ID, err))
			}
			lastReport, unreported = now, 0
		}
		t := time.NewTimer(backoff(failures))
		select {
		case <-t.C:
		case <-s.runCtx.Done():
			t.Stop()
			return
		}
	}
}

// backoff returns the wait after the nth failure in a row.
func backoff(n int) time.Duration {
	d := backoffMax
	if n <= 5 { // 1s << 5 = 32s > backoffMax
		d = min(backoffMax, backoffBase<<(n-1))
	}
	return d/2 + rand.N(d/2+1)
}

// put writes j's snapshot to the bucket: its trace, streamed from the
// spool, unless already there, then its metadata. It reports whether the
// trace is in the bucket. A trace the bucket holds already is taken for
// this snapshot's, as a process that stopped between uploading and
// removing it from the spool leaves, if its SHA-256 is the same; if not,
// put fails with errConflict.
func (s *Store) put(ctx context.Context, j job) (bool, error) {
	id := j.meta.ID
	mk := metaKey(id, j.meta.TakenAt)
	if !j.traceUp {
		err := s.putTrace(ctx, j.path, id, mk)
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			err = s.sameTrace(ctx, id, j.meta.SHA256, j.path)
		}
		if err != nil {
			return false, err
		}
	}
	meta, err := json.Marshal(j.meta)
	if err != nil {
		return true, err
	}
	if err := s.b.WriteAll(ctx, mk, meta, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return true, fmt.Errorf("otelfr/bucketstore: uploading the metadata of %s: %w", id, err)
	}
	return true, nil
}

func (s *Store) putTrace(ctx context.Context, path, id, mk string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a Writer closed after its context is cancelled writes nothing
	w, err := s.b.NewWriter(ctx, traceKey(id), &blob.WriterOptions{
		ContentType: "application/octet-stream",
		Metadata:    map[string]string{metaKeyAttr: mk},
		IfNotExist:  true,
	})
	if err != nil {
		return fmt.Errorf("otelfr/bucketstore: uploading %s: %w", id, err)
	}
	if err := copyTrace(w, path); err != nil {
		cancel()
		_ = w.Close()
		return fmt.Errorf("otelfr/bucketstore: uploading %s: %w", id, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("otelfr/bucketstore: uploading %s: %w", id, err)
	}
	return nil
}

// sameTrace returns nil if the bucket's trace of id has the SHA-256 sum,
// errConflict if it has another. An empty sum (a snapshot committed
// unhashed, its sum not recorded yet) is the sum of the file at path.
func (s *Store) sameTrace(ctx context.Context, id, sum, path string) error {
	if sum == "" {
		var err error
		if sum, err = hashFile(path); err != nil {
			return fmt.Errorf("otelfr/bucketstore: hashing the spooled trace of %s: %w", id, err)
		}
	}
	_, m, err := s.lookup(ctx, id)
	if err == nil {
		if m.SHA256 == sum {
			return nil
		}
		return fmt.Errorf("%w: %s", errConflict, id)
	}
	if !errors.Is(err, snapstore.ErrNotFound) && !errors.Is(err, errBadMeta) {
		return err
	}
	// The trace without its metadata: compare the trace itself.
	r, err := s.b.NewReader(ctx, traceKey(id), nil)
	if err != nil {
		return fmt.Errorf("otelfr/bucketstore: reading the trace of %s: %w", id, err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("otelfr/bucketstore: reading the trace of %s: %w", id, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("%w: %s", errConflict, id)
	}
	return nil
}
