package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The cluster scenarios hold more subscribers than one process may have
// open files (20,000 on the box of BENCHMARKS.md), so their subscribers
// live in generator processes of their own: this program run again with
// GRIP_BENCH_CHILD=gen. Each holds one sseGroup (the same epoll reader as
// the single-process scenarios) and talks to the bench over its stdin and
// stdout, one JSON line per request and per answer. Its clock is the
// bench's (see genConfig.EpochWallNS), so receipt minus the publish time in
// a message is a latency, whichever process read it.

// childEnv names the kind of child process this program is asked to be.
const childEnv = "GRIP_BENCH_CHILD"

// genConfig is the first line a generator child reads.
type genConfig struct {
	Addr     string  // the node its subscribers connect to
	Path     string  // GET target of every subscriber
	N        int     // subscribers
	Expect   int     // measured messages per subscriber
	Rate     float64 // connects per second
	Inflight int     // handshakes unanswered at most (0: no limit)
	SrcIPs   []string
	// EpochWallNS is the wall-clock time of the bench's epoch: the child
	// moves its own epoch there, so both read one clock.
	EpochWallNS int64
}

// genStatus is the answer to "status".
type genStatus struct {
	Connected, Probed, Failed, Delivered int64
	LastRecvNS                           int64
}

// genTally is the answer to "tally": the group's counts after it closed,
// its latency histogram (non-zero buckets) and the child's own CPU.
type genTally struct {
	Clients, Distinct, Dups, Reorder, Lost int
	FirstErr                               string
	Buckets                                [][2]uint64 // bucket index, count
	MaxNS                                  int64
	CPUNS                                  int64
	Reads                                  int64
}

// runGenChild is the body of a generator child: it reads its config, opens
// its subscribers and answers requests until its stdin closes.
func runGenChild() int {
	in := bufio.NewReader(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	line, err := in.ReadBytes('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench generator: reading config:", err)
		return 2
	}
	var cfg genConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench generator: bad config:", err)
		return 2
	}
	now := time.Now()
	epoch = now.Add(-time.Duration(now.UnixNano() - cfg.EpochWallNS))
	src := make([]net.IP, 0, len(cfg.SrcIPs))
	for _, s := range cfg.SrcIPs {
		if ip := net.ParseIP(s); ip != nil {
			src = append(src, ip)
		}
	}
	if len(src) == 0 {
		src = sourceIPs(1)
	}
	g := newSSEGroup(cfg.Addr, cfg.Expect)
	go ramp(g, cfg.N, cfg.Rate, cfg.Inflight, func(int) string { return cfg.Path }, src)
	io0, _ := procIO("self")
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			g.close()
			return 0
		}
		switch strings.TrimSpace(line) {
		case "status":
			_ = out.Encode(genStatus{
				Connected: g.connected.Load(), Probed: g.probed.Load(), Failed: g.failed.Load(),
				Delivered: g.delivered.Load(), LastRecvNS: g.lastRecv.Load(),
			})
		case "tally":
			g.close()
			t := g.tally()
			gt := genTally{Clients: t.clients, Distinct: t.distinct, Dups: t.dups, Reorder: t.reorder, Lost: t.lost,
				MaxNS: int64(g.hist.Max()), CPUNS: int64(selfCPU())}
			if t.firstErr != nil {
				gt.FirstErr = t.firstErr.Error()
			}
			for i := range g.hist.counts {
				if c := g.hist.counts[i].Load(); c > 0 {
					gt.Buckets = append(gt.Buckets, [2]uint64{uint64(i), c})
				}
			}
			if io1, err := procIO("self"); err == nil {
				gt.Reads = io1.Reads - io0.Reads
			}
			_ = out.Encode(gt)
		default:
			_ = out.Encode(map[string]string{"error": "unknown request " + strings.TrimSpace(line)})
		}
	}
}

// genProc is the bench's handle on one generator child.
type genProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	mu     sync.Mutex
	last   genStatus
	exited chan struct{}
}

// startGen starts a generator child with cfg, its stderr in logPath.
// childBin is the program to run (this one, or the test binary).
func startGen(childBin string, cfg genConfig, logPath string) (*genProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(childBin)
	cmd.Env = append(os.Environ(), childEnv+"=gen")
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting a generator: %w", err)
	}
	g := &genProc{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(g.exited) }()
	b, _ := json.Marshal(cfg)
	if _, err := g.stdin.Write(append(b, '\n')); err != nil {
		g.stop()
		return nil, fmt.Errorf("configuring a generator: %w (log: %s)", err, logPath)
	}
	return g, nil
}

// call sends one request and decodes its answer into v.
func (g *genProc) call(req string, v any) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := io.WriteString(g.stdin, req+"\n"); err != nil {
		return fmt.Errorf("generator %d: %w", g.cmd.Process.Pid, err)
	}
	line, err := g.stdout.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("generator %d: %w", g.cmd.Process.Pid, err)
	}
	return json.Unmarshal(line, v)
}

// status asks for the child's counts; a child that cannot answer keeps
// its last ones.
func (g *genProc) status() genStatus {
	var s genStatus
	if err := g.call("status", &s); err != nil {
		return g.last
	}
	g.last = s
	return s
}

// tally closes the child's subscribers and returns its counts.
func (g *genProc) tally() (genTally, error) {
	var t genTally
	err := g.call("tally", &t)
	return t, err
}

// stop ends the child: stdin closed (it closes its subscribers and exits),
// then SIGKILL if it lingers.
func (g *genProc) stop() {
	g.stdin.Close()
	select {
	case <-g.exited:
		return
	case <-time.After(10 * time.Second):
	}
	_ = g.cmd.Process.Kill()
	<-g.exited
}

// pid is the child's process id.
func (g *genProc) pid() int { return g.cmd.Process.Pid }

// genGroup is every generator child of one run.
type genGroup []*genProc

// sum adds up the children's current counts.
func (gs genGroup) sum() genStatus {
	var t genStatus
	for _, g := range gs {
		s := g.status()
		t.Connected += s.Connected
		t.Probed += s.Probed
		t.Failed += s.Failed
		t.Delivered += s.Delivered
		t.LastRecvNS = max(t.LastRecvNS, s.LastRecvNS)
	}
	return t
}

// cpu is the children's CPU time so far.
func (gs genGroup) cpu() time.Duration {
	var d time.Duration
	for _, g := range gs {
		if c, err := procCPU(g.pid()); err == nil {
			d += c
		}
	}
	return d
}

func (gs genGroup) stop() {
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Add(1)
		go func() { defer wg.Done(); g.stop() }()
	}
	wg.Wait()
}
