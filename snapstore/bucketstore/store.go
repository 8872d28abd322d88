package bucketstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/otelfr/otel-flightrecorder/internal/yield"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

var (
	// ErrExists is returned by Save for an ID whose trace the bucket
	// already holds: a trace object is written once and never replaced.
	ErrExists = errors.New("otelfr/bucketstore: snapshot exists")

	// ErrClosed is returned by Save on a spooling Store after Close or
	// Shutdown began.
	ErrClosed = errors.New("otelfr/bucketstore: store closed")

	// ErrSpoolBusy is returned by Open when another Store, in this process
	// or another, uses the spool directory given to [WithSpool]: a spool
	// has one owner at a time, released when its Store is closed or its
	// process ends. (OpenStore then takes another directory.)
	ErrSpoolBusy = errors.New("otelfr/bucketstore: spool directory in use")
)

const (
	// DefaultPageSize is ListPage's page size when it is given n <= 0.
	DefaultPageSize = 50

	// listPageSize is List's page size. Services return at most 1000 keys
	// a request whatever is asked; fileblob walks the directory tree from
	// the start for every page, so fewer pages list faster.
	listPageSize = 10_000

	// readers bounds the metadata objects read at once by a listing.
	readers = 16
)

// Store is an [snapstore.Store] over a bucket of object storage. See the
// package documentation for its key layout and guarantees. It is safe for
// concurrent use.
type Store struct {
	b   *blob.Bucket
	res snapstore.Resource

	locks idLocks // serializes AddSpans per snapshot

	cacheMu sync.Mutex
	cache   map[string]cached // by metadata key

	// With WithSpool: the spool, or the error opening it; the uploader's
	// context, cancelled to stop it; drain, closed when Shutdown begins;
	// wake, to tell it of a new snapshot; done, closed when it returns.
	spool    *spool
	spoolErr error
	runCtx   context.Context
	stop     context.CancelFunc
	drain    chan struct{}
	wake     chan struct{}
	done     chan struct{}
	reg      metric.Registration
	closed   atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

var (
	_ snapstore.Store = (*Store)(nil)
	_ snapstore.Pager = (*Store)(nil)
)

// cached is a metadata object as read, valid while a listing reports the
// same size, modification time and MD5.
type cached struct {
	size int64
	mod  time.Time
	md5  []byte
	meta snapstore.Info
}

// Open returns a Store over the bucket that urlstr names, opened with
// [blob.OpenBucket]: the scheme (s3, gs, azblob, file, mem) picks the
// driver, which the program must have linked with a blank import (see the
// package documentation); the query may set a key prefix with
// prefix=DIR/ besides the driver's parameters. Open does not write to the
// bucket and need not reach it: an unreachable bucket is reported by the
// first operation. The Store owns the bucket: [Store.Close] closes it.
// With [WithSpool], Open fails if the spool directory cannot be created
// or read.
func Open(ctx context.Context, urlstr string, opts ...Option) (*Store, error) {
	b, err := blob.OpenBucket(ctx, urlstr)
	if err != nil {
		return nil, fmt.Errorf("otelfr/bucketstore: opening bucket: %w", err)
	}
	s := newStore(b, newConfig(opts))
	if s.spoolErr != nil {
		err := s.spoolErr
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// New returns a Store over b, for a bucket opened otherwise than by URL:
// with a client configured in code, or wrapped by [blob.PrefixedBucket].
// The Store owns b: [Store.Close] closes it. With [WithSpool], New starts
// the uploader, which Close or Shutdown stops; if the spool cannot be
// opened, New reports the error to otel.Handle and every Save returns it
// ([Open] returns it instead).
func New(b *blob.Bucket, opts ...Option) *Store {
	s := newStore(b, newConfig(opts))
	if s.spoolErr != nil {
		otel.Handle(s.spoolErr)
	}
	return s
}

func newStore(b *blob.Bucket, c config) *Store {
	s := &Store{b: b, res: resourceOf(c.res), cache: map[string]cached{}}
	if c.spoolDir == "" {
		return s
	}
	s.spool, s.spoolErr = openSpool(c.spoolDir, c.spoolBytes)
	if s.spoolErr != nil {
		return s
	}
	s.runCtx, s.stop = context.WithCancel(context.Background())
	s.drain = make(chan struct{})
	s.wake = make(chan struct{}, 1)
	s.done = make(chan struct{})
	reg, err := s.registerMetrics(c.mp)
	if err != nil {
		otel.Handle(fmt.Errorf("otelfr/bucketstore: registering metrics: %w", err))
	}
	s.reg = reg
	go s.upload()
	return s
}

// Close stops the uploader at once, leaving in the spool what it holds
// for the next Store over the same spool directory, then closes the
// bucket. Operations after Close fail. Close and Shutdown are idempotent:
// later calls return the first call's result.
func (s *Store) Close() error {
	s.shutdown(context.Background(), false)
	return s.closeErr
}

// Shutdown lets the uploader upload what the spool holds, retrying with
// backoff, until the spool is empty or ctx is done; then it cancels the
// upload in flight, and closes the bucket. It returns ctx.Err() if ctx
// ended first, the snapshots not uploaded being left in the spool for the
// next Store over its directory. It relies on the bucket's driver
// returning promptly once an upload's context is cancelled, as
// gocloud.dev's drivers do. Operations after Shutdown fail. Without a
// spool, Shutdown is Close. Shutdown and Close are idempotent: later calls
// return the first call's result.
func (s *Store) Shutdown(ctx context.Context) error {
	s.shutdown(ctx, true)
	return s.closeErr
}

// shutdown stops the uploader, letting it empty the spool first until
// ctx is done if drain is set, and closes the bucket.
func (s *Store) shutdown(ctx context.Context, drain bool) {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		var errs []error
		if s.done != nil {
			if !drain {
				s.stop()
			}
			close(s.drain)
			select {
			case <-s.done:
			case <-ctx.Done():
				s.stop()
				<-s.done
				if drain && s.spool.stats().Spooled > 0 {
					errs = append(errs, fmt.Errorf("otelfr/bucketstore: stopping the uploader: %w", ctx.Err()))
				}
			}
			s.stop()
			if s.reg != nil {
				if err := s.reg.Unregister(); err != nil {
					errs = append(errs, fmt.Errorf("otelfr/bucketstore: unregistering metrics: %w", err))
				}
			}
		}
		if err := s.b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("otelfr/bucketstore: closing bucket: %w", err))
		}
		if s.spool != nil {
			s.spool.close()
		}
		s.closeErr = errors.Join(errs...)
	})
}

