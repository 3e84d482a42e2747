// Command bench measures caddy-grip against Pushpin and plain Caddy
// reverse_proxy on one box. It runs its own GRIP origin and load generator
// and starts each proxy itself (pinned to its own CPU), then runs:
//
//	hold         N idle SSE clients: proxy RSS/PSS and kernel memory per conn
//	fanout-rate  N subscribers on one channel, M messages at a fixed rate
//	fanout-max   the same, published as fast as the proxy accepts them
//	fanout-batch the same with 10 messages per publish request
//	passthrough  non-GRIP requests/s and latency
//	longpoll     request -> publish -> response -> next request cycles/s
//
// Each run writes one JSON line (PERF-NOTES B6) and the whole invocation a
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
	"strings"
	"sync"
	"syscall"
	"time"
)

// params are the sizes of every scenario.
type params struct {
	SrcIPs int

	HoldConns    int
	ConnectRate  int
	HoldChannels int
	HoldSettle   time.Duration
	HoldIdle     time.Duration

	FanoutSubs      int
	FanoutRate      float64
	FanoutMsgs      int
	FanoutMaxMsgs   int
	FanoutBatch     int
	FanoutBatchMsgs int

	PassConns    int
	PassDuration time.Duration

	PollClients    int
	PollDuration   time.Duration
	PollPublishers int
	PollTimeout    int
	PollDelay      time.Duration
}

// scenarioNames in the order they run.
var scenarioNames = []string{"hold", fanoutRate, fanoutMax, fanoutBatch, "passthrough", "longpoll"}

// runScenario runs one scenario; ok is false when the target cannot run it
// (plain Caddy has no fan-out or long-poll).
func runScenario(e *runEnv, name string) (r *Result, ok bool) {
	grip := e.target.PublishAddr() != ""
	switch name {
	case "hold":
		return runHold(e), true
	case fanoutRate, fanoutMax, fanoutBatch:
		if !grip {
			return nil, false
		}
		return runFanout(e, name), true
	case "passthrough":
		return runPassthrough(e), true
	case "longpoll":
		if !grip {
			return nil, false
		}
		return runLongpoll(e), true
	}
	return nil, false
}

