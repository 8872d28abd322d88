package exporter

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/internal/selftrace"
	"github.com/otelfr/otel-flightrecorder/internal/yield"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// ScopeName is the instrumentation scope of attachment spans.
const ScopeName = "github.com/otelfr/otel-flightrecorder/exporter"

// EnvBaseURL names the environment variable that sets the base URL of
// snapshot links; [WithBaseURL] overrides it.
const EnvBaseURL = "OTELFR_SNAPSHOT_BASE_URL"

// DefaultBaseURL is the base URL of snapshot links when neither
// [WithBaseURL] nor EnvBaseURL sets one: the handler of the examples, on
// the loopback address, which suits a program run on the machine of the
// person reading its traces, and no other. An Exporter linking spans to a
// loopback URL from a process that listens elsewhere says so once through
// otel.Handle ([ErrLoopbackURL]).
const DefaultBaseURL = "http://127.0.0.1:8081/snapshots/"

// DefaultTimeout bounds each export of attachment spans.
const DefaultTimeout = 10 * time.Second

// ErrShutdown is returned by [Exporter.Save] and [Exporter.Attach] after
// [Exporter.Shutdown].
var ErrShutdown = errors.New("otelfr/exporter: exporter is shut down")

// Anomaly is what an attachment span is attached to: a finished span
// that a snapshot covers, or, for a snapshot taken on request, the span
// that was current (or nothing, for an attachment in its own trace).
type Anomaly struct {
	// Span is the anomalous span. When nil, the attachment is a child of
	// Parent, or the root of a new trace if Parent is invalid, and carries
	// the Exporter's resource.
	Span   sdktrace.ReadOnlySpan
	Parent trace.SpanContext
	// Reason says why the span is anomalous or the snapshot was taken.
	Reason string
	// Attributes and Events are added to the attachment span: a diagnosis
	// of the span from the snapshot, when one was made.
	Attributes []attribute.KeyValue
	Events     []sdktrace.Event
}

// Exporter stores snapshots and exports, for every anomalous span a
// snapshot covers, an attachment span: a span named
// [otelfr.AttachmentSpanName] in the anomalous span's trace, its child, with
// a span link to it, carrying the snapshot's ID, URL, size, SHA-256, time
// and window, the anomalous span's ID and its anomaly reason. Attachment
// spans carry the anomalous span's resource, so a backend shows them under
// the same service.
//
// An attachment's timestamps say where it sits in its trace, not when the
// snapshot was taken ([otelfr.SnapshotTakenAtKey] says that). The
// attachment of a finished span (Anomaly.Span) lasts 1µs and ends 1µs
// before that span's end (or spans the whole of a span shorter than 2µs),
// so that it never starts before its parent, never ends after it, and
// never makes its trace longer: the snapshot itself is taken after the
// span ends, by up to a coalesce window and the write. The
// attachment of a snapshot taken on request (Anomaly.Span nil) lasts the
// snapshot's write out of the flight recorder, from Info.TakenAt for
// Info.WriteDuration: within Anomaly.Parent when that span is still running
// at Attach (the span in the context given to the processor's Snapshot
// is, until Snapshot returns), or the whole of its own trace when there is
// no parent.
//
// It is safe for concurrent use; exports through the span exporter are
// serialized.
type Exporter struct {
	store    snapstore.Store
	exp      sdktrace.SpanExporter
	baseURL  string
	timeout  time.Duration
	resource *resource.Resource

	loopback bool      // baseURL names a loopback host
	warnOnce sync.Once // ErrLoopbackURL, at the first span linked

	sem      chan struct{} // held while exporting; a channel so waits honour ctx
	stopped  atomic.Bool
	abandon  context.Context // cancelled when Shutdown stops waiting for an export
	cancel   context.CancelFunc
	stopOnce sync.Once
	stopErr  error
}

// Option configures an [Exporter].
type Option interface {
	apply(config) config
}

