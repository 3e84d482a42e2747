// Command bench measures caddy-grip against Pushpin and plain Caddy
// reverse_proxy on one box. It runs its own GRIP origin and load generator
// and starts each proxy itself (pinned to its own CPU), then runs:
//
//	hold            N idle SSE clients: proxy RSS/PSS and kernel memory per conn
//	hold-ws         the same with WebSocket clients (WebSocket-over-HTTP to the origin)
//	burst           10,000 SSE clients connected with no pacing: RSS per conn 1 s and 30 s after
//	burst-ws        the same with 5,000 WebSocket clients
//	fanout-rate     N subscribers on one channel, M messages at a fixed rate
//	fanout-max      the same, published as fast as the proxy accepts them
//	fanout-batch    the same with 10 messages per publish request
//	fanout-rate-10k fanout-rate at 10,000 subscribers, 2 messages/s
//	fanout-max-10k  fanout-max at 10,000 subscribers
//	passthrough     non-GRIP requests/s and latency
//	longpoll        request -> publish -> response -> next request cycles/s
//
// and, only when named (they need nats-server and several minutes each):
//
//	cluster         3 caddy-grip nodes joined by NATS, 50,000 SSE subscribers
//	                over them on one channel, 100 messages at a fixed rate
//	cluster-1node   one node with the same NATS option, 10,000 subscribers
//	cluster-local   one node without NATS (the local bus), 10,000 subscribers
//	cluster-publish publishes/s entering on one node vs spread over the nodes
//
// Each run writes one JSON line (parameters, metrics, bound, machine facts)
// and the whole invocation a
// markdown table of medians over the repetitions. The full comparison:
//
//	go run ./bench -build -targets caddy-grip,caddy,pushpin -scenarios all \
//	    -reps 3 -out bench/results.jsonl -md bench/results.md
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"
)

// scenarioNames in the order they run.
var scenarioNames = []string{"hold", holdWS, burstSSE, burstWS, fanoutRate, fanoutMax, fanoutBatch, fanoutStalled, fanoutRate10k, fanoutMax10k, "passthrough", "longpoll"}

// gripOnly reports a scenario that needs a GRIP publish API (plain Caddy
// has no fan-out or long-poll).
func gripOnly(name string) bool {
	switch name {
	case fanoutRate, fanoutMax, fanoutBatch, fanoutStalled, fanoutRate10k, fanoutMax10k, "longpoll", burstSSE, burstWS:
		return true
	}
	return false
}

// runScenario runs one scenario; ok is false when the target cannot run it.
func runScenario(e *runEnv, name string) (r *Result, ok bool) {
	if gripOnly(name) && e.target.PublishAddr() == "" {
		return nil, false
	}
	switch name {
	case "hold":
		return runHold(e, transportSSE), true
	case holdWS:
		return runHold(e, transportWS), true
	case burstSSE:
		return runBurst(e, transportSSE), true
	case burstWS:
		return runBurst(e, transportWS), true
	case fanoutRate, fanoutMax, fanoutBatch, fanoutRate10k, fanoutMax10k:
		return runFanout(e, name), true
	case fanoutStalled:
		return runStalled(e), true
	case "passthrough":
		return runPassthrough(e), true
	case "longpoll":
		return runLongpoll(e), true
	}
	return nil, false
}

// runOpts are the invocation's settings other than scenario sizes.
type runOpts struct {
	targets, scenarios string
	reps               int
	out, md            string
	caddyBin, ppBin    string
	build              bool
	pin                string
	origin             string
	sutGomaxprocs      int
	cpuProfile         string
	keepWork           bool
	pushpinLogLevel    int
	natsBin, natsURL   string
}

