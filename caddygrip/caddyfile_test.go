package caddygrip

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// adaptHandlers adapts a Caddyfile and returns its handler objects in
// document order, subroutes flattened.
func adaptHandlers(t *testing.T, caddyfile string) ([]map[string]any, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return nil, err
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var hs []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if h, ok := v["handler"].(string); ok && h != "subroute" {
				hs = append(hs, v)
				return
			}
			for _, k := range []string{"apps", "http", "servers", "srv0", "routes", "handle"} {
				if c, ok := v[k]; ok {
					walk(c)
				}
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(cfg)
	return hs, nil
}

func TestCaddyfileAdaptsEveryOptionAndOrdersDirectives(t *testing.T) {
	hs, err := adaptHandlers(t, `
:8080 {
	reverse_proxy 127.0.0.1:9000
	grip {
		hub h1
		sig_key s3cret
		sig_iss me
		upstream_key up
		max_instruct_size 5000
		write_timeout 3s
		websocket passthrough
		origins https://a.example https://*.b.example
		max_message_size 4096
		update_on_first_subscription off
		auto_cross_origin
		jsonp {
			mode basic
			callback cb
		}
	}
	grip_publish /grip/* {
		hub h1
		key k
		max_body_size 700
		max_channel_length 64
		max_id_length 32
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range hs {
		names = append(names, h["handler"].(string))
	}
	if got := strings.Join(names, ","); got != "grip_publish,grip,reverse_proxy" {
		t.Fatalf("handler order %s", got)
	}
	want := []string{
		`{"handler":"grip_publish","hub":"h1","key":"k","max_body_size":700,"max_channel_length":64,"max_id_length":32}`,
		`{"auto_cross_origin":true,"handler":"grip","hub":"h1","jsonp":{"callback":"cb","mode":"basic"},"max_instruct_size":5000,"max_message_size":4096,"origins":["https://a.example","https://*.b.example"],"sig_iss":"me","sig_key":"s3cret","update_on_first_subscription":false,"upstream_key":"up","websocket":"passthrough","write_timeout":3000000000}`,
	}
	for i, w := range want {
		got, _ := json.Marshal(hs[i])
		if string(got) != w {
			t.Errorf("handler %d:\n got %s\nwant %s", i, got, w)
		}
	}
}

func TestCaddyfileRejectsBadOptions(t *testing.T) {
	cases := []struct{ body, want string }{
		{"grip {\n\tnope 1\n}", "unrecognized grip option 'nope'"},
		{"grip_publish {\n\tnope 1\n}", "unrecognized grip_publish option 'nope'"},
		{"grip {\n\tmax_instruct_size -3\n}", `grip: max_instruct_size "-3": want a positive integer`},
		{"grip {\n\twrite_timeout soon\n}", `grip: write_timeout "soon": want a positive duration`},
		{"grip_publish {\n\tmax_channel_length 0\n}", `grip_publish: max_channel_length "0": want a positive integer`},
		{"grip_publish {\n\tmax_id_length x\n}", `grip_publish: max_id_length "x": want a positive integer`},
		{"grip_publish {\n\tmax_body_size 1k\n}", `grip_publish: max_body_size "1k": want a positive integer`},
		{"grip_publish {\n\tkey \"\"\n}", "grip_publish: key: want a value, got an empty string"},
		{"grip {\n\tsig_key \"\"\n}", "grip: sig_key: want a value, got an empty string"},
		{"grip {\n\thub\n}", "wrong argument count"},
		{"grip extra", "wrong argument count"},
		{"grip {\n\twebsocket sometimes\n}", `grip: websocket "sometimes": want over_http or passthrough`},
		{"grip {\n\torigins\n}", "wrong argument count"},
		{"grip {\n\tupdate_on_first_subscription maybe\n}", `grip: update_on_first_subscription "maybe": want on or off`},
		{"grip {\n\tauto_cross_origin yes\n}", "wrong argument count"},
		{"grip {\n\torigins https://a.example \"\"\n}", "grip: origins: want patterns, got an empty string"},
		{"grip {\n\tjsonp {\n\t\tcallback \"\"\n\t}\n}", "grip: jsonp: callback: want a value, got an empty string"},
		{"grip {\n\tjsonp {\n\t\tdefault_method \"\"\n\t}\n}", "grip: jsonp: default_method: want a value, got an empty string"},
	}
	for i, tc := range cases {
		_, err := adaptHandlers(t, ":8080 {\n"+tc.body+"\n}")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("case %d: error %v, want %q", i, err, tc.want)
		}
	}
}

func TestCaddyfileReadsIDAndReloadCloseDelay(t *testing.T) {
	for _, tc := range []struct {
		in    string
		id    string
		delay caddy.Duration
		err   string
	}{
		{"grip {\n id api\n reload_close_delay 30s\n}", "api", caddy.Duration(30 * time.Second), ""},
		{"grip {\n reload_close_delay 0\n}", "", 0, ""},
		{"grip {\n reload_close_delay -1s\n}", "", 0, "reload_close_delay"},
		{"grip {\n reload_close_delay soon\n}", "", 0, "reload_close_delay"},
		{"grip {\n id\n}", "", 0, "wrong argument count"},
	} {
		var g Grip
		err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || g.ID != tc.id || g.ReloadCloseDelay != tc.delay {
			t.Errorf("%q: id %q delay %v err %v", tc.in, g.ID, g.ReloadCloseDelay, err)
		}
	}
}