type config struct {
	baseURL  string
	timeout  time.Duration
	resource *resource.Resource
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

// WithBaseURL sets the URL under which the snapshot handler is reachable by
// the people who read the traces; a snapshot's URL is the base URL followed
// by its ID. It overrides the OTELFR_SNAPSHOT_BASE_URL environment
// variable; the default is [DefaultBaseURL]. A trailing slash is added if
// missing. An unparsable URL is reported to otel.Handle and ignored.
func WithBaseURL(u string) Option {
	return optionFunc(func(c config) config {
		if b, err := normalizeBaseURL(u); err != nil {
			otel.Handle(err)
		} else {
			c.baseURL = b
		}
		return c
	})
}

// WithTimeout bounds each export of attachment spans; an export that takes
// longer is abandoned and its spans dropped. The default is 10s; d <= 0
// keeps the default.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d > 0 {
			c.timeout = d
		}
		return c
	})
}

// WithResource sets the resource of attachment spans that are not
// attached to a finished span (snapshots taken on request); the others
// carry their anomalous span's resource. The default is resource.Default().
func WithResource(r *resource.Resource) Option {
	return optionFunc(func(c config) config {
		if r != nil {
			c.resource = r
		}
		return c
	})
}

func normalizeBaseURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("otelfr/exporter: base URL %q: want an absolute http(s) URL", s)
	}
	out := u.String()
	if !strings.HasSuffix(out, "/") {
		out += "/"
	}
	return out, nil
}

// New returns an Exporter that saves snapshots in store and exports
// attachment spans through exp. The same exporter the application's
// BatchSpanProcessor uses may be passed if it is safe for concurrent use,
// as the OTLP exporters are. exp may be nil: snapshots are then stored and
// linked from the anomalous spans, but no attachment spans are exported.
//
// The Exporter does not shut exp down; whoever created exp does (usually
// the BatchSpanProcessor it was given to).
func New(store snapstore.Store, exp sdktrace.SpanExporter, opts ...Option) *Exporter {
	c := config{baseURL: DefaultBaseURL, timeout: DefaultTimeout, resource: resource.Default()}
	if v, ok := os.LookupEnv(EnvBaseURL); ok && v != "" {
		if b, err := normalizeBaseURL(v); err != nil {
			otel.Handle(fmt.Errorf("%s: %w", EnvBaseURL, err))
		} else {
			c.baseURL = b
		}
	}
	for _, o := range opts {
		c = o.apply(c)
	}
	abandon, cancel := context.WithCancel(context.Background())
	return &Exporter{
		abandon:  abandon,
		cancel:   cancel,
		store:    store,
		exp:      exp,
		baseURL:  c.baseURL,
		loopback: loopbackHost(c.baseURL),
		timeout:  c.timeout,
		resource: c.resource,
		sem:      make(chan struct{}, 1),
	}
}

// URL returns the link to the snapshot with the given ID.
func (e *Exporter) URL(id string) string { return e.baseURL + id }

// SpanURL returns the link to one span of a snapshot: the viewer's span
// page for a browser (package viewer), the raw trace for other clients.
// The first time, if the link is on a loopback address, it checks that the
// people reading the span can open it (see [ErrLoopbackURL]).
func (e *Exporter) SpanURL(id string, span trace.SpanID) string {
	if e.loopback {
		e.warnOnce.Do(func() {
			if err := e.warnLoopback(processListeners); err != nil {
				otel.Handle(err)
			}
		})
	}
	return e.baseURL + id + "?span=" + span.String()
}

// Save stores the snapshot and returns its description.
func (e *Exporter) Save(ctx context.Context, s *otelfr.Snapshot) (snapstore.Info, error) {
	if e.stopped.Load() {
		return snapstore.Info{}, ErrShutdown
	}
	return e.store.Save(ctx, s)
}

