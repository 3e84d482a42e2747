package caddygrip

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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

	// Key, when set, is required as "Authorization: Bearer <key>"; a JWT
	// signed with it (HS256, as GRIP libraries make from an issuer and
	// key) is accepted too. Pushpin's endpoint has no authentication, so
	// keep it on a private listener when no key is set.
	Key string `json:"key,omitempty"`

	// MaxBodySize caps a publish request body, in bytes. Default: 1000000.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	ref    hubRef
	key    []byte
	jwtKey *SigKey
	logger *zap.Logger
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
	if p.MaxBodySize <= 0 {
		p.MaxBodySize = defaultMaxPublishBody
	}
	if key := caddy.NewReplacer().ReplaceKnown(p.Key, ""); key != "" {
		p.key = []byte(key)
		k, err := ParseSigKey(key)
		if err != nil {
			return fmt.Errorf("key: %w", err)
		}
		p.jwtKey = k
	}
	if err := p.ref.acquire(p.Hub, p.logger); err != nil {
		return fmt.Errorf("hub %q: %w", p.Hub, err)
	}
	return nil
}

// Cleanup releases the hub.
func (p *Publish) Cleanup() error {
	p.ref.release()
	return nil
}

// ServeHTTP decodes a publish request and hands its items to the hub; a
// rejected batch delivers nothing.
func (p *Publish) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
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
	items, err := hub.DecodePublish(body)
	if err != nil {
		p.reject(r, err.Error())
		writeText(w, http.StatusBadRequest, err.Error()+"\n")
		return nil
	}
	if err := p.ref.hub.Publish(items); err != nil {
		p.logger.Warn("publish not delivered", zap.Error(err), zap.String("remote", r.RemoteAddr))
		w.Header().Set("Retry-After", "1")
		writeText(w, http.StatusServiceUnavailable, "Service Unavailable: "+err.Error()+"\n")
		return nil
	}
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"message":"Published"}`+"\n")
		return nil
	}
	writeText(w, http.StatusOK, "Published\n")
	return nil
}

// authorized checks the bearer token: the key itself, or a valid JWT
// signed with it.
func (p *Publish) authorized(auth string) bool {
	if p.key == nil {
		return true
	}
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	tok := strings.TrimSpace(auth[len(prefix):])
	if subtle.ConstantTimeCompare([]byte(tok), p.key) == 1 {
		return true
	}
	return strings.Count(tok, ".") == 2 && p.jwtKey.Verify(tok)
}

// reject logs a refused publish; publishers get the reason in the body.
func (p *Publish) reject(r *http.Request, reason string) {
	p.logger.Warn("publish rejected", zap.String("reason", reason), zap.String("remote", r.RemoteAddr))
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
	_ caddyhttp.MiddlewareHandler = (*Publish)(nil)
)
