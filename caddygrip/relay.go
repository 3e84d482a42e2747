package caddygrip

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/wsoverhttp"
)

func init() {
	caddy.RegisterModule(Relay{})
}

// relayMaxBody bounds a WebSocket-over-HTTP request body read by the
// relay: what grip posts at most (a batch of client messages, then one of
// the largest).
var relayMaxBody = wohResponseLimit(defaultMaxMessageSize)

// Relay is the WebSocket-over-HTTP origin of a route with no application:
// it puts each client WebSocket on a channel and publishes every message a
// client sends to that channel, so that a chat room is a Caddyfile. It
// answers the requests grip makes for client WebSockets; put grip before
// it in the route.
type Relay struct {
	// Channel is the channel every connection is put on and every message
	// published to, with placeholders: "room-{path.1}" gives each path its
	// own room. Required.
	Channel string `json:"channel,omitempty"`

	// Hub names the hub, the grip handler's. Default: "default".
	Hub string `json:"hub,omitempty"`

	// SkipSelf keeps a client's own messages from coming back to it (the
	// skip-self filter, with the connection id as sender and user).
	SkipSelf bool `json:"skip_self,omitempty"`

	ref    hubRef
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Relay) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.grip_relay",
		New: func() caddy.Module { return new(Relay) },
	}
}

// Provision checks the options and claims the hub.
func (rl *Relay) Provision(ctx caddy.Context) error {
	rl.logger = ctx.Logger()
	if rl.Channel == "" {
		return fmt.Errorf("grip_relay: channel: required")
	}
	hubName, err := replaceSet(caddy.NewReplacer(), "hub", rl.Hub)
	if err != nil {
		return fmt.Errorf("grip_relay: %w", err)
	}
	rl.Hub = hubName
	if err := rl.ref.claim(ctx, rl.Hub, rl.logger); err != nil {
		return fmt.Errorf("grip_relay: %w", err)
	}
	return nil
}

// Cleanup releases the hub.
func (rl *Relay) Cleanup() error {
	rl.ref.release()
	return nil
}

// ServeHTTP answers one WebSocket-over-HTTP request: OPEN with OPEN and the
// subscription, each TEXT or BINARY by publishing it, CLOSE with CLOSE.
func (rl *Relay) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if !isEventsType(r.Header.Get("Content-Type")) {
		writeText(w, http.StatusBadRequest, "grip_relay answers WebSocket-over-HTTP requests: put grip before it, and connect with a WebSocket.\n")
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(relayMaxBody)+1))
	if err != nil {
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	if len(body) > relayMaxBody {
		writeText(w, http.StatusRequestEntityTooLarge, "request too large\n")
		return nil
	}
	events, err := wsoverhttp.ParseEvents(body, 0)
	if err != nil {
		rl.logger.Warn("grip_relay: invalid WebSocket-over-HTTP request", zap.Error(err), zap.String("remote", r.RemoteAddr))
		writeText(w, http.StatusBadRequest, "invalid WebSocket-over-HTTP events\n")
		return nil
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	channel := repl.ReplaceKnown(rl.Channel, "")
	if channel == "" || len(channel) > formats.DefaultMaxChannelLen {
		rl.logger.Warn("grip_relay: no usable channel for the request", zap.String("channel", rl.Channel),
			zap.Int("length", len(channel)), zap.String("uri", r.RequestURI))
		writeText(w, http.StatusBadRequest, "no usable channel for this request\n")
		return nil
	}
	connID := r.Header.Get("Connection-Id")

	var out []wsoverhttp.Event
	var items []*formats.Item
	for _, ev := range events {
		switch ev.Type {
		case wsoverhttp.Open:
			out = append(out, wsoverhttp.Event{Type: wsoverhttp.Open})
			if rl.SkipSelf {
				out = append(out, controlEvent(map[string]any{"type": "set-meta", "name": "user", "value": connID}))
			}
			sub := map[string]any{"type": "subscribe", "channel": channel}
			if rl.SkipSelf {
				sub["filters"] = []string{hub.FilterSkipSelf}
			}
			out = append(out, controlEvent(sub))
		case wsoverhttp.Text, wsoverhttp.Binary:
			it := &formats.Item{Channel: channel, WSMessage: &formats.WSMessage{Action: formats.ActionSend, Type: "text", Content: ev.Content}}
			if ev.Type == wsoverhttp.Binary {
				it.WSMessage.Type = "binary"
			}
			if rl.SkipSelf {
				it.Meta = map[string]string{"sender": connID}
			}
			items = append(items, it)
		case wsoverhttp.Close:
			out = append(out, ev) // acknowledged with the same code
		}
	}
	if len(items) > 0 {
		if msg := overQueue(items, rl.ref.hub.Config()); msg != "" {
			writeText(w, http.StatusRequestEntityTooLarge, msg+"\n")
			return nil
		}
		if err := rl.ref.hub.Publish(items); err != nil {
			rl.logger.Warn("grip_relay: publish not delivered", zap.Error(err), zap.String("channel", channel))
			w.Header().Set("Retry-After", "1")
			writeText(w, http.StatusServiceUnavailable, "Service Unavailable: "+err.Error()+"\n")
			return nil
		}
	}
	w.Header().Set("Content-Type", wsoverhttp.ContentType)
	w.Header().Set("Sec-WebSocket-Extensions", wsoverhttp.GripExtension)
	_, _ = w.Write(wsoverhttp.AppendEvents(nil, out...))
	return nil
}

// controlEvent is a GRIP control message as a TEXT event.
func controlEvent(msg map[string]any) wsoverhttp.Event {
	b, _ := json.Marshal(msg) // maps of strings and string slices always encode
	return wsoverhttp.Event{Type: wsoverhttp.Text, Content: append([]byte(wsoverhttp.ControlPrefix), b...)}
}

func parseRelay(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	rl := new(Relay)
	err := rl.UnmarshalCaddyfile(h.Dispenser)
	return rl, err
}

// UnmarshalCaddyfile sets up the relay from Caddyfile tokens. Syntax:
//
//	grip_relay [<matcher>] <channel> {
//		hub       <name>
//		skip_self
//	}
func (rl *Relay) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.NextArg() {
		return d.Err("grip_relay: want a channel")
	}
	rl.Channel = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "hub":
			v, err := stringArg(d, "grip_relay", opt)
			if err != nil {
				return err
			}
			rl.Hub = v
		case "skip_self":
			if d.NextArg() {
				return d.ArgErr()
			}
			rl.SkipSelf = true
		default:
			return d.Errf("grip_relay: unknown option %q", opt)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*Relay)(nil)
	_ caddy.Provisioner           = (*Relay)(nil)
	_ caddy.CleanerUpper          = (*Relay)(nil)
	_ caddyfile.Unmarshaler       = (*Relay)(nil)
)
