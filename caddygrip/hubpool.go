package caddygrip

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/hub"
)

// DefaultHub is the hub name used when a handler names none.
const DefaultHub = "default"

// hubs keeps every named hub alive across config reloads: a reload provisions
// the new handlers (reference 1 -> 2) before cleaning up the old ones
// (2 -> 1), so held connections and their subscriptions never notice.
var hubs = caddy.NewUsagePool()

// pooledHub lets the usage pool close a hub once no config uses it. Its
// metrics collector lives as long as it, so counts survive reloads.
type pooledHub struct {
	*hub.Hub
	metrics *hubMetrics
}

// Destruct closes the hub when the last handler naming it is cleaned up.
func (p pooledHub) Destruct() error {
	p.Close()
	return nil
}

// hubRef is one handler's claim on a pooled hub; release is safe to call
// whether or not acquire succeeded, since Caddy cleans up modules even when
// their Provision failed.
type hubRef struct {
	name     string
	hub      *hub.Hub
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
		h := hub.New(hub.Config{})
		return pooledHub{Hub: h, metrics: newHubMetrics(name, h)}, nil
	})
	if err != nil {
		return err
	}
	ref.name = name
	ref.hub = val.(pooledHub).Hub
	ref.metrics = val.(pooledHub).metrics
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

// LookupHub returns the live hub of that name, or nil, without claiming it:
// for admin endpoints and tests that observe a running server.
func LookupHub(name string) *hub.Hub {
	var found *hub.Hub
	hubs.Range(func(key, value any) bool {
		if key == name {
			found = value.(pooledHub).Hub
			return false
		}
		return true
	})
	return found
}
