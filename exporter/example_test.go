package exporter_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

func ExampleNewHandler() {
	dir, _ := os.MkdirTemp("", "otelfr-example")
	defer os.RemoveAll(dir)
	store, err := exporter.NewDirStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = store.Save(context.Background(), &otelfr.Snapshot{ID: "EXAMPLE", Data: []byte("trace bytes")})

	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", exporter.NewHandler(store)))
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
