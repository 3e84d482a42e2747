package caddygrip

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// JSON-P, as Pushpin does it under auto_cross_origin: a GET whose query
// names a callback is turned into the request its parameters describe
// (_method, _headers, and _body or the configured body parameter), and its
// response, whatever it is, comes back as a 200 script calling the
// callback: with the body alone (basic) or with an object holding status,
// reason, headers and body (extended).

// JSONP configures JSON-P. It only applies with auto_cross_origin on,
// where it is always active; these options change the parameter names and
// the response shape, as Pushpin's jsonp_* route options do.
type JSONP struct {
	// Mode is the shape of the script: "extended" (the default) calls the
	// callback with {"code", "reason", "headers", "body"}; "basic" calls it
	// with the response body as it is, less one trailing newline, so that
	// a JSON body becomes the argument.
	Mode string `json:"mode,omitempty"`

	// Callback is the query parameter that names the callback and turns
	// JSON-P on (Pushpin's jsonp_cb). Default: "callback".
	Callback string `json:"callback,omitempty"`

	// BodyParam is a query parameter carrying the request body, which is
	// then sent to the origin as application/json (Pushpin's jsonp_body).
	// When empty, the body comes from the "_body" parameter instead.
	BodyParam string `json:"body_param,omitempty"`

	// DefaultCallback is the callback for requests that carry BodyParam
	// but no callback parameter; such requests are then JSON-P too
	// (Pushpin's jsonp_defcb). It needs BodyParam.
	DefaultCallback string `json:"default_callback,omitempty"`

	// DefaultMethod is the method sent to the origin when the request has
	// no "_method" parameter (Pushpin's jsonp_defmethod). Default: GET in
	// extended mode, POST in basic mode.
	DefaultMethod string `json:"default_method,omitempty"`
}

// Validate reports an option that cannot work.
func (j *JSONP) Validate() error {
	switch j.Mode {
	case "", "basic", "extended":
	default:
		return fmt.Errorf("mode: want basic or extended, got %q", j.Mode)
	}
	if j.DefaultMethod != "" && !formats.IsToken(j.DefaultMethod) {
		return fmt.Errorf("default_method: %q is not an HTTP method", j.DefaultMethod)
	}
	if j.DefaultCallback != "" && j.BodyParam == "" {
		return errors.New("default_callback needs body_param: it applies to requests carrying the body parameter")
	}
	return nil
}

// parseJSONPCaddyfile reads a jsonp block; d is on the jsonp token.
// Syntax:
//
//	jsonp {
//		mode             basic|extended
//		callback         <param>
//		body_param       <param>
//		default_callback <callback>
//		default_method   <method>
//	}
func parseJSONPCaddyfile(d *caddyfile.Dispenser) (*JSONP, error) {
	j := new(JSONP)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var dst *string
		switch opt {
		case "mode":
			dst = &j.Mode
		case "callback":
			dst = &j.Callback
		case "body_param":
			dst = &j.BodyParam
		case "default_callback":
			dst = &j.DefaultCallback
		case "default_method":
			dst = &j.DefaultMethod
		default:
			return nil, d.Errf("unrecognized jsonp option '%s'", opt)
		}
		v, err := stringArg(d, "grip: jsonp", opt)
		if err != nil {
			return nil, err
		}
		*dst = v
	}
	if err := j.Validate(); err != nil {
		return nil, d.Errf("jsonp: %v", err)
	}
	return j, nil
}

// JSONPError is a JSON-P request refused for a bad parameter. The client
// gets Status with Message as a text/plain body, as from Pushpin.
type JSONPError struct {
	Status  int    // http.StatusBadRequest
	Message string // Pushpin's text, e.g. "Invalid _headers parameter."
}

func (e *JSONPError) Error() string { return "JSON-P request: " + e.Message }

// respond writes the refusal; through crossOrigin's writer it gets the
// CORS headers, as Pushpin's does.
func (e *JSONPError) respond(w http.ResponseWriter) {
	body := e.Message + "\n"
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	_, _ = io.WriteString(w, body)
}

func badJSONP(msg string) error {
	return &JSONPError{Status: http.StatusBadRequest, Message: msg}
}

// jsonpCall is a request being answered as JSON-P.
type jsonpCall struct {
	callback string
	extended bool
}

