package instruct

import (
	"errors"
	"strings"
	"testing"

	"github.com/caddy-grip/grip/formats"
)

// TestInstructRefusesChannelsLongerThanAPublishMayName checks that a
// channel name or prev-id over the publish decoder's caps is an
// instruction error (the hold is refused) in both instruction forms, and
// that names at the cap are kept.
func TestInstructRefusesChannelsLongerThanAPublishMayName(t *testing.T) {
	long := strings.Repeat("c", formats.DefaultMaxChannelLen+1)
	atCap := strings.Repeat("c", formats.DefaultMaxChannelLen)
	longID := strings.Repeat("i", formats.DefaultMaxIDLen+1)
	jsonBody := func(channel, prevID string) string {
		return `{"hold":{"mode":"stream","channels":[{"name":"` + channel + `","prev-id":"` + prevID + `"}]}}`
	}
	jsonHdr := hdr("Content-Type", "application/grip-instruct")
	tests := []struct {
		name string
		h    map[string][]string
		body string
		want string // "" when accepted
	}{
		{"header name over cap", hdr("Grip-Hold", "stream", "Grip-Channel", long), "", "channel name of 1025 bytes"},
		{"header prev-id over cap", hdr("Grip-Hold", "stream", "Grip-Channel", "a; prev-id="+longID), "", "prev-id of 1025 bytes"},
		{"header name at cap", hdr("Grip-Hold", "stream", "Grip-Channel", atCap), "", ""},
		{"JSON name over cap", jsonHdr, jsonBody(long, "x"), "channel name of 1025 bytes"},
		{"JSON prev-id over cap", jsonHdr, jsonBody("a", longID), "prev-id of 1025 bytes"},
		{"JSON name at cap", jsonHdr, jsonBody(atCap, "x"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := Parse(200, tt.h, []byte(tt.body), testReqURL)
			if tt.want == "" {
				if err != nil || len(in.Channels) != 1 {
					t.Fatalf("Parse = %v, %v; want one channel", in, err)
				}
				return
			}
			var ie *Error
			if !errors.As(err, &ie) || !strings.Contains(ie.Msg, tt.want) {
				t.Fatalf("Parse error = %v, want an Error containing %q", err, tt.want)
			}
		})
	}
}
