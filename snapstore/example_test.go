package snapstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// A DirStore serves what it saved, here through the viewer.
func ExampleDirStore() {
	dir, _ := os.MkdirTemp("", "otelfr-example")
	defer os.RemoveAll(dir)
	store, err := snapstore.NewDirStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = store.Save(context.Background(), &otelfr.Snapshot{ID: "EXAMPLE", Data: []byte("trace bytes")})

	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(store)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/snapshots/EXAMPLE.trace")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Header.Get("Content-Disposition"))
	fmt.Println(string(body))
	// Output:
	// attachment; filename="otelfr-EXAMPLE.trace"
	// trace bytes
}

// A snapshot streamed from the flight recorder straight into a DirStore's
// file, unhashed, then hashed where it is stored (the span processor does
// this on a later stage, off the snapshot's path).
func ExampleDirStore_Create() {
	rec, err := otelfr.Start(otelfr.WithMinInterval(0))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())
	dir, err := os.MkdirTemp("", "snapshots")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store, err := snapstore.NewDirStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	w, err := store.Create(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	snap, err := rec.WriteSnapshot(ctx, w, "manual")
	if err != nil {
		w.Abort()
		fmt.Println(err)
		return
	}
	info, err := w.Commit(ctx, snap)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The trace was not hashed on its way: hash it where it is stored,
	// and record the sum.
	r, _, err := store.Open(ctx, info.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	h := sha256.New()
	_, err = io.Copy(h, r)
	r.Close()
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := store.SetSHA256(ctx, info.ID, hex.EncodeToString(h.Sum(nil))); err != nil {
		fmt.Println(err)
		return
	}
	f, stored, err := store.Open(ctx, info.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	f.Close()
	fmt.Println(info.Reason, info.Size == snap.Size(), info.SHA256 == "", len(stored.SHA256))
	// Output: manual true true 64
}
