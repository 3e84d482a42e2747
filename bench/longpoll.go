package main

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// runLongpoll runs PollClients long-poll clients, one channel each, on
// keep-alive connections. A cycle: the client asks for what follows its
// last message; the origin holds it (Grip-Hold: response, prev-id=<last>)
// and tells the publisher, which stores the next message at the origin and
// publishes it (id=<n+1>, prev-id=<n>); the proxy answers the held request
// with it; the client asks again at once. Cycles/s is messages received
// per second. A publish that reaches the proxy before it has subscribed the
// client must not be lost: Pushpin notices prev-id differs from the
// channel's last id and re-asks the origin, which has the message
// (counted as "recovered"). A proxy that loses it leaves the client waiting
// for the hold timeout ("gap_losses"; the origin then answers from its
// store, so no message is lost for good).
func runLongpoll(e *runEnv) *Result {
	p := e.p
	r := newResult(e, "longpoll")
	r.Params["clients"] = p.PollClients
	r.Params["duration_s"] = p.PollDuration.Seconds()
	r.Params["hold_timeout_s"] = e.origin.lpTimeout
	r.Params["publishers"] = p.PollPublishers
	if p.PollDelay > 0 {
		r.Params["publish_delay_ms"] = p.PollDelay.Seconds() * 1000
	}

	type want struct {
		ch   string
		last uint64
	}
	notify := make(chan want, 4*p.PollClients+16)
	done := make(chan struct{})
	e.origin.setOnHold(func(ch string, last uint64) {
		select {
		case notify <- want{ch, last}:
		case <-done:
		}
	})
	defer e.origin.setOnHold(nil)

	var (
		stop, stopPub                              atomic.Bool
		received, dups, skipped, timeouts, gapLoss atomic.Int64
		direct, errs, published, pubErrs, inflight atomic.Int64
		hist                                       histogram
		firstErr                                   atomic.Value
		pwg, cwg                                   sync.WaitGroup
	)
	fail := func(cnt *atomic.Int64, err error) {
		cnt.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	for i := 0; i < p.PollPublishers; i++ {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			pub := newPublisher(e.target.PublishAddr())
			defer pub.close()
			var body, payload []byte
			for {
				var w want
				select {
				case w = <-notify:
				case <-done:
					return
				}
				inflight.Add(1)
				if !stopPub.Load() {
					if p.PollDelay > 0 {
						time.Sleep(p.PollDelay)
					}
					seq := w.last + 1
					pubNS := nowNS()
					if e.origin.lp.add(w.ch, seq, pubNS) { // else published already; this hold gets it
						payload = appendPayload(payload[:0], "", pubNS, seq, "\n")
						body = responseItem(body[:0], w.ch, strconv.FormatUint(seq, 10), strconv.FormatUint(w.last, 10), payload)
						if err := pub.post(body); err != nil {
							fail(&pubErrs, err)
						} else {
							published.Add(1)
						}
					}
				}
				inflight.Add(-1)
			}
		}()
	}

	pollers := make([]*poller, p.PollClients)
	originBefore := e.origin.requests.Load()
	w := startWindow(e.target.PIDs())
	for i := range pollers {
		pl := &poller{ch: "lp" + e.nonce + "-" + strconv.Itoa(i)}
		pollers[i] = pl
		cwg.Add(1)
		go func(src int) {
			defer cwg.Done()
			c, err := dialHTTP(e.target.ClientAddr(), e.src[src%len(e.src)], 5*time.Second)
			if err != nil {
				fail(&errs, err)
				return
			}
			if !pl.setConn(c) {
				return
			}
			var body, target []byte
			// After the stop, a client carries on only until it has every
			// message published for it.
			for !stop.Load() || pl.last.Load() < e.origin.lp.latest(pl.ch) {
				last := pl.last.Load()
				target = append(append(append(target[:0], "/poll/"...), pl.ch...), "?last="...)
				target = strconv.AppendUint(target, last, 10)
				var rh respHead
				rh, body, err = c.getBody(string(target), body)
				if err == nil && rh.Status != 200 {
					err = fmt.Errorf("status %d: %q", rh.Status, body)
				}
				if err != nil {
					if pl.isClosed() {
						return
					}
					fail(&errs, err)
					if pl.redial() != nil {
						return
					}
					continue
				}
				now := nowNS()
				if bytes.Equal(body, []byte(lpTimeoutMsg)) {
					timeouts.Add(1)
					if e.origin.lp.latest(pl.ch) > last {
						gapLoss.Add(1) // published while held, never delivered
					}
					continue
				}
				if rh.Direct {
					direct.Add(1)
				}
				for len(body) > 0 {
					line := body
					if j := bytes.IndexByte(body, '\n'); j >= 0 {
						line, body = body[:j], body[j+1:]
					} else {
						body = nil
					}
					pub, seq, ok := parsePayload(line)
					switch {
					case !ok:
						fail(&errs, errBadResponse)
					case seq <= last:
						dups.Add(1)
					default:
						if seq > last+1 {
							skipped.Add(int64(seq - last - 1))
						}
						last = seq
						pl.last.Store(seq)
						received.Add(1)
						hist.Record(time.Duration(now - pub))
					}
				}
			}
		}(i)
	}
	time.Sleep(p.PollDuration)
	stop.Store(true)
	n := received.Load()
	w.finish(r, float64(n), "cycle")
	originReqs := e.origin.requests.Load() - originBefore

	// Drain: publish nothing more, then let every client that a message
	// was published for receive it (or time out and fetch it); drop the
	// others, which wait in holds nothing will answer.
	stopPub.Store(true)
	waitFor(10*time.Second, func() bool { return inflight.Load() == 0 })
	for _, pl := range pollers {
		if pl.last.Load() >= e.origin.lp.latest(pl.ch) {
			pl.close()
		}
	}
	drainDeadline := time.Duration(e.origin.lpTimeout+3) * time.Second
	drained := make(chan struct{})
	go func() { cwg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainDeadline):
		for _, pl := range pollers {
			pl.close()
		}
		<-drained
	}
	close(done)
	pwg.Wait()

	undelivered := 0
	for _, pl := range pollers {
		if l := e.origin.lp.latest(pl.ch); l > pl.last.Load() {
			undelivered += int(l - pl.last.Load())
		}
	}
	r.Metrics["received_total"] = float64(received.Load())
	r.Metrics["undelivered"] = float64(undelivered)
	r.Metrics["cycles"] = float64(n)
	r.Metrics["cycles_per_s"] = float64(n) / r.Metrics["wall_s"]
	r.Metrics["published"] = float64(published.Load())
	r.Metrics["duplicated"] = float64(dups.Load())
	r.Metrics["skipped"] = float64(skipped.Load())
	r.Metrics["timeouts"] = float64(timeouts.Load())
	r.Metrics["gap_losses"] = float64(gapLoss.Load())
	r.Metrics["recovered_by_origin"] = float64(direct.Load())
	r.Metrics["errors"] = float64(errs.Load() + pubErrs.Load())
	if n > 0 {
		r.Metrics["origin_requests_per_cycle"] = float64(originReqs) / float64(n)
	}
	hist.latencyMetrics(r.Metrics, "lat_")
	if g := r.Metrics["gap_losses"]; g > 0 {
		r.errorf("%.0f publishes not delivered by the proxy: the client's hold timed out (%ds) after the message was published", g, e.origin.lpTimeout)
	}
	if undelivered > 0 {
		r.errorf("%d published messages never reached their client, even from the origin", undelivered)
	}
	if dups.Load() > 0 || skipped.Load() > 0 {
		r.errorf("duplicated %d, skipped %d messages", dups.Load(), skipped.Load())
	}
	if c := errs.Load() + pubErrs.Load(); c > 0 {
		r.errorf("%d errors; first: %v", c, firstErr.Load())
	}
	r.classify(false)
	if r.Metrics["gap_losses"] > 0 && r.Bound != "generator" {
		r.Bound = "timeouts"
	}
	return r
}

// poller is one long-poll client.
type poller struct {
	ch   string
	last atomic.Uint64 // the last message received

	mu     sync.Mutex
	conn   *httpConn
	closed bool
}

// setConn installs the first connection; false if the poller was closed.
func (pl *poller) setConn(c *httpConn) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		c.Close()
		return false
	}
	pl.conn = c
	return true
}

func (pl *poller) redial() error {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		return net.ErrClosed
	}
	return pl.conn.redial(5 * time.Second)
}

func (pl *poller) close() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.closed = true
	if pl.conn != nil {
		pl.conn.Close()
	}
}

func (pl *poller) isClosed() bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.closed
}