// Save implements [snapstore.Store]. It writes the trace object, with
// IfNotExist so that it is never replaced, then the metadata object; the
// snapshot is listed and served from the moment the metadata is written.
// It returns [ErrExists] for an ID the bucket holds. When writing the
// metadata fails, it removes the trace; if that fails too, the trace is
// left behind, never listed or served, for the bucket's lifecycle rules.
//
// With [WithSpool], Save writes the snapshot to the spool instead, and
// returns without waiting on the network; the uploader writes it to the
// bucket as above. It returns [ErrExists] for an ID the spool holds; an ID
// the bucket already holds is found by the upload, which drops the
// snapshot and reports it. After Close or Shutdown began it returns
// [ErrClosed].
func (s *Store) Save(ctx context.Context, snap *otelfr.Snapshot) (snapstore.Info, error) {
	if !snapstore.ValidID(snap.ID) {
		return snapstore.Info{}, snapstore.ErrInvalidID
	}
	if err := ctx.Err(); err != nil {
		return snapstore.Info{}, err
	}
	sum := snap.SHA256
	if sum == "" {
		sum = hash(snap.Data)
	}
	m := snapstore.NewInfo(snap, snap.Size(), sum)
	m.Resource = s.res
	if s.spoolErr != nil {
		return snapstore.Info{}, s.spoolErr
	}
	if s.spool != nil {
		return s.spoolSave(m, snap.Data)
	}
	meta, err := json.Marshal(m)
	if err != nil {
		return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: saving %s: %w", snap.ID, err)
	}
	ctx = untraced(ctx)
	mk := metaKey(snap.ID, snap.TakenAt)
	tk := traceKey(snap.ID)
	err = s.b.WriteAll(ctx, tk, snap.Data, &blob.WriterOptions{
		ContentType: "application/octet-stream",
		Metadata:    map[string]string{metaKeyAttr: mk},
		IfNotExist:  true,
	})
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: saving %s: %w", snap.ID, ErrExists)
	}
	if err != nil {
		return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: saving %s: %w", snap.ID, err)
	}
	if err := s.b.WriteAll(ctx, mk, meta, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		err = fmt.Errorf("otelfr/bucketstore: saving %s: %w", snap.ID, err)
		if derr := s.b.Delete(context.WithoutCancel(ctx), tk); derr != nil {
			err = errors.Join(err, fmt.Errorf("otelfr/bucketstore: removing the trace of %s: %w", snap.ID, derr))
		}
		return snapstore.Info{}, err
	}
	return m, nil
}

