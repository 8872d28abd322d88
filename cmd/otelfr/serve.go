package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// The environment variables of `otelfr serve`, each read when its flag is
// not given, so that a secret stays out of the process list.
const (
	// envServeToken is the bearer token that -token gives.
	envServeToken = "OTELFR_SERVE_TOKEN"
	// envServeBasicAuth is the USER:PASSWORD that -basic-auth gives.
	envServeBasicAuth = "OTELFR_SERVE_BASIC_AUTH"
)

// defaultServeAddr is where `otelfr serve` listens by default: loopback,
// on the port and under the path that deploy/jaeger/ui.json links to.
const defaultServeAddr = "127.0.0.1:8081"

const (
	// healthTimeout bounds the store call that /healthz makes.
	healthTimeout = 2 * time.Second
	// shutdownGrace is how long the requests in flight at a SIGINT or
	// SIGTERM have to finish before their connections are closed.
	shutdownGrace = 5 * time.Second
)

// limits bound what one client, slow or idle, can hold of the server, as
// the examples' servers do: a request's headers must arrive within
// readHeader and the whole request within read; its response must be
// written within write, a minute, enough for a snapshot of tens of MiB on
// a slow link; a keep-alive connection is closed after idle; headers are
// at most maxHeaderBytes.
var limits = struct {
	readHeader, read, write, idle time.Duration
	maxHeaderBytes                int
}{
	readHeader:     5 * time.Second,
	read:           10 * time.Second,
	write:          time.Minute,
	idle:           time.Minute,
	maxHeaderBytes: 64 << 10,
}

const serveUsage = `usage: otelfr serve [-store STORE] [-addr HOST:PORT] [-token TOKEN | -basic-auth USER:PASSWORD | -insecure-no-auth]

Serves the viewer's pages and data for every snapshot in STORE under
/snapshots/, a health check at /healthz, and a redirect to /snapshots/ at /.
`

// serve is `otelfr serve`: it serves until ctx ends, then shuts down
// gracefully, and returns the exit status.
func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("otelfr serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, serveUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	location := fs.String("store", "", "the store to serve: "+storeUsage+" (default $"+bucketstore.EnvStore+")")
	addr := fs.String("addr", defaultServeAddr, "the address to listen on; port 0 picks a free port")
	token := fs.String("token", "", "require this bearer token on every route but /healthz (default $"+envServeToken+")")
	basic := fs.String("basic-auth", "", "require these basic credentials, USER:PASSWORD, on every route but /healthz (default $"+envServeBasicAuth+")")
	noAuth := fs.Bool("insecure-no-auth", false, "serve a non-loopback address without authentication, for a server behind a proxy that authenticates every request")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageError := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "otelfr serve: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q\n%s", fs.Arg(0), serveUsage)
	}
	if *location == "" {
		*location = os.Getenv(bucketstore.EnvStore)
	}
	if *location == "" {
		return usageError("no store: give -store DIR or -store URL, or set %s", bucketstore.EnvStore)
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return usageError("-addr: %v", err)
	}
	auth, err := authOption(*token, *basic, *noAuth)
	if err != nil {
		return usageError("%v", err)
	}
	if auth == nil && !*noAuth && !loopbackAddr(*addr) {
		return usageError("refusing to serve snapshots on %s without authentication: it is not a loopback address, "+
			"and snapshots hold stack traces and log messages. Give -token or -basic-auth (or set %s or %s), "+
			"or put the server behind a proxy that authenticates every request and give -insecure-no-auth",
			printable(*addr), envServeToken, envServeBasicAuth)
	}

	logger := log.New(stderr, "otelfr serve: ", 0)
	store, closeStore, shown, err := openStore(ctx, *location)
	if err != nil {
		logger.Print(describeOpenError(*location, err))
		return exitError
	}
	ln, err := net.Listen("tcp", *addr)
	if err == nil && auth == nil && !*noAuth && !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
		ln.Close()
		err = fmt.Errorf("%s resolved to %s, not a loopback address: give -token or -basic-auth", *addr, ln.Addr())
	}
	if err != nil {
		logger.Print(err)
		return closed(logger, closeStore, exitError)
	}

	var opts []viewer.Option
	if auth != nil {
		opts = append(opts, auth)
	}
	srv := &http.Server{
		Handler:           serveMux(store, logger, opts...),
		ReadHeaderTimeout: limits.readHeader,
		ReadTimeout:       limits.read,
		WriteTimeout:      limits.write,
		IdleTimeout:       limits.idle,
		MaxHeaderBytes:    limits.maxHeaderBytes,
		ErrorLog:          logger,
	}
	// The one line at start, which scripts read for the address (with
	// port 0, the port picked): keep its format.
	logger.Printf("serving http://%s/snapshots/ from %s", ln.Addr(), shown)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		logger.Print(err)
		return closed(logger, closeStore, exitError)
	case <-ctx.Done():
	}
	logger.Printf("shutting down: finishing the requests in flight (up to %v)", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Printf("closing the connections still busy after %v", shutdownGrace)
		_ = srv.Close()
	}
	<-errc // http.ErrServerClosed
	code := closed(logger, closeStore, exitOK)
	if code == exitOK {
		logger.Print("stopped")
	}
	return code
}