// Create begins a snapshot in the store, for its trace to be streamed in
// with [otelfr.Recorder.WriteSnapshot]: straight into the store when it
// implements [snapstore.Creator], and otherwise gathered in memory and
// handed to its Save by Commit. After Shutdown it returns [ErrShutdown],
// and so does a Commit that Shutdown overtook.
func (e *Exporter) Create(ctx context.Context) (snapstore.SnapshotWriter, error) {
	if e.stopped.Load() {
		return nil, ErrShutdown
	}
	if c, ok := e.store.(snapstore.Creator); ok {
		w, err := c.Create(ctx)
		if err != nil {
			return nil, err
		}
		ew := &exporterWriter{SnapshotWriter: w, e: e}
		if _, ok := e.store.(snapstore.Checksummer); !ok {
			ew.hash = sha256.New() // the store needs the sum at Commit
		}
		return ew, nil
	}
	return &bufferWriter{e: e}, nil
}

// exporterWriter is a store's SnapshotWriter that honours Shutdown. For a
// store that is not a snapstore.Checksummer, it hashes the trace on its
// way, to give Commit its SHA-256.
type exporterWriter struct {
	snapstore.SnapshotWriter
	e    *Exporter
	hash hash.Hash // nil: the store takes the trace unhashed
}

func (w *exporterWriter) Write(p []byte) (int, error) {
	n, err := w.SnapshotWriter.Write(p)
	if w.hash != nil {
		hashChunked(w.hash, p[:n])
	}
	return n, err
}

func (w *exporterWriter) Commit(ctx context.Context, s *otelfr.Snapshot) (snapstore.Info, error) {
	if w.e.stopped.Load() {
		w.Abort()
		return snapstore.Info{}, ErrShutdown
	}
	if w.hash != nil && s.SHA256 == "" {
		cp := *s
		cp.SHA256 = hex.EncodeToString(w.hash.Sum(nil))
		s = &cp
	}
	return w.SnapshotWriter.Commit(ctx, s)
}

// hashChunk bounds each call into the hash: one over many megabytes
// cannot be preempted, and would hold up every stop-the-world pause.
const hashChunk = 64 << 10

// hashYieldEvery is how much Checksum hashes between two yields.
const hashYieldEvery = 1 << 20

// hashBuffers are Checksum's read buffers: a storm of snapshots would
// otherwise allocate one MiB for each.
var hashBuffers = sync.Pool{New: func() any {
	b := make([]byte, hashYieldEvery)
	return &b
}}

func hashChunked(h hash.Hash, p []byte) {
	for len(p) > 0 {
		k := min(len(p), hashChunk)
		h.Write(p[:k])
		p = p[k:]
	}
}

// Checksum returns info with its SHA256 filled in. A snapshot that
// [Exporter.Create] committed without its sum (into a
// snapstore.Checksummer, as streamed snapshots are) is hashed now, read
// back from the store in 1 MiB reads, hashed 64 KiB at a time, yielding
// the processor between reads, and its sum recorded in the store; info is returned as it is if
// its SHA256 is set already. The processor calls it off the snapshot
// path, before exporting the snapshot's attachments.
func (e *Exporter) Checksum(ctx context.Context, info snapstore.Info) (snapstore.Info, error) {
	if info.SHA256 != "" {
		return info, nil
	}
	if e.stopped.Load() {
		return info, ErrShutdown
	}
	ctx = selftrace.Untraced(ctx) // a bucket read, say: never an anomaly of its own
	r, _, err := e.store.Open(ctx, info.ID)
	if err != nil {
		return info, fmt.Errorf("otelfr/exporter: hashing snapshot %s: %w", info.ID, err)
	}
	defer r.Close()
	h := sha256.New()
	bp := hashBuffers.Get().(*[]byte)
	defer hashBuffers.Put(bp)
	buf := *bp
	for {
		if err := ctx.Err(); err != nil {
			return info, fmt.Errorf("otelfr/exporter: hashing snapshot %s: %w", info.ID, err)
		}
		n, err := io.ReadFull(r, buf)
		hashChunked(h, buf[:n])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return info, fmt.Errorf("otelfr/exporter: hashing snapshot %s: %w", info.ID, err)
		}
		yield.Background() // background work: let queued requests run
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if c, ok := e.store.(snapstore.Checksummer); ok {
		if err := c.SetSHA256(ctx, info.ID, sum); err != nil {
			return info, fmt.Errorf("otelfr/exporter: recording the SHA-256 of snapshot %s: %w", info.ID, err)
		}
	}
	info.SHA256 = sum
	return info, nil
}

