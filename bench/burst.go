package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The burst scenarios: held clients connected as fast as the generator can.
const (
	burstSSE = "burst"
	burstWS  = "burst-ws"
)

// runBurst connects BurstConns SSE (or BurstWSConns WebSocket) clients
// with no pacing (at most BurstInflight handshakes unanswered), then
// measures the proxy's RSS and PSS per connection BurstSettle after the
// last connect and again at BurstSettled. A burst grows a Go heap before
// the collector catches up, so the first figure shows what a reconnect
// storm costs and the second what stays. For caddy-grip the Go runtime's
// own view (heap in use, heap kept from the OS, stacks) is read from the
// admin endpoint's /debug/vars at both points, and heap profiles are saved
// under -burst-profile-dir when it is set.
func runBurst(e *runEnv, tr transport) *Result {
	p := e.p
	name, format, prefix, n := burstSSE, "http-stream", "/stream/", p.BurstConns
	var g holdGroup = newSSEGroup(e.target.ClientAddr(), 0)
	if tr == transportWS {
		name, format, prefix, n = burstWS, "ws-message", "/ws/", p.BurstWSConns
		g = newWSGroup(e.target.ClientAddr())
	}
	r := newResult(e, name)
	r.Params["conns"] = n
	r.Params["channels"] = p.HoldChannels
	r.Params["connect_inflight"] = p.BurstInflight
	r.Params["src_ips"] = len(e.src)
	r.Params["settle_s"] = p.BurstSettle.Seconds()
	r.Params["settled_s"] = p.BurstSettled.Seconds()
	r.Params["path"] = prefix
	defer g.close()
	gc := g.counts()
	pids := e.target.PIDs()
	admin := ""
	if e.target.Name() == targetGrip {
		admin = e.target.AdminAddr()
	}
	before := sampleSUT(pids)
	rt0, _ := goRuntimeMem(admin)

	start := time.Now()
	ramp(g, n, 1e9, p.BurstInflight, func(i int) string {
		return fmt.Sprintf("%sh%s-%d", prefix, e.nonce, i%p.HoldChannels) // the channels probeHold publishes to
	}, e.src)
	allUp := waitFor(120*time.Second, func() bool { return int(gc.connected.Load()+gc.failed.Load()) >= n })
	connected := time.Now()
	up := gc.connected.Load()
	r.Metrics["conns_up"] = float64(up)
	r.Metrics["conns_failed"] = float64(gc.failed.Load())
	r.Metrics["connect_rate"] = float64(up) / connected.Sub(start).Seconds()
	if !allUp || int(up) < n {
		r.errorf("%d of %d clients connected (%d failed)", up, n, gc.failed.Load())
	}
	peak := sampleSUT(pids)

	measure := func(at time.Duration, suffix string) {
		time.Sleep(time.Until(connected.Add(at)))
		s := sampleSUT(pids)
		if up == 0 {
			return
		}
		per := func(a, b int64) float64 { return float64(b-a) / float64(up) }
		r.Metrics["rss_kb_per_conn_"+suffix] = per(before.Mem.RSS, s.Mem.RSS)
		r.Metrics["pss_kb_per_conn_"+suffix] = per(before.Mem.PSS, s.Mem.PSS)
		r.Metrics["rss_kb_after_"+suffix] = float64(s.Mem.RSS)
		if rt, err := goRuntimeMem(admin); err == nil {
			perB := func(a, b uint64) float64 { return (float64(b) - float64(a)) / 1024 / float64(up) }
			r.Metrics["go_heap_inuse_kb_per_conn_"+suffix] = perB(rt0.HeapInuse, rt.HeapInuse)
			r.Metrics["go_heap_kept_kb_per_conn_"+suffix] = perB(rt0.HeapSys-rt0.HeapReleased, rt.HeapSys-rt.HeapReleased)
			r.Metrics["go_stack_kb_per_conn_"+suffix] = perB(rt0.StackInuse, rt.StackInuse)
			r.Metrics["go_num_gc_"+suffix] = float64(rt.NumGC - rt0.NumGC)
		}
		if admin != "" && p.BurstProfileDir != "" {
			f := filepath.Join(p.BurstProfileDir, fmt.Sprintf("%s-%s-%s.heap.pb.gz", e.target.Name(), name, suffix))
			if err := fetchTo("http://"+admin+"/debug/pprof/heap", f); err != nil {
				r.errorf("heap profile: %v", err)
			}
			f = filepath.Join(p.BurstProfileDir, fmt.Sprintf("%s-%s-%s.goroutine.txt", e.target.Name(), name, suffix))
			if err := fetchTo("http://"+admin+"/debug/pprof/goroutine?debug=1", f); err != nil {
				r.errorf("goroutine profile: %v", err)
			}
		}
	}
	if up > 0 {
		r.Metrics["rss_kb_per_conn_connected"] = float64(peak.Mem.RSS-before.Mem.RSS) / float64(up)
	}
	measure(p.BurstSettle, "1s")
	measure(p.BurstSettled, "30s")

	finishHold(e, r, g, up > 0, format)
	return r
}

// goMem is the part of runtime.MemStats that says where a Go proxy's
// memory is, as Caddy's admin endpoint serves it under /debug/vars.
type goMem struct {
	HeapInuse, HeapSys, HeapReleased, StackInuse uint64
	NumGC                                        uint32
}

// goRuntimeMem reads memstats from the admin endpoint at addr ("" for a
// proxy that is not Go).
func goRuntimeMem(addr string) (goMem, error) {
	if addr == "" {
		return goMem{}, fmt.Errorf("no admin endpoint")
	}
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get("http://" + addr + "/debug/vars")
	if err != nil {
		return goMem{}, err
	}
	defer res.Body.Close()
	var v struct{ Memstats goMem }
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		return goMem{}, fmt.Errorf("/debug/vars: %w", err)
	}
	return v.Memstats, nil
}

// fetchTo saves the body of a GET of url in file.
func fetchTo(url, file string) error {
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
