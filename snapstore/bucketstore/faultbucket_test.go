package bucketstore_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

// errDown is what a faultBucket's writes fail with while it is down.
var errDown = errors.New("fault: bucket down")

// fault is the state of a faultBucket's writes.
type fault int

const (
	up   fault = iota // writes go through
	down              // writes fail with errDown
	hang              // writes wait until their context ends or the fault changes
)

// faultBucket is a gocloud.dev/blob driver over a memblob bucket whose
// writes (objects written, copied or deleted) fail or hang on demand;
// reads and listings always go through. Several *blob.Bucket may share
// one: closing them does not close the memblob bucket.
type faultBucket struct {
	inner *blob.Bucket

	mu      sync.Mutex
	fault   fault
	changed chan struct{} // closed when fault changes

	traces atomic.Int64 // traces written
}

func newFaultBucket() *faultBucket {
	return &faultBucket{inner: memblob.OpenBucket(nil), changed: make(chan struct{})}
}

// bucket returns a new *blob.Bucket over f.
func (f *faultBucket) bucket() *blob.Bucket { return blob.NewBucket(f) }

func (f *faultBucket) set(x fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = x
	close(f.changed)
	f.changed = make(chan struct{})
}

// gate returns nil once writes may go through.
func (f *faultBucket) gate(ctx context.Context) error {
	for {
		f.mu.Lock()
		x, changed := f.fault, f.changed
		f.mu.Unlock()
		switch x {
		case up:
			return ctx.Err()
		case down:
			return errDown
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func (f *faultBucket) ErrorCode(err error) gcerrors.ErrorCode {
	switch {
	case errors.Is(err, errDown):
		return gcerrors.Internal
	case errors.Is(err, context.Canceled):
		return gcerrors.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return gcerrors.DeadlineExceeded
	}
	return gcerrors.Code(err)
}

func (f *faultBucket) As(any) bool             { return false }
func (f *faultBucket) ErrorAs(error, any) bool { return false }

func (f *faultBucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	a, err := f.inner.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return &driver.Attributes{
		ContentType: a.ContentType, Metadata: a.Metadata, CreateTime: a.CreateTime,
		ModTime: a.ModTime, Size: a.Size, MD5: a.MD5, ETag: a.ETag,
	}, nil
}

func (f *faultBucket) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	tok := opts.PageToken
	if len(tok) == 0 {
		tok = blob.FirstPageToken
	}
	size := opts.PageSize
	if size <= 0 {
		size = 1000
	}
	objs, next, err := f.inner.ListPage(ctx, tok, size, &blob.ListOptions{Prefix: opts.Prefix, Delimiter: opts.Delimiter})
	if err == io.EOF {
		return &driver.ListPage{}, nil
	}
	if err != nil {
		return nil, err
	}
	page := &driver.ListPage{NextPageToken: next}
	for _, o := range objs {
		page.Objects = append(page.Objects, &driver.ListObject{Key: o.Key, ModTime: o.ModTime, Size: o.Size, MD5: o.MD5, IsDir: o.IsDir})
	}
	return page, nil
}

func (f *faultBucket) NewRangeReader(ctx context.Context, key string, offset, length int64, _ *driver.ReaderOptions) (driver.Reader, error) {
	r, err := f.inner.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, err
	}
	return faultReader{r}, nil
}

type faultReader struct{ *blob.Reader }

func (r faultReader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{ContentType: r.ContentType(), ModTime: r.ModTime(), Size: r.Size()}
}

func (r faultReader) As(any) bool { return false }

func (f *faultBucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	if err := f.gate(ctx); err != nil {
		return nil, err
	}
	return &faultWriter{ctx: ctx, f: f, key: key, opts: &blob.WriterOptions{
		ContentType: contentType, Metadata: opts.Metadata, IfNotExist: opts.IfNotExist,
	}}, nil
}

// faultWriter buffers what is written, and writes it on Close, once the
// gate lets it through.
type faultWriter struct {
	ctx  context.Context
	f    *faultBucket
	key  string
	opts *blob.WriterOptions
	buf  []byte
}

func (w *faultWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *faultWriter) Close() error {
	if err := w.f.gate(w.ctx); err != nil {
		return err
	}
	if err := w.f.inner.WriteAll(w.ctx, w.key, w.buf, w.opts); err != nil {
		return err
	}
	if strings.HasSuffix(w.key, ".trace") {
		w.f.traces.Add(1)
	}
	return nil
}

func (f *faultBucket) Copy(ctx context.Context, dst, src string, _ *driver.CopyOptions) error {
	if err := f.gate(ctx); err != nil {
		return err
	}
	return f.inner.Copy(ctx, dst, src, nil)
}

func (f *faultBucket) Delete(ctx context.Context, key string, _ *driver.DeleteOptions) error {
	if err := f.gate(ctx); err != nil {
		return err
	}
	return f.inner.Delete(ctx, key)
}

func (f *faultBucket) SignedURL(context.Context, string, *driver.SignedURLOptions) (string, error) {
	return "", errors.New("fault: no signed URLs")
}

func (f *faultBucket) Close() error { return nil }
