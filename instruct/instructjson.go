package instruct

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-grip/grip/formats"
)

// The application/grip-instruct JSON body: the hold and response objects
// that override what the headers said.

// jsonObject is a JSON object whose members are decoded on demand, so that
// errors name the member the way Pushpin's do.
type jsonObject map[string]json.RawMessage

func decodeJSONObject(raw json.RawMessage) (jsonObject, bool) {
	var o jsonObject
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &o) != nil {
		return nil, false
	}
	return o, true
}

// member returns a member that is present and not null; Pushpin treats a
// null member as absent.
func (o jsonObject) member(k string) (json.RawMessage, bool) {
	raw, ok := o[k]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func jsonList(raw json.RawMessage) ([]json.RawMessage, bool) {
	var l []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &l) != nil {
		return nil, false
	}
	return l, true
}

// jsonInt reads a JSON number, dropping any fraction as Qt's toInt does;
// ok is false for other types. The result is clamped to 32 bits plus one, so
// that range checks reject what Qt could not represent.
func jsonInt(raw json.RawMessage) (n int, ok bool) {
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	f = math.Trunc(max(min(f, math.MaxInt32+1), math.MinInt32-1))
	return int(f), true
}

func jsonErr(format string, args ...any) error { return instructErr("body", format, args...) }

// parseJSON reads an application/grip-instruct body. Its hold overrides the
// Grip-* headers (its channels and meta add to theirs), and its response
// replaces the origin's headers and body; Grip-Link still applies.
func (p *instructParser) parseJSON(body []byte) error {
	if !json.Valid(body) {
		return jsonErr("failed to parse application/grip-instruct content as JSON")
	}
	o, ok := decodeJSONObject(bytes.TrimLeft(body, " \t\r\n"))
	if !ok {
		return jsonErr("instruct must be an object")
	}
	if raw, ok := o.member("hold"); ok {
		hold, ok := decodeJSONObject(raw)
		if !ok {
			return jsonErr("instruct contains 'hold' with wrong type")
		}
		if err := p.parseJSONHold(hold); err != nil {
			return err
		}
	}
	in := p.in
	in.Header, in.Body = http.Header{}, nil
	raw, ok := o.member("response")
	if !ok {
		return nil
	}
	r, ok := decodeJSONObject(raw)
	if !ok {
		return jsonErr("instruct contains 'response' with wrong type")
	}
	if raw, ok := r.member("code"); ok {
		code, ok := jsonInt(raw)
		if !ok {
			return jsonErr("response contains 'code' with wrong type")
		}
		if !validStatus(code) {
			return jsonErr("response contains 'code' with invalid value")
		}
		in.Status, in.Reason = code, ""
	}
	if raw, ok := r.member("reason"); ok {
		reason, ok := jsonString(raw)
		if !ok {
			return jsonErr("response contains 'reason' with wrong type")
		}
		if strings.ContainsAny(reason, "\r\n") {
			return jsonErr("response contains 'reason' with invalid value")
		}
		if reason != "" {
			in.Reason = reason
		}
	}
	if raw, ok := r.member("headers"); ok {
		h, err := parseJSONHeaders(raw)
		if err != nil {
			return err
		}
		in.Header = h
	}
	if raw, ok := r.member("body-bin"); ok {
		s, ok := jsonString(raw)
		if !ok {
			return jsonErr("response contains 'body-bin' with wrong type")
		}
		b, err := formats.DecodeBase64([]byte(s))
		if err != nil {
			return jsonErr("response contains 'body-bin' with invalid value")
		}
		in.Body = b
	} else if raw, ok := r.member("body"); ok {
		s, ok := jsonString(raw)
		if !ok {
			return jsonErr("response contains 'body' with wrong type")
		}
		in.Body = []byte(s)
	}
	return nil
}

func (p *instructParser) parseJSONHold(hold jsonObject) error {
	in := p.in
	in.Hold = HoldResponse
	if raw, ok := hold.member("mode"); ok {
		switch mode, ok := jsonString(raw); {
		case !ok:
			return jsonErr("hold contains 'mode' with wrong type")
		case mode == "response":
		case mode == "stream":
			in.Hold = HoldStream
		default:
			return jsonErr("hold 'mode' must be set to either 'response' or 'stream'")
		}
	}
	raw, ok := hold.member("channels")
	if !ok {
		return jsonErr("hold does not contain 'channels'")
	}
	channels, ok := jsonList(raw)
	if !ok {
		return jsonErr("hold contains 'channels' with wrong type")
	}
	for _, raw := range channels {
		c, err := parseJSONChannel(raw)
		if err != nil {
			return err
		}
		if msg := channelTooLong(c); msg != "" {
			return jsonErr("%s", msg)
		}
		if c.Name != "" { // skipped like an empty Grip-Channel entry
			in.Channels = append(in.Channels, c)
		}
	}
	if raw, ok := hold.member("timeout"); ok {
		t, ok := jsonInt(raw)
		if !ok {
			return jsonErr("hold contains 'timeout' with wrong type")
		}
		if t < 0 || t > math.MaxInt32 {
			return jsonErr("hold contains 'timeout' with invalid value")
		}
		in.Timeout = time.Duration(t) * time.Second
	}
	if raw, ok := hold.member("keep-alive"); ok {
		if err := p.parseJSONKeepAlive(raw); err != nil {
			return err
		}
	}
	if raw, ok := hold.member("meta"); ok {
		meta, ok := decodeJSONObject(raw)
		if !ok {
			return jsonErr("hold contains 'meta' with wrong type")
		}
		for k, raw := range meta {
			v, ok := jsonString(raw)
			if !ok {
				return jsonErr("'meta' contains '%s' with wrong type", k)
			}
			if in.Meta == nil {
				in.Meta = make(map[string]string, len(meta))
			}
			in.Meta[k] = v
		}
	}
	return nil
}

