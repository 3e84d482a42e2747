package wsoverhttp

import (
	"testing"
)

func TestParseGripExtension(t *testing.T) {
	tests := []struct {
		name        string
		values      []string
		wantEnabled bool
		wantPrefix  string
	}{
		{"absent", nil, false, ""},
		{"empty value", []string{""}, false, ""},
		{"grip", []string{"grip"}, true, "m:"},
		{"grip with spaces", []string{"  grip  "}, true, "m:"},
		{"grip with empty params", []string{"grip;"}, true, "m:"},
		{"quoted prefix", []string{`grip; message-prefix="x"`}, true, "x"},
		{"bare prefix", []string{"grip; message-prefix=msg:"}, true, "msg:"},
		{"bare prefix trimmed", []string{"grip; message-prefix= p: ; other=1"}, true, "p:"},
		{"explicitly empty prefix", []string{`grip; message-prefix=""`}, true, ""},
		{"bare empty prefix", []string{"grip; message-prefix="}, true, ""},
		{"quoted prefix with comma and semicolon", []string{`grip; message-prefix="a,b;c"`}, true, "a,b;c"},
		{"quoted prefix with escapes", []string{`grip; message-prefix="q\"\\"`}, true, `q"\`},
		{"other params only", []string{"grip; foo=bar; flag"}, true, "m:"},
		{"last duplicate wins", []string{"grip; message-prefix=a; message-prefix=b"}, true, "b"},
		{"case-insensitive names", []string{`GRIP; Message-Prefix="X:"`}, true, "X:"},
		{"other extension before", []string{"permessage-deflate; client_max_window_bits, grip"}, true, "m:"},
		{"other extension after", []string{`grip; message-prefix="z", permessage-deflate`}, true, "z"},
		{"other extension only", []string{"permessage-deflate"}, false, ""},
		{"grip in a later header line", []string{"permessage-deflate", `grip; message-prefix="y"`}, true, "y"},
		{"first grip wins", []string{`grip; message-prefix="1"`, `grip; message-prefix="2"`}, true, "1"},
		{"name must match whole token", []string{"gripper", "x-grip"}, false, ""},
		{"unterminated quote disables", []string{`grip; message-prefix="oops`}, false, ""},
		{"dangling escape disables", []string{`grip; message-prefix="oops\`}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enabled, prefix := ParseGripExtension(tt.values)
			if enabled != tt.wantEnabled || prefix != tt.wantPrefix {
				t.Errorf("ParseGripExtension(%q) = (%v, %q), want (%v, %q)",
					tt.values, enabled, prefix, tt.wantEnabled, tt.wantPrefix)
			}
		})
	}
}

func TestSplitMessage(t *testing.T) {
	tests := []struct {
		name        string
		typ         EventType
		data        string
		prefix      string
		wantKind    MessageKind
		wantPayload string
	}{
		{"control", Text, `c:{"type":"detach"}`, "m:", MessageControl, `{"type":"detach"}`},
		{"empty control", Text, "c:", "m:", MessageControl, ""},
		{"prefixed text", Text, "m:hello", "m:", MessageData, "hello"},
		{"prefix only", Text, "m:", "m:", MessageData, ""},
		{"prefixed binary", Binary, "m:\x00\x01", "m:", MessageData, "\x00\x01"},
		{"unprefixed text dropped", Text, "hello", "m:", MessageDrop, ""},
		{"unprefixed binary dropped", Binary, "\x00hello", "m:", MessageDrop, ""},
		{"empty text dropped", Text, "", "m:", MessageDrop, ""},
		{"shorter than prefix dropped", Text, "m", "m:", MessageDrop, ""},
		{"binary c: is not control", Binary, "c:{}", "m:", MessageDrop, ""},
		{"binary c: is data under empty prefix", Binary, "c:{}", "", MessageData, "c:{}"},
		{"empty prefix: c: is still control", Text, `c:{"type":"detach"}`, "", MessageControl, `{"type":"detach"}`},
		{"empty prefix: everything else is data", Text, "hello", "", MessageData, "hello"},
		{"empty prefix: empty message is data", Text, "", "", MessageData, ""},
		{"custom prefix", Text, "msg:hi", "msg:", MessageData, "hi"},
		{"custom prefix: m: dropped", Text, "m:hi", "msg:", MessageDrop, ""},
		{"prefix c: makes c: control", Text, "c:hi", "c:", MessageControl, "hi"},
		{"ping relayed as is", Ping, "m:x", "m:", MessageData, "m:x"},
		{"pong relayed as is", Pong, "", "m:", MessageData, ""},
		{"close relayed as is", Close, "\x03\xe8", "m:", MessageData, "\x03\xe8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, payload := SplitMessage(tt.typ, []byte(tt.data), tt.prefix)
			if kind != tt.wantKind || string(payload) != tt.wantPayload {
				t.Errorf("SplitMessage(%v, %q, %q) = (%v, %q), want (%v, %q)",
					tt.typ, tt.data, tt.prefix, kind, payload, tt.wantKind, tt.wantPayload)
			}
		})
	}
}

func TestSplitMessageControlFeedsParseControl(t *testing.T) {
	kind, payload := SplitMessage(Text, []byte(`c:{"type":"subscribe","channel":"room"}`), DefaultMessagePrefix)
	if kind != MessageControl {
		t.Fatalf("kind = %v, want control", kind)
	}
	c, err := ParseControl(payload)
	if err != nil || c.Type != ControlSubscribe || c.Channel != "room" {
		t.Errorf("ParseControl = %+v, %v", c, err)
	}
}

func TestMessageKindString(t *testing.T) {
	for k, want := range map[MessageKind]string{MessageData: "data", MessageControl: "control", MessageDrop: "drop", 0: "MessageKind(?)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", k, got, want)
		}
	}
}
