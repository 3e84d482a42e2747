package integration_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// missingTool skips the test because a program it needs (msg says which
// and how to install it) is not on this machine, or fails it when
// GRIP_REQUIRE_EXTERNAL=1 (as in CI) says the machine must have it.
func missingTool(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("GRIP_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(msg + " (GRIP_REQUIRE_EXTERNAL=1)")
	}
	t.Skip(msg + "; install it, or set GRIP_REQUIRE_EXTERNAL=1 to make this a failure")
}

// nodeAndNpm finds node and npm, or skips (see missingTool); what says
// which test needs them.
func nodeAndNpm(t *testing.T, what string) (node, npm string) {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		missingTool(t, "node and npm are needed for "+what+" and are not on PATH")
	}
	return node, npm
}

// npmProject copies the regular files of the npm project in src (not its
// node_modules or build output) to a temporary directory and runs npm ci
// there, so tests never write into the checkout.
func npmProject(t *testing.T, npm, src string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.CommandContext(t.Context(), npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in a copy of %s: %v\n%s", src, err, out)
	}
	return dir
}
