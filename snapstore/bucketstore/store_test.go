package bucketstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// buckets are the drivers the tests run on: each returns the URL of a new,
// empty bucket.
var buckets = []struct {
	name string
	url  func(t testing.TB) string
}{
	{"mem", func(testing.TB) string { return "mem://" }},
	{"file", func(t testing.TB) string { return fileURL(t.TempDir()) }},
}

// forEachBucket runs f on a new store over each driver; the bucket is
// returned too, for looking behind the store.
func forEachBucket(t *testing.T, f func(t *testing.T, s *bucketstore.Store, b *blob.Bucket), opts ...bucketstore.Option) {
	for _, bk := range buckets {
		t.Run(bk.name, func(t *testing.T) {
			b, err := blob.OpenBucket(t.Context(), bk.url(t))
			require.NoError(t, err)
			s := bucketstore.New(b, opts...)
			t.Cleanup(func() { assert.NoError(t, s.Close()) })
			f(t, s, b)
		})
	}
}

func fileURL(dir string) string { return (&url.URL{Scheme: "file", Path: dir}).String() }

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func snapshot(id string, at time.Time) *otelfr.Snapshot {
	return &otelfr.Snapshot{
		ID:            id,
		Reason:        "latency",
		Data:          []byte("trace of " + id),
		Start:         at.Add(-10 * time.Second),
		End:           at,
		TakenAt:       at,
		WriteDuration: 3 * time.Millisecond,
		MinAge:        10 * time.Second,
		MaxBytes:      1 << 20,
	}
}

func span(name string) snapstore.SpanRef {
	return snapstore.SpanRef{
		TraceID: "0102030405060708090a0b0c0d0e0f10", SpanID: "0102030405060708", Name: name,
		Start: t0, End: t0.Add(time.Second), Reason: "latency", Verdict: "blocked on a mutex",
	}
}

func TestRoundTrip(t *testing.T) {
	forEachBucket(t, func(t *testing.T, s *bucketstore.Store, _ *blob.Bucket) {
		ctx := t.Context()
		snap := snapshot("SNAP1", t0)
		saved, err := s.Save(ctx, snap)
		require.NoError(t, err)
		assert.Equal(t, "SNAP1", saved.ID)
		assert.Equal(t, int64(len(snap.Data)), saved.Size)
		assert.Len(t, saved.SHA256, 64)
		assert.True(t, saved.TakenAt.Equal(t0))
		assert.Empty(t, saved.Path, "not on the local file system")

		list, err := s.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assertSameInfo(t, saved, list[0])

		r, info, err := s.Open(ctx, "SNAP1")
		require.NoError(t, err)
		assertSameInfo(t, saved, info)
		data, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.Equal(t, snap.Data, data)
		_, err = r.Seek(9, io.SeekStart)
		require.NoError(t, err)
		rest, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.Equal(t, "SNAP1", string(rest), "reads after a Seek")
		require.NoError(t, r.Close())

		require.NoError(t, s.AddSpans(ctx, "SNAP1", []snapstore.SpanRef{span("a")}))
		require.NoError(t, s.AddSpans(ctx, "SNAP1", []snapstore.SpanRef{span("b"), span("c")}))
		require.NoError(t, s.AddSpans(ctx, "SNAP1", nil))
		list, err = s.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, []string{"a", "b", "c"}, spanNames(list[0].Spans), "List sees spans added after an earlier List")
		assert.Equal(t, "blocked on a mutex", list[0].Spans[0].Verdict)
		m, err := s.Meta(ctx, "SNAP1")
		require.NoError(t, err)
		assert.Equal(t, []string{"a", "b", "c"}, spanNames(m.Spans))
		page, next, err := s.ListPage(ctx, "", 0)
		require.NoError(t, err)
		assert.Empty(t, next)
		require.Len(t, page, 1)
		assert.Equal(t, m, page[0])
	})
}

