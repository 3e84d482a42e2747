package hub

import (
	"strings"

	"github.com/caddy-grip/grip/formats"
)

// Filter names a subscriber may ask for on a channel. The three below only
// decide whether an item is delivered; unknown names are ignored here.
// Pushpin's content-rewriting filters (var-subst, build-id) are applied
// at rendering, by formats.Render.
const (
	FilterSkipSelf   = "skip-self"   // drop items whose meta "sender" is the subscriber's "user"
	FilterSkipUsers  = "skip-users"  // drop items whose meta "skip_users" lists the subscriber's "user"
	FilterRequireSub = "require-sub" // drop items whose meta "require_sub" names a channel the subscriber is not on
)

// subFilters is a subscriber's meta and per-channel filters, replaced
// whole on change so that fan-out reads it without a lock.
type subFilters struct {
	meta      map[string]string   // keys lower-cased
	byChannel map[string][]string // channel -> filter names
}

// SetMeta replaces the subscriber's meta, which filters compare with each
// item's meta (Grip-Set-Meta, Set-Meta-*, the set-meta control message).
// Names match case-insensitively.
func (s *Subscriber) SetMeta(meta map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.filtersLocked()
	f.meta = make(map[string]string, len(meta))
	for k, v := range meta {
		f.meta[strings.ToLower(k)] = v
	}
	s.filt.Store(f)
}

// SetFilters sets the filters the subscriber applies to items on channel;
// call it before subscribing to the channel.
func (s *Subscriber) SetFilters(channel string, filters []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.filtersLocked()
	f.byChannel = make(map[string][]string, len(f.byChannel)+1)
	if old := s.filt.Load(); old != nil {
		for k, v := range old.byChannel {
			f.byChannel[k] = v
		}
	}
	if len(filters) == 0 {
		delete(f.byChannel, channel)
	} else {
		f.byChannel[channel] = append([]string(nil), filters...)
	}
	s.filt.Store(f)
}

// filtersLocked is a copy of the current filters to modify and store.
func (s *Subscriber) filtersLocked() *subFilters {
	f := &subFilters{}
	if old := s.filt.Load(); old != nil {
		*f = *old
	}
	return f
}

// filteredOut reports whether the subscriber's filters on channel drop it.
// It runs in fan-out, under the channel lock.
func (s *Subscriber) filteredOut(channel string, it *formats.Item) bool {
	f := s.filt.Load()
	if f == nil {
		return false
	}
	names := f.byChannel[channel]
	if len(names) == 0 {
		return false
	}
	user := f.meta["user"]
	for _, name := range names {
		switch name {
		case FilterSkipSelf:
			if user != "" && it.Meta["sender"] == user {
				return true
			}
		case FilterSkipUsers:
			if user != "" && listContains(it.Meta["skip_users"], user) {
				return true
			}
		case FilterRequireSub:
			if req := it.Meta["require_sub"]; req != "" && !s.subscribedTo(req) {
				return true
			}
		}
	}
	return false
}

func (s *Subscriber) subscribedTo(channel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.chans[channel]
	return ok
}

// listContains reports whether a comma-separated list holds v (trimmed).
func listContains(list, v string) bool {
	for item := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(item) == v {
			return true
		}
	}
	return false
}
