package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-grip/grip/internal/freeport"
	"github.com/caddy-grip/grip/internal/pushpinconf"
)

// Target is a proxy under test, as the scenarios see it.
type Target interface {
	// Name is the target's name in results: caddy-grip, caddy, pushpin.
	Name() string
	// ClientAddr is the host:port clients connect to.
	ClientAddr() string
	// PublishAddr is the host:port of the GRIP publish API (POST
	// /publish/), or "" for a proxy without GRIP.
	PublishAddr() string
	// AdminAddr is the host:port of Caddy's admin endpoint (pprof,
	// /debug/vars), or "" for a target without one.
	AdminAddr() string
	// PIDs are the processes whose CPU and memory count as the proxy's.
	PIDs() []int
}

// Target names accepted by -targets.
const (
	targetGrip    = "caddy-grip"
	targetCaddy   = "caddy"
	targetPushpin = "pushpin"
)

// defaultOriginAddr lets the kernel pick the origin's port. The targets'
// ports are picked free for every run (freeport), so that a bench never
// meets another bench, a test or a system Pushpin on the machine.
const defaultOriginAddr = "127.0.0.1:0"

// targetOptions say how to run a target process.
type targetOptions struct {
	CaddyBin   string // the caddy binary built with caddy-grip
	PushpinBin string // the pushpin runner
	SUTCPUs    string // taskset CPU list for the proxy; "" = not pinned
	// SUTGomaxprocs is Caddy's GOMAXPROCS; 0 = as many as the proxy's
	// pinned CPUs (Go's own default when unpinned).
	SUTGomaxprocs int
	OriginAddr    string
	WorkDir       string // configs and logs go under here
	// PushpinLogLevel is Pushpin's log_level (1 for measurements).
	PushpinLogLevel int
}

// procTarget is a target running as child processes of the bench.
type procTarget struct {
	name, client, publish string
	admin                 string
	cmd                   *exec.Cmd
	pids                  []int
	dir                   string
	version               string
	gomaxprocs            string
	exited                chan struct{}
}

// Name, ClientAddr, PublishAddr, AdminAddr and PIDs implement Target.
func (t *procTarget) Name() string        { return t.name }
func (t *procTarget) ClientAddr() string  { return t.client }
func (t *procTarget) PublishAddr() string { return t.publish }
func (t *procTarget) AdminAddr() string   { return t.admin }
func (t *procTarget) PIDs() []int         { return t.pids }

