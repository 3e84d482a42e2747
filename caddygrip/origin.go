package caddygrip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// capture is the ResponseWriter of a re-issued origin request: status,
// headers and a bounded body, never the client's writer.
type capture struct {
	header http.Header
	status int
	body   boundedBuffer
}

func newCapture(limit int) *capture {
	return &capture{header: make(http.Header), body: boundedBuffer{limit: limit}}
}

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(status int) {
	if c.status == 0 && status >= 200 {
		c.status = status
	}
}

// Write keeps the body up to the limit and never fails.
func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(p)
}

// Flush is a no-op: the body is read once complete.
func (c *capture) Flush() {}

// originRequest re-issues a request through the rest of the route, the way
// the client's own request went: same URL, host, client address and TLS
// state, so that load balancing, caching and matchers treat it alike.
type originRequest struct {
	orig    *http.Request
	next    caddyhttp.Handler
	server  *caddyhttp.Server
	limit   int
	metrics *hubMetrics // counts and times each request; nil counts nothing
	// bound, when set, is the binding whose current route replaces next
	// and server, for sessions that outlive their config.
	bound *binding
}

func newOriginRequest(r *http.Request, next caddyhttp.Handler, limit int, m *hubMetrics) *originRequest {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return &originRequest{orig: r, next: next, server: srv, limit: limit, metrics: m}
}

// newDetachedOriginRequest is newOriginRequest for requests that outlive
// the client request's handler (a hijacked stream, a WebSocket session): it
// keeps a bodiless copy of r with a detached context, and goes through
// bound's current route when there is one.
func newDetachedOriginRequest(r *http.Request, next caddyhttp.Handler, limit int, m *hubMetrics, bound *binding) *originRequest {
	o := newOriginRequest(r, next, limit, m)
	o.bound = bound
	o.orig = r.Clone(detachedContext(r.Context()))
	o.orig.Body = http.NoBody
	o.orig.Header.Del("Content-Type")
	o.orig.Header.Del("Content-Length")
	return o
}

// connectionContextKeys are the values of a client request's context that
// a detached context keeps: those of its connection.
var connectionContextKeys = []any{http.ServerContextKey, http.LocalAddrContextKey, caddyhttp.ConnCtxKey}

// detachedContext is a context for requests that outlive the client's: it
// keeps the values of the client's connection but neither the request's
// cancellation nor its request-scoped values. Through those (Caddy's
// replacer) it would keep the request, its response writers and net/http's
// connection buffers for as long as a session lasts; origin requests get
// fresh ones from caddyhttp.PrepareRequest.
func detachedContext(ctx context.Context) context.Context {
	d := context.Background()
	for _, k := range connectionContextKeys {
		if v := ctx.Value(k); v != nil {
			d = context.WithValue(d, k, v)
		}
	}
	return d
}

// context is the template request's context: for a detached origin, one
// that no client request's end cancels.
func (o *originRequest) context() context.Context { return o.orig.Context() }

// do sends one request and returns the captured response. It may run on
// any goroutine: an abort panic in the handler chain becomes an error
// instead of taking the process down. kind names the request in metrics.
func (o *originRequest) do(ctx context.Context, kind originKind, method string, header http.Header, body []byte) (res *capture, err error) {
	return o.doURL(ctx, kind, method, nil, header, body)
}

// doURL is do for another URL of the same site (a Grip-Link target); nil
// keeps the client's. The request still goes through this route, whatever
// host the link names: the route decides where it goes, and the Host header
// says which site it is for.
func (o *originRequest) doURL(ctx context.Context, kind originKind, method string, u *url.URL, header http.Header, body []byte) (res *capture, err error) {
	start := time.Now()
	defer func() { o.metrics.observeOrigin(kind, start, res, err) }()
	r := o.orig.Clone(ctx)
	if u != nil {
		r.URL = &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
		r.RequestURI = r.URL.RequestURI()
		if u.Host != "" {
			r.Host = u.Host
		}
	}
	r.Method = method
	r.Header = header
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	r.TransferEncoding = nil
	r.Close = false

	next, server := o.next, o.server
	if rt := o.bound.current(); rt != nil {
		next, server = rt.next, rt.server
	}
	res = newCapture(o.limit)
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), res, server)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				err = errors.New("origin request aborted")
				return
			}
			err = fmt.Errorf("origin request panicked: %v", v)
		}
	}()
	if err := next.ServeHTTP(res, r); err != nil {
		return res, err
	}
	if res.body.overflow {
		return res, fmt.Errorf("origin response over %d bytes", o.limit)
	}
	return res, nil
}
