package snapstore_test

import (
	"context"
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
