package wsoverhttp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Control message types, the values of a control message's "type" field.
const (
	ControlSubscribe    = "subscribe"
	ControlUnsubscribe  = "unsubscribe"
	ControlDetach       = "detach"
	ControlSetMeta      = "set-meta"
	ControlKeepAlive    = "keep-alive"
	ControlSendDelayed  = "send-delayed"
	ControlFlushDelayed = "flush-delayed"
	ControlSession      = "session"
)

// Defaults Pushpin applies when a keep-alive or send-delayed control message
// gives no timeout (or 0).
const (
	DefaultKeepAliveTimeout   = 55 * time.Second
	DefaultSendDelayedTimeout = 1 * time.Second
)

// ControlPrefix starts every GRIP control message a backend sends in a text
// message, whatever the message prefix is.
const ControlPrefix = "c:"

// Control is a decoded GRIP control message: what a WebSocket backend asks the
// proxy to do for this connection. Only the fields of its Type are set.
type Control struct {
	// Type is one of the Control* constants.
	Type string

	// Channel is the channel to subscribe to or unsubscribe from, never empty
	// for those types. The route's channel prefix is not applied here.
	Channel string
	// PrevID is the subscribe's "prev-id", an extension: the last item the
	// connection has, for a proxy that keeps history to replay what
	// followed; empty when absent or not a string.
	PrevID string
	// Filters are the subscribe filter names, in order, unvalidated: the
	// caller enforces GRIP's limit (5 per channel; Pushpin closes the
	// connection with 1011 above it).
	Filters []string

	// Name is the set-meta key, never empty for set-meta.
	Name string
	// Value is the set-meta value; HasValue is false when the value was
	// omitted (or null), which deletes the key.
	Value    string
	HasValue bool

	// Content is the keep-alive or send-delayed message, from "content-bin"
	// (base64, preferred when both are present) or "content". HasContent is
	// false when neither was given; for keep-alive that turns keep-alives off.
	Content    []byte
	HasContent bool
	// MessageType is the WebSocket message type to send Content as: "text"
	// (default, also for content-bin), "binary", "ping" or "pong".
	MessageType string
	// Timeout is the keep-alive period or the send delay, from "timeout", a
	// JSON number of seconds rounded to whole seconds. It is DefaultKeepAliveTimeout or DefaultSendDelayedTimeout
	// when absent or 0, and 0 for a keep-alive without content.
	Timeout time.Duration
	// Mode is the keep-alive mode: "idle" (send after Timeout without
	// traffic to the client; default) or "interval" (send every Timeout).
	Mode string

	// ID is the session id ("" clears it).
	ID string
}

// maxTimeoutSeconds keeps a timeout within a 32-bit second count, as
// Pushpin's int does.
const maxTimeoutSeconds = math.MaxInt32

// ParseControl decodes a control message's JSON, the payload after "c:".
// Invalid JSON, a non-object, a missing or unknown type, or a field of the
// wrong type or value is an error; Pushpin logs such messages at debug level
// and ignores them, and so should the caller. Field names are matched
// exactly; a JSON null counts as an absent field.
func ParseControl(payload []byte) (*Control, error) {
	var obj map[string]json.RawMessage
	err := json.Unmarshal(payload, &obj)
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) || (err == nil && obj == nil) { // an array, string, null, ...
		return nil, fmt.Errorf("grip control message is not an object")
	}
	if err != nil {
		return nil, fmt.Errorf("grip control message: invalid JSON: %w", err)
	}
	f := fields(obj)

	typ, ok, err := f.str("type")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("grip control object does not contain 'type'")
	}
	c := &Control{Type: typ}

	switch typ {
	case ControlSubscribe, ControlUnsubscribe:
		ch, ok, err := f.str("channel")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("grip control object does not contain 'channel'")
		}
		if ch == "" {
			return nil, fmt.Errorf("grip control object contains 'channel' with invalid value")
		}
		c.Channel = ch
		if typ == ControlSubscribe {
			if c.Filters, err = f.strList("filters"); err != nil {
				return nil, err
			}
			// An extension Pushpin does not know and so ignores: a
			// value of another type is ignored here too.
			c.PrevID, _, _ = f.str("prev-id")
		}

	case ControlSetMeta:
		name, ok, err := f.str("name")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("grip control object does not contain 'name'")
		}
		if name == "" {
			return nil, fmt.Errorf("grip control object contains 'name' with invalid value")
		}
		c.Name = name
		if c.Value, c.HasValue, err = f.str("value"); err != nil {
			return nil, err
		}

	case ControlKeepAlive, ControlSendDelayed:
		if err := f.message(c); err != nil {
			return nil, err
		}

	case ControlSession:
		if c.ID, _, err = f.str("id"); err != nil {
			return nil, err
		}

	case ControlDetach, ControlFlushDelayed:
		// No fields.

	default:
		return nil, fmt.Errorf("grip control object: 'type' contains unknown value: %q", clipString(typ))
	}
	return c, nil
}

