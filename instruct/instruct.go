// Package instruct reads the GRIP instructions of an origin's response:
// the Grip-* headers and the application/grip-instruct JSON body, with
// Pushpin's rules, defaults and error texts (handler/instruct.cpp). It
// imports nothing from Caddy.
package instruct

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-grip/grip/formats"
)

// The header form is read in this file, the JSON form in instructjson.go.

// HoldMode says what the proxy does with the client connection.
type HoldMode uint8

// The hold modes of Grip-Hold (and JSON hold.mode).
const (
	// HoldNone relays the response now, GRIP headers stripped.
	HoldNone HoldMode = iota
	// HoldResponse is a long-poll: the client waits for one published
	// http-response, or gets the held response on timeout.
	HoldResponse
	// HoldStream sends the response head and body now and appends every
	// published http-stream item.
	HoldStream
)

// KeepAliveMode says when a stream's keep-alive timer restarts.
type KeepAliveMode uint8

// The modes of Grip-Keep-Alive's mode parameter.
const (
	// KeepAliveIdle sends keep-alive data after Timeout without output:
	// every published send restarts the timer.
	KeepAliveIdle KeepAliveMode = iota
	// KeepAliveInterval sends keep-alive data every Timeout, whatever else
	// was sent.
	KeepAliveInterval
)

// Pushpin's limits on what one instruct subscribes to.
const (
	// MaxChannels caps the channels of one connection (Pushpin's
	// connection_subscription_max); Parse silently drops the rest.
	MaxChannels = 20
	// MaxFilters caps the filters of one channel; more is an error.
	MaxFilters = 5
)

// Pushpin's defaults (instruct.cpp).
const (
	defaultResponseTimeout  = 55 * time.Second
	minimumResponseTimeout  = 5 * time.Second
	defaultKeepAliveTimeout = 55 * time.Second
	minimumKeepAliveTimeout = time.Second
	defaultNextLinkTimeout  = 120 * time.Second
	// minimumNextLinkTimeout: Pushpin accepts 0, which re-fetches the next
	// link continuously; we refresh at most once a second.
	minimumNextLinkTimeout = time.Second
	gripInstructType       = "application/grip-instruct"
)

// Channel is one channel an instruct subscribes the client to.
type Channel struct {
	Name string
	// PrevID is the ID of the last item the origin included ("" if none);
	// a published item must follow it.
	PrevID string
	// Filters are the channel's filter names, at most MaxFilters.
	Filters []string
}

// KeepAlive is what a stream hold sends when it has been quiet for a while.
type KeepAlive struct {
	Data    []byte        // never empty
	Timeout time.Duration // at least 1s; Pushpin's default is 55s
	Mode    KeepAliveMode
}

// Link is a Grip-Link target.
type Link struct {
	// URL is resolved against the request URL.
	URL *url.URL
	// Timeout is how often a next link is re-fetched while the stream is
	// idle (default 120s, at least 1s); zero for a gone link.
	Timeout time.Duration
}

// Instruction is the GRIP instructions of one origin response, validated and
// with Pushpin's defaults applied.
type Instruction struct {
	Hold HoldMode
	// Channels holds at most MaxChannels entries with distinct names; a
	// repeated name updates the earlier entry's PrevID and Filters.
	Channels []Channel
	// Timeout bounds a response hold: Grip-Timeout, default 55s, at least 5s.
	Timeout time.Duration
	// KeepAlive is used by stream holds; nil when none.
	KeepAlive *KeepAlive
	// Meta is the subscription metadata filters read (Grip-Set-Meta and
	// JSON hold.meta); nil when none.
	Meta map[string]string
	// Next is the Grip-Link rel=next target and Gone the rel=gone one;
	// nil when absent.
	Next, Gone *Link
	// ExposeHeaders lists Grip-Expose-Headers; nil when absent or empty.
	ExposeHeaders []string

	// The response to send now (stream: initial; response hold: on
	// timeout; HoldNone: as is).

	// Status is the origin status, or Grip-Status, or JSON response.code.
	Status int
	// Reason is Grip-Status's reason or JSON response.reason; "" means the
	// standard text.
	Reason string
	// Header is the origin's headers, or JSON response.headers for a JSON
	// instruct, never with a Grip-* header nor Content-Length. Origin
	// headers are filtered by Grip-Expose-Headers when it is present.
	Header http.Header
	// Body is the origin body (the caller's slice, not a copy), or JSON
	// response.body / body-bin for a JSON instruct.
	Body []byte
}