func assertSameInfo(t *testing.T, want, got snapstore.Info) {
	t.Helper()
	assert.True(t, want.TakenAt.Equal(got.TakenAt) && want.WindowStart.Equal(got.WindowStart) && want.WindowEnd.Equal(got.WindowEnd))
	want.TakenAt, want.WindowStart, want.WindowEnd = time.Time{}, time.Time{}, time.Time{}
	got.TakenAt, got.WindowStart, got.WindowEnd = time.Time{}, time.Time{}, time.Time{}
	assert.Equal(t, want, got)
}

func spanNames(spans []snapstore.SpanRef) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}

func TestNewestFirst(t *testing.T) {
	times := map[string]time.Time{
		"HOUR0":    t0,
		"HOUR1":    t0.Add(time.Hour),
		"TIE_A":    t0.Add(2 * time.Hour),
		"TIE_B":    t0.Add(2 * time.Hour),
		"NEXTDAY":  t0.Add(25 * time.Hour),
		"NS1":      t0.Add(25*time.Hour + 1),
		"NEXTYEAR": t0.AddDate(1, 0, 0),
		"LASTYEAR": t0.AddDate(-1, 0, 0),
		"EPOCH":    time.Unix(0, 0),
		"ZERO":     {},
	}
	want := []string{"NEXTYEAR", "NS1", "NEXTDAY", "TIE_A", "TIE_B", "HOUR1", "HOUR0", "LASTYEAR", "EPOCH", "ZERO"}
	forEachBucket(t, func(t *testing.T, s *bucketstore.Store, _ *blob.Bucket) {
		ctx := t.Context()
		ids := slices.Clone(want)
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids {
			_, err := s.Save(ctx, snapshot(id, times[id]))
			require.NoError(t, err)
		}
		list, err := s.List(ctx)
		require.NoError(t, err)
		var got []string
		for _, in := range list {
			got = append(got, in.ID)
		}
		assert.Equal(t, want, got, "List")

		got = nil
		pages := 0
		for token := ""; ; {
			page, next, err := s.ListPage(ctx, token, 3)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), 3)
			pages++
			for _, m := range page {
				got = append(got, m.ID)
			}
			if next == "" {
				break
			}
			token = next
		}
		assert.Equal(t, want, got, "ListPage")
		assert.Equal(t, 4, pages)
	})
}

func TestErrors(t *testing.T) {
	forEachBucket(t, func(t *testing.T, s *bucketstore.Store, _ *blob.Bucket) {
		ctx := t.Context()
		_, err := s.Save(ctx, snapshot("SNAP1", t0))
		require.NoError(t, err)

		for _, id := range []string{"UNKNOWN", "SNAP", "SNAP1x"} {
			_, _, err := s.Open(ctx, id)
			assert.ErrorIs(t, err, snapstore.ErrNotFound, "Open(%q)", id)
			_, err = s.Meta(ctx, id)
			assert.ErrorIs(t, err, snapstore.ErrNotFound, "Meta(%q)", id)
			err = s.AddSpans(ctx, id, []snapstore.SpanRef{span("a")})
			assert.ErrorIs(t, err, snapstore.ErrNotFound, "AddSpans(%q)", id)
		}
		for _, id := range []string{"", "../SNAP1", "a/b", "a.b", strings.Repeat("a", 65), "SNAP1.trace"} {
			_, err := s.Save(ctx, snapshot(id, t0))
			assert.ErrorIs(t, err, snapstore.ErrInvalidID, "Save(%q)", id)
			_, _, err = s.Open(ctx, id)
			assert.ErrorIs(t, err, snapstore.ErrInvalidID, "Open(%q)", id)
			_, err = s.Meta(ctx, id)
			assert.ErrorIs(t, err, snapstore.ErrInvalidID, "Meta(%q)", id)
			err = s.AddSpans(ctx, id, nil)
			assert.ErrorIs(t, err, snapstore.ErrInvalidID, "AddSpans(%q)", id)
		}

		_, err = s.Save(ctx, snapshot("SNAP1", t0.Add(time.Hour)))
		assert.ErrorIs(t, err, bucketstore.ErrExists, "a second Save of one ID")
		list, err := s.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1, "the failed Save left nothing")
		assert.True(t, list[0].TakenAt.Equal(t0))

		_, _, err = s.ListPage(ctx, "!!", 1)
		assert.ErrorIs(t, err, snapstore.ErrBadPageToken)
	})
}

