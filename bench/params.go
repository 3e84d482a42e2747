package main

import (
	"flag"
	"time"
)

// params are the sizes of every scenario.
type params struct {
	SrcIPs int

	HoldConns   int
	ConnectRate int
	// ConnectInflight caps unanswered handshakes while connecting.
	ConnectInflight int
	HoldChannels    int
	HoldSettle      time.Duration
	HoldIdle        time.Duration

	// The burst scenarios (burst, burst-ws).
	BurstConns      int
	BurstWSConns    int
	BurstInflight   int
	BurstSettle     time.Duration
	BurstSettled    time.Duration
	BurstProfileDir string

	FanoutSubs      int
	FanoutRate      float64
	FanoutMsgs      int
	FanoutMaxMsgs   int
	FanoutBatch     int
	FanoutBatchMsgs int

	// The stalled-readers scenario (fanout-stalled).
	StalledSubs  int
	StalledMsgs  int
	StalledBytes int
	StalledRate  float64

	// The large fan-out scenarios (fanout-rate-10k, fanout-max-10k).
	BigSubs    int
	BigRate    float64
	BigMsgs    int
	BigMaxMsgs int

	PassConns    int
	PassDuration time.Duration

	// The cluster scenarios (cluster, cluster-1node, cluster-local,
	// cluster-publish).
	ClusterNodes       int
	ClusterSubs        int
	ClusterSingleSubs  int
	ClusterMsgs        int
	ClusterRate        float64
	ClusterConnectRate int
	ClusterGenSubs     int
	ClusterPubSubs     int
	ClusterPubMsgs     int
	ClusterPublishers  int

	PollClients    int
	PollDuration   time.Duration
	PollPublishers int
	PollTimeout    int
	PollDelay      time.Duration
}

