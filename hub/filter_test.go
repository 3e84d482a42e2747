package hub

import (
	"testing"

	"github.com/caddy-grip/grip/formats"
)

func TestFiltersDropByMeta(t *testing.T) {
	cases := []struct {
		name    string
		filters []string
		subMeta map[string]string
		itMeta  map[string]string
		also    string // another channel the subscriber is on
		want    bool   // delivered
	}{
		{"no filter", nil, map[string]string{"user": "alice"}, map[string]string{"sender": "alice"}, "", true},
		{"skip-self own item", []string{FilterSkipSelf}, map[string]string{"User": "alice"}, map[string]string{"sender": "alice"}, "", false},
		{"skip-self other sender", []string{FilterSkipSelf}, map[string]string{"user": "alice"}, map[string]string{"sender": "bob"}, "", true},
		{"skip-self without user", []string{FilterSkipSelf}, nil, map[string]string{"sender": ""}, "", true},
		{"skip-users listed", []string{FilterSkipUsers}, map[string]string{"user": "alice"}, map[string]string{"skip_users": "bob, alice"}, "", false},
		{"skip-users not listed", []string{FilterSkipUsers}, map[string]string{"user": "carol"}, map[string]string{"skip_users": "bob, alice"}, "", true},
		{"require-sub met", []string{FilterRequireSub}, nil, map[string]string{"require_sub": "vip"}, "vip", true},
		{"require-sub unmet", []string{FilterRequireSub}, nil, map[string]string{"require_sub": "vip"}, "", false},
		{"unknown filter ignored", []string{"var-subst"}, nil, map[string]string{"sender": "x"}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Config{})
			s := NewSubscriber(KindStream)
			s.SetMeta(tc.subMeta)
			s.SetFilters("c", tc.filters)
			h.Subscribe(s, "c")
			if tc.also != "" {
				h.Subscribe(s, tc.also)
			}
			it := item("c", "", "")
			it.Meta = tc.itMeta
			h.Publish([]*formats.Item{it})
			if got := len(s.Take(nil)) == 1; got != tc.want {
				t.Fatalf("delivered = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFiltersApplyPerChannel(t *testing.T) {
	h := New(Config{})
	s := NewSubscriber(KindWebSocket)
	s.SetMeta(map[string]string{"user": "alice"})
	s.SetFilters("filtered", []string{FilterSkipSelf})
	h.Subscribe(s, "filtered")
	h.Subscribe(s, "open")
	for _, ch := range []string{"filtered", "open"} {
		it := item(ch, "", "")
		it.Meta = map[string]string{"sender": "alice"}
		h.Publish([]*formats.Item{it})
	}
	got := s.Take(nil)
	if len(got) != 1 || got[0].Channel != "open" {
		t.Fatalf("got %v, want only the item on the unfiltered channel", got)
	}
}