func main() {
	if os.Getenv(childEnv) == "gen" {
		os.Exit(runGenChild()) // a generator process of a cluster scenario
	}
	var (
		p     params
		o     runOpts
		small = flag.Bool("small", false, "tiny sizes: a quick check that everything runs")
	)
	flag.StringVar(&o.targets, "targets", "caddy-grip,caddy,pushpin", "targets to measure, in order: caddy-grip, caddy (plain reverse_proxy), pushpin")
	flag.StringVar(&o.scenarios, "scenarios", "all", "comma-separated scenarios, or all: "+strings.Join(scenarioNames, ","))
	flag.IntVar(&o.reps, "reps", 3, "repetitions; the table shows medians")
	flag.StringVar(&o.out, "out", "bench/results.jsonl", "JSON lines output (overwritten)")
	flag.StringVar(&o.md, "md", "bench/results.md", "markdown table output (overwritten); empty: stdout only")
	flag.StringVar(&o.caddyBin, "caddy", "./caddy", "caddy binary built with caddy-grip")
	flag.StringVar(&o.ppBin, "pushpin", "pushpin", "pushpin runner binary")
	flag.BoolVar(&o.build, "build", false, "rebuild ./caddy with ./xcaddy.sh build first, so the current code is measured")
	flag.StringVar(&o.pin, "pin", "0:1", "CPU lists proxy:generator for taskset, or none")
	flag.StringVar(&o.origin, "origin", defaultOriginAddr, "address of the bench's GRIP origin (port 0: a free one)")
	flag.IntVar(&o.sutGomaxprocs, "sut-gomaxprocs", 0, "GOMAXPROCS of the measured Caddy (0: the number of CPUs it is pinned to); a diagnostic")
	flag.IntVar(&o.pushpinLogLevel, "pushpin-log-level", 1, "Pushpin's log_level (a diagnostic: 3 logs every request; measure at 1)")
	flag.BoolVar(&o.keepWork, "keep", false, "keep the proxies' configs and logs (the temporary directory is printed)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process (generator and origin) to this file")
	flag.StringVar(&o.natsBin, "nats-server", "", "cluster scenarios: the nats-server binary (default: nats-server in PATH, or /usr/sbin/nats-server)")
	flag.StringVar(&o.natsURL, "nats-url", "", "cluster scenarios: use this running NATS server instead of starting one (its CPU is then not measured)")
	p.register(flag.CommandLine)
	flag.Parse()
	if *small {
		p.shrink()
	}
	if err := run(p, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(p params, opt runOpts) error {
	sutCPUs, genCPUs, err := parsePin(opt.pin)
	if err != nil {
		return err
	}
	if genCPUs != "" && os.Getenv("GRIP_BENCH_PINNED") == "" {
		return reexecPinned(genCPUs)
	}
	if genCPUs != "" {
		genCores, sutCores = float64(cpuCount(genCPUs)), float64(cpuCount(sutCPUs))
		sutCPUList = parseCPUList(sutCPUs)
	} else {
		genCores, sutCores = float64(runtime.NumCPU()), float64(runtime.NumCPU())
	}
	if opt.cpuProfile != "" {
		f, err := os.Create(opt.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	targetList, scenarioList, reps, out, md := opt.targets, opt.scenarios, opt.reps, opt.out, opt.md
	caddyBin, ppBin, build, originAddr := opt.caddyBin, opt.ppBin, opt.build, opt.origin
	names := splitList(targetList)
	scen := scenarioNames
	if scenarioList != "all" {
		scen = splitList(scenarioList)
		for _, s := range scen {
			if !contains(scenarioNames, s) && !isCluster(s) {
				return fmt.Errorf("unknown scenario %q (want %s)", s, strings.Join(append(scenarioNames, clusterScenarioNames...), ", "))
			}
		}
	}
	for _, n := range names {
		if n != targetGrip && n != targetCaddy && n != targetPushpin {
			return fmt.Errorf("unknown target %q", n)
		}
	}
	if err := checkFDs(p, names, scen); err != nil {
		return err
	}
	if build {
		fmt.Fprintln(os.Stderr, "bench: building ./caddy (./xcaddy.sh build)")
		cmd := exec.Command("./xcaddy.sh", "build")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building caddy: %w", err)
		}
	}
	if contains(names, targetGrip) || contains(names, targetCaddy) {
		if err := checkCaddyBin(caddyBin); err != nil {
			return err
		}
	}
	caddyAbs, _ := filepath.Abs(caddyBin)

	o, err := startOrigin(originAddr, p.PollTimeout)
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	defer o.close()
	work, err := os.MkdirTemp("", "grip-bench-")
	if err != nil {
		return err
	}
	if opt.keepWork {
		fmt.Fprintln(os.Stderr, "bench: configs and logs in", work)
	} else {
		defer os.RemoveAll(work)
	}

	jf, err := os.Create(out)
	if err != nil {
		return err
	}
	defer jf.Close()
	enc := json.NewEncoder(jf)
	machine := machineFacts()
	machine["pin_sut"], machine["pin_generator"] = orNone(sutCPUs), orNone(genCPUs)
	argv0 := os.Args[0]
	if strings.Contains(argv0, "go-build") {
		argv0 = "go run ./bench" // the temporary binary of go run
	}
	machine["command"] = strings.Join(append([]string{argv0}, os.Args[1:]...), " ")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// A ^C or kill stops the proxy being measured before the bench exits.
	var curMu sync.Mutex
	var cur stopper
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		curMu.Lock()
		if cur != nil {
			cur.stop()
		}
		o.close()
		fmt.Fprintf(os.Stderr, "bench: %v: stopped\n", s)
		os.Exit(1)
	}()
	setCur := func(t stopper) { curMu.Lock(); cur = t; curMu.Unlock() }
	var results []*Result
	start := time.Now()
	loadStart := loadAvg()
	seq := 0
	for rep := 1; rep <= reps; rep++ {
		for _, s := range scen {
			if isCluster(s) {
				if !contains(names, targetGrip) {
					continue
				}
				seq++
				e := &clusterEnv{
					opt: clusterOptions{
						targetOptions: targetOptions{CaddyBin: caddyAbs, SUTCPUs: sutCPUs, SUTGomaxprocs: opt.sutGomaxprocs,
							OriginAddr: o.Addr(), WorkDir: work},
						NATSBin: opt.natsBin, NATSURL: opt.natsURL, ChildBin: self,
					},
					p: &p, nonce: fmt.Sprintf("%x%d", start.Unix()&0xffff, seq), seq: seq,
				}
				la := loadAvg()
				r := runClusterScenario(e, s, setCur)
				r.Rep = rep
				r.Metrics["loadavg_start"], r.Metrics["loadavg_end"] = la, loadAvg()
				r.Env = clusterEnvFacts(machine, caddyAbs)
				results = append(results, r)
				fmt.Fprintln(os.Stderr, r)
				if err := enc.Encode(r); err != nil {
					return err
				}
				continue
			}
			for _, name := range names {
				if gripOnly(s) && name == targetCaddy {
					continue
				}
				seq++
				t, err := startTarget(name, targetOptions{
					CaddyBin: caddyAbs, PushpinBin: ppBin, SUTCPUs: sutCPUs,
					SUTGomaxprocs: opt.sutGomaxprocs, OriginAddr: o.Addr(), WorkDir: work,
					PushpinLogLevel: opt.pushpinLogLevel,
				})
				if err != nil {
					return err
				}
				if t.AdminAddr() != "" {
					fmt.Fprintf(os.Stderr, "bench: %s: admin endpoint (pprof) on %s\n", name, t.AdminAddr())
				}
				setCur(t)
				e := &runEnv{
					target: t, origin: o, src: sourceIPs(p.SrcIPs),
					nonce: fmt.Sprintf("%x%d", start.Unix()&0xffff, seq), p: &p,
				}
				la := loadAvg()
				r, _ := runScenario(e, s)
				t.stop()
				setCur(nil)
				r.Rep = rep
				r.Metrics["loadavg_start"], r.Metrics["loadavg_end"] = la, loadAvg()
				r.Env = targetEnv(machine, t)
				results = append(results, r)
				fmt.Fprintln(os.Stderr, r)
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
		}
	}
	table := markdownReport(results, machine, start, loadStart, loadAvg())
	fmt.Print(table)
	if md != "" {
		return os.WriteFile(md, []byte(table), 0o644)
	}
	return nil
}

// checkFDs refuses sizes that cannot fit the per-process fd limit (20,000
// on the box of BENCHMARKS.md). The bench process holds the
// client end of every connection, plus the origin's end of every proxied
// one; a proxy holds one fd per client (two for plain Caddy, which also
// dials the origin per held client).
func checkFDs(p params, names, scen []string) error {
	soft, _ := fdLimit()
	const spare = 200 // publishers, origin keep-alive pool, files
	if (contains(scen, "hold") || contains(scen, holdWS)) && contains(names, targetCaddy) && p.HoldConns*2+spare > int(soft) {
		return fmt.Errorf("-hold-conns %d: plain Caddy and the bench's origin need 2 fds per held client, over the fd limit %d", p.HoldConns, soft)
	}
	if (contains(scen, fanoutRate10k) || contains(scen, fanoutMax10k)) && p.BigSubs+spare > int(soft) {
		return fmt.Errorf("-big-subs %d: the bench holds one fd per subscriber, over the fd limit %d", p.BigSubs, soft)
	}
	if (contains(scen, burstSSE) || contains(scen, burstWS)) && max(p.BurstConns, p.BurstWSConns)+spare > int(soft) {
		return fmt.Errorf("-burst-conns %d / -burst-ws-conns %d: the bench holds one fd per client, over the fd limit %d", p.BurstConns, p.BurstWSConns, soft)
	}
	for _, s := range scen {
		if !isCluster(s) {
			continue
		}
		nodes := max(p.ClusterNodes, 1)
		if s == clusterFanout && (p.ClusterSubs+nodes-1)/nodes+spare > int(soft) {
			return fmt.Errorf("-cluster-subs %d over %d nodes: each node holds one fd per subscriber, over the fd limit %d", p.ClusterSubs, nodes, soft)
		}
		if (s == cluster1Node || s == clusterLocal) && p.ClusterSingleSubs+spare > int(soft) {
			return fmt.Errorf("-cluster-single-subs %d: the node holds one fd per subscriber, over the fd limit %d", p.ClusterSingleSubs, soft)
		}
		if p.ClusterGenSubs < 1 || p.ClusterGenSubs+spare > int(soft) {
			return fmt.Errorf("-cluster-gen-subs %d: a generator process holds one fd per subscriber, over the fd limit %d", p.ClusterGenSubs, soft)
		}
		if p.ClusterRate <= 0 {
			return fmt.Errorf("-cluster-rate %g: want messages per second above 0", p.ClusterRate)
		}
	}
	if p.HoldConns+spare > int(soft) || p.FanoutSubs+spare > int(soft) {
		return fmt.Errorf("-hold-conns %d / -fanout-subs %d: over the fd limit %d", p.HoldConns, p.FanoutSubs, soft)
	}
	return nil
}

// reexecPinned runs this program again under taskset on the generator's
// CPUs: the Go runtime then sizes GOMAXPROCS to them, and every thread is
// pinned (sched_setaffinity from Go would pin only the calling thread).
func reexecPinned(cpus string) error {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("pinning needs taskset (or -pin none): %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := append([]string{taskset, "-c", cpus, self}, os.Args[1:]...)
	return syscall.Exec(taskset, argv, append(os.Environ(), "GRIP_BENCH_PINNED=1"))
}

func parsePin(pin string) (sut, gen string, err error) {
	if pin == "none" || pin == "" {
		return "", "", nil
	}
	sut, gen, ok := strings.Cut(pin, ":")
	if !ok || sut == "" || gen == "" {
		return "", "", fmt.Errorf("-pin %q: want proxyCPUs:generatorCPUs such as 0:1, or none", pin)
	}
	return sut, gen, nil
}

// checkCaddyBin makes sure the caddy binary exists and has the grip module.
func checkCaddyBin(bin string) error {
	out, err := exec.Command(bin, "list-modules").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s list-modules: %w (build it: ./xcaddy.sh build, or pass -build)", bin, err)
	}
	if !strings.Contains(string(out), "http.handlers.grip") {
		return errors.New(bin + " has no http.handlers.grip module: build it with ./xcaddy.sh build")
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// machineFacts are the facts every result carries.
func machineFacts() map[string]string {
	f := map[string]string{
		"go":     runtime.Version(),
		"cpus":   fmt.Sprint(strings.Count(readFile("/proc/cpuinfo"), "processor\t")),
		"kernel": strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
	}
	for _, line := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if strings.HasPrefix(line, "model name") {
			if _, v, ok := strings.Cut(line, ":"); ok {
				f["cpu_model"] = strings.TrimSpace(v)
			}
			break
		}
	}
	for _, line := range strings.Split(readFile("/proc/meminfo"), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			f["mem_total_kb"] = fmt.Sprint(kbField(line))
		}
	}
	soft, hard := fdLimit()
	f["fd_limit"] = fmt.Sprintf("%d/%d", soft, hard)
	f["date"] = time.Now().UTC().Format(time.RFC3339)
	return f
}

// stopper is what a ^C stops: a target or a cluster.
type stopper interface{ stop() }

// clusterEnvFacts are the machine facts plus the nodes' version.
func clusterEnvFacts(machine map[string]string, caddyBin string) map[string]string {
	return targetEnv(machine, &procTarget{version: commandOutput(caddyBin, "version")})
}

func targetEnv(machine map[string]string, t *procTarget) map[string]string {
	env := make(map[string]string, len(machine)+2)
	for k, v := range machine {
		env[k] = v
	}
	env["version"] = t.version
	if t.gomaxprocs != "" {
		env["sut_gomaxprocs"] = t.gomaxprocs
	}
	return env
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
