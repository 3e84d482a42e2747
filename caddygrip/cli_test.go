package caddygrip

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// captured is one publish request a capture server received.
type captured struct {
	path, auth string
	body       any
}

// captureServer answers every publish "Published" and records it.
func captureServer(t *testing.T) (*httptest.Server, func() []captured) {
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("publish body is not JSON: %q", b)
		}
		mu.Lock()
		got = append(got, captured{r.URL.Path, r.Header.Get("Authorization"), v})
		mu.Unlock()
		io.WriteString(w, "Published\n")
	}))
	t.Cleanup(srv.Close)
	return srv, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

// runCLI runs `caddy grip-publish args...` in process.
func runCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	c, ok := caddycmd.Commands()["grip-publish"]
	if !ok {
		t.Fatal("grip-publish is not registered")
	}
	cmd := &cobra.Command{Use: c.Name, SilenceUsage: true, SilenceErrors: true}
	c.CobraFunc(cmd)
	// The command's own RunE reads os.Stdin; this one reads stdin.
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		return runGripPublish(cmd, a, strings.NewReader(stdin), cmd.OutOrStdout())
	}
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestGripPublishSendsWhatPushpinPublishSends runs pushpin-publish and
// grip-publish with the same arguments and compares the JSON bodies.
func TestGripPublishSendsWhatPushpinPublishSends(t *testing.T) {
	pp, err := exec.LookPath("pushpin-publish")
	if err != nil {
		if os.Getenv("GRIP_REQUIRE_EXTERNAL") == "1" {
			t.Fatal("pushpin-publish not installed (GRIP_REQUIRE_EXTERNAL=1)")
		}
		t.Skip("pushpin-publish not installed")
	}
	srv, got := captureServer(t)
	for _, args := range [][]string{
		{"news", "hello"},
		{"--id", "2", "--prev-id", "1", "--code", "201", "-H", "X-A: b", "-H", "X-C: d", "-M", "k=v", "--sender", "s1", "--no-seq", "news", "hello"},
		{"--hint", "news"},
		{"--close", "news"},
		{"--patch", "news", `[{"op":"add","path":"/a","value":1}]`},
		{"--no-eol", "news", "hi"},
		{"--id", "x", "ch with space", "multi\nline"},
	} {
		full := append([]string{"--spec", srv.URL}, args...)
		before := len(got())
		if out, err := exec.Command(pp, full...).CombinedOutput(); err != nil {
			t.Fatalf("pushpin-publish %q: %v %s", args, err, out)
		}
		if out, err := runCLI(t, "", full...); err != nil || out != "Published\n" {
			t.Fatalf("grip-publish %q: %q %v", args, out, err)
		}
		all := got()
		if len(all) != before+2 {
			t.Fatalf("%q: %d publishes captured, want 2", args, len(all)-before)
		}
		theirs, ours := all[before], all[before+1]
		if ours.path != theirs.path || !reflect.DeepEqual(ours.body, theirs.body) {
			t.Errorf("%q:\n pushpin-publish %s %v\n grip-publish    %s %v", args, theirs.path, theirs.body, ours.path, ours.body)
		}
	}
}

func TestGripPublishSelectsFormatsAndReadsStdin(t *testing.T) {
	srv, got := captureServer(t)
	if _, err := runCLI(t, "from stdin", "--url", srv.URL+"/pub", "--ws", "--channel", "c", "--content", "-"); err != nil {
		t.Fatal(err)
	}
	c := got()[0]
	want := map[string]any{"items": []any{map[string]any{"channel": "c", "formats": map[string]any{"ws-message": map[string]any{"content": "from stdin"}}}}}
	if c.path != "/pub" || !reflect.DeepEqual(c.body, want) {
		t.Fatalf("got %s %v", c.path, c.body)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", srv.URL}, "no channel"},
		{[]string{"--url", srv.URL, "c"}, "no content"},
		{[]string{"--url", srv.URL, "-H", "nocolon", "c", "x"}, `--header "nocolon"`},
		{[]string{"--url", srv.URL, "-M", "novalue", "c", "x"}, `--meta "novalue"`},
		{[]string{"--url", srv.URL, "--patch", "c", "not json"}, "not JSON"},
		{[]string{"--url", srv.URL, "--code", "99", "c", "x"}, "--code 99"},
		{[]string{"--url", srv.URL, "--hint", "--close", "c"}, "cannot be combined"},
		{[]string{"--url", srv.URL, "-u", "me:pw", "c", "x"}, "https only"},
		{[]string{"--url", "ftp://x/", "c", "x"}, "want an http"},
		{[]string{"--url", srv.URL, "--channel", "a", "b", "x"}, "not both"},
	} {
		if _, err := runCLI(t, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestGripPublishSignsWithTheKeyGripPublishChecks(t *testing.T) {
	p := &Publish{Key: "a-secret"}
	if err := provisionPublish(t, p); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.ServeHTTP(w, r, nil); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	if out, err := runCLI(t, "", "--url", srv.URL+"/publish/", "--key", "a-secret", "c", "x"); err != nil || out != "Published\n" {
		t.Fatalf("with the key: %q %v", out, err)
	}
	if _, err := runCLI(t, "", "--url", srv.URL+"/publish/", "--key", "another", "c", "x"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("with another key: %v, want a 401", err)
	}
	if _, err := runCLI(t, "", "--url", srv.URL+"/publish/", "c", "x"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without a key: %v, want a 401", err)
	}
}
