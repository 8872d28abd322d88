package bucketstore_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// BenchmarkIndex measures the first page of the viewer's index (GET /
// for a browser, viewer.NewHandler over a Store) over a bucket of 10,000
// snapshots, saved through Store.Save, on a real S3 server (SeaweedFS, as
// testutil.StartS3 runs it; skipped without one) and on fileblob:
//
//   - index/cold: a new Store each time, opened from the URL, so with no
//     metadata cached and, for S3, no connection open: a viewer's first
//     request;
//   - index/warm: the same Store every time, after a first request;
//   - index-List/cold and index-List/warm: the same over a store that
//     hides ListPage, so that the viewer reads it with List, as it does a
//     store that does not page (and did every store before it paged);
//   - List/cold and ListPage/cold: the store calls the index may make,
//     alone, each on a new Store: every snapshot's metadata, or the newest
//     50's.
//
// The targets (issue 14): the first page in under 3 s cold and 500 ms
// warm.
func BenchmarkIndex(b *testing.B) {
	const n = 10_000
	for _, bk := range []struct {
		name    string
		url     func(b *testing.B) string
		workers int // saving the snapshots
	}{
		{"s3", func(b *testing.B) string { return startS3(b).URL() }, 32},
		{"file", func(b *testing.B) string { return fileURL(b.TempDir()) }, 8},
	} {
		b.Run(bk.name, func(b *testing.B) {
			url := bk.url(b)
			warm, err := bucketstore.Open(b.Context(), url)
			require.NoError(b, err)
			b.Cleanup(func() { require.NoError(b, warm.Close()) })
			start := time.Now()
			fill(b, warm, n, bk.workers)
			b.Logf("saved %d snapshots in %v", n, time.Since(start).Round(time.Millisecond))

			index := func(b *testing.B, h http.Handler) {
				req := httptest.NewRequestWithContext(b.Context(), http.MethodGet, "/", nil)
				req.Header.Set("Accept", "text/html")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				require.Equal(b, http.StatusOK, rec.Code, rec.Body.String())
				require.Contains(b, rec.Body.String(), "SNAP09999", "the newest snapshot is on the first page")
			}
			fresh := func(b *testing.B) *bucketstore.Store {
				s, err := bucketstore.Open(b.Context(), url)
				require.NoError(b, err)
				b.Cleanup(func() { require.NoError(b, s.Close()) })
				return s
			}
			for _, how := range []struct {
				name string
				as   func(*bucketstore.Store) snapstore.Store
			}{
				{"index", func(s *bucketstore.Store) snapstore.Store { return s }},
				{"index-List", func(s *bucketstore.Store) snapstore.Store { return listOnly{s} }},
			} {
				b.Run(how.name+"/cold", func(b *testing.B) {
					for b.Loop() {
						index(b, viewer.NewHandler(how.as(fresh(b))))
					}
				})
				b.Run(how.name+"/warm", func(b *testing.B) {
					h := viewer.NewHandler(how.as(warm))
					index(b, h)
					for b.Loop() {
						index(b, h)
					}
				})
			}
			b.Run("List/cold", func(b *testing.B) {
				for b.Loop() {
					infos, err := fresh(b).List(b.Context())
					require.NoError(b, err)
					require.Len(b, infos, n)
				}
			})
			b.Run("ListPage/cold", func(b *testing.B) {
				for b.Loop() {
					page, _, err := fresh(b).ListPage(b.Context(), "", 0)
					require.NoError(b, err)
					require.Len(b, page, bucketstore.DefaultPageSize)
					require.Equal(b, "SNAP09999", page[0].ID)
				}
			})
		})
	}
}

// listOnly is a Store without its ListPage: not a snapstore.Pager.
type listOnly struct{ snapstore.Store }
