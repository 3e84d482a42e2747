package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/caddy-grip/grip/caddygrip"
	"github.com/caddy-grip/grip/internal/freeport"
)

// The smoke test runs every scenario at a tiny size against caddy-grip
// running in this process, and checks correctness only: every message
// arrives once and in order, and the counts add up. It asserts nothing
// about timing. Its ports are picked free (freeport, and the kernel's for
// the origin), so that it never meets a bench or another test.

// TestMain lets the test binary be the cluster scenarios' child processes:
// a generator (GRIP_BENCH_CHILD=gen) or a caddy-grip node
// (GRIP_BENCH_CHILD=caddy, with caddy's own command line), so the cluster
// smoke test needs no separate build.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "gen":
		os.Exit(runGenChild())
	case "caddy":
		caddycmd.Main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// inProcTarget is caddy-grip loaded into the test process.
type inProcTarget struct{ client, publish string }

// Name, ClientAddr, PublishAddr, AdminAddr and PIDs implement Target.
func (inProcTarget) Name() string          { return "caddy-grip(in-process)" }
func (t inProcTarget) ClientAddr() string  { return t.client }
func (t inProcTarget) PublishAddr() string { return t.publish }
func (inProcTarget) AdminAddr() string     { return "" }
func (inProcTarget) PIDs() []int           { return []int{os.Getpid()} }

