package caddygrip

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/gripsig"
	"github.com/caddy-grip/grip/hub"
)

func init() {
	caddy.RegisterModule(Publish{})
}

const defaultMaxPublishBody = 1000000

// Publish is the GRIP publish endpoint: Pushpin's HTTP publish API, so that
// any GRIP publisher library can push to clients held by grip handlers. It
// answers POST requests whose path ends in /publish or /publish/.
type Publish struct {
	// Hub names the hub to publish to. Default: "default".
	Hub string `json:"hub,omitempty"`

	// Key, when set, requires "Authorization: Bearer <token>" on every
	// publish. It takes the sig_key forms: a plain secret, "base64:<b64>",
	// "file:<path>" (a PEM key or a hex secret) or a JWK. With a secret
	// (plain, base64, hex file, JWK "oct") the token is the decoded secret
	// itself or an HS256/384/512 JWT signed with it; with an EC or RSA key
	// only a JWT that key verifies is accepted. A JWT needs "exp" in the
	// future, and "nbf", if present, not after now. The configured text
	// ("file:...", the JWK) is never a token. Set but empty after
	// placeholders is an error. Pushpin's endpoint has no authentication,
	// so keep it on a private listener when no key is set.
	Key string `json:"key,omitempty"`

	// MaxBodySize caps a publish request body, in bytes. Default: 1000000.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// MaxChannelLength caps the channel name of a published item, in
	// bytes; a longer one is refused with 400. Default: 1024.
	MaxChannelLength int `json:"max_channel_length,omitempty"`

	// MaxIDLength caps the id and prev-id of a published item, in bytes;
	// a longer one is refused with 400. Default: 1024.
	MaxIDLength int `json:"max_id_length,omitempty"`

	ref     hubRef
	jwtKey  *gripsig.Key // the parsed key; nil when no key is set
	secret  []byte       // its HMAC secret, the only plain bearer token; nil for EC and RSA keys
	logger  *zap.Logger
	warnLog *zap.Logger // logger, rate-limited, for refused publishes
}

// CaddyModule returns the Caddy module information.
func (Publish) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.grip_publish",
		New: func() caddy.Module { return new(Publish) },
	}
}

// Provision claims the hub and reads the key.
func (p *Publish) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	p.warnLog = hub.RateLimited(p.logger)
	if err := p.provisionOptions(caddy.NewReplacer()); err != nil {
		return err
	}
	if err := p.ref.claim(ctx, p.Hub, p.logger); err != nil {
		return err
	}
	return nil
}

// provisionOptions replaces placeholders, checks the options and fills in
// the defaults. An option given but empty after placeholders, or invalid,
// is an error naming it: a missing variable in key never turns
// authentication off.
func (p *Publish) provisionOptions(repl *caddy.Replacer) error {
	hub, err := replaceSet(repl, "hub", p.Hub)
	if err != nil {
		return err
	}
	p.Hub = hub
	for _, o := range []struct {
		name string
		v    int64
	}{
		{"max_body_size", p.MaxBodySize},
		{"max_channel_length", int64(p.MaxChannelLength)},
		{"max_id_length", int64(p.MaxIDLength)},
	} {
		if err := notNegative(o.name, o.v, "number of bytes"); err != nil {
			return err
		}
	}
	if p.MaxBodySize == 0 {
		p.MaxBodySize = defaultMaxPublishBody
	}
	k, err := parseKeyOption(repl, "key", p.Key)
	if err != nil || k == nil {
		return err
	}
	p.jwtKey, p.secret = k, k.Secret()
	return nil
}

// UnmarshalJSON decodes the handler's JSON config as Caddy does, with
// errors that name the field.
func (p *Publish) UnmarshalJSON(b []byte) error {
	type plain Publish // without this method
	return decodeNamed(b, (*plain)(p))
}

// Cleanup releases the hub.
func (p *Publish) Cleanup() error {
	p.ref.release()
	return nil
}

// ServeHTTP decodes a publish request and hands its items to the hub; a
// rejected batch delivers nothing. Each request is counted by its status.
func (p *Publish) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	sw := &statusWriter{ResponseWriter: w}
	err := p.serve(sw, r)
	code := sw.status
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		code = he.StatusCode
	}
	if code == 0 {
		code = http.StatusOK
	}
	p.ref.metrics.countPublish(code)
	return err
}

