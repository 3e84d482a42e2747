package caddygrip

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-grip/grip/hub"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// Bounds of the channel listing.
const (
	defaultChannelLimit = 100
	maxChannelLimit     = 10000
)

// AdminAPI serves the hubs of this node on Caddy's admin endpoint, under
// /grip/: what each hub holds and which channels are busiest, so that
// operators can answer per-channel questions without per-channel metrics.
//
//	GET /grip/hubs                                  every hub: gauges and counters
//	GET /grip/hubs/<hub>                            one hub
//	GET /grip/hubs/<hub>/channels?prefix=&limit=    its channels, most subscribers first
//	GET /grip/hubs/<hub>/channels/<channel>         one channel
//
// Hub and channel names are path-escaped.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.grip",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/grip/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// hubView is a hub as the admin API shows it.
type hubView struct {
	Name string `json:"name"`
	// Bus is "local" or "nats".
	Bus string `json:"bus"`
	// Channels and Subscribers are the hub's gauges.
	Channels    int `json:"channels"`
	Subscribers int `json:"subscribers"`
	// Counters since the hub was created (they survive reloads).
	Published         uint64 `json:"published"`
	Delivered         uint64 `json:"delivered"`
	Duplicates        uint64 `json:"duplicates"`
	Reordered         uint64 `json:"reordered"`
	SequencerTimeouts uint64 `json:"sequencer_timeouts"`
	SequencerDropped  uint64 `json:"sequencer_dropped"`
	SlowDisconnects   uint64 `json:"slow_disconnects"`
	// The caches' sizes in entries and bytes.
	SequencerEntries int `json:"sequencer_entries"`
	SequencerBytes   int `json:"sequencer_bytes"`
	DedupEntries     int `json:"dedup_entries"`
	DedupBytes       int `json:"dedup_bytes"`
	LastIDEntries    int `json:"last_id_entries"`
	LastIDBytes      int `json:"last_id_bytes"`
}

func viewHub(name string, p *pooledHub) hubView {
	st := p.Stats()
	p.busMu.Lock()
	bus := "local"
	if p.busKey != "" {
		bus = "nats"
	}
	p.busMu.Unlock()
	return hubView{
		Name: name, Bus: bus, Channels: st.Channels, Subscribers: st.Subscribers,
		Published: st.Published, Delivered: st.Delivered, Duplicates: st.Duplicates,
		Reordered: st.Reordered, SequencerTimeouts: st.SequencerTimeouts,
		SequencerDropped: st.SequencerDropped, SlowDisconnects: st.SlowDisconnects,
		SequencerEntries: st.SequencerEntries, SequencerBytes: st.SequencerBytes,
		DedupEntries: st.DedupEntries, DedupBytes: st.DedupBytes,
		LastIDEntries: st.LastIDEntries, LastIDBytes: st.LastIDBytes,
	}
}

// channelView is a channel as the admin API shows it.
type channelView struct {
	Name        string `json:"name"`
	Subscribers int    `json:"subscribers"`
	// Transports counts the subscribers by transport: response
	// (long-poll), stream (HTTP streaming and SSE), websocket.
	Transports map[string]int `json:"transports"`
	// LastID is the channel's last published id, when one is remembered.
	LastID *string `json:"last_id"`
}

func viewChannel(ci hub.ChannelInfo) channelView {
	v := channelView{Name: ci.Name, Subscribers: ci.Subscribers,
		Transports: map[string]int{"response": ci.Response, "stream": ci.Stream, "websocket": ci.WebSocket}}
	if ci.LastIDKnown {
		id := ci.LastID
		v.LastID = &id
	}
	return v
}

// channelList is the answer of a channel listing.
type channelList struct {
	Hub string `json:"hub"`
	// Matched is how many channels matched the prefix; Channels holds at
	// most limit of them.
	Matched  int           `json:"matched"`
	Channels []channelView `json:"channels"`
}

func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed: use GET", r.Method)}
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/grip/hubs")
	if !ok || rest != "" && rest[0] != '/' {
		return notFound("no such grip endpoint: %s", r.URL.Path)
	}
	rest = strings.TrimPrefix(rest, "/")
	if rest == "" {
		return writeJSON(w, allHubs())
	}
	rawHub, rest, _ := strings.Cut(rest, "/")
	name, err := url.PathUnescape(rawHub)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("hub name: %w", err)}
	}
	p := lookupPooled(name)
	if p == nil {
		return notFound("no hub %q on this node", name)
	}
	switch {
	case rest == "":
		return writeJSON(w, viewHub(name, p))
	case rest == "channels" || rest == "channels/":
		return a.listChannels(w, r, name, p)
	case strings.HasPrefix(rest, "channels/"):
		ch, err := url.PathUnescape(strings.TrimPrefix(rest, "channels/"))
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("channel name: %w", err)}
		}
		ci, found := p.Channel(ch)
		if !found {
			return notFound("channel %q has no subscribers and no last id on hub %q", ch, name)
		}
		return writeJSON(w, viewChannel(ci))
	}
	return notFound("no such grip endpoint: %s", r.URL.Path)
}

func (a *AdminAPI) listChannels(w http.ResponseWriter, r *http.Request, name string, p *pooledHub) error {
	q := r.URL.Query()
	limit := defaultChannelLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > maxChannelLimit {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest,
				Err: fmt.Errorf("limit %q: want a whole number from 1 to %d", s, maxChannelLimit)}
		}
		limit = n
	}
	top, matched := p.Channels(q.Get("prefix"), limit)
	out := channelList{Hub: name, Matched: matched, Channels: make([]channelView, 0, len(top))}
	for _, ci := range top {
		out.Channels = append(out.Channels, viewChannel(ci))
	}
	return writeJSON(w, out)
}

// allHubs lists every hub on this node, by name.
func allHubs() []hubView {
	out := []hubView{}
	hubs.Range(func(key, value any) bool {
		out = append(out, viewHub(key.(string), value.(*pooledHub)))
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func notFound(format string, args ...any) error {
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf(format, args...)}
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: errors.New("encoding the answer")}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// Interface guards
var _ caddy.AdminRouter = (*AdminAPI)(nil)
