package caddygrip

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/caddy-grip/grip/instruct"
)

// Auto cross-origin, as Pushpin's auto_cross_origin (route option aco): every
// response gets the CORS headers a browser needs to read it from another
// origin, each only when the response does not already carry it, and GET
// requests naming a callback get JSON-P (jsonp.go rewrites the request and
// encodes the script; jsonpWriter below buffers the response for it).
// Preflight OPTIONS requests are not answered here: they go to the origin
// like any other request, and its answer gets the headers.

// defaultAllowMethods is Access-Control-Allow-Methods when the client did
// not send Access-Control-Request-Method.
const defaultAllowMethods = "OPTIONS, HEAD, GET, POST, PUT, DELETE"

// corsRequest is what the CORS headers are made of, read from the client's
// request before anything downstream edits its headers.
type corsRequest struct {
	origin       string   // Origin
	method       string   // Access-Control-Request-Method
	allowHeaders []string // Access-Control-Request-Headers, split and trimmed
}

func newCORSRequest(h http.Header) corsRequest {
	return corsRequest{
		origin:       h.Get("Origin"),
		method:       h.Get("Access-Control-Request-Method"),
		allowHeaders: splitHeaderList(h.Values("Access-Control-Request-Headers")),
	}
}

// splitHeaderList splits comma-separated header values into their
// non-empty, trimmed items (instruct.SplitList, empty entries dropped).
func splitHeaderList(values []string) []string {
	return slices.DeleteFunc(instruct.SplitList(values), func(item string) bool { return item == "" })
}

// apply adds the CORS headers that h lacks, as Pushpin's
// Cors::applyCorsHeaders does. Where Pushpin keeps the wire order of the
// response's headers, Access-Control-Expose-Headers lists them sorted.
func (c corsRequest) apply(h http.Header) {
	if !hasHeader(h, "Access-Control-Allow-Methods") {
		m := c.method
		if m == "" {
			m = defaultAllowMethods
		}
		h.Set("Access-Control-Allow-Methods", m)
	}
	if !hasHeader(h, "Access-Control-Allow-Headers") && len(c.allowHeaders) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(c.allowHeaders, ", "))
	}
	if !hasHeader(h, "Access-Control-Expose-Headers") {
		if names := exposableHeaders(h); len(names) > 0 {
			h.Set("Access-Control-Expose-Headers", strings.Join(names, ", "))
		}
	}
	if !hasHeader(h, "Access-Control-Allow-Credentials") {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if !hasHeader(h, "Access-Control-Allow-Origin") {
		if c.origin == "" {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", c.origin)
			// The answer now depends on the Origin header; a shared cache
			// must not hand it to another origin. Pushpin omits this.
			addVary(h, "Origin")
		}
	}
	if !hasHeader(h, "Access-Control-Max-Age") {
		h.Set("Access-Control-Max-Age", "3600")
	}
}

// hasHeader reports a header that is present, even with an empty value.
func hasHeader(h http.Header, name string) bool {
	return len(h[name]) > 0
}

