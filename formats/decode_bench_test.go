package formats

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// benchPublishBody is a publish body of n typical items: every format, an
// id chain, meta, a header and ~100 bytes of content, some of it escaped.
func benchPublishBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"channel":"room-%d","id":"%d","prev-id":"%d","meta":{"sender":"alice"},"formats":{`+
			`"http-response":{"code":200,"headers":{"Content-Type":"application/json"},"body":"{\"n\":%d,\"text\":\"a message of some eighty bytes, as chat apps send them\"}\n"},`+
			`"http-stream":{"content":"event: message\ndata: {\"n\":%d,\"text\":\"a message of some eighty bytes, as chat apps send them\"}\n\n"},`+
			`"ws-message":{"content":"{\"n\":%d,\"text\":\"a message of some eighty bytes, as chat apps send them\"}"}}}`,
			i, i+1, i, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// benchStdItem is what encoding/json needs to read the same body into
// structs; it skips the validation DecodePublish does and is the baseline.
type benchStdItem struct {
	Channel string            `json:"channel"`
	ID      string            `json:"id"`
	PrevID  string            `json:"prev-id"`
	Meta    map[string]string `json:"meta"`
	Formats struct {
		HTTPResponse *struct {
			Code    int             `json:"code"`
			Headers json.RawMessage `json:"headers"`
			Body    string          `json:"body"`
		} `json:"http-response"`
		HTTPStream *struct {
			Content string `json:"content"`
		} `json:"http-stream"`
		WSMessage *struct {
			Content string `json:"content"`
		} `json:"ws-message"`
	} `json:"formats"`
}

func benchmarkDecodePublish(b *testing.B, n int) {
	body := benchPublishBody(n)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		items, err := DecodePublish(body)
		if err != nil || len(items) != n {
			b.Fatalf("%d items, %v", len(items), err)
		}
	}
}

func benchmarkStdlibBaseline(b *testing.B, n int) {
	body := benchPublishBody(n)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var v struct{ Items []benchStdItem }
		if err := json.Unmarshal(body, &v); err != nil || len(v.Items) != n {
			b.Fatalf("%d items, %v", len(v.Items), err)
		}
	}
}

func BenchmarkDecodePublish1(b *testing.B)   { benchmarkDecodePublish(b, 1) }
func BenchmarkDecodePublish100(b *testing.B) { benchmarkDecodePublish(b, 100) }

// The encoding/json baselines, measured in the same run for a ratio.
func BenchmarkDecodePublishStdlibBaseline1(b *testing.B)   { benchmarkStdlibBaseline(b, 1) }
func BenchmarkDecodePublishStdlibBaseline100(b *testing.B) { benchmarkStdlibBaseline(b, 100) }
