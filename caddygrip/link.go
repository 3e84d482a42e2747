package caddygrip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/caddy-grip/grip/instruct"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Next-link fetching, as in Pushpin: up to linkTries attempts, waiting
// 1s·2ⁿ plus up to a second of jitter between them.
const (
	linkTries     = 5
	linkBaseDelay = time.Second
	// goneTimeout bounds the best-effort gone POST.
	goneTimeout = 10 * time.Second
)

// linker fetches a hold's Grip-Link targets through the rest of the route:
// the next link, for paging and reliable streams, and the gone link when
// the client leaves. It keeps a copy of the client's request detached from
// the request's lifetime, so that a stream on a hijacked connection can
// still reach the origin after its handler returned.
type linker struct {
	g      *Grip
	origin *originRequest
}

func newLinker(g *Grip, r *http.Request, next caddyhttp.Handler) *linker {
	return &linker{g: g, origin: newDetachedOriginRequest(r, next, g.MaxInstructSize, g.ref.metrics, g.binding)}
}

// context is a context detached from the client request, for requests
// that outlive its handler.
func (l *linker) context() context.Context { return l.origin.context() }

// header is the client's request headers (already stripped of Grip-* and
// given Grip-Feature) with a fresh Grip-Sig and a Grip-Last per channel
// that has a prev-id.
func (l *linker) header(channels []instruct.Channel) (http.Header, error) {
	h := l.origin.orig.Header.Clone()
	if signer := l.g.signerNow(); signer != nil {
		tok, err := signer.Token()
		if err != nil {
			return nil, fmt.Errorf("signing Grip-Sig: %w", err)
		}
		h.Set("Grip-Sig", tok)
	}
	addGripLast(h, channels)
	return h, nil
}

// addGripLast tells the origin the last id seen on each channel.
func addGripLast(h http.Header, channels []instruct.Channel) {
	for _, c := range channels {
		if c.PrevID != "" {
			h.Add("Grip-Last", c.Name+"; last-id="+c.PrevID)
		}
	}
}

// fetchNext GETs the next link until it answers 2xx, at most linkTries
// times; wait sleeps between attempts and reports false when the hold
// ended meanwhile.
func (l *linker) fetchNext(ctx context.Context, u *url.URL, channels []instruct.Channel, wait func(time.Duration) bool) (*capture, error) {
	var lastErr error
	for attempt := range linkTries {
		if attempt > 0 {
			d := linkBaseDelay<<(attempt-1) + time.Duration(rand.Int64N(int64(time.Second)))
			if !wait(d) {
				return nil, context.Canceled
			}
		}
		h, err := l.header(channels)
		if err != nil {
			return nil, err
		}
		res, err := l.origin.doURL(ctx, originNextLink, http.MethodGet, u, h, nil)
		switch {
		case err != nil:
			lastErr = err
		case res.status < 200 || res.status > 299:
			lastErr = fmt.Errorf("next link answered %d", res.status)
		default:
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if c := l.g.logger.Check(zap.DebugLevel, "next link failed"); c != nil {
			c.Write(zap.String("link", u.String()), zap.Int("attempt", attempt+1), zap.Error(lastErr))
		}
	}
	return nil, fmt.Errorf("next link %s failed %d times: %w", u, linkTries, lastErr)
}

// gone POSTs to the gone link in the background, once, without retrying:
// the client has left and nobody waits for the answer.
func (l *linker) gone(u *url.URL) {
	l.g.sessions.Add(1)
	go func() {
		defer l.g.sessions.Done()
		ctx, cancel := context.WithTimeout(l.context(), goneTimeout)
		defer cancel()
		h, err := l.header(nil)
		if err == nil {
			var res *capture
			res, err = l.origin.doURL(ctx, originGoneLink, http.MethodPost, u, h, nil)
			if err == nil && (res.status < 200 || res.status > 299) {
				err = fmt.Errorf("gone link answered %d", res.status)
			}
		}
		if err != nil {
			l.g.logger.Warn("gone link failed", zap.String("link", u.String()), zap.Error(err))
		}
	}()
}
