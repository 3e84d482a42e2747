package wsoverhttp

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseControlEveryType(t *testing.T) {
	tests := []struct {
		name string
		json string
		want Control
	}{
		{"subscribe", `{"type":"subscribe","channel":"ch"}`,
			Control{Type: ControlSubscribe, Channel: "ch"}},
		{"subscribe with filters", `{"type":"subscribe","channel":"ch","filters":["skip-self","build-id"]}`,
			Control{Type: ControlSubscribe, Channel: "ch", Filters: []string{"skip-self", "build-id"}}},
		{"subscribe with empty filters", `{"type":"subscribe","channel":"ch","filters":[]}`,
			Control{Type: ControlSubscribe, Channel: "ch", Filters: []string{}}},
		{"subscribe with null filters", `{"type":"subscribe","channel":"ch","filters":null}`,
			Control{Type: ControlSubscribe, Channel: "ch"}},
		{"unsubscribe", `{"type":"unsubscribe","channel":"ch"}`,
			Control{Type: ControlUnsubscribe, Channel: "ch"}},
		{"unsubscribe ignores filters", `{"type":"unsubscribe","channel":"ch","filters":5}`,
			Control{Type: ControlUnsubscribe, Channel: "ch"}},
		{"detach", `{"type":"detach"}`, Control{Type: ControlDetach}},
		{"flush-delayed", `{"type":"flush-delayed"}`, Control{Type: ControlFlushDelayed}},
		{"set-meta", `{"type":"set-meta","name":"user","value":"alice"}`,
			Control{Type: ControlSetMeta, Name: "user", Value: "alice", HasValue: true}},
		{"set-meta empty value", `{"type":"set-meta","name":"user","value":""}`,
			Control{Type: ControlSetMeta, Name: "user", Value: "", HasValue: true}},
		{"set-meta without value deletes", `{"type":"set-meta","name":"user"}`,
			Control{Type: ControlSetMeta, Name: "user"}},
		{"set-meta null value deletes", `{"type":"set-meta","name":"user","value":null}`,
			Control{Type: ControlSetMeta, Name: "user"}},
		{"session", `{"type":"session","id":"s1"}`, Control{Type: ControlSession, ID: "s1"}},
		{"session without id clears", `{"type":"session"}`, Control{Type: ControlSession}},
		{"keep-alive defaults", `{"type":"keep-alive","content":"{}"}`,
			Control{Type: ControlKeepAlive, Content: []byte("{}"), HasContent: true,
				MessageType: "text", Timeout: 55 * time.Second, Mode: "idle"}},
		{"keep-alive full", `{"type":"keep-alive","content":"ka","message-type":"ping","timeout":30,"mode":"interval"}`,
			Control{Type: ControlKeepAlive, Content: []byte("ka"), HasContent: true,
				MessageType: "ping", Timeout: 30 * time.Second, Mode: "interval"}},
		{"keep-alive content-bin stays text by default", `{"type":"keep-alive","content-bin":"AAEC/w=="}`,
			Control{Type: ControlKeepAlive, Content: []byte{0, 1, 2, 0xff}, HasContent: true,
				MessageType: "text", Timeout: 55 * time.Second, Mode: "idle"}},
		{"keep-alive content-bin wins over content", `{"type":"keep-alive","content":"x","content-bin":"eQ==","message-type":"binary"}`,
			Control{Type: ControlKeepAlive, Content: []byte("y"), HasContent: true,
				MessageType: "binary", Timeout: 55 * time.Second, Mode: "idle"}},
		{"keep-alive content-bin unpadded", `{"type":"keep-alive","content-bin":"eQ"}`,
			Control{Type: ControlKeepAlive, Content: []byte("y"), HasContent: true,
				MessageType: "text", Timeout: 55 * time.Second, Mode: "idle"}},
		{"keep-alive empty content is still content", `{"type":"keep-alive","content":""}`,
			Control{Type: ControlKeepAlive, Content: []byte{}, HasContent: true,
				MessageType: "text", Timeout: 55 * time.Second, Mode: "idle"}},
		{"keep-alive timeout 0 is the default", `{"type":"keep-alive","content":"x","timeout":0}`,
			Control{Type: ControlKeepAlive, Content: []byte("x"), HasContent: true,
				MessageType: "text", Timeout: 55 * time.Second, Mode: "idle"}},
		{"keep-alive fractional timeout rounds", `{"type":"keep-alive","content":"x","timeout":2.6}`,
			Control{Type: ControlKeepAlive, Content: []byte("x"), HasContent: true,
				MessageType: "text", Timeout: 3 * time.Second, Mode: "idle"}},
		{"keep-alive unknown mode is idle", `{"type":"keep-alive","content":"x","mode":"sometimes"}`,
			Control{Type: ControlKeepAlive, Content: []byte("x"), HasContent: true,
				MessageType: "text", Timeout: 55 * time.Second, Mode: "idle"}},
		{"keep-alive without content turns off", `{"type":"keep-alive"}`,
			Control{Type: ControlKeepAlive, MessageType: "text", Mode: "idle"}},
		{"keep-alive without content ignores a bad timeout", `{"type":"keep-alive","timeout":"soon"}`,
			Control{Type: ControlKeepAlive, MessageType: "text", Mode: "idle"}},
		{"keep-alive null content turns off", `{"type":"keep-alive","content":null,"timeout":30}`,
			Control{Type: ControlKeepAlive, MessageType: "text", Mode: "idle"}},
		{"send-delayed defaults", `{"type":"send-delayed","content":"later"}`,
			Control{Type: ControlSendDelayed, Content: []byte("later"), HasContent: true,
				MessageType: "text", Timeout: time.Second}},
		{"send-delayed full", `{"type":"send-delayed","message-type":"pong","content":"p","timeout":5}`,
			Control{Type: ControlSendDelayed, Content: []byte("p"), HasContent: true,
				MessageType: "pong", Timeout: 5 * time.Second}},
		{"send-delayed without content", `{"type":"send-delayed"}`,
			Control{Type: ControlSendDelayed, MessageType: "text", Timeout: time.Second}},
		{"unknown fields ignored", `{"type":"detach","extra":[1,2,{"a":null}]}`, Control{Type: ControlDetach}},
		{"whitespace around", " \n{\"type\":\"detach\"}\n ", Control{Type: ControlDetach}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseControl([]byte(tt.json))
			if err != nil {
				t.Fatalf("ParseControl(%s): %v", tt.json, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ParseControl(%s)\n got %+v\nwant %+v", tt.json, *got, tt.want)
			}
		})
	}
}

