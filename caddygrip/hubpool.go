package caddygrip

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/natsbus"
)

// DefaultHub is the hub name used when a handler names none.
const DefaultHub = "default"

// hubs keeps every named hub alive across config reloads: a reload provisions
// the new handlers (reference 1 -> 2) before cleaning up the old ones
// (2 -> 1), so held connections and their subscriptions never notice.
var hubs = caddy.NewUsagePool()

// pooledHub is a hub in the usage pool, with the bus it was given and its
// metrics collector, which lives as long as it, so counts survive reloads:
// the pool closes it once no config uses it.
type pooledHub struct {
	*hub.Hub
	metrics *hubMetrics

	busMu  sync.Mutex
	busKey string       // identity of the NATS options in use; "" for the local bus
	nats   *natsbus.Bus // the NATS bus in use, or nil
	owner  *App         // the app that set the bus, until it stops

	// The history's resume extensions (see HistoryOptions.Resume).
	resumeLastEventID, resumeWebSocket atomic.Bool
}

// Destruct closes the hub, and its bus, when the last handler naming it is
// cleaned up.
func (p *pooledHub) Destruct() error {
	p.Close()
	return nil
}

// useBus gives the hub the bus that opts describe (nil: the local bus)
// unless it has that one already, so an unchanged configuration keeps its
// NATS connection across reloads. A new bus follows the hub's channels
// before the old one closes, so held clients stay subscribed.
func (p *pooledHub) useBus(owner *App, name string, opts *natsbus.Options, key string, logger *zap.Logger) error {
	p.busMu.Lock()
	defer p.busMu.Unlock()
	p.owner = owner
	if key == p.busKey {
		return nil
	}
	if opts == nil {
		p.SetBus(nil)
		p.busKey, p.nats = "", nil
		logger.Info("hub bus is local", zap.String("hub", name))
		return nil
	}
	o := *opts
	o.Prefix = hubSubjectPrefix(opts.Prefix, name)
	h := p.Hub
	o.LastID = h.NoteLastPublished
	log := logger.With(zap.String("hub", name))
	o.Log = func(event string, err error) {
		if err != nil {
			log.Warn("nats "+event, zap.Error(err))
			return
		}
		log.Info("nats " + event)
	}
	b, err := natsbus.New(o, h.Receive, h.Missed)
	if err != nil {
		return err
	}
	h.SetBus(b)
	p.busKey, p.nats = key, b
	log.Info("hub joined NATS", zap.Strings("urls", o.URLs), zap.String("subject_prefix", o.Prefix))
	return nil
}

// useConfig gives the hub the limits and history the config asks for;
// the zero value is every default and no history. Queued items and kept
// history stay until taken or pushed out.
func (p *pooledHub) useConfig(cfg hub.Config, r resumeFlags) {
	p.Configure(cfg)
	p.resumeLastEventID.Store(r.lastEventID)
	p.resumeWebSocket.Store(r.websocket)
}

// natsStats reports the hub's NATS bus, for metrics; false with the local
// bus.
func (p *pooledHub) natsStats() (natsbus.Stats, bool) {
	p.busMu.Lock()
	b := p.nats
	p.busMu.Unlock()
	if b == nil {
		return natsbus.Stats{}, false
	}
	return b.Stats(), true
}

// disown is called when owner's config stops: if no later config's app
// has set the hub's bus since, the config that follows has no `grip`
// option (or none is left), and the hub returns to the local bus.
func (p *pooledHub) disown(owner *App, name string, logger *zap.Logger) {
	p.busMu.Lock()
	defer p.busMu.Unlock()
	if p.owner != owner {
		return
	}
	p.owner = nil
	p.useConfig(hub.Config{}, resumeFlags{})
	if p.busKey != "" {
		p.SetBus(nil)
		p.busKey, p.nats = "", nil
		logger.Info("hub bus is local", zap.String("hub", name))
	}
}

// hubRef is one handler's claim on a pooled hub; release is safe to call
// whether or not acquire succeeded, since Caddy cleans up modules even when
// their Provision failed.
type hubRef struct {
	name     string
	hub      *hub.Hub
	pooled   *pooledHub
	metrics  *hubMetrics
	acquired bool
}

// acquire loads the named hub, creating it on first use, and points its
// logger at the current config's logger (the old one is closed on reload).
func (ref *hubRef) acquire(name string, logger *zap.Logger) error {
	if name == "" {
		name = DefaultHub
	}
	val, _, err := hubs.LoadOrNew(name, func() (caddy.Destructor, error) {
		p := &pooledHub{Hub: hub.New(hub.Config{})}
		p.metrics = newHubMetrics(name, p.Hub, p.natsStats)
		return p, nil
	})
	if err != nil {
		return err
	}
	ref.name = name
	ref.pooled = val.(*pooledHub)
	ref.hub = ref.pooled.Hub
	ref.metrics = ref.pooled.metrics
	ref.acquired = true
	ref.hub.SetLogger(logger.With(zap.String("hub", name)))
	return nil
}

// release drops this handler's claim on its hub.
func (ref *hubRef) release() {
	if !ref.acquired {
		return
	}
	ref.acquired = false
	_, _ = hubs.Delete(ref.name)
}

// lookupPooled returns the pool entry of the named hub, or nil.
func lookupPooled(name string) *pooledHub {
	var found *pooledHub
	hubs.Range(func(key, value any) bool {
		if key == name {
			found = value.(*pooledHub)
			return false
		}
		return true
	})
	return found
}

// LookupHub returns the live hub of that name, or nil, without claiming it:
// for admin endpoints and tests that observe a running server.
func LookupHub(name string) *hub.Hub {
	if p := lookupPooled(name); p != nil {
		return p.Hub
	}
	return nil
}

// join registers the claimed hub with the config's grip app, which gives
// it its bus when the config starts. Without the app (no `grip` global
// option) the hub keeps its bus until the app that set it stops.
func (ref *hubRef) join(ctx caddy.Context) error {
	app, err := ctx.AppIfConfigured("grip")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading the grip app: %w", err)
	}
	app.(*App).register(ref.name, ref.pooled)
	return nil
}

// claim is what every handler of a hub does at Provision: acquire the hub,
// register its metrics in the config's registry, and join the config's
// grip app.
func (ref *hubRef) claim(ctx caddy.Context, name string, logger *zap.Logger) error {
	if err := ref.acquire(name, logger); err != nil {
		return fmt.Errorf("hub %q: %w", name, err)
	}
	if err := ref.registerMetrics(ctx); err != nil {
		return fmt.Errorf("hub %q: registering metrics: %w", name, err)
	}
	return ref.join(ctx)
}