// serve is ServeHTTP before the request is counted.
func (p *Publish) serve(w http.ResponseWriter, r *http.Request) error {
	if !p.authorized(r.Header.Get("Authorization")) {
		p.reject(r, "missing or wrong key")
		w.Header().Set("WWW-Authenticate", `Bearer realm="grip_publish"`)
		writeText(w, http.StatusUnauthorized, "Unauthorized\n")
		return nil
	}
	// Pushpin's order: Accept, then path, then method.
	asJSON, ok := negotiate(r.Header.Values("Accept"))
	if !ok {
		writeText(w, http.StatusNotAcceptable, "Not Acceptable. Supported formats are text/plain and application/json.\n")
		return nil
	}
	if path := strings.TrimSuffix(r.URL.Path, "/"); !strings.HasSuffix(path, "/publish") {
		writeText(w, http.StatusNotFound, "Not Found\n")
		return nil
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeText(w, http.StatusMethodNotAllowed, "Method not allowed: "+r.Method+".\n")
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.MaxBodySize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			p.reject(r, "body too large")
			writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large (limit %d bytes).\n", p.MaxBodySize))
			return nil
		}
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	read := time.Now()
	items, err := formats.DecodePublishLimits(body, formats.DecodeLimits{MaxChannel: p.MaxChannelLength, MaxID: p.MaxIDLength})
	if err != nil {
		p.reject(r, err.Error())
		writeText(w, http.StatusBadRequest, err.Error()+"\n")
		return nil
	}
	if msg := overQueue(items, p.ref.hub.Config()); msg != "" {
		p.reject(r, msg)
		writeText(w, http.StatusRequestEntityTooLarge, msg+"\n")
		return nil
	}
	if err := p.ref.hub.Publish(items); err != nil {
		if errors.Is(err, hub.ErrItemTooLarge) {
			p.reject(r, err.Error())
			writeText(w, http.StatusRequestEntityTooLarge, err.Error()+"\n")
			return nil
		}
		p.logger.Warn("publish not delivered", zap.Error(err), zap.String("remote", r.RemoteAddr))
		w.Header().Set("Retry-After", "1")
		writeText(w, http.StatusServiceUnavailable, "Service Unavailable: "+err.Error()+"\n")
		return nil
	}
	p.ref.metrics.observeFanout(time.Since(read))
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"message":"Published"}`+"\n")
		return nil
	}
	writeText(w, http.StatusOK, "Published\n")
	return nil
}

// authorized checks the bearer token: the parsed secret itself (HMAC keys
// only), or a JWT the key verifies, with exp in the future and nbf, if any,
// not after now.
func (p *Publish) authorized(auth string) bool {
	if p.jwtKey == nil {
		return true
	}
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	tok := strings.TrimSpace(auth[len(prefix):])
	if p.secret != nil && subtle.ConstantTimeCompare([]byte(tok), p.secret) == 1 {
		return true
	}
	return strings.Count(tok, ".") == 2 && p.jwtKey.VerifyPublish(tok)
}

// overQueue explains why a batch cannot be delivered whole: more items or
// bytes for one channel than a subscriber's queue holds, which would cut
// every healthy subscriber of that channel as slow. "" means it fits.
func overQueue(items []*formats.Item, cfg hub.Config) string {
	if len(items) == 1 && items[0].Cost() <= cfg.QueueBytes {
		return ""
	}
	type load struct{ items, bytes int }
	per := make(map[string]load)
	for _, it := range items {
		l := per[it.Channel]
		l.items++
		l.bytes += it.Cost()
		per[it.Channel] = l
		switch {
		case l.items > cfg.QueueItems:
			return fmt.Sprintf("Batch too large: more than %d items for channel %.64q, more than a subscriber queue holds; split it into several publishes.", cfg.QueueItems, it.Channel)
		case l.bytes > cfg.QueueBytes:
			return fmt.Sprintf("Batch too large: more than %d bytes for channel %.64q, more than a subscriber queue holds; split it into several publishes.", cfg.QueueBytes, it.Channel)
		}
	}
	return ""
}

// statusWriter notes the status a publish is answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// reject logs a refused publish; publishers get the reason in the body.
func (p *Publish) reject(r *http.Request, reason string) {
	p.warnLog.Warn("publish rejected", append(newRequestInfo(r).fields(), zap.String("reason", reason))...)
}

// negotiate picks the reply format from Accept, in order of appearance:
// JSON for application/json or application/*, text for text/plain, text/*
// or */*; anything else alone is 406, as in Pushpin.
func negotiate(accept []string) (asJSON, ok bool) {
	if len(accept) == 0 {
		return false, true
	}
	for _, line := range accept {
		for _, part := range strings.Split(line, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			switch mt {
			case "application/json", "application/*":
				return true, true
			case "text/plain", "text/*", "*/*":
				return false, true
			}
		}
	}
	return false, false
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Publish)(nil)
	_ caddy.CleanerUpper          = (*Publish)(nil)
	_ json.Unmarshaler            = (*Publish)(nil)
	_ caddyhttp.MiddlewareHandler = (*Publish)(nil)
)
