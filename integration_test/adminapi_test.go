package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestAdminAPIAnswersUnderTenThousandHeldClients holds 10,000 SSE streams
// on one Caddy process and reads the grip admin endpoints meanwhile.
func TestAdminAPIAnswersUnderTenThousandHeldClients(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections")
	}
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "ch"+r.URL.Query().Get("n"))
		w.Header().Set("Content-Type", "text/event-stream")
	})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	admin := fmt.Sprintf("127.0.0.1:%d", freePort())
	startCaddyProcess(t, fmt.Sprintf(`{
	admin %s
	persist_config off
	grace_period 3s
}
http://%s {
	grip
	reverse_proxy %s
}`, admin, addr, origin.Listener.Addr().String()), addr)
	adminClient := &http.Client{Timeout: 10 * time.Second} // a hang guard, not a performance bound
	get := func(path string, v any) time.Duration {
		t.Helper()
		start := time.Now()
		resp, err := adminClient.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, b)
		}
		return took
	}

	const clients, channels = 10000, 500
	conns := make([]net.Conn, 0, clients)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /events?n=%d HTTP/1.1\r\nHost: %s\r\n\r\n", i%channels, addr)
	}
	var hub struct{ Channels, Subscribers int }
	eventually(t, "10,000 held clients", func() bool {
		get("/grip/hubs/default", &hub)
		return hub.Subscribers == clients
	})
	if hub.Channels != channels {
		t.Fatalf("%d channels, want %d", hub.Channels, channels)
	}
	var list struct {
		Matched  int
		Channels []struct {
			Name        string
			Subscribers int
		}
	}
	took := get("/grip/hubs/default/channels?limit=1000", &list)
	if list.Matched != channels || len(list.Channels) != channels || list.Channels[0].Subscribers != clients/channels {
		t.Fatalf("listing: matched %d, %d listed, first %+v", list.Matched, len(list.Channels), list.Channels[0])
	}
	var one struct{ Subscribers int }
	tookOne := get("/grip/hubs/default/channels/ch7", &one)
	if one.Subscribers != clients/channels {
		t.Fatalf("ch7 has %d subscribers", one.Subscribers)
	}
	t.Logf("under %d held clients: channel listing %v, one channel %v", clients, took, tookOne)
}
