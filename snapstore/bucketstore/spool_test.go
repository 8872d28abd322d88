package bucketstore_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// spooled returns a spooling Store over f, spooling in dir, closed when
// the test ends.
func spooled(t *testing.T, f *faultBucket, dir string, maxBytes int64, opts ...bucketstore.Option) *bucketstore.Store {
	t.Helper()
	s := bucketstore.New(f.bucket(), append([]bucketstore.Option{bucketstore.WithSpool(dir, maxBytes)}, opts...)...)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

// inBucket returns the IDs of the snapshots in f's bucket, newest first,
// as a viewer without the spool sees them.
func inBucket(t *testing.T, f *faultBucket) []string {
	t.Helper()
	s := bucketstore.New(f.bucket())
	defer s.Close()
	list, err := s.List(context.Background())
	require.NoError(t, err)
	return ids(list)
}

func ids(list []snapstore.Info) []string {
	var out []string
	for _, in := range list {
		out = append(out, in.ID)
	}
	return out
}

// spoolFiles returns the names of the snapshot files in dir: all but the
// owner's lock.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		if e.Name() != ".lock" { // the owner's lock, not a snapshot
			names = append(names, e.Name())
		}
	}
	return names
}

// Save returns at once while the bucket hangs, and the spooled snapshots
// are listed, pending, and served from the spool.
func TestSpoolSaveDoesNotWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultBucket()
		f.set(hang)
		s := spooled(t, f, t.TempDir(), 0)
		start := time.Now()
		for i := range 3 {
			_, err := s.Save(t.Context(), snapshot(fmt.Sprintf("SNAP%d", i), t0.Add(time.Duration(i)*time.Minute)))
			require.NoError(t, err)
		}
		synctest.Wait() // the uploader is blocked in the bucket
		assert.Zero(t, time.Since(start), "no Save waited")
		assert.Equal(t, bucketstore.Stats{Spooled: 3, SpooledBytes: 3 * int64(len("trace of SNAP0"))}, s.Stats())

		list, err := s.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP2", "SNAP1", "SNAP0"}, ids(list))
		page, next, err := s.ListPage(t.Context(), "", 0)
		require.NoError(t, err)
		assert.Empty(t, next)
		require.Len(t, page, 3)
		assert.True(t, page[0].Pending)
		m, err := s.Meta(t.Context(), "SNAP1")
		require.NoError(t, err)
		assert.True(t, m.Pending)
		r, info, err := s.Open(t.Context(), "SNAP1")
		require.NoError(t, err)
		data, err := io.ReadAll(r)
		require.NoError(t, err)
		require.NoError(t, r.Close())
		assert.Equal(t, "trace of SNAP1", string(data))
		assert.Equal(t, "SNAP1", info.ID)
		assert.Empty(t, inBucket(t, f), "a viewer of the bucket sees none yet")

		_, err = s.Save(t.Context(), snapshot("SNAP1", t0))
		assert.ErrorIs(t, err, bucketstore.ErrExists, "an ID in the spool")
		require.NoError(t, s.Close(), "Close does not wait for the hung upload")
		assert.Equal(t, bucketstore.Stats{Spooled: 3, SpooledBytes: 3 * int64(len("trace of SNAP0"))}, s.Stats(),
			"the upload Close stopped is no error")
		_, err = s.Save(t.Context(), snapshot("SNAP9", t0))
		assert.ErrorIs(t, err, bucketstore.ErrClosed)
	})
}

