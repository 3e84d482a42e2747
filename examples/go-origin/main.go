// Command go-origin is a GRIP origin written with the Go standard library
// only, to run behind caddy-grip (see the Caddyfile beside it, and run.sh).
// It stays plain, short-lived HTTP; Caddy holds the clients:
//
//	GET /events/<channel>  Server-Sent Events: held as a stream on <channel>
//	GET /poll/<channel>    a long-poll: held until a publish, or 30 s
//	/chat                  a WebSocket chat room, over WebSocket-over-HTTP
//	GET /                  the chat page (chat.html)
//
// The chat subscribes every connection to channel "room" with a GRIP
// control message and publishes each message a client sends to "room"
// through the grip_publish endpoint (-publish), so every member, the sender
// included, gets it.
package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed chat.html
var chatPage []byte

// chatChannel is the channel every chat connection is subscribed to.
const chatChannel = "room"

// maxEventsBody bounds a WebSocket-over-HTTP request body. Caddy batches
// client messages into one request (about 200 KB, or one message of up to
// its max_message_size, 1 MiB by default), so this leaves room.
const maxEventsBody = 4 << 20

func main() {
	listen := flag.String("listen", "127.0.0.1:3000", "address to serve the origin on")
	publishURL := flag.String("publish", "http://127.0.0.1:8301/publish/", "caddy-grip's grip_publish endpoint")
	flag.Parse()

	o := &origin{publishURL: *publishURL, client: &http.Client{Timeout: 10 * time.Second}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events/{channel}", o.events)
	mux.HandleFunc("GET /poll/{channel}", o.poll)
	mux.HandleFunc("/chat", o.chat)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(chatPage)
	})
	log.Printf("go-origin listening on %s, publishing to %s", *listen, *publishURL)
	log.Fatal(http.ListenAndServe(*listen, mux))
}

type origin struct {
	publishURL string
	client     *http.Client
}

// events answers with a stream hold: Caddy keeps the client's response open
// and writes each http-stream item published to the channel into it.
func (o *origin) events(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("channel")
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Grip-Hold", "stream")
	h.Set("Grip-Channel", ch)
	// A comment line every 20 s keeps proxies and browsers from timing out.
	h.Set("Grip-Keep-Alive", `:\n\n; format=cstring; timeout=20`)
	fmt.Fprintf(w, ": subscribed to %s\n\n", ch)
}

// poll answers with a response hold: Caddy keeps the client waiting and
// answers it with the first http-response item published to the channel,
// or with this body after Grip-Timeout seconds.
func (o *origin) poll(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("channel")
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Grip-Hold", "response")
	h.Set("Grip-Channel", ch)
	h.Set("Grip-Timeout", "30")
	fmt.Fprintf(w, "no news on %s\n", ch)
}

// chat serves a WebSocket connection as Caddy speaks it to the origin:
// each request's body is the client's events (OPEN, TEXT, CLOSE, ...), and
// the answer's body is the events to send back.
func (o *origin) chat(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/websocket-events") {
		http.Error(w, "connect with a WebSocket client (through Caddy), or open / in a browser", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventsBody))
	if err != nil {
		log.Printf("chat %s: reading events: %v", r.Header.Get("Connection-Id"), err)
		http.Error(w, "reading events: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	in, err := parseEvents(body)
	if err != nil {
		log.Printf("chat %s: %v", r.Header.Get("Connection-Id"), err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var out bytes.Buffer
	for _, e := range in {
		switch e.typ {
		case "OPEN":
			// Accept, turn on control messages (the header below), join
			// the room. Messages to the client carry the "m:" prefix.
			w.Header().Set("Sec-WebSocket-Extensions", "grip")
			writeEvent(&out, "OPEN", nil)
			writeEvent(&out, "TEXT", []byte(`c:{"type":"subscribe","channel":"`+chatChannel+`"}`))
			writeEvent(&out, "TEXT", []byte("m:welcome to "+chatChannel))
		case "TEXT":
			if err := o.publish(chatChannel, string(e.content)); err != nil {
				log.Printf("chat %s: %v", r.Header.Get("Connection-Id"), err)
				writeEvent(&out, "TEXT", []byte("m:(not sent: "+err.Error()+")"))
			}
		case "CLOSE":
			// Close back with the client's code and reason.
			writeEvent(&out, "CLOSE", e.content)
		}
		// BINARY: the chat is text, binary messages are dropped.
		// DISCONNECT: the client is gone and the answer is not read.
	}
	w.Header().Set("Content-Type", "application/websocket-events")
	w.Write(out.Bytes())
}

// publish sends one ws-message item to the channel's WebSocket subscribers.
func (o *origin) publish(channel, text string) error {
	item := map[string]any{"channel": channel, "formats": map[string]any{"ws-message": map[string]string{"content": text}}}
	body, err := json.Marshal(map[string]any{"items": []any{item}})
	if err != nil {
		return err
	}
	resp, err := o.client.Post(o.publishURL, "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publishing: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// event is one WebSocket-over-HTTP event.
type event struct {
	typ     string
	content []byte
}

// parseEvents reads "TYPE\r\n" and "TYPE <hex length>\r\n<content>\r\n"
// events.
func parseEvents(b []byte) ([]event, error) {
	var evs []event
	for len(b) > 0 {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return nil, errors.New("bad events: a line without CRLF")
		}
		typ, size, sized := strings.Cut(string(line), " ")
		e := event{typ: typ}
		b = rest
		if sized {
			n, err := strconv.ParseUint(size, 16, 31)
			if err != nil || uint64(len(b)) < n+2 || string(b[n:n+2]) != "\r\n" {
				return nil, fmt.Errorf("bad events: %s with a bad length %q", typ, size)
			}
			e.content, b = b[:n], b[n+2:]
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// writeEvent appends one event; content nil writes the type alone.
func writeEvent(w *bytes.Buffer, typ string, content []byte) {
	if content == nil {
		fmt.Fprintf(w, "%s\r\n", typ)
		return
	}
	fmt.Fprintf(w, "%s %x\r\n%s\r\n", typ, len(content), content)
}