func TestContextCanceled(t *testing.T) {
	forEachBucket(t, func(t *testing.T, s *bucketstore.Store, _ *blob.Bucket) {
		_, err := s.Save(t.Context(), snapshot("SNAP1", t0))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = s.Save(ctx, snapshot("SNAP2", t0))
		assert.ErrorIs(t, err, context.Canceled, "Save")
		_, err = s.List(ctx)
		assert.ErrorIs(t, err, context.Canceled, "List")
		_, _, err = s.ListPage(ctx, "", 1)
		assert.ErrorIs(t, err, context.Canceled, "ListPage")
		_, _, err = s.Open(ctx, "SNAP1")
		assert.ErrorIs(t, err, context.Canceled, "Open")
		err = s.AddSpans(ctx, "SNAP1", []snapstore.SpanRef{span("a")})
		assert.ErrorIs(t, err, context.Canceled, "AddSpans")
		_, _, err = s.Open(t.Context(), "SNAP2")
		assert.ErrorIs(t, err, snapstore.ErrNotFound, "the canceled Save wrote nothing")
	})
}

// The trace object is written once: AddSpans rewrites only the metadata.
func TestTraceNeverRewritten(t *testing.T) {
	forEachBucket(t, func(t *testing.T, s *bucketstore.Store, b *blob.Bucket) {
		ctx := t.Context()
		_, err := s.Save(ctx, snapshot("SNAP1", t0))
		require.NoError(t, err)
		traceKey, metaKey := keys(t, b)
		before, err := b.Attributes(ctx, traceKey)
		require.NoError(t, err)
		metaBefore, err := b.Attributes(ctx, metaKey)
		require.NoError(t, err)
		for i := range 5 {
			time.Sleep(2 * time.Millisecond) // so that a rewrite shows in ModTime
			require.NoError(t, s.AddSpans(ctx, "SNAP1", []snapstore.SpanRef{span(fmt.Sprint(i))}))
		}
		after, err := b.Attributes(ctx, traceKey)
		require.NoError(t, err)
		assert.Equal(t, before.ModTime, after.ModTime, "the trace's modification time")
		assert.Equal(t, before.ETag, after.ETag)
		data, err := b.ReadAll(ctx, traceKey)
		require.NoError(t, err)
		assert.Equal(t, "trace of SNAP1", string(data))
		metaAfter, err := b.Attributes(ctx, metaKey)
		require.NoError(t, err)
		assert.Greater(t, metaAfter.Size, metaBefore.Size, "the metadata was rewritten")
		k2, m2 := keys(t, b)
		assert.Equal(t, []string{traceKey, metaKey}, []string{k2, m2}, "at the same keys")
	})
}

// keys returns the keys of the trace and metadata of the bucket's one
// snapshot, checking the layout.
func keys(t *testing.T, b *blob.Bucket) (trace, meta string) {
	t.Helper()
	var all []string
	it := b.List(nil)
	for {
		o, err := it.Next(t.Context())
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		all = append(all, o.Key)
	}
	require.Len(t, all, 2, "%q", all)
	assert.Equal(t, "otelfr/v1/trace/SNAP1.trace", all[1])
	assert.Regexp(t, `^otelfr/v1/meta/\d{19}-20261201T100000Z-SNAP1\.json$`, all[0])
	return all[1], all[0]
}