// rewrite turns a JSON-P request into the one it describes. It returns a
// nil call for requests that are not JSON-P, and a *JSONPError for bad
// parameters. The parameters are checked in Pushpin's order, each must be
// non-empty and validly percent-encoded, and '+' is not a space.
func (j *JSONP) rewrite(r *http.Request) (*http.Request, *jsonpCall, error) {
	if r.Method != http.MethodGet {
		return nil, nil, nil
	}
	cbParam := cmp.Or(j.Callback, "callback")
	q := parseQuery(r.URL.RawQuery)
	cbRaw, hasCallback := q.get(cbParam)
	bodyRaw, hasBody := "", false
	if j.BodyParam != "" {
		bodyRaw, hasBody = q.get(j.BodyParam)
	}
	if !hasCallback && (j.DefaultCallback == "" || !hasBody) {
		return nil, nil, nil
	}

	call := &jsonpCall{callback: j.DefaultCallback, extended: j.Mode != "basic"}
	used := []string{cbParam}
	if hasCallback {
		cb, ok := percentDecode(cbRaw)
		if !ok || cb == "" {
			return nil, nil, badJSONP("Invalid callback parameter.")
		}
		call.callback = cb
	}

	method := j.DefaultMethod
	if method == "" {
		method = http.MethodGet
		if !call.extended {
			method = http.MethodPost
		}
	}
	if raw, ok := q.get("_method"); ok {
		m, ok := percentDecode(raw)
		if !ok || !formats.IsToken(m) {
			return nil, nil, badJSONP("Invalid _method parameter.")
		}
		method = m
		used = append(used, "_method")
	}

	header := make(http.Header)
	if raw, ok := q.get("_headers"); ok {
		s, ok := percentDecode(raw)
		if ok {
			header, ok = parseJSONPHeaders(s)
		}
		if !ok {
			return nil, nil, badJSONP("Invalid _headers parameter.")
		}
		used = append(used, "_headers")
	}

	var body []byte
	haveBody := false
	if j.BodyParam != "" {
		if hasBody {
			b, ok := percentDecode(bodyRaw)
			if !ok || b == "" {
				return nil, nil, badJSONP("Invalid body parameter.")
			}
			body, haveBody = []byte(b), true
			header.Set("Content-Type", "application/json")
			used = append(used, j.BodyParam)
		}
	} else if raw, ok := q.get("_body"); ok {
		b, ok := percentDecode(raw)
		if !ok || b == "" {
			return nil, nil, badJSONP("Invalid _body parameter.")
		}
		body, haveBody = []byte(b), true
		used = append(used, "_body")
	}

	// The parameters' headers come first; the client's own follow, but
	// for Host (kept as r.Host) and Accept, which JSON-P sets.
	header.Set("Accept", "*/*")
	for k, vs := range r.Header {
		if k == "Accept" || k == "Host" {
			continue
		}
		header[k] = append(header[k], vs...)
	}

	r2 := r.Clone(r.Context())
	r2.Method = method
	r2.Header = header
	r2.URL.RawQuery = q.without(used)
	r2.URL.ForceQuery = false
	r2.RequestURI = r2.URL.RequestURI()
	if haveBody {
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r2.ContentLength = int64(len(body))
		r2.TransferEncoding = nil
		header.Del("Transfer-Encoding")
		header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return r2, call, nil
}

// parseJSONPHeaders reads _headers: a JSON object of string values, added
// in key order, less Host and Accept. Names must be tokens and values free
// of control characters, or the origin request could not be sent.
func parseJSONPHeaders(s string) (http.Header, bool) {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	h := make(http.Header, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val, ok := m[k].(string)
		if !ok || !formats.IsToken(k) || !validHeaderValue(val) {
			return nil, false
		}
		if strings.EqualFold(k, "Host") || strings.EqualFold(k, "Accept") {
			continue
		}
		h.Add(k, val)
	}
	return h, true
}

// query is a raw query string split on '&', kept encoded so that what is
// not consumed reaches the origin as the client sent it.
type query []queryPart

type queryPart struct {
	name string // percent-decoded
	val  string // as sent
	raw  string // name=val as sent
}

func parseQuery(raw string) query {
	var q query
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if dk, ok := percentDecode(k); ok {
			k = dk
		}
		q = append(q, queryPart{name: k, val: v, raw: part})
	}
	return q
}

// get returns the first value of name, still encoded.
func (q query) get(name string) (string, bool) {
	for _, p := range q {
		if p.name == name {
			return p.val, true
		}
	}
	return "", false
}

// without is the query string less every item named in names.
func (q query) without(names []string) string {
	var b strings.Builder
	for _, p := range q {
		if slices.Contains(names, p.name) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.raw)
	}
	return b.String()
}

// percentDecode decodes %XX escapes strictly (a stray '%' fails) and
// leaves '+' alone, as Pushpin does.
func percentDecode(s string) (string, bool) {
	v, err := url.PathUnescape(s)
	return v, err == nil
}

