package hub

import (
	"errors"
	"testing"

	"github.com/caddy-grip/grip/formats"
)

// prevIDsOf serves prev-ids from a map, "" when absent.
func prevIDsOf(m map[string]string) func(string) string {
	return func(ch string) string { return m[ch] }
}

// renderFor renders content for s on channel as the holders do: the
// subscription's filters and meta through formats.Render.
func renderFor(s *Subscriber, channel string, itemFilters []string, content []byte, prevIDs func(string) string) ([]byte, bool, error) {
	names, meta := s.ContentFilters(channel)
	return formats.Render(names, meta, itemFilters, content, prevIDs)
}

// initialFor renders an initial body for s as stream holds do.
func initialFor(s *Subscriber, body []byte) ([]byte, error) {
	on, meta := s.InitialBuildID()
	return formats.RenderInitial(on, meta, body)
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
		{"var-subst user", map[string]string{"user": "alice"}, []string{FilterSkipSelf, formats.FilterVarSubst}, nil,
			"hello %(user)s", "hello alice", ""},
		{"var-subst names are case-insensitive", map[string]string{"User": "alice"}, []string{formats.FilterVarSubst}, nil,
			"hello %(USER)s 100%%", "hello alice 100%", ""},
		{"var-subst unknown variable", map[string]string{"user": "alice"}, []string{formats.FilterVarSubst}, nil,
			"hello %(nick)s", "", "var-subst: No such variable 'nick' at position 13"},
		{"var-subst rejects %I", map[string]string{"user": "alice"}, []string{formats.FilterVarSubst}, nil,
			"%I", "", "var-subst: Unknown directive 'I' at position 1"},
		{"var-subst without percent", nil, []string{formats.FilterVarSubst}, nil, "plain", "plain", ""},
		// From Pushpin's src/handler/idformattest.cpp (renderContent).
		{"build-id default id", map[string]string{"id_format": "C3PO"}, []string{formats.FilterBuildID}, nil,
			"The ID is %I.", "The ID is C3PO.", ""},
		{"build-id hex", map[string]string{"id_format": "C3PO", "id_encoding": "hex"}, []string{formats.FilterBuildID}, nil,
			"The ID is %I.", "The ID is 4333504f.", ""},
		{"build-id literal hex", map[string]string{"id_format": "C3PO", "id_encoding": "hex"}, []string{formats.FilterBuildID}, nil,
			"The ID is %(R2D2)I.", "The ID is 52324432.", ""},
		{"build-id from prev-ids", idMeta, []string{formats.FilterBuildID}, map[string]string{"c": "7", "d": "9"},
			"id=%I", "id=7-9", ""},
		{"build-id channel without prev-id", idMeta, []string{formats.FilterBuildID}, map[string]string{"c": "7"},
			"no directive", "", "build-id: failed to render ID: No such variable 'd' at position 10"},
		{"build-id missing id_format", map[string]string{"user": "a"}, []string{formats.FilterBuildID}, nil,
			"no directive", "", "build-id: no sub meta 'id_format'"},
		{"build-id bad encoding", map[string]string{"id_format": "x", "id_encoding": "base64"}, []string{formats.FilterBuildID}, nil,
			"%I", "", "build-id: unsupported encoding: base64"},
		{"build-id rejects %(x)s", idMeta, []string{formats.FilterBuildID}, map[string]string{"c": "7", "d": "9"},
			"%(user)s", "", "build-id: Unknown directive 's' at position 7"},
		{"filters run in order", idMeta, []string{formats.FilterBuildID, formats.FilterVarSubst}, map[string]string{"c": "1", "d": "2"},
			"%I by %%(user)s", "1-2 by alice", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := subWith(tc.meta, tc.filters...)
			out, deliver, err := renderFor(s, "c", nil, []byte(tc.content), prevIDsOf(tc.prev))
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
		{"absent always matches", []string{formats.FilterVarSubst}, nil, true},
		{"empty matches none", []string{FilterSkipSelf}, []string{}, true},
		{"empty vs one", []string{formats.FilterVarSubst}, []string{}, false},
		{"one vs empty subscription", nil, []string{formats.FilterBuildID}, false},
		{"equal, delivery filters ignored", []string{FilterSkipSelf, formats.FilterBuildID, "unknown", formats.FilterVarSubst},
			[]string{formats.FilterBuildID, formats.FilterVarSubst}, true},
		{"order matters", []string{formats.FilterBuildID, formats.FilterVarSubst}, []string{formats.FilterVarSubst, formats.FilterBuildID}, false},
		{"duplicates count", []string{formats.FilterVarSubst, formats.FilterVarSubst}, []string{formats.FilterVarSubst}, false},
		{"names are exact", []string{formats.FilterVarSubst}, []string{"Var-Subst"}, false},
	}
	meta := map[string]string{"id_format": "x"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := subWith(meta, tc.sub...)
			_, deliver, err := renderFor(s, "c", tc.item, []byte("body"), nil)
			if deliver != tc.deliver {
				t.Fatalf("deliver = %v (%v), want %v", deliver, err, tc.deliver)
			}
			if !deliver && !errors.Is(err, formats.ErrContentFilterMismatch) {
				t.Fatalf("error = %v, want formats.ErrContentFilterMismatch", err)
			}
		})
	}
}

