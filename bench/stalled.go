package main

import (
	"fmt"
	"time"
)

// fanoutStalled measures what readers that stop reading cost the others.
const fanoutStalled = "fanout-stalled"

// stalledShares are the shares of stalled readers, in percent of the
// healthy subscribers (rounded up), that fanout-stalled compares.
var stalledShares = []int{0, 1, 10}

// stalledRows are fanout-stalled's rows in the markdown report.
func stalledRows() []row {
	var rows []row
	for _, mode := range []string{"max", "rate"} {
		for _, share := range stalledShares {
			prefix := fmt.Sprintf("%s_%dpct_", mode, share)
			what := fmt.Sprintf("%s, %d%% stalled: ", mode, share)
			rows = append(rows,
				row{fanoutStalled, prefix + "lost", what + "healthy lost", nil},
				row{fanoutStalled, prefix + "lat_p99_us", what + "healthy latency p99 µs", nil},
				row{fanoutStalled, prefix + "deliveries_per_s", what + "deliveries/s", nil})
		}
	}
	return rows
}

// runStalled holds -stalled-subs healthy SSE subscribers on a channel,
// plus stalled ones (0%, 1% and 10% of them) that read their response head
// and then never read again, and publishes -stalled-msgs messages of
// -stalled-bytes each: once as fast as the publish API accepts them, once
// at -stalled-rate. A stalled reader fills its socket buffers and its
// queue and is cut off as slow; what counts is what the healthy
// subscribers got: lost, duplicated or reordered messages (every one is
// an error) and their latency, for each share, in one run. Metric names
// start with the mode and the share: max_1pct_lat_p99_us.
func runStalled(e *runEnv) *Result {
	p := e.p
	r := newResult(e, fanoutStalled)
	n := p.StalledSubs
	r.Params["subscribers"] = n
	r.Params["messages"] = p.StalledMsgs
	r.Params["payload_bytes"] = p.StalledBytes
	r.Params["rate_per_s"] = p.StalledRate
	r.Params["stalled_percent"] = stalledShares
	for _, mode := range []struct {
		name string
		rate float64
	}{{"max", 0}, {"rate", p.StalledRate}} {
		for _, share := range stalledShares {
			prefix := fmt.Sprintf("%s_%dpct_", mode.name, share)
			stalledPhase(e, r, prefix, n, (n*share+99)/100, mode.rate)
		}
	}
	r.classify(false)
	return r
}

// stalledPhase runs one mode and share of fanout-stalled on a channel of
// its own.
func stalledPhase(e *runEnv, r *Result, prefix string, n, stalled int, rate float64) {
	p := e.p
	ch := "s" + e.nonce + prefix
	path := "/stream/" + ch
	var stuck []*httpConn
	defer func() {
		for _, c := range stuck {
			c.Close()
		}
	}()
	for i := range stalled {
		c, err := dialHTTP(e.target.ClientAddr(), e.src[i%len(e.src)], 10*time.Second)
		if err == nil {
			if err = c.writeGET(path, "Accept: text/event-stream\r\n"); err == nil {
				_, err = c.readHead()
			}
		}
		if err != nil {
			r.errorf("%sstalled reader %d: %v", prefix, i, err)
			return
		}
		stuck = append(stuck, c)
	}
	g := newSSEGroup(e.target.ClientAddr(), p.StalledMsgs)
	defer g.close()
	ramp(g, n, float64(p.ConnectRate), p.ConnectInflight, func(int) string { return path }, e.src)
	if !waitFor(60*time.Second, func() bool { return int(g.connected.Load()+g.failed.Load()) >= n }) || int(g.connected.Load()) < n {
		r.errorf("%s%d of %d subscribers connected", prefix, g.connected.Load(), n)
		return
	}
	pub := newPublisher(e.target.PublishAddr())
	defer pub.close()
	if !probeAll(r, g, pub, ch, n) {
		return
	}
	r.Metrics[prefix+"stalled"] = float64(stalled)
	publishPhase(r, g, pub, fanoutPhase{ch: ch, idPrefix: "m" + e.nonce + prefix, subs: n, msgs: p.StalledMsgs, batch: 1, rate: rate, size: p.StalledBytes}, prefix, nil)
}