// fields reads typed values out of a decoded JSON object.
type fields map[string]json.RawMessage

// raw returns the field's JSON, or nil when it is absent or null.
func (f fields) raw(key string) json.RawMessage {
	v, ok := f[key]
	if !ok || bytes.Equal(v, []byte("null")) {
		return nil
	}
	return v
}

func (f fields) str(key string) (s string, ok bool, err error) {
	v := f.raw(key)
	if v == nil {
		return "", false, nil
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false, wrongType(key)
	}
	return s, true, nil
}

func (f fields) strList(key string) ([]string, error) {
	v := f.raw(key)
	if v == nil {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return nil, wrongType(key)
	}
	out := make([]string, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it, &out[i]); err != nil {
			return nil, fmt.Errorf("grip control object: '%s' contains value with wrong type", key)
		}
	}
	return out, nil
}

// message fills the fields shared by keep-alive and send-delayed.
func (f fields) message(c *Control) error {
	mt, ok, err := f.str("message-type")
	if err != nil {
		return err
	}
	if !ok {
		mt = "text"
	}
	switch mt {
	case "text", "binary", "ping", "pong":
		c.MessageType = mt
	default:
		return fmt.Errorf("grip control object contains 'message-type' with unknown value")
	}

	if v := f.raw("content-bin"); v != nil {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return wrongType("content-bin")
		}
		b, err := decodeBase64(s)
		if err != nil {
			return fmt.Errorf("grip control object contains 'content-bin' with invalid base64: %w", err)
		}
		c.Content, c.HasContent = b, true
	} else if s, ok, err := f.str("content"); err != nil {
		return err
	} else if ok {
		c.Content, c.HasContent = []byte(s), true
	}

	if c.Type == ControlKeepAlive {
		mode, _, err := f.str("mode")
		if err != nil {
			return err
		}
		c.Mode = "idle"
		if mode == "interval" {
			c.Mode = "interval"
		}
	}

	// As in Pushpin, the timeout is read only when there is content, and a
	// keep-alive without content has none (it turns keep-alives off).
	if !c.HasContent {
		if c.Type == ControlSendDelayed {
			c.Timeout = DefaultSendDelayedTimeout
		}
		return nil
	}
	secs, err := f.seconds("timeout")
	if err != nil {
		return err
	}
	switch {
	case secs > 0:
		c.Timeout = time.Duration(secs) * time.Second
	case c.Type == ControlKeepAlive:
		c.Timeout = DefaultKeepAliveTimeout
	default:
		c.Timeout = DefaultSendDelayedTimeout
	}
	return nil
}

// seconds reads a non-negative JSON number of seconds, rounded to whole
// seconds; absent is 0.
func (f fields) seconds(key string) (int64, error) {
	v := f.raw(key)
	if v == nil {
		return 0, nil
	}
	var x float64
	if err := json.Unmarshal(v, &x); err != nil {
		return 0, wrongType(key)
	}
	x = math.Round(x)
	if x < 0 || x > maxTimeoutSeconds {
		return 0, fmt.Errorf("grip control object contains '%s' with invalid value", key)
	}
	return int64(x), nil
}

func wrongType(key string) error {
	return fmt.Errorf("grip control object contains '%s' with wrong type", key)
}

// decodeBase64 accepts standard base64 with or without padding; line breaks
// are ignored, as base64 encoders commonly emit them.
func decodeBase64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

func clipString(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max]
	}
	return s
}
