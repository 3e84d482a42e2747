package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// runPassthrough drives non-GRIP requests (GET /pass, 100-byte answer)
// through the proxy on PassConns keep-alive connections, closed loop, for a
// warm-up second and then PassDuration: requests/s, latency, and the
// proxy's CPU per request. Closed-loop latency is indicative only.
func runPassthrough(e *runEnv) *Result {
	p := e.p
	r := newResult(e, "passthrough")
	r.Params["conns"] = p.PassConns
	r.Params["duration_s"] = p.PassDuration.Seconds()
	r.Params["body_bytes"] = 100

	var (
		measuring, stop atomic.Bool
		count, errs     atomic.Int64
		hist            histogram
		firstErr        atomic.Value
		wg              sync.WaitGroup
	)
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	for i := 0; i < p.PassConns; i++ {
		wg.Add(1)
		go func(src int) {
			defer wg.Done()
			c, err := dialHTTP(e.target.ClientAddr(), e.src[src%len(e.src)], 5*time.Second)
			if err != nil {
				fail(err)
				return
			}
			defer func() { c.Close() }()
			var body []byte
			for !stop.Load() {
				t := nowNS()
				var rh respHead
				rh, body, err = c.getBody("/pass", body)
				if err == nil && (rh.Status != 200 || len(body) != 100) {
					err = fmt.Errorf("GET /pass: status %d, %d bytes: %q", rh.Status, len(body), body)
				}
				if err != nil {
					fail(err)
					if c.redial(5*time.Second) != nil {
						return
					}
					continue
				}
				if measuring.Load() {
					hist.Record(time.Duration(nowNS() - t))
					count.Add(1)
				}
				if rh.Close {
					if err := c.redial(5 * time.Second); err != nil {
						fail(err)
						return
					}
				}
			}
		}(i)
	}
	time.Sleep(time.Second) // warm-up: connections, pools, caches
	errs.Store(0)
	w := startWindow(e.target.PIDs())
	measuring.Store(true)
	time.Sleep(p.PassDuration)
	measuring.Store(false)
	n := count.Load()
	w.finish(r, float64(n), "request")
	stop.Store(true)
	wg.Wait()

	r.Metrics["requests"] = float64(n)
	r.Metrics["requests_per_s"] = float64(n) / r.Metrics["wall_s"]
	r.Metrics["errors"] = float64(errs.Load())
	hist.latencyMetrics(r.Metrics, "lat_")
	if errs.Load() > 0 {
		r.errorf("%d failed requests; first: %v", errs.Load(), firstErr.Load())
	}
	r.classify(false)
	return r
}