func main() {
	var (
		p         params
		targets   = flag.String("targets", "caddy-grip,caddy,pushpin", "targets to measure, in order: caddy-grip, caddy (plain reverse_proxy), pushpin")
		scenarios = flag.String("scenarios", "all", "comma-separated scenarios, or all: "+strings.Join(scenarioNames, ","))
		reps      = flag.Int("reps", 3, "repetitions; the table shows medians")
		out       = flag.String("out", "bench/results.jsonl", "JSON lines output (overwritten)")
		md        = flag.String("md", "bench/results.md", "markdown table output (overwritten); empty: stdout only")
		caddyBin  = flag.String("caddy", "./caddy", "caddy binary built with caddy-grip")
		ppBin     = flag.String("pushpin", "pushpin", "pushpin runner binary")
		build     = flag.Bool("build", false, "rebuild ./caddy with ./xcaddy.sh build first, so the current code is measured")
		pin       = flag.String("pin", "0:1", "CPU lists proxy:generator for taskset (PERF-NOTES B0), or none")
		originA   = flag.String("origin", defaultOriginAddr, "address of the bench's GRIP origin")
		small     = flag.Bool("small", false, "tiny sizes: a quick check that everything runs")
	)
	flag.IntVar(&p.SrcIPs, "src-ips", 4, "client source addresses 127.0.0.2 and on")
	flag.IntVar(&p.HoldConns, "hold-conns", 8000, "hold: idle SSE clients (plain Caddy needs 2 fds each: keep under 9,900)")
	flag.IntVar(&p.ConnectRate, "connect-rate", 500, "hold and fanout: new SSE connections per second (Pushpin's accept path fails over ~800/s on one core)")
	flag.IntVar(&p.HoldChannels, "hold-channels", 100, "hold: channels the clients spread over")
	flag.DurationVar(&p.HoldSettle, "hold-settle", 3*time.Second, "hold: wait after the last connect before measuring")
	flag.DurationVar(&p.HoldIdle, "hold-idle", 10*time.Second, "hold: idle window over which CPU is measured")
	flag.IntVar(&p.FanoutSubs, "fanout-subs", 1000, "fanout: subscribers on the one channel")
	flag.Float64Var(&p.FanoutRate, "fanout-rate", 20, "fanout-rate: messages per second")
	flag.IntVar(&p.FanoutMsgs, "fanout-msgs", 200, "fanout-rate: messages")
	flag.IntVar(&p.FanoutMaxMsgs, "fanout-max-msgs", 300, "fanout-max: messages")
	flag.IntVar(&p.FanoutBatch, "fanout-batch", 10, "fanout-batch: messages per publish request")
	flag.IntVar(&p.FanoutBatchMsgs, "fanout-batch-msgs", 1000, "fanout-batch: messages")
	flag.IntVar(&p.PassConns, "pass-conns", 64, "passthrough: keep-alive connections")
	flag.DurationVar(&p.PassDuration, "pass-duration", 10*time.Second, "passthrough: measured time")
	flag.IntVar(&p.PollClients, "poll-clients", 100, "longpoll: clients, one channel each (Pushpin peaks near 100 on one core: 300 gives it fewer cycles/s and 502s)")
	flag.DurationVar(&p.PollDuration, "poll-duration", 10*time.Second, "longpoll: measured time")
	flag.IntVar(&p.PollPublishers, "poll-publishers", 4, "longpoll: concurrent publish connections")
	flag.DurationVar(&p.PollDelay, "poll-delay", 0, "longpoll: wait this long after a hold before publishing (0: at once; a diagnostic that steps around the subscribe race)")
	flag.IntVar(&p.PollTimeout, "poll-timeout", 5, "longpoll: Grip-Timeout of holds, seconds (caddy-grip's minimum is 5)")
	flag.Parse()
	if *small {
		p.HoldConns, p.ConnectRate, p.HoldSettle, p.HoldIdle, p.HoldChannels = 200, 1000, time.Second, 2*time.Second, 10
		p.FanoutSubs, p.FanoutMsgs, p.FanoutMaxMsgs, p.FanoutBatchMsgs, p.FanoutRate = 50, 40, 60, 100, 40
		p.PassConns, p.PassDuration = 8, 2*time.Second
		p.PollClients, p.PollDuration = 50, 3*time.Second
	}
	if err := run(p, *targets, *scenarios, *reps, *out, *md, *caddyBin, *ppBin, *build, *pin, *originA); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(p params, targetList, scenarioList string, reps int, out, md, caddyBin, ppBin string, build bool, pin, originAddr string) error {
	sutCPUs, genCPUs, err := parsePin(pin)
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
	names := splitList(targetList)
	scen := scenarioNames
	if scenarioList != "all" {
		scen = splitList(scenarioList)
		for _, s := range scen {
			if !contains(scenarioNames, s) {
				return fmt.Errorf("unknown scenario %q (want %s)", s, strings.Join(scenarioNames, ", "))
			}
		}
	}
	for _, n := range names {
		if n != targetGrip && n != targetCaddy && n != targetPushpin {
			return fmt.Errorf("unknown target %q", n)
		}
	}
	if soft, _ := fdLimit(); p.HoldConns*2+200 > int(soft) && contains(names, targetCaddy) && contains(scen, "hold") {
		return fmt.Errorf("-hold-conns %d: plain Caddy and the bench's origin need 2 fds per held client, over the fd limit %d", p.HoldConns, soft)
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
	defer os.RemoveAll(work)

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
	// A ^C or kill stops the proxy being measured before the bench exits.
	var curMu sync.Mutex
	var cur *procTarget
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
	setCur := func(t *procTarget) { curMu.Lock(); cur = t; curMu.Unlock() }
	var results []*Result
	start := time.Now()
	loadStart := loadAvg()
	seq := 0
	for rep := 1; rep <= reps; rep++ {
		for _, s := range scen {
			for _, name := range names {
				if (s == fanoutRate || s == fanoutMax || s == fanoutBatch || s == "longpoll") && name == targetCaddy {
					continue
				}
				seq++
				t, err := startTarget(name, targetOptions{
					CaddyBin: caddyAbs, PushpinBin: ppBin, SUTCPUs: sutCPUs,
					OriginAddr: o.Addr(), WorkDir: work,
				})
				if err != nil {
					return err
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
