package formats

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// publishErrText returns the PublishError text of err, failing the test if
// err is not a *PublishError.
func publishErrText(t testing.TB, err error) string {
	t.Helper()
	var pe *PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *PublishError", err, err)
	}
	if pe.Error() != pe.Msg {
		t.Fatalf("Error() = %q, Msg = %q", pe.Error(), pe.Msg)
	}
	return pe.Msg
}

func TestDecodePublishRejectsBodyWithPushpinTopLevelText(t *testing.T) {
	deep := strings.Repeat("[", 1001) + strings.Repeat("]", 1001)
	okDeep := `{"x":` + strings.Repeat("[", 998) + strings.Repeat("]", 998) + `,"items":[]}`
	if _, err := DecodePublish([]byte(okDeep)); err != nil {
		t.Fatalf("nesting of 999 levels rejected: %v", err)
	}
	cases := []struct {
		name, body, want string
	}{
		{"empty body", ``, "Body is not valid JSON."},
		{"only space", " \n\t", "Body is not valid JSON."},
		{"truncated", `{"items":[`, "Body is not valid JSON."},
		{"trailing garbage", `{"items":[]} x`, "Body is not valid JSON."},
		{"two values", `{"items":[]}{}`, "Body is not valid JSON."},
		{"trailing comma in object", `{"items":[],}`, "Body is not valid JSON."},
		{"trailing comma in array", `{"items":[1,]}`, "Body is not valid JSON."},
		{"single quotes", `{'items':[]}`, "Body is not valid JSON."},
		{"leading zero", `{"items":[],"x":01}`, "Body is not valid JSON."},
		{"bad escape", `{"items":[],"x":"\q"}`, "Body is not valid JSON."},
		{"short unicode escape", `{"items":[],"x":"\u12"}`, "Body is not valid JSON."},
		{"control char in string", "{\"items\":[],\"x\":\"a\tb\"}", "Body is not valid JSON."},
		{"invalid utf-8 in string", "{\"items\":[],\"x\":\"\xff\"}", "Body is not valid JSON."},
		{"bare word", `{"items":[],"x":nope}`, "Body is not valid JSON."},
		{"too deep", deep, "Body is not valid JSON."},
		{"syntax error after a bad item", `{"items":[{"channel":1},{]}`, "Body is not valid JSON."},
		{"syntax error after items", `{"items":[{"channel":1}],"x":[}`, "Body is not valid JSON."},
		{"array", `[]`, "Invalid format."},
		{"number", `123`, "Invalid format."},
		{"string", `"items"`, "Invalid format."},
		{"null", `null`, "Invalid format."},
		{"no items", `{"item":[]}`, "Invalid format: object does not contain 'items'"},
		{"items object", `{"items":{}}`, "Invalid format: object contains 'items' with wrong type"},
		{"items null", `{"items":null}`, "Invalid format: object contains 'items' with wrong type"},
		{"item not object", `{"items":["c"]}`, "Invalid format: item 0: publish item object is not an object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, err := DecodePublish([]byte(tc.body))
			if err == nil {
				t.Fatalf("accepted, items %v", items)
			}
			if items != nil {
				t.Errorf("items %v returned with an error", items)
			}
			if got := publishErrText(t, err); got != tc.want {
				t.Errorf("error %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecodePublishRejectsItemWithPushpinDetail(t *testing.T) {
	const (
		hr = "'http-response' "
		hs = "'http-stream' "
		ws = "'ws-message' "
		it = "publish item object "
	)
	cases := []struct {
		name, item, want string
	}{
		// item fields
		{"channel missing", `{"formats":{"http-stream":{"content":"x"}}}`, it + "does not contain 'channel'"},
		{"channel number", `{"channel":1,"formats":{"http-stream":{"content":"x"}}}`, it + "contains 'channel' with wrong type"},
		{"channel null", `{"channel":null,"formats":{"http-stream":{"content":"x"}}}`, it + "contains 'channel' with wrong type"},
		{"channel empty", `{"channel":"","formats":{"http-stream":{"content":"x"}}}`, it + "contains 'channel' with invalid value"},
		{"id number", `{"channel":"c","id":1,"formats":{"http-stream":{"content":"x"}}}`, it + "contains 'id' with wrong type"},
		{"prev-id bool", `{"channel":"c","prev-id":true,"formats":{"http-stream":{"content":"x"}}}`, it + "contains 'prev-id' with wrong type"},
		{"formats array", `{"channel":"c","formats":[]}`, it + "contains 'formats' with wrong type"},
		{"formats null", `{"channel":"c","formats":null}`, it + "contains 'formats' with wrong type"},
		{"formats empty", `{"channel":"c","formats":{}}`, "no formats specified"},
		{"formats unknown only", `{"channel":"c","formats":{"http-foo":{}}}`, "no formats specified"},
		{"no formats at all", `{"channel":"c"}`, "no formats specified"},
		{"meta array", `{"channel":"c","meta":[],"formats":{"http-stream":{"content":"x"}}}`, it + "contains 'meta' with wrong type"},
		{"meta number value", `{"channel":"c","meta":{"a":"b","n":1},"formats":{"http-stream":{"content":"x"}}}`, "'meta' contains 'n' with wrong type"},
		{"size string", `{"channel":"c","size":"1","formats":{"http-stream":{"content":"x"}}}`, it + "contains 'size' with wrong type"},
		{"size negative", `{"channel":"c","size":-1,"formats":{"http-stream":{"content":"x"}}}`, it + "contains 'size' with invalid value"},
		{"size fraction", `{"channel":"c","size":1.5,"formats":{"http-stream":{"content":"x"}}}`, it + "contains 'size' with invalid value"},
		{"size huge", `{"channel":"c","size":1e30,"formats":{"http-stream":{"content":"x"}}}`, it + "contains 'size' with invalid value"},
		{"no-seq string", `{"channel":"c","no-seq":"true","formats":{"http-stream":{"content":"x"}}}`, it + "contains 'no-seq' with wrong type"},
		{"no-seq number", `{"channel":"c","no-seq":1,"formats":{"http-stream":{"content":"x"}}}`, it + "contains 'no-seq' with wrong type"},
		{"channel checked before formats", `{"channel":7}`, it + "contains 'channel' with wrong type"},
		{"formats checked before meta", `{"channel":"c","meta":1,"formats":{"ws-message":1}}`, ws + "is not an object"},

		// http-response
		{"hr not object", `{"channel":"c","formats":{"http-response":"x"}}`, hr + "is not an object"},
		{"hr null", `{"channel":"c","formats":{"http-response":null}}`, hr + "is not an object"},
		{"hr unknown action", `{"channel":"c","formats":{"http-response":{"action":"poke","body":"x"}}}`, hr + "contains 'action' with unknown value"},
		{"hr refresh action", `{"channel":"c","formats":{"http-response":{"action":"refresh","body":"x"}}}`, hr + "contains 'action' with unknown value"},
		{"hr action number", `{"channel":"c","formats":{"http-response":{"action":1,"body":"x"}}}`, hr + "contains 'action' with wrong type"},
		{"hr code string", `{"channel":"c","formats":{"http-response":{"code":"200","body":"x"}}}`, hr + "contains 'code' with wrong type"},
		{"hr code too big", `{"channel":"c","formats":{"http-response":{"code":1000,"body":"x"}}}`, hr + "contains 'code' with invalid value"},
		{"hr code negative", `{"channel":"c","formats":{"http-response":{"code":-1,"body":"x"}}}`, hr + "contains 'code' with invalid value"},
		{"hr code fraction", `{"channel":"c","formats":{"http-response":{"code":200.5,"body":"x"}}}`, hr + "contains 'code' with invalid value"},
		{"hr reason number", `{"channel":"c","formats":{"http-response":{"reason":1,"body":"x"}}}`, hr + "contains 'reason' with wrong type"},
		{"hr headers string", `{"channel":"c","formats":{"http-response":{"headers":"A: b","body":"x"}}}`, hr + "contains 'headers' with wrong type"},
		{"hr headers object number", `{"channel":"c","formats":{"http-response":{"headers":{"A":1},"body":"x"}}}`, "headers contains 'A' with wrong type"},
		{"hr headers element string", `{"channel":"c","formats":{"http-response":{"headers":["A"],"body":"x"}}}`, "headers contains element with wrong type"},
		{"hr headers pair of three", `{"channel":"c","formats":{"http-response":{"headers":[["A","b","c"]],"body":"x"}}}`, "headers contains list with wrong number of elements"},
		{"hr headers pair of one", `{"channel":"c","formats":{"http-response":{"headers":[["A"]],"body":"x"}}}`, "headers contains list with wrong number of elements"},
		{"hr header name number", `{"channel":"c","formats":{"http-response":{"headers":[[1,"b"]],"body":"x"}}}`, "header contains name element with wrong type"},
		{"hr header value null", `{"channel":"c","formats":{"http-response":{"headers":[["A",null]],"body":"x"}}}`, "header contains value element with wrong type"},
		{"hr filters string", `{"channel":"c","formats":{"http-response":{"content-filters":"build-id","body":"x"}}}`, hr + "contains 'content-filters' with wrong type"},
		{"hr filters element number", `{"channel":"c","formats":{"http-response":{"content-filters":[1],"body":"x"}}}`, "content-filters contains element with wrong type"},
		{"hr no body", `{"channel":"c","formats":{"http-response":{"code":200}}}`, hr + "does not contain 'body', 'body-bin', or 'body-patch'"},
		{"hr body number", `{"channel":"c","formats":{"http-response":{"body":1}}}`, hr + "contains 'body' with wrong type"},
		{"hr body-bin number", `{"channel":"c","formats":{"http-response":{"body-bin":1}}}`, hr + "contains 'body-bin' with wrong type"},
		{"hr body-bin invalid", `{"channel":"c","formats":{"http-response":{"body-bin":"!!!!"}}}`, hr + "contains 'body-bin' with invalid value"},
		{"hr body-bin bad length", `{"channel":"c","formats":{"http-response":{"body-bin":"QUJDR"}}}`, hr + "contains 'body-bin' with invalid value"},
		{"hr body-patch object", `{"channel":"c","formats":{"http-response":{"body-patch":{}}}}`, hr + "contains 'body-patch' with wrong type"},
		{"hr body-patch element string", `{"channel":"c","formats":{"http-response":{"body-patch":["add"]}}}`, "body-patch contains element with wrong type"},
		{"hr body-patch without op", `{"channel":"c","formats":{"http-response":{"body-patch":[{"path":"/a"}]}}}`, "body-patch contains element without 'op'"},
		{"hr body-patch op number", `{"channel":"c","formats":{"http-response":{"body-patch":[{"op":1}]}}}`, "body-patch contains element without 'op'"},
		// Beyond Pushpin, which accepts patches that can never apply:
		{"hr body-patch unknown op", `{"channel":"c","formats":{"http-response":{"body-patch":[{"op":"merge","path":"/a"}]}}}`, `body-patch op 0: unknown op "merge"`},
		{"hr body-patch add without value", `{"channel":"c","formats":{"http-response":{"body-patch":[{"op":"add","path":"/a"}]}}}`, "body-patch op 0 (add): missing 'value'"},

		// http-stream
		{"hs not object", `{"channel":"c","formats":{"http-stream":[]}}`, hs + "is not an object"},
		{"hs unknown action", `{"channel":"c","formats":{"http-stream":{"action":"refresh"}}}`, hs + "contains 'action' with unknown value"},
		{"hs action null", `{"channel":"c","formats":{"http-stream":{"action":null,"content":"x"}}}`, hs + "contains 'action' with wrong type"},
		{"hs no content", `{"channel":"c","formats":{"http-stream":{}}}`, hs + "does not contain 'content' or 'content-bin'"},
		{"hs content number", `{"channel":"c","formats":{"http-stream":{"content":5}}}`, hs + "contains 'content' with wrong type"},
		{"hs content-bin invalid", `{"channel":"c","formats":{"http-stream":{"content-bin":"a*b="}}}`, hs + "contains 'content-bin' with invalid value"},
		{"hs content-bin object", `{"channel":"c","formats":{"http-stream":{"content-bin":{}}}}`, hs + "contains 'content-bin' with wrong type"},
		{"hs filters element bool", `{"channel":"c","formats":{"http-stream":{"content":"x","content-filters":[true]}}}`, "content-filters contains element with wrong type"},

		// ws-message
		{"ws not object", `{"channel":"c","formats":{"ws-message":true}}`, ws + "is not an object"},
		{"ws unknown action", `{"channel":"c","formats":{"ws-message":{"action":"open"}}}`, ws + "contains 'action' with unknown value"},
		{"ws unknown type", `{"channel":"c","formats":{"ws-message":{"type":"json","content":"x"}}}`, ws + "contains 'type' with unknown value"},
		{"ws type number", `{"channel":"c","formats":{"ws-message":{"type":1,"content":"x"}}}`, ws + "contains 'type' with wrong type"},
		{"ws no content", `{"channel":"c","formats":{"ws-message":{}}}`, ws + "does not contain 'content' or 'content-bin'"},
		{"ws text without content", `{"channel":"c","formats":{"ws-message":{"type":"text"}}}`, ws + "does not contain 'content' or 'content-bin'"},
		{"ws binary without content", `{"channel":"c","formats":{"ws-message":{"type":"binary"}}}`, ws + "does not contain 'content' or 'content-bin'"},
		{"ws content array", `{"channel":"c","formats":{"ws-message":{"content":["x"]}}}`, ws + "contains 'content' with wrong type"},
		{"ws content-bin invalid", `{"channel":"c","formats":{"ws-message":{"content-bin":"@@@@"}}}`, ws + "contains 'content-bin' with invalid value"},
		{"ws filters object", `{"channel":"c","formats":{"ws-message":{"content":"x","content-filters":{}}}}`, ws + "contains 'content-filters' with wrong type"},
		{"ws close code string", `{"channel":"c","formats":{"ws-message":{"action":"close","code":"1000"}}}`, ws + "contains 'code' with wrong type"},
		{"ws close code negative", `{"channel":"c","formats":{"ws-message":{"action":"close","code":-5}}}`, ws + "contains 'code' with invalid value"},
		{"ws close code too big", `{"channel":"c","formats":{"ws-message":{"action":"close","code":65536}}}`, ws + "contains 'code' with invalid value"},
		{"ws close reason number", `{"channel":"c","formats":{"ws-message":{"action":"close","reason":1}}}`, ws + "contains 'reason' with wrong type"},

		// legacy shape is checked the same way
		{"legacy hr no body", `{"channel":"c","http-response":{}}`, hr + "does not contain 'body', 'body-bin', or 'body-patch'"},
		{"legacy ws not object", `{"channel":"c","ws-message":"hi"}`, ws + "is not an object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, err := DecodePublish([]byte(`{"items":[` + tc.item + `]}`))
			if err == nil {
				t.Fatalf("accepted, items %v", items)
			}
			if want := "Invalid format: item 0: " + tc.want; publishErrText(t, err) != want {
				t.Errorf("error %q\nwant  %q", publishErrText(t, err), want)
			}
		})
	}
}

func TestDecodePublishDecodesValidItems(t *testing.T) {
	cases := []struct {
		name, item string
		want       Item
	}{
		{"minimal stream", `{"channel":"c","formats":{"http-stream":{"content":"hi\n"}}}`,
			Item{Channel: "c", HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("hi\n")}}},
		{"all item fields", `{"channel":"c","id":"2","prev-id":"1","no-seq":true,"size":123,"meta":{"sender":"alice","k":""},"x-unknown":[1,{"a":null}],"formats":{"http-stream":{"content":""}}}`,
			Item{Channel: "c", ID: "2", PrevID: "1", NoSeq: true, Size: 123, Meta: map[string]string{"sender": "alice", "k": ""},
				HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte{}}}},
		{"no-seq false and whole float size", `{"channel":"c","no-seq":false,"size":2e2,"formats":{"http-stream":{"content":"x"}}}`,
			Item{Channel: "c", Size: 200, HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("x")}}},
		{"escaped strings", `{"channel":"caf\u00e9\ud83d\ude00","id":"a\"b\\c\/d\b\f\n\r\t","formats":{"http-stream":{"content":"\u0000\ud800x"}}}`,
			Item{Channel: "café😀", ID: "a\"b\\c/d\b\f\n\r\t", HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("\x00\uFFFDx")}}},
		{"raw utf-8 channel", `{"channel":"日本","formats":{"http-stream":{"content":"é"}}}`,
			Item{Channel: "日本", HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("é")}}},
		{"escaped key", `{"chan\u006eel":"c","formats":{"http-stream":{"content":"x"}}}`,
			Item{Channel: "c", HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("x")}}},
		{"response full with header object", `{"channel":"c","formats":{"http-response":{"action":"send","code":404,"reason":"Nope","headers":{"Content-Type":"text/plain","X-A":"1"},"body":"gone\n","content-filters":["build-id"]}}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionSend, Code: 404, Reason: "Nope",
				Headers: []Header{{"Content-Type", "text/plain"}, {"X-A", "1"}}, Body: []byte("gone\n"), ContentFilters: []string{"build-id"}}}},
		{"response header pairs keep order and repeats", `{"channel":"c","formats":{"http-response":{"headers":[["Set-Cookie","a=1"],["X-B","2"],["Set-Cookie","b=2"]],"body":""}}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionSend, Code: 200,
				Headers: []Header{{"Set-Cookie", "a=1"}, {"X-B", "2"}, {"Set-Cookie", "b=2"}}, Body: []byte{}}}},
		{"response code 200 and empty headers", `{"channel":"c","formats":{"http-response":{"code":200,"headers":[],"body":"x"}}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionSend, Code: 200, Body: []byte("x")}}},
		{"response body-bin over body", `{"channel":"c","formats":{"http-response":{"body-bin":"AAEC/w==","body":7}}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionSend, Code: 200, Body: []byte{0, 1, 2, 255}}}},
		{"response body-bin unpadded and escaped slash", `{"channel":"c","formats":{"http-response":{"body-bin":"AAEC\/w"}}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionSend, Code: 200, Body: []byte{0, 1, 2, 255}}}},
		{"response body-patch kept raw", `{"channel":"c","formats":{"http-response":{"body-patch":[{"op":"replace","path":"/a","value":{"b":[1]}}, {"op":"remove","path":"/c"}]}}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionSend, Code: 200,
				BodyPatch: json.RawMessage(`[{"op":"replace","path":"/a","value":{"b":[1]}}, {"op":"remove","path":"/c"}]`)}}},
		{"response empty content-filters is non-nil", `{"channel":"c","formats":{"http-response":{"body":"x","content-filters":[]}}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionSend, Code: 200, Body: []byte("x"), ContentFilters: []string{}}}},
		{"response hint ignores send fields", `{"channel":"c","formats":{"http-response":{"action":"hint","code":"bad","headers":5}}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionHint}}},
		{"response close parses", `{"channel":"c","formats":{"http-response":{"action":"close"}}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionClose}}},
		{"stream content-bin over content", `{"channel":"c","formats":{"http-stream":{"content-bin":"aGk=","content":"no","content-filters":["a","b"]}}}`,
			Item{Channel: "c", HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("hi"), ContentFilters: []string{"a", "b"}}}},
		{"stream hint and close", `{"channel":"c","formats":{"http-stream":{"action":"close","content":1}}}`,
			Item{Channel: "c", HTTPStream: &HTTPStream{Action: ActionClose}}},
		{"ws content defaults to text", `{"channel":"c","formats":{"ws-message":{"content":"hello"}}}`,
			Item{Channel: "c", WSMessage: &WSMessage{Action: ActionSend, Type: "text", Content: []byte("hello")}}},
		{"ws content-bin defaults to binary", `{"channel":"c","formats":{"ws-message":{"content-bin":"AP8="}}}`,
			Item{Channel: "c", WSMessage: &WSMessage{Action: ActionSend, Type: "binary", Content: []byte{0, 255}}}},
		{"ws explicit type wins", `{"channel":"c","formats":{"ws-message":{"type":"binary","content":"x","content-filters":[]}}}`,
			Item{Channel: "c", WSMessage: &WSMessage{Action: ActionSend, Type: "binary", Content: []byte("x"), ContentFilters: []string{}}}},
		{"ws ping without content", `{"channel":"c","formats":{"ws-message":{"type":"ping"}}}`,
			Item{Channel: "c", WSMessage: &WSMessage{Action: ActionSend, Type: "ping"}}},
		{"ws pong with content", `{"channel":"c","formats":{"ws-message":{"type":"pong","content":"p"}}}`,
			Item{Channel: "c", WSMessage: &WSMessage{Action: ActionSend, Type: "pong", Content: []byte("p")}}},
		{"ws close with code and reason", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1001,"reason":"bye","type":7}}}`,
			Item{Channel: "c", WSMessage: &WSMessage{Action: ActionClose, Code: 1001, Reason: "bye"}}},
		{"ws close bare", `{"channel":"c","formats":{"ws-message":{"action":"close"}}}`,
			Item{Channel: "c", WSMessage: &WSMessage{Action: ActionClose}}},
		{"ws refresh", `{"channel":"c","formats":{"ws-message":{"action":"refresh"}}}`,
			Item{Channel: "c", WSMessage: &WSMessage{Action: ActionRefresh}}},
		{"ws hint accepted", `{"channel":"c","formats":{"ws-message":{"action":"hint"}}}`,
			Item{Channel: "c", WSMessage: &WSMessage{Action: ActionHint}}},
		{"all three formats", `{"channel":"c","formats":{"http-response":{"body":"r"},"http-stream":{"content":"s"},"ws-message":{"content":"w"},"other":1}}`,
			Item{Channel: "c", HTTPResponse: &HTTPResponse{Action: ActionSend, Code: 200, Body: []byte("r")},
				HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("s")},
				WSMessage:  &WSMessage{Action: ActionSend, Type: "text", Content: []byte("w")}}},
		{"legacy shape", `{"channel":"c","http-stream":{"content":"s"},"ws-message":{"content":"w"}}`,
			Item{Channel: "c", HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("s")},
				WSMessage: &WSMessage{Action: ActionSend, Type: "text", Content: []byte("w")}}},
		{"formats wins over legacy keys", `{"channel":"c","http-response":"ignored","formats":{"http-stream":{"content":"s"}},"ws-message":5}`,
			Item{Channel: "c", HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("s")}}},
		{"repeated key takes the last", `{"channel":"a","channel":"b","formats":{"ws-message":{"content":"x"}},"formats":{"http-stream":{"content":"y"}}}`,
			Item{Channel: "b", HTTPStream: &HTTPStream{Action: ActionSend, Content: []byte("y")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, err := DecodePublish([]byte(` {"items":[` + tc.item + "]}\n"))
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if len(items) != 1 {
				t.Fatalf("%d items, want 1", len(items))
			}
			if !reflect.DeepEqual(items[0], &tc.want) {
				t.Errorf("got  %s\nwant %s", dumpItem(items[0]), dumpItem(&tc.want))
			}
		})
	}
}

