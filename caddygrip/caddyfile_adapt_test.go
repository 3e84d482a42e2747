package caddygrip

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode/gzip"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// updateGolden rewrites the JSON half of every golden file from what the
// adapter gives now: go test ./caddygrip -run TestCaddyfileAdaptGoldenFiles -update
var updateGolden = flag.Bool("update", false, "rewrite testdata/caddyfile_adapt/*.caddyfiletest from the adapter's output")

// goldenDir holds the Caddyfile adapt golden files, as Caddy's own
// caddytest/integration/caddyfile_adapt: a Caddyfile, a line of ten
// dashes, and the JSON it adapts to, indented with tabs.
const goldenDir = "testdata/caddyfile_adapt"

const goldenSeparator = "----------"

// goldenEnv are the variables the golden Caddyfiles name in {env.*}
// placeholders, set so that their configs provision.
var goldenEnv = map[string]string{
	"GRIP_SIG_KEY":     "s3cret",
	"GRIP_PUBLISH_KEY": "publish-s3cret",
	"GRIP_NATS_TOKEN":  "nats-token",
}

// TestCaddyfileAdaptGoldenFiles adapts each golden Caddyfile with the
// module's directives and global option registered, compares the JSON,
// and provisions it (caddy.Validate, as `caddy validate` does), so that a
// golden config is one Caddy accepts and not only one the adapter writes.
func TestCaddyfileAdaptGoldenFiles(t *testing.T) {
	for k, v := range goldenEnv {
		t.Setenv(k, v)
	}
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.caddyfiletest"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s: %v", goldenDir, err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".caddyfiletest"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(data), "\n"+goldenSeparator+"\n")
			if !ok {
				t.Fatalf("%s: no %q line between the Caddyfile and its JSON", path, goldenSeparator)
			}
			in = strings.TrimSpace(in) + "\n"
			got, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in), nil)
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("adapter warning: line %d: %s: %s", w.Line, w.Directive, w.Message)
			}
			var indented bytes.Buffer
			if err := json.Indent(&indented, got, "", "\t"); err != nil {
				t.Fatalf("adapter output is not JSON: %v", err)
			}
			if *updateGolden {
				out := in + "\n" + goldenSeparator + "\n" + indented.String() + "\n"
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if g, w := indented.String(), normalizeJSON(t, want); g != w {
				t.Errorf("adapted JSON differs (rerun with -update to accept it):\n%s", lineDiff(w, g))
			}
			if err := validateConfig(got); err != nil {
				t.Errorf("the adapted config does not provision: %v", err)
			}
		})
	}
}

// normalizeJSON indents the expected JSON as the adapter's is indented,
// so that a hand-edited golden file compares by content.
func normalizeJSON(t *testing.T, s string) string {
	t.Helper()
	var compact, indented bytes.Buffer
	if err := json.Compact(&compact, []byte(strings.TrimSpace(s))); err != nil {
		t.Fatalf("the golden JSON is not JSON: %v", err)
	}
	_ = json.Indent(&indented, compact.Bytes(), "", "\t")
	return indented.String()
}

// lineDiff lists the lines of want and got from the first one that
// differs, enough to see what changed in an indented config.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "first difference at line %d\n", i+1)
	for j := max(0, i-3); j < i; j++ {
		fmt.Fprintf(&b, "  %s\n", w[j])
	}
	for j := i; j < min(len(w), i+8); j++ {
		fmt.Fprintf(&b, "- %s\n", w[j])
	}
	for j := i; j < min(len(g), i+8); j++ {
		fmt.Fprintf(&b, "+ %s\n", g[j])
	}
	return b.String()
}

// validateConfig provisions an adapted config without starting it.
func validateConfig(adapted []byte) error {
	var cfg caddy.Config
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		return err
	}
	return caddy.Validate(&cfg)
}

// adaptAndValidate is the error of a Caddyfile that fails to adapt, or,
// when it adapts, the error of provisioning its JSON; nil if both pass.
func adaptAndValidate(caddyfile string) error {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return err
	}
	if err := validateConfig(out); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	return nil
}

