package caddygrip

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/gripsig"
	"github.com/caddy-grip/grip/hub"
)

// Live sessions and reloads: a stream on a hijacked connection and a
// WebSocket session outlive the config that started them, and keep making
// origin requests (next and gone links, WebSocket-over-HTTP events). They
// make them through their handler's binding: the grip handler of the same
// hub and id in the config now running, and the rest of its route. A
// reload provisions a new handler under the same binding, and its first
// request rebinds, so a sig_key rotation or an upstream change reaches the
// sessions. When a reload leaves no handler with the binding's key, its
// sessions end after the old handler's reload_close_delay.

// bindings holds one binding per hub and id, across reloads.
var bindings = caddy.NewUsagePool()

// handlerGen orders handlers by provisioning, so that a request still
// served by an old config's handler never rebinds its sessions back.
var handlerGen atomic.Uint64

// route is what a bound session's origin requests go through.
type route struct {
	g      *Grip
	next   caddyhttp.Handler
	server *caddyhttp.Server
}

// binding is the route of one hub and id in the config now running.
type binding struct {
	key string
	cur atomic.Pointer[route]

	mu       sync.Mutex
	sessions map[*hub.Subscriber]*hub.Hub // live sessions bound here, with their hub
	delay    time.Duration                // the last handler's reload_close_delay
	log      *zap.Logger
}

// Destruct ends the binding's sessions, once no config has a handler with
// its key, after the last handler's reload_close_delay.
func (b *binding) Destruct() error {
	b.mu.Lock()
	delay, log := b.delay, b.log
	n := len(b.sessions)
	b.mu.Unlock()
	if n == 0 {
		return nil
	}
	log.Info("the route of live sessions is gone: ending them",
		zap.String("binding", b.key), zap.Int("sessions", n), zap.Duration("reload_close_delay", delay))
	time.AfterFunc(delay, b.endAll)
	return nil
}

// endAll ends every session still bound here, as an exit drain would: a
// stream ends cleanly, a WebSocket closes with 1001.
func (b *binding) endAll() {
	b.mu.Lock()
	live := make(map[*hub.Subscriber]*hub.Hub, len(b.sessions))
	for s, h := range b.sessions {
		live[s] = h
	}
	b.mu.Unlock()
	for s, h := range live {
		h.End(s, hub.ReasonDrain)
	}
}

// track binds a live session; untrack unbinds it when it ends.
func (b *binding) track(s *hub.Subscriber, h *hub.Hub) {
	if b == nil || s == nil {
		return
	}
	b.mu.Lock()
	b.sessions[s] = h
	b.mu.Unlock()
}

func (b *binding) untrack(s *hub.Subscriber) {
	if b == nil || s == nil {
		return
	}
	b.mu.Lock()
	delete(b.sessions, s)
	b.mu.Unlock()
}

// serve makes g, with next, the binding's route if g is the newest handler
// to serve a request under it: one atomic load on the request path once
// the binding is current.
func (b *binding) serve(g *Grip, next caddyhttp.Handler, r *http.Request) {
	if b == nil {
		return
	}
	cur := b.cur.Load()
	if cur != nil && cur.g.gen >= g.gen {
		return
	}
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	next0 := &route{g: g, next: next, server: srv}
	for !b.cur.CompareAndSwap(cur, next0) {
		if cur = b.cur.Load(); cur != nil && cur.g.gen >= g.gen {
			return
		}
	}
}

// current is the binding's route, or nil before any request.
func (b *binding) current() *route {
	if b == nil {
		return nil
	}
	return b.cur.Load()
}

// bindingKey names a binding: the hub and the handler's id.
func bindingKey(hubName, id string) string { return hubName + "\x00" + id }

// sharedKeys notes, per config being loaded, the handlers of each binding
// key: two handlers of one config with the same hub and id cannot tell
// whose sessions are whose, so neither rebinds.
var sharedKeys = struct {
	mu sync.Mutex
	m  map[context.Context]map[string][]*Grip
}{m: make(map[context.Context]map[string][]*Grip)}

// bind gives g its binding, unless another handler of the same config has
// the same hub and id; then both keep their sessions on their own route,
// and a warning says to set id.
func (g *Grip) bind(ctx caddy.Context) error {
	key := bindingKey(g.ref.name, g.ID)
	sharedKeys.mu.Lock()
	perConfig, ok := sharedKeys.m[ctx.Context]
	if !ok {
		perConfig = make(map[string][]*Grip)
		sharedKeys.m[ctx.Context] = perConfig
		cfgCtx := ctx.Context
		ctx.OnCancel(func() {
			sharedKeys.mu.Lock()
			delete(sharedKeys.m, cfgCtx)
			sharedKeys.mu.Unlock()
		})
	}
	perConfig[key] = append(perConfig[key], g)
	same := perConfig[key]
	sharedKeys.mu.Unlock()
	if len(same) > 1 {
		for _, other := range same {
			other.unbind()
			other.binding = nil
		}
		g.logger.Warn("several grip handlers share a hub and id: their live sessions keep the route they started on across reloads; give each an id",
			zap.String("hub", g.ref.name), zap.String("id", g.ID))
		return nil
	}
	val, _, err := bindings.LoadOrNew(key, func() (caddy.Destructor, error) {
		return &binding{key: key, sessions: make(map[*hub.Subscriber]*hub.Hub)}, nil
	})
	if err != nil {
		return err
	}
	b := val.(*binding)
	b.mu.Lock()
	b.delay, b.log = time.Duration(g.ReloadCloseDelay), g.logger
	b.mu.Unlock()
	g.binding, g.bindingKey = b, key
	g.bindHeld = true
	return nil
}

// unbind drops g's claim on its binding, once (Cleanup, or a shared key).
// The field stays for the sessions that read it, except when provisioning
// finds the key shared: no session has started then.
func (g *Grip) unbind() {
	if g.binding == nil || !g.bindHeld {
		return
	}
	g.bindHeld = false
	_, _ = bindings.Delete(g.bindingKey)
}

// signerNow is the Grip-Sig signer of the route a session is bound to now.
func (g *Grip) signerNow() *gripsig.Signer {
	if r := g.binding.current(); r != nil {
		return r.g.signer
	}
	return g.signer
}