// bufferWriter gathers a snapshot in memory for a store that is not a
// snapstore.Creator. It grows in blocks rather than by copying what it
// holds, and joins them once, in pieces: a memmove of many megabytes
// cannot be preempted, and would hold up every stop-the-world pause.
type bufferWriter struct {
	e      *Exporter
	blocks [][]byte
	n      int
	done   bool
}

const bufferBlock = 1 << 20

func (w *bufferWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, os.ErrClosed
	}
	written := len(p)
	for len(p) > 0 {
		if len(w.blocks) == 0 || len(w.blocks[len(w.blocks)-1]) == bufferBlock {
			w.blocks = append(w.blocks, make([]byte, 0, bufferBlock))
		}
		b := &w.blocks[len(w.blocks)-1]
		k := min(len(p), bufferBlock-len(*b))
		*b = append(*b, p[:k]...)
		p = p[k:]
		w.n += k
	}
	return written, nil
}

func (w *bufferWriter) Commit(ctx context.Context, s *otelfr.Snapshot) (snapstore.Info, error) {
	if w.done {
		return snapstore.Info{}, os.ErrClosed
	}
	w.done = true
	data := make([]byte, 0, w.n)
	for _, b := range w.blocks {
		data = append(data, b...)
		yield.Background() // background work: let queued requests run
	}
	w.blocks = nil
	cp := *s
	cp.Data = data
	return w.e.Save(ctx, &cp)
}

func (w *bufferWriter) Abort() {
	w.done = true
	w.blocks = nil
}

// Open returns a stored snapshot's trace; the caller closes it.
func (e *Exporter) Open(ctx context.Context, id string) (io.ReadSeekCloser, error) {
	r, _, err := e.store.Open(ctx, id)
	return r, err
}

// AddSpans records in the store the spans linked to a stored snapshot.
func (e *Exporter) AddSpans(ctx context.Context, id string, spans []snapstore.SpanRef) error {
	if e.stopped.Load() {
		return ErrShutdown
	}
	return e.store.AddSpans(ctx, id, spans)
}

// Attach exports one attachment span for each anomaly, linking it to the
// stored snapshot described by info. It waits at most the configured
// timeout (and no longer than ctx allows) for the span exporter.
func (e *Exporter) Attach(ctx context.Context, info snapstore.Info, anomalies []Anomaly) error {
	if e.stopped.Load() {
		return ErrShutdown
	}
	if e.exp == nil || len(anomalies) == 0 {
		return nil
	}
	spans := make([]sdktrace.ReadOnlySpan, 0, len(anomalies))
	for _, a := range anomalies {
		spans = append(spans, e.attachment(info, a))
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	defer context.AfterFunc(e.abandon, cancel)()
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		if e.stopped.Load() {
			return ErrShutdown
		}
		return fmt.Errorf("otelfr/exporter: exporting attachments: %w", ctx.Err())
	}
	defer func() { <-e.sem }()
	// Shutdown takes the semaphore after setting stopped: an export that
	// got it first is one Shutdown waits for, and any other sees stopped.
	if e.stopped.Load() {
		return ErrShutdown
	}
	if err := e.exp.ExportSpans(ctx, spans); err != nil {
		return fmt.Errorf("otelfr/exporter: exporting attachments: %w", err)
	}
	return nil
}

