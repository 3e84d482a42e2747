package formats

import (
	"errors"
	"strconv"
)

// This file decodes the body of an HTTP publish ({"items":[...]}) without
// reflection. Pass one walks the whole body once, checks its JSON syntax and
// records where the fields the decoder knows sit (decSpan). Pass two reads
// those spans in the order Pushpin's publishitem.cpp / publishformat.cpp
// check them, so that a body with several faults gets Pushpin's message, and
// copies strings out. The JSON scanner itself is at the end of the file.

// PublishError is a rejected publish body; its Error() is the exact text
// Pushpin answers with status 400 (the HTTP handler appends "\n").
type PublishError struct{ Msg string }

func (e *PublishError) Error() string { return e.Msg }

// DecodePublish parses a publish request body ({"items":[...]}), all or
// nothing: either every item is valid and returned in publish order, or the
// error is a *PublishError carrying Pushpin's text. Details name the item by
// its 0-based index: "Invalid format: item 2: 'http-response' contains 'code'
// with wrong type". Beyond Pushpin, it rejects JSON null in any field, numbers
// that are not whole, invalid base64 in body-bin / content-bin (padded or
// unpadded standard alphabet is accepted), an empty channel, a 'formats'
// object naming no known format, "refresh" outside ws-message, ws close codes
// above 65535 and body-patch entries that are not objects with a string "op".
// Like Pushpin it ignores unknown keys, ignores the fields of a non-send
// action (ws close reads code and reason), takes body-bin over body over
// body-patch and content-bin over content, and accepts empty content.
func DecodePublish(body []byte) ([]*Item, error) {
	return DecodePublishLimits(body, DecodeLimits{})
}

// Default name bounds of DecodeLimits. Channel names and ids are keys of the
// hub's maps (channels, last ids, de-dup cache), so their length multiplies
// into memory; 1 KiB is far above any real channel name or id (UUIDs,
// counters, paths) while keeping a million remembered entries near 1 GB.
const (
	DefaultMaxChannelLen = 1024
	DefaultMaxIDLen      = 1024
)

// DecodeLimits bounds what one item may name; a zero field means its default.
type DecodeLimits struct {
	// MaxChannel is the longest channel name accepted, in bytes.
	MaxChannel int
	// MaxID is the longest id or prev-id accepted, in bytes.
	MaxID int
}

func (l DecodeLimits) withDefaults() DecodeLimits {
	if l.MaxChannel <= 0 {
		l.MaxChannel = DefaultMaxChannelLen
	}
	if l.MaxID <= 0 {
		l.MaxID = DefaultMaxIDLen
	}
	return l
}

// DecodePublishLimits is DecodePublish with channel and id length bounds:
// an item naming a longer channel, id or prev-id is refused.
func DecodePublishLimits(body []byte, lim DecodeLimits) ([]*Item, error) {
	r := decReader{b: body, lim: lim.withDefaults()}
	items, perr, err := r.publish()
	if err != nil {
		return nil, &PublishError{Msg: "Body is not valid JSON."}
	}
	if perr != nil {
		return nil, perr
	}
	return items, nil
}

// errDecSyntax marks a body that is not valid JSON.
var errDecSyntax = errors.New("formats: invalid JSON")

// decMaxDepth bounds nesting, as Qt's JSON parser does, so the recursion in
// skipping stays small on hostile input.
const decMaxDepth = 1000

// decErr is the detail of a rejected item, without the "Invalid format" prefix.
type decErr string

func (e decErr) Error() string { return string(e) }

// decSpan locates one JSON value in the body: b[off:end]. end == 0 means the
// field was absent. plain marks a string with no escapes, whose text is then
// b[off+1:end-1] as is.
type decSpan struct {
	off, end int
	plain    bool
}

func (s decSpan) ok() bool { return s.end > 0 }

// Field indexes of a format object, and of an item; the key tables below
// give their JSON names.
const (
	decFAction = iota
	decFCode
	decFReason
	decFHeaders
	decFContentFilters
	decFType
	decFBody
	decFBodyBin
	decFBodyPatch
	decFContent
	decFContentBin
	decNF
)

var decFormatKeys = [decNF]string{"action", "code", "reason", "headers", "content-filters",
	"type", "body", "body-bin", "body-patch", "content", "content-bin"}