// Error names the offending header (or "body") and why; the
// handler logs it and answers 502.
type Error struct {
	Header string // e.g. "Grip-Channel", or "body" for a JSON instruct
	Msg    string // Pushpin's text where it has one
}

// Error returns the message alone; it names the header or JSON field.
func (e *Error) Error() string { return e.Msg }

// channelTooLong explains why an instruction's channel is refused: a name
// or prev-id longer than a publish may name (formats.DefaultMaxChannelLen,
// formats.DefaultMaxIDLen), which no publish could reach and which would be
// kept as a map key; "" when it fits.
func channelTooLong(c Channel) string {
	switch {
	case len(c.Name) > formats.DefaultMaxChannelLen:
		return fmt.Sprintf("channel name of %d bytes, more than %d", len(c.Name), formats.DefaultMaxChannelLen)
	case len(c.PrevID) > formats.DefaultMaxIDLen:
		return fmt.Sprintf("prev-id of %d bytes, more than %d", len(c.PrevID), formats.DefaultMaxIDLen)
	}
	return ""
}

func instructErr(header, format string, args ...any) error {
	return &Error{Header: header, Msg: fmt.Sprintf(format, args...)}
}

// IsGrip reports whether an origin response carries GRIP instructions (any
// Grip-* header or Content-Type application/grip-instruct). It runs on every
// proxied response, so it allocates nothing.
func IsGrip(h http.Header) bool {
	for k, v := range h {
		if len(k) < 5 {
			continue
		}
		switch k[0] | 0x20 { // a cheap first-letter test before the real one
		case 'g':
			if IsGripHeader(k) {
				return true
			}
		case 'c':
			if len(v) > 0 && len(k) == len("Content-Type") && strings.EqualFold(k, "Content-Type") &&
				IsInstructType(v[0]) {
				return true
			}
		}
	}
	return false
}

// IsGripHeader reports a header name that starts with Grip-, in any case:
// GRIP's own headers, which never pass between client and origin as they are.
func IsGripHeader(name string) bool {
	return len(name) >= 5 && strings.EqualFold(name[:5], "Grip-")
}

// IsInstructType reports a Content-Type value whose media type (before
// any ';') is application/grip-instruct, compared case-insensitively.
func IsInstructType(ct string) bool { return MediaTypeIs(ct, gripInstructType) }

// gripHeaderValues gathers the GRIP headers of a response in one pass over
// the map, so that names match case-insensitively even in a non-canonical map.
type gripHeaderValues struct {
	hold, channel, timeout, expose, keepAlive, setMeta, status, link []string
	contentType                                                      []string
}

func collectGripHeaders(h http.Header) *gripHeaderValues {
	g := new(gripHeaderValues)
	for k, v := range h {
		if !IsGripHeader(k) {
			if strings.EqualFold(k, "Content-Type") {
				g.contentType = append(g.contentType, v...)
			}
			continue
		}
		var dst *[]string
		switch name := k[5:]; {
		case strings.EqualFold(name, "Hold"):
			dst = &g.hold
		case strings.EqualFold(name, "Channel"):
			dst = &g.channel
		case strings.EqualFold(name, "Timeout"):
			dst = &g.timeout
		case strings.EqualFold(name, "Expose-Headers"):
			dst = &g.expose
		case strings.EqualFold(name, "Keep-Alive"):
			dst = &g.keepAlive
		case strings.EqualFold(name, "Set-Meta"):
			dst = &g.setMeta
		case strings.EqualFold(name, "Status"):
			dst = &g.status
		case strings.EqualFold(name, "Link"):
			dst = &g.link
		default:
			continue
		}
		*dst = append(*dst, v...)
	}
	return g
}

