package caddygrip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/gripsig"
	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/instruct"
)

func init() {
	caddy.RegisterModule(Grip{})
}

// Defaults, as in Pushpin where Pushpin has one.
const (
	defaultMaxInstructSize = 100000
	defaultSigIss          = "caddy-grip"
	defaultWriteTimeout    = 10 * time.Second
)

// gripFeatures is sent to the origin in Grip-Feature: the GRIP features this
// build implements, so that origins may rely on them.
const gripFeatures = "status, link:next, link:gone, filter:skip-self, filter:skip-users, filter:require-sub, filter:build-id, filter:var-subst"

// Grip is a middleware that makes the rest of its route a GRIP origin. It
// signs and forwards each request through the route; when the response
// carries GRIP instructions it holds the client connection in a hub and
// pushes to it whatever is published to its channels. Other responses pass
// through untouched and unbuffered.
type Grip struct {
	// Hub names the hub this handler subscribes clients in; grip_publish
	// handlers naming the same hub publish to them. Default: "default".
	Hub string `json:"hub,omitempty"`

	// SigKey signs a Grip-Sig JWT on every request to the origin: a secret
	// (HS256), "base64:<secret>", or "file:<path>" to a PEM key (EC gives
	// ES256, RSA gives RS256). Requests are not signed when it is empty.
	SigKey string `json:"sig_key,omitempty"`

	// SigIss is the Grip-Sig issuer claim. Default: "caddy-grip".
	SigIss string `json:"sig_iss,omitempty"`

	// UpstreamKey verifies a Grip-Sig presented by the client. A client
	// with a valid one is trusted (a GRIP proxy in front of this one): its
	// Grip-* headers are kept and GRIP responses go back to it unprocessed.
	// In the same forms as SigKey; a public key suffices.
	UpstreamKey string `json:"upstream_key,omitempty"`

	// MaxInstructSize caps the GRIP response body read from the origin, in
	// bytes. Default: 100000, as in Pushpin.
	MaxInstructSize int `json:"max_instruct_size,omitempty"`

	// WriteTimeout bounds every write to a held client; a client that
	// cannot take a write within it is disconnected. Default: 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// WebSocket is "over_http" (the default): client WebSockets are
	// terminated here and spoken to the origin as WebSocket-over-HTTP; or
	// "passthrough": upgrades go to the next handler untouched.
	WebSocket string `json:"websocket,omitempty"`

	// Origins limits the Origin header of client WebSockets, as patterns
	// such as "https://*.example.com"; empty allows any, as Pushpin does.
	Origins []string `json:"origins,omitempty"`

	// MaxMessageSize is the largest client WebSocket message, in bytes; a
	// larger one closes the connection with 1009. Default: 1048576.
	MaxMessageSize int `json:"max_message_size,omitempty"`

	// UpdateOnFirstSubscription, on by default as in Pushpin 1.41, updates
	// every hold on a channel a second after the channel's first
	// subscription on this node: response holds re-request the origin and
	// streams fetch their next link, so that an item published between the
	// origin's answer and the subscription is not lost. Set false to save
	// those origin requests when prev-ids already cover the race.
	UpdateOnFirstSubscription *bool `json:"update_on_first_subscription,omitempty"`

	// AutoCrossOrigin adds the CORS headers Pushpin's auto_cross_origin
	// adds (those the response lacks), and answers JSON-P requests (GET with
	// a callback parameter) for browsers without CORS.
	AutoCrossOrigin bool `json:"auto_cross_origin,omitempty"`

	// JSONP tunes JSON-P under AutoCrossOrigin; nil means Pushpin's
	// defaults (extended mode, callback parameter "callback").
	JSONP *JSONP `json:"jsonp,omitempty"`

	// ID tells apart grip handlers that share a hub, so that across a
	// reload the live streams and WebSocket sessions of each find its
	// successor (the handler with the same hub and id in the new config)
	// and make their origin requests through it. Two handlers of one
	// config with the same hub and id keep their sessions on the route
	// they started on.
	ID string `json:"id,omitempty"`

	// ReloadCloseDelay is how long live streams and WebSocket sessions go
	// on after a reload leaves no handler with their hub and id, before
	// they end as on exit (a stream ends cleanly, a WebSocket closes with
	// 1001). Default: 0, at once, as reverse_proxy's stream_close_delay.
	ReloadCloseDelay caddy.Duration `json:"reload_close_delay,omitempty"`

	ref        hubRef
	gen        uint64   // provisioning order, for rebinding
	binding    *binding // this handler's binding; nil when its key is shared
	bindingKey string
	bindHeld   bool            // the claim on binding is held; Provision and Cleanup only
	sessions   *sync.WaitGroup // WebSocket sessions, which Caddy's shutdown does not wait for
	signer     *gripsig.Signer
	upstream   *gripsig.Key
	logger     *zap.Logger
	warnLog    *zap.Logger // logger, rate-limited, for warnings that can repeat per client
}