func dumpItem(it *Item) string {
	s := fmt.Sprintf("%+v", *it)
	if f := it.HTTPResponse; f != nil {
		s += fmt.Sprintf(" hr=%+v body=%q patch=%s", *f, f.Body, f.BodyPatch)
	}
	if f := it.HTTPStream; f != nil {
		s += fmt.Sprintf(" hs=%+v content=%q", *f, f.Content)
	}
	if f := it.WSMessage; f != nil {
		s += fmt.Sprintf(" ws=%+v content=%q", *f, f.Content)
	}
	return s
}

func TestDecodePublishKeepsItemOrder(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"other":{"items":"not these"},"items":[`)
	for i := range 50 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"channel":"ch%d","formats":{"ws-message":{"content":"%d"}}}`, i, i)
	}
	b.WriteString(`]}`)
	items, err := DecodePublish([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 50 {
		t.Fatalf("%d items, want 50", len(items))
	}
	for i, it := range items {
		if want := fmt.Sprintf("ch%d", i); it.Channel != want || string(it.WSMessage.Content) != fmt.Sprint(i) {
			t.Errorf("item %d is %q/%q", i, it.Channel, it.WSMessage.Content)
		}
	}
}

func TestDecodePublishAcceptsEmptyItems(t *testing.T) {
	items, err := DecodePublish([]byte(`{"items":[]}`))
	if err != nil || len(items) != 0 {
		t.Fatalf("got %v, %v; want no items and no error", items, err)
	}
}

func TestDecodePublishRejectsAllWhenOneItemIsBad(t *testing.T) {
	good := `{"channel":"c","formats":{"http-stream":{"content":"x"}}}`
	bad := `{"channel":"c","formats":{"http-stream":{"content":1}}}`
	body := `{"items":[` + good + `,` + good + `,` + bad + `,` + good + `,{"channel":1}]}`
	items, err := DecodePublish([]byte(body))
	if items != nil {
		t.Errorf("returned %d items alongside the error", len(items))
	}
	const want = "Invalid format: item 2: 'http-stream' contains 'content' with wrong type"
	if got := publishErrText(t, err); got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}

func TestDecodePublishUsesTheLastItemsKey(t *testing.T) {
	items, err := DecodePublish([]byte(`{"items":[{"channel":1}],"items":[{"channel":"c","http-stream":{"content":"x"}}]}`))
	if err != nil || len(items) != 1 || items[0].Channel != "c" {
		t.Fatalf("got %v, %v", items, err)
	}
}

func TestDecodePublishDoesNotAliasTheBody(t *testing.T) {
	body := []byte(`{"items":[{"channel":"c","meta":{"k":"v"},"formats":{"http-response":{"headers":{"H":"v"},"body":"abc","content-filters":["f"]},"http-stream":{"content":"def"},"ws-message":{"content":"ghi"}}}]}`)
	items, err := DecodePublish(body)
	if err != nil {
		t.Fatal(err)
	}
	before := dumpItem(items[0])
	for i := range body {
		body[i] = 'X'
	}
	if after := dumpItem(items[0]); after != before {
		t.Errorf("item changed with the body:\n%s\n%s", before, after)
	}
}

func TestDecodePublishDecodesStringsLikeEncodingJSON(t *testing.T) {
	literals := []string{
		`"plain"`, `"\u00e9t\u00C9"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00x"`, `"\ud83d\u0041"`,
		`"\ud83d\ud83d\ude00"`, `"a\\u0041"`, `"\"\/\b\f\n\r\t"`, `"日本\u65e5"`, `"x\u0000y"`,
	}
	for _, lit := range literals {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("encoding/json rejects %s: %v", lit, err)
		}
		items, err := DecodePublish([]byte(`{"items":[{"channel":` + lit + `,"ws-message":{"content":` + lit + `}}]}`))
		if err != nil {
			t.Fatalf("%s rejected: %v", lit, err)
		}
		if items[0].Channel != want || string(items[0].WSMessage.Content) != want {
			t.Errorf("%s decoded as %q / %q, encoding/json gives %q", lit, items[0].Channel, items[0].WSMessage.Content, want)
		}
	}
}