// Everything saved while the bucket is down is uploaded once it is back;
// the retries back off, and the failures are reported first and then once
// a minute.
func TestSpoolUploadsAfterOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultBucket()
		f.set(down)
		s := spooled(t, f, t.TempDir(), 0)
		const n = 20
		for i := range n {
			_, err := s.Save(t.Context(), snapshot(fmt.Sprintf("SNAP%02d", i), t0.Add(time.Duration(i)*time.Second)))
			require.NoError(t, err)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		st := s.Stats()
		assert.Equal(t, n, st.Spooled)
		assert.Zero(t, st.Uploaded)
		// Waits of 0.5-1, 1-2, 2-4, 4-8, 8-16 s, then 15-30 s: 5 minutes
		// hold 14 to 24 attempts.
		assert.GreaterOrEqual(t, st.UploadErrors, int64(14), "retried")
		assert.LessOrEqual(t, st.UploadErrors, int64(25), "backed off")
		reports := handled.Take()
		// Reports come at the first failure after each minute, so 60 to 90
		// s apart.
		assert.GreaterOrEqual(t, len(reports), 4, "the first failure, then once a minute")
		assert.LessOrEqual(t, len(reports), 6, "not every retry")
		for _, err := range reports {
			assert.ErrorIs(t, err, errDown)
		}
		assert.Contains(t, reports[0].Error(), "SNAP00", "the oldest goes first")
		assert.Contains(t, reports[1].Error(), "uploads failed since")

		f.set(up)
		time.Sleep(backoffMax)
		synctest.Wait()
		st = s.Stats()
		assert.Equal(t, bucketstore.Stats{Uploaded: n, UploadErrors: st.UploadErrors}, st)
		got := inBucket(t, f)
		assert.Len(t, got, n, "every snapshot reached the bucket")
		assert.Equal(t, "SNAP19", got[0])
		assert.Equal(t, int64(n), f.traces.Load(), "each uploaded once")
		list, err := s.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, got, ids(list), "no duplicates once uploaded")
	})
}

const backoffMax = 30 * time.Second

// When the spool is full the oldest snapshot is dropped first, even the
// one being uploaded, and the drops are counted, in Stats and the metric.
func TestSpoolFullDropsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultBucket()
		f.set(hang)
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		dir := t.TempDir()
		size := int64(len("trace of SNAP0"))
		s := spooled(t, f, dir, 3*size, bucketstore.WithMeterProvider(mp))
		for i := range 5 {
			_, err := s.Save(t.Context(), snapshot(fmt.Sprintf("SNAP%d", i), t0.Add(time.Duration(i)*time.Minute)))
			require.NoError(t, err)
			synctest.Wait()
		}
		assert.Equal(t, bucketstore.Stats{Dropped: 2, Spooled: 3, SpooledBytes: 3 * size}, s.Stats())
		list, err := s.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP4", "SNAP3", "SNAP2"}, ids(list), "the oldest were dropped")
		assert.Len(t, spoolFiles(t, dir), 6, "two files a snapshot, no more")

		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(t.Context(), &rm))
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					got[m.Name] = d.DataPoints[0].Value
				case metricdata.Gauge[int64]:
					got[m.Name] = d.DataPoints[0].Value
				}
			}
		}
		assert.Equal(t, map[string]int64{
			"otelfr.spool.dropped": 2, "otelfr.spool.uploaded": 0, "otelfr.spool.upload_errors": 0,
			"otelfr.spool.snapshots": 3, "otelfr.spool.size": 3 * size,
		}, got)

		f.set(up)
		synctest.Wait()
		assert.Equal(t, []string{"SNAP4", "SNAP3", "SNAP2"}, inBucket(t, f))
		assert.Equal(t, bucketstore.Stats{Uploaded: 3, Dropped: 2}, s.Stats())
		require.NoError(t, s.Close())
		require.NoError(t, mp.Shutdown(t.Context()))
	})
}

