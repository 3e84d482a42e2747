package main

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Result is one scenario run against one target: one JSON line.
type Result struct {
	Time     string             `json:"time"`
	Rep      int                `json:"rep"`
	Target   string             `json:"target"`
	Scenario string             `json:"scenario"`
	Params   map[string]any     `json:"params"`
	Metrics  map[string]float64 `json:"metrics"`
	// Bound says what limited the figures: "sut-cpu" (the proxy's core was
	// busy), "generator" (the load generator's core was; the run says
	// little about the proxy), "pacing" (a fixed-rate or latency-bound run),
	// "timeouts" (long-poll holds waited for their timeout).
	Bound  string            `json:"bound"`
	Errors []string          `json:"errors,omitempty"`
	Notes  []string          `json:"notes,omitempty"`
	Env    map[string]string `json:"env"`
}

// runEnv is what every scenario gets.
type runEnv struct {
	target Target
	origin *origin
	src    []net.IP
	nonce  string // unique per run: channel names and ids never repeat
	p      *params
	logf   func(format string, args ...any)
}

func newResult(e *runEnv, scenario string) *Result {
	return &Result{
		Time:     time.Now().UTC().Format(time.RFC3339),
		Target:   e.target.Name(),
		Scenario: scenario,
		Params:   map[string]any{},
		Metrics:  map[string]float64{},
	}
}

func (r *Result) errorf(format string, args ...any) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}

// window measures the proxy's and the generator's CPU over an interval.
type window struct {
	sut         sutSample
	gen         time.Duration
	genIO       ioCount
	pids        []int
	busy, steal time.Duration // on the proxy's CPUs, by anyone
}

func startWindow(pids []int) window {
	w := window{sut: sampleSUT(pids), gen: selfCPU(), pids: pids}
	w.genIO, _ = procIO("self")
	w.busy, w.steal = cpuTimes(sutCPUList)
	return w
}

// finish records wall time, CPU of both sides and CPU per operation.
func (w window) finish(r *Result, ops float64, opName string) {
	end := sampleSUT(w.pids)
	gen := selfCPU() - w.gen
	wall := end.At.Sub(w.sut.At).Seconds()
	sut := (end.CPU - w.sut.CPU).Seconds()
	m := r.Metrics
	m["wall_s"] = wall
	m["sut_cpu_s"] = sut
	m["gen_cpu_s"] = gen.Seconds()
	if wall > 0 {
		m["sut_cpu_util"] = sut / wall
		m["gen_cpu_util"] = gen.Seconds() / wall
	}
	if len(sutCPUList) > 0 && wall > 0 {
		// Other processes on the box (builds, tests) may run on the
		// proxy's pinned CPU too: what they took is not the proxy's.
		busy, steal := cpuTimes(sutCPUList)
		foreign := (busy - w.busy).Seconds() - sut
		if foreign < 0 {
			foreign = 0
		}
		m["sut_core_foreign_util"] = foreign / wall
		m["sut_core_steal_util"] = (steal - w.steal).Seconds() / wall
	}
	if ops > 0 {
		m["sut_cpu_us_per_"+opName] = sut * 1e6 / ops
		m["gen_cpu_us_per_"+opName] = gen.Seconds() * 1e6 / ops
		m["sut_write_calls_per_"+opName] = float64(end.IO.Writes-w.sut.IO.Writes) / ops
		if genIO, err := procIO("self"); err == nil {
			m["gen_read_calls_per_"+opName] = float64(genIO.Reads-w.genIO.Reads) / ops
		}
	}
}

// classify sets Bound from the CPU figures: a generator past 80% of its
// core invalidates a run: the figure may be the generator's limit.
func (r *Result) classify(pacedOrLatencyBound bool) {
	m := r.Metrics
	switch {
	case m["gen_cpu_util"] > 0.8*genCores:
		r.Bound = "generator"
		r.Notes = append(r.Notes, fmt.Sprintf("load generator used %.0f%% of its core(s): the figures bound the generator, not the proxy", 100*m["gen_cpu_util"]/genCores))
	case m["sut_cpu_util"] > 0.85*sutCores:
		r.Bound = "sut-cpu"
	case m["sut_cpu_util"]+m["sut_core_foreign_util"]+m["sut_core_steal_util"] > 0.85*sutCores && m["sut_core_foreign_util"]+m["sut_core_steal_util"] > 0.1*sutCores:
		r.Bound = "contended"
		r.Notes = append(r.Notes, fmt.Sprintf("other processes took %.0f%% (steal %.0f%%) of the proxy's core: rates are understated, CPU per operation less so", 100*m["sut_core_foreign_util"]/sutCores, 100*m["sut_core_steal_util"]/sutCores))
	case pacedOrLatencyBound:
		r.Bound = "pacing"
	default:
		r.Bound = "latency"
	}
}

// genCores and sutCores are how many cores each side may use (set from the
// pinning; 2 each when unpinned on this box); sutCPUList is the proxy's
// pinned CPUs (none when unpinned).
var (
	genCores, sutCores float64 = 1, 1
	sutCPUList         []int
)

// String is a one-line summary (plus errors and notes) for the console.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s rep %d bound=%s", r.Target, r.Scenario, r.Rep, r.Bound)
	for _, k := range sortedKeys(r.Metrics) {
		fmt.Fprintf(&b, " %s=%.4g", k, r.Metrics[k])
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\n  error: %s", e)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n  note: %s", n)
	}
	return b.String()
}
