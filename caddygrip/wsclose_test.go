package caddygrip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWireCloseCodeSendsOnlyCodesAllowedOnTheWire(t *testing.T) {
	for _, c := range []struct{ in, want int }{
		{0, 1000}, {1005, 1000}, {1000, 1000}, {1003, 1003}, {1007, 1007}, {1014, 1014},
		{3000, 3000}, {4999, 4999},
		{999, 1011}, {1004, 1011}, {1006, 1011}, {1015, 1011}, {2999, 1011}, {5000, 1011}, {65535, 1011},
	} {
		if got := wireCloseCode(c.in); got != c.want {
			t.Errorf("wireCloseCode(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestClosePayloadFitsAControlFrameOnACharacterBoundary(t *testing.T) {
	for _, reason := range []string{"short", strings.Repeat("a", 200), strings.Repeat("é", 100), "bad\xffutf8"} {
		p := closePayload(1000, reason)
		if len(p) > maxControlPayload {
			t.Errorf("reason %q: payload of %d bytes", reason, len(p))
		}
		if !utf8.Valid(p[2:]) {
			t.Errorf("reason %q: payload reason not UTF-8: %q", reason, p[2:])
		}
	}
}
