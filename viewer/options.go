package viewer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// Option configures the handler returned by [NewHandler].
type Option interface {
	apply(config) config
}

type config struct {
	auth    func(*http.Request) bool
	realm   string // non-empty for basic auth
	trigger func(ctx context.Context, reason string) (snapstore.Info, error)
	maxList int
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

func newConfig(opts []Option) config {
	c := config{maxList: DefaultMaxList}
	for _, o := range opts {
		c = o.apply(c)
	}
	return c
}

// DefaultMaxList caps the number of snapshots that /snapshots.json returns.
const DefaultMaxList = 1000

// WithBearerToken requires every request, on every route including the
// raw download and the pages, to carry "Authorization: Bearer <token>".
// An empty token is ignored. Of WithBearerToken and [WithBasicAuth], the
// last one given applies.
func WithBearerToken(token string) Option {
	return optionFunc(func(c config) config {
		if token == "" {
			return c
		}
		want := sha256.Sum256([]byte("Bearer " + token))
		c.auth = func(r *http.Request) bool {
			got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
			return subtle.ConstantTimeCompare(got[:], want[:]) == 1
		}
		c.realm = ""
		return c
	})
}

// WithBasicAuth requires every request, on every route, to carry HTTP
// basic credentials matching user and password, which a browser asks for.
// An empty password is ignored.
func WithBasicAuth(user, password string) Option {
	return optionFunc(func(c config) config {
		if password == "" {
			return c
		}
		wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
		c.auth = func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			return ok &&
				subtle.ConstantTimeCompare(gotUser[:], wantUser[:])&subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) == 1
		}
		c.realm = "otelfr snapshots"
		return c
	})
}

// WithTrigger enables POST on the handler's root, which takes a snapshot
// now by calling take with the form value "reason" ("http" if empty) and
// answers 201 with its Info as JSON; an error matching
// otelfr.ErrRateLimited answers 429. Pass [spanprocessor.Processor.Snapshot].
// The request must carry the header "X-Otelfr-Trigger: 1", which a page
// of another origin cannot add without the browser asking first, so that
// no web page can make a visitor's browser take snapshots.
func WithTrigger(take func(ctx context.Context, reason string) (snapstore.Info, error)) Option {
	return optionFunc(func(c config) config {
		c.trigger = take
		return c
	})
}

// WithMaxList caps the number of snapshots /snapshots.json returns (the
// newest); the default is [DefaultMaxList]. A value below 1 is ignored.
func WithMaxList(n int) Option {
	return optionFunc(func(c config) config {
		if n > 0 {
			c.maxList = n
		}
		return c
	})
}

// authenticate answers 401 to requests that fail the configured check.
func authenticate(c config, next http.Handler) http.Handler {
	if c.auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.auth(r) {
			if c.realm != "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="`+c.realm+`", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="otelfr"`)
			}
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