func TestRenderContentMismatchMessageMatchesPushpin(t *testing.T) {
	s := subWith(nil, FilterSkipSelf, formats.FilterBuildID, formats.FilterVarSubst)
	_, _, err := renderFor(s, "c", []string{"var-subst"}, []byte("x"), nil)
	want := "content filter mismatch: subscription=build-id,var-subst message=var-subst"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestRenderContentWithoutFiltersReturnsContentItself(t *testing.T) {
	content := []byte("%(user)s %I")
	for _, s := range []*Subscriber{NewSubscriber(KindWebSocket), subWith(nil, FilterSkipSelf)} {
		out, deliver, err := renderFor(s, "c", nil, content, nil)
		if err != nil || !deliver || &out[0] != &content[0] || len(out) != len(content) {
			t.Fatalf("got %q, %v, %v; want the same slice", out, deliver, err)
		}
	}
	other := subWith(map[string]string{"user": "a"}, formats.FilterVarSubst)
	if out, _, _ := renderFor(other, "elsewhere", nil, content, nil); &out[0] != &content[0] {
		t.Fatal("filters of another channel were applied")
	}
}

func TestRenderContentNoFiltersDoesNotAllocate(t *testing.T) {
	s := subWith(map[string]string{"user": "a"}, FilterSkipSelf)
	content := []byte("hello")
	allocs := testing.AllocsPerRun(100, func() {
		_, _, _ = renderFor(s, "c", nil, content, nil)
		_, _, _ = renderFor(s, "c", []string{}, content, nil)
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
		{"var-subst is not applied", []string{formats.FilterVarSubst}, "%(user)s", "%(user)s", ""},
		{"build-id literal", []string{formats.FilterVarSubst, formats.FilterBuildID}, "%(abc)I 5%%", "abc 5%", ""},
		{"build-id default id fails", []string{formats.FilterBuildID}, "%I",
			"", "build-id: No ID specified and no default ID in context at position 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSubscriber(KindStream)
			s.SetMeta(map[string]string{"user": "alice", "id_format": "%(c)s"})
			s.SetFilters("other", []string{FilterSkipSelf})
			s.SetFilters("c", tc.filters)
			out, err := initialFor(s, []byte(tc.body))
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

func BenchmarkRenderContentNoFilters(b *testing.B) {
	s := subWith(map[string]string{"user": "a"}, FilterSkipSelf)
	content := []byte("hello world")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, _ := renderFor(s, "c", nil, content, nil); !ok {
			b.Fatal("not delivered")
		}
	}
}
