package integration_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// streamOrigin answers every request with a stream hold on the channel
// named by the path, e.g. /chan-a.
func streamOrigin(t *testing.T) string {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", strings.TrimPrefix(r.URL.Path, "/"))
		io.WriteString(w, "open\n")
	})
	return origin.URL
}

func TestPublishEndpointStatusCodes(t *testing.T) {
	loadCaddyfile(t, fmt.Sprintf(`
http://127.0.0.1:%d {
	grip_publish {
		max_body_size 2000
	}
}`, publishPort))
	cases := []struct {
		name, method, path, accept, body string
		status                           int
		want                             string
		header                           [2]string
	}{
		{"ok text", "POST", "/publish/", "", streamItem("x", "y"), 200, "Published\n", [2]string{}},
		{"ok no slash", "POST", "/publish", "", streamItem("x", "y"), 200, "Published\n", [2]string{}},
		{"ok json", "POST", "/publish/", "application/json", streamItem("x", "y"), 200, `{"message":"Published"}` + "\n", [2]string{"Content-Type", "application/json"}},
		{"get", "GET", "/publish/", "", "", 405, "", [2]string{"Allow", "POST"}},
		{"not acceptable", "POST", "/publish/", "image/png", streamItem("x", "y"), 406, "", [2]string{}},
		{"not json", "POST", "/publish/", "", "{nope", 400, "Body is not valid JSON.\n", [2]string{}},
		{"not object", "POST", "/publish/", "", "[1]", 400, "Invalid format.\n", [2]string{}},
		{"no items", "POST", "/publish/", "", `{"x":1}`, 400, "Invalid format: object does not contain 'items'\n", [2]string{}},
		{"no formats", "POST", "/publish/", "", `{"items":[{"channel":"a"}]}`, 400, "Invalid format: item 0: no formats specified\n", [2]string{}},
		{"too large", "POST", "/publish/", "", streamItem("x", strings.Repeat("y", 3000)), 413, "", [2]string{}},
		{"elsewhere", "POST", "/other", "", streamItem("x", "y"), 404, "", [2]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, fmt.Sprintf("http://127.0.0.1:%d%s", publishPort, tc.path), strings.NewReader(tc.body))
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := publisher.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || (tc.want != "" && string(b) != tc.want) {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, b, tc.status, tc.want)
			}
			if tc.header[0] != "" && !strings.HasPrefix(resp.Header.Get(tc.header[0]), tc.header[1]) {
				t.Fatalf("%s: %q", tc.header[0], resp.Header.Get(tc.header[0]))
			}
		})
	}
}

func TestPublishKeyRequired(t *testing.T) {
	loadCaddyfile(t, fmt.Sprintf(`
http://127.0.0.1:%d {
	grip_publish {
		key hunter2
	}
}`, publishPort))
	for _, tc := range []struct {
		auth   string
		status int
	}{
		{"", 401}, {"Bearer wrong", 401}, {"Basic aHVudGVyMg==", 401}, {"Bearer hunter2", 200},
	} {
		h := http.Header{}
		if tc.auth != "" {
			h.Set("Authorization", tc.auth)
		}
		if status, body := publishRaw(t, streamItem("k", "v"), h); status != tc.status {
			t.Errorf("Authorization %q: %d %q", tc.auth, status, body)
		}
	}
}

func TestRejectedBatchDeliversNothing(t *testing.T) {
	loadCaddyfile(t, gripSite(streamOrigin(t), ""))
	s := openStream(t, caddyURL+"/batch", nil)
	s.next(t)
	status, _ := publishRaw(t, `{"items":[
		{"channel":"batch","formats":{"http-stream":{"content":"first\n"}}},
		{"channel":"batch","formats":{"http-stream":{"action":"explode"}}}]}`, nil)
	if status != 400 {
		t.Fatalf("status %d", status)
	}
	publish(t, streamItem("batch", "good\n"))
	if got := s.next(t); got != "good\n" {
		t.Fatalf("got %q: part of a rejected batch was delivered", got)
	}
}

func TestDuplicateIDsDeliveredOnce(t *testing.T) {
	loadCaddyfile(t, gripSite(streamOrigin(t), ""))
	s := openStream(t, caddyURL+"/dedup", nil)
	s.next(t)
	item := `{"items":[{"channel":"dedup","id":"a1","formats":{"http-stream":{"content":"once\n"}}}]}`
	publish(t, item)
	publish(t, item)
	publish(t, streamItem("dedup", "next\n"))
	if got := s.next(t); got != "once\n" {
		t.Fatalf("got %q", got)
	}
	if got := s.next(t); got != "next\n" {
		t.Fatalf("got %q: duplicate delivered", got)
	}
}

func TestOutOfOrderPublishesAreSequenced(t *testing.T) {
	loadCaddyfile(t, gripSite(streamOrigin(t), ""))
	s := openStream(t, caddyURL+"/seq", nil)
	s.next(t)
	seqItem := func(id, prev string) string {
		return fmt.Sprintf(`{"items":[{"channel":"seq","id":%q,"prev-id":%q,"formats":{"http-stream":{"content":"%s\n"}}}]}`, id, prev, id)
	}
	publish(t, seqItem("1", "0")) // the first item after subscribing passes
	publish(t, seqItem("3", "2")) // held: 2 has not been seen
	publish(t, seqItem("2", "1"))
	for _, want := range []string{"1\n", "2\n", "3\n"} {
		if got := s.next(t); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
}

func TestManySubscribersReceiveEveryMessageInOrder(t *testing.T) {
	const subs, msgs = 200, 100
	loadCaddyfile(t, gripSite(streamOrigin(t), ""))
	streams := make([]*stream, subs)
	for i := range streams {
		streams[i] = openStream(t, caddyURL+"/crowd", nil)
		streams[i].next(t)
	}
	waitSubscribers(t, subs)
	go func() {
		for i := range msgs {
			if status, body := publishRaw(t, streamItem("crowd", fmt.Sprintf("m%d\n", i)), nil); status != 200 {
				t.Errorf("publish %d: %d %q", i, status, body)
			}
		}
	}()
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() {
			for j := range msgs {
				got, err := s.nextLine()
				if want := fmt.Sprintf("m%d\n", j); got != want {
					t.Errorf("subscriber %d: got %q (%v) want %q", i, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
