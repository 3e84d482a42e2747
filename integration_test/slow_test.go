package integration_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddy-grip/grip/caddygrip"
)

func TestSlowSubscriberIsDisconnectedWithoutStallingOthers(t *testing.T) {
	loadCaddyfile(t, gripSite(streamOrigin(t), "write_timeout 1s"))
	h := caddygrip.LookupHub(caddygrip.DefaultHub)
	slowBefore := h.Stats().SlowDisconnects

	// A client that sends its request and then never reads.
	slow, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", caddyPort))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /slowpoke HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	waitSubscribers(t, 1)
	healthy := openStream(t, caddyURL+"/slowpoke", nil)
	healthy.next(t)
	waitSubscribers(t, 2)

	// 20 MB in 2000 items, far beyond the slow client's socket buffers and
	// its 1 MiB queue. Each batch (0.5 MB) is published once the healthy
	// client has read the one before, so that only the slow one falls behind.
	const batches, per = 40, 50
	pad := strings.Repeat("x", 10000)
	for b := range batches {
		var items []string
		for i := range per {
			items = append(items, fmt.Sprintf(`{"channel":"slowpoke","formats":{"http-stream":{"content":"%d %s\n"}}}`, b*per+i, pad))
		}
		publish(t, `{"items":[`+strings.Join(items, ",")+`]}`)
		for i := range per {
			n := b*per + i
			line, err := healthy.nextLine()
			if want := fmt.Sprintf("%d %s\n", n, pad); line != want {
				t.Fatalf("healthy subscriber, item %d: got %.20q (%v)", n, line, err)
			}
		}
	}
	eventually(t, "the slow subscriber to be dropped", func() bool {
		return h.Stats().SlowDisconnects > slowBefore && subscribers() == 1
	})
	// Its connection is closed, not left hanging: reading what reached its
	// buffers ends in EOF or a reset, not a timeout. (A client receive
	// buffer shrunk by hand would make the kernel trickle the last
	// megabytes out for minutes; the defaults are used here.)
	_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.Copy(io.Discard, slow)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("slow client's connection was left open")
	}
}
