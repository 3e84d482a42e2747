package integration_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-grip/grip/internal/freeport"
	"github.com/caddy-grip/grip/internal/pushpinconf"
)

// pushpinBinaries are what a private Pushpin 1.36 run needs: the runner, its
// connection manager (client side) and zurl (the origin side; the Debian
// config leaves zurl to a system service, which a private run cannot use).
var pushpinBinaries = []string{"pushpin", "pushpin-proxy", "pushpin-handler", "condure", "zurl"}

// pushpin is a private Pushpin started for one test: its own config and
// runtime directories, ports nobody else holds, and IPC sockets under its
// own runtime directory, so it cannot meet a system Pushpin or another
// test's.
type pushpin struct {
	clientURL  string // where clients connect, e.g. http://127.0.0.1:41234
	publishURL string // Pushpin's HTTP publish endpoint, ending in /publish/

	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	kids   []childProc
	flakes atomic.Int32 // attempts on it that failed and were retried
}

// childProc is a process the Pushpin runner started, remembered so that
// cleanup can kill it even if the runner dies first.
type childProc struct {
	pid     int
	cmdline string
}

// requirePushpin skips the test when Pushpin is not installed, or fails it
// when GRIP_REQUIRE_EXTERNAL=1 says the environment must have it (CI).
func requirePushpin(t *testing.T) {
	t.Helper()
	for _, bin := range pushpinBinaries {
		if _, err := exec.LookPath(bin); err != nil {
			missingTool(t, fmt.Sprintf("Pushpin is not installed (%s not found in PATH; apt-get install -y pushpin)", bin))
		}
	}
}

// startPushpin runs a private Pushpin routing every request to origin, waits
// until both its client and publish ports answer, and stops it (every
// process it started) when the test ends.
func startPushpin(t *testing.T, origin string) *pushpin {
	t.Helper()
	return startPushpinRoute(t, origin, "")
}

// startPushpinRoute is startPushpin with options on the route's target,
// such as "over_http".
func startPushpinRoute(t *testing.T, origin, targetOpts string) *pushpin {
	t.Helper()
	if targetOpts != "" {
		targetOpts = "," + targetOpts
	}
	return startPushpinCond(t, origin, "", targetOpts)
}

// startPushpinCond is startPushpin with a routes line of its caller's
// choosing: "*<condOpts> <origin host:port><targetOpts>", where each
// non-empty option string starts with its comma (condOpts ",aco" turns on
// auto cross-origin for the route; targetOpts ",over_http").
func startPushpinCond(t *testing.T, origin, condOpts, targetOpts string) *pushpin {
	t.Helper()
	requirePushpin(t)

	// A short directory: IPC socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "pushpin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	// Fixed ports (18080 and friends) were already taken by another Pushpin
	// on a shared machine, so every TCP port is a free one picked now.
	ports, err := pushpinconf.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	confPath, err := pushpinconf.Write(pushpinconf.Options{
		Dir: dir, IPCPrefix: "gripdiff-", LogLevel: 2, Ports: ports,
		Routes: []string{"*" + condOpts + " " + strings.TrimPrefix(origin, "http://") + targetOpts},
	})
	if err != nil {
		t.Fatal(err)
	}

	p := &pushpin{
		clientURL:  fmt.Sprintf("http://127.0.0.1:%d", ports.Client),
		publishURL: fmt.Sprintf("http://127.0.0.1:%d/publish/", ports.Publish),
		out:        new(lockedBuffer),
		exited:     make(chan struct{}),
	}
	p.cmd = exec.Command("pushpin", "--config", confPath, "--merge-output")
	p.cmd.Dir = dir
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	// Its own process group, so that stopping it cannot signal the test.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting pushpin: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })

	p.waitReady(t)
	p.kids = childrenOf(p.cmd.Process.Pid)
	return p
}

// freePorts returns n distinct TCP ports that were free a moment ago,
// drawn where no outgoing connection takes them (freeport.Ports).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports, err := freeport.Ports(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// waitReady polls until the publish endpoint accepts a publish and a client
// request reaches the origin through the proxy, failing early with
// Pushpin's output if it exits.
func (p *pushpin) waitReady(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ready := func() bool {
		resp, err := client.Post(p.publishURL, "application/json", strings.NewReader(`{"items":[]}`))
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "Published\n" {
			return false
		}
		resp, err = client.Get(p.clientURL + "/ready")
		if err != nil {
			return false
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && string(body) == originReady
	}
	deadline := time.Now().Add(20 * time.Second)
	for !ready() {
		select {
		case <-p.exited:
			t.Fatalf("pushpin exited while starting:\n%s", p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pushpin did not answer within 20s:\n%s", p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop asks the runner to stop (it stops its children), and kills whatever
// is left: the runner's group, then each child's own group, since the
// runner puts every child in a process group of its own.
func (p *pushpin) stop(t *testing.T) {
	pid := p.cmd.Process.Pid
	kids := append(p.kids, childrenOf(pid)...) // in case it never got ready
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Logf("pushpin did not stop on SIGTERM; killing it")
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	}
	for _, k := range kids {
		// Only a process still running the same command line is ours: its
		// pid may have been reused once it exited.
		if k.cmdline != "" && procCmdline(k.pid) == k.cmdline {
			_ = syscall.Kill(-k.pid, syscall.SIGKILL)
			_ = syscall.Kill(k.pid, syscall.SIGKILL)
		}
	}
	if t.Failed() || p.flakes.Load() > 0 {
		lines := strings.SplitAfter(p.out.String(), "\n")
		t.Logf("pushpin output, last %d lines (failed attempts retried: %d):\n%s",
			outputTail, p.flakes.Load(), strings.Join(lines[max(0, len(lines)-outputTail):], ""))
	}
}

// outputTail is how many of Pushpin's last output lines a failed test (or
// one that retried Pushpin) logs: enough to see what each of its processes
// said around the failure.
const outputTail = 200

// flaked notes that an attempt on this Pushpin failed and was retried, so
// that its output is logged when it stops.
func (p *pushpin) flaked() { p.flakes.Add(1) }

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []childProc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []childProc
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name: state, ppid, ...
		end := bytes.LastIndexByte(stat, ')')
		if end < 0 {
			continue
		}
		fields := strings.Fields(string(stat[end+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(pid) {
			continue
		}
		kids = append(kids, childProc{pid: n, cmdline: procCmdline(n)})
	}
	return kids
}

// procCmdline is a process's command line, or "" once it is gone.
func procCmdline(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return ""
	}
	return string(b)
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