func (e *Exporter) attachment(info snapstore.Info, a Anomaly) sdktrace.ReadOnlySpan {
	parent, res := a.Parent, e.resource
	if a.Span != nil {
		parent, res = a.Span.SpanContext(), a.Span.Resource()
	}
	cfg := trace.SpanContextConfig{
		TraceID:    parent.TraceID(),
		SpanID:     randomSpanID(),
		TraceFlags: parent.TraceFlags(),
		TraceState: parent.TraceState(),
	}
	var links []sdktrace.Link
	if parent.IsValid() {
		links = []sdktrace.Link{{SpanContext: parent}}
	} else {
		// A snapshot taken outside any span starts a trace of its own.
		binary.LittleEndian.PutUint64(cfg.TraceID[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(cfg.TraceID[8:], rand.Uint64()|1)
		cfg.TraceFlags = trace.FlagsSampled
	}
	attrs := make([]attribute.KeyValue, 0, 9+len(a.Attributes))
	link, spanID := e.URL(info.ID), ""
	if parent.IsValid() {
		spanID = parent.SpanID().String()
	}
	// Timed as the Exporter's doc says: a child that outlived its finished
	// parent would lengthen the trace, and tracing UIs flag it as clock
	// skew.
	start, end := info.TakenAt, info.TakenAt.Add(info.WriteDuration)
	if a.Span != nil {
		link = e.SpanURL(info.ID, parent.SpanID())
		start, end = insideEnd(a.Span.StartTime(), a.Span.EndTime())
	}
	attrs = append(attrs,
		otelfr.SnapshotIDKey.String(info.ID),
		otelfr.SnapshotURLKey.String(link),
		otelfr.SnapshotSpanIDKey.String(spanID),
		otelfr.SnapshotReasonKey.String(a.Reason),
		otelfr.SnapshotSizeKey.Int64(info.Size),
		otelfr.SnapshotTakenAtKey.String(info.TakenAt.UTC().Format(time.RFC3339Nano)),
		otelfr.SnapshotWindowStartKey.String(info.WindowStart.UTC().Format(time.RFC3339Nano)),
		otelfr.SnapshotWindowEndKey.String(info.WindowEnd.UTC().Format(time.RFC3339Nano)),
	)
	if info.SHA256 != "" { // unknown when hashing the stored trace failed: see Checksum
		attrs = append(attrs, otelfr.SnapshotSHA256Key.String(info.SHA256))
	}
	attrs = append(attrs, a.Attributes...)
	return tracetest.SpanStub{
		Name:        otelfr.AttachmentSpanName,
		SpanContext: trace.NewSpanContext(cfg),
		Parent:      parent,
		SpanKind:    trace.SpanKindInternal,
		StartTime:   start,
		EndTime:     end,
		Attributes:  attrs,
		Events:      a.Events,
		Links:       links,
		Resource:    res,
		InstrumentationScope: instrumentation.Scope{
			Name:    ScopeName,
			Version: otelfr.Version,
		},
	}.Snapshot()
}

// attachmentLength is the duration of the attachment of a finished span,
// which ends as long before that span's end. Not zero: Jaeger takes a
// zero-length span for a negative one and moves its end 1ns on, past its
// parent's, then warns of clock skew. Whole microseconds: backends that
// keep microseconds (Jaeger's own model, Zipkin) still see it inside.
const attachmentLength = time.Microsecond

// insideEnd returns the interval of the attachment of a span that ran from
// start to end: attachmentLength long, attachmentLength before its end, or
// the whole span when it is shorter than both.
func insideEnd(start, end time.Time) (time.Time, time.Time) {
	if end.Sub(start) < 2*attachmentLength {
		return start, end
	}
	return end.Add(-2 * attachmentLength), end.Add(-attachmentLength)
}

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	binary.LittleEndian.PutUint64(sid[:], rand.Uint64()|1) // never the invalid zero ID
	return sid
}

// Shutdown makes later calls to Save and Attach return [ErrShutdown], and
// waits for an export in progress until ctx ends; an export still running
// then is cancelled, and Shutdown returns ctx's error at once. An Attach
// that began before Shutdown either finishes before Shutdown returns or
// exports nothing. Shutdown does not shut down the span exporter or the
// store. It is idempotent: calls after the first return the first call's
// result.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.stopOnce.Do(func() {
		e.stopped.Store(true)
		select {
		case e.sem <- struct{}{}:
			<-e.sem
		case <-ctx.Done():
			e.stopErr = ctx.Err()
		}
		e.cancel() // the export Shutdown gave up on, if any
	})
	return e.stopErr
}
