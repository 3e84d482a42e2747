package caddygrip

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/natsbus"
)

func adaptApp(t *testing.T, global string) (map[string]any, error) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("{\n"+global+"\n}\nhttp://127.0.0.1:1 {\n\tgrip\n}\n"), nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &out); err != nil {
		t.Fatal(err)
	}
	var app map[string]any
	if err := json.Unmarshal(out.Apps["grip"], &app); err != nil {
		t.Fatalf("apps.grip: %v in %s", err, cfg)
	}
	return app, nil
}

func TestGlobalOptionAdaptsToTheGripApp(t *testing.T) {
	app, err := adaptApp(t, `	grip {
		nats nats://10.0.0.5:4222 nats://10.0.0.6:4222 {
			subject_prefix grip
			name           node-a
			credentials    /etc/grip/nats.creds
			token          tok
			user           u
			password       p
			linger         30s
			tls {
				ca   /etc/ca.pem
				cert /etc/c.pem
				key  /etc/k.pem
			}
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(app)
	want := `{"nats":{"credentials":"/etc/grip/nats.creds","linger":30000000000,"name":"node-a","password":"p","subject_prefix":"grip","tls":{"ca":"/etc/ca.pem","cert":"/etc/c.pem","key":"/etc/k.pem"},"token":"tok","urls":["nats://10.0.0.5:4222","nats://10.0.0.6:4222"],"user":"u"}}`
	if string(got) != want {
		t.Fatalf("adapted\n got %s\nwant %s", got, want)
	}
}

func TestGlobalOptionRejectsWhatItDoesNotKnow(t *testing.T) {
	for _, tc := range []struct{ global, want string }{
		{"\tgrip {\n\t\tnats\n\t}", "want at least one NATS URL"},
		{"\tgrip {\n\t\tnats nats://a:1 {\n\t\t\tfoo bar\n\t\t}\n\t}", `unknown option "foo"`},
		{"\tgrip {\n\t\tbus nats://a:1\n\t}", `unknown option "bus"`},
		{"\tgrip {\n\t\tnats nats://a:1 {\n\t\t\tlinger soon\n\t\t}\n\t}", `linger "soon"`},
		{"\tgrip {\n\t\tnats nats://a:1 {\n\t\t\ttls {\n\t\t\t\tpin x\n\t\t\t}\n\t\t}\n\t}", `unknown option "pin"`},
		{"\tgrip {\n\t\tnats nats://a:1\n\t\tnats nats://b:1\n\t}", "nats given twice"},
	} {
		if _, err := adaptApp(t, tc.global); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.global, err, tc.want)
		}
	}
}

func TestNATSOptionsFailClosed(t *testing.T) {
	t.Setenv("GRIP_TEST_EMPTY", "")
	for _, tc := range []struct {
		cfg  NATSConfig
		want string
	}{
		{NATSConfig{}, "want at least one NATS URL"},
		{NATSConfig{URLs: []string{"{env.GRIP_TEST_EMPTY}"}}, "urls[0]"},
		{NATSConfig{URLs: []string{"http://a:1"}}, "want a nats://"},
		{NATSConfig{URLs: []string{"nats://"}}, "no host"},
		{NATSConfig{URLs: []string{"nats://a:1"}, Token: "{env.GRIP_TEST_EMPTY}"}, "token"},
		{NATSConfig{URLs: []string{"nats://a:1"}, SubjectPrefix: "a..b"}, "empty subject token"},
		{NATSConfig{URLs: []string{"nats://a:1"}, SubjectPrefix: "a >"}, "wildcards"},
		{NATSConfig{URLs: []string{"nats://a:1"}, Password: "p"}, "user and password"},
		{NATSConfig{URLs: []string{"nats://a:1"}, TLS: &NATSTLS{Cert: "/c"}}, "tls cert and key"},
		{NATSConfig{URLs: []string{"nats://a:1"}, TLS: &NATSTLS{}}, "tls: set ca"},
		{NATSConfig{URLs: []string{"nats://a:1"}, TLS: &NATSTLS{CA: "/nonexistent/ca.pem"}}, "tls ca"},
		{NATSConfig{URLs: []string{"nats://a:1"}, Linger: -1}, "linger"},
	} {
		if _, _, err := tc.cfg.resolve(caddy.NewReplacer()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestNATSOptionsKeyIsStableAndChangesWithTheOptions(t *testing.T) {
	base := NATSConfig{URLs: []string{"nats://a:1"}, Name: "n"}
	_, k1, err := base.resolve(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	same := base
	same.SubjectPrefix = "grip" // the default, spelled out
	_, k2, _ := same.resolve(caddy.NewReplacer())
	changed := base
	changed.Linger = caddy.Duration(1e9)
	_, k3, _ := changed.resolve(caddy.NewReplacer())
	if k1 != k2 || k1 == k3 {
		t.Fatalf("keys: base %s, default spelled out %s, changed %s", k1, k2, k3)
	}
}

func TestHubSubjectPrefixIsOneTokenPerHub(t *testing.T) {
	for name, want := range map[string]string{
		"default": "grip.default",
		"a-b_C9":  "grip.a-b_C9",
		"a.b":     "grip.=YS5i",
		"*":       "grip.=Kg",
		"=Kg":     "grip.=PUtn",
	} {
		if got := hubSubjectPrefix("grip", name); got != want {
			t.Errorf("%q: %q, want %q", name, got, want)
		}
	}
}

func TestGlobalHistoryOptionAdaptsAndFailsClosed(t *testing.T) {
	for global, want := range map[string]string{
		"\tgrip {\n\t\thistory 100\n\t}":                                        `{"history":{"size":100}}`,
		"\tgrip {\n\t\thistory {\n\t\t\tsize 5\n\t\t\tstore memory\n\t\t}\n\t}": `{"history":{"size":5,"store":"memory"}}`,
		"\tgrip {\n\t\thistory {\n\t\t\tchannels news.* ticker/*\n\t\t\tsize 10\n\t\t\tttl 10m\n\t\t\tmax_bytes 64MiB\n\t\t}\n\t}": `{"history":{"channels":["news.*","ticker/*"],"max_bytes":67108864,"size":10,"ttl":600000000000}}`,
	} {
		app, err := adaptApp(t, global)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(app); string(got) != want {
			t.Errorf("%q:\n got %s\nwant %s", global, got, want)
		}
	}
	for _, tc := range []struct{ global, want string }{
		{"\tgrip {\n\t\thistory 0\n\t}", "want a positive number of items"},
		{"\tgrip {\n\t\thistory lots\n\t}", "want a positive number of items"},
		{"\tgrip {\n\t\thistory {\n\t\t\tttl 1m\n\t\t}\n\t}", "want a size"},
		{"\tgrip {\n\t\thistory {\n\t\t\tsize 1\n\t\t\tmax_bytes huge\n\t\t}\n\t}", "max_bytes"},
		{"\tgrip {\n\t\thistory {\n\t\t\tsize 1\n\t\t\tkeep all\n\t\t}\n\t}", `unknown option "keep"`},
		{"\tgrip {\n\t\thistory 1\n\t\thistory 2\n\t}", "history given twice"},
		{"\tgrip {\n\t\thistory {\n\t\t\tsize 1\n\t\t\tstore disk\n\t\t}\n\t}", `store "disk": want memory or jetstream`},
		{"\tgrip {\n\t\thistory {\n\t\t\tsize 1\n\t\t\tstore\n\t\t}\n\t}", "wrong argument count"},
	} {
		if _, err := adaptApp(t, tc.global); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.global, err, tc.want)
		}
	}
	for _, o := range []HistoryOptions{{}, {Size: 1, TTL: -1}, {Size: 1, MaxBytes: -1}, {Size: 1, Channels: []string{""}}, {Size: 1, Store: "Memory"}} {
		if _, err := o.config(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestHistoryStoreJetStreamNeedsNATSAndChangesTheBusKey(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &App{History: &HistoryOptions{Size: 5, Store: storeJetStream}}
	if err := a.Provision(ctx); err == nil || !strings.Contains(err.Error(), "store jetstream: needs the nats option") {
		t.Fatalf("store jetstream without nats: %v", err)
	}
	key := func(h *HistoryOptions) (string, *natsbus.Options) {
		t.Helper()
		a := &App{NATS: &NATSConfig{URLs: []string{"nats://127.0.0.1:4222"}}, History: h}
		if err := a.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return a.key, a.opts
	}
	none, o := key(nil)
	if o.History != nil {
		t.Fatal("history in JetStream without a history option")
	}
	auto, o := key(&HistoryOptions{Size: 5, Channels: []string{"news.*"}})
	if o.History == nil || o.History.Size != 5 || o.History.MaxBytes != hub.DefaultHistoryBytes ||
		!o.History.Covers("news.a") || o.History.Covers("other") {
		t.Fatalf("history options %+v", o.History)
	}
	mem, o := key(&HistoryOptions{Size: 5, Store: storeMemory})
	if o.History != nil {
		t.Fatal("store memory put the history in JetStream")
	}
	bigger, _ := key(&HistoryOptions{Size: 6, Channels: []string{"news.*"}})
	if auto == none || mem != none || bigger == auto {
		t.Fatalf("keys: none %s, jetstream %s, memory %s, size 6 %s", none, auto, mem, bigger)
	}
}
