package exporter

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
)

// HandlerOption configures the handler returned by [NewHandler].
type HandlerOption interface {
	applyHandler(handlerConfig) handlerConfig
}

type handlerConfig struct {
	auth    func(*http.Request) bool
	realm   string // non-empty for basic auth
	trigger func(ctx context.Context, reason string) (Info, error)
	maxList int
}

type handlerOptionFunc func(handlerConfig) handlerConfig

func (f handlerOptionFunc) applyHandler(c handlerConfig) handlerConfig { return f(c) }

// DefaultMaxList caps the number of snapshots the list routes return.
const DefaultMaxList = 1000

// WithBearerToken requires every request, on every route including the
// raw download, to carry "Authorization: Bearer <token>". An empty token
// is ignored.
func WithBearerToken(token string) HandlerOption {
	return handlerOptionFunc(func(c handlerConfig) handlerConfig {
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

// WithBasicAuth requires every request, on every route including the raw
// download, to carry HTTP basic credentials matching user and password,
// which a browser asks for. An empty password is ignored.
func WithBasicAuth(user, password string) HandlerOption {
	return handlerOptionFunc(func(c handlerConfig) handlerConfig {
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
func WithTrigger(take func(ctx context.Context, reason string) (Info, error)) HandlerOption {
	return handlerOptionFunc(func(c handlerConfig) handlerConfig {
		c.trigger = take
		return c
	})
}

// WithMaxList caps the number of snapshots the list routes return (the
// newest); the default is [DefaultMaxList].
func WithMaxList(n int) HandlerOption {
	return handlerOptionFunc(func(c handlerConfig) handlerConfig {
		if n > 0 {
			c.maxList = n
		}
		return c
	})
}

// RequireAuth wraps next with the authentication configured by opts
// ([WithBearerToken] or [WithBasicAuth]; other options are ignored), as
// [NewHandler] applies it to its own routes. It is for handlers that serve
// snapshot data beside NewHandler, such as package viewer's pages.
func RequireAuth(next http.Handler, opts ...HandlerOption) http.Handler {
	var c handlerConfig
	for _, o := range opts {
		c = o.applyHandler(c)
	}
	return authenticate(c, next)
}

// authenticate answers 401 to requests that fail the configured check.
func authenticate(c handlerConfig, next http.Handler) http.Handler {
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
