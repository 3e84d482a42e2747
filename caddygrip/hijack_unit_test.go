package caddygrip

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/wsoverhttp"
)

// streamOrigin answers with a stream hold on channel c with initial body
// start, and a gone link to /gone.
func streamOrigin(start string) *stubOrigin {
	return holdThenGone(start, "Content-Type", "text/event-stream", "Grip-Hold", "stream", "Grip-Channel", "c",
		"Grip-Link", "</gone>; rel=gone")
}

// readExactly reads len(want) bytes of a body and compares them.
func readExactly(t *testing.T, r io.Reader, want string) {
	t.Helper()
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != want {
		t.Fatalf("client read %q, %v; want %q", buf, err, want)
	}
}

// wantHijacked checks that the stream runs on a goroutine of its own, its
// handler returned.
func wantHijacked(t *testing.T) {
	t.Helper()
	synctest.Wait()
	running, handler := false, false
	for _, stack := range goroutines() {
		running = running || strings.Contains(stack, "(*hijackedStream).run")
		handler = handler || strings.Contains(stack, "(*Grip).ServeHTTP")
	}
	if !running || handler {
		t.Fatalf("hijacked stream running %v, handler still running %v", running, handler)
	}
}

// getHijacked GETs /s through a pipe server for g and origin, reads the
// initial body start and waits for the stream to be hijacked; the body is
// closed at the end of the test.
func getHijacked(t *testing.T, g *Grip, origin *stubOrigin, start string) *http.Response {
	t.Helper()
	res, err := servePipe(t, g, origin).client.Get(pipeURL + "/s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	readExactly(t, res.Body, start)
	wantHijacked(t)
	return res
}

func TestUnitHijackedStreamWritesChunksAndEndsWithTheLastChunk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := streamOrigin("event: start\n\n")
		res := getHijacked(t, g, origin, "event: start\n\n")
		if res.StatusCode != http.StatusOK || !slices.Equal(res.TransferEncoding, []string{"chunked"}) ||
			res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("client got %d %v %v", res.StatusCode, res.TransferEncoding, res.Header)
		}
		wantNoGripHeaders(t, res.Header)

		publishItems(t, p, streamItem("c", "1", "data: one\n\n"))
		readExactly(t, res.Body, "data: one\n\n")
		publishItems(t, p, closeStream)
		rest, err := io.ReadAll(res.Body)
		if err != nil || len(rest) != 0 {
			t.Fatalf("after the close the client read %q, %v; want a clean end of the body", rest, err)
		}
		g.sessions.Wait()
		if got := origin.uris(); !slices.Equal(got, []string{"GET /s"}) {
			t.Fatalf("origin got %q: a stream closed by a publish is not gone", got)
		}
	})
}

func TestUnitHijackedStreamClientLeavingPostsTheGoneLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		origin := streamOrigin("hi\n")
		getHijacked(t, g, origin, "hi\n").Body.Close()
		g.sessions.Wait()
		if got := origin.uris(); !slices.Equal(got, []string{"GET /s", "POST /gone"}) {
			t.Fatalf("origin got %q, want the gone link posted", got)
		}
		wantNoSubscribers(t, g)
	})
}

func TestUnitHijackedStreamSlowClientIsCutAtTheWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := streamOrigin("hi\n")
		res := getHijacked(t, g, origin, "hi\n")
		start := time.Now()
		// The client reads nothing more while this is written.
		publishItems(t, p, streamItem("c", "", strings.Repeat("x", 256<<10)))
		g.sessions.Wait()
		if waited := time.Since(start); waited != defaultWriteTimeout {
			t.Errorf("cut after %v, want the write timeout %v", waited, defaultWriteTimeout)
		}
		if _, err := io.ReadAll(res.Body); err == nil {
			t.Fatal("the cut stream read as complete")
		}
		if got := origin.uris(); !slices.Equal(got, []string{"GET /s", "POST /gone"}) {
			t.Fatalf("origin got %q, want the gone link posted", got)
		}
		if st := g.ref.hub.Stats(); st.SlowDisconnects != 1 {
			t.Fatalf("%d slow disconnects, want 1", st.SlowDisconnects)
		}
	})
}