// closed closes the store and returns code, or exitError if closing
// failed.
func closed(logger *log.Logger, closeStore func() error, code int) int {
	if err := closeStore(); err != nil {
		logger.Printf("closing the store: %v", err)
		return exitError
	}
	return code
}

// serveMux routes the viewer under /snapshots/, its health check at
// /healthz, and / to the viewer.
func serveMux(store snapstore.Store, logger *log.Logger, opts ...viewer.Option) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(store, opts...)))
	mux.Handle("GET /healthz", health(store, logger))
	mux.Handle("GET /{$}", http.RedirectHandler("/snapshots/", http.StatusFound))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}

// health answers 200 "ok" when the store answers its cheapest listing
// within healthTimeout, else 503 with the store's error. It asks for no
// authentication, so that load balancers and orchestrators can probe it;
// it shows no snapshot. It logs when the store starts failing and when it
// recovers, not every probe.
func health(store snapstore.Store, logger *log.Logger) http.Handler {
	var failing atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		var err error
		if p, ok := store.(snapstore.Pager); ok {
			_, _, err = p.ListPage(ctx, "", 1)
		} else {
			_, err = store.List(ctx)
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		if err != nil {
			if r.Context().Err() != nil {
				return // the prober is gone
			}
			if !failing.Swap(true) {
				logger.Printf("health: the store fails: %v", err)
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "store unavailable: %v\n", err)
			return
		}
		if failing.Swap(false) {
			logger.Print("health: the store answers again")
		}
		fmt.Fprintln(w, "ok")
	})
}

// authOption returns the viewer's authentication from the flags or, when
// neither -token nor -basic-auth is given, from their environment
// variables; nil for none. It refuses both kinds at once, either with
// -insecure-no-auth, and malformed credentials.
func authOption(token, basic string, noAuth bool) (viewer.Option, error) {
	if token == "" && basic == "" {
		token, basic = os.Getenv(envServeToken), os.Getenv(envServeBasicAuth)
	}
	switch {
	case token != "" && basic != "":
		return nil, errors.New("give one of -token and -basic-auth (or of " + envServeToken + " and " + envServeBasicAuth + ")")
	case (token != "" || basic != "") && noAuth:
		return nil, errors.New("-insecure-no-auth asks for no authentication, but a token or credentials are given")
	case token != "":
		return viewer.WithBearerToken(token), nil
	case basic != "":
		user, password, ok := strings.Cut(basic, ":")
		if !ok || user == "" || password == "" {
			return nil, errors.New("-basic-auth: want USER:PASSWORD, both non-empty")
		}
		return viewer.WithBasicAuth(user, password), nil
	}
	return nil, nil
}

// loopbackAddr reports whether addr, HOST:PORT, names a loopback host:
// localhost, or a loopback IP address. An empty host (all interfaces) and
// any other host name are not.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
