// Package formats is GRIP's published item as a publisher writes it: the
// item and its formats (http-response, http-stream, ws-message), the
// decoder of a publish request body with Pushpin's errors, the wire limits
// every item must fit, RFC 6902 JSON Patch for body-patch, and the content
// filters (var-subst, build-id) that render an item per subscriber. It
// imports nothing from Caddy or the hub, which both build on it.
package formats

import "encoding/json"

// Action says what a published format asks a held connection to do.
type Action string

// The actions GRIP publishers may send; which ones a format accepts is
// checked when the item is decoded.
const (
	ActionSend    Action = "send"
	ActionHint    Action = "hint"
	ActionClose   Action = "close"
	ActionRefresh Action = "refresh"
)

// Header is one response header of an http-response format, kept in
// publish order so that repeated names survive.
type Header struct {
	Name  string
	Value string
}

// Item is one published message for one channel, decoded and validated once
// and then shared, read-only, by every subscriber it reaches.
type Item struct {
	// Channel is the channel name the item is published to.
	Channel string
	// ID identifies the item for de-duplication and sequencing; empty if none.
	ID string
	// PrevID is the ID of the item this one follows; empty if none.
	PrevID string
	// NoSeq asks the hub to deliver at once, bypassing the sequencer.
	NoSeq bool
	// Meta is publisher metadata that channel filters read (e.g. "sender").
	Meta map[string]string
	// Size is the publisher's own size figure for statistics; queue limits
	// never trust it.
	Size int

	// HTTPResponse is delivered to response holds (long-poll); nil if absent.
	HTTPResponse *HTTPResponse
	// HTTPStream is delivered to stream holds (HTTP streaming, SSE); nil if absent.
	HTTPStream *HTTPStream
	// WSMessage is delivered to WebSocket subscribers; nil if absent.
	WSMessage *WSMessage
}

// HTTPResponse is the http-response format: the whole answer to a held
// long-poll request.
type HTTPResponse struct {
	Action Action // send (default) or hint; close parses and is ignored
	Code   int    // status code, 200 when absent
	Reason string // reason phrase, standard text when empty
	// Headers are merged over the held response's headers.
	Headers []Header
	// Body comes from "body" or the decoded "body-bin".
	Body []byte
	// BodyPatch is an RFC 6902 JSON Patch applied to the held body; nil if absent.
	BodyPatch json.RawMessage `json:",omitempty"`
	// ContentFilters, when non-nil, must equal the subscription's content filters.
	ContentFilters []string
}

// HTTPStream is the http-stream format: content appended to a held stream.
type HTTPStream struct {
	Action  Action // send (default), hint or close
	Content []byte // from "content" or the decoded "content-bin"
	// ContentFilters, when non-nil, must equal the subscription's content filters.
	ContentFilters []string
}

// WSMessage is the ws-message format: one WebSocket message or control action.
type WSMessage struct {
	Action Action // send (default), close, refresh; hint is accepted and ignored
	// Type is "text", "binary", "ping" or "pong".
	Type    string
	Content []byte
	// Code and Reason are the close frame's, for action close; Code 0 means none.
	Code   int
	Reason string
	// ContentFilters, when non-nil, must equal the subscription's content filters.
	ContentFilters []string
}

// Cost is the number of bytes the item counts for in a subscriber's queue.
func (it *Item) Cost() int {
	n := 64
	if f := it.HTTPResponse; f != nil {
		n += len(f.Body) + len(f.BodyPatch)
		for _, h := range f.Headers {
			n += len(h.Name) + len(h.Value)
		}
	}
	if f := it.HTTPStream; f != nil {
		n += len(f.Content)
	}
	if f := it.WSMessage; f != nil {
		n += len(f.Content) + len(f.Reason)
	}
	return n
}
