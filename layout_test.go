package grip

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The packages below the Caddy glue never import Caddy or the glue, and
// each imports only those below it (ARCHITECTURE.md): formats and
// wsoverhttp and gripsig none of ours, hub and instruct formats, natsbus
// hub and formats; the internal helpers of the tests and the bench none
// but each other.
func TestImportsPointOneWay(t *testing.T) {
	const mod = "github.com/caddy-grip/grip/"
	allowed := map[string][]string{
		"formats":    nil,
		"wsoverhttp": nil,
		"gripsig":    nil,
		"hub":        {"formats"},
		"instruct":   {"formats"},
		"natsbus":    {"hub", "formats"},
		// What the tests and the bench share.
		"internal/freeport":    nil,
		"internal/pushpinconf": {"internal/freeport"},
	}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			switch {
			case strings.HasPrefix(dep, "github.com/caddyserver/"):
				t.Errorf("%s imports Caddy (%s)", pkg, dep)
			case strings.HasPrefix(dep, mod) && dep != mod+pkg:
				name := strings.TrimPrefix(dep, mod)
				if !slices.Contains(ok, name) {
					t.Errorf("%s imports %s", pkg, name)
				}
			}
		}
	}
}
