package caddygrip

import (
	"errors"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/natsbus"
)

// hubMetrics is one hub's Prometheus collector, owned by its pool entry so
// that it outlives reloads: the hub's counters are read at scrape time, and
// the counters and histograms of requests grip makes or answers live here.
// Each config's registry gets the same collector; every series carries the
// hub's name.
type hubMetrics struct {
	hub *hub.Hub
	// bus reports the hub's NATS bus, if it has one.
	bus func() (natsbus.Stats, bool)

	connections, connectionsTotal, channels, published    *prometheus.Desc
	deliveries, dropped, reordered, disconnects           *prometheus.Desc
	busConnected, busReconnects, busMessages, busFollowed *prometheus.Desc
	historyResumes, historyItems, historyBytes            *prometheus.Desc
	historyBusResumes, historyBusWrites, historyBusReads  *prometheus.Desc
	historyBusReady                                       *prometheus.Desc

	originRequests  *prometheus.CounterVec
	originDuration  *prometheus.HistogramVec
	publishRequests *prometheus.CounterVec
	fanoutDuration  prometheus.Histogram
}

// originKind names a request grip itself makes through the route, which
// Caddy's own HTTP metrics never see.
type originKind string

// The origin request kinds, as the kind label gives them.
const (
	originRetry     originKind = "retry"     // a response hold's re-request (prev-id recovery, hint)
	originNextLink  originKind = "next_link" // a stream's next link
	originGoneLink  originKind = "gone_link" // the gone link, once the client left
	originWebSocket originKind = "websocket" // a WebSocket-over-HTTP request
)

var originKinds = []originKind{originRetry, originNextLink, originGoneLink, originWebSocket}

// fanoutBuckets span one subscriber to many thousands: 50µs to about 3s.
var fanoutBuckets = prometheus.ExponentialBuckets(50e-6, 4, 9)

// The dropped_items_total reasons of the NATS bus, beside the hub's.
const (
	dropBusSlowConsumer = "bus_slow_consumer" // NATS dropped messages for this node
	dropBusInvalid      = "bus_invalid"       // a message on a grip subject did not decode
)