// CaddyModule returns the Caddy module information.
func (Grip) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.grip",
		New: func() caddy.Module { return new(Grip) },
	}
}

// Provision checks the options, parses the keys, claims the hub and
// arranges the drain on exit.
func (g *Grip) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	g.warnLog = hub.RateLimited(g.logger)
	g.sessions = new(sync.WaitGroup)
	if err := g.provisionOptions(caddy.NewReplacer()); err != nil {
		return err
	}
	if err := g.ref.claim(ctx, g.Hub, g.logger); err != nil {
		return err
	}
	g.gen = handlerGen.Add(1)
	if err := g.bind(ctx); err != nil {
		return err
	}
	return onExit(ctx, g.drain)
}

// provisionOptions replaces placeholders in the string options, checks
// every option and fills in the defaults. An option given but empty after
// placeholders, or invalid, is an error naming it: the handler fails
// closed rather than running without what the option asked for.
func (g *Grip) provisionOptions(repl *caddy.Replacer) error {
	err := replaceOptions(repl, map[string]*string{
		"hub":       &g.Hub,
		"sig_iss":   &g.SigIss,
		"websocket": &g.WebSocket,
		"id":        &g.ID,
	})
	if err != nil {
		return err
	}
	switch g.WebSocket {
	case "", "over_http", "passthrough":
	default:
		return fmt.Errorf("websocket %q: want over_http or passthrough", g.WebSocket)
	}
	if g.Origins, err = replaceList(repl, "origins", g.Origins); err != nil {
		return err
	}
	if j := g.JSONP; j != nil {
		err := replaceOptions(repl, map[string]*string{
			"jsonp.mode":             &j.Mode,
			"jsonp.callback":         &j.Callback,
			"jsonp.body_param":       &j.BodyParam,
			"jsonp.default_callback": &j.DefaultCallback,
			"jsonp.default_method":   &j.DefaultMethod,
		})
		if err != nil {
			return err
		}
		if err := j.Validate(); err != nil {
			return fmt.Errorf("jsonp: %w", err)
		}
	}
	if err := notNegative("max_instruct_size", g.MaxInstructSize, "number of bytes"); err != nil {
		return err
	}
	if err := notNegative("max_message_size", g.MaxMessageSize, "number of bytes"); err != nil {
		return err
	}
	if g.WriteTimeout < 0 {
		return fmt.Errorf("write_timeout %v: want a positive duration", time.Duration(g.WriteTimeout))
	}
	if g.ReloadCloseDelay < 0 {
		return fmt.Errorf("reload_close_delay %v: want a duration, 0 or more", time.Duration(g.ReloadCloseDelay))
	}
	if g.SigIss == "" {
		g.SigIss = defaultSigIss
	}
	if g.MaxInstructSize == 0 {
		g.MaxInstructSize = defaultMaxInstructSize
	}
	if g.MaxMessageSize == 0 {
		g.MaxMessageSize = defaultMaxMessageSize
	}
	if g.WriteTimeout == 0 {
		g.WriteTimeout = caddy.Duration(defaultWriteTimeout)
	}
	sig, err := parseKeyOption(repl, "sig_key", g.SigKey)
	if err != nil {
		return err
	}
	if sig != nil {
		if g.signer, err = gripsig.NewSigner(sig, g.SigIss, 0); err != nil {
			return fmt.Errorf("sig_key: %w", err)
		}
	}
	if g.upstream, err = parseKeyOption(repl, "upstream_key", g.UpstreamKey); err != nil {
		return err
	}
	return nil
}

// UnmarshalJSON decodes the handler's JSON config as Caddy does, with
// errors that name the field.
func (g *Grip) UnmarshalJSON(b []byte) error {
	type plain Grip // without this method
	return decodeNamed(b, (*plain)(g))
}

// updateOnFirstSubscription reports the option, with its default.
func (g *Grip) updateOnFirstSubscription() bool {
	return g.UpdateOnFirstSubscription == nil || *g.UpdateOnFirstSubscription
}

// drain ends every held connection for exit, then gives WebSocket sessions
// a moment to tell their origin: Caddy's shutdown does not wait for
// hijacked connections, so nothing else would.
func (g *Grip) drain() {
	g.ref.hub.Drain()
	done := make(chan struct{})
	go func() {
		g.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(wsDrainWait):
	}
}