// startInProcessCaddy loads caddy-grip in front of origin on two free
// ports and waits until it proxies.
func startInProcessCaddy(t *testing.T, origin string) inProcTarget {
	t.Helper()
	addrs, err := freeport.Addrs(2)
	if err != nil {
		t.Fatal(err)
	}
	target := inProcTarget{client: addrs[0], publish: addrs[1]}
	cfg := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	grace_period 1s
	log {
		level ERROR
	}
}
http://%s {
	grip
	reverse_proxy %s {
		flush_interval -1
	}
}
http://%s {
	grip_publish
}
`, target.client, origin, target.publish)
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v", err)
	}
	if err := caddy.Load(adapted, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	if !waitFor(20*time.Second, func() bool { return probePass(target.client) == nil }) {
		t.Fatalf("caddy-grip does not proxy to the origin: %v", probePass(target.client))
	}
	return target
}

func smokeParams() *params {
	return &params{
		SrcIPs:    2,
		HoldConns: 20, ConnectRate: 2000, ConnectInflight: 5, HoldChannels: 4, HoldSettle: 50 * time.Millisecond, HoldIdle: 100 * time.Millisecond,
		FanoutSubs: 10, FanoutRate: 200, FanoutMsgs: 20, FanoutMaxMsgs: 30, FanoutBatch: 4, FanoutBatchMsgs: 30,
		BigSubs: 25, BigRate: 100, BigMsgs: 10, BigMaxMsgs: 15,
		BurstConns: 30, BurstWSConns: 20, BurstInflight: 10, BurstSettle: 50 * time.Millisecond, BurstSettled: 100 * time.Millisecond,
		StalledSubs: 20, StalledMsgs: 30, StalledBytes: 4096, StalledRate: 300,
		PassConns: 4, PassDuration: 300 * time.Millisecond,
		PollClients: 5, PollDuration: 1500 * time.Millisecond, PollPublishers: 2, PollTimeout: 5,
	}
}

func TestEveryScenarioDeliversCorrectlyThroughCaddyGrip(t *testing.T) {
	p := smokeParams()
	o, err := startOrigin("127.0.0.1:0", p.PollTimeout)
	if err != nil {
		t.Fatalf("origin: %v", err)
	}
	t.Cleanup(o.close)
	target := startInProcessCaddy(t, o.Addr())

	seq := 0
	env := func() *runEnv {
		seq++
		return &runEnv{target: target, origin: o, src: sourceIPs(p.SrcIPs), nonce: fmt.Sprintf("s%d", seq), p: p}
	}
	metric := func(t *testing.T, r *Result, name string, want float64) {
		t.Helper()
		if got := r.Metrics[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	noErrors := func(t *testing.T, r *Result) {
		t.Helper()
		for _, e := range r.Errors {
			t.Errorf("%s: %s", r.Scenario, e)
		}
	}

	for _, c := range []struct {
		name string
		tr   transport
	}{{"hold", transportSSE}, {holdWS, transportWS}} {
		t.Run(c.name, func(t *testing.T) {
			r := runHold(env(), c.tr)
			noErrors(t, r)
			metric(t, r, "conns_up", float64(p.HoldConns))
			metric(t, r, "conns_failed", 0)
			metric(t, r, "probe_reached", float64(p.HoldConns))
		})
	}
	for _, c := range []struct {
		name  string
		tr    transport
		conns int
	}{{burstSSE, transportSSE, p.BurstConns}, {burstWS, transportWS, p.BurstWSConns}} {
		t.Run(c.name, func(t *testing.T) {
			r := runBurst(env(), c.tr)
			noErrors(t, r)
			metric(t, r, "conns_up", float64(c.conns))
			metric(t, r, "conns_failed", 0)
			metric(t, r, "probe_reached", float64(c.conns))
			for _, m := range []string{"rss_kb_per_conn_1s", "rss_kb_per_conn_30s"} {
				if _, ok := r.Metrics[m]; !ok {
					t.Errorf("no %s", m)
				}
			}
		})
	}
	for _, c := range []struct {
		mode       string
		subs, msgs int
	}{
		{fanoutRate, p.FanoutSubs, p.FanoutMsgs},
		{fanoutMax, p.FanoutSubs, p.FanoutMaxMsgs},
		{fanoutBatch, p.FanoutSubs, p.FanoutBatchMsgs},
		{fanoutRate10k, p.BigSubs, p.BigMsgs},
		{fanoutMax10k, p.BigSubs, p.BigMaxMsgs},
	} {
		mode, m := c.mode, c.msgs
		t.Run(mode, func(t *testing.T) {
			r := runFanout(env(), mode)
			noErrors(t, r)
			want := float64(c.subs * m)
			metric(t, r, "expected", want)
			metric(t, r, "delivered", want)
			metric(t, r, "lost", 0)
			metric(t, r, "duplicated", 0)
			metric(t, r, "reordered", 0)
			metric(t, r, "publish_errors", 0)
			metric(t, r, "lat_samples", want)
		})
	}
	t.Run(fanoutStalled, func(t *testing.T) {
		r := runStalled(env())
		noErrors(t, r)
		for _, mode := range []string{"max", "rate"} {
			for _, share := range stalledShares {
				prefix := fmt.Sprintf("%s_%dpct_", mode, share)
				want := float64(p.StalledSubs * p.StalledMsgs)
				metric(t, r, prefix+"delivered", want)
				metric(t, r, prefix+"lost", 0)
				metric(t, r, prefix+"stalled", float64((p.StalledSubs*share+99)/100))
			}
		}
	})
	t.Run("passthrough", func(t *testing.T) {
		r := runPassthrough(env())
		noErrors(t, r)
		metric(t, r, "errors", 0)
		if r.Metrics["requests"] < 1 || r.Metrics["lat_samples"] != r.Metrics["requests"] {
			t.Errorf("requests %v, latency samples %v", r.Metrics["requests"], r.Metrics["lat_samples"])
		}
	})
	t.Run("longpoll", func(t *testing.T) {
		before := caddygrip.LookupHub(caddygrip.DefaultHub).Stats()
		r := runLongpoll(env())
		after := caddygrip.LookupHub(caddygrip.DefaultHub).Stats()
		metric(t, r, "duplicated", 0)
		metric(t, r, "skipped", 0)
		metric(t, r, "errors", 0)
		// Every message published reached its client, through the proxy or,
		// after a hold timed out, from the origin.
		metric(t, r, "undelivered", 0)
		if pub := r.Metrics["published"]; pub < 1 || r.Metrics["received_total"] != pub {
			t.Errorf("published %v, received %v", pub, r.Metrics["received_total"])
		}
		gap := r.Metrics["gap_losses"]
		published, delivered := after.Published-before.Published, after.Delivered-before.Delivered
		if gap > 0 {
			t.Errorf("%v of %v long-poll publishes lost in the reconnect gap (hub delivered %d of %d)", gap, r.Metrics["published"], delivered, published)
		}
	})
}

// The cluster scenarios at a tiny size: three caddy-grip nodes (this test
// binary run as caddy) joined by a NATS server embedded in the test, on
// random loopback ports; generators in child processes. Correctness only.
func TestClusterScenariosDeliverEveryMessageOnEveryNode(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	o, err := startOrigin("127.0.0.1:0", 5)
	if err != nil {
		t.Fatalf("origin: %v", err)
	}
	t.Cleanup(o.close)
	p := &params{
		SrcIPs: 2, ConnectInflight: 10,
		ClusterNodes: 3, ClusterSubs: 31, ClusterSingleSubs: 12, ClusterMsgs: 15, ClusterRate: 100,
		ClusterConnectRate: 2000, ClusterGenSubs: 6, ClusterPubSubs: 2, ClusterPubMsgs: 40, ClusterPublishers: 3,
	}
	opt := clusterOptions{
		targetOptions: targetOptions{CaddyBin: self, OriginAddr: o.Addr(), WorkDir: t.TempDir()},
		NATSURL:       ns.ClientURL(), ChildBin: self, CaddyEnv: []string{childEnv + "=caddy"},
	}
	for i, c := range []struct {
		name       string
		subs, msgs int
	}{
		{clusterFanout, p.ClusterSubs, p.ClusterMsgs},
		{cluster1Node, p.ClusterSingleSubs, p.ClusterMsgs},
		{clusterLocal, p.ClusterSingleSubs, p.ClusterMsgs},
		{clusterPublish, p.ClusterNodes * p.ClusterPubSubs, 2 * p.ClusterPubMsgs},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &clusterEnv{opt: opt, p: p, nonce: fmt.Sprintf("k%d", i), seq: i}
			r := runClusterScenario(e, c.name, func(stopper) {})
			for _, err := range r.Errors {
				t.Errorf("%s: %s", c.name, err)
			}
			want := float64(c.subs * c.msgs)
			for name, v := range map[string]float64{
				"conns_up": float64(c.subs), "conns_failed": 0, "expected": want, "delivered_ratio": 1,
				"lost": 0, "duplicated": 0, "publish_errors": 0, "lat_samples": want,
			} {
				if got := r.Metrics[name]; got != v {
					t.Errorf("%s = %v, want %v", name, got, v)
				}
			}
			if c.name != clusterPublish && r.Metrics["reordered"] != 0 {
				t.Errorf("reordered = %v", r.Metrics["reordered"])
			}
			if c.name == clusterFanout && r.Params["generator_processes"] != 6 {
				t.Errorf("generator processes = %v, want 6 (2 per node at 6 per child)", r.Params["generator_processes"])
			}
		})
	}
}
