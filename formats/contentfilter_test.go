package formats

import (
	"testing"
)

// prevIDsOf serves prev-ids from a map, "" when absent.
func prevIDsOf(m map[string]string) func(string) string {
	return func(ch string) string { return m[ch] }
}

// Vectors from Pushpin's src/handler/idformattest.cpp (renderId).
func TestRenderIDMatchesPushpin(t *testing.T) {
	vars := prevIDsOf(map[string]string{"name": "Alice", `food\fruit(type)`: "apples"})
	cases := []struct{ format, want string }{
		{"This template has no directives.", "This template has no directives."},
		{`My name is %(name)s and I eat %(food\\fruit(type\))s 10%% of the time.`,
			"My name is Alice and I eat apples 10% of the time."},
	}
	for _, tc := range cases {
		got, err := renderID([]byte(tc.format), vars)
		if err != nil || string(got) != tc.want {
			t.Errorf("renderID(%q) = %q, %v; want %q", tc.format, got, err, tc.want)
		}
	}
}

func TestFormatErrorsMatchPushpin(t *testing.T) {
	// Messages and 0-based positions as handler/format.cpp reports them.
	cases := []struct{ format, want string }{
		{"abc%", "Expected directive after '%' at position 3"},
		{"%(", "Expected character after '(' at position 1"},
		{`%(ab\`, `Expected character after '\' at position 4`},
		{"x%(abc", "Unterminated field starting at position 2"},
		{"%(abc)", "Expected directive after ')' at position 5"},
		{"%5", "Unknown directive '5' at position 1"},
		{"%d", "Unknown directive 'd' at position 1"},
		{"%s", "Directive 's' requires argument at position 1"},
		{"%()s", "Directive 's' requires argument at position 3"},
		{"hi %(nope)s", "No such variable 'nope' at position 10"},
	}
	vars := prevIDsOf(map[string]string{"a": "1"})
	for _, tc := range cases {
		_, err := renderID([]byte(tc.format), vars)
		if err == nil || err.Error() != tc.want {
			t.Errorf("renderID(%q) error = %v, want %q", tc.format, err, tc.want)
		}
	}
}

func TestContentFiltersOfKeepsOrder(t *testing.T) {
	got := ContentFiltersOf([]string{FilterVarSubst, "skip-self", "x", FilterBuildID, FilterVarSubst})
	want := []string{FilterVarSubst, FilterBuildID, FilterVarSubst}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if ContentFiltersOf([]string{"skip-users"}) != nil {
		t.Fatal("want nil without content filters")
	}
}

func FuzzFormatProcess(f *testing.F) {
	for _, s := range []string{"", "%", "%%", "%(a)s", `%(a\)b)I`, "%(", "%()I", "x%(y"} {
		f.Add(s)
	}
	meta := map[string]string{"a": "1", "id_format": "%(c)s"}
	prev := prevIDsOf(map[string]string{"c": "9"})
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = varSubst(meta, []byte(s))
		_, _ = buildID(meta, []byte(s), prev)
		_, _ = buildID(meta, []byte(s), nil)
	})
}