// exposableHeaders names, sorted, the response headers a script cannot
// read without Access-Control-Expose-Headers: all but the CORS-safelisted
// ones, the Access-Control-* set and Grip-*.
func exposableHeaders(h http.Header) []string {
	var names []string
	for name, values := range h {
		if len(values) == 0 || isSimpleResponseHeader(name) ||
			hasPrefixFold(name, "Access-Control-") || instruct.IsGripHeader(name) {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// isSimpleResponseHeader is Pushpin's list of headers scripts may always
// read (the CORS-safelisted response headers of its time).
func isSimpleResponseHeader(name string) bool {
	for _, s := range [...]string{"Cache-Control", "Content-Language", "Content-Length",
		"Content-Type", "Expires", "Last-Modified", "Pragma"} {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// addVary adds token to Vary unless Vary already lists it or "*".
func addVary(h http.Header, token string) {
	for _, v := range splitHeaderList(h.Values("Vary")) {
		if v == "*" || strings.EqualFold(v, token) {
			return
		}
	}
	h.Add("Vary", token)
}

// crossOrigin prepares a request under auto_cross_origin. Grip.ServeHTTP
// calls it first and serves the returned request with the returned writer,
// then calls finish:
//
//	w, r, finish, err := crossOrigin(w, r, g.JSONP)
//	if err != nil { // a bad JSON-P parameter
//		err.(*JSONPError).respond(w) // 400 with Pushpin's text, CORS headers added
//		return finish()
//	}
//	err = serve(w, r)
//	if ferr := finish(); err == nil { err = ferr }
//
// The writer adds the CORS headers the response lacks when its final
// status is written (and, from finish, to the header map when nothing was
// written, so that Caddy's own error response gets them too). For a JSON-P
// request (a GET naming a callback; not a WebSocket handshake) the request
// comes back rewritten from its _method, _headers and body parameters, and
// the writer buffers the whole response: finish sends it as a 200
// application/javascript call to the callback. A JSON-P writer cannot be
// hijacked (http.ErrNotSupported), so stream holds stay on it. jsonp nil
// means the defaults: JSON-P is always on under auto_cross_origin, as in
// Pushpin.
func crossOrigin(w http.ResponseWriter, r *http.Request, jsonp *JSONP) (http.ResponseWriter, *http.Request, func() error, error) {
	cw := &corsWriter{ResponseWriter: w, cors: newCORSRequest(r.Header)}
	if isWebSocketUpgrade(r) {
		return cw, r, cw.finish, nil
	}
	if jsonp == nil {
		jsonp = new(JSONP)
	}
	r2, call, err := jsonp.rewrite(r)
	if err != nil {
		return cw, r, cw.finish, err
	}
	if call == nil {
		return cw, r, cw.finish, nil
	}
	jw := newJSONPWriter(w, call)
	return jw, r2, jw.finish, nil
}

// corsWriter adds the CORS headers to the response when its final status
// is written. It shares the client's header map, and passes flushes,
// hijacks and everything http.ResponseController reaches straight through.
type corsWriter struct {
	http.ResponseWriter
	cors  corsRequest
	wrote bool // the final status (and with it the CORS headers) is out
}

// WriteHeader adds the CORS headers to the final status; 1xx responses
// (101 included) pass as they are.
func (cw *corsWriter) WriteHeader(status int) {
	if !cw.wrote && status >= 200 {
		cw.wrote = true
		cw.cors.apply(cw.ResponseWriter.Header())
	}
	cw.ResponseWriter.WriteHeader(status)
}

func (cw *corsWriter) Write(p []byte) (int, error) {
	if !cw.wrote {
		cw.WriteHeader(http.StatusOK)
	}
	return cw.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile and friends available below.
func (cw *corsWriter) ReadFrom(r io.Reader) (int64, error) {
	if !cw.wrote {
		cw.WriteHeader(http.StatusOK)
	}
	if rf, ok := cw.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{cw.ResponseWriter}, r)
}

// FlushError flushes below; a flush before any status sends 200 headers,
// so they get the CORS headers first.
func (cw *corsWriter) FlushError() error {
	if !cw.wrote {
		cw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(cw.ResponseWriter).Flush()
}

// Flush is FlushError for callers that assert http.Flusher.
func (cw *corsWriter) Flush() { _ = cw.FlushError() }

// Hijack passes through: a stream hold writes its headers (with the CORS
// set) before it hijacks, and WebSocket handshakes want none.
func (cw *corsWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(cw.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach deadlines below.
func (cw *corsWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

// finish puts the CORS headers in the header map when no status was
// written: the handler may have returned an error that Caddy answers on
// the same map, or nothing, which net/http answers with 200.
func (cw *corsWriter) finish() error {
	if !cw.wrote {
		cw.wrote = true
		cw.cors.apply(cw.ResponseWriter.Header())
	}
	return nil
}
