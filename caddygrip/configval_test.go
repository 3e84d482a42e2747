package caddygrip

import (
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestProvisionRefusesOptionsEmptyAfterPlaceholders checks every string
// option of grip and grip_publish: given as a placeholder whose variable is
// unset, or set to "", it stops provisioning with an error naming the
// option and the placeholder, instead of running as if it were not given.
func TestProvisionRefusesOptionsEmptyAfterPlaceholders(t *testing.T) {
	const unset, empty = "{env.CADDY_GRIP_TEST_UNSET}", "{env.CADDY_GRIP_TEST_EMPTY}"
	t.Setenv("CADDY_GRIP_TEST_UNSET", "") // restored after the test
	os.Unsetenv("CADDY_GRIP_TEST_UNSET")
	t.Setenv("CADDY_GRIP_TEST_EMPTY", "")
	cases := []struct {
		option string
		grip   func(v string) *Grip
		pub    func(v string) *Publish
	}{
		{"hub", func(v string) *Grip { return &Grip{Hub: v} }, nil},
		{"sig_key", func(v string) *Grip { return &Grip{SigKey: v} }, nil},
		{"sig_iss", func(v string) *Grip { return &Grip{SigIss: v} }, nil},
		{"upstream_key", func(v string) *Grip { return &Grip{UpstreamKey: v} }, nil},
		{"websocket", func(v string) *Grip { return &Grip{WebSocket: v} }, nil},
		{"origins", func(v string) *Grip { return &Grip{Origins: []string{"https://a.example", v}} }, nil},
		{"jsonp.mode", func(v string) *Grip { return &Grip{JSONP: &JSONP{Mode: v}} }, nil},
		{"jsonp.callback", func(v string) *Grip { return &Grip{JSONP: &JSONP{Callback: v}} }, nil},
		{"jsonp.body_param", func(v string) *Grip { return &Grip{JSONP: &JSONP{BodyParam: v}} }, nil},
		{"jsonp.default_callback", func(v string) *Grip { return &Grip{JSONP: &JSONP{BodyParam: "b", DefaultCallback: v}} }, nil},
		{"jsonp.default_method", func(v string) *Grip { return &Grip{JSONP: &JSONP{DefaultMethod: v}} }, nil},
		{"hub", nil, func(v string) *Publish { return &Publish{Hub: v} }},
		{"key", nil, func(v string) *Publish { return &Publish{Key: v} }},
	}
	for _, tc := range cases {
		for _, ph := range []string{unset, empty} {
			name := "grip " + tc.option
			if tc.pub != nil {
				name = "grip_publish " + tc.option
			}
			t.Run(name+" "+ph, func(t *testing.T) {
				var err error
				if tc.grip != nil {
					err = provisionGrip(t, tc.grip(ph))
				} else {
					err = provisionPublish(t, tc.pub(ph))
				}
				want := tc.option + `: "` + ph + `" is empty after replacing placeholders: set it, or remove the option`
				if err == nil || err.Error() != want {
					t.Fatalf("error %v, want %q", err, want)
				}
			})
		}
	}
}

// TestProvisionReplacesPlaceholdersInOptions checks that options take
// their value from a set variable.
func TestProvisionReplacesPlaceholdersInOptions(t *testing.T) {
	t.Setenv("CADDY_GRIP_TEST_HUB", "hub-from-env")
	t.Setenv("CADDY_GRIP_TEST_ORIGIN", "https://*.example.com")
	t.Setenv("CADDY_GRIP_TEST_CB", "cb")
	g := &Grip{Hub: "{env.CADDY_GRIP_TEST_HUB}", Origins: []string{"{env.CADDY_GRIP_TEST_ORIGIN}"},
		JSONP: &JSONP{Callback: "{env.CADDY_GRIP_TEST_CB}"}}
	if err := g.provisionOptions(caddy.NewReplacer()); err != nil {
		t.Fatal(err)
	}
	if g.Hub != "hub-from-env" || g.Origins[0] != "https://*.example.com" || g.JSONP.Callback != "cb" {
		t.Fatalf("hub %q, origins %q, jsonp.callback %q", g.Hub, g.Origins, g.JSONP.Callback)
	}
	p := &Publish{Hub: "{env.CADDY_GRIP_TEST_HUB}"}
	if err := provisionPublish(t, p); err != nil {
		t.Fatal(err)
	}
	if p.ref.name != "hub-from-env" {
		t.Fatalf("grip_publish joined hub %q", p.ref.name)
	}
}

// TestProvisionNamesTheOptionOfAnInvalidValue checks values that JSON can
// carry and the Caddyfile refuses: each error names its option.
func TestProvisionNamesTheOptionOfAnInvalidValue(t *testing.T) {
	cases := []struct {
		name string
		err  func(t *testing.T) error
		want string
	}{
		{"negative write_timeout", func(t *testing.T) error { return provisionGrip(t, &Grip{WriteTimeout: -5e9}) },
			"write_timeout -5s: want a positive duration"},
		{"negative max_instruct_size", func(t *testing.T) error { return provisionGrip(t, &Grip{MaxInstructSize: -1}) },
			"max_instruct_size -1: want a positive number of bytes"},
		{"negative max_message_size", func(t *testing.T) error { return provisionGrip(t, &Grip{MaxMessageSize: -2}) },
			"max_message_size -2: want a positive number of bytes"},
		{"empty origin", func(t *testing.T) error { return provisionGrip(t, &Grip{Origins: []string{""}}) },
			"origins: value 0 is empty"},
		{"unknown websocket", func(t *testing.T) error { return provisionGrip(t, &Grip{WebSocket: "sometimes"}) },
			`websocket "sometimes": want over_http or passthrough`},
		{"negative max_body_size", func(t *testing.T) error { return provisionPublish(t, &Publish{MaxBodySize: -1}) },
			"max_body_size -1: want a positive number of bytes"},
		{"negative max_id_length", func(t *testing.T) error { return provisionPublish(t, &Publish{MaxIDLength: -3}) },
			"max_id_length -3: want a positive number of bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.err(t); err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestJSONConfigErrorsNameTheField checks the JSON decoding Caddy runs on
// a handler's config: an error names the field, and unknown fields are
// still refused.
func TestJSONConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ json, want string }{
		{`{"write_timeout":"abc"}`, `write_timeout: time: invalid duration "abc"`},
		{`{"max_instruct_size":"big"}`, "max_instruct_size"},
		{`{"hub":"h","nope":1}`, `json: unknown field "nope"`},
		{`{"jsonp":{"callbak":"cb"}}`, `json: unknown field "callbak"`},
	}
	for _, tc := range cases {
		g := new(Grip)
		err := caddy.StrictUnmarshalJSON([]byte(tc.json), g)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("grip %s: error %v, want it to contain %q", tc.json, err, tc.want)
		}
	}
	for _, tc := range []struct{ json, want string }{
		{`{"max_body_size":"1k"}`, "max_body_size"},
		{`{"key":"k","nope":1}`, `json: unknown field "nope"`},
	} {
		p := new(Publish)
		err := caddy.StrictUnmarshalJSON([]byte(tc.json), p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("grip_publish %s: error %v, want it to contain %q", tc.json, err, tc.want)
		}
	}
	g := new(Grip)
	if err := caddy.StrictUnmarshalJSON([]byte(`{"hub":"h","write_timeout":"3s","jsonp":{"mode":"basic"}}`), g); err != nil ||
		g.Hub != "h" || g.WriteTimeout != caddy.Duration(3e9) || g.JSONP.Mode != "basic" {
		t.Fatalf("valid config: %v, %+v", err, g)
	}
}