func newHubMetrics(name string, h *hub.Hub, bus func() (natsbus.Stats, bool)) *hubMetrics {
	hubLabel := prometheus.Labels{"hub": name}
	desc := func(metric, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("caddy_grip_"+metric, help, labels, hubLabel)
	}
	m := &hubMetrics{
		hub:            h,
		bus:            bus,
		busConnected:   desc("bus_connected", "1 while the hub's NATS connection is up, 0 while it is down; absent with the local bus."),
		busReconnects:  desc("bus_reconnects_total", "Reconnections of the hub's NATS connection."),
		busMessages:    desc("bus_messages_total", "Item messages the hub's NATS bus sent (out) and received (in).", "direction"),
		busFollowed:    desc("bus_followed_channels", "Channels the hub follows on NATS, lingering ones included."),
		historyResumes: desc("history_resumes_total", "Holds with a prev-id on a channel that keeps history: caught up from it (recovered) or not (miss).", "result"),
		historyItems:   desc("history_items", "Items the hub's history keeps now."),
		historyBusResumes: desc("history_bus_resumes_total", "Recoveries served by the JetStream history because this node's ring lacked the prev-id (recovered), "+
			"and those whose live items were released without the second read confirming nothing fell between (unanchored).", "result"),
		historyBusWrites: desc("history_bus_writes_total", "Publishes on history channels the JetStream stream confirmed (stored) or refused or left unconfirmed (failed); live delivery goes on either way.", "result"),
		historyBusReads:  desc("history_bus_reads_total", "History reads sent to JetStream that answered (ok) or failed, and catch-ups that joined a queued read (shared).", "result"),
		historyBusReady:  desc("history_bus_ready", "1 once the JetStream history stream is created or updated as configured, 0 while it is not; absent without it."),
		historyBytes:     desc("history_bytes", "Bytes the hub's history keeps now."),
		connections:      desc("connections", "Held client connections now, by transport.", "transport"),
		connectionsTotal: desc("connections_total", "Holds started, by transport.", "transport"),
		channels:         desc("channels", "Channels with local subscribers."),
		published:        desc("published_items_total", "Items accepted by this node's publish endpoint."),
		deliveries:       desc("deliveries_total", "Items enqueued to a subscriber, by transport.", "transport"),
		dropped:          desc("dropped_items_total", "Items that did not reach someone who would have got them, by reason.", "reason"),
		reordered:        desc("reordered_items_total", "Items the sequencer held and delivered late."),
		disconnects:      desc("disconnects_total", "Holds ended, by transport and reason.", "transport", "reason"),
		originRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "grip", Name: "origin_requests_total", ConstLabels: hubLabel,
			Help: "Requests grip made itself through the route, by kind and status class.",
		}, []string{"kind", "code_class"}),
		originDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "caddy", Subsystem: "grip", Name: "origin_request_duration_seconds", ConstLabels: hubLabel,
			Help: "Time taken by requests grip made itself through the route, by kind.",
		}, []string{"kind"}),
		publishRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "grip", Name: "publish_requests_total", ConstLabels: hubLabel,
			Help: "Requests to the publish endpoint, by status code.",
		}, []string{"code"}),
		fanoutDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "caddy", Subsystem: "grip", Name: "fanout_duration_seconds", ConstLabels: hubLabel,
			Help: "Time from a publish request's body being read to its last item enqueued.", Buckets: fanoutBuckets,
		}),
	}
	for _, k := range originKinds {
		m.originDuration.WithLabelValues(string(k)) // present from the start, so rates begin at zero
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *hubMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.connections, m.connectionsTotal, m.channels, m.published,
		m.deliveries, m.dropped, m.reordered, m.disconnects,
		m.busConnected, m.busReconnects, m.busMessages, m.busFollowed,
		m.historyResumes, m.historyItems, m.historyBytes,
		m.historyBusResumes, m.historyBusWrites, m.historyBusReads, m.historyBusReady} {
		ch <- d
	}
	m.originRequests.Describe(ch)
	m.originDuration.Describe(ch)
	m.publishRequests.Describe(ch)
	m.fanoutDuration.Describe(ch)
}

