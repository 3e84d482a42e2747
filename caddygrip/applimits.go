package caddygrip

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-grip/grip/hub"
)

// HubLimits bounds what every hub of this node holds for its subscribers
// and publishers, the `limits` block of the `grip` global option. A field
// left zero keeps the hub's default.
type HubLimits struct {
	// QueueItems is how many items may wait for one subscriber before it
	// is cut off as slow. Default: 1000.
	QueueItems int `json:"queue_items,omitempty"`
	// QueueBytes is how many bytes of items may wait for one subscriber
	// before it is cut off as slow. Default: 1 MiB.
	QueueBytes int `json:"queue_bytes,omitempty"`
	// DedupWindow is how long a (channel, id) is remembered so that the
	// same item published twice is delivered once; negative turns
	// de-duplication off. Default: 60s, as Pushpin's id_cache_ttl.
	DedupWindow caddy.Duration `json:"dedup_window,omitempty"`
	// DedupBytes is the memory the de-dup window may use; when full the
	// oldest ids are forgotten early. Default: 64 MiB.
	DedupBytes int `json:"dedup_bytes,omitempty"`
	// SequencerWait is how long an item whose prev-id is not the channel's
	// last id waits for the one it follows before it is delivered anyway.
	// Default: 5s, as Pushpin's message_wait.
	SequencerWait caddy.Duration `json:"sequencer_wait,omitempty"`
	// SequencerItems is how many such items wait per channel. Default: 100.
	SequencerItems int `json:"sequencer_items,omitempty"`
	// SequencerBytes is how many bytes of such items wait per channel; an
	// item past it is dropped and counted. Default: 4 MiB.
	SequencerBytes int `json:"sequencer_bytes,omitempty"`
	// WakeInterval paces the wake-ups of a busy channel's subscribers so
	// that each writes a run of items at once; negative wakes them on
	// every publish. Default: 10ms.
	WakeInterval caddy.Duration `json:"wake_interval,omitempty"`
}

// apply checks the limits and sets them in cfg; nil keeps cfg as it is.
func (l *HubLimits) apply(cfg *hub.Config) error {
	if l == nil {
		return nil
	}
	for _, o := range []struct {
		name string
		v    int
		dst  *int
		unit string
	}{
		{"queue_items", l.QueueItems, &cfg.QueueItems, "number of items"},
		{"queue_bytes", l.QueueBytes, &cfg.QueueBytes, "number of bytes"},
		{"dedup_bytes", l.DedupBytes, &cfg.DedupBytes, "number of bytes"},
		{"sequencer_items", l.SequencerItems, &cfg.SequencerMax, "number of items"},
		{"sequencer_bytes", l.SequencerBytes, &cfg.SequencerBytes, "number of bytes"},
	} {
		if o.v < 0 {
			return fmt.Errorf("%s %d: want a positive %s", o.name, o.v, o.unit)
		}
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	if l.SequencerWait < 0 {
		return fmt.Errorf("sequencer_wait %v: want a positive duration", time.Duration(l.SequencerWait))
	}
	for _, o := range []struct {
		v   caddy.Duration
		dst *time.Duration
	}{
		{l.DedupWindow, &cfg.IDCacheTTL},
		{l.SequencerWait, &cfg.MessageWait},
		{l.WakeInterval, &cfg.WakeInterval},
	} {
		if o.v != 0 {
			*o.dst = time.Duration(o.v)
		}
	}
	return nil
}

// parseLimits reads the `limits` block of the `grip` global option; a
// limit given twice, without its one value, or with a value that is not a
// positive number (or size, or duration) is an error naming it.
func parseLimits(d *caddyfile.Dispenser) (*HubLimits, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	l := new(HubLimits)
	seen := map[string]bool{}
	for d.NextBlock(1) {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("grip: limits: %s given twice", name)
		}
		seen[name] = true
		const in = "grip: limits"
		var err error
		switch name {
		case "queue_items":
			l.QueueItems, err = intArg(d, in, name)
		case "sequencer_items":
			l.SequencerItems, err = intArg(d, in, name)
		case "queue_bytes":
			l.QueueBytes, err = sizeArg(d, in, name)
		case "dedup_bytes":
			l.DedupBytes, err = sizeArg(d, in, name)
		case "sequencer_bytes":
			l.SequencerBytes, err = sizeArg(d, in, name)
		case "dedup_window":
			l.DedupWindow, err = durationOrOffArg(d, in, name)
		case "wake_interval":
			l.WakeInterval, err = durationOrOffArg(d, in, name)
		case "sequencer_wait":
			l.SequencerWait, err = durationArg(d, in, name)
		default:
			return nil, d.Errf("grip: limits: unknown limit %q", name)
		}
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}
