package integration_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// TestHeldStreamCutsAClientThatKeepsSending checks that a held stream does
// not read without bound what its client sends after the request: past the
// bound the client is cut and its subscription ends, while a quiet client
// on the same channel keeps its stream.
func TestHeldStreamCutsAClientThatKeepsSending(t *testing.T) {
	loadCaddyfile(t, gripSite(streamOrigin(t), ""))
	quiet := openStream(t, caddyURL+"/chatter", nil)
	if got := quiet.next(t); got != "open\n" {
		t.Fatalf("quiet client got %q, want open", got)
	}
	waitSubscribers(t, 1)

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", caddyPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /chatter HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	br := bufio.NewReader(c)
	for { // the response head and the initial body: the hold is set up
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the held response: %v", err)
		}
		if strings.TrimSpace(line) == "open" {
			break
		}
	}
	waitSubscribers(t, 2)

	// 4 MiB of junk after the request, far past the bound; the writes stop
	// (with an error) once Caddy closes the connection.
	go func() {
		junk := []byte(strings.Repeat("x", 64<<10))
		for range 64 {
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	}()
	waitSubscribers(t, 1)
	if _, err := io.Copy(io.Discard, br); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading to the end: %v", err)
	}

	publish(t, streamItem("chatter", "still here\n"))
	if got := quiet.next(t); got != "still here\n" {
		t.Fatalf("quiet client got %q after the cut", got)
	}
}