// validHeaderValue rejects control characters other than tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// encode is the script: /**/cb(<body>);\n in basic mode, or
// /**/cb({"code": …, "reason": …, "headers": {…}, "body": …});\n in
// extended mode, spaced as Pushpin's proxy writes it. Repeated headers are
// joined with ", ".
func (c *jsonpCall) encode(status int, h http.Header, body []byte) []byte {
	out := make([]byte, 0, len(body)+len(c.callback)+256)
	out = append(out, "/**/"...)
	out = append(out, c.callback...)
	out = append(out, '(')
	if !c.extended {
		if bytes.HasSuffix(body, []byte("\r\n")) {
			body = body[:len(body)-2]
		} else {
			body = bytes.TrimSuffix(body, []byte("\n"))
		}
		out = append(out, body...)
		return append(out, ");\n"...)
	}
	out = append(out, `{"code": `...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, `, "reason": `...)
	out = appendJSONString(out, http.StatusText(status))
	out = append(out, `, "headers": {`...)
	first := true
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if len(h[k]) == 0 {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendJSONString(out, k)
		out = append(out, ':')
		out = appendJSONString(out, strings.Join(h[k], ", "))
	}
	out = append(out, `}, "body": `...)
	out = appendJSONString(out, string(body))
	return append(out, "});\n"...)
}

// appendJSONString appends s as a JSON string the way Qt writes one:
// UTF-8 kept, only quote, backslash and control characters escaped
// (lowercase hex), invalid UTF-8 as U+FFFD. U+2028 and U+2029 are escaped
// too, which Qt does not do, since older JavaScript rejects them raw.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				if c < ' ' {
					dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
				} else {
					dst = append(dst, c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, "\ufffd"...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// maxJSONPBody bounds the response buffered for a JSON-P call. Pushpin
// streams large ones; a larger one here is answered 500.
const maxJSONPBody = 1 << 20

// jsonpWriter buffers a JSON-P request's whole response, under a header
// map of its own, for finish to send wrapped in the callback. Flushes are
// held back and hijacking is refused, so every response takes this path.
type jsonpWriter struct {
	w        http.ResponseWriter // the client's
	call     *jsonpCall
	header   http.Header
	status   int         // 0 until the final status is written
	sent     http.Header // header as of the status
	body     bytes.Buffer
	overflow bool
}

func newJSONPWriter(w http.ResponseWriter, call *jsonpCall) *jsonpWriter {
	// Headers set before (Server, say) show as they would without JSON-P.
	return &jsonpWriter{w: w, call: call, header: w.Header().Clone()}
}

func (j *jsonpWriter) Header() http.Header { return j.header }

// WriteHeader records the final status; 1xx responses are dropped, as the
// client will get a plain 200.
func (j *jsonpWriter) WriteHeader(status int) {
	if j.status != 0 || status < 200 {
		return
	}
	j.status = status
	j.sent = j.header.Clone()
}

// Write buffers; past maxJSONPBody it drops the body and never fails, so
// the handler runs to its end and finish can answer.
func (j *jsonpWriter) Write(p []byte) (int, error) {
	if j.status == 0 {
		j.WriteHeader(http.StatusOK)
	}
	if !j.overflow && j.body.Len()+len(p) > maxJSONPBody {
		j.overflow = true
		j.body = bytes.Buffer{}
	}
	if !j.overflow {
		j.body.Write(p)
	}
	return len(p), nil
}

// FlushError holds the flush back: nothing goes out before finish.
func (j *jsonpWriter) FlushError() error { return nil }

// Flush is FlushError for callers that assert http.Flusher.
func (j *jsonpWriter) Flush() {}

// Hijack is refused, so that a stream hold stays on this writer.
func (j *jsonpWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

// Unwrap lets http.ResponseController reach deadlines below.
func (j *jsonpWriter) Unwrap() http.ResponseWriter { return j.w }

// finish sends the buffered response as the JSON-P script: 200,
// application/javascript, with Cache-Control mirrored. When nothing was
// written it sends nothing, leaving the handler's error to Caddy.
func (j *jsonpWriter) finish() error {
	if j.status == 0 {
		return nil
	}
	h := j.w.Header()
	if j.overflow {
		const text = "Upstream response could not be JSON-P encoded.\n"
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", strconv.Itoa(len(text)))
		j.w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(j.w, text)
		return nil
	}
	out := j.call.encode(j.status, j.sent, j.body.Bytes())
	if cc := j.sent.Values("Cache-Control"); len(cc) > 0 {
		h["Cache-Control"] = slices.Clone(cc)
	}
	h.Set("Content-Type", "application/javascript")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	j.w.WriteHeader(http.StatusOK)
	_, _ = j.w.Write(out)
	return nil
}