func TestParseControlRejectsInvalidMessages(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		problem string
	}{
		{"empty", ``, "invalid JSON"},
		{"not json", `subscribe ch`, "invalid JSON"},
		{"truncated", `{"type":"subscribe"`, "invalid JSON"},
		{"trailing data", `{"type":"detach"} x`, "invalid JSON"},
		{"array", `[{"type":"detach"}]`, "not an object"},
		{"string", `"detach"`, "not an object"},
		{"number", `42`, "not an object"},
		{"null", `null`, "not an object"},
		{"no type", `{"channel":"ch"}`, "does not contain 'type'"},
		{"null type", `{"type":null}`, "does not contain 'type'"},
		{"type wrong type", `{"type":1}`, "'type' with wrong type"},
		{"unknown type", `{"type":"close"}`, "unknown value"},
		{"type is case-sensitive", `{"type":"Subscribe","channel":"ch"}`, "unknown value"},
		{"field names are exact", `{"Type":"detach"}`, "does not contain 'type'"},
		{"subscribe without channel", `{"type":"subscribe"}`, "does not contain 'channel'"},
		{"subscribe empty channel", `{"type":"subscribe","channel":""}`, "'channel' with invalid value"},
		{"subscribe channel not string", `{"type":"subscribe","channel":["a"]}`, "'channel' with wrong type"},
		{"subscribe filters not list", `{"type":"subscribe","channel":"ch","filters":"skip-self"}`, "'filters' with wrong type"},
		{"subscribe filter not string", `{"type":"subscribe","channel":"ch","filters":["a",1]}`, "'filters' contains value with wrong type"},
		{"unsubscribe without channel", `{"type":"unsubscribe"}`, "does not contain 'channel'"},
		{"unsubscribe empty channel", `{"type":"unsubscribe","channel":""}`, "'channel' with invalid value"},
		{"set-meta without name", `{"type":"set-meta","value":"v"}`, "does not contain 'name'"},
		{"set-meta empty name", `{"type":"set-meta","name":"","value":"v"}`, "'name' with invalid value"},
		{"set-meta value not string", `{"type":"set-meta","name":"n","value":3}`, "'value' with wrong type"},
		{"session id not string", `{"type":"session","id":7}`, "'id' with wrong type"},
		{"keep-alive unknown message-type", `{"type":"keep-alive","content":"x","message-type":"close"}`, "'message-type' with unknown value"},
		{"keep-alive message-type not string", `{"type":"keep-alive","message-type":true}`, "'message-type' with wrong type"},
		{"keep-alive content not string", `{"type":"keep-alive","content":{}}`, "'content' with wrong type"},
		{"keep-alive content-bin not string", `{"type":"keep-alive","content-bin":[1]}`, "'content-bin' with wrong type"},
		{"keep-alive content-bin not base64", `{"type":"keep-alive","content-bin":"***"}`, "invalid base64"},
		{"keep-alive negative timeout", `{"type":"keep-alive","content":"x","timeout":-1}`, "'timeout' with invalid value"},
		{"keep-alive huge timeout", `{"type":"keep-alive","content":"x","timeout":1e12}`, "'timeout' with invalid value"},
		{"keep-alive string timeout", `{"type":"keep-alive","content":"x","timeout":"30"}`, "'timeout' with wrong type"},
		{"keep-alive mode not string", `{"type":"keep-alive","content":"x","mode":1}`, "'mode' with wrong type"},
		{"send-delayed unknown message-type", `{"type":"send-delayed","content":"x","message-type":"frame"}`, "'message-type' with unknown value"},
		{"send-delayed negative timeout", `{"type":"send-delayed","content":"x","timeout":-5}`, "'timeout' with invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseControl([]byte(tt.json))
			if err == nil {
				t.Fatalf("ParseControl(%s) = %+v, want error", tt.json, *got)
			}
			if got != nil {
				t.Errorf("control returned with error: %+v", *got)
			}
			if !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("error %q does not mention %q", err, tt.problem)
			}
		})
	}
}
