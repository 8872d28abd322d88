package analysis

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPlaceFrame(t *testing.T) {
	const mod = "/root/go/pkg/mod/"
	acme := program{paths: []string{"github.com/acme/shop"}}
	tests := []struct {
		name   string
		prog   program
		frames []Frame
		want   string
	}{
		{"program below the standard library", acme, []Frame{
			{Func: "sync.(*Mutex).Lock"}, {Func: "github.com/acme/shop/cache.(*Cache).Get"}, {Func: "net/http.HandlerFunc.ServeHTTP"},
		}, "github.com/acme/shop/cache.(*Cache).Get"},
		{"program below a library", acme, []Frame{
			{Func: "golang.org/x/sync/semaphore.(*Weighted).notifyWaiters", File: mod + "golang.org/x/sync@v0.24.0/semaphore/semaphore.go"},
			{Func: "golang.org/x/sync/semaphore.(*Weighted).Release", File: mod + "golang.org/x/sync@v0.24.0/semaphore/semaphore.go"},
			{Func: "github.com/acme/shop.(*pool).put"},
		}, "github.com/acme/shop.(*pool).put"},
		{"program below instrumentation", acme, []Frame{
			{Func: "net/http.(*Transport).RoundTrip"},
			{Func: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp.(*Transport).RoundTrip", File: mod + "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp@v0.72.0/transport.go"},
			{Func: "github.com/acme/shop.fetch"},
		}, "github.com/acme/shop.fetch"},
		{"package main", acme, []Frame{{Func: "runtime.gopark"}, {Func: "time.Sleep"}, {Func: "main.main.func1"}}, "main.main.func1"},
		{"a library when no program frame", acme, []Frame{
			{Func: "runtime.gopark"},
			{Func: "golang.org/x/sync/errgroup.(*Group).done", File: mod + "golang.org/x/sync@v0.24.0/errgroup/errgroup.go"},
			{Func: "go.opentelemetry.io/otel/sdk/trace.(*recordingSpan).End"},
		}, "golang.org/x/sync/errgroup.(*Group).done"},
		{"the standard library over instrumentation", acme, []Frame{
			{Func: "go.opentelemetry.io/otel/sdk/trace.(*recordingSpan).End"}, {Func: "internal/poll.runtime_pollWait"}, {Func: "net.(*conn).Read"},
		}, "internal/poll.runtime_pollWait"},
		{"only the runtime", acme, []Frame{{Func: "runtime.gopark"}, {Func: "runtime.goparkunlock"}}, "runtime.gopark"},
		{"a module outside the program", acme, []Frame{
			{Func: "github.com/other/lib.Do", File: "/src/other/lib/do.go"}, {Func: "github.com/acme/shop.run"},
		}, "github.com/acme/shop.run"},
		{"by file: code outside the module cache", program{byFile: true}, []Frame{
			{Func: "google.golang.org/grpc.(*ClientConn).Invoke", File: mod + "google.golang.org/grpc@v1.83.2/call.go"},
			{Func: "example.com/svc/client.(*Client).Reserve", File: "/home/dev/svc/client/client.go"},
		}, "example.com/svc/client.(*Client).Reserve"},
		{"by file: a -trimpath build", program{byFile: true}, []Frame{
			{Func: "google.golang.org/grpc.(*ClientConn).Invoke", File: "google.golang.org/grpc@v1.83.2/call.go"},
			{Func: "example.com/svc/client.(*Client).Reserve", File: "example.com/svc/client/client.go"},
		}, "example.com/svc/client.(*Client).Reserve"},
		{"by file: vendored code is a library", program{byFile: true}, []Frame{
			{Func: "github.com/lib/pq.(*conn).query", File: "/home/dev/svc/vendor/github.com/lib/pq/conn.go"},
			{Func: "example.com/svc.(*Store).Get", File: "/home/dev/svc/store.go"},
		}, "example.com/svc.(*Store).Get"},
		{"otelfr's own packages are instrumentation", program{paths: []string{"github.com/otelfr/otel-flightrecorder"}}, []Frame{
			{Func: "github.com/otelfr/otel-flightrecorder/otelfr.(*span).End"},
			{Func: "github.com/otelfr/otel-flightrecorder/analysis_test.scenario"},
		}, "github.com/otelfr/otel-flightrecorder/analysis_test.scenario"},
		{"empty", acme, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := tt.prog.placeFrame(tt.frames)
			assert.Equal(t, tt.want, f.Func)
		})
	}
}

func TestFuncNames(t *testing.T) {
	assert.Equal(t, "cache.(*Cache).Get", shortFunc("github.com/acme/cache.(*Cache).Get"))
	assert.Equal(t, "main.main", shortFunc("main.main"))
	assert.Equal(t, "yaml.v3.(*Decoder).Decode", shortFunc("gopkg.in/yaml%2ev3.(*Decoder).Decode"))
	assert.Equal(t, "lib.Map[...]", shortFunc("example.com/lib.Map[...]"))
	assert.Equal(t, "github.com/acme/cache", funcPackage("github.com/acme/cache.(*Cache).Get"))
	assert.Equal(t, "internal/poll", funcPackage("internal/poll.(*FD).Read"))
	assert.Equal(t, "example.com/lib", funcPackage("example.com/lib.Map[go.shape.struct { example.com/x.T }]"))
}

func TestWithProgram(t *testing.T) {
	c := newConfig([]Option{WithProgram(" github.com/acme/shop/ ", "")})
	assert.Equal(t, []string{"github.com/acme/shop"}, c.program.paths)
	assert.False(t, c.program.byFile, "an explicit program is the whole program")
	assert.Equal(t, defaultProgram(), newConfig([]Option{WithProgram("")}).program, "no path keeps the default")
}

func TestWhoFrame(t *testing.T) {
	p := program{paths: []string{"github.com/acme/shop"}}
	f, _ := p.whoFrame([]Frame{{Func: "runtime.goready"}, {Func: "net/http.(*wantConn).tryDeliver"}, {Func: "net/http.(*Transport).tryPutIdleConn"}, {Func: "net/http.(*persistConn).readLoop"}, {Func: "runtime.goexit"}})
	assert.Equal(t, "net/http.(*persistConn).readLoop", f.Func, "a library's goroutine is named by its entry")
	f, _ = p.whoFrame([]Frame{{Func: "sync.(*Mutex).Unlock"}, {Func: "github.com/acme/shop.(*Cache).refresh"}, {Func: "github.com/acme/shop.run"}})
	assert.Equal(t, "github.com/acme/shop.(*Cache).refresh", f.Func, "the program's innermost frame")
}
