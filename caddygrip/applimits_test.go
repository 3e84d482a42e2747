package caddygrip

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddy-grip/grip/hub"
	"github.com/caddyserver/caddy/v2"
)

func TestGlobalLimitsOptionAdaptsAndFailsClosed(t *testing.T) {
	app, err := adaptApp(t, `	grip {
		limits {
			queue_items     50
			queue_bytes     256KiB
			dedup_window    off
			dedup_bytes     8MiB
			sequencer_wait  2s
			sequencer_items 10
			sequencer_bytes 1MiB
			wake_interval   5ms
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(app)
	want := `{"limits":{"dedup_bytes":8388608,"dedup_window":-1,"queue_bytes":262144,"queue_items":50,"sequencer_bytes":1048576,"sequencer_items":10,"sequencer_wait":2000000000,"wake_interval":5000000}}`
	if string(got) != want {
		t.Fatalf("adapted\n got %s\nwant %s", got, want)
	}
	for _, tc := range []struct{ limit, want string }{
		{"queue_items 0", `queue_items "0": want a positive integer`},
		{"queue_items -3", `queue_items "-3": want a positive integer`},
		{"queue_items", "wrong argument count"},
		{"queue_bytes lots", `queue_bytes "lots": want a size`},
		{"dedup_bytes 0", `dedup_bytes "0": want a size`},
		{"dedup_window soon", `dedup_window "soon": want a positive duration or off`},
		{"sequencer_wait off", `sequencer_wait "off": want a positive duration`},
		{"wake_interval 0s", `wake_interval "0s": want a positive duration or off`},
		{"queue_items 1\n\t\t\tqueue_items 2", "queue_items given twice"},
		{"queue_length 5", `unknown limit "queue_length"`},
	} {
		global := "\tgrip {\n\t\tlimits {\n\t\t\t" + tc.limit + "\n\t\t}\n\t}"
		if _, err := adaptApp(t, global); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.limit, err, tc.want)
		}
	}
	if _, err := adaptApp(t, "\tgrip {\n\t\tlimits {\n\t\t}\n\t\tlimits {\n\t\t}\n\t}"); err == nil || !strings.Contains(err.Error(), "limits given twice") {
		t.Errorf("limits twice: %v", err)
	}
	for _, l := range []HubLimits{{QueueItems: -1}, {QueueBytes: -1}, {DedupBytes: -1}, {SequencerItems: -1}, {SequencerBytes: -1}, {SequencerWait: -1}} {
		var cfg hub.Config
		if err := l.apply(&cfg); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

// The app gives every hub it knows its limits when the config starts, and
// a following config without the option returns them to the defaults.
func TestAppLimitsReachTheHubAndLeaveWithTheConfig(t *testing.T) {
	a := &App{Limits: &HubLimits{QueueItems: 7, QueueBytes: 9000, DedupWindow: -1, SequencerWait: 2 * 1e9, SequencerItems: 3, SequencerBytes: 5000, DedupBytes: 1 << 20, WakeInterval: -1}}
	provisionTestApp(t, a)
	p := &pooledHub{Hub: hub.New(hub.Config{})}
	defer p.Close()
	a.register("limits", p)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	got := p.Config()
	want := hub.Config{QueueItems: 7, QueueBytes: 9000, IDCacheTTL: -1, MessageWait: 2 * time.Second, SequencerMax: 3,
		SequencerBytes: 5000, DedupBytes: 1 << 20, WakeInterval: -1}.WithDefaults()
	if got.QueueItems != want.QueueItems || got.QueueBytes != want.QueueBytes || got.IDCacheTTL != want.IDCacheTTL ||
		got.MessageWait != want.MessageWait || got.SequencerMax != want.SequencerMax || got.SequencerBytes != want.SequencerBytes ||
		got.DedupBytes != want.DedupBytes || got.WakeInterval != want.WakeInterval {
		t.Fatalf("hub config %+v, want %+v", got, want)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if got, def := p.Config(), (hub.Config{}).WithDefaults(); got.QueueItems != def.QueueItems || got.WakeInterval != def.WakeInterval || got.IDCacheTTL != def.IDCacheTTL {
		t.Fatalf("after stop: %+v, want the defaults %+v", got, def)
	}
}

// provisionTestApp provisions a outside a running Caddy.
func provisionTestApp(t *testing.T, a *App) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := a.Provision(ctx); err != nil {
		t.Fatal(err)
	}
}
