package integration_test

import (
	"fmt"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
)

// startNATSJetStream runs a NATS server with JetStream, its store in a
// temporary directory.
func startNATSJetStream(t *testing.T, port int) *natsserver.Server {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = port
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	return natstest.RunServer(&opts)
}

// startHistoryCluster runs n Caddy nodes joined over a NATS server (with
// JetStream or without) and keeping history of every channel, all
// proxying to one historyOrigin. Holds go through the nodes' /nofirst/
// route, so that the origin sees only the requests history could not
// spare it.
func startHistoryCluster(t *testing.T, n int, jetStream bool) (*cluster, *historyOrigin) {
	t.Helper()
	o := &historyOrigin{}
	c := &cluster{t: t, natsPort: freePort(), origin: &clusterOrigin{url: startOrigin(t, o.serve).URL},
		grip: "history {\n\t\t\tsize 100\n\t\t\tttl 10m\n\t\t}"}
	if jetStream {
		c.nats = startNATSJetStream(t, c.natsPort)
	} else {
		c.nats = startNATS(t, c.natsPort)
	}
	c.startNodes(n)
	return c, o
}

func publishSeriesTo(t *testing.T, n *clusterNode, ch string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		mustPublishTo(t, n, fmt.Sprintf(`{"items":[{"channel":%q,"id":"%d","formats":{"http-stream":{"content":"m%d\n"},"http-response":{"body":"r%d\n"}}}]}`, ch, i, i, i))
	}
}

const busReady = `caddy_grip_history_bus_ready{hub="default"}`

func TestClusterHistoryCatchesUpANodeThatNeverFollowedTheChannel(t *testing.T) {
	c, o := startHistoryCluster(t, 3, true)
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]
	for _, n := range c.nodes {
		eventually(t, n.name+" history stream ready", func() bool { return c.metric(n, busReady) == 1 })
	}
	// Published on A while no node follows the channel: only the
	// JetStream stream has the items.
	publishSeriesTo(t, a, "jh", 1, 5)
	if got := c.metric(a, `caddy_grip_history_bus_writes_total{hub="default",result="stored"}`); got < 5 {
		t.Fatalf("A's stored writes: %v", got)
	}

	s := openStream(t, "http://"+cn.addr+"/nofirst/stream/jh?prev=2", nil)
	for _, want := range []string{"open\n", "m3\n", "m4\n", "m5\n"} {
		if got := s.next(t); got != want {
			t.Fatalf("stream on C got %q, want %q", got, want)
		}
	}
	publishSeriesTo(t, a, "jh", 6, 6)
	if got := s.next(t); got != "m6\n" {
		t.Fatalf("stream on C, live after the catch-up: %q", got)
	}
	// A long-poll on B, which follows nothing either, is answered at once.
	if got := await(t, getBodyAsync("http://"+b.addr+"/nofirst/poll/jh?prev=4")); got != "r5\n" {
		t.Fatalf("long-poll on B got %q, want the item after its prev-id", got)
	}
	// The origin was asked once per hold, never with Grip-Last.
	if got := o.seen(); len(got) != 2 || got[0] != "/stream/jh " || got[1] != "/poll/jh " {
		t.Fatalf("origin requests %q, want the stream and the long-poll only", got)
	}
	for _, n := range []*clusterNode{b, cn} {
		if got := c.metric(n, `caddy_grip_history_bus_resumes_total{hub="default",result="recovered"}`); got != 1 {
			t.Fatalf("%s: bus recoveries %v, want 1", n.name, got)
		}
	}

	// An id JetStream does not have: the re-request with Grip-Last, as
	// without history.
	if got := await(t, getBodyAsync("http://"+cn.addr+"/nofirst/poll/jh?prev=unknown")); got != "recovered\n" {
		t.Fatalf("long-poll with an unknown prev-id got %q, want the origin's recovery answer", got)
	}
	if got := o.seen(); len(got) != 4 || got[2] != "/poll/jh " || got[3] != "/poll/jh jh; last-id=unknown" {
		t.Fatalf("origin requests %q, want the long-poll then its re-request with Grip-Last", got)
	}
	if got := c.metric(cn, `caddy_grip_history_resumes_total{hub="default",result="miss"}`); got != 1 {
		t.Fatalf("C's history misses: %v", got)
	}
}

func TestClusterHistoryLiveDeliveryGoesOnWithoutJetStream(t *testing.T) {
	c, o := startHistoryCluster(t, 3, false)
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]
	s := openStream(t, "http://"+b.addr+"/nofirst/stream/jl", nil)
	if got := s.next(t); got != "open\n" {
		t.Fatalf("stream on B: %q", got)
	}
	eventually(t, "B following the channel", func() bool {
		return c.nats.GlobalAccount().Interest(historySubject("jl")) >= 1
	})
	publishSeriesTo(t, a, "jl", 1, 3)
	for _, want := range []string{"m1\n", "m2\n", "m3\n"} {
		if got := s.next(t); got != want {
			t.Fatalf("stream on B got %q, want %q", got, want)
		}
	}
	if got := c.metric(a, `caddy_grip_history_bus_writes_total{hub="default",result="failed"}`); got < 1 {
		t.Fatalf("A's failed history writes: %v, want them counted", got)
	}
	if got := c.metric(a, busReady); got != 0 {
		t.Fatalf("A's history stream ready: %v", got)
	}
	// A prev-id C's ring does not know falls back to the origin.
	if got := await(t, getBodyAsync("http://"+cn.addr+"/nofirst/poll/jl?prev=1")); got != "recovered\n" {
		t.Fatalf("long-poll on C got %q, want the origin's recovery answer", got)
	}
	if got := o.seen(); len(got) != 3 || got[2] != "/poll/jl jl; last-id=1" {
		t.Fatalf("origin requests %q", got)
	}
}

// historySubject is the NATS subject of a channel of the default hub
// that keeps history.
func historySubject(channel string) string {
	return strings.Replace(subject(channel), ".ch.", ".h.", 1)
}
