package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsGroup is a set of held, idle WebSocket clients. Each reads its
// messages (gorilla answers the proxy's pings while it does); a message
// "<pub_ns> <seq> ..." with seq 0 is a probe that proves a subscription.
type wsGroup struct {
	addr string
	groupCounts

	mu     sync.Mutex
	conns  []*websocket.Conn
	closed bool
	err    error // the first client failure
	wg     sync.WaitGroup
}

func newWSGroup(addr string) *wsGroup { return &wsGroup{addr: addr} }

// open connects one client from src and reads it in a goroutine.
func (g *wsGroup) open(path string, src net.IP) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		settled := false
		settle := func() {
			if !settled {
				settled = true
				g.settled()
			}
		}
		defer settle()
		if err := g.run(path, src, settle); err != nil {
			g.failed.Add(1)
			g.mu.Lock()
			if g.err == nil {
				g.err = err
			}
			g.mu.Unlock()
		}
	}()
}

func (g *wsGroup) run(path string, src net.IP, settle func()) error {
	nd := net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 30 * time.Second,
		// Small buffers: the bench holds thousands of these idle.
		ReadBufferSize:  512,
		WriteBufferSize: 256,
	}
	var c *websocket.Conn
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var res *httpResponse
		c, res, err = dialWS(&d, "ws://"+g.addr+path)
		if err == nil {
			break
		}
		if res != nil { // the proxy answered: no point retrying
			return fmt.Errorf("GET %s: status %d: %w", path, res.status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	settle()
	g.mu.Lock()
	g.conns = append(g.conns, c)
	closed := g.closed
	g.mu.Unlock()
	if closed {
		c.Close()
		return nil
	}
	g.connected.Add(1)
	probed := false
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			if closingFlag.Load() {
				return nil
			}
			return fmt.Errorf("websocket ended: %w", err)
		}
		if _, seq, ok := parsePayload(msg); ok && seq == 0 && !probed {
			probed = true
			g.probed.Add(1)
		}
	}
}

// httpResponse is what a refused handshake says.
type httpResponse struct{ status int }

func dialWS(d *websocket.Dialer, url string) (*websocket.Conn, *httpResponse, error) {
	c, res, err := d.DialContext(context.Background(), url, nil)
	if err != nil && res != nil {
		res.Body.Close()
		return nil, &httpResponse{status: res.StatusCode}, err
	}
	return c, nil, err
}

// close drops every client (no close handshake: a client that vanishes,
// as most do) and waits for the readers.
func (g *wsGroup) close() {
	closingFlag.Store(true)
	defer closingFlag.Store(false)
	g.mu.Lock()
	g.closed = true
	for _, c := range g.conns {
		c.NetConn().Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// firstError implements holdGroup.
func (g *wsGroup) firstError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
