package main

import (
	"fmt"
	"strings"
	"testing"
)

// chunk frames data as one chunk of a chunked body.
func chunk(data string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(data), data) }

func TestFeedDecodesStreamsSplitAnywhere(t *testing.T) {
	event := func(seq int) string { return string(appendPayload(nil, "data: ", 1000, uint64(seq), "\n\n")) }
	cases := []struct {
		name    string
		chunked bool
		stream  string
	}{
		{"one event per chunk", true, chunk(": ok\n\n") + chunk(event(1)) + chunk(event(2)) + chunk(event(3))},
		{"events across chunks", true, chunk(": ok\n\n"+event(1)[:30]) + chunk(event(1)[30:]+event(2)+event(3)[:5]) + chunk(event(3)[5:])},
		{"chunk extension and CRLF lines", true, "6;x=1\r\n: ok\r\n\r\n" + chunk(strings.ReplaceAll(event(1)+event(2)+event(3), "\n", "\r\n"))},
		{"not chunked", false, ": ok\n\n" + event(1) + event(2) + event(3)},
	}
	for _, c := range cases {
		// Every split of the stream into two reads, and one byte per read.
		for split := 0; split <= len(c.stream)+1; split++ {
			g := newSSEGroup("", 3)
			s := &sseSub{fd: -1, seen: make([]uint64, 1)}
			s.parse.chunked = c.chunked
			var reads []string
			if split > len(c.stream) {
				for i := range c.stream {
					reads = append(reads, c.stream[i:i+1])
				}
			} else {
				reads = []string{c.stream[:split], c.stream[split:]}
			}
			for _, p := range reads {
				if err := s.feed(g, []byte(p)); err != nil {
					t.Fatalf("%s, split %d: %v", c.name, split, err)
				}
			}
			if g.connected.Load() != 1 || g.delivered.Load() != 3 || s.distinct != 3 || s.dups != 0 || s.reorder != 0 {
				t.Fatalf("%s, split %d: connected %d, delivered %d, distinct %d, dups %d, reordered %d; want 1, 3, 3, 0, 0",
					c.name, split, g.connected.Load(), g.delivered.Load(), s.distinct, s.dups, s.reorder)
			}
		}
	}
}

func TestFeedReportsTheEndOfAChunkedStream(t *testing.T) {
	g := newSSEGroup("", 1)
	s := &sseSub{fd: -1, seen: make([]uint64, 1), parse: streamParse{chunked: true}}
	if err := s.feed(g, []byte(chunk(": ok\n\n")+"0\r\n\r\n")); err == nil {
		t.Fatal("the last chunk did not end the stream")
	}
	if err := (&sseSub{fd: -1, parse: streamParse{chunked: true}}).feed(g, []byte("zz\r\n")); err == nil {
		t.Fatal("a bad chunk size was accepted")
	}
}