// instructParser carries the state Parse builds up: the headers are
// read first, then a JSON instruct overrides them, then defaults apply.
type instructParser struct {
	in     *Instruction
	reqURL *url.URL

	haveKeepAlive bool // a keep-alive was given (header or JSON)
	kaFromHeader  bool // its mode came from Grip-Keep-Alive
	kaData        []byte
	kaTimeout     time.Duration
	kaMode        KeepAliveMode
}

// Parse reads the instructions in an origin response. reqURL, the
// absolute URL the client requested, resolves relative links; with a nil
// reqURL they stay relative. Errors are *Error.
func Parse(status int, h http.Header, body []byte, reqURL *url.URL) (*Instruction, error) {
	p := &instructParser{
		in:     &Instruction{Status: status, Timeout: -1},
		reqURL: reqURL,
	}
	g := collectGripHeaders(h)
	if err := p.parseHeaders(g); err != nil {
		return nil, err
	}
	p.in.Header = responseHeader(h, p.in.ExposeHeaders)
	p.in.Body = body
	if len(g.contentType) > 0 && IsInstructType(g.contentType[0]) {
		if status != http.StatusOK {
			return nil, instructErr("body", "response code for application/grip-instruct content must be 200")
		}
		if err := p.parseJSON(body); err != nil {
			return nil, err
		}
	}
	p.finish()
	return p.in, nil
}

// parseHeaders reads the Grip-* headers in Pushpin's order, so that the
// first error reported is the one Pushpin would report.
func (p *instructParser) parseHeaders(g *gripHeaderValues) error {
	in := p.in
	if len(g.hold) > 0 {
		switch g.hold[0] {
		case "response":
			in.Hold = HoldResponse
		case "stream":
			in.Hold = HoldStream
		default:
			return instructErr("Grip-Hold", "Grip-Hold must be set to either 'response' or 'stream'")
		}
	}
	for _, part := range SplitList(g.channel) {
		e, err := parseHeaderEntry(part, false)
		if err != nil || e.first == "" {
			// A bad quote: dropped, as in Pushpin. An empty name: skipped,
			// where Pushpin would subscribe to "".
			continue
		}
		c := Channel{Name: e.first}
		c.PrevID, _ = e.param("prev-id")
		for _, prm := range e.params {
			if strings.EqualFold(prm.key, "filter") && prm.value != "" {
				c.Filters = append(c.Filters, prm.value)
			}
		}
		if len(c.Filters) > MaxFilters {
			return instructErr("Grip-Channel", "too many filters for channel '%s'", c.Name)
		}
		if msg := channelTooLong(c); msg != "" {
			return instructErr("Grip-Channel", "%s", msg)
		}
		in.Channels = append(in.Channels, c)
	}
	if len(g.timeout) > 0 {
		t, err := parseSeconds(g.timeout[0])
		if err != nil {
			return instructErr("Grip-Timeout", "failed to parse Grip-Timeout")
		}
		if t < 0 {
			return instructErr("Grip-Timeout", "Grip-Timeout has invalid value")
		}
		in.Timeout = t
	}
	for _, part := range SplitList(g.expose) {
		if part != "" {
			in.ExposeHeaders = append(in.ExposeHeaders, part)
		}
	}
	if len(g.keepAlive) > 0 && g.keepAlive[0] != "" {
		if err := p.parseKeepAliveHeader(g.keepAlive[0]); err != nil {
			return err
		}
	}
	for _, part := range SplitList(g.setMeta) {
		e, err := parseHeaderEntry(part, true)
		if err != nil {
			continue // a bad quote: dropped, as in Pushpin
		}
		if len(e.params) == 0 || e.params[0].key == "" {
			return instructErr("Grip-Set-Meta", "Grip-Set-Meta cannot be empty")
		}
		if in.Meta == nil {
			in.Meta = make(map[string]string)
		}
		in.Meta[e.params[0].key] = e.params[0].value
	}
	if len(g.status) > 0 && g.status[0] != "" {
		codeStr, reason, _ := strings.Cut(g.status[0], " ")
		code, err := strconv.Atoi(codeStr)
		if err != nil || !validStatus(code) {
			return instructErr("Grip-Status", "Grip-Status contains invalid status code")
		}
		in.Status, in.Reason = code, reason
	}
	return p.parseLinks(g.link)
}