// TestCaddyfileRefusesEveryInvalidOrEmptyOption gives each directive and
// option of the module a value it cannot take, or none, or one that is
// empty after placeholders: each config fails to adapt or to provision,
// with a message that names the option. A site body is put in a site; a
// case starting with "{" is a whole Caddyfile.
func TestCaddyfileRefusesEveryInvalidOrEmptyOption(t *testing.T) {
	t.Setenv("GRIP_GOLDEN_UNSET", "") // restored after the test
	os.Unsetenv("GRIP_GOLDEN_UNSET")
	const unset = "{env.GRIP_GOLDEN_UNSET}"
	global := func(opts string) string {
		return "{\n\tgrip {\n" + opts + "\n\t}\n}\n:8080 {\n\tgrip\n\trespond ok\n}\n"
	}
	nats := func(opts string) string { return global("\t\tnats nats://127.0.0.1:4222 {\n" + opts + "\n\t\t}") }
	history := func(opts string) string { return global("\t\thistory {\n" + opts + "\n\t\t}") }
	limits := func(opts string) string { return global("\t\tlimits {\n" + opts + "\n\t\t}") }
	type refusal struct{ name, caddyfile, want string }
	cases := []refusal{
		// grip
		{"grip argument", "grip extra", "wrong argument count or unexpected line ending after 'extra'"},
		{"grip unknown option", "grip {\n\tnope 1\n}", "unrecognized grip option 'nope'"},
		{"grip hub two values", "grip {\n\thub a b\n}", "wrong argument count"},
		{"grip max_instruct_size negative", "grip {\n\tmax_instruct_size -3\n}", `grip: max_instruct_size "-3": want a positive integer`},
		{"grip max_instruct_size zero", "grip {\n\tmax_instruct_size 0\n}", `grip: max_instruct_size "0": want a positive integer`},
		{"grip max_instruct_size unit", "grip {\n\tmax_instruct_size 100kB\n}", `grip: max_instruct_size "100kB": want a positive integer`},
		{"grip max_instruct_size missing", "grip {\n\tmax_instruct_size\n}", "after 'max_instruct_size'"},
		{"grip write_timeout word", "grip {\n\twrite_timeout soon\n}", `grip: write_timeout "soon": want a positive duration`},
		{"grip write_timeout zero", "grip {\n\twrite_timeout 0\n}", `grip: write_timeout "0": want a positive duration`},
		{"grip write_timeout negative", "grip {\n\twrite_timeout -1s\n}", `grip: write_timeout "-1s": want a positive duration`},
		{"grip write_timeout missing", "grip {\n\twrite_timeout\n}", "after 'write_timeout'"},
		{"grip websocket unknown", "grip {\n\twebsocket sometimes\n}", `grip: websocket "sometimes": want over_http or passthrough`},
		{"grip websocket empty", "grip {\n\twebsocket \"\"\n}", `grip: websocket "": want over_http or passthrough`},
		{"grip websocket placeholder", "grip {\n\twebsocket " + unset + "\n}", `grip: websocket "` + unset + `": want over_http or passthrough`},
		{"grip websocket missing", "grip {\n\twebsocket\n}", "after 'websocket'"},
		{"grip origins missing", "grip {\n\torigins\n}", "after 'origins'"},
		{"grip origins empty", "grip {\n\torigins https://a.example \"\"\n}", "grip: origins: want patterns, got an empty string"},
		{"grip origins placeholder empty", "grip {\n\torigins https://a.example " + unset + "\n}", `origins: "` + unset + `" is empty after replacing placeholders`},
		{"grip max_message_size zero", "grip {\n\tmax_message_size 0\n}", `grip: max_message_size "0": want a positive integer`},
		{"grip max_message_size missing", "grip {\n\tmax_message_size\n}", "after 'max_message_size'"},
		{"grip update_on_first_subscription word", "grip {\n\tupdate_on_first_subscription maybe\n}", `grip: update_on_first_subscription "maybe": want on or off`},
		{"grip update_on_first_subscription missing", "grip {\n\tupdate_on_first_subscription\n}", "after 'update_on_first_subscription'"},
		{"grip id missing", "grip {\n\tid\n}", "after 'id'"},
		{"grip id empty", "grip {\n\tid \"\"\n}", "grip: id: want a name"},
		{"grip reload_close_delay negative", "grip {\n\treload_close_delay -1s\n}", `grip: reload_close_delay "-1s": want a duration, 0 or more`},
		{"grip reload_close_delay word", "grip {\n\treload_close_delay soon\n}", `grip: reload_close_delay "soon": want a duration, 0 or more`},
		{"grip reload_close_delay missing", "grip {\n\treload_close_delay\n}", "after 'reload_close_delay'"},
		{"grip auto_cross_origin argument", "grip {\n\tauto_cross_origin yes\n}", "after 'yes'"},
		{"grip jsonp argument", "grip {\n\tjsonp basic\n}", "after 'basic'"},
		{"grip jsonp unknown option", "grip {\n\tjsonp {\n\t\tcallbak cb\n\t}\n}", "unrecognized jsonp option 'callbak'"},
		{"grip jsonp mode unknown", "grip {\n\tjsonp {\n\t\tmode simple\n\t}\n}", `jsonp: mode: want basic or extended, got "simple"`},
		{"grip jsonp mode empty", "grip {\n\tjsonp {\n\t\tmode \"\"\n\t}\n}", "grip: jsonp: mode: want a value, got an empty string"},
		// The Caddyfile checks websocket, jsonp mode and default_method as
		// written, so a placeholder there is refused at once (JSON config
		// takes one, checked after replacing).
		{"grip jsonp mode placeholder", "grip {\n\tjsonp {\n\t\tmode " + unset + "\n\t}\n}", `jsonp: mode: want basic or extended, got "` + unset + `"`},
		{"grip jsonp default_method placeholder", "grip {\n\tjsonp {\n\t\tdefault_method " + unset + "\n\t}\n}", `jsonp: default_method: "` + unset + `" is not an HTTP method`},
		{"grip jsonp default_callback empty", "grip {\n\tjsonp {\n\t\tbody_param b\n\t\tdefault_callback \"\"\n\t}\n}", "grip: jsonp: default_callback: want a value, got an empty string"},
		{"grip jsonp default_callback without body_param", "grip {\n\tjsonp {\n\t\tdefault_callback cb\n\t}\n}", "jsonp: default_callback needs body_param"},
		{"grip jsonp default_method empty", "grip {\n\tjsonp {\n\t\tdefault_method \"\"\n\t}\n}", "grip: jsonp: default_method: want a value, got an empty string"},
		{"grip jsonp default_method not a method", "grip {\n\tjsonp {\n\t\tdefault_method \"GET /\"\n\t}\n}", `jsonp: default_method: "GET /" is not an HTTP method`},

		// grip_publish
		{"grip_publish argument", "grip_publish /grip/* extra", "after 'extra'"},
		{"grip_publish unknown option", "grip_publish {\n\tnope 1\n}", "unrecognized grip_publish option 'nope'"},
		{"grip_publish max_body_size unit", "grip_publish {\n\tmax_body_size 1k\n}", `grip_publish: max_body_size "1k": want a positive integer`},
		{"grip_publish max_body_size zero", "grip_publish {\n\tmax_body_size 0\n}", `grip_publish: max_body_size "0": want a positive integer`},
		{"grip_publish max_body_size missing", "grip_publish {\n\tmax_body_size\n}", "after 'max_body_size'"},
		{"grip_publish max_channel_length zero", "grip_publish {\n\tmax_channel_length 0\n}", `grip_publish: max_channel_length "0": want a positive integer`},
		{"grip_publish max_id_length word", "grip_publish {\n\tmax_id_length x\n}", `grip_publish: max_id_length "x": want a positive integer`},

		// grip_relay
		{"grip_relay no channel", "grip\ngrip_relay", "grip_relay: want a channel"},
		{"grip_relay block, no channel", "grip\ngrip_relay {\n\tskip_self\n}", "grip_relay: want a channel"},
		{"grip_relay empty channel", "grip\ngrip_relay \"\"", "grip_relay: channel: required"},
		{"grip_relay two channels", "grip\ngrip_relay a b", "after 'b'"},
		{"grip_relay unknown option", "grip\ngrip_relay room {\n\tnope\n}", `grip_relay: unknown option "nope"`},
		{"grip_relay skip_self argument", "grip\ngrip_relay room {\n\tskip_self yes\n}", "after 'yes'"},

		// the grip global option
		{"global grip argument", "{\n\tgrip extra\n}\n:8080 {\n\trespond ok\n}", "after 'extra'"},
		{"global grip unknown option", global("\t\tbus nats://127.0.0.1:4222"), `grip: unknown option "bus"`},
		{"global grip nats twice", global("\t\tnats nats://a:1\n\t\tnats nats://b:1"), "grip: nats given twice"},
		{"global grip history twice", global("\t\thistory 1\n\t\thistory 2"), "grip: history given twice"},
		{"nats no URL", global("\t\tnats"), "grip: nats: want at least one NATS URL"},
		{"nats block, no URL", global("\t\tnats {\n\t\t\tname n\n\t\t}"), "grip: nats: want at least one NATS URL"},
		{"nats URL scheme", global("\t\tnats http://127.0.0.1:4222"), `grip: nats: url "http://127.0.0.1:4222": want a nats://, tls://, ws:// or wss:// URL`},
		{"nats URL no host", global("\t\tnats nats://"), `grip: nats: url "nats://": no host`},
		{"nats URL placeholder empty", global("\t\tnats " + unset), `grip: nats: urls[0]: "` + unset + `" is empty after replacing placeholders`},
		{"nats unknown option", nats("\t\t\tfoo bar"), `grip: nats: unknown option "foo"`},
		{"nats url missing", nats("\t\t\turl"), "after 'url'"},
		{"nats urls missing", nats("\t\t\turls"), "after 'urls'"},
		{"nats subject_prefix wildcard", nats("\t\t\tsubject_prefix grip.*"), `grip: nats: subject_prefix "grip.*"`},
		{"nats subject_prefix empty token", nats("\t\t\tsubject_prefix a..b"), `grip: nats: subject_prefix "a..b"`},
		{"nats credentials no file", nats("\t\t\tcredentials testdata/nats/none.creds"), "grip: nats: credentials: stat testdata/nats/none.creds"},
		{"nats user without password", nats("\t\t\tuser u"), "grip: nats: user and password: set both or neither"},
		{"nats password without user", nats("\t\t\tpassword p"), "grip: nats: user and password: set both or neither"},
		{"nats linger word", nats("\t\t\tlinger soon"), `grip: nats: linger "soon": want a positive duration`},
		{"nats linger zero", nats("\t\t\tlinger 0"), `grip: nats: linger "0": want a positive duration`},
		{"nats tls argument", nats("\t\t\ttls on"), "after 'on'"},
		{"nats tls unknown option", nats("\t\t\ttls {\n\t\t\t\tpin x\n\t\t\t}"), `grip: nats tls: unknown option "pin"`},
		{"nats tls empty block", nats("\t\t\ttls"), "grip: nats: tls: set ca, or cert and key"},
		{"nats tls ca no file", nats("\t\t\ttls {\n\t\t\t\tca testdata/nats/none.pem\n\t\t\t}"), "grip: nats: tls ca: stat testdata/nats/none.pem"},
		{"nats tls cert without key", nats("\t\t\ttls {\n\t\t\t\tcert testdata/nats/node.pem\n\t\t\t}"), "grip: nats: tls cert and key: set both or neither"},
		{"limits argument", global("\t\tlimits on"), "after 'on'"},
		{"limits twice", global("\t\tlimits {\n\t\t}\n\t\tlimits {\n\t\t}"), "grip: limits given twice"},
		{"limits unknown", limits("\t\t\tqueue_length 10"), `grip: limits: unknown limit "queue_length"`},
		{"limits one twice", limits("\t\t\tqueue_items 10\n\t\t\tqueue_items 20"), "grip: limits: queue_items given twice"},
		{"limits queue_items zero", limits("\t\t\tqueue_items 0"), `grip: limits: queue_items "0": want a positive integer`},
		{"limits queue_items missing", limits("\t\t\tqueue_items"), "after 'queue_items'"},
		{"limits queue_bytes word", limits("\t\t\tqueue_bytes lots"), `grip: limits: queue_bytes "lots": want a size such as 64MiB`},
		{"limits queue_bytes zero", limits("\t\t\tqueue_bytes 0"), `grip: limits: queue_bytes "0": want a size such as 64MiB`},
		{"limits dedup_window word", limits("\t\t\tdedup_window soon"), `grip: limits: dedup_window "soon": want a positive duration or off`},
		{"limits dedup_window zero", limits("\t\t\tdedup_window 0"), `grip: limits: dedup_window "0": want a positive duration or off`},
		{"limits dedup_window missing", limits("\t\t\tdedup_window"), "after 'dedup_window'"},
		{"limits dedup_bytes too big", limits("\t\t\tdedup_bytes 2TiB"), `grip: limits: dedup_bytes "2TiB": want a size such as 64MiB`},
		{"limits sequencer_wait off", limits("\t\t\tsequencer_wait off"), `grip: limits: sequencer_wait "off": want a positive duration`},
		{"limits sequencer_wait zero", limits("\t\t\tsequencer_wait 0"), `grip: limits: sequencer_wait "0": want a positive duration`},
		{"limits sequencer_items word", limits("\t\t\tsequencer_items many"), `grip: limits: sequencer_items "many": want a positive integer`},
		{"limits sequencer_bytes zero", limits("\t\t\tsequencer_bytes 0"), `grip: limits: sequencer_bytes "0": want a size such as 64MiB`},
		{"limits wake_interval negative", limits("\t\t\twake_interval -1s"), `grip: limits: wake_interval "-1s": want a positive duration or off`},
		{"limits wake_interval missing", limits("\t\t\twake_interval"), "after 'wake_interval'"},
		{"history size zero", global("\t\thistory 0"), `grip: history "0": want a positive number of items`},
		{"history size word", global("\t\thistory lots"), `grip: history "lots": want a positive number of items`},
		{"history two sizes", global("\t\thistory 1 2"), "after '2'"},
		{"history no size", history("\t\t\tttl 1m"), "grip: history: want a size (history <items>, or size in the block)"},
		{"history unknown option", history("\t\t\tsize 1\n\t\t\tkeep all"), `grip: history: unknown option "keep"`},
		{"history block size zero", history("\t\t\tsize 0"), `grip: history: size "0": want a positive integer`},
		{"history block size missing", history("\t\t\tsize"), "after 'size'"},
		{"history channels missing", history("\t\t\tsize 1\n\t\t\tchannels"), "after 'channels'"},
		{"history channels empty", history("\t\t\tsize 1\n\t\t\tchannels news.* \"\""), "grip: history: channels[1]: empty pattern"},
		{"history ttl word", history("\t\t\tsize 1\n\t\t\tttl soon"), `grip: history: ttl "soon": want a positive duration`},
		{"history ttl zero", history("\t\t\tsize 1\n\t\t\tttl 0"), `grip: history: ttl "0": want a positive duration`},
		{"history max_bytes word", history("\t\t\tsize 1\n\t\t\tmax_bytes huge"), `grip: history: max_bytes "huge": want a size such as 64MiB`},
		{"history max_bytes zero", history("\t\t\tsize 1\n\t\t\tmax_bytes 0"), `grip: history: max_bytes "0": want a size such as 64MiB`},
		{"history max_bytes missing", history("\t\t\tsize 1\n\t\t\tmax_bytes"), "after 'max_bytes'"},
		{"history resume unknown", history("\t\t\tsize 1\n\t\t\tresume last_id"), `grip: history: resume "last_id": want last_event_id or websocket`},
		{"history resume missing", history("\t\t\tsize 1\n\t\t\tresume"), "after 'resume'"},
	}
	// Every string option, missing, given as "" and empty after
	// placeholders: the first two fail to adapt, the last to provision.
	for _, o := range []struct {
		name        string // the directive and option, the option last
		in          string // the config, with %s where the value goes
		parsed      string // how the adapter's error names the option
		provisioned string // how the provisioning error names it
	}{
		{"grip hub", "grip {\n\thub %s\n}", "grip: hub", "hub"},
		{"grip sig_key", "grip {\n\tsig_key %s\n}", "grip: sig_key", "sig_key"},
		{"grip sig_iss", "grip {\n\tsig_iss %s\n}", "grip: sig_iss", "sig_iss"},
		{"grip upstream_key", "grip {\n\tupstream_key %s\n}", "grip: upstream_key", "upstream_key"},
		{"grip jsonp callback", "grip {\n\tjsonp {\n\t\tcallback %s\n\t}\n}", "grip: jsonp: callback", "jsonp.callback"},
		{"grip jsonp body_param", "grip {\n\tjsonp {\n\t\tbody_param %s\n\t}\n}", "grip: jsonp: body_param", "jsonp.body_param"},
		{"grip_publish hub", "grip_publish {\n\thub %s\n}", "grip_publish: hub", "hub"},
		{"grip_publish key", "grip_publish {\n\tkey %s\n}", "grip_publish: key", "key"},
		{"grip_relay hub", "grip\ngrip_relay room {\n\thub %s\n}", "grip_relay: hub", "grip_relay: hub"},
		{"nats subject_prefix", nats("\t\t\tsubject_prefix %s"), "grip: nats: subject_prefix", "grip: nats: subject_prefix"},
		{"nats name", nats("\t\t\tname %s"), "grip: nats: name", "grip: nats: name"},
		{"nats credentials", nats("\t\t\tcredentials %s"), "grip: nats: credentials", "grip: nats: credentials"},
		{"nats token", nats("\t\t\ttoken %s"), "grip: nats: token", "grip: nats: token"},
		{"nats user", nats("\t\t\tuser %s\n\t\t\tpassword p"), "grip: nats: user", "grip: nats: user"},
		{"nats password", nats("\t\t\tuser u\n\t\t\tpassword %s"), "grip: nats: password", "grip: nats: password"},
		{"nats tls ca", nats("\t\t\ttls {\n\t\t\t\tca %s\n\t\t\t}"), "grip: nats tls: ca", "grip: nats: tls ca"},
		{"nats tls key", nats("\t\t\ttls {\n\t\t\t\tcert testdata/nats/node.pem\n\t\t\t\tkey %s\n\t\t\t}"), "grip: nats tls: key", "grip: nats: tls key"},
	} {
		word := o.name[strings.LastIndexByte(o.name, ' ')+1:]
		cases = append(cases,
			refusal{o.name + " missing", fmt.Sprintf(o.in, ""), "after '" + word + "'"},
			refusal{o.name + " empty", fmt.Sprintf(o.in, `""`), o.parsed + ": want a value, got an empty string"},
			refusal{o.name + " placeholder empty", fmt.Sprintf(o.in, unset), o.provisioned + `: "` + unset + `" is empty after replacing placeholders`})
	}
	// Every key option, given each form ParseKey refuses: provisioning fails.
	for _, o := range []struct{ name, in string }{
		{"grip sig_key", "grip {\n\tsig_key %s\n}"},
		{"grip upstream_key", "grip {\n\tupstream_key %s\n}"},
		{"grip_publish key", "grip_publish {\n\tkey %s\n}"},
	} {
		opt := o.name[strings.LastIndexByte(o.name, ' ')+1:]
		for _, k := range []struct{ form, value, want string }{
			{"bad base64", "base64:!!", "base64"},
			{"no file", "file:testdata/no-such-key.pem", "open testdata/no-such-key.pem"},
			{"file without path", "file:", "file: needs a path"},
			{"bad JWK", "`{\"kty\":\"EC\"}`", "JWK"},
		} {
			cases = append(cases, refusal{o.name + " " + k.form, fmt.Sprintf(o.in, k.value), opt + ": grip sig key: " + k.want})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.caddyfile
			if !strings.HasPrefix(in, "{") {
				in = ":8080 {\n" + in + "\n}\n"
			}
			err := adaptAndValidate(in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q; config:\n%s", err, tc.want, in)
			}
		})
	}
}