// startTarget writes the target's config, starts it (pinned when asked)
// and waits until it proxies to the origin.
func startTarget(name string, opt targetOptions) (*procTarget, error) {
	dir := filepath.Join(opt.WorkDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	t := &procTarget{name: name, dir: dir}
	var argv []string
	env := os.Environ()
	switch name {
	case targetGrip, targetCaddy:
		addrs, err := freeport.Addrs(3)
		if err != nil {
			return nil, err
		}
		t.client, t.admin = addrs[0], addrs[2]
		if name == targetGrip {
			t.publish = addrs[1]
		}
		path := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(path, []byte(caddyConfig(name, opt.OriginAddr, t.client, t.publish, t.admin)), 0o644); err != nil {
			return nil, err
		}
		argv = []string{opt.CaddyBin, "run", "--config", path, "--adapter", "caddyfile"}
		t.version = commandOutput(opt.CaddyBin, "version")
		switch {
		case opt.SUTGomaxprocs > 0:
			t.gomaxprocs = fmt.Sprint(opt.SUTGomaxprocs)
		case opt.SUTCPUs != "":
			t.gomaxprocs = fmt.Sprint(cpuCount(opt.SUTCPUs))
		}
		if t.gomaxprocs != "" {
			env = append(env, "GOMAXPROCS="+t.gomaxprocs)
		}
		env = append(env, "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	case targetPushpin:
		ports, err := pushpinconf.FreePorts()
		if err != nil {
			return nil, err
		}
		t.client = fmt.Sprintf("127.0.0.1:%d", ports.Client)
		t.publish = fmt.Sprintf("127.0.0.1:%d", ports.Publish)
		// WebSockets go to the origin as WebSocket-over-HTTP, as caddy-grip
		// does by default; the proto=ws rule wins over the catch-all for them.
		path, err := pushpinconf.Write(pushpinconf.Options{
			Dir: dir, IPCPrefix: "gripbench-", LogLevel: max(opt.PushpinLogLevel, 1), Ports: ports,
			Routes: []string{"*,proto=ws " + opt.OriginAddr + ",over_http", "* " + opt.OriginAddr},
		})
		if err != nil {
			return nil, err
		}
		argv = []string{opt.PushpinBin, "--config", path}
		t.version = commandOutput(opt.PushpinBin, "--version")
	default:
		return nil, fmt.Errorf("unknown target %q (want %s, %s or %s)", name, targetGrip, targetCaddy, targetPushpin)
	}
	if err := t.launch(argv, env, opt); err != nil {
		return nil, err
	}
	return t, nil
}

// launch starts argv (pinned to opt.SUTCPUs when set) with its output in
// the target's log.txt, and waits until it proxies to the origin.
func (t *procTarget) launch(argv, env []string, opt targetOptions) error {
	name, dir := t.name, t.dir
	if opt.SUTCPUs != "" {
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			return fmt.Errorf("pinning the proxy needs taskset: %w", err)
		}
		argv = append([]string{taskset, "-c", opt.SUTCPUs}, argv...)
	}
	logf, err := os.Create(filepath.Join(dir, "log.txt"))
	if err != nil {
		return err
	}
	t.cmd = exec.Command(argv[0], argv[1:]...)
	t.cmd.Dir = dir
	t.cmd.Env = env
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	// Its own process group, so a ^C to the bench does not kill it first.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := t.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	t.exited = make(chan struct{})
	go func() { _ = t.cmd.Wait(); logf.Close(); close(t.exited) }()
	if err := t.waitReady(opt.OriginAddr); err != nil {
		t.stop()
		return fmt.Errorf("%s did not come up: %w (log: %s)", name, err, filepath.Join(dir, "log.txt"))
	}
	return nil
}

// caddyConfig is the Caddyfile of caddy-grip or of plain Caddy: the same
// binary, the same reverse_proxy; only the grip handler (and its publish
// site, when publish is not "") differs.
func caddyConfig(name, origin, client, publish, admin string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{
	admin %s
	auto_https off
	persist_config off
	grace_period 2s
	log {
		level ERROR
	}
}

http://%s {
`, admin, client)
	if name == targetGrip {
		b.WriteString("\tgrip\n")
	}
	fmt.Fprintf(&b, "\treverse_proxy %s {\n\t\tflush_interval -1\n\t}\n}\n", origin)
	if publish != "" {
		fmt.Fprintf(&b, "\nhttp://%s {\n\tgrip_publish\n}\n", publish)
	}
	return b.String()
}

// waitReady waits until a plain request goes through the proxy to the
// origin, and the publish port accepts connections.
func (t *procTarget) waitReady(origin string) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-t.exited:
			return errors.New("exited")
		default:
		}
		last = probePass(t.client)
		if last == nil && t.publish != "" {
			var c net.Conn
			if c, last = net.DialTimeout("tcp", t.publish, time.Second); last == nil {
				c.Close()
			}
		}
		if last == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		return last
	}
	// Pushpin's runner starts its services one by one; let them settle,
	// then take the whole process tree.
	if t.name == targetPushpin {
		for time.Now().Before(deadline) && len(processTree(t.cmd.Process.Pid)) < 5 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.pids = processTree(t.cmd.Process.Pid)
	return nil
}

// probePass sends GET /pass through addr and wants 200.
func probePass(addr string) error {
	c, err := dialHTTP(addr, nil, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.c.SetDeadline(time.Now().Add(2 * time.Second))
	rh, _, err := c.getBody("/pass", nil)
	if err != nil {
		return err
	}
	if rh.Status != 200 {
		return fmt.Errorf("GET /pass: status %d", rh.Status)
	}
	return nil
}

// stop ends the target: SIGTERM, then SIGKILL to the processes it started.
func (t *procTarget) stop() {
	if t.cmd == nil || t.cmd.Process == nil {
		return
	}
	tree := processTree(t.cmd.Process.Pid)
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !anyAlive(tree) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range tree {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func anyAlive(pids []int) bool {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// A zombie ("Z") has exited and only waits to be reaped.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] != 'Z' {
			return true
		}
	}
	return false
}

// commandOutput runs a short command and returns its first output line.
func commandOutput(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// cpuCount counts the CPUs in a taskset list such as "0" or "0-1,3".
func cpuCount(list string) int {
	if n := len(parseCPUList(list)); n > 0 {
		return n
	}
	return 1
}