// Cleanup releases the hub and the binding; held connections keep the hub
// alive across a reload.
func (g *Grip) Cleanup() error {
	g.unbind()
	g.ref.release()
	return nil
}

// ServeHTTP forwards the request through the route and holds the client
// when the origin answers with GRIP instructions.
func (g *Grip) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	g.binding.serve(g, next, r)
	// Trust is decided on the client's own headers, before JSON-P could
	// add any.
	if g.upstream != nil {
		if sig := r.Header.Get("Grip-Sig"); sig != "" && g.upstream.Verify(sig) {
			return next.ServeHTTP(w, r)
		}
	}
	if !g.AutoCrossOrigin {
		return g.serve(w, r, next)
	}
	w, r, finish, err := crossOrigin(w, r, g.JSONP)
	if err != nil {
		var je *JSONPError
		if errors.As(err, &je) {
			g.logger.Debug("bad JSON-P request", zap.Error(err), zap.String("uri", r.RequestURI))
			je.respond(w)
			return finish()
		}
		return err
	}
	err = g.serve(w, r, next)
	if ferr := finish(); err == nil {
		err = ferr
	}
	return err
}

// serve is ServeHTTP for an untrusted client, after any cross-origin
// wrapping.
func (g *Grip) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if isWebSocketEvents(r.Header) {
		g.logger.Info("refused a client sending websocket events", zap.String("remote", r.RemoteAddr))
		writeText(w, http.StatusForbidden, "Client not allowed to send WebSocket events directly.\n")
		return nil
	}
	if err := g.prepareOriginRequest(r.Header); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	if g.WebSocket != "passthrough" && isWebSocketUpgrade(r) {
		return g.serveWebSocket(w, r, next)
	}
	s := &session{g: g, w: w, r: r, next: next, who: newRequestInfo(r)}
	defer s.endHold()
	rec := newRecorder(w, g.MaxInstructSize, s.decide)
	err := next.ServeHTTP(rec, r)
	switch rec.mode {
	case modeUndecided, modePass:
		return err
	case modeStream:
		s.hold.sent(0, rec.streamed)
		return s.holdStream()
	case modeDiscard:
		return s.fail(s.err)
	}
	if err != nil {
		return err
	}
	if rec.buf.overflow {
		return s.fail(&instruct.Error{Header: "body", Msg: fmt.Sprintf("GRIP instruct response too large (over %d bytes)", g.MaxInstructSize)})
	}
	return s.serveBuffered(rec.status, rec.buf.Bytes())
}

// prepareOriginRequest removes whatever GRIP headers the client sent, so
// that nobody can forge instructions or signatures, and adds ours.
func (g *Grip) prepareOriginRequest(h http.Header) error {
	stripGripHeaders(h)
	// Published content is never compressed, so the origin's initial body
	// must not be either; an encode handler in front may compress it all.
	h.Del("Accept-Encoding")
	h.Set("Grip-Feature", gripFeatures)
	if g.signer != nil {
		tok, err := g.signer.Token()
		if err != nil {
			return fmt.Errorf("signing Grip-Sig: %w", err)
		}
		h.Set("Grip-Sig", tok)
	}
	return nil
}

// Handle drains the hub when Caddy exits, so that held responses end
// within the grace period instead of holding the shutdown open.
type exitDrainer func()

// Handle implements caddyevents.Handler.
func (d exitDrainer) Handle(context.Context, caddy.Event) error {
	if caddy.Exiting() {
		d()
	}
	return nil
}

// onExit runs drain when this config is stopped because the process exits
// (and not on a reload, where held connections carry on).
func onExit(ctx caddy.Context, drain func()) error {
	app, err := ctx.App("events")
	if err != nil {
		return fmt.Errorf("loading events app: %w", err)
	}
	return app.(*caddyevents.App).On("stopping", exitDrainer(drain))
}

// stripGripHeaders deletes every Grip-* header. Header keys are canonical,
// so a prefix test on them suffices.
func stripGripHeaders(h http.Header) {
	for k := range h {
		if instruct.IsGripHeader(k) {
			delete(h, k)
		}
	}
}

// isWebSocketEvents reports a client posting WebSocket-over-HTTP events.
func isWebSocketEvents(h http.Header) bool {
	return isEventsType(h.Get("Content-Type"))
}

// writeText answers with a short plain-text body.
func writeText(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Grip)(nil)
	_ json.Unmarshaler            = (*Grip)(nil)
	_ caddy.CleanerUpper          = (*Grip)(nil)
	_ caddyhttp.MiddlewareHandler = (*Grip)(nil)
	_ caddyevents.Handler         = exitDrainer(nil)
)