func (s *Store) spoolSave(m snapstore.Info, data []byte) (snapstore.Info, error) {
	if s.closed.Load() {
		return snapstore.Info{}, ErrClosed
	}
	if err := s.spool.put(m, data); err != nil {
		return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: saving %s: %w", m.ID, err)
	}
	s.wakeUploader()
	return m, nil
}

// wakeUploader tells the uploader that the spool has a new snapshot.
func (s *Store) wakeUploader() {
	select {
	case s.wake <- struct{}{}:
	default: // the uploader is awake, or already told
	}
}

// hash returns the hex SHA-256 of data. It hashes in pieces: one call over
// a whole snapshot cannot be preempted, and would hold up every
// stop-the-world pause while it runs.
func hash(data []byte) string {
	h := sha256.New()
	for len(data) > 0 {
		n := min(len(data), 256<<10)
		h.Write(data[:n])
		data = data[n:]
		yield.Background()
	}
	return hex.EncodeToString(h.Sum(nil))
}

// List implements [snapstore.Store]. It lists every key under the metadata
// prefix, and reads the metadata objects it has not read before or that
// changed since, 16 at a time; a listing does not read the traces. Listing is
// eventually consistent on some services: a snapshot just saved may be
// missing for a moment. With [WithSpool], the list holds the spooled
// snapshots too, each once, in their places; it fails if the bucket
// cannot be listed.
func (s *Store) List(ctx context.Context) ([]snapstore.Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var objs []*blob.ListObject
	for tok := blob.FirstPageToken; ; {
		page, next, err := s.b.ListPage(ctx, tok, listPageSize, &blob.ListOptions{Prefix: metaPrefix})
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("otelfr/bucketstore: listing snapshots: %w", err)
		}
		objs = append(objs, page...)
		if len(next) == 0 {
			break
		}
		tok = next
	}
	metas, err := s.readMetas(ctx, objs, true)
	if err != nil {
		return nil, err
	}
	metas = s.withPending(metas, "", "")
	return metas, nil
}