const (
	decIChannel = iota
	decIID
	decIPrevID
	decIFormats
	decIMeta
	decISize
	decINoSeq
	decNI
)

var decItemKeys = [decNI]string{"channel", "id", "prev-id", "formats", "meta", "size", "no-seq"}

var decFormatNames = [3]string{"http-response", "http-stream", "ws-message"}

// decFormat records one format value and, when it is an object, its fields.
type decFormat struct {
	self decSpan
	f    [decNF]decSpan
}

// decItemSpans records one item's fields: formats from the "formats" object
// and, for the legacy shape, from the item's top level.
type decItemSpans struct {
	f       [decNI]decSpan
	formats [3]decFormat
	legacy  [3]decFormat
}

func decIndex(keys []string, k []byte) int {
	for i, name := range keys {
		if name == string(k) {
			return i
		}
	}
	return -1
}

// decReader is a cursor over the body.
type decReader struct {
	b     []byte
	i     int
	depth int
	lim   DecodeLimits
}

// peek skips white space and returns the next byte, or 0 at the end.
func (r *decReader) peek() byte {
	for ; r.i < len(r.b); r.i++ {
		switch c := r.b[r.i]; c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

func (r *decReader) publish() ([]*Item, *PublishError, error) {
	if r.peek() != '{' {
		if _, err := r.value(); err != nil || r.peek() != 0 || r.i != len(r.b) {
			return nil, nil, errDecSyntax
		}
		return nil, &PublishError{Msg: "Invalid format."}, nil
	}
	var items []*Item
	var bad *PublishError
	found := false
	err := r.object(func(k []byte) error {
		if string(k) != "items" {
			_, err := r.value()
			return err
		}
		found, items, bad = true, nil, nil // a repeated key wins, as in a JSON map
		if r.peek() != '[' {
			bad = &PublishError{Msg: "Invalid format: object contains 'items' with wrong type"}
			_, err := r.value()
			return err
		}
		return r.items(&items, &bad)
	})
	if err != nil || r.peek() != 0 || r.i != len(r.b) {
		return nil, nil, errDecSyntax
	}
	if !found {
		return nil, &PublishError{Msg: "Invalid format: object does not contain 'items'"}, nil
	}
	if bad != nil {
		return nil, bad, nil
	}
	if items == nil {
		items = []*Item{}
	}
	return items, nil, nil
}

// items decodes the items array at the cursor. After the first bad item it
// only checks syntax, so that invalid JSON anywhere still wins.
func (r *decReader) items(out *[]*Item, bad **PublishError) error {
	var sp decItemSpans
	n := -1
	return r.array(func() error {
		n++
		if *bad != nil {
			_, err := r.value()
			return err
		}
		var it *Item
		var ierr error
		if r.peek() != '{' {
			ierr = decErr("publish item object is not an object")
			if _, err := r.value(); err != nil {
				return err
			}
		} else {
			if err := r.itemSpans(&sp); err != nil {
				return err
			}
			it, ierr = r.item(&sp)
		}
		if ierr != nil {
			*bad = &PublishError{Msg: "Invalid format: item " + strconv.Itoa(n) + ": " + ierr.Error()}
			*out = nil
			return nil
		}
		*out = append(*out, it)
		return nil
	})
}

// itemSpans records the fields of the item object at the cursor.
func (r *decReader) itemSpans(sp *decItemSpans) error {
	*sp = decItemSpans{}
	return r.object(func(k []byte) error {
		if string(k) == "formats" {
			off := r.i
			var err error
			if r.peek() == '{' {
				sp.formats = [3]decFormat{}
				err = r.object(func(k []byte) error {
					if j := decIndex(decFormatNames[:], k); j >= 0 {
						return r.format(&sp.formats[j])
					}
					_, err := r.value()
					return err
				})
				sp.f[decIFormats] = decSpan{off: off, end: r.i}
			} else {
				sp.f[decIFormats], err = r.value()
			}
			return err
		}
		if j := decIndex(decFormatNames[:], k); j >= 0 {
			return r.format(&sp.legacy[j])
		}
		var err error
		if j := decIndex(decItemKeys[:], k); j >= 0 {
			sp.f[j], err = r.value()
		} else {
			_, err = r.value()
		}
		return err
	})
}

// format records the format value at the cursor and, for an object, its fields.
func (r *decReader) format(fm *decFormat) error {
	*fm = decFormat{}
	if r.peek() != '{' {
		var err error
		fm.self, err = r.value()
		return err
	}
	off := r.i
	err := r.object(func(k []byte) error {
		var err error
		if j := decIndex(decFormatKeys[:], k); j >= 0 {
			fm.f[j], err = r.value()
		} else {
			_, err = r.value()
		}
		return err
	})
	fm.self = decSpan{off: off, end: r.i}
	return err
}

// --- pass two: fields, in the order Pushpin checks them ---

func (r *decReader) httpResponse(fm *decFormat) (*HTTPResponse, error) {
	const pn = "'http-response'"
	if r.kind(fm.self) != '{' {
		return nil, decErr(pn + " is not an object")
	}
	a, err := r.action(fm, pn, false)
	if err != nil || a != ActionSend {
		return &HTTPResponse{Action: a}, err
	}
	f := &HTTPResponse{Action: a, Code: 200}
	if s := fm.f[decFCode]; s.ok() {
		// 1xx are interim responses, never a held request's answer.
		if f.Code, err = r.whole(s, pn, "code", 200, 999); err != nil {
			return nil, err
		}
	}
	if f.Reason, err = r.optString(fm.f[decFReason], pn, "reason"); err != nil {
		return nil, err
	}
	if s := fm.f[decFHeaders]; s.ok() {
		if f.Headers, err = r.headers(s, pn); err != nil {
			return nil, err
		}
	}
	if f.ContentFilters, err = r.filters(fm, pn); err != nil {
		return nil, err
	}
	var have bool
	if f.Body, have, err = r.content(fm, pn, decFBodyBin, decFBody); err != nil || have {
		return f, err
	}
	if s := fm.f[decFBodyPatch]; s.ok() {
		f.BodyPatch, err = r.bodyPatch(s, pn)
		return f, err
	}
	return nil, decErr(pn + " does not contain 'body', 'body-bin', or 'body-patch'")
}

func (r *decReader) httpStream(fm *decFormat) (*HTTPStream, error) {
	const pn = "'http-stream'"
	if r.kind(fm.self) != '{' {
		return nil, decErr(pn + " is not an object")
	}
	a, err := r.action(fm, pn, false)
	if err != nil || a != ActionSend {
		return &HTTPStream{Action: a}, err
	}
	f := &HTTPStream{Action: a}
	if f.ContentFilters, err = r.filters(fm, pn); err != nil {
		return nil, err
	}
	var have bool
	if f.Content, have, err = r.content(fm, pn, decFContentBin, decFContent); err != nil || have {
		return f, err
	}
	return nil, decErr(pn + " does not contain 'content' or 'content-bin'")
}

func (r *decReader) wsMessage(fm *decFormat) (*WSMessage, error) {
	const pn = "'ws-message'"
	if r.kind(fm.self) != '{' {
		return nil, decErr(pn + " is not an object")
	}
	a, err := r.action(fm, pn, true)
	if err != nil {
		return nil, err
	}
	f := &WSMessage{Action: a}
	switch a {
	case ActionClose:
		if s := fm.f[decFCode]; s.ok() {
			if f.Code, err = r.whole(s, pn, "code", 0, 65535); err != nil {
				return nil, err
			}
			if f.Code != 0 && !wireCloseCode(f.Code) {
				return nil, decErr(pn + " contains 'code' " + strconv.Itoa(f.Code) + " not allowed in a close frame (RFC 6455 7.4)")
			}
		}
		if f.Reason, err = r.optString(fm.f[decFReason], pn, "reason"); err != nil {
			return nil, err
		}
		if len(f.Reason) > maxCloseReason {
			return nil, decErr(pn + " contains 'reason' of " + strconv.Itoa(len(f.Reason)) + " bytes, over the " + strconv.Itoa(maxCloseReason) + " a close frame holds")
		}
		return f, nil
	case ActionSend:
	default:
		return f, nil
	}
	if f.Type, err = r.optString(fm.f[decFType], pn, "type"); err != nil {
		return nil, err
	}
	switch f.Type {
	case "", "text", "binary", "ping", "pong":
	default:
		return nil, decErr(pn + " contains 'type' with unknown value")
	}
	if f.ContentFilters, err = r.filters(fm, pn); err != nil {
		return nil, err
	}
	var have bool
	if f.Content, have, err = r.content(fm, pn, decFContentBin, decFContent); err != nil {
		return nil, err
	}
	switch {
	case have && f.Type == "" && fm.f[decFContentBin].ok():
		f.Type = "binary"
	case have && f.Type == "":
		f.Type = "text"
	case !have && (f.Type == "" || f.Type == "text" || f.Type == "binary"):
		return nil, decErr(pn + " does not contain 'content' or 'content-bin'")
	}
	if (f.Type == "ping" || f.Type == "pong") && len(f.Content) > maxControlPayload {
		return nil, decErr(pn + " contains " + f.Type + " content of " + strconv.Itoa(len(f.Content)) + " bytes, over the " + strconv.Itoa(maxControlPayload) + " a control frame holds")
	}
	return f, nil
}

// item builds an Item from its recorded fields.
func (r *decReader) item(sp *decItemSpans) (*Item, error) {
	const pn = "publish item object"
	s := sp.f[decIChannel]
	switch {
	case !s.ok():
		return nil, decErr(pn + " does not contain 'channel'")
	case r.kind(s) != '"':
		return nil, decWrongType(pn, "channel")
	case s.end-s.off == 2:
		return nil, decInvalid(pn, "channel")
	case s.end-s.off-2 > r.lim.MaxChannel && len(r.text(s)) > r.lim.MaxChannel:
		return nil, decTooLong(pn, "channel", r.lim.MaxChannel)
	}
	var parts [3][]byte // channel, id and prev-id, copied out in one allocation
	parts[0] = r.text(s)
	for j, name := range [...]string{decIID: "id", decIPrevID: "prev-id"} {
		if s := sp.f[j]; j > 0 && s.ok() {
			if r.kind(s) != '"' {
				return nil, decWrongType(pn, name)
			}
			parts[j] = r.text(s)
			if len(parts[j]) > r.lim.MaxID {
				return nil, decTooLong(pn, name, r.lim.MaxID)
			}
		}
	}
	all := string(parts[0]) + string(parts[1]) + string(parts[2])
	n0, n1 := len(parts[0]), len(parts[0])+len(parts[1])
	it := &Item{Channel: all[:n0], ID: all[n0:n1], PrevID: all[n1:]}
	var err error
	fs := &sp.legacy
	if s := sp.f[decIFormats]; s.ok() {
		if r.kind(s) != '{' {
			return nil, decWrongType(pn, "formats")
		}
		fs = &sp.formats
	}
	if !fs[0].self.ok() && !fs[1].self.ok() && !fs[2].self.ok() {
		return nil, decErr("no formats specified")
	}
	if fs[0].self.ok() {
		if it.HTTPResponse, err = r.httpResponse(&fs[0]); err != nil {
			return nil, err
		}
	}
	if fs[1].self.ok() {
		if it.HTTPStream, err = r.httpStream(&fs[1]); err != nil {
			return nil, err
		}
	}
	if fs[2].self.ok() {
		if it.WSMessage, err = r.wsMessage(&fs[2]); err != nil {
			return nil, err
		}
	}
	if s := sp.f[decIMeta]; s.ok() {
		if r.kind(s) != '{' {
			return nil, decWrongType(pn, "meta")
		}
		err = r.each(s, func(k []byte, v decSpan) error {
			if r.kind(v) != '"' {
				return decErr("'meta' contains '" + string(k) + "' with wrong type")
			}
			if it.Meta == nil {
				it.Meta = make(map[string]string)
			}
			kv := string(k) + string(r.text(v))
			it.Meta[kv[:len(k)]] = kv[len(k):]
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if s := sp.f[decISize]; s.ok() {
		if it.Size, err = r.whole(s, pn, "size", 0, 1<<31-1); err != nil {
			return nil, err
		}
	}
	if s := sp.f[decINoSeq]; s.ok() {
		switch r.kind(s) {
		case 't':
			it.NoSeq = true
		case 'f':
		default:
			return nil, decWrongType(pn, "no-seq")
		}
	}
	return it, nil
}