// A Store over a spool that a previous process left uploads it, removing
// what a crash left half written, and recognizes a snapshot whose upload
// finished before the crash removed it from the spool.
func TestSpoolRestart(t *testing.T) {
	f := newFaultBucket()
	f.set(hang)
	dir := t.TempDir()
	first := bucketstore.New(f.bucket(), bucketstore.WithSpool(dir, 0))
	for i, id := range []string{"OLD", "UPLOADED", "CONFLICT", "NEW"} {
		_, err := first.Save(t.Context(), snapshot(id, t0.Add(time.Duration(i)*time.Minute)))
		require.NoError(t, err)
	}
	require.NoError(t, first.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ORPHAN.trace"), []byte("no metadata"), 0o600))

	f.set(up)
	direct := bucketstore.New(f.bucket())
	defer direct.Close()
	_, err := direct.Save(t.Context(), snapshot("UPLOADED", t0.Add(time.Minute)))
	require.NoError(t, err)
	other := snapshot("CONFLICT", t0.Add(2*time.Minute))
	other.Data = []byte("another trace")
	_, err = direct.Save(t.Context(), other)
	require.NoError(t, err)

	second := bucketstore.New(f.bucket(), bucketstore.WithSpool(dir, 0))
	require.NoError(t, second.Shutdown(t.Context()), "the spool drained")
	assert.Empty(t, spoolFiles(t, dir))
	assert.Equal(t, bucketstore.Stats{Uploaded: 3, Dropped: 1, UploadErrors: 1}, second.Stats())
	assert.Equal(t, []string{"NEW", "CONFLICT", "UPLOADED", "OLD"}, inBucket(t, f))
	r, _, err := direct.Open(t.Context(), "CONFLICT")
	require.NoError(t, err)
	data, _ := io.ReadAll(r)
	require.NoError(t, r.Close())
	assert.Equal(t, "another trace", string(data), "the bucket's snapshot is kept")
	errs := handled.Take()
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "dropped spooled CONFLICT")
}

// Shutdown gives up when its context ends while an upload hangs, and
// leaves the snapshot in the spool; later calls return the same.
func TestSpoolShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultBucket()
		f.set(hang)
		dir := t.TempDir()
		s := bucketstore.New(f.bucket(), bucketstore.WithSpool(dir, 0))
		_, err := s.Save(t.Context(), snapshot("SNAP1", t0))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err = s.Shutdown(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 5*time.Second, time.Since(start), "returned at the deadline")
		assert.Equal(t, err, s.Shutdown(t.Context()), "idempotent")
		assert.Equal(t, err, s.Close())
		assert.Equal(t, []string{"SNAP1.json", "SNAP1.trace"}, spoolFiles(t, dir), "left for the next process")
		assert.Zero(t, s.Stats().UploadErrors, "the upload Shutdown stopped is no error")
	})
}

// Spans added to a spooled snapshot reach the bucket with it, whether
// added before its upload began or while it is in flight.
func TestSpoolAddSpans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultBucket()
		f.set(hang)
		s := spooled(t, f, t.TempDir(), 0)
		_, err := s.Save(t.Context(), snapshot("SNAP1", t0))
		require.NoError(t, err)
		synctest.Wait() // its upload is in flight, hung
		require.NoError(t, s.AddSpans(t.Context(), "SNAP1", []snapstore.SpanRef{span("a")}))
		_, err = s.Save(t.Context(), snapshot("SNAP2", t0.Add(time.Minute)))
		require.NoError(t, err)
		require.NoError(t, s.AddSpans(t.Context(), "SNAP2", []snapstore.SpanRef{span("b")}))
		m, err := s.Meta(t.Context(), "SNAP2")
		require.NoError(t, err)
		assert.True(t, m.Pending)
		assert.Equal(t, []string{"b"}, spanNames(m.Spans))

		f.set(up)
		synctest.Wait()
		assert.Equal(t, bucketstore.Stats{Uploaded: 2}, s.Stats())
		direct := bucketstore.New(f.bucket())
		defer direct.Close()
		for id, want := range map[string][]string{"SNAP1": {"a"}, "SNAP2": {"b"}} {
			m, err := direct.Meta(t.Context(), id)
			require.NoError(t, err)
			assert.False(t, m.Pending)
			assert.Equal(t, want, spanNames(m.Spans), id)
		}
		require.NoError(t, s.AddSpans(t.Context(), "SNAP1", []snapstore.SpanRef{span("c")}), "uploaded: to the bucket")
		m, err = direct.Meta(t.Context(), "SNAP1")
		require.NoError(t, err)
		assert.Equal(t, []string{"a", "c"}, spanNames(m.Spans))
	})
}