func TestUnitHijackedStreamCutsAClientThatSendsTooMuch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, logs := unitGrip(t, nil)
		ps := servePipe(t, g, streamOrigin("hi\n"))
		conn, err := ps.dial(context.Background(), "tcp", "grip.test:80")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /s HTTP/1.1\r\nHost: grip.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		readExactly(t, res.Body, "hi\n")
		wantHijacked(t)
		junk := []byte(strings.Repeat("j", 1024))
		sent := 0
		for ; sent <= 2*maxBytesAfterRequest; sent += len(junk) {
			if _, err := conn.Write(junk); err != nil {
				break
			}
		}
		if sent > 2*maxBytesAfterRequest {
			t.Fatalf("the server took %d bytes after the request", sent)
		}
		g.sessions.Wait()
		if _, err := io.ReadAll(res.Body); err == nil {
			t.Fatal("the cut stream read as complete")
		}
		if logs.FilterMessageSnippet("sent too much after its request").Len() != 1 {
			t.Fatalf("no log line says why the client was cut: %v", logs.All())
		}
	})
}

// The same sessions over real TCP, where the idle waiter parks readers on
// the socket: every goroutine they start must be gone once they end.

func TestUnitHijackedStreamOverTCPLeavesNoGoroutines(t *testing.T) {
	checkNoLeaks(t)
	g, p := gripAndPublisher(t)
	origin := streamOrigin("hi\n")
	srv := serveGrip(t, g, origin)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get(srv.URL + "/s")
	if err != nil {
		t.Fatal(err)
	}
	readExactly(t, res.Body, "hi\n")
	eventually(t, "the stream subscribed", func() bool { return g.ref.hub.Stats().Subscribers == 1 })
	publishItems(t, p, streamItem("c", "", "one\n"))
	readExactly(t, res.Body, "one\n")
	res.Body.Close()
	g.sessions.Wait()
	if got := origin.uris(); !slices.Equal(got, []string{"GET /s", "POST /gone"}) {
		t.Fatalf("origin got %q, want the gone link posted", got)
	}
}

func TestUnitWebSocketOverTCPLeavesNoGoroutines(t *testing.T) {
	checkNoLeaks(t)
	g, p := gripAndPublisher(t)
	origin := wsEcho("room")
	srv := serveGrip(t, g, origin)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chat(t, conn, p, websocket.CloseNormalClosure, "")
	g.sessions.Wait()
	wantEvents(t, origin, "OPEN", "TEXT hello", "CLOSE 1000")
}

// TestUnitWebSocketOverTCPReaderEndsWhenTheOriginFailsBehind is defect 3
// of the hardening issue over real TCP: checkNoLeaks finds the reader if
// it stays blocked after the session ended.
func TestUnitWebSocketOverTCPReaderEndsWhenTheOriginFailsBehind(t *testing.T) {
	checkNoLeaks(t)
	g, _ := unitGrip(t, nil)
	release := make(chan struct{})
	origin := newStubOrigin(func(n int, c originCall, w http.ResponseWriter) error {
		switch n {
		case 0:
			return answerEvents(w, []wsoverhttp.Event{{Type: wsoverhttp.Open}})
		case 1:
			<-release
			w.WriteHeader(http.StatusInternalServerError)
			return nil
		}
		return answerEvents(w, nil)
	})
	srv := serveGrip(t, g, origin)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One message in flight, then past the batch limit, then the read-ahead.
	msg := []byte(strings.Repeat("x", wohMaxBatch/4))
	for range 10 {
		if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the reader blocked handing over a message", func() bool {
		for _, stack := range goroutines() {
			if strings.Contains(stack, "(*wsSession).readLoop") &&
				(strings.Contains(stack, "[select") || strings.Contains(stack, "[chan send")) {
				return true
			}
		}
		return false
	})
	close(release)
	if ce := readClose(t, conn); ce.Code != websocket.CloseInternalServerErr {
		t.Fatalf("client got close %d, want 1011", ce.Code)
	}
	g.sessions.Wait()
}
