package caddygrip

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/natsbus"
)

// TestExamplesNameOnlyMetricsThatExist reads every caddy_grip_* name in
// examples/grafana and the README and checks the collector describes it.
func TestExamplesNameOnlyMetricsThatExist(t *testing.T) {
	m := newHubMetrics("x", hub.New(hub.Config{}), func() (natsbus.Stats, bool) { return natsbus.Stats{}, true })
	ch := make(chan *prometheus.Desc, 100)
	m.Describe(ch)
	close(ch)
	known := map[string]bool{}
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		if sub := fqName.FindStringSubmatch(d.String()); sub != nil {
			known[sub[1]] = true
		}
	}
	if len(known) < 16 {
		t.Fatalf("only %d metrics described: %v", len(known), known)
	}
	files, _ := filepath.Glob("../examples/grafana/*")
	files = append(files, "../README.md")
	name := regexp.MustCompile(`caddy_grip_[a-z_]+`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range name.FindAllString(string(b), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
			if !known[base] && !strings.HasSuffix(n, "_") {
				t.Errorf("%s names %s, which the collector does not describe", f, n)
			}
		}
	}
}