// A page holds the spooled snapshots that sort among the bucket's on it,
// each on one page only.
func TestSpoolListPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultBucket()
		direct := bucketstore.New(f.bucket())
		defer direct.Close()
		for _, i := range []int{0, 2, 4, 6} {
			_, err := direct.Save(t.Context(), snapshot(fmt.Sprintf("SNAP%d", i), t0.Add(time.Duration(i)*time.Minute)))
			require.NoError(t, err)
		}
		f.set(hang)
		s := spooled(t, f, t.TempDir(), 0)
		for _, i := range []int{1, 3, 5, 7} {
			_, err := s.Save(t.Context(), snapshot(fmt.Sprintf("SNAP%d", i), t0.Add(time.Duration(i)*time.Minute)))
			require.NoError(t, err)
		}
		synctest.Wait()
		var pages [][]string
		for tok := ""; ; {
			page, next, err := s.ListPage(t.Context(), tok, 2)
			require.NoError(t, err)
			var got []string
			for _, m := range page {
				got = append(got, fmt.Sprintf("%s%s", m.ID, map[bool]string{true: "*"}[m.Pending]))
			}
			pages = append(pages, got)
			if next == "" {
				break
			}
			tok = next
		}
		assert.Equal(t, [][]string{{"SNAP7*", "SNAP6", "SNAP5*", "SNAP4"}, {"SNAP3*", "SNAP2", "SNAP1*", "SNAP0"}}, pages)
		_, _, err := s.ListPage(t.Context(), "bm90LWEta2V5.AA", 2)
		assert.ErrorIs(t, err, snapstore.ErrBadPageToken)
	})
}

// A spool that cannot be opened fails Open, and every Save of New's Store.
func TestSpoolUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := bucketstore.Open(t.Context(), "mem://", bucketstore.WithSpool(filepath.Join(file, "spool"), 0))
	assert.ErrorContains(t, err, "spool")

	s := bucketstore.New(newFaultBucket().bucket(), bucketstore.WithSpool(filepath.Join(file, "spool"), 0))
	defer s.Close()
	errs := handled.Take()
	require.Len(t, errs, 1)
	_, err = s.Save(t.Context(), snapshot("SNAP1", t0))
	assert.Equal(t, errs[0], err)
	assert.Equal(t, bucketstore.Stats{}, s.Stats())
	assert.True(t, strings.Contains(err.Error(), "spool"))
}

// An upload that hangs without failing is cancelled after a while and
// retried, so that it holds up the spool for a while only.
func TestSpoolUploadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultBucket()
		f.set(hang)
		s := spooled(t, f, t.TempDir(), 0)
		_, err := s.Save(t.Context(), snapshot("SNAP1", t0))
		require.NoError(t, err)
		time.Sleep(5*time.Minute + time.Millisecond)
		synctest.Wait()
		assert.Equal(t, int64(1), s.Stats().UploadErrors)
		errs := handled.Take()
		require.Len(t, errs, 1)
		assert.ErrorIs(t, errs[0], context.DeadlineExceeded)

		f.set(up)
		time.Sleep(time.Second) // the first retry's wait
		synctest.Wait()
		assert.Equal(t, []string{"SNAP1"}, inBucket(t, f))
		assert.Equal(t, int64(1), s.Stats().Uploaded)
	})
}