// register defines a flag for every size.
func (p *params) register(fs *flag.FlagSet) {
	fs.IntVar(&p.SrcIPs, "src-ips", 8, "client source addresses 127.0.0.2 and on (28,232 ports each)")
	fs.IntVar(&p.HoldConns, "hold-conns", 8000, "hold and hold-ws: idle clients (plain Caddy needs 2 fds each: keep under 9,900)")
	fs.IntVar(&p.ConnectRate, "connect-rate", 500, "hold and fanout: new connections per second (Pushpin's accept path fails over ~800/s on one core)")
	fs.IntVar(&p.ConnectInflight, "connect-inflight", 50, "hold and fanout: at most this many handshakes unanswered while connecting (0: no limit); a proxy slower than -connect-rate is then driven at its own pace")
	fs.IntVar(&p.HoldChannels, "hold-channels", 100, "hold and hold-ws: channels the clients spread over")
	fs.DurationVar(&p.HoldSettle, "hold-settle", 3*time.Second, "hold and hold-ws: wait after the last connect before measuring")
	fs.DurationVar(&p.HoldIdle, "hold-idle", 10*time.Second, "hold and hold-ws: idle window over which CPU is measured")
	fs.IntVar(&p.BurstConns, "burst-conns", 10000, "burst: SSE clients connected with no pacing")
	fs.IntVar(&p.BurstWSConns, "burst-ws-conns", 5000, "burst-ws: WebSocket clients connected with no pacing")
	fs.IntVar(&p.BurstInflight, "burst-inflight", 200, "burst and burst-ws: at most this many handshakes unanswered (0: no limit)")
	fs.DurationVar(&p.BurstSettle, "burst-settle", time.Second, "burst and burst-ws: first measurement, this long after the last connect")
	fs.DurationVar(&p.BurstSettled, "burst-settled", 30*time.Second, "burst and burst-ws: second measurement, this long after the last connect")
	fs.StringVar(&p.BurstProfileDir, "burst-profile-dir", "", "burst and burst-ws: save caddy-grip's heap profiles and goroutine stacks at both measurements in this directory")
	fs.IntVar(&p.FanoutSubs, "fanout-subs", 1000, "fanout: subscribers on the one channel")
	fs.Float64Var(&p.FanoutRate, "fanout-rate", 20, "fanout-rate: messages per second")
	fs.IntVar(&p.FanoutMsgs, "fanout-msgs", 200, "fanout-rate: messages")
	fs.IntVar(&p.FanoutMaxMsgs, "fanout-max-msgs", 1000, "fanout-max: messages")
	fs.IntVar(&p.FanoutBatch, "fanout-batch", 10, "fanout-batch: messages per publish request")
	fs.IntVar(&p.FanoutBatchMsgs, "fanout-batch-msgs", 1000, "fanout-batch: messages")
	fs.IntVar(&p.StalledSubs, "stalled-subs", 200, "fanout-stalled: healthy subscribers; 1% and 10% as many stalled readers are added in turn")
	fs.IntVar(&p.StalledMsgs, "stalled-msgs", 2000, "fanout-stalled: messages per mode and share")
	fs.IntVar(&p.StalledBytes, "stalled-bytes", 4096, "fanout-stalled: bytes per message, enough to fill a stalled reader's socket buffers")
	fs.Float64Var(&p.StalledRate, "stalled-rate", 200, "fanout-stalled: messages per second of the fixed-rate mode")
	fs.IntVar(&p.BigSubs, "big-subs", 10000, "fanout-rate-10k and fanout-max-10k: subscribers on the one channel (the bench holds one fd each: keep under ~19,500)")
	fs.Float64Var(&p.BigRate, "big-rate", 2, "fanout-rate-10k: messages per second")
	fs.IntVar(&p.BigMsgs, "big-msgs", 60, "fanout-rate-10k: messages")
	fs.IntVar(&p.BigMaxMsgs, "big-max-msgs", 100, "fanout-max-10k: messages")
	fs.IntVar(&p.ClusterNodes, "cluster-nodes", 3, "cluster and cluster-publish: caddy-grip nodes, one process each, joined by one nats-server")
	fs.IntVar(&p.ClusterSubs, "cluster-subs", 50000, "cluster: SSE subscribers in all on the one channel, spread evenly over the nodes (each node holds one fd per subscriber: keep under ~19,500 per node)")
	fs.IntVar(&p.ClusterSingleSubs, "cluster-single-subs", 10000, "cluster-1node and cluster-local: subscribers on the single node")
	fs.IntVar(&p.ClusterMsgs, "cluster-msgs", 100, "cluster, cluster-1node, cluster-local: messages, published on the first node")
	fs.Float64Var(&p.ClusterRate, "cluster-rate", 0.5, "cluster, cluster-1node, cluster-local: messages per second (open loop; at 50,000 subscribers on one proxy core, 1/s is past what the nodes sweep)")
	fs.IntVar(&p.ClusterConnectRate, "cluster-connect-rate", 1500, "cluster scenarios: new connections per second, over all generator processes")
	fs.IntVar(&p.ClusterGenSubs, "cluster-gen-subs", 18000, "cluster scenarios: at most this many subscribers per generator process (each holds one fd per subscriber)")
	fs.IntVar(&p.ClusterPubSubs, "cluster-pub-subs", 1, "cluster-publish: subscribers per node")
	fs.IntVar(&p.ClusterPubMsgs, "cluster-pub-msgs", 20000, "cluster-publish: messages per phase (all on one node, then spread over the nodes)")
	fs.IntVar(&p.ClusterPublishers, "cluster-publishers", 16, "cluster-publish: concurrent publish connections")
	fs.IntVar(&p.PassConns, "pass-conns", 64, "passthrough: keep-alive connections")
	fs.DurationVar(&p.PassDuration, "pass-duration", 10*time.Second, "passthrough: measured time")
	fs.IntVar(&p.PollClients, "poll-clients", 100, "longpoll: clients, one channel each (Pushpin peaks near 100 on one core: 300 gives it fewer cycles/s and 502s)")
	fs.DurationVar(&p.PollDuration, "poll-duration", 10*time.Second, "longpoll: measured time")
	fs.IntVar(&p.PollPublishers, "poll-publishers", 4, "longpoll: concurrent publish connections")
	fs.DurationVar(&p.PollDelay, "poll-delay", 0, "longpoll: wait this long after a hold before publishing (0: at once; a diagnostic that steps around the subscribe race)")
	fs.IntVar(&p.PollTimeout, "poll-timeout", 5, "longpoll: Grip-Timeout of holds, seconds (caddy-grip's minimum is 5)")
}

// shrink sets tiny sizes: every scenario runs in seconds (-small).
func (p *params) shrink() {
	p.HoldConns, p.ConnectRate, p.HoldSettle, p.HoldIdle, p.HoldChannels = 200, 1000, time.Second, 2*time.Second, 10
	p.FanoutSubs, p.FanoutMsgs, p.FanoutMaxMsgs, p.FanoutBatchMsgs, p.FanoutRate = 50, 40, 60, 100, 40
	p.BigSubs, p.BigMsgs, p.BigMaxMsgs, p.BigRate = 200, 10, 20, 10
	p.StalledSubs, p.StalledMsgs, p.StalledRate = 100, 100, 200
	p.PassConns, p.PassDuration = 8, 2*time.Second
	p.PollClients, p.PollDuration = 50, 3*time.Second
	p.BurstConns, p.BurstWSConns, p.BurstSettled = 300, 200, 3*time.Second
	p.ClusterSubs, p.ClusterSingleSubs, p.ClusterMsgs, p.ClusterRate = 300, 100, 20, 20
	p.ClusterPubSubs, p.ClusterPubMsgs = 5, 500
}
