package integration_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stormOrigin is a reliable-stream origin: /stream?prev=<id> holds a stream
// on "storm" with that prev-id and a next link; the next link answers with
// every item after Grip-Last's id, from its own log of what was published,
// and holds again.
type stormOrigin struct {
	requests atomic.Int64
	mu       sync.Mutex
	items    []string // published ids, in order
}

func (o *stormOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	prev := r.URL.Query().Get("prev")
	var body strings.Builder
	if r.URL.Path == "/next" {
		_, last, _ := strings.Cut(r.Header.Get("Grip-Last"), "last-id=")
		o.mu.Lock()
		after := false
		for _, id := range o.items {
			if after {
				fmt.Fprintf(&body, "data: m%s\n\n", id)
			}
			after = after || id == last
		}
		if len(o.items) > 0 {
			prev = o.items[len(o.items)-1]
		}
		o.mu.Unlock()
	}
	w.Header().Set("Grip-Hold", "stream")
	w.Header().Set("Grip-Channel", "storm; prev-id="+prev)
	w.Header().Set("Grip-Link", "</next>; rel=next")
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, body.String())
}

// BenchmarkReconnectStorm has 10,000 SSE clients reconnect with a stale
// prev-id after 50 publishes, with the hub's history on and off: the
// origin requests it takes and the time until every client has the last
// item. Run it with -benchtime 1x (each iteration is one storm per mode).
func BenchmarkReconnectStorm(b *testing.B) {
	const clients, published = 10000, 50
	for b.Loop() {
		for _, mode := range []string{"off", "on"} {
			origin := &stormOrigin{}
			srv := startOrigin(b, origin.serve)
			addr := fmt.Sprintf("127.0.0.1:%d", freePort())
			history := ""
			if mode == "on" {
				history = "grip {\n\t\thistory 100\n\t}"
			}
			startCaddyProcess(b, fmt.Sprintf(`{
	admin off
	persist_config off
	%s
}
http://%s {
	handle /publish/* {
		grip_publish
	}
	handle {
		grip {
			update_on_first_subscription off
		}
		reverse_proxy %s
	}
}`, history, addr, srv.Listener.Addr().String()), addr)
			node := &clusterNode{addr: addr, name: mode}
			for i := 0; i <= published; i++ {
				id := strconv.Itoa(i)
				origin.mu.Lock()
				origin.items = append(origin.items, id)
				origin.mu.Unlock()
				mustPublishTo(b, node, fmt.Sprintf(`{"items":[{"channel":"storm","id":%q,"formats":{"http-stream":{"content":"data: m%s\n\n"}}}]}`, id, id))
			}
			origin.requests.Store(0)
			var done sync.WaitGroup
			done.Add(clients)
			last := fmt.Sprintf("data: m%d", published)
			start := time.Now()
			conns := make([]net.Conn, 0, clients)
			for range clients {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
				fmt.Fprintf(c, "GET /stream?prev=0 HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
				go func() {
					defer done.Done()
					r := bufio.NewReader(c)
					for {
						line, err := r.ReadString('\n')
						if err != nil || strings.TrimRight(line, "\r\n") == last {
							return
						}
					}
				}()
			}
			done.Wait()
			took := time.Since(start)
			b.ReportMetric(float64(origin.requests.Load())/clients, "origin-req/client-history-"+mode)
			b.ReportMetric(took.Seconds(), "s-all-caught-up-history-"+mode)
			for _, c := range conns {
				c.Close()
			}
		}
	}
}
