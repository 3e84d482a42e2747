// Command livecounter is the origin of the Live Counter example: caddy-grip
// in front of Varnish in front of this process (see the Caddyfile,
// counter.vcl and run.sh beside it). It uses the Go standard library only.
//
//	GET  /counters/<id>/  the value: Server-Sent Events (Accept:
//	                      text/event-stream) held by Caddy as a stream on
//	                      channel counter-<id>, or text/plain otherwise;
//	                      both cacheable (Cache-Control: s-maxage, Vary: Accept)
//	POST /counters/<id>/  adds one and answers the new value
//	GET  /                the page: the counter and a button
//	GET  /healthz         Varnish's health probe
//
// The SSE answer is the last published value with Grip-Channel:
// counter-<id>; prev-id=<its version>, so that a client whose answer came
// from the cache after a newer value was published is caught up: by the
// hub's history when the hub keeps one (the prev-id is an id it has seen),
// or else through the next link, which Caddy fetches with Grip-Last and
// Varnish passes to this origin.
//
// After a change, the publisher purges the counter's URL in Varnish and then
// publishes the new value (id=<version>, prev-id=<the version published
// before>) to grip_publish, at most once a second per counter: changes in
// between are coalesced and the value current at send time wins.
package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed index.html
var page []byte

// maxCounters bounds the counters created on demand.
const maxCounters = 1000

// validID is what a counter id may be.
var validID = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

func main() {
	listen := flag.String("listen", "127.0.0.1:8503", "address to serve the origin on")
	publishURL := flag.String("publish", "http://127.0.0.1:8501/publish/", "caddy-grip's grip_publish endpoint")
	purgeURL := flag.String("purge", "http://127.0.0.1:8502", "Varnish, to purge a counter's URL before each publish; empty: no purge (no cache in front)")
	maxAge := flag.Int("max-age", 600, "seconds a cache may keep a counter's answer (s-maxage)")
	window := flag.Duration("window", time.Second, "at most one purge and publish per counter per window")
	flag.Parse()

	o := &origin{
		publishURL: *publishURL,
		purgeURL:   strings.TrimSuffix(*purgeURL, "/"),
		maxAge:     *maxAge,
		window:     *window,
		client:     &http.Client{Timeout: 10 * time.Second},
		counters:   map[string]*counter{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counters/{id}/", o.get)
	mux.HandleFunc("POST /counters/{id}/", o.increment)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "s-maxage=60")
		w.Write(page)
	})
	log.Printf("livecounter listening on %s, purging %q, publishing to %s", *listen, *purgeURL, *publishURL)
	log.Fatal(http.ListenAndServe(*listen, mux))
}

type origin struct {
	publishURL string
	purgeURL   string
	maxAge     int
	window     time.Duration
	client     *http.Client

	mu       sync.Mutex
	counters map[string]*counter
}

// counter is one counter's value and its publish state; origin.mu guards it.
type counter struct {
	value     int64 // also its version: it only goes up, by one
	published int64 // the version last published (the next publish's prev-id)
	sending   bool  // a publish window is open: changes wait for its end
	dirty     bool  // changed since the window's publish
}

// lookup returns the counter, creating it; nil when there are too many.
// The caller holds o.mu.
func (o *origin) lookup(id string) *counter {
	c := o.counters[id]
	if c == nil && len(o.counters) < maxCounters {
		c = &counter{}
		o.counters[id] = c
	}
	return c
}

// counterID reads and checks the path's id, answering 404 when it is bad.
func counterID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !validID.MatchString(id) {
		log.Printf("%s %s: not a counter id", r.Method, r.URL.Path)
		http.Error(w, "a counter id is 1 to 32 of a-z, 0-9 and -", http.StatusNotFound)
		return "", false
	}
	return id, true
}