// Collect implements prometheus.Collector: the hub's counters as they are
// now, then the request counters and histograms.
func (m *hubMetrics) Collect(ch chan<- prometheus.Metric) {
	c := m.hub.Counters()
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	for k := hub.KindResponse; k <= hub.KindWebSocket; k++ {
		t := k.String()
		ch <- prometheus.MustNewConstMetric(m.connections, gauge, float64(c.Holds[k]), t)
		ch <- prometheus.MustNewConstMetric(m.connectionsTotal, counter, float64(c.HoldsTotal[k]), t)
		ch <- prometheus.MustNewConstMetric(m.deliveries, counter, float64(c.Delivered[k]), t)
		for r := range hub.NumDisconnectReasons {
			ch <- prometheus.MustNewConstMetric(m.disconnects, counter, float64(c.Disconnects[k][r]), t, hub.DisconnectReason(r).String())
		}
	}
	ch <- prometheus.MustNewConstMetric(m.channels, gauge, float64(c.Channels))
	ch <- prometheus.MustNewConstMetric(m.published, counter, float64(c.Published))
	ch <- prometheus.MustNewConstMetric(m.reordered, counter, float64(c.Reordered))
	for r := range hub.NumDropReasons {
		ch <- prometheus.MustNewConstMetric(m.dropped, counter, float64(c.Dropped[r]), hub.DropReason(r).String())
	}
	ch <- prometheus.MustNewConstMetric(m.historyResumes, counter, float64(c.HistoryRecovered), "recovered")
	ch <- prometheus.MustNewConstMetric(m.historyResumes, counter, float64(c.HistoryMissed), "miss")
	ch <- prometheus.MustNewConstMetric(m.historyItems, gauge, float64(c.HistoryItems))
	ch <- prometheus.MustNewConstMetric(m.historyBytes, gauge, float64(c.HistoryBytes))
	if m.bus != nil {
		if st, ok := m.bus(); ok {
			up := 0.0
			if st.Connected {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(m.busConnected, gauge, up)
			ch <- prometheus.MustNewConstMetric(m.busReconnects, counter, float64(st.Reconnects))
			ch <- prometheus.MustNewConstMetric(m.busMessages, counter, float64(st.In), "in")
			ch <- prometheus.MustNewConstMetric(m.busMessages, counter, float64(st.Out), "out")
			ch <- prometheus.MustNewConstMetric(m.busFollowed, gauge, float64(st.Followed))
			ch <- prometheus.MustNewConstMetric(m.dropped, counter, float64(st.Dropped), dropBusSlowConsumer)
			ch <- prometheus.MustNewConstMetric(m.dropped, counter, float64(st.Invalid), dropBusInvalid)
			if st.HistoryOn {
				hs := st.History
				ready := 0.0
				if hs.Ready {
					ready = 1
				}
				ch <- prometheus.MustNewConstMetric(m.historyBusReady, gauge, ready)
				ch <- prometheus.MustNewConstMetric(m.historyBusResumes, counter, float64(c.HistoryFromBus), "recovered")
				ch <- prometheus.MustNewConstMetric(m.historyBusResumes, counter, float64(c.HistoryUnanchored), "unanchored")
				ch <- prometheus.MustNewConstMetric(m.historyBusWrites, counter, float64(hs.Stored), "stored")
				ch <- prometheus.MustNewConstMetric(m.historyBusWrites, counter, float64(hs.WriteFailed), "failed")
				ch <- prometheus.MustNewConstMetric(m.historyBusReads, counter, float64(hs.Fetches-hs.FetchFailed), "ok")
				ch <- prometheus.MustNewConstMetric(m.historyBusReads, counter, float64(hs.FetchFailed), "failed")
				ch <- prometheus.MustNewConstMetric(m.historyBusReads, counter, float64(hs.Shared), "shared")
			}
		}
	}
	m.originRequests.Collect(ch)
	m.originDuration.Collect(ch)
	m.publishRequests.Collect(ch)
	m.fanoutDuration.Collect(ch)
}

// registerMetrics adds the hub's collector to the config's registry. A
// second handler on the same hub finds it there already, which is fine; a
// reload's new registry gets the same collector, so counts carry on.
func (ref *hubRef) registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil || ref.metrics == nil {
		return nil
	}
	err := reg.Register(ref.metrics)
	if errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		return nil
	}
	return err
}

// observeOrigin records one origin request of kind that started at start.
func (m *hubMetrics) observeOrigin(kind originKind, start time.Time, res *capture, err error) {
	if m == nil {
		return
	}
	m.originRequests.WithLabelValues(string(kind), codeClass(res, err)).Inc()
	m.originDuration.WithLabelValues(string(kind)).Observe(time.Since(start).Seconds())
}

// codeClass is an origin answer's status class ("2xx" ... "5xx"), a
// handler error's, or "error" when there was no usable answer.
func codeClass(res *capture, err error) string {
	var he caddyhttp.HandlerError
	switch {
	case errors.As(err, &he) && he.StatusCode >= 100 && he.StatusCode <= 599:
		return statusClass(he.StatusCode)
	case err != nil || res == nil:
		return "error"
	case res.status == 0:
		return "2xx" // nothing written: net/http answers 200
	}
	return statusClass(res.status)
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "error"
	}
	return strconv.Itoa(code/100) + "xx"
}

// countPublish counts one publish request by the status it was answered.
func (m *hubMetrics) countPublish(code int) {
	if m != nil {
		m.publishRequests.WithLabelValues(strconv.Itoa(code)).Inc()
	}
}

// observeFanout records how long an accepted publish took from its body
// being read to the hub returning, which with the local bus is when its
// last item was enqueued.
func (m *hubMetrics) observeFanout(d time.Duration) {
	if m != nil {
		m.fanoutDuration.Observe(d.Seconds())
	}
}

// Interface guards
var _ prometheus.Collector = (*hubMetrics)(nil)
