package main

import (
	"fmt"
	"time"
)

// holdWS is the hold scenario over WebSocket.
const holdWS = "hold-ws"

// transport is how held clients talk to the proxy.
type transport int

const (
	transportSSE transport = iota // GET of an event stream
	transportWS                   // a WebSocket
)

// runHold opens N idle clients over HoldChannels channels at ConnectRate
// connections/s, lets them sit, and measures what each costs the proxy:
// RSS and PSS per connection (user space, summed over the proxy's
// processes), kernel slab per connection (system-wide, both ends of the
// loopback connection), and CPU per 1k idle connections per minute. On a
// GRIP proxy a probe published to every channel must then reach every
// client.
//
// SSE: the GRIP origin answers Grip-Hold: stream; the plain reverse_proxy
// baseline has the origin hold the streams itself (2 sockets per client in
// the proxy). WebSocket: a GRIP proxy terminates the WebSocket and speaks
// WebSocket-over-HTTP to the origin, which answers OPEN with a subscribe
// control message; plain Caddy relays the WebSocket to the origin, which
// holds it (again 2 sockets per client in the proxy).
func runHold(e *runEnv, tr transport) *Result {
	p := e.p
	name, format := "hold", "http-stream"
	if tr == transportWS {
		name, format = holdWS, "ws-message"
	}
	r := newResult(e, name)
	n := p.HoldConns
	grip := e.target.PublishAddr() != ""
	r.Params["conns"] = n
	r.Params["channels"] = p.HoldChannels
	r.Params["connect_rate"] = p.ConnectRate
	r.Params["connect_inflight"] = p.ConnectInflight
	r.Params["src_ips"] = len(e.src)
	r.Params["idle_s"] = p.HoldIdle.Seconds()
	var prefix string
	var g holdGroup
	switch {
	case tr == transportWS && grip:
		prefix, g = "/ws/", newWSGroup(e.target.ClientAddr())
	case tr == transportWS:
		prefix, g = "/wsraw/", newWSGroup(e.target.ClientAddr())
	case grip:
		prefix, g = "/stream/", newSSEGroup(e.target.ClientAddr(), 0)
	default:
		prefix, g = "/sse/", newSSEGroup(e.target.ClientAddr(), 0)
	}
	r.Params["path"] = prefix
	defer g.close()
	gc := g.counts()
	pids := e.target.PIDs()
	before := sampleSUT(pids)
	k0 := sampleKernel()

	start := time.Now()
	ramp(g, n, float64(p.ConnectRate), p.ConnectInflight, func(i int) string {
		return fmt.Sprintf("%sh%s-%d", prefix, e.nonce, i%p.HoldChannels)
	}, e.src)
	allUp := waitFor(60*time.Second, func() bool { return int(gc.connected.Load()+gc.failed.Load()) >= n })
	connectTime := time.Since(start)
	up := gc.connected.Load()
	r.Metrics["conns_up"] = float64(up)
	r.Metrics["conns_failed"] = float64(gc.failed.Load())
	r.Metrics["connect_rate"] = float64(up) / connectTime.Seconds()
	if !allUp || int(up) < n {
		r.errorf("%d of %d clients connected (%d failed)", up, n, gc.failed.Load())
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

	finishHold(e, r, g, grip && up > 0, format)
	return r
}

// finishHold probes every held client when probe is set, counts the
// clients that failed or were cut off, closes them, and classifies r.
func finishHold(e *runEnv, r *Result, g holdGroup, probe bool, format string) {
	gc := g.counts()
	if probe {
		probeHold(e, r, gc, format)
	}
	// Clients are still connected: a cut stream would have counted as failed.
	if f := gc.failed.Load(); f > 0 {
		r.errorf("%d clients failed or were cut off", f)
	}
	g.close()
	if err := g.firstError(); err != nil && len(r.Errors) > 0 {
		r.errorf("first client error: %v", err)
	}
	// The figures are memory of idle connections: no CPU bound applies.
	r.classify(true)
	r.Bound = "idle"
}

// probeHold publishes a probe (seq 0) in format (http-stream or
// ws-message) to every hold channel until every connected client has seen
// one: each held connection really is subscribed.
func probeHold(e *runEnv, r *Result, g *groupCounts, format string) {
	pub := newPublisher(e.target.PublishAddr())
	defer pub.close()
	want := g.connected.Load()
	var body []byte
	ok := waitFor(30*time.Second, func() bool {
		for c := 0; c < e.p.HoldChannels; c++ {
			ch := fmt.Sprintf("h%s-%d", e.nonce, c)
			if format == "ws-message" {
				body = append(body[:0], `{"items":[`...)
				body = appendItem(body, ch, "", "", format, "content", appendPayload(nil, "", nowNS(), 0, ""))
				body = append(body, `]}`...)
			} else {
				body = streamItem(body[:0], ch, "", "", appendPayload(nil, "data: ", nowNS(), 0, "\n\n"))
			}
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