// validStatus accepts final status codes. Pushpin accepts 0-999; Go's
// net/http panics below 100 and sends 1xx as interim responses.
func validStatus(code int) bool { return code >= 200 && code <= 999 }

// SplitList splits every value of a header on commas, dropping the entry a
// bad quote left unterminated.
func SplitList(values []string) []string {
	var all []string
	for _, v := range values {
		parts, ok := splitHeader(v)
		if !ok {
			parts = parts[:len(parts)-1]
		}
		all = append(all, parts...)
	}
	return all
}

// parseSeconds reads a whole number of seconds that fits in 32 bits, as
// Qt's toInt does for Pushpin.
func parseSeconds(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(trimHeaderSpace(s), 10, 32)
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * time.Second, nil
}

// parseKeepAliveHeader reads the first Grip-Keep-Alive header, which is not
// comma-split: `<data>; format=raw|cstring|base64; timeout=<s>; mode=idle|interval`.
func (p *instructParser) parseKeepAliveHeader(v string) error {
	const hdr = "Grip-Keep-Alive"
	e, err := parseHeaderEntry(v, false)
	if err != nil {
		// Pushpin ignores the whole header here; we say why instead.
		return instructErr(hdr, "failed to parse Grip-Keep-Alive: %v", err)
	}
	if e.first == "" {
		return instructErr(hdr, "Grip-Keep-Alive cannot be empty")
	}
	switch mode, _ := e.param("mode"); mode {
	case "", "idle":
		p.kaMode = KeepAliveIdle
	case "interval":
		p.kaMode = KeepAliveInterval
	default:
		return instructErr(hdr, "no such Grip-Keep-Alive mode '%s'", mode)
	}
	p.kaTimeout = defaultKeepAliveTimeout
	if ts, ok := e.param("timeout"); ok {
		t, err := parseSeconds(ts)
		if err != nil {
			return instructErr(hdr, "failed to parse Grip-Keep-Alive timeout value")
		}
		if t < 0 {
			return instructErr(hdr, "Grip-Keep-Alive timeout has invalid value")
		}
		p.kaTimeout = t
	}
	switch format, _ := e.param("format"); format {
	case "", "raw":
		p.kaData = []byte(e.first)
	case "cstring":
		if p.kaData, err = unescapeCString(e.first); err != nil {
			return instructErr(hdr, "failed to parse Grip-Keep-Alive cstring format")
		}
	case "base64":
		if p.kaData, err = formats.DecodeBase64([]byte(e.first)); err != nil {
			return instructErr(hdr, "failed to parse Grip-Keep-Alive base64 format")
		}
	default:
		return instructErr(hdr, "no such Grip-Keep-Alive format '%s'", format)
	}
	if len(p.kaData) == 0 {
		return instructErr(hdr, "Grip-Keep-Alive cannot be empty")
	}
	p.haveKeepAlive, p.kaFromHeader = true, true
	return nil
}

var errCString = errors.New("invalid cstring escape")

// unescapeCString decodes Grip-Keep-Alive's cstring format. Pushpin
// understands \\ \r \n and \xHH; we also read \t as a tab, where Pushpin
// silently drops it. Any other escape is dropped with its backslash, as in
// Pushpin, so that instructs Pushpin accepts keep working. A dangling
// backslash or a bad \x is an error.
func unescapeCString(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+1 >= len(s) {
			return nil, errCString
		}
		i++
		switch s[i] {
		case '\\':
			out = append(out, '\\')
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'x':
			if i+2 >= len(s) {
				return nil, errCString
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return nil, errCString
			}
			out = append(out, byte(hi<<4|lo))
			i += 2
		}
	}
	return out, nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// parseLinks reads every Grip-Link entry: `<uri>; rel=next; timeout=N` or
