package hub

import (
	"errors"
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

// subWith makes a subscriber with meta and filters on channel "c".
func subWith(meta map[string]string, filters ...string) *Subscriber {
	s := NewSubscriber(KindStream)
	s.SetMeta(meta)
	s.SetFilters("c", filters)
	return s
}

func TestRenderContentAppliesFilters(t *testing.T) {
	idMeta := map[string]string{"id_format": "%(c)s-%(d)s", "user": "alice"}
	cases := []struct {
		name    string
		meta    map[string]string
		filters []string
		prev    map[string]string
		content string
		want    string
		wantErr string
	}{
		// From Pushpin's src/handler/filtertest.cpp (messageFilters).
		{"var-subst user", map[string]string{"user": "alice"}, []string{FilterSkipSelf, FilterVarSubst}, nil,
			"hello %(user)s", "hello alice", ""},
		{"var-subst names are case-insensitive", map[string]string{"User": "alice"}, []string{FilterVarSubst}, nil,
			"hello %(USER)s 100%%", "hello alice 100%", ""},
		{"var-subst unknown variable", map[string]string{"user": "alice"}, []string{FilterVarSubst}, nil,
			"hello %(nick)s", "", "var-subst: No such variable 'nick' at position 13"},
		{"var-subst rejects %I", map[string]string{"user": "alice"}, []string{FilterVarSubst}, nil,
			"%I", "", "var-subst: Unknown directive 'I' at position 1"},
		{"var-subst without percent", nil, []string{FilterVarSubst}, nil, "plain", "plain", ""},
		// From Pushpin's src/handler/idformattest.cpp (renderContent).
		{"build-id default id", map[string]string{"id_format": "C3PO"}, []string{FilterBuildID}, nil,
			"The ID is %I.", "The ID is C3PO.", ""},
		{"build-id hex", map[string]string{"id_format": "C3PO", "id_encoding": "hex"}, []string{FilterBuildID}, nil,
			"The ID is %I.", "The ID is 4333504f.", ""},
		{"build-id literal hex", map[string]string{"id_format": "C3PO", "id_encoding": "hex"}, []string{FilterBuildID}, nil,
			"The ID is %(R2D2)I.", "The ID is 52324432.", ""},
		{"build-id from prev-ids", idMeta, []string{FilterBuildID}, map[string]string{"c": "7", "d": "9"},
			"id=%I", "id=7-9", ""},
		{"build-id channel without prev-id", idMeta, []string{FilterBuildID}, map[string]string{"c": "7"},
			"no directive", "", "build-id: failed to render ID: No such variable 'd' at position 10"},
		{"build-id missing id_format", map[string]string{"user": "a"}, []string{FilterBuildID}, nil,
			"no directive", "", "build-id: no sub meta 'id_format'"},
		{"build-id bad encoding", map[string]string{"id_format": "x", "id_encoding": "base64"}, []string{FilterBuildID}, nil,
			"%I", "", "build-id: unsupported encoding: base64"},
		{"build-id rejects %(x)s", idMeta, []string{FilterBuildID}, map[string]string{"c": "7", "d": "9"},
			"%(user)s", "", "build-id: Unknown directive 's' at position 7"},
		{"filters run in order", idMeta, []string{FilterBuildID, FilterVarSubst}, map[string]string{"c": "1", "d": "2"},
			"%I by %%(user)s", "1-2 by alice", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := subWith(tc.meta, tc.filters...)
			out, deliver, err := s.RenderContent("c", nil, []byte(tc.content), prevIDsOf(tc.prev))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || deliver || out != nil {
					t.Fatalf("got %q, %v, %v; want error %q and no delivery", out, deliver, err, tc.wantErr)
				}
				return
			}
			if err != nil || !deliver || string(out) != tc.want {
				t.Fatalf("got %q, %v, %v; want %q", out, deliver, err, tc.want)
			}
		})
	}
}

