package main

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// sourceIPs returns k loopback source addresses, 127.0.0.2 on, so that
// connections spread over several (src IP, dst) port ranges.
func sourceIPs(k int) []net.IP {
	if k < 1 {
		k = 1
	}
	out := make([]net.IP, k)
	for i := range out {
		out[i] = net.IPv4(127, 0, byte((i+2)/256), byte((i+2)%256))
	}
	return out
}

// sseGroup is a set of held SSE clients and what they received. Messages
// carry "<pub_ns> <seq>"; seq 0 is a probe (proves a subscription), seq
// 1..expect are measured.
type sseGroup struct {
	addr   string
	expect int // measured messages per subscriber

	groupCounts
	delivered atomic.Int64 // measured messages received, duplicates included
	lastRecv  atomic.Int64 // nowNS of the latest measured receipt
	hist      histogram

	mu     sync.Mutex
	subs   []*sseSub
	reader *epollReader // reads every stream once its head is in
	closed bool
	wg     sync.WaitGroup
}

// groupCounts are what every group of held clients counts.
type groupCounts struct {
	connected atomic.Int64  // clients that got the initial body (SSE) or the 101 (WebSocket)
	probed    atomic.Int64  // clients that got at least one probe
	failed    atomic.Int64  // clients that could not connect or were cut off
	slots     chan struct{} // handshakes in flight, when limited
}

func (c *groupCounts) counts() *groupCounts { return c }

// settled frees the handshake slot of a client that connected or failed.
func (c *groupCounts) settled() {
	if c.slots != nil {
		<-c.slots
	}
}

// ramp opens n clients at up to rate per second with at most inflight
// handshakes unanswered (0: no limit), so that a proxy whose accept path
// is slower than rate is driven at its own pace instead of being flooded
// into refusals; the achieved rate is what the scenario reports. path and
// the source address depend on the client's index.
func ramp(g holdGroup, n int, rate float64, inflight int, path func(i int) string, src []net.IP) {
	c := g.counts()
	if inflight > 0 {
		c.slots = make(chan struct{}, inflight)
	}
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		if c.slots != nil {
			c.slots <- struct{}{}
		}
		g.open(path(i), src[i%len(src)])
		next = next.Add(interval)
		if now := time.Now(); next.Before(now.Add(-interval)) {
			next = now // slowed by the slots: do not burst to catch up
		}
	}
}

// holdGroup is a group of held clients of either transport.
type holdGroup interface {
	open(path string, src net.IP)
	close()
	counts() *groupCounts
	firstError() error // the first client's failure; call after close
}

// firstError implements holdGroup.
func (g *sseGroup) firstError() error { return g.tally().firstErr }

// sseSub is one client; its counters are touched only by the group's
// reader goroutine until the group is closed.
type sseSub struct {
	conn                    *httpConn // until the head is read
	fd                      int       // then the stream, read by the group's epollReader (-1: none)
	parse                   streamParse
	seen                    []uint64 // bitmap of measured seqs
	distinct, dups, reorder int
	maxSeq                  uint64
	probed, connected       bool
	err                     error
}

func newSSEGroup(addr string, expect int) *sseGroup {
	return &sseGroup{addr: addr, expect: expect}
}

// open connects one client from src and reads its stream in a goroutine.
func (g *sseGroup) open(path string, src net.IP) {
	s := &sseSub{fd: -1, seen: make([]uint64, (g.expect+64)/64)}
	g.mu.Lock()
	g.subs = append(g.subs, s)
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer g.settled() // run returns once the stream is handed to the reader
		if err := g.run(s, path, src); err != nil {
			s.err = err
			g.failed.Add(1)
		}
	}()
}

func (g *sseGroup) run(s *sseSub, path string, src net.IP) error {
	var err error
	var c *httpConn
	for attempt := 0; attempt < 3; attempt++ {
		if c, err = dialHTTP(g.addr, src, 10*time.Second); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	g.mu.Lock()
	s.conn = c
	closed := g.closed
	g.mu.Unlock()
	if closed {
		c.Close()
		return nil
	}
	_ = s.conn.c.SetDeadline(time.Now().Add(30 * time.Second)) // for the head only
	if err := s.conn.writeGET(path, "Accept: text/event-stream\r\n"); err != nil {
		return err
	}
	rh, err := s.conn.readHead()
	if err != nil {
		return err
	}
	_ = s.conn.c.SetDeadline(time.Time{})
	if rh.Status != 200 {
		var snippet []byte
		if rh.ContentLength >= 0 && rh.ContentLength < 4096 {
			snippet, _ = s.conn.readBody(rh, nil)
		}
		return fmt.Errorf("GET %s: status %d %q", path, rh.Status, snippet)
	}
	// The rest of the stream goes to the group's reader: first what the
	// head's reader buffered, then the socket itself.
	s.parse.chunked = rh.Chunked
	if n := s.conn.br.Buffered(); n > 0 {
		b, _ := s.conn.br.Peek(n)
		if err := s.feed(g, b); err != nil {
			return err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		s.conn.Close()
		return nil
	}
	if g.reader == nil {
		if g.reader, err = newEpollReader(g); err != nil {
			return err
		}
	}
	return g.reader.add(s)
}

var closingFlag atomic.Bool // set while groups are being torn down

func (s *sseSub) closing() bool { return closingFlag.Load() }

// line handles one line of the event stream.
func (g *sseGroup) line(s *sseSub, line []byte) {
	if bytes.HasPrefix(line, []byte("data: ")) {
		now := nowNS()
		pub, seq, ok := parsePayload(line[len("data: "):])
		if !ok {
			return
		}
		if seq == 0 {
			if !s.probed {
				s.probed = true
				g.probed.Add(1)
			}
			return
		}
		g.hist.Record(time.Duration(now - pub))
		if int(seq) <= g.expect {
			w, bit := seq/64, uint64(1)<<(seq%64)
			if s.seen[w]&bit != 0 {
				s.dups++
			} else {
				s.seen[w] |= bit
				s.distinct++
			}
		}
		if seq < s.maxSeq {
			s.reorder++
		} else {
			s.maxSeq = seq
		}
		g.lastRecv.Store(now)
		g.delivered.Add(1)
		return
	}
	if !s.connected && bytes.HasPrefix(line, []byte(": ok")) {
		s.connected = true
		g.connected.Add(1)
	}
}

// close drops every client and waits for the readers.
func (g *sseGroup) close() {
	closingFlag.Store(true)
	defer closingFlag.Store(false)
	g.mu.Lock()
	g.closed = true
	for _, s := range g.subs {
		if s.conn != nil && s.fd < 0 {
			s.conn.Close() // still reading its head
		}
	}
	g.mu.Unlock()
	g.wg.Wait()
	if g.reader != nil {
		g.reader.stop()
	}
}

// sseTally sums the per-client counts; call after close.
type sseTally struct {
	distinct, dups, reorder, lost int
	clients                       int
	firstErr                      error
}

func (g *sseGroup) tally() sseTally {
	var t sseTally
	for _, s := range g.subs {
		t.clients++
		t.distinct += s.distinct
		t.dups += s.dups
		t.reorder += s.reorder
		t.lost += g.expect - s.distinct
		if t.firstErr == nil && s.err != nil {
			t.firstErr = s.err
		}
	}
	return t
}

// waitFor polls cond every 5 ms until it holds or the timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
