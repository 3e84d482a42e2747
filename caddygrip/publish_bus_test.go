package caddygrip

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
)

// failingBus refuses every publish with err.
type failingBus struct{ err error }

func (b failingBus) Publish([]*formats.Item) error { return b.err }
func (failingBus) Follow(string) error             { return nil }
func (failingBus) Unfollow(string) error           { return nil }
func (failingBus) Close() error                    { return nil }

func TestPublishAnswersWhatTheBusCannotCarry(t *testing.T) {
	for _, tc := range []struct {
		err       error
		code      int
		bodyStart string
	}{
		{errors.New("not connected to NATS"), http.StatusServiceUnavailable, "Service Unavailable"},
		{fmt.Errorf("%w: 2 MB", hub.ErrItemTooLarge), http.StatusRequestEntityTooLarge, "item too large"},
	} {
		p := &Publish{}
		if err := provisionPublish(t, p); err != nil {
			t.Fatal(err)
		}
		p.ref.hub.SetBus(failingBus{tc.err})
		code, body := servePublish(t, p, "", okItem)
		if code != tc.code || !strings.HasPrefix(body, tc.bodyStart) {
			t.Errorf("%v: %d %q, want %d %q...", tc.err, code, body, tc.code, tc.bodyStart)
		}
		p.ref.hub.SetBus(nil)
	}
}
