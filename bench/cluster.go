package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddy-grip/grip/internal/freeport"
)

// The cluster scenarios run several caddy-grip nodes joined by one NATS
// server (the grip global option), each node a process of its own on its
// own random loopback ports, and hold their subscribers in generator
// child processes (clustergen.go), since 50,000 subscribers do not fit one
// process's fd limit on either side.
const (
	// cluster: -cluster-nodes nodes, -cluster-subs subscribers in all on
	// one channel, -cluster-msgs messages at -cluster-rate, published on
	// the first node.
	clusterFanout = "cluster"
	// cluster-1node: one node with the same grip option (NATS in the
	// path), -cluster-single-subs subscribers, the same messages and rate.
	cluster1Node = "cluster-1node"
	// cluster-local: the same node without the option (the local bus).
	clusterLocal = "cluster-local"
	// cluster-publish: publishes/s accepted by the nodes, all entering on
	// the first node, then spread over every node.
	clusterPublish = "cluster-publish"
)

// clusterScenarioNames run only when named in -scenarios ("all" is the
// single-node set): they need nats-server and several minutes each.
var clusterScenarioNames = []string{clusterFanout, cluster1Node, clusterLocal, clusterPublish}

func isCluster(name string) bool { return contains(clusterScenarioNames, name) }

// clusterOptions say how to run a cluster.
type clusterOptions struct {
	targetOptions
	// NATSBin is the nats-server binary; NATSURL, when set, is a running
	// server used instead of starting one.
	NATSBin, NATSURL string
	// ChildBin is the program run as a generator child (GRIP_BENCH_CHILD=gen).
	ChildBin string
	// CaddyEnv is added to every node's environment.
	CaddyEnv []string
}

// cluster is a NATS server and the caddy-grip nodes joined through it.
type cluster struct {
	nats  *procTarget // nil when NATS is not started by the bench (or not used)
	url   string      // NATS URL the nodes use; "" for the local bus
	nodes []*procTarget
}