// A trace whose metadata is not written, as a Save interrupted between its
// two writes leaves, is neither listed nor served.
func TestIncompleteSaveHidden(t *testing.T) {
	forEachBucket(t, func(t *testing.T, s *bucketstore.Store, b *blob.Bucket) {
		ctx := t.Context()
		_, err := s.Save(ctx, snapshot("SNAP1", t0))
		require.NoError(t, err)
		_, metaKey := keys(t, b)
		require.NoError(t, b.Delete(ctx, metaKey))
		list, err := s.List(ctx)
		require.NoError(t, err)
		assert.Empty(t, list)
		_, _, err = s.Open(ctx, "SNAP1")
		assert.ErrorIs(t, err, snapstore.ErrNotFound)
		assert.ErrorIs(t, s.AddSpans(ctx, "SNAP1", []snapstore.SpanRef{span("a")}), snapstore.ErrNotFound)
	})
}

// Keys that are not the store's, under its prefix or not, are left out;
// metadata that cannot be read is reported.
func TestForeignKeys(t *testing.T) {
	forEachBucket(t, func(t *testing.T, s *bucketstore.Store, b *blob.Bucket) {
		ctx := t.Context()
		_, err := s.Save(ctx, snapshot("SNAP1", t0))
		require.NoError(t, err)
		for key, data := range map[string]string{
			"README":                       "not ours",
			"otelfr/v1/meta/README":        "not ours",
			"otelfr/v1/meta/x-y-z.json":    "not ours",
			"otelfr/v2/meta/whatever.json": "{}",
			"otelfr/v1/meta/0000000000000000000-20261201T100000Z-BAD.json": "not json",
		} {
			require.NoError(t, b.WriteAll(ctx, key, []byte(data), nil))
		}
		list, err := s.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, "SNAP1", list[0].ID)
		errs := handled.Take()
		require.Len(t, errs, 1)
		assert.Contains(t, errs[0].Error(), "BAD")
	})
}

func TestConcurrent(t *testing.T) {
	forEachBucket(t, func(t *testing.T, s *bucketstore.Store, _ *blob.Bucket) {
		ctx := t.Context()
		_, err := s.Save(ctx, snapshot("SHARED", t0))
		require.NoError(t, err)
		const n = 8
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				id := fmt.Sprintf("SNAP%d", i)
				_, err := s.Save(ctx, snapshot(id, t0.Add(time.Duration(i)*time.Minute)))
				assert.NoError(t, err)
				assert.NoError(t, s.AddSpans(ctx, id, []snapstore.SpanRef{span(id)}))
				assert.NoError(t, s.AddSpans(ctx, "SHARED", []snapstore.SpanRef{span(id)}))
				_, err = s.List(ctx)
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		list, err := s.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, n+1)
		for _, in := range list {
			if in.ID == "SHARED" {
				assert.Len(t, in.Spans, n, "no AddSpans lost")
			} else {
				assert.Equal(t, []string{in.ID}, spanNames(in.Spans))
			}
		}
	})
}