// ListPage returns at most n snapshots' metadata, newest first, starting
// at token: "" for the newest. It returns the token of the next page, ""
// after the last. It costs one listing request and at most n reads,
// however many snapshots the bucket holds; n <= 0 means
// [DefaultPageSize]. It returns [snapstore.ErrBadPageToken] for a token it did not
// return. A snapshot saved after the first page was read may be missing
// from the pages after it.
//
// With [WithSpool], a page also holds the spooled snapshots that sort
// among the bucket's on it, marked with Info.Pending, so that it may hold
// more than n; each snapshot is on one page only, whether its upload
// finishes between two pages or not.
func (s *Store) ListPage(ctx context.Context, token string, n int) ([]snapstore.Info, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if n <= 0 {
		n = DefaultPageSize
	}
	tok := blob.FirstPageToken
	var after string // the last key of the previous page
	if token != "" {
		var ok bool
		if after, tok, ok = decodeToken(token); !ok {
			return nil, "", snapstore.ErrBadPageToken
		}
	}
	objs, next, err := s.b.ListPage(ctx, tok, n, &blob.ListOptions{Prefix: metaPrefix})
	if err == io.EOF {
		objs, next, err = nil, nil, nil
	}
	if gcerrors.Code(err) == gcerrors.InvalidArgument && token != "" {
		return nil, "", fmt.Errorf("%w: %w", snapstore.ErrBadPageToken, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("otelfr/bucketstore: listing snapshots: %w", err)
	}
	metas, err := s.readMetas(ctx, objs, false)
	if err != nil {
		return nil, "", err
	}
	if len(next) == 0 {
		return s.withPending(metas, after, ""), "", nil
	}
	last := objs[len(objs)-1].Key
	return s.withPending(metas, after, last), encodeToken(last, next), nil
}

// A page token is the last key of its page and the bucket's token, each in
// base64url, joined by a dot.
func encodeToken(last string, tok []byte) string {
	return base64.RawURLEncoding.EncodeToString([]byte(last)) + "." + base64.RawURLEncoding.EncodeToString(tok)
}

func decodeToken(token string) (last string, tok []byte, ok bool) {
	l, t, found := strings.Cut(token, ".")
	if !found {
		return "", nil, false
	}
	lb, err1 := base64.RawURLEncoding.DecodeString(l)
	tok, err2 := base64.RawURLEncoding.DecodeString(t)
	if err1 != nil || err2 != nil || len(tok) == 0 || !strings.HasPrefix(string(lb), metaPrefix) {
		return "", nil, false
	}
	return string(lb), tok, true
}

// withPending merges into metas, the bucket's in key order, the spooled
// snapshots whose keys are after after and, unless upTo is "", at most
// upTo. A snapshot in both, uploaded since the spool was read, appears
// once, as spooled: its spooled copy is the newer.
func (s *Store) withPending(metas []snapstore.Info, after, upTo string) []snapstore.Info {
	if s.spool == nil {
		return metas
	}
	var pending []keyed
	ids := map[string]bool{}
	for _, k := range s.spool.list() {
		if k.key > after && (upTo == "" || k.key <= upTo) {
			pending = append(pending, k)
			ids[k.meta.ID] = true
		}
	}
	if len(pending) == 0 {
		return metas
	}
	all := make([]keyed, 0, len(metas)+len(pending))
	for _, m := range metas {
		if !ids[m.ID] {
			all = append(all, keyed{key: metaKey(m.ID, m.TakenAt), meta: m})
		}
	}
	all = append(all, pending...)
	slices.SortStableFunc(all, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	out := make([]snapstore.Info, len(all))
	for i, k := range all {
		out[i] = k.meta
	}
	return out
}

// readMetas returns the metadata of the snapshots whose metadata objects
// are objs, in the order of objs, leaving out keys not laid out by
// metaKey and objects removed meanwhile; a key with unreadable metadata is
// left out too, and reported to otel.Handle. It reads them from the cache
// when unchanged. With replace, objs is a whole listing and the cache is
// replaced by what it holds, so that it holds no snapshot removed since;
// without, the cache is left as it is.
func (s *Store) readMetas(ctx context.Context, objs []*blob.ListObject, replace bool) ([]snapstore.Info, error) {
	type slot struct {
		key, id string
		ok      bool
		c       cached
	}
	slots := make([]slot, 0, len(objs))
	var todo []int
	s.cacheMu.Lock()
	for _, o := range objs {
		id, ok := idOfMetaKey(o.Key)
		if !ok {
			continue
		}
		sl := slot{key: o.Key, id: id, c: cached{size: o.Size, mod: o.ModTime, md5: o.MD5}}
		if c, ok := s.cache[o.Key]; ok && c.size == o.Size && c.mod.Equal(o.ModTime) && bytes.Equal(c.md5, o.MD5) {
			sl.c.meta, sl.ok = c.meta, true
		} else {
			todo = append(todo, len(slots))
		}
		slots = append(slots, sl)
	}
	s.cacheMu.Unlock()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(readers, len(todo)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(todo) || ctx.Err() != nil {
					return
				}
				sl := &slots[todo[i]]
				m, err := s.readMeta(ctx, sl.key, sl.id)
				switch {
				case err == nil:
					sl.c.meta, sl.ok = m, true
				case errors.Is(err, snapstore.ErrNotFound):
					// removed since the listing
				case ctx.Err() != nil, !errors.Is(err, errBadMeta):
					cancel(err)
					return
				default:
					otel.Handle(err)
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("otelfr/bucketstore: listing snapshots: %w", err)
	}

	metas := make([]snapstore.Info, 0, len(slots))
	fresh := make(map[string]cached, len(slots))
	for _, sl := range slots {
		if sl.ok {
			metas = append(metas, clone(sl.c.meta))
			fresh[sl.key] = sl.c
		}
	}
	if replace {
		s.cacheMu.Lock()
		s.cache = fresh
		s.cacheMu.Unlock()
	}
	return metas, nil
}

// clone returns m with its own Spans, so that callers cannot modify the
// cache.
func clone(m snapstore.Info) snapstore.Info {
	m.Spans = slices.Clone(m.Spans)
	return m
}

// errBadMeta marks a metadata object that is not one the store wrote.
var errBadMeta = errors.New("otelfr/bucketstore: bad snapshot metadata")

// readMeta reads the metadata object key of snapshot id. It returns
// [snapstore.ErrNotFound] if there is none.
// A failed read is tried again twice, for fileblob: it rewrites an
// object's attributes file in place, so a read racing AddSpans can fail.
func (s *Store) readMeta(ctx context.Context, key, id string) (snapstore.Info, error) {
	var b []byte
	var err error
	for try := 1; ; try++ {
		b, err = s.b.ReadAll(ctx, key)
		if err == nil || gcerrors.Code(err) == gcerrors.NotFound || try == 3 || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(time.Duration(try) * 5 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if gcerrors.Code(err) == gcerrors.NotFound {
		return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: snapshot %s: %w", id, snapstore.ErrNotFound)
	}
	if err != nil {
		return snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: reading the metadata of %s: %w", id, err)
	}
	var m snapstore.Info
	if err := json.Unmarshal(b, &m); err != nil {
		return snapstore.Info{}, fmt.Errorf("%w: %s: %w", errBadMeta, key, err)
	}
	if m.ID != id {
		return snapstore.Info{}, fmt.Errorf("%w: %s names %q", errBadMeta, key, m.ID)
	}
	return m, nil
}

// Meta returns the metadata of snapshot id, with the resource of the
// process that took it. It costs two requests and no listing: the trace
// object's attributes name its metadata object. It returns
// [snapstore.ErrNotFound] for an unknown ID or a snapshot whose Save has not
// completed. A spooled snapshot's comes from the spool, marked
// Info.Pending.
func (s *Store) Meta(ctx context.Context, id string) (snapstore.Info, error) {
	if s.spool != nil && snapstore.ValidID(id) && ctx.Err() == nil {
		if m, ok := s.spool.get(id); ok {
			return m, nil
		}
	}
	_, m, err := s.lookup(ctx, id)
	return m, err
}

// lookup returns the key and contents of snapshot id's metadata object.
func (s *Store) lookup(ctx context.Context, id string) (string, snapstore.Info, error) {
	if !snapstore.ValidID(id) {
		return "", snapstore.Info{}, snapstore.ErrInvalidID
	}
	if err := ctx.Err(); err != nil {
		return "", snapstore.Info{}, err
	}
	a, err := s.b.Attributes(ctx, traceKey(id))
	if gcerrors.Code(err) == gcerrors.NotFound {
		return "", snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: snapshot %s: %w", id, snapstore.ErrNotFound)
	}
	if err != nil {
		return "", snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: snapshot %s: %w", id, err)
	}
	key := a.Metadata[metaKeyAttr]
	if got, ok := idOfMetaKey(key); !ok || got != id {
		return "", snapstore.Info{}, fmt.Errorf("%w: the trace of %s names metadata %q", errBadMeta, id, key)
	}
	m, err := s.readMeta(ctx, key, id)
	return key, m, err
}

// Open implements [snapstore.Store]. The reader is the bucket's: it reads
// under ctx, so cancelling ctx fails its later reads, and a Seek costs a
// new range request at the next Read. Info.Path is empty. A spooled
// snapshot is read from its spool file, which stays readable through the
// reader if the upload finishes meanwhile.
func (s *Store) Open(ctx context.Context, id string) (io.ReadSeekCloser, snapstore.Info, error) {
	if s.spool != nil && snapstore.ValidID(id) && ctx.Err() == nil {
		f, m, ok, err := s.spool.open(id)
		if ok {
			return f, m, err
		}
	}
	_, m, err := s.lookup(ctx, id)
	if err != nil {
		return nil, snapstore.Info{}, err
	}
	r, err := s.b.NewReader(ctx, traceKey(id), nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: snapshot %s: %w", id, snapstore.ErrNotFound)
	}
	if err != nil {
		return nil, snapstore.Info{}, fmt.Errorf("otelfr/bucketstore: opening %s: %w", id, err)
	}
	return r, m, nil
}

// AddSpans implements [snapstore.Store]. It rewrites the snapshot's metadata
// object, never its trace. Calls in one process are serialized per
// snapshot; calls for one snapshot from two processes at once may lose
// one's spans, the last write winning, as object storage has no append.
// Spans reach a snapshot from the process that took it, so this does not
// arise with the exporter.
//
// For a spooled snapshot, AddSpans rewrites its spooled metadata, without
// waiting on the network: the spans are uploaded with it, or, if its
// upload is in flight, its metadata is uploaded again after.
func (s *Store) AddSpans(ctx context.Context, id string, spans []snapstore.SpanRef) error {
	if !snapstore.ValidID(id) {
		return snapstore.ErrInvalidID
	}
	if s.spool != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		if ok, err := s.spool.addSpans(id, spans); ok {
			return err
		}
	}
	unlock := s.locks.lock(id)
	defer unlock()
	ctx = untraced(ctx)
	key, m, err := s.lookup(ctx, id)
	if err != nil || len(spans) == 0 {
		return err
	}
	m.Spans = append(m.Spans, spans...)
	meta, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("otelfr/bucketstore: adding spans to %s: %w", id, err)
	}
	if err := s.b.WriteAll(ctx, key, meta, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("otelfr/bucketstore: adding spans to %s: %w", id, err)
	}
	return nil
}

// idLocks is a mutex per key, held while in use.
type idLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	sync.Mutex
	users int
}

// lock locks id's mutex and returns its unlock.
func (l *idLocks) lock(id string) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*idLock{}
	}
	k := l.m[id]
	if k == nil {
		k = &idLock{}
		l.m[id] = k
	}
	k.users++
	l.mu.Unlock()
	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		if k.users--; k.users == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}