// `<uri>; rel=gone`. An entry without parameters is skipped; the last link
// of each rel wins.
func (p *instructParser) parseLinks(values []string) error {
	const hdr = "Grip-Link"
	for _, part := range SplitList(values) {
		e, err := parseHeaderEntry(part, false)
		if err != nil || len(e.params) == 0 {
			continue
		}
		if len(e.first) <= 2 || e.first[0] != '<' || e.first[len(e.first)-1] != '>' {
			return instructErr(hdr, "failed to parse Grip-Link value")
		}
		u, err := p.resolveLink(e.first[1 : len(e.first)-1])
		if err != nil {
			return instructErr(hdr, "Grip-Link contains invalid link")
		}
		// Relation types are case-insensitive (RFC 8288); Pushpin compares
		// them exactly.
		switch rel, _ := e.param("rel"); {
		case strings.EqualFold(rel, "next"):
			l := &Link{URL: u, Timeout: defaultNextLinkTimeout}
			if ts, ok := e.param("timeout"); ok {
				t, err := parseSeconds(ts)
				if err != nil {
					return instructErr(hdr, "failed to parse Grip-Link timeout value")
				}
				if t < 0 {
					return instructErr(hdr, "Grip-Link timeout has invalid value")
				}
				l.Timeout = max(t, minimumNextLinkTimeout)
			}
			p.in.Next = l
		case strings.EqualFold(rel, "gone"):
			p.in.Gone = &Link{URL: u}
		}
	}
	return nil
}

// resolveLink parses a link target and resolves it against the request URL.
// Only http and https targets are usable.
func (p *instructParser) resolveLink(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if p.reqURL != nil {
		u = p.reqURL.ResolveReference(u)
	}
	if u.Opaque != "" || (u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https") ||
		(u.Scheme != "" && u.Host == "") {
		return nil, errors.New("not an http(s) URL")
	}
	return u, nil
}

// responseHeader copies the origin's headers for the client: without Grip-*
// headers and Content-Length, and with only the exposed ones when expose is
// not empty. Values are copied so the caller may append to them.
func responseHeader(h http.Header, expose []string) http.Header {
	out := make(http.Header, len(h))
	n := 0
	for _, v := range h {
		n += len(v)
	}
	backing := make([]string, 0, n)
	for k, v := range h {
		if IsGripHeader(k) || strings.EqualFold(k, "Content-Length") || !exposed(k, expose) {
			continue
		}
		ck := http.CanonicalHeaderKey(k)
		if prev, ok := out[ck]; ok { // k and ck both in h: rare
			out[ck] = append(prev[:len(prev):len(prev)], v...)
			continue
		}
		start := len(backing)
		backing = append(backing, v...)
		out[ck] = backing[start:len(backing):len(backing)]
	}
	return out
}

func exposed(name string, expose []string) bool {
	if len(expose) == 0 {
		return true
	}
	for _, e := range expose {
		if strings.EqualFold(e, name) {
			return true
		}
	}
	return false
}

// finish applies the defaults and limits once headers and JSON are read.
func (p *instructParser) finish() {
	in := p.in
	if in.Timeout < 0 {
		in.Timeout = defaultResponseTimeout
	}
	in.Timeout = max(in.Timeout, minimumResponseTimeout)
	if p.haveKeepAlive && len(p.kaData) > 0 {
		in.KeepAlive = &KeepAlive{
			Data:    p.kaData,
			Timeout: max(p.kaTimeout, minimumKeepAliveTimeout),
			Mode:    p.kaMode,
		}
	}
	in.Channels = mergeChannels(in.Channels)
}

// mergeChannels keeps the first MaxChannels entries, as Pushpin does, then
// folds repeated names into their first entry the way a Pushpin session
// does: the later entry's PrevID and Filters win.
func mergeChannels(cs []Channel) []Channel {
	if len(cs) > MaxChannels {
		cs = cs[:MaxChannels]
	}
	out := cs[:0]
	for _, c := range cs {
		dup := false
		for i := range out {
			if out[i].Name == c.Name {
				out[i].PrevID, out[i].Filters = c.PrevID, c.Filters
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}
