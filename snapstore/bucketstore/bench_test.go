package bucketstore_test

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"

	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// BenchmarkList measures listing a bucket of 10,000 snapshots, as the
// viewer's index does, on each driver:
//
//   - List/cold: every key, and every metadata object read (a new Store);
//   - List/warm: every key, the metadata from the Store's cache;
//   - ListPage: the newest 50, one listing request and 50 reads;
//   - keys/all and keys/first50: the listing alone, of every key (what a
//     layout in increasing time order costs to find the newest) and of one
//     page (what the inverted layout costs).
func BenchmarkList(b *testing.B) {
	const n = 10_000
	for _, bk := range buckets {
		b.Run(bk.name, func(b *testing.B) {
			bucket, err := blob.OpenBucket(b.Context(), bk.url(b))
			require.NoError(b, err)
			warm := bucketstore.New(bucket)
			b.Cleanup(func() { require.NoError(b, warm.Close()) })
			fill(b, warm, n, 8)

			b.Run("List/cold", func(b *testing.B) {
				for b.Loop() {
					infos, err := bucketstore.New(bucket).List(b.Context())
					require.NoError(b, err)
					require.Len(b, infos, n)
				}
			})
			b.Run("List/warm", func(b *testing.B) {
				_, err := warm.List(b.Context())
				require.NoError(b, err)
				for b.Loop() {
					infos, err := warm.List(b.Context())
					require.NoError(b, err)
					require.Len(b, infos, n)
				}
			})
			b.Run("ListPage", func(b *testing.B) {
				for b.Loop() {
					page, _, err := bucketstore.New(bucket).ListPage(b.Context(), "", 50)
					require.NoError(b, err)
					require.Len(b, page, 50)
				}
			})
			opts := &blob.ListOptions{Prefix: "otelfr/v1/meta/"}
			b.Run("keys/all", func(b *testing.B) {
				for b.Loop() {
					count := 0
					for tok := blob.FirstPageToken; len(tok) > 0; {
						objs, next, err := bucket.ListPage(b.Context(), tok, n, opts)
						if err == io.EOF {
							break
						}
						require.NoError(b, err)
						count += len(objs)
						tok = next
					}
					require.Equal(b, n, count)
				}
			})
			b.Run("keys/first50", func(b *testing.B) {
				for b.Loop() {
					objs, _, err := bucket.ListPage(b.Context(), blob.FirstPageToken, 50, opts)
					require.NoError(b, err)
					require.Len(b, objs, 50)
				}
			})
		})
	}
}

// fill saves n snapshots a minute apart, from workers goroutines.
func fill(b *testing.B, s *bucketstore.Store, n, workers int) {
	b.Helper()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				snap := snapshot(fmt.Sprintf("SNAP%05d", i), t0.Add(time.Duration(i)*time.Minute))
				_, err := s.Save(b.Context(), snap)
				require.NoError(b, err)
			}
		})
	}
	wg.Wait()
}
