package viewer_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// The viewer mounted under /snapshots/, next to the application's own
// routes: browsers get pages, other clients the JSON list and raw traces.
func ExampleNewHandler() {
	dir, err := os.MkdirTemp("", "snapshots")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := snapstore.NewDirStore(dir)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(store,
		viewer.WithBearerToken("s3cret"))))

	for _, accept := range []string{"text/html", "application/json"} {
		req := httptest.NewRequest(http.MethodGet, "/snapshots/", nil)
		req.Header.Set("Accept", accept)
		req.Header.Set("Authorization", "Bearer s3cret")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(accept, "→", rec.Code, rec.Header().Get("Content-Type"))
	}

	req := httptest.NewRequest(http.MethodGet, "/snapshots/", nil) // no token
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println("without the token →", rec.Code)
	// Output:
	// text/html → 200 text/html; charset=utf-8
	// application/json → 200 application/json
	// without the token → 401
}