// FuzzDecodePublish checks that DecodePublish never panics, that a success
// yields only items with a channel and a format, and that its idea of valid
// JSON and of string contents agrees with encoding/json.
func FuzzDecodePublish(f *testing.F) {
	seeds := []string{
		``, `{}`, `[]`, `{"items":[]}`, `{"items":{}}`,
		`{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}}]}`,
		`{"items":[{"channel":"c","id":"1","prev-id":"0","no-seq":true,"size":3,"meta":{"a":"b"},"http-response":{"code":201,"headers":[["A","b"]],"body-bin":"AAE="}}]}`,
		`{"items":[{"channel":"c\u00e9\ud83d","formats":{"ws-message":{"action":"close","code":1000,"reason":"r"},"http-response":{"body-patch":[{"op":"add","path":"/a","value":1}]}}}]}`,
		`{"items":[{"channel":"c","formats":{"ws-message":{"type":"ping"},"http-stream":{"action":"close"}}},{"channel":1}]}`,
		`{"items":[{"channel":"c","formats":{"http-response":{"headers":{"X":"1"},"body":"\n","content-filters":["build-id"]}}}]}`,
		"{\"items\":[{\"channel\":\"\xff\"}]}",
		`{"items":[[[[[[[[[[]]]]]]]]]]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := DecodePublish(body)
		if err != nil {
			if items != nil {
				t.Fatalf("items returned with error %v", err)
			}
			msg := publishErrText(t, err)
			if !strings.HasPrefix(msg, "Body is not valid JSON.") && !strings.HasPrefix(msg, "Invalid format") {
				t.Fatalf("unexpected error text %q", msg)
			}
			invalid := msg == "Body is not valid JSON."
			// encoding/json accepts invalid UTF-8 and deeper nesting; Qt and we do not.
			if !invalid && !json.Valid(body) {
				t.Fatalf("accepted invalid JSON as JSON: %q", msg)
			}
			if invalid && json.Valid(body) && utf8.Valid(body) && !deeperThan(body, 999) {
				t.Fatalf("rejected valid JSON %q", body)
			}
			return
		}
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("accepted invalid JSON")
		}
		var ref struct{ Items []map[string]json.RawMessage }
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("encoding/json cannot read an accepted body: %v", err)
		}
		if len(ref.Items) != len(items) {
			t.Fatalf("%d items, encoding/json sees %d", len(items), len(ref.Items))
		}
		for i, it := range items {
			if it.Channel == "" || it.HTTPResponse == nil && it.HTTPStream == nil && it.WSMessage == nil {
				t.Fatalf("item %d has no channel or no format: %+v", i, it)
			}
			var ch string
			if err := json.Unmarshal(ref.Items[i]["channel"], &ch); err != nil || ch != it.Channel {
				t.Fatalf("item %d channel %q, encoding/json reads %q (%v)", i, it.Channel, ch, err)
			}
			if msg := wireFault(it); msg != "" {
				t.Fatalf("item %d accepted but cannot be sent: %s", i, msg)
			}
		}
	})
}

// deeperThan reports whether JSON text nests arrays/objects more than max deep.
func deeperThan(b []byte, max int) bool {
	depth, inStr := 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			if depth++; depth > max {
				return true
			}
		case !inStr && (c == '}' || c == ']'):
			depth--
		}
	}
	return false
}