// startCluster starts NATS (when useNATS and no URL is given) and n nodes.
func startCluster(n int, useNATS bool, opt clusterOptions, label string) (*cluster, error) {
	c := &cluster{}
	if useNATS {
		c.url = opt.NATSURL
		if c.url == "" {
			t, url, err := startNATS(opt, label)
			if err != nil {
				return nil, err
			}
			c.nats, c.url = t, url
		}
	}
	errs := make([]error, n)
	c.nodes = make([]*procTarget, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A free port may be taken between the check and the
			// node's listen (another test on the box): try new ones.
			for attempt := 0; attempt < 3; attempt++ {
				if c.nodes[i], errs[i] = startNode(i, c.url, opt, label); errs[i] == nil {
					break
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// stop ends every node, then NATS.
func (c *cluster) stop() {
	var wg sync.WaitGroup
	for _, t := range c.nodes {
		if t != nil {
			wg.Add(1)
			go func() { defer wg.Done(); t.stop() }()
		}
	}
	wg.Wait()
	if c.nats != nil {
		c.nats.stop()
	}
}

// nodePIDs are every node's processes.
func (c *cluster) nodePIDs() []int {
	var pids []int
	for _, t := range c.nodes {
		pids = append(pids, t.pids...)
	}
	return pids
}

func (c *cluster) natsPIDs() []int {
	if c.nats == nil {
		return nil
	}
	return c.nats.pids
}

// findNATS returns the nats-server binary: bin if given, else PATH, else
// Debian's /usr/sbin/nats-server.
func findNATS(bin string) (string, error) {
	if bin != "" {
		return exec.LookPath(bin)
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server", nil
	}
	return "", fmt.Errorf("the cluster scenarios need nats-server (apt-get install nats-server), -nats-server BIN or -nats-url URL")
}

// startNATS starts nats-server on a free loopback port, pinned with the
// proxies, and waits for its INFO line.
func startNATS(opt clusterOptions, label string) (*procTarget, string, error) {
	bin, err := findNATS(opt.NATSBin)
	if err != nil {
		return nil, "", err
	}
	addrs, err := freeport.Addrs(1)
	if err != nil {
		return nil, "", err
	}
	addr := addrs[0]
	host, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(opt.WorkDir, label, "nats")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	t := &procTarget{name: "nats-server", dir: dir}
	t.version = commandOutput(bin, "--version")
	argv := []string{bin, "-a", host, "-p", port}
	if opt.SUTCPUs != "" {
		argv = append([]string{"taskset", "-c", opt.SUTCPUs}, argv...)
	}
	logf, err := os.Create(filepath.Join(dir, "log.txt"))
	if err != nil {
		return nil, "", err
	}
	t.cmd = exec.Command(argv[0], argv[1:]...)
	t.cmd.Dir = dir
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := t.cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("starting nats-server: %w", err)
	}
	t.exited = make(chan struct{})
	go func() { _ = t.cmd.Wait(); logf.Close(); close(t.exited) }()
	ok := waitFor(20*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "INFO ")
	})
	if !ok {
		t.stop()
		return nil, "", fmt.Errorf("nats-server did not come up on %s (log: %s)", addr, filepath.Join(dir, "log.txt"))
	}
	t.pids = processTree(t.cmd.Process.Pid)
	return t, "nats://" + addr, nil
}

// startNode starts caddy-grip node i on free ports, joined to natsURL
// ("" keeps the local bus).
func startNode(i int, natsURL string, opt clusterOptions, label string) (*procTarget, error) {
	dir := filepath.Join(opt.WorkDir, label, fmt.Sprintf("node-%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addrs, err := freeport.Addrs(2)
	if err != nil {
		return nil, err
	}
	client, publish := addrs[0], addrs[1]
	t := &procTarget{name: fmt.Sprintf("%s-node-%d", targetGrip, i), dir: dir, client: client, publish: publish}
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n\tgrace_period 2s\n\tlog {\n\t\tlevel ERROR\n\t}\n")
	if natsURL != "" {
		fmt.Fprintf(&b, "\tgrip {\n\t\tnats %s {\n\t\t\tname bench-node-%d\n\t\t}\n\t}\n", natsURL, i)
	}
	// bind: the ports are free on 127.0.0.1, not on every address (the
	// generators' closed connections keep ephemeral ports of 127.0.x.y in
	// TIME_WAIT, and Caddy would otherwise listen on all of them).
	fmt.Fprintf(&b, "}\n\nhttp://%s {\n\tbind 127.0.0.1\n\tgrip\n\treverse_proxy %s {\n\t\tflush_interval -1\n\t}\n}\n\nhttp://%s {\n\tbind 127.0.0.1\n\tgrip_publish\n}\n",
		client, opt.OriginAddr, publish)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	env = append(env, opt.CaddyEnv...)
	switch {
	case opt.SUTGomaxprocs > 0:
		t.gomaxprocs = fmt.Sprint(opt.SUTGomaxprocs)
	case opt.SUTCPUs != "":
		t.gomaxprocs = fmt.Sprint(cpuCount(opt.SUTCPUs))
	}
	if t.gomaxprocs != "" {
		env = append(env, "GOMAXPROCS="+t.gomaxprocs)
	}
	argv := []string{opt.CaddyBin, "run", "--config", path, "--adapter", "caddyfile"}
	if err := t.launch(argv, env, opt.targetOptions); err != nil {
		return nil, err
	}
	return t, nil
}

// clusterEnv is what a cluster scenario gets.
type clusterEnv struct {
	opt   clusterOptions
	p     *params
	nonce string
	seq   int
}

// clusterSize is the shape of one cluster fan-out run.
type clusterSize struct {
	nodes, subs int
	nats        bool
}

func (e *clusterEnv) size(name string) clusterSize {
	switch name {
	case cluster1Node:
		return clusterSize{1, e.p.ClusterSingleSubs, true}
	case clusterLocal:
		return clusterSize{1, e.p.ClusterSingleSubs, false}
	case clusterPublish:
		return clusterSize{e.p.ClusterNodes, e.p.ClusterNodes * e.p.ClusterPubSubs, true}
	}
	return clusterSize{e.p.ClusterNodes, e.p.ClusterSubs, true}
}

// genPlan splits subs over the nodes and, per node, over as many children
// as the per-child limit needs: node j gets subs/nodes (the first ones one
// more when it does not divide).
func genPlan(subs, nodes, perChild int) (node []int, count []int) {
	for j := range nodes {
		share := subs / nodes
		if j < subs%nodes {
			share++
		}
		k := max(1, (share+perChild-1)/perChild)
		for c := range k {
			n := share / k
			if c < share%k {
				n++
			}
			node, count = append(node, j), append(count, n)
		}
	}
	return node, count
}

// startGens starts the generator children of a run: subscribers spread
// over the nodes, each child dialling from source addresses of its own
// (127.0.<child+1>.2 and on), connecting at its share of the connect rate.
func startGens(e *clusterEnv, c *cluster, label, path string, subs, expect int) (genGroup, error) {
	p := e.p
	nodeOf, counts := genPlan(subs, len(c.nodes), p.ClusterGenSubs)
	var gs genGroup
	for i := range counts {
		var src []string
		for j := range max(p.SrcIPs, 1) {
			src = append(src, net.IPv4(127, 0, byte(i+1), byte(j+2)).String())
		}
		cfg := genConfig{
			Addr: c.nodes[nodeOf[i]].client, Path: path, N: counts[i], Expect: expect,
			Rate: float64(p.ClusterConnectRate) / float64(len(counts)), Inflight: p.ConnectInflight,
			SrcIPs: src, EpochWallNS: epoch.UnixNano(),
		}
		g, err := startGen(e.opt.ChildBin, cfg, filepath.Join(e.opt.WorkDir, label, fmt.Sprintf("gen-%d.log", i)))
		if err != nil {
			gs.stop()
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// clusterWindow measures the nodes', NATS's and the generators' CPU over
// an interval.
type clusterWindow struct {
	c           *cluster
	gs          genGroup
	at          time.Time
	node        []time.Duration
	nodeIO      ioCount
	nats        time.Duration
	self, gen   time.Duration
	busy, steal time.Duration
}

func nodeCPUs(c *cluster) ([]time.Duration, ioCount) {
	out := make([]time.Duration, len(c.nodes))
	var io ioCount
	for i, t := range c.nodes {
		s := sampleSUT(t.pids)
		out[i] = s.CPU
		io.Writes += s.IO.Writes
	}
	return out, io
}

func startClusterWindow(c *cluster, gs genGroup) *clusterWindow {
	w := &clusterWindow{c: c, gs: gs, at: time.Now(), self: selfCPU(), gen: gs.cpu()}
	w.node, w.nodeIO = nodeCPUs(c)
	w.nats = sampleSUT(c.natsPIDs()).CPU
	w.busy, w.steal = cpuTimes(sutCPUList)
	return w
}

// finish records wall time, CPU of every side (proxy: summed over the
// nodes) and CPU per operation.
func (w *clusterWindow) finish(r *Result, ops float64, opName string) {
	node, io := nodeCPUs(w.c)
	natsCPU := (sampleSUT(w.c.natsPIDs()).CPU - w.nats).Seconds()
	gen := (selfCPU() - w.self + w.gs.cpu() - w.gen).Seconds()
	wall := time.Since(w.at).Seconds()
	m := r.Metrics
	var sut float64
	for i := range node {
		d := (node[i] - w.node[i]).Seconds()
		m[fmt.Sprintf("node%d_cpu_s", i)] = d
		sut += d
	}
	m["wall_s"] = wall
	m["sut_cpu_s"] = sut
	m["nats_cpu_s"] = natsCPU
	m["gen_cpu_s"] = gen
	if wall > 0 {
		m["sut_cpu_util"] = sut / wall
		m["nats_cpu_util"] = natsCPU / wall
		m["gen_cpu_util"] = gen / wall
	}
	if len(sutCPUList) > 0 && wall > 0 {
		busy, steal := cpuTimes(sutCPUList)
		foreign := max((busy-w.busy).Seconds()-sut-natsCPU, 0)
		m["sut_core_foreign_util"] = foreign / wall
		m["sut_core_steal_util"] = (steal - w.steal).Seconds() / wall
	}
	if ops > 0 {
		m["sut_cpu_us_per_"+opName] = sut * 1e6 / ops
		m["nats_cpu_us_per_"+opName] = natsCPU * 1e6 / ops
		m["gen_cpu_us_per_"+opName] = gen * 1e6 / ops
		m["sut_write_calls_per_"+opName] = float64(io.Writes-w.nodeIO.Writes) / ops
	}
}

// runClusterScenario starts the cluster a scenario needs, runs it and
// stops everything it started.
func runClusterScenario(e *clusterEnv, name string, setCur func(stopper)) *Result {
	sz := e.size(name)
	label := fmt.Sprintf("%s-%d", name, e.seq)
	r := &Result{Time: time.Now().UTC().Format(time.RFC3339), Target: targetGrip, Scenario: name,
		Params: map[string]any{}, Metrics: map[string]float64{}}
	r.Params["nodes"] = sz.nodes
	r.Params["nats"] = sz.nats
	r.Params["subscribers"] = sz.subs
	c, err := startCluster(sz.nodes, sz.nats, e.opt, label)
	if err != nil {
		r.errorf("starting the cluster: %v", err)
		return r
	}
	setCur(c)
	defer func() { c.stop(); setCur(nil) }()
	if c.nats != nil {
		r.Params["nats_version"] = c.nats.version
	}
	if name == clusterPublish {
		runClusterPublish(e, c, r, label)
	} else {
		runClusterFanout(e, c, r, label, sz.subs)
	}
	return r
}

// waitGens polls the children until cond holds of their summed counts, or
// timeout passes; it returns the last counts.
func waitGens(gs genGroup, timeout time.Duration, cond func(genStatus) bool) (genStatus, bool) {
	deadline := time.Now().Add(timeout)
	for {
		s := gs.sum()
		if cond(s) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connectAndProbe starts the children, waits for every subscriber and
// publishes probes (seq 0) on pub until every one got one. It records
// the connect rate and memory per held connection.
func connectAndProbe(e *clusterEnv, c *cluster, r *Result, label, ch string, subs, expect int, pub *publisher) (genGroup, bool) {
	p := e.p
	start := time.Now()
	gs, err := startGens(e, c, label, "/stream/"+ch, subs, expect)
	if err != nil {
		r.errorf("generators: %v", err)
		return nil, false
	}
	r.Params["generator_processes"] = len(gs)
	r.Params["connect_rate_target"] = p.ClusterConnectRate
	memBefore := sampleSUT(c.nodePIDs()).Mem
	rampTime := time.Duration(float64(subs)/float64(max(p.ClusterConnectRate, 1))*float64(time.Second)) + 60*time.Second
	s, ok := waitGens(gs, rampTime, func(s genStatus) bool { return int(s.Connected+s.Failed) >= subs })
	r.Metrics["connect_rate"] = float64(s.Connected) / time.Since(start).Seconds()
	r.Metrics["conns_up"] = float64(s.Connected)
	r.Metrics["conns_failed"] = float64(s.Failed)
	if !ok || int(s.Connected) < subs {
		r.errorf("%d of %d subscribers connected (%d failed)", s.Connected, subs, s.Failed)
		for _, g := range gs {
			if t, err := g.tally(); err == nil && t.FirstErr != "" {
				r.errorf("first subscriber error: %s", t.FirstErr)
				break
			}
		}
		return gs, false
	}
	mem := sampleSUT(c.nodePIDs()).Mem
	r.Metrics["sut_rss_mb"] = float64(mem.RSS) / 1024
	r.Metrics["rss_kb_per_conn"] = float64(mem.RSS-memBefore.RSS) / float64(subs)
	var body, payload []byte
	var pubErr error
	_, probed := waitGens(gs, 60*time.Second, func(s genStatus) bool {
		if int(s.Probed) >= subs {
			return true
		}
		payload = appendPayload(payload[:0], "data: ", nowNS(), 0, "\n\n")
		if err := pub.post(streamItem(body[:0], ch, "", "", payload)); err != nil {
			pubErr = err
		}
		time.Sleep(300 * time.Millisecond)
		return false
	})
	if !probed {
		s := gs.sum()
		r.errorf("probe reached %d of %d subscribers", s.Probed, subs)
		if pubErr != nil {
			r.errorf("probe: %v", pubErr)
		}
		return gs, false
	}
	return gs, true
}

// collect closes the children's subscribers and adds up what they got:
// the merged latency histogram goes into r's lat_ metrics.
func collect(gs genGroup, r *Result, hist *histogram) (t sseTally, firstErr string, reads int64) {
	for _, g := range gs {
		gt, err := g.tally()
		if err != nil {
			r.errorf("tally: %v", err)
			continue
		}
		t.clients += gt.Clients
		t.distinct += gt.Distinct
		t.dups += gt.Dups
		t.reorder += gt.Reorder
		t.lost += gt.Lost
		reads += gt.Reads
		if firstErr == "" {
			firstErr = gt.FirstErr
		}
		var n uint64
		for _, b := range gt.Buckets {
			hist.counts[b[0]].Add(b[1])
			n += b[1]
		}
		hist.n.Add(n)
		if gt.MaxNS > hist.max.Load() {
			hist.max.Store(gt.MaxNS)
		}
	}
	return t, firstErr, reads
}

// runClusterFanout holds subs SSE subscribers spread over the nodes on one
// channel and publishes -cluster-msgs messages (id/prev-id chained) at
// -cluster-rate on the first node, open loop: latency runs from each
// message's scheduled publish time to its receipt in whichever generator
// process read it. Every subscriber must get every message once, in order.
func runClusterFanout(e *clusterEnv, c *cluster, r *Result, label string, subs int) {
	p := e.p
	m, rate := p.ClusterMsgs, p.ClusterRate
	r.Params["messages"] = m
	r.Params["rate_per_s"] = rate
	r.Params["payload_bytes"] = payloadSize
	r.Params["publish_node"] = 0
	ch := "c" + e.nonce
	pub := newPublisher(c.nodes[0].publish)
	defer pub.close()
	gs, ok := connectAndProbe(e, c, r, label, ch, subs, m, pub)
	defer gs.stop()
	if !ok {
		r.classify(false)
		return
	}
	w := startClusterWindow(c, gs)
	t0 := nowNS()
	step := int64(float64(time.Second) / rate)
	idPrefix := "m" + e.nonce + "-"
	var id, prev string
	var body, payload []byte
	pubErrors := 0
	var pubLat histogram
	for k := 1; k <= m; k++ {
		pubNS := t0 + int64(k-1)*step
		if d := time.Duration(pubNS - nowNS()); d > 0 {
			time.Sleep(d)
		}
		prev, id = id, idPrefix+strconv.Itoa(k)
		payload = appendPayload(payload[:0], "data: ", pubNS, uint64(k), "\n\n")
		body = streamItem(body[:0], ch, id, prev, payload)
		sent := nowNS()
		if err := pub.post(body); err != nil {
			pubErrors++
			if pubErrors == 1 {
				r.errorf("publish %d: %v", k, err)
			}
		}
		pubLat.Record(time.Duration(nowNS() - sent))
	}
	pubEnd := nowNS()
	want := int64(subs) * int64(m)
	// Drain: until everything arrived, or nothing arrived for 5 s.
	last, lastChange := int64(-1), time.Now()
	var s genStatus
	for {
		s = gs.sum()
		if s.Delivered >= want {
			break
		}
		if s.Delivered != last {
			last, lastChange = s.Delivered, time.Now()
		} else if time.Since(lastChange) > 5*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.finish(r, float64(s.Delivered), "delivery")
	var hist histogram
	t, firstErr, reads := collect(gs, r, &hist)
	span := float64(s.LastRecvNS-t0) / 1e9
	r.Metrics["delivered"] = float64(s.Delivered)
	r.Metrics["expected"] = float64(want)
	r.Metrics["delivered_ratio"] = float64(t.distinct) / float64(want)
	r.Metrics["lost"] = float64(t.lost)
	r.Metrics["duplicated"] = float64(t.dups)
	r.Metrics["reordered"] = float64(t.reorder)
	r.Metrics["publish_errors"] = float64(pubErrors)
	if s.Delivered > 0 {
		r.Metrics["gen_read_calls_per_delivery"] = float64(reads) / float64(s.Delivered)
	}
	if span > 0 {
		r.Metrics["deliveries_per_s"] = float64(s.Delivered) / span
	}
	r.Metrics["publish_rate_per_s"] = float64(m) / (float64(pubEnd-t0) / 1e9)
	r.Metrics["sweep_last_recv_after_last_publish_ms"] = float64(s.LastRecvNS-pubEnd) / 1e6
	hist.latencyMetrics(r.Metrics, "lat_")
	pubLat.latencyMetrics(r.Metrics, "publish_api_")
	if t.lost > 0 || t.dups > 0 || t.reorder > 0 {
		r.errorf("lost %d, duplicated %d, reordered %d of %d deliveries", t.lost, t.dups, t.reorder, want)
	}
	if firstErr != "" {
		r.errorf("a subscriber failed: %s", firstErr)
	}
	classifyCluster(r, true)
	if r.Bound == "sut-cpu" {
		r.Notes = append(r.Notes, fmt.Sprintf("the nodes could not keep up with %g msgs/s to %d subscribers", rate, subs))
	}
}

// runClusterPublish measures publishes/s accepted with -cluster-publishers
// concurrent publish connections, first all to node 0, then each request
// to the next node in turn, -cluster-pub-msgs messages each. Every node
// holds -cluster-pub-subs subscribers on the channel, and every one must
// get every message once (concurrent publishers do not order messages, so
// reordering is counted, not an error).
func runClusterPublish(e *clusterEnv, c *cluster, r *Result, label string) {
	p := e.p
	m, conc := p.ClusterPubMsgs, max(p.ClusterPublishers, 1)
	subs := len(c.nodes) * p.ClusterPubSubs
	r.Params["messages_per_phase"] = m
	r.Params["publishers"] = conc
	r.Params["subscribers_per_node"] = p.ClusterPubSubs
	ch := "p" + e.nonce
	probePub := newPublisher(c.nodes[0].publish)
	defer probePub.close()
	gs, ok := connectAndProbe(e, c, r, label, ch, subs, 2*m, probePub)
	defer gs.stop()
	if !ok {
		r.classify(false)
		return
	}
	pubErrors := 0
	for phase, spread := range []bool{false, true} {
		name := "one"
		if spread {
			name = "spread"
		}
		first := phase*m + 1
		pubs := make([][]*publisher, conc)
		for i := range pubs {
			for _, n := range c.nodes {
				if !spread && n != c.nodes[0] {
					break
				}
				pubs[i] = append(pubs[i], newPublisher(n.publish))
			}
		}
		var next, errs int64
		var mu sync.Mutex
		var lat histogram
		w := startClusterWindow(c, gs)
		t0 := nowNS()
		var wg sync.WaitGroup
		for i := range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var body, payload []byte
				for {
					mu.Lock()
					k := next
					next++
					mu.Unlock()
					if k >= int64(m) {
						return
					}
					seq := uint64(first) + uint64(k)
					pb := pubs[i][int(k)%len(pubs[i])]
					payload = appendPayload(payload[:0], "data: ", nowNS(), seq, "\n\n")
					body = streamItem(body[:0], ch, "", "", payload)
					sent := nowNS()
					if err := pb.post(body); err != nil {
						mu.Lock()
						errs++
						if errs == 1 {
							r.errorf("%s: publish: %v", name, err)
						}
						mu.Unlock()
					}
					lat.Record(time.Duration(nowNS() - sent))
				}
			}()
		}
		wg.Wait()
		pubEnd := nowNS()
		for _, ps := range pubs {
			for _, pb := range ps {
				pb.close()
			}
		}
		want := int64(subs) * int64(phase+1) * int64(m)
		s, _ := waitGens(gs, 30*time.Second, func(s genStatus) bool { return s.Delivered >= want })
		w.finish(r, float64(m), "publish")
		// finish wrote the phase's CPU under generic names: keep them
		// under the phase's.
		for _, k := range []string{"wall_s", "sut_cpu_s", "nats_cpu_s", "gen_cpu_s", "sut_cpu_util", "nats_cpu_util", "gen_cpu_util",
			"sut_core_foreign_util", "sut_core_steal_util", "sut_cpu_us_per_publish", "nats_cpu_us_per_publish", "gen_cpu_us_per_publish", "sut_write_calls_per_publish"} {
			if v, ok := r.Metrics[k]; ok {
				r.Metrics[name+"_"+k] = v
			}
		}
		for i := range c.nodes {
			k := fmt.Sprintf("node%d_cpu_s", i)
			r.Metrics[name+"_"+k] = r.Metrics[k]
			delete(r.Metrics, k)
		}
		pubErrors += int(errs)
		r.Metrics[name+"_publishes_per_s"] = float64(m) / (float64(pubEnd-t0) / 1e9)
		r.Metrics[name+"_delivered_by_s"] = float64(s.LastRecvNS-t0) / 1e9
		lat.latencyMetrics(r.Metrics, name+"_publish_api_")
		if s.Delivered < want {
			r.errorf("%s: %d of %d deliveries", name, s.Delivered-(want-int64(subs)*int64(m)), int64(subs)*int64(m))
		}
	}
	var hist histogram
	t, firstErr, _ := collect(gs, r, &hist)
	want := int64(subs) * 2 * int64(m)
	r.Metrics["expected"] = float64(want)
	r.Metrics["delivered_distinct"] = float64(t.distinct)
	r.Metrics["delivered_ratio"] = float64(t.distinct) / float64(want)
	r.Metrics["lost"] = float64(t.lost)
	r.Metrics["duplicated"] = float64(t.dups)
	r.Metrics["reordered"] = float64(t.reorder)
	r.Metrics["publish_errors"] = float64(pubErrors)
	hist.latencyMetrics(r.Metrics, "lat_")
	if t.lost > 0 || t.dups > 0 {
		r.errorf("lost %d, duplicated %d of %d deliveries", t.lost, t.dups, want)
	}
	if firstErr != "" {
		r.errorf("a subscriber failed: %s", firstErr)
	}
	// The bound is the spread phase's (the metrics finish left last).
	classifyCluster(r, false)
	for _, k := range []string{"wall_s", "sut_cpu_s", "nats_cpu_s", "gen_cpu_s", "sut_cpu_util", "nats_cpu_util", "gen_cpu_util",
		"sut_core_foreign_util", "sut_core_steal_util", "sut_cpu_us_per_publish", "nats_cpu_us_per_publish", "gen_cpu_us_per_publish", "sut_write_calls_per_publish"} {
		delete(r.Metrics, k)
	}
}

// classifyCluster is classify with nats-server counted with the nodes: it
// runs on their core, so nodes and NATS together can fill it.
func classifyCluster(r *Result, paced bool) {
	r.classify(paced)
	m := r.Metrics
	if r.Bound != "generator" && r.Bound != "sut-cpu" && m["sut_cpu_util"]+m["nats_cpu_util"] > 0.85*sutCores {
		r.Bound = "sut-cpu"
		r.Notes = append(r.Notes, fmt.Sprintf("the nodes (%.0f%%) and nats-server (%.0f%%) filled the proxy's core", 100*m["sut_cpu_util"]/sutCores, 100*m["nats_cpu_util"]/sutCores))
	}
}
