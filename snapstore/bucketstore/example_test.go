package bucketstore_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	_ "gocloud.dev/blob/memblob" // mem:// buckets
	_ "gocloud.dev/blob/s3blob"  // s3:// buckets

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

func Example() {
	ctx := context.Background()
	res := resource.NewSchemaless(
		attribute.String("service.name", "checkout"),
		attribute.String("service.instance.id", "checkout-1"),
	)
	store, err := bucketstore.Open(ctx, "mem://", bucketstore.WithResource(res))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"OLDER", "NEWER"} {
		snap := &otelfr.Snapshot{ID: id, Reason: "latency", Data: []byte("trace bytes"), TakenAt: at.Add(time.Duration(i) * time.Minute)}
		if _, err := store.Save(ctx, snap); err != nil {
			fmt.Println(err)
			return
		}
	}
	_ = store.AddSpans(ctx, "NEWER", []snapstore.SpanRef{{Name: "GET /cart", Reason: "latency", Verdict: "blocked on a mutex"}})

	page, _, err := store.ListPage(ctx, "", 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range page {
		fmt.Println(m.ID, m.Resource.ServiceName, m.Resource.ServiceInstanceID, len(m.Spans))
	}

	r, info, err := store.Open(ctx, "NEWER")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	data, _ := io.ReadAll(r)
	fmt.Printf("%s: %q, %s\n", info.ID, data, info.Spans[0].Verdict)
	// Output:
	// NEWER checkout checkout-1 1
	// OLDER checkout checkout-1 0
	// NEWER: "trace bytes", blocked on a mutex
}

// An S3-compatible server such as SeaweedFS, addressed by path, with the
// credentials in the usual AWS environment variables. Open does not
// contact the server.
func ExampleOpen_s3() {
	store, err := bucketstore.Open(context.Background(),
		"s3://snapshots?endpoint=http://127.0.0.1:8333&region=us-east-1&use_path_style=true")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	fmt.Println("opened")
	// Output: opened
}

// With a spool, Save returns once the snapshot is on local disk; the
// uploader moves it to the bucket, and Shutdown waits for the spool to
// empty, up to its context's deadline.
func ExampleWithSpool() {
	ctx := context.Background()
	spool, err := os.MkdirTemp("", "otelfr-spool")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(spool)
	store, err := bucketstore.Open(ctx, "mem://", bucketstore.WithSpool(spool, 64<<20))
	if err != nil {
		fmt.Println(err)
		return
	}
	snap := &otelfr.Snapshot{ID: "SNAP1", Reason: "latency", Data: []byte("trace bytes"), TakenAt: time.Now()}
	if _, err := store.Save(ctx, snap); err != nil {
		fmt.Println(err)
		return
	}

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := store.Shutdown(ctx); err != nil {
		fmt.Println("left in the spool:", err)
	}
	st := store.Stats()
	fmt.Printf("uploaded %d, dropped %d, still spooled %d\n", st.Uploaded, st.Dropped, st.Spooled)
	// Output: uploaded 1, dropped 0, still spooled 0
}

// OpenStore takes a directory path or a bucket URL, as OTELFR_STORE does;
// the shutdown it returns drains a bucket's spool.
func ExampleOpenStore() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "otelfr-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	for _, location := range []string{filepath.Join(dir, "snapshots"), "mem://"} {
		store, shutdown, err := bucketstore.OpenStore(ctx, location, bucketstore.WithSpool(filepath.Join(dir, "spool"), 0))
		if err != nil {
			fmt.Println(err)
			return
		}
		_, err = store.Save(ctx, &otelfr.Snapshot{ID: "SNAP", Reason: "latency", Data: []byte("trace bytes"), TakenAt: time.Now()})
		fmt.Printf("%T %v %v\n", store, err, shutdown(ctx))
	}
	// Output:
	// *snapstore.DirStore <nil> <nil>
	// *bucketstore.Store <nil> <nil>
}
