package main

import (
	"fmt"
	"time"
)

// runHold opens N idle SSE clients over HoldChannels channels at ConnectRate
// connections/s, lets them sit, and measures what each costs the proxy:
// RSS and PSS per connection (user space, summed over the proxy's
// processes), kernel slab per connection (system-wide, both ends of the
// loopback connection), and CPU per 1k idle connections per minute. On a
// GRIP proxy a probe published to every channel must then reach every
// client. The plain reverse_proxy baseline has the origin hold the streams
// itself (2 sockets per client in the proxy).
func runHold(e *runEnv) *Result {
	p := e.p
	r := newResult(e, "hold")
	n := p.HoldConns
	grip := e.target.PublishAddr() != ""
	r.Params["conns"] = n
	r.Params["channels"] = p.HoldChannels
	r.Params["connect_rate"] = p.ConnectRate
	r.Params["src_ips"] = len(e.src)
	r.Params["idle_s"] = p.HoldIdle.Seconds()
	prefix := "/sse/"
	if grip {
		prefix = "/stream/"
	}
	pids := e.target.PIDs()
	before := sampleSUT(pids)
	k0 := sampleKernel()

	g := newSSEGroup(e.target.ClientAddr(), 0)
	defer g.close()
	start := time.Now()
	interval := time.Duration(float64(time.Second) / float64(p.ConnectRate))
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		g.open(fmt.Sprintf("%sh%s-%d", prefix, e.nonce, i%p.HoldChannels), e.src[i%len(e.src)])
	}
	allUp := waitFor(60*time.Second, func() bool { return int(g.connected.Load()+g.failed.Load()) >= n })
	connectTime := time.Since(start)
	up := g.connected.Load()
	r.Metrics["conns_up"] = float64(up)
	r.Metrics["conns_failed"] = float64(g.failed.Load())
	r.Metrics["connect_rate"] = float64(up) / connectTime.Seconds()
	if !allUp || int(up) < n {
		r.errorf("%d of %d clients connected (%d failed)", up, n, g.failed.Load())
	}

	time.Sleep(p.HoldSettle)
	w := startWindow(pids)
	time.Sleep(p.HoldIdle)
	w.finish(r, 0, "")
	after := sampleSUT(pids)
	k1 := sampleKernel()
	if up > 0 {
		per := func(a, b int64) float64 { return float64(b-a) / float64(up) }
		r.Metrics["rss_kb_per_conn"] = per(before.Mem.RSS, after.Mem.RSS)
		r.Metrics["pss_kb_per_conn"] = per(before.Mem.PSS, after.Mem.PSS)
		r.Metrics["kernel_slab_kb_per_conn"] = per(k0.SlabKB, k1.SlabKB)
		r.Metrics["kernel_sock_slab_kb_per_conn"] = per(k0.SockSlabKB, k1.SockSlabKB)
		r.Metrics["kernel_tcp_mem_kb_per_conn"] = per(k0.TCPMemKB, k1.TCPMemKB)
		minutes := r.Metrics["wall_s"] / 60
		if minutes > 0 {
			r.Metrics["idle_cpu_ms_per_1k_conn_min"] = r.Metrics["sut_cpu_s"] * 1000 / (float64(up) / 1000) / minutes
		}
	}
	r.Metrics["rss_kb_before"] = float64(before.Mem.RSS)
	r.Metrics["rss_kb_after"] = float64(after.Mem.RSS)
	r.Metrics["pss_kb_after"] = float64(after.Mem.PSS)

	if grip && up > 0 {
		probeHold(e, r, g)
	}
	// Clients are still connected: a cut stream would have counted as failed.
	if f := g.failed.Load(); f > 0 {
		r.errorf("%d clients failed or were cut off", f)
	}
	g.close()
	if t := g.tally(); t.firstErr != nil && len(r.Errors) > 0 {
		r.errorf("first client error: %v", t.firstErr)
	}
	// The figures are memory of idle connections: no CPU bound applies.
	r.classify(true)
	r.Bound = "idle"
	return r
}

// probeHold publishes a probe (seq 0) to every hold channel until every
// connected client has seen one: each held connection really is subscribed.
func probeHold(e *runEnv, r *Result, g *sseGroup) {
	pub := newPublisher(e.target.PublishAddr())
	defer pub.close()
	want := g.connected.Load()
	var body []byte
	ok := waitFor(30*time.Second, func() bool {
		for c := 0; c < e.p.HoldChannels; c++ {
			body = streamItem(body[:0], fmt.Sprintf("h%s-%d", e.nonce, c), "", "", appendPayload(nil, "data: ", nowNS(), 0, "\n\n"))
			if err := pub.post(body); err != nil {
				r.errorf("probe: %v", err)
				return true
			}
		}
		return waitFor(500*time.Millisecond, func() bool { return g.probed.Load() >= want })
	})
	r.Metrics["probe_reached"] = float64(g.probed.Load())
	if !ok || g.probed.Load() < want {
		r.errorf("probe reached %d of %d held clients", g.probed.Load(), want)
	}
}
