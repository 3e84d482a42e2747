package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// row is one line of the comparison table: a metric of a scenario.
type row struct {
	scenario, metric, label string
	goal                    *goal // the target for this row, if any
}

// goal is a target ratio of caddy-grip to a baseline.
type goal struct {
	against string  // baseline target
	min     float64 // ratio must be >= min ...
	max     float64 // ... or <= max (when non-zero)
}

var tableRows = []row{
	{"hold", "conns_up", "held SSE connections", nil},
	{"hold", "rss_kb_per_conn", "proxy RSS KB/conn", &goal{against: targetPushpin, max: 1.0 / 3}},
	{"hold", "pss_kb_per_conn", "proxy PSS KB/conn", nil},
	{"hold", "kernel_sock_slab_kb_per_conn", "kernel socket slab KB/conn (both ends)", nil},
	{"hold", "kernel_slab_kb_per_conn", "kernel slab KB/conn, all caches (noisy)", nil},
	{"hold", "connect_rate", "connects/s achieved", nil},
	{"hold", "idle_cpu_ms_per_1k_conn_min", "idle CPU ms per 1k conns per min", nil},
	{holdWS, "conns_up", "held WebSocket connections", nil},
	{holdWS, "rss_kb_per_conn", "proxy RSS KB/conn", &goal{against: targetPushpin, max: 1.0 / 3}},
	{holdWS, "pss_kb_per_conn", "proxy PSS KB/conn", nil},
	{holdWS, "kernel_sock_slab_kb_per_conn", "kernel socket slab KB/conn (both ends)", nil},
	{holdWS, "kernel_slab_kb_per_conn", "kernel slab KB/conn, all caches (noisy)", nil},
	{holdWS, "connect_rate", "connects/s achieved", nil},
	{holdWS, "idle_cpu_ms_per_1k_conn_min", "idle CPU ms per 1k conns per min", nil},
	{burstSSE, "conns_up", "held SSE connections", nil},
	{burstSSE, "connect_rate", "connects/s achieved", nil},
	{burstSSE, "rss_kb_per_conn_1s", "proxy RSS KB/conn, 1 s after the burst", &goal{against: targetPushpin, max: 1.0 / 3}},
	{burstSSE, "rss_kb_per_conn_30s", "proxy RSS KB/conn, 30 s after the burst", &goal{against: targetPushpin, max: 1.0 / 3}},
	{burstSSE, "pss_kb_per_conn_1s", "proxy PSS KB/conn, 1 s", nil},
	{burstSSE, "pss_kb_per_conn_30s", "proxy PSS KB/conn, 30 s", nil},
	{burstSSE, "go_heap_kept_kb_per_conn_1s", "Go heap kept from the OS KB/conn, 1 s", nil},
	{burstSSE, "go_heap_inuse_kb_per_conn_30s", "Go heap in use KB/conn, 30 s", nil},
	{burstSSE, "go_stack_kb_per_conn_30s", "Go stacks KB/conn, 30 s", nil},
	{burstWS, "conns_up", "held WebSocket connections", nil},
	{burstWS, "connect_rate", "connects/s achieved", nil},
	{burstWS, "rss_kb_per_conn_1s", "proxy RSS KB/conn, 1 s after the burst", &goal{against: targetPushpin, max: 1.0 / 3}},
	{burstWS, "rss_kb_per_conn_30s", "proxy RSS KB/conn, 30 s after the burst", &goal{against: targetPushpin, max: 1.0 / 3}},
	{burstWS, "pss_kb_per_conn_1s", "proxy PSS KB/conn, 1 s", nil},
	{burstWS, "pss_kb_per_conn_30s", "proxy PSS KB/conn, 30 s", nil},
	{burstWS, "go_heap_kept_kb_per_conn_1s", "Go heap kept from the OS KB/conn, 1 s", nil},
	{burstWS, "go_heap_inuse_kb_per_conn_30s", "Go heap in use KB/conn, 30 s", nil},
	{burstWS, "go_stack_kb_per_conn_30s", "Go stacks KB/conn, 30 s", nil},
	{fanoutRate, "deliveries_per_s", "deliveries/s", nil},
	{fanoutRate, "lat_p50_us", "latency p50 µs", nil},
	{fanoutRate, "lat_p90_us", "latency p90 µs", nil},
	{fanoutRate, "lat_p99_us", "latency p99 µs", nil},
	{fanoutRate, "lat_max_us", "latency max µs", nil},
	{fanoutRate, "lost", "lost", nil},
	{fanoutRate, "duplicated", "duplicated", nil},
	{fanoutRate, "reordered", "reordered", nil},
	{fanoutRate, "sut_cpu_us_per_delivery", "proxy CPU µs/delivery", nil},
	{fanoutRate, "sut_write_calls_per_delivery", "proxy write calls/delivery", nil},
	{fanoutRate, "sut_cpu_util", "proxy CPU utilisation", nil},
	{fanoutRate, "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{fanoutRate, "gen_cpu_util", "generator CPU utilisation", nil},
	{fanoutMax, "deliveries_per_s", "deliveries/s", &goal{against: targetPushpin, min: 3}},
	{fanoutMax, "publish_rate_per_s", "publishes/s accepted", nil},
	{fanoutMax, "publish_api_p50_us", "publish request p50 µs", nil},
	{fanoutMax, "lat_p50_us", "latency p50 µs", nil},
	{fanoutMax, "lat_p90_us", "latency p90 µs", nil},
	{fanoutMax, "lat_p99_us", "latency p99 µs", nil},
	{fanoutMax, "lat_max_us", "latency max µs", nil},
	{fanoutMax, "lost", "lost", nil},
	{fanoutMax, "duplicated", "duplicated", nil},
	{fanoutMax, "reordered", "reordered", nil},
	{fanoutMax, "sut_cpu_us_per_delivery", "proxy CPU µs/delivery", nil},
	{fanoutMax, "sut_write_calls_per_delivery", "proxy write calls/delivery", nil},
	{fanoutMax, "sut_cpu_util", "proxy CPU utilisation", nil},
	{fanoutMax, "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{fanoutMax, "gen_cpu_util", "generator CPU utilisation", nil},
	{fanoutBatch, "deliveries_per_s", "deliveries/s", nil},
	{fanoutBatch, "lat_p50_us", "latency p50 µs", nil},
	{fanoutBatch, "lat_p99_us", "latency p99 µs", nil},
	{fanoutBatch, "lat_max_us", "latency max µs", nil},
	{fanoutBatch, "lost", "lost", nil},
	{fanoutBatch, "duplicated", "duplicated", nil},
	{fanoutBatch, "reordered", "reordered", nil},
	{fanoutBatch, "sut_cpu_us_per_delivery", "proxy CPU µs/delivery", nil},
	{fanoutBatch, "sut_write_calls_per_delivery", "proxy write calls/delivery", nil},
	{fanoutBatch, "sut_cpu_util", "proxy CPU utilisation", nil},
	{fanoutBatch, "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{fanoutBatch, "gen_cpu_util", "generator CPU utilisation", nil},
	{fanoutRate10k, "deliveries_per_s", "deliveries/s", nil},
	{fanoutRate10k, "lat_p50_us", "latency p50 µs", nil},
	{fanoutRate10k, "lat_p90_us", "latency p90 µs", nil},
	{fanoutRate10k, "lat_p99_us", "latency p99 µs", &goal{against: targetPushpin, max: 1.0 / 3}},
	{fanoutRate10k, "lat_max_us", "latency max µs", nil},
	{fanoutRate10k, "lost", "lost", nil},
	{fanoutRate10k, "duplicated", "duplicated", nil},
	{fanoutRate10k, "reordered", "reordered", nil},
	{fanoutRate10k, "publish_api_p50_us", "publish request p50 µs", nil},
	{fanoutRate10k, "sut_cpu_us_per_delivery", "proxy CPU µs/delivery", nil},
	{fanoutRate10k, "sut_write_calls_per_delivery", "proxy write calls/delivery", nil},
	{fanoutRate10k, "sut_cpu_util", "proxy CPU utilisation", nil},
	{fanoutRate10k, "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{fanoutRate10k, "gen_cpu_util", "generator CPU utilisation", nil},
	{fanoutMax10k, "deliveries_per_s", "deliveries/s", &goal{against: targetPushpin, min: 3}},
	{fanoutMax10k, "publish_rate_per_s", "publishes/s accepted", nil},
	{fanoutMax10k, "lat_p50_us", "latency p50 µs", nil},
	{fanoutMax10k, "lat_p99_us", "latency p99 µs", nil},
	{fanoutMax10k, "lat_max_us", "latency max µs", nil},
	{fanoutMax10k, "lost", "lost", nil},
	{fanoutMax10k, "duplicated", "duplicated", nil},
	{fanoutMax10k, "reordered", "reordered", nil},
	{fanoutMax10k, "sut_cpu_us_per_delivery", "proxy CPU µs/delivery", nil},
	{fanoutMax10k, "sut_write_calls_per_delivery", "proxy write calls/delivery", nil},
	{fanoutMax10k, "sut_cpu_util", "proxy CPU utilisation", nil},
	{fanoutMax10k, "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{fanoutMax10k, "gen_cpu_util", "generator CPU utilisation", nil},
	{clusterFanout, "conns_up", "held SSE subscribers", nil},
	{clusterFanout, "delivered_ratio", "delivered ÷ expected (distinct)", nil},
	{clusterFanout, "lost", "lost", nil},
	{clusterFanout, "duplicated", "duplicated", nil},
	{clusterFanout, "reordered", "reordered", nil},
	{clusterFanout, "lat_p50_us", "latency p50 µs", nil},
	{clusterFanout, "lat_p90_us", "latency p90 µs", nil},
	{clusterFanout, "lat_p99_us", "latency p99 µs", nil},
	{clusterFanout, "lat_max_us", "latency max µs", nil},
	{clusterFanout, "deliveries_per_s", "deliveries/s", nil},
	{clusterFanout, "publish_api_p50_us", "publish request p50 µs", nil},
	{clusterFanout, "sut_cpu_us_per_delivery", "proxy CPU µs/delivery (all nodes)", nil},
	{clusterFanout, "nats_cpu_us_per_delivery", "nats-server CPU µs/delivery", nil},
	{clusterFanout, "sut_write_calls_per_delivery", "proxy write calls/delivery", nil},
	{clusterFanout, "rss_kb_per_conn", "proxy RSS KB/conn (all nodes)", nil},
	{clusterFanout, "connect_rate", "connects/s achieved", nil},
	{clusterFanout, "sut_cpu_util", "proxy CPU utilisation (all nodes)", nil},
	{clusterFanout, "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{clusterFanout, "gen_cpu_util", "generator CPU utilisation (all generator processes)", nil},
	{cluster1Node, "conns_up", "held SSE subscribers", nil},
	{cluster1Node, "delivered_ratio", "delivered ÷ expected (distinct)", nil},
	{cluster1Node, "lost", "lost", nil},
	{cluster1Node, "duplicated", "duplicated", nil},
	{cluster1Node, "reordered", "reordered", nil},
	{cluster1Node, "lat_p50_us", "latency p50 µs", nil},
	{cluster1Node, "lat_p90_us", "latency p90 µs", nil},
	{cluster1Node, "lat_p99_us", "latency p99 µs", nil},
	{cluster1Node, "lat_max_us", "latency max µs", nil},
	{cluster1Node, "deliveries_per_s", "deliveries/s", nil},
	{cluster1Node, "publish_api_p50_us", "publish request p50 µs", nil},
	{cluster1Node, "sut_cpu_us_per_delivery", "proxy CPU µs/delivery (all nodes)", nil},
	{cluster1Node, "nats_cpu_us_per_delivery", "nats-server CPU µs/delivery", nil},
	{cluster1Node, "sut_write_calls_per_delivery", "proxy write calls/delivery", nil},
	{cluster1Node, "rss_kb_per_conn", "proxy RSS KB/conn (all nodes)", nil},
	{cluster1Node, "connect_rate", "connects/s achieved", nil},
	{cluster1Node, "sut_cpu_util", "proxy CPU utilisation (all nodes)", nil},
	{cluster1Node, "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{cluster1Node, "gen_cpu_util", "generator CPU utilisation (all generator processes)", nil},
	{clusterLocal, "conns_up", "held SSE subscribers", nil},
	{clusterLocal, "delivered_ratio", "delivered ÷ expected (distinct)", nil},
	{clusterLocal, "lost", "lost", nil},
	{clusterLocal, "duplicated", "duplicated", nil},
	{clusterLocal, "reordered", "reordered", nil},
	{clusterLocal, "lat_p50_us", "latency p50 µs", nil},
	{clusterLocal, "lat_p90_us", "latency p90 µs", nil},
	{clusterLocal, "lat_p99_us", "latency p99 µs", nil},
	{clusterLocal, "lat_max_us", "latency max µs", nil},
	{clusterLocal, "deliveries_per_s", "deliveries/s", nil},
	{clusterLocal, "publish_api_p50_us", "publish request p50 µs", nil},
	{clusterLocal, "sut_cpu_us_per_delivery", "proxy CPU µs/delivery (all nodes)", nil},
	{clusterLocal, "nats_cpu_us_per_delivery", "nats-server CPU µs/delivery", nil},
	{clusterLocal, "sut_write_calls_per_delivery", "proxy write calls/delivery", nil},
	{clusterLocal, "rss_kb_per_conn", "proxy RSS KB/conn (all nodes)", nil},
	{clusterLocal, "connect_rate", "connects/s achieved", nil},
	{clusterLocal, "sut_cpu_util", "proxy CPU utilisation (all nodes)", nil},
	{clusterLocal, "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{clusterLocal, "gen_cpu_util", "generator CPU utilisation (all generator processes)", nil},
	{clusterPublish, "one_publishes_per_s", "publishes/s, all on node 0", nil},
	{clusterPublish, "spread_publishes_per_s", "publishes/s, spread over the nodes", nil},
	{clusterPublish, "one_publish_api_p50_us", "publish request p50 µs, one node", nil},
	{clusterPublish, "spread_publish_api_p50_us", "publish request p50 µs, spread", nil},
	{clusterPublish, "one_sut_cpu_us_per_publish", "proxy CPU µs/publish (all nodes), one node", nil},
	{clusterPublish, "spread_sut_cpu_us_per_publish", "proxy CPU µs/publish (all nodes), spread", nil},
	{clusterPublish, "one_nats_cpu_us_per_publish", "nats-server CPU µs/publish, one node", nil},
	{clusterPublish, "spread_nats_cpu_us_per_publish", "nats-server CPU µs/publish, spread", nil},
	{clusterPublish, "one_sut_cpu_util", "proxy CPU utilisation, one node", nil},
	{clusterPublish, "spread_sut_cpu_util", "proxy CPU utilisation, spread", nil},
	{clusterPublish, "one_gen_cpu_util", "generator CPU utilisation, one node", nil},
	{clusterPublish, "spread_gen_cpu_util", "generator CPU utilisation, spread", nil},
	{clusterPublish, "delivered_ratio", "delivered ÷ expected (distinct)", nil},
	{clusterPublish, "lost", "lost", nil},
	{clusterPublish, "duplicated", "duplicated", nil},
	{"passthrough", "requests_per_s", "requests/s", &goal{against: targetCaddy, min: 0.95}},
	{"passthrough", "lat_p50_us", "latency p50 µs", nil},
	{"passthrough", "lat_p99_us", "latency p99 µs", nil},
	{"passthrough", "sut_cpu_us_per_request", "proxy CPU µs/request", nil},
	{"passthrough", "sut_cpu_util", "proxy CPU utilisation", nil},
	{"passthrough", "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{"passthrough", "gen_cpu_util", "generator CPU utilisation", nil},
	{"longpoll", "cycles_per_s", "cycles/s", &goal{against: targetPushpin, min: 2}},
	{"longpoll", "lat_p50_us", "publish→response p50 µs", nil},
	{"longpoll", "lat_p99_us", "publish→response p99 µs", nil},
	{"longpoll", "lat_max_us", "publish→response max µs", nil},
	{"longpoll", "gap_losses", "publishes lost in the gap (hold timed out)", nil},
	{"longpoll", "recovered_by_origin", "answered from the origin's store (prev-id retry, or after a timeout)", nil},
	{"longpoll", "origin_requests_per_cycle", "origin requests/cycle", nil},
	{"longpoll", "sut_cpu_us_per_cycle", "proxy CPU µs/cycle", nil},
	{"longpoll", "sut_cpu_util", "proxy CPU utilisation", nil},
	{"longpoll", "sut_core_foreign_util", "others' use of the proxy's core", nil},
	{"longpoll", "gen_cpu_util", "generator CPU utilisation", nil},
}

func init() { tableRows = append(tableRows, stalledRows()...) }

// stat is the median and range of one metric over the repetitions.
type stat struct {
	med, lo, hi float64
	n           int
}

func summarize(vals []float64) stat {
	if len(vals) == 0 {
		return stat{}
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med: med, lo: s[0], hi: s[len(s)-1], n: len(s)}
}

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// String is the median with the range over repetitions in brackets.
func (s stat) String() string {
	if s.n == 0 {
		return "n/a"
	}
	if s.n == 1 || s.lo == s.hi {
		return fmtNum(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.med), fmtNum(s.lo), fmtNum(s.hi))
}

// markdownReport renders the one comparison table (medians, with the range
// over repetitions in brackets), the bound of every run, errors, and the
// machine facts.
func markdownReport(results []*Result, machine map[string]string, start time.Time, loadStart, loadEnd float64) string {
	targets := []string{targetGrip, targetPushpin, targetCaddy}
	vals := map[string][]float64{} // scenario|target|metric
	bounds := map[string][]string{}
	scenSeen := map[string]bool{}
	reps := 0
	var loads []float64
	for _, r := range results {
		scenSeen[r.Scenario] = true
		if r.Rep > reps {
			reps = r.Rep
		}
		for k, v := range r.Metrics {
			key := r.Scenario + "|" + r.Target + "|" + k
			vals[key] = append(vals[key], v)
		}
		bounds[r.Scenario+"|"+r.Target] = append(bounds[r.Scenario+"|"+r.Target], r.Bound)
		loads = append(loads, r.Metrics["loadavg_start"], r.Metrics["loadavg_end"])
	}
	get := func(scen, target, metric string) stat { return summarize(vals[scen+"|"+target+"|"+metric]) }

	var b strings.Builder
	fmt.Fprintf(&b, "## Results %s\n\n", start.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Command: `%s`  \n", machine["command"])
	fmt.Fprintf(&b, "Machine: %s CPUs (%s), %s MiB RAM, kernel %s, %s, fd limit %s; proxy pinned to CPU %s, generator+origin to CPU %s.  \n",
		machine["cpus"], machine["cpu_model"], kbToMiB(machine["mem_total_kb"]), machine["kernel"], machine["go"], machine["fd_limit"], machine["pin_sut"], machine["pin_generator"])
	ls := summarize(loads)
	fmt.Fprintf(&b, "Load average (1 min) over the runs: median %.2f, range %.2f–%.2f (%.2f at start, %.2f at end); %d repetition(s), median shown with the range in brackets.\n\n",
		ls.med, ls.lo, ls.hi, loadStart, loadEnd, reps)
	b.WriteString("| scenario | metric | caddy-grip | Pushpin | plain Caddy | grip ÷ Pushpin | grip ÷ Caddy | goal |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, rw := range tableRows {
		if !scenSeen[rw.scenario] {
			continue
		}
		cells := make([]stat, len(targets))
		any := false
		for i, t := range targets {
			cells[i] = get(rw.scenario, t, rw.metric)
			any = any || cells[i].n > 0
		}
		if !any {
			continue
		}
		ratio := func(base stat) string {
			if cells[0].n == 0 || base.n == 0 || base.med == 0 {
				return ""
			}
			return fmtNum(cells[0].med/base.med) + "×"
		}
		goalCell := ""
		if g := rw.goal; g != nil {
			base := cells[1]
			if g.against == targetCaddy {
				base = cells[2]
			}
			if cells[0].n > 0 && base.n > 0 && base.med != 0 {
				r := cells[0].med / base.med
				met := (g.min == 0 || r >= g.min) && (g.max == 0 || r <= g.max)
				want := fmt.Sprintf("≥ %s×", fmtNum(g.min))
				if g.max != 0 {
					want = fmt.Sprintf("≤ %s×", fmtNum(g.max))
				}
				mark := "met"
				if !met {
					mark = "**missed**"
				}
				goalCell = fmt.Sprintf("%s %s: %s", want, g.against, mark)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", rw.scenario, rw.label,
			cells[0], cells[1], cells[2], ratio(cells[1]), ratio(cells[2]), goalCell)
	}
	b.WriteString("\nWhat bounded each run (sut-cpu: the proxy's core was busy; generator: the load generator's core was, so the figure is a floor for the proxy; contended: other processes on the box took a share of the proxy's core; pacing: fixed-rate or latency-bound; idle: memory of idle connections; timeouts: long-poll clients waited for hold timeouts):\n\n")
	b.WriteString("| scenario | caddy-grip | Pushpin | plain Caddy |\n|---|---|---|---|\n")
	for _, s := range append(scenarioNames, clusterScenarioNames...) {
		if !scenSeen[s] {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", s,
			strings.Join(bounds[s+"|"+targetGrip], ", "), strings.Join(bounds[s+"|"+targetPushpin], ", "), strings.Join(bounds[s+"|"+targetCaddy], ", "))
	}
	var errs []string
	for _, r := range results {
		for _, e := range r.Errors {
			errs = append(errs, fmt.Sprintf("- %s %s rep %d: %s", r.Target, r.Scenario, r.Rep, e))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\nErrors and correctness failures:\n\n")
		b.WriteString(strings.Join(errs, "\n"))
		b.WriteString("\n")
	}
	versions := map[string]string{}
	for _, r := range results {
		versions[r.Target] = r.Env["version"]
	}
	b.WriteString("\nVersions: ")
	var vs []string
	for _, t := range targets {
		if v, ok := versions[t]; ok {
			vs = append(vs, fmt.Sprintf("%s: %s", t, v))
		}
	}
	b.WriteString(strings.Join(vs, "; "))
	b.WriteString("\n")
	return b.String()
}

func kbToMiB(s string) string {
	var kb int64
	fmt.Sscan(s, &kb)
	return fmt.Sprint(kb / 1024)
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