// A snapshot both spooled and in the bucket, as when its upload finishes
// between reading the bucket and reading the spool, is listed once, as
// spooled.
func TestSpoolNoDuplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultBucket()
		direct := bucketstore.New(f.bucket())
		defer direct.Close()
		_, err := direct.Save(t.Context(), snapshot("SNAP1", t0))
		require.NoError(t, err)
		f.set(hang)
		s := spooled(t, f, t.TempDir(), 0)
		_, err = s.Save(t.Context(), snapshot("SNAP1", t0))
		require.NoError(t, err)
		synctest.Wait()
		list, err := s.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP1"}, ids(list))
		page, _, err := s.ListPage(t.Context(), "", 10)
		require.NoError(t, err)
		require.Len(t, page, 1)
		assert.True(t, page[0].Pending)

		f.set(up)
		synctest.Wait()
		assert.Equal(t, bucketstore.Stats{Uploaded: 1}, s.Stats(), "the same trace: taken as uploaded")
	})
}

// Saves, AddSpans and listings race the uploader; every snapshot reaches
// the bucket with every span added to it.
func TestSpoolConcurrent(t *testing.T) {
	f := newFaultBucket()
	s := bucketstore.New(f.bucket(), bucketstore.WithSpool(t.TempDir(), 0))
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("SNAP%02d", i)
			_, err := s.Save(t.Context(), snapshot(id, t0.Add(time.Duration(i)*time.Second)))
			assert.NoError(t, err)
			for j := range 3 {
				assert.NoError(t, s.AddSpans(t.Context(), id, []snapstore.SpanRef{span(fmt.Sprint(j))}))
				_, err = s.List(t.Context())
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	assert.Equal(t, bucketstore.Stats{Uploaded: n}, s.Stats())
	direct := bucketstore.New(f.bucket())
	defer direct.Close()
	list, err := direct.List(t.Context())
	require.NoError(t, err)
	require.Len(t, list, n)
	for _, in := range list {
		assert.Equal(t, []string{"0", "1", "2"}, spanNames(in.Spans), in.ID)
	}
}

// TestSpoolFreesPagesJustBeforeWriting pins the slow spool write: the
// uploader removed each trace as soon as it was up, and the next snapshot,
// written into the pages just freed, took 27-42 ms where a DirStore took
// 4 (bench/cmd/spoolwrite). The last uploaded traces are now kept a while,
// within the spool's bound, and removed when the store closes.
func TestSpoolFreesPagesJustBeforeWriting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultBucket()
		dir := t.TempDir()
		size := int64(len("trace of SNAP00"))
		s := bucketstore.New(f.bucket(), bucketstore.WithSpool(dir, 7*size))
		for i := range 6 {
			_, err := s.Save(t.Context(), snapshot(fmt.Sprintf("SNAP%02d", i), t0.Add(time.Duration(i)*time.Second)))
			require.NoError(t, err)
			synctest.Wait() // uploaded
		}
		assert.Equal(t, int64(6), s.Stats().Uploaded)
		assert.Len(t, spoolFiles(t, dir), 4, "the last four uploaded traces, kept")

		// The kept traces make room before any spooled snapshot is dropped.
		f.set(down)
		for i := range 7 {
			_, err := s.Save(t.Context(), snapshot(fmt.Sprintf("NEXT%02d", i), t0.Add(time.Minute+time.Duration(i)*time.Second)))
			require.NoError(t, err)
		}
		synctest.Wait()
		st := s.Stats()
		assert.Equal(t, 7, st.Spooled)
		assert.Zero(t, st.Dropped)
		assert.Len(t, spoolFiles(t, dir), 14, "7 snapshots, 2 files each, within the bound")

		f.set(up)
		require.NoError(t, s.Shutdown(t.Context()))
		assert.Empty(t, spoolFiles(t, dir), "uploaded and closed: nothing left")
		reports := handled.Take() // the uploads refused while down
		require.NotEmpty(t, reports)
		for _, err := range reports {
			assert.ErrorContains(t, err, "will retry")
		}
	})
}
