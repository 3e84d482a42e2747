package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"
)

// publisher posts to a GRIP publish API (POST /publish/, Pushpin's format)
// on one connection at a time, redialling when the server closes it
// (Pushpin's publish endpoint closes after every request).
type publisher struct {
	addr  string
	conn  *httpConn
	fresh bool // conn has not carried a request yet
	body  []byte
	Posts int // requests answered 200
}

func newPublisher(addr string) *publisher { return &publisher{addr: addr} }

// close drops the connection.
func (p *publisher) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// post sends one publish request and waits for its answer. A request that
// failed on a reused keep-alive connection before any answer is retried
// once on a new one (the server closed it while idle).
func (p *publisher) post(body []byte) error {
	for attempt := 0; ; attempt++ {
		if p.conn == nil {
			c, err := dialHTTP(p.addr, nil, 5*time.Second)
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			p.conn, p.fresh = c, true
		}
		reused := !p.fresh
		p.fresh = false
		rh, err := p.roundTrip(body)
		if err != nil {
			p.close()
			if reused && attempt == 0 && staleConnError(err) {
				continue
			}
			return fmt.Errorf("publish: %w", err)
		}
		if rh.Close {
			p.close()
		}
		if rh.Status != 200 {
			return fmt.Errorf("publish: status %d: %q", rh.Status, p.body)
		}
		p.Posts++
		return nil
	}
}

func (p *publisher) roundTrip(body []byte) (respHead, error) {
	if err := p.conn.writePOST("/publish/", body); err != nil {
		return respHead{}, err
	}
	rh, err := p.conn.readHead()
	if err != nil {
		return rh, err
	}
	p.body, err = p.conn.readBody(rh, p.body)
	return rh, err
}

func staleConnError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// appendItem appends one item object with channel, id, prev-id and one
// format whose single field holds content. The content is ASCII, where Go's
// quoting and JSON's agree.
func appendItem(dst []byte, ch, id, prevID, format, field string, content []byte) []byte {
	dst = append(dst, `{"channel":`...)
	dst = strconv.AppendQuote(dst, ch)
	if id != "" {
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendQuote(dst, id)
	}
	if prevID != "" {
		dst = append(dst, `,"prev-id":`...)
		dst = strconv.AppendQuote(dst, prevID)
	}
	dst = append(dst, `,"formats":{"`...)
	dst = append(dst, format...)
	dst = append(dst, `":{"`...)
	dst = append(dst, field...)
	dst = append(dst, `":`...)
	dst = strconv.AppendQuote(dst, string(content))
	return append(dst, `}}}`...)
}

// appendStreamItem appends one http-stream item.
func appendStreamItem(dst []byte, ch, id, prevID string, content []byte) []byte {
	return appendItem(dst, ch, id, prevID, "http-stream", "content", content)
}

// streamItem is a publish body with one http-stream item.
func streamItem(dst []byte, ch, id, prevID string, content []byte) []byte {
	dst = append(dst, `{"items":[`...)
	dst = appendStreamItem(dst, ch, id, prevID, content)
	return append(dst, `]}`...)
}

// responseItem is a publish body with one http-response item.
func responseItem(dst []byte, ch, id, prevID string, body []byte) []byte {
	dst = append(dst, `{"items":[`...)
	dst = appendItem(dst, ch, id, prevID, "http-response", "body", body)
	return append(dst, `]}`...)
}