func parseJSONChannel(raw json.RawMessage) (Channel, error) {
	var c Channel
	o, ok := decodeJSONObject(raw)
	if !ok {
		return c, jsonErr("channel is not an object")
	}
	raw, ok = o.member("name")
	if !ok {
		return c, jsonErr("channel does not contain 'name'")
	}
	if c.Name, ok = jsonString(raw); !ok {
		return c, jsonErr("channel contains 'name' with wrong type")
	}
	if raw, ok := o.member("prev-id"); ok {
		if c.PrevID, ok = jsonString(raw); !ok {
			return c, jsonErr("channel contains 'prev-id' with wrong type")
		}
	}
	if raw, ok := o.member("filters"); ok {
		filters, ok := jsonList(raw)
		if !ok {
			return c, jsonErr("channel contains 'filters' with wrong type")
		}
		for _, raw := range filters {
			f, ok := jsonString(raw)
			if !ok {
				return c, jsonErr("filters contains value with wrong type")
			}
			if f != "" {
				c.Filters = append(c.Filters, f)
			}
		}
	}
	// Pushpin checks this for Grip-Channel only; the limit is the same.
	if len(c.Filters) > MaxFilters {
		return c, jsonErr("too many filters for channel '%s'", c.Name)
	}
	return c, nil
}

// parseJSONKeepAlive reads hold.keep-alive: content or content-bin, and
// timeout (default 55). It has no mode: unless Grip-Keep-Alive set one, the
// timer is never reset by sends, which is interval mode (as in Pushpin).
// Without content, the data of Grip-Keep-Alive, if any, is kept.
func (p *instructParser) parseJSONKeepAlive(raw json.RawMessage) error {
	ka, ok := decodeJSONObject(raw)
	if !ok {
		return jsonErr("hold contains 'keep-alive' with wrong type")
	}
	if raw, ok := ka.member("content-bin"); ok {
		s, ok := jsonString(raw)
		if !ok {
			return jsonErr("keep-alive contains 'content-bin' with wrong type")
		}
		b, err := formats.DecodeBase64([]byte(s))
		if err != nil {
			return jsonErr("keep-alive contains 'content-bin' with invalid value")
		}
		p.kaData = b
	} else if raw, ok := ka.member("content"); ok {
		s, ok := jsonString(raw)
		if !ok {
			return jsonErr("keep-alive contains 'content' with wrong type")
		}
		p.kaData = []byte(s)
	}
	p.kaTimeout = defaultKeepAliveTimeout
	if raw, ok := ka.member("timeout"); ok {
		t, ok := jsonInt(raw)
		if !ok {
			return jsonErr("keep-alive contains 'timeout' with wrong type")
		}
		if t < 0 || t > math.MaxInt32 {
			return jsonErr("keep-alive contains 'timeout' with invalid value")
		}
		p.kaTimeout = time.Duration(t) * time.Second
	}
	if !p.kaFromHeader {
		p.kaMode = KeepAliveInterval
	}
	p.haveKeepAlive = true
	return nil
}

// parseJSONHeaders reads response.headers, an object or a list of
// [name, value] pairs, keeping their order. Grip-* and Content-Length are
// dropped; names must be tokens and values free of CR, LF and NUL.
func parseJSONHeaders(raw json.RawMessage) (http.Header, error) {
	h := http.Header{}
	add := func(name, value string) error {
		if !formats.IsToken(name) {
			return jsonErr("headers contains invalid name '%s'", name)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return jsonErr("headers contains '%s' with invalid value", name)
		}
		if !IsGripHeader(name) && !strings.EqualFold(name, "Content-Length") {
			h.Add(name, value)
		}
		return nil
	}
	switch raw[0] {
	case '[':
		list, _ := jsonList(raw)
		for _, item := range list {
			pair, ok := jsonList(item)
			if !ok {
				return nil, jsonErr("headers contains element with wrong type")
			}
			if len(pair) != 2 {
				return nil, jsonErr("headers contains list with wrong number of elements")
			}
			name, ok := jsonString(pair[0])
			if !ok {
				return nil, jsonErr("header contains name element with wrong type")
			}
			value, ok := jsonString(pair[1])
			if !ok {
				return nil, jsonErr("header contains value element with wrong type")
			}
			if err := add(name, value); err != nil {
				return nil, err
			}
		}
	case '{':
		dec := json.NewDecoder(bytes.NewReader(raw))
		if _, err := dec.Token(); err != nil {
			return nil, jsonErr("response contains 'headers' with wrong type")
		}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, jsonErr("response contains 'headers' with wrong type")
			}
			name, _ := t.(string)
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return nil, jsonErr("response contains 'headers' with wrong type")
			}
			value, ok := jsonString(v)
			if !ok {
				return nil, jsonErr("headers contains '%s' with wrong type", name)
			}
			if err := add(name, value); err != nil {
				return nil, err
			}
		}
	default:
		return nil, jsonErr("response contains 'headers' with wrong type")
	}
	return h, nil
}