func TestResource(t *testing.T) {
	res := resource.NewSchemaless(
		attribute.String("service.name", "checkout"),
		attribute.String("service.namespace", "shop"),
		attribute.String("service.version", "1.2.3"),
		attribute.String("service.instance.id", "checkout-7d9f-abcde"),
		attribute.String("host.name", "node-3"),
		attribute.String("k8s.pod.name", "checkout-7d9f-abcde"),
		attribute.String("k8s.namespace.name", "prod"),
		attribute.String("deployment.environment.name", "prod"),
	)
	want := snapstore.Resource{
		ServiceName: "checkout", ServiceNamespace: "shop", ServiceVersion: "1.2.3",
		ServiceInstanceID: "checkout-7d9f-abcde", HostName: "node-3",
		K8sPodName: "checkout-7d9f-abcde", K8sNamespaceName: "prod",
	}
	t.Run("given", func(t *testing.T) {
		forEachBucket(t, func(t *testing.T, s *bucketstore.Store, b *blob.Bucket) {
			ctx := t.Context()
			_, err := s.Save(ctx, snapshot("SNAP1", t0))
			require.NoError(t, err)
			m, err := s.Meta(ctx, "SNAP1")
			require.NoError(t, err)
			assert.Equal(t, want, m.Resource)
			page, _, err := s.ListPage(ctx, "", 1)
			require.NoError(t, err)
			require.Len(t, page, 1)
			assert.Equal(t, want, page[0].Resource)

			_, metaKey := keys(t, b)
			raw, err := b.ReadAll(ctx, metaKey)
			require.NoError(t, err)
			assert.Contains(t, string(raw), `"resource":{"service.name":"checkout","service.namespace":"shop"`, "keyed by attribute name")
		}, bucketstore.WithResource(res))
	})

	t.Run("default", func(t *testing.T) {
		forEachBucket(t, func(t *testing.T, s *bucketstore.Store, _ *blob.Bucket) {
			_, err := s.Save(t.Context(), snapshot("SNAP1", t0))
			require.NoError(t, err)
			m, err := s.Meta(t.Context(), "SNAP1")
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(m.Resource.ServiceName, "unknown_service:"), "resource.Default: %q", m.Resource.ServiceName)
		}, bucketstore.WithResource(nil))
	})
}

func TestOpenURL(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := bucketstore.Open(ctx, fileURL(dir)+"?prefix=team-a/")
	require.NoError(t, err)
	_, err = s.Save(ctx, snapshot("SNAP1", t0))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err = s.List(ctx)
	assert.Error(t, err, "List after Close")

	s, err = bucketstore.Open(ctx, fileURL(dir))
	require.NoError(t, err)
	defer s.Close()
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "the prefix parameter keeps the store under team-a/")

	_, err = bucketstore.Open(ctx, "nosuch://bucket")
	assert.ErrorContains(t, err, "nosuch")
}

// Save hands the trace to the bucket as given: large traces round trip.
func TestLargeTrace(t *testing.T) {
	forEachBucket(t, func(t *testing.T, s *bucketstore.Store, _ *blob.Bucket) {
		snap := snapshot("BIG", t0)
		snap.Data = bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
		_, err := s.Save(t.Context(), snap)
		require.NoError(t, err)
		r, _, err := s.Open(t.Context(), "BIG")
		require.NoError(t, err)
		defer r.Close()
		end, err := r.Seek(-16, io.SeekEnd)
		require.NoError(t, err)
		assert.Equal(t, int64(len(snap.Data)-16), end)
		tail, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.Equal(t, "0123456789abcdef", string(tail))
		_, err = r.Seek(0, io.SeekStart)
		require.NoError(t, err)
		all, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(snap.Data, all))
	})
}

// A Save whose metadata write fails removes its trace, so that the ID can
// be saved again.
func TestSaveFailureRemovesTrace(t *testing.T) {
	dir := t.TempDir()
	s, err := bucketstore.Open(t.Context(), fileURL(dir))
	require.NoError(t, err)
	defer s.Close()
	// A file where the metadata directory goes fails every metadata write.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "otelfr", "v1"), 0o700))
	blocker := filepath.Join(dir, "otelfr", "v1", "meta")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))

	_, err = s.Save(t.Context(), snapshot("SNAP1", t0))
	require.Error(t, err)
	assert.NotErrorIs(t, err, bucketstore.ErrExists)
	_, err = os.Stat(filepath.Join(dir, "otelfr", "v1", "trace", "SNAP1.trace"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "the trace was removed")

	require.NoError(t, os.Remove(blocker))
	_, err = s.Save(t.Context(), snapshot("SNAP1", t0))
	require.NoError(t, err, "the ID can be saved again")
	r, _, err := s.Open(t.Context(), "SNAP1")
	require.NoError(t, err)
	require.NoError(t, r.Close())
}