func TestRenderContentComparesItemContentFilters(t *testing.T) {
	cases := []struct {
		name    string
		sub     []string
		item    []string
		deliver bool
	}{
		{"absent always matches", []string{FilterVarSubst}, nil, true},
		{"empty matches none", []string{FilterSkipSelf}, []string{}, true},
		{"empty vs one", []string{FilterVarSubst}, []string{}, false},
		{"one vs empty subscription", nil, []string{FilterBuildID}, false},
		{"equal, delivery filters ignored", []string{FilterSkipSelf, FilterBuildID, "unknown", FilterVarSubst},
			[]string{FilterBuildID, FilterVarSubst}, true},
		{"order matters", []string{FilterBuildID, FilterVarSubst}, []string{FilterVarSubst, FilterBuildID}, false},
		{"duplicates count", []string{FilterVarSubst, FilterVarSubst}, []string{FilterVarSubst}, false},
		{"names are exact", []string{FilterVarSubst}, []string{"Var-Subst"}, false},
	}
	meta := map[string]string{"id_format": "x"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := subWith(meta, tc.sub...)
			_, deliver, err := s.RenderContent("c", tc.item, []byte("body"), nil)
			if deliver != tc.deliver {
				t.Fatalf("deliver = %v (%v), want %v", deliver, err, tc.deliver)
			}
			if !deliver && !errors.Is(err, ErrContentFilterMismatch) {
				t.Fatalf("error = %v, want ErrContentFilterMismatch", err)
			}
		})
	}
}

func TestRenderContentMismatchMessageMatchesPushpin(t *testing.T) {
	s := subWith(nil, FilterSkipSelf, FilterBuildID, FilterVarSubst)
	_, _, err := s.RenderContent("c", []string{"var-subst"}, []byte("x"), nil)
	want := "content filter mismatch: subscription=build-id,var-subst message=var-subst"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestRenderContentWithoutFiltersReturnsContentItself(t *testing.T) {
	content := []byte("%(user)s %I")
	for _, s := range []*Subscriber{NewSubscriber(KindWebSocket), subWith(nil, FilterSkipSelf)} {
		out, deliver, err := s.RenderContent("c", nil, content, nil)
		if err != nil || !deliver || &out[0] != &content[0] || len(out) != len(content) {
			t.Fatalf("got %q, %v, %v; want the same slice", out, deliver, err)
		}
	}
	other := subWith(map[string]string{"user": "a"}, FilterVarSubst)
	if out, _, _ := other.RenderContent("elsewhere", nil, content, nil); &out[0] != &content[0] {
		t.Fatal("filters of another channel were applied")
	}
}

func TestRenderContentNoFiltersDoesNotAllocate(t *testing.T) {
	s := subWith(map[string]string{"user": "a"}, FilterSkipSelf)
	content := []byte("hello")
	allocs := testing.AllocsPerRun(100, func() {
		_, _, _ = s.RenderContent("c", nil, content, nil)
		_, _, _ = s.RenderContent("c", []string{}, content, nil)
	})
	if allocs != 0 {
		t.Fatalf("allocs = %v, want 0", allocs)
	}
}

func TestRenderInitialAppliesOnlyBuildIDWithoutPrevIDs(t *testing.T) {
	cases := []struct {
		name    string
		filters []string
		body    string
		want    string
		wantErr string
	}{
		{"no filters", nil, "%I %(user)s", "%I %(user)s", ""},
		{"var-subst is not applied", []string{FilterVarSubst}, "%(user)s", "%(user)s", ""},
		{"build-id literal", []string{FilterVarSubst, FilterBuildID}, "%(abc)I 5%%", "abc 5%", ""},
		{"build-id default id fails", []string{FilterBuildID}, "%I",
			"", "build-id: No ID specified and no default ID in context at position 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSubscriber(KindStream)
			s.SetMeta(map[string]string{"user": "alice", "id_format": "%(c)s"})
			s.SetFilters("other", []string{FilterSkipSelf})
			s.SetFilters("c", tc.filters)
			out, err := s.RenderInitial([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(out) != tc.want {
				t.Fatalf("got %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}

func TestContentFiltersOfKeepsOrder(t *testing.T) {
	got := ContentFiltersOf([]string{FilterVarSubst, FilterSkipSelf, "x", FilterBuildID, FilterVarSubst})
	want := []string{FilterVarSubst, FilterBuildID, FilterVarSubst}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if ContentFiltersOf([]string{FilterSkipUsers}) != nil {
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

func BenchmarkRenderContentNoFilters(b *testing.B) {
	s := subWith(map[string]string{"user": "a"}, FilterSkipSelf)
	content := []byte("hello world")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, _ := s.RenderContent("c", nil, content, nil); !ok {
			b.Fatal("not delivered")
		}
	}
}
