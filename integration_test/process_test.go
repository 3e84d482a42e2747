package integration_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/wsoverhttp"
)

var (
	caddyBinOnce sync.Once
	caddyBinPath string
	caddyBinErr  error
)

// caddyBinary builds Caddy with caddy-grip once per test run.
func caddyBinary(t testing.TB) string {
	t.Helper()
	caddyBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "caddygrip-bin")
		if err != nil {
			caddyBinErr = err
			return
		}
		caddyBinPath = filepath.Join(dir, "caddy")
		out, err := exec.Command("go", "build", "-o", caddyBinPath, "./caddybin").CombinedOutput()
		if err != nil {
			caddyBinErr = fmt.Errorf("building caddy: %v\n%s", err, out)
		}
	})
	if caddyBinErr != nil {
		t.Fatal(caddyBinErr)
	}
	return caddyBinPath
}

// caddyProcess is Caddy running in its own process.
type caddyProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

// startCaddyProcess runs the built Caddy with a Caddyfile and waits until
// it accepts connections on addr.
func startCaddyProcess(t testing.TB, caddyfile, addr string) *caddyProcess {
	t.Helper()
	bin := caddyBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	logf, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("caddy log:\n%s", b)
		}
	})
	eventually(t, "caddy listening on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// startGripProcess runs Caddy in its own process with grip in front of
// reverse_proxy to origin, and a grace period far longer than any test, so
// that only the exit drain can end held connections in time.
func startGripProcess(t *testing.T, origin string) (string, *caddyProcess) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	return addr, startCaddyProcess(t, fmt.Sprintf(`{
	admin off
	grace_period 5m
}
http://%s {
	grip
	reverse_proxy %s
}`, addr, origin), addr)
}

// signal sends sig and returns a channel closed when the process exits.
func (p *caddyProcess) signal(t *testing.T, sig syscall.Signal) <-chan struct{} {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return p.exited
}

func TestExitDrainsHeldConnections(t *testing.T) {
	polling := make(chan struct{})
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Channel", "drain")
		if r.URL.Path == "/poll" {
			close(polling)
			w.Header().Set("Grip-Hold", "response")
			w.Header().Set("Grip-Timeout", "600")
			io.WriteString(w, "held body\n")
			return
		}
		w.Header().Set("Grip-Hold", "stream")
		io.WriteString(w, "open\n")
	})
	addr, p := startGripProcess(t, origin.Listener.Addr().String())

	s := openStream(t, "http://"+addr+"/stream", nil)
	s.next(t)
	polled := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/poll")
		if err != nil {
			polled <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		polled <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	// Once the origin has answered the poll, the poll is held or about to
	// be; either way the drain must answer it (a drained hub holds nothing).
	<-polling

	exited := p.signal(t, syscall.SIGTERM)
	// Without the drain, the 10-minute hold and the open stream would keep
	// Caddy in its 5-minute grace period.
	select {
	case got := <-polled:
		if got != "200 held body\n" {
			t.Fatalf("long-poll got %q", got)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("long-poll was not answered on exit")
	}
	if rest := s.ended(t); len(rest) != 0 {
		t.Fatalf("stream got %q", rest)
	}
	select {
	case <-exited:
		if p.err != nil {
			t.Fatalf("caddy exit: %v", p.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("caddy did not exit")
	}
}

func TestExitClosesWebSocketsWithGoingAway(t *testing.T) {
	disconnected := make(chan struct{}, 1)
	origin := simpleWSOrigin(t, []string{`{"type":"subscribe","channel":"exit"}`}, func(e wsoverhttp.Event) {
		if e.Type == wsoverhttp.Disconnect {
			disconnected <- struct{}{}
		}
	})
	addr, p := startGripProcess(t, origin.Listener.Addr().String())
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exited := p.signal(t, syscall.SIGTERM)
	// Caddy's own shutdown ignores hijacked connections: without the drain
	// this read would block until the 5-minute grace period ran out.
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("read: %v, want close 1001", err)
	}
	select {
	case <-disconnected:
	case <-time.After(60 * time.Second):
		t.Fatal("origin got no DISCONNECT")
	}
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("caddy did not exit")
	}
}