// get answers the value, as SSE held by Caddy or as text.
func (o *origin) get(w http.ResponseWriter, r *http.Request) {
	id, ok := counterID(w, r)
	if !ok {
		return
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	o.mu.Lock()
	c := o.lookup(id)
	var value int64
	if c != nil {
		// A stream starts from the last published value, whose version the
		// hub knows (its history can catch up from it); the text is the
		// current value, which may be up to a window ahead.
		value = c.published
		if !sse {
			value = c.value
		}
	}
	o.mu.Unlock()
	if c == nil {
		log.Printf("%s %s: already %d counters", r.Method, r.URL.Path, maxCounters)
		http.Error(w, "too many counters", http.StatusServiceUnavailable)
		return
	}
	last := r.Header.Get("Grip-Last")
	log.Printf("GET /counters/%s/ sse=%t grip-last=%q value=%d", id, sse, last, value)

	h := w.Header()
	h.Set("Vary", "Accept")
	if last != "" {
		// A next-link fetch: its answer depends on Grip-Last, so no cache
		// may keep it (Varnish passes these requests anyway).
		h.Set("Cache-Control", "no-store")
	} else {
		h.Set("Cache-Control", fmt.Sprintf("s-maxage=%d", o.maxAge))
	}
	if !sse {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%d\n", value)
		return
	}
	h.Set("Content-Type", "text/event-stream")
	h.Set("Grip-Hold", "stream")
	h.Set("Grip-Channel", fmt.Sprintf("counter-%s; prev-id=%d", id, value))
	// The next link is the recovery path without hub history: fetched
	// (with Grip-Last) when the channel's last published id is ahead of
	// this answer's prev-id; hourly otherwise, as a safety net.
	h.Set("Grip-Link", fmt.Sprintf("</counters/%s/>; rel=next; timeout=3600", id))
	h.Set("Grip-Keep-Alive", `:\n\n; format=cstring; timeout=20`)
	if lastID, ok := gripLastID(last, "counter-"+id); ok && lastID == strconv.FormatInt(value, 10) {
		return // the client is current: nothing to add to its stream
	}
	fmt.Fprint(w, sseEvent(value))
}

// gripLastID reads the last-id of channel from a Grip-Last header value
// ("counter-1; last-id=5", several comma-separated).
func gripLastID(header, channel string) (string, bool) {
	for _, entry := range strings.Split(header, ",") {
		parts := strings.Split(entry, ";")
		if strings.TrimSpace(parts[0]) != channel {
			continue
		}
		for _, p := range parts[1:] {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && k == "last-id" {
				return v, true
			}
		}
	}
	return "", false
}

// sseEvent is the event that carries a value, initially and in publishes.
func sseEvent(value int64) string { return fmt.Sprintf("data: %d\n\n", value) }

// increment adds one and schedules the purge and publish.
func (o *origin) increment(w http.ResponseWriter, r *http.Request) {
	id, ok := counterID(w, r)
	if !ok {
		return
	}
	o.mu.Lock()
	c := o.lookup(id)
	if c == nil {
		o.mu.Unlock()
		log.Printf("%s %s: already %d counters", r.Method, r.URL.Path, maxCounters)
		http.Error(w, "too many counters", http.StatusServiceUnavailable)
		return
	}
	c.value++
	value := c.value
	if c.sending {
		c.dirty = true
	} else {
		c.sending = true
		go o.sendLoop(id, c)
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "%d\n", value)
}

// sendLoop purges and publishes the counter's current value, then waits a
// window; if the counter changed meanwhile it sends again, else it ends.
func (o *origin) sendLoop(id string, c *counter) {
	for {
		o.mu.Lock()
		value, prev := c.value, c.published
		c.dirty = false
		o.mu.Unlock()

		if err := o.purgeAndPublish(id, value, prev); err != nil {
			log.Printf("counter %s: %v", id, err)
		} else {
			o.mu.Lock()
			c.published = value
			o.mu.Unlock()
		}
		time.Sleep(o.window) // the rate limit: one send per window
		o.mu.Lock()
		if !c.dirty {
			c.sending = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
	}
}

// purgeAndPublish removes the counter's cached answers (every Vary variant)
// and then publishes its value: a client that connects after the publish
// gets the new value from the origin, and one whose cached answer raced the
// purge is caught up by its prev-id.
func (o *origin) purgeAndPublish(id string, value, prev int64) error {
	path := "/counters/" + id + "/"
	if o.purgeURL != "" {
		req, err := http.NewRequest("PURGE", o.purgeURL+path, nil)
		if err != nil {
			return fmt.Errorf("purging %s: %w", path, err)
		}
		resp, err := o.client.Do(req)
		if err != nil {
			return fmt.Errorf("purging %s: %w", path, err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("purging %s: %s", path, resp.Status)
		}
	}
	item := map[string]any{
		"channel": "counter-" + id,
		"id":      strconv.FormatInt(value, 10),
		"prev-id": strconv.FormatInt(prev, 10),
		"formats": map[string]any{"http-stream": map[string]string{"content": sseEvent(value)}},
	}
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
	log.Printf("sent counter %s: purged %t, published value %d (prev-id %d)", id, o.purgeURL != "", value, prev)
	return nil
}
