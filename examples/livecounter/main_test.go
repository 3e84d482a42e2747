package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGripLastIDReadsItsChannel(t *testing.T) {
	for _, tc := range []struct {
		header, channel, want string
		ok                    bool
	}{
		{"counter-1; last-id=5", "counter-1", "5", true},
		{"counter-10; last-id=7, counter-1; last-id=5", "counter-1", "5", true},
		{"counter-10; last-id=7", "counter-1", "", false},
		{"counter-1", "counter-1", "", false},
		{"", "counter-1", "", false},
	} {
		got, ok := gripLastID(tc.header, tc.channel)
		if got != tc.want || ok != tc.ok {
			t.Errorf("gripLastID(%q, %q) = %q, %t; want %q, %t", tc.header, tc.channel, got, ok, tc.want, tc.ok)
		}
	}
}

// testOrigin is the origin with its publisher pointed at a recorder of
// purges and publishes.
func testOrigin(t *testing.T) (*origin, *httptest.Server, func() []string) {
	var mu sync.Mutex
	var calls []string
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.Path+" "+string(b))
		mu.Unlock()
	}))
	t.Cleanup(rec.Close)
	o := &origin{publishURL: rec.URL + "/publish/", purgeURL: rec.URL, maxAge: 600, window: 50 * time.Millisecond,
		client: rec.Client(), counters: map[string]*counter{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counters/{id}/", o.get)
	mux.HandleFunc("POST /counters/{id}/", o.increment)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return o, srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), calls...) }
}

func TestStreamAnswerCarriesPrevIDAndNextLink(t *testing.T) {
	_, srv, _ := testOrigin(t)
	req, _ := http.NewRequest("GET", srv.URL+"/counters/1/", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for k, want := range map[string]string{
		"Grip-Hold": "stream", "Grip-Channel": "counter-1; prev-id=0", "Vary": "Accept",
		"Cache-Control": "s-maxage=600", "Grip-Link": "</counters/1/>; rel=next; timeout=3600",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if string(body) != "data: 0\n\n" {
		t.Errorf("body %q", body)
	}

	// A next-link fetch from a client that is current gets no event.
	req.Header.Set("Grip-Last", "counter-1; last-id=0")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) != 0 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("current client's next link: %q, Cache-Control %q", body, resp.Header.Get("Cache-Control"))
	}
}

func TestBadCounterIDIsNotFound(t *testing.T) {
	_, srv, _ := testOrigin(t)
	resp, err := http.Get(srv.URL + "/counters/Not_An_ID/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestIncrementsPurgeThenPublishCoalescedLastValueWins(t *testing.T) {
	_, srv, calls := testOrigin(t) // a 50 ms window
	for range 5 {
		resp, err := http.Post(srv.URL+"/counters/1/", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The first increment is sent at once; the others, if they came within
	// its window, in one more round with the value 5.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(strings.Join(calls(), "\n"), `"id":"5"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no publish of id 5: %q", calls())
		}
		time.Sleep(time.Millisecond)
	}
	got := calls()
	if len(got) != 2 && len(got) != 4 {
		t.Fatalf("calls %q, want one or two rounds", got)
	}
	for i := 0; i < len(got); i += 2 {
		if got[i] != "PURGE /counters/1/ " || !strings.HasPrefix(got[i+1], "POST /publish/ ") {
			t.Fatalf("round %d: %q, want a purge then a publish", i/2, got[i:i+2])
		}
	}
	if len(got) == 4 && !strings.Contains(got[3], `"prev-id":"`) {
		t.Fatalf("second publish %q has no prev-id", got[3])
	}
}
