package hub

import "github.com/caddy-grip/grip/formats"

// ContentFilters returns what formats.Render needs to render an item for
// this subscriber on channel: the subscription's filter names there, in
// order, and the subscriber's meta. Both are shared and read-only; nil when
// the subscriber has none.
func (s *Subscriber) ContentFilters(channel string) (names []string, meta map[string]string) {
	if f := s.filt.Load(); f != nil {
		return f.byChannel[channel], f.meta
	}
	return nil, nil
}

// InitialBuildID reports whether any of the subscriber's channels names the
// build-id filter, which formats.RenderInitial applies to an instruction's
// initial body, and the subscriber's meta.
func (s *Subscriber) InitialBuildID() (on bool, meta map[string]string) {
	f := s.filt.Load()
	if f == nil {
		return false, nil
	}
	for _, names := range f.byChannel {
		for _, name := range names {
			if name == formats.FilterBuildID {
				return true, f.meta
			}
		}
	}
	return false, f.meta
}
