package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// The load generator speaks HTTP/1.1 by hand: one write and one read per
// request, no header maps, so that its CPU cost per operation stays well
// under the proxy's (net/http costs several times more per request).

// httpConn is one client connection from a chosen source address.
type httpConn struct {
	c    net.Conn
	br   *bufio.Reader
	addr string
	src  net.IP
	host string
	wbuf []byte
}

// dialHTTP connects to addr from src (nil: any source address).
func dialHTTP(addr string, src net.IP, timeout time.Duration) (*httpConn, error) {
	d := net.Dialer{Timeout: timeout}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &httpConn{c: c, br: bufio.NewReaderSize(c, 4096), addr: addr, src: src, host: addr}, nil
}

// redial replaces a closed connection with a new one to the same place.
func (h *httpConn) redial(timeout time.Duration) error {
	h.c.Close()
	n, err := dialHTTP(h.addr, h.src, timeout)
	if err != nil {
		return err
	}
	h.c, h.br = n.c, n.br
	return nil
}

// Close closes the connection.
func (h *httpConn) Close() error { return h.c.Close() }

// writeGET sends a GET for target with extra raw header lines.
func (h *httpConn) writeGET(target string, extra string) error {
	b := h.wbuf[:0]
	b = append(b, "GET "...)
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, h.host...)
	b = append(b, "\r\n"...)
	b = append(b, extra...)
	b = append(b, "\r\n"...)
	h.wbuf = b
	_, err := h.c.Write(b)
	return err
}

// writePOST sends a POST with a JSON body.
func (h *httpConn) writePOST(target string, body []byte) error {
	b := h.wbuf[:0]
	b = append(b, "POST "...)
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, h.host...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	h.wbuf = b
	_, err := h.c.Write(b)
	return err
}

// respHead is what the generator needs from a response head.
type respHead struct {
	Status        int
	ContentLength int64 // -1 when absent
	Chunked       bool
	Close         bool
	Direct        bool // X-Bench-Direct: the origin answered without a hold
}

var errBadResponse = errors.New("malformed HTTP response")

// readLine returns one header line without CRLF; the slice is valid until
// the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// readHead reads a status line and headers.
func (h *httpConn) readHead() (respHead, error) {
	rh := respHead{ContentLength: -1}
	line, err := readLine(h.br)
	if err != nil {
		return rh, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return rh, fmt.Errorf("%w: status line %q", errBadResponse, line)
	}
	rh.Status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return rh, fmt.Errorf("%w: status line %q", errBadResponse, line)
	}
	if line[7] == '0' {
		rh.Close = true // HTTP/1.0 closes unless told otherwise
	}
	for {
		line, err := readLine(h.br)
		if err != nil {
			return rh, err
		}
		if len(line) == 0 {
			return rh, nil
		}
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		name, val := line[:i], bytes.TrimSpace(line[i+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			rh.ContentLength, err = strconv.ParseInt(string(val), 10, 64)
			if err != nil {
				return rh, fmt.Errorf("%w: Content-Length %q", errBadResponse, val)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			rh.Chunked = bytes.Contains(bytes.ToLower(val), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(val, []byte("close")) {
				rh.Close = true
			}
		case bytes.EqualFold(name, []byte("X-Bench-Direct")):
			rh.Direct = true
		}
	}
}

// readBody reads the whole body of a response into dst[:0].
func (h *httpConn) readBody(rh respHead, dst []byte) ([]byte, error) {
	dst = dst[:0]
	switch {
	case rh.Chunked:
		cr := chunkReader{br: h.br}
		var buf [4096]byte
		for {
			n, err := cr.Read(buf[:])
			dst = append(dst, buf[:n]...)
			if err == io.EOF {
				return dst, nil
			}
			if err != nil {
				return dst, err
			}
		}
	case rh.ContentLength >= 0:
		if int64(cap(dst)) < rh.ContentLength {
			dst = make([]byte, 0, rh.ContentLength)
		}
		dst = dst[:rh.ContentLength]
		_, err := io.ReadFull(h.br, dst)
		return dst, err
	default:
		b, err := io.ReadAll(h.br)
		return append(dst, b...), err
	}
}

// chunkReader decodes a chunked body from br, returning io.EOF after the
// last chunk (trailers are skipped).
type chunkReader struct {
	br   *bufio.Reader
	left int64 // bytes left in the current chunk
	done bool
}

// Read implements io.Reader over the decoded chunk data.
func (c *chunkReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	for c.left == 0 {
		line, err := readLine(c.br)
		if err != nil {
			return 0, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: chunk size %q", errBadResponse, line)
		}
		if size == 0 {
			for { // trailers, then the final CRLF
				l, err := readLine(c.br)
				if err != nil {
					return 0, err
				}
				if len(l) == 0 {
					break
				}
			}
			c.done = true
			return 0, io.EOF
		}
		c.left = size
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if c.left == 0 && err == nil {
		// Consume the CRLF after the chunk data.
		if _, err = c.br.Discard(2); err != nil {
			return n, err
		}
	}
	return n, err
}

// getBody sends a GET and reads the whole response.
func (h *httpConn) getBody(target string, dst []byte) (respHead, []byte, error) {
	if err := h.writeGET(target, ""); err != nil {
		return respHead{}, dst, err
	}
	rh, err := h.readHead()
	if err != nil {
		return rh, dst, err
	}
	body, err := h.readBody(rh, dst)
	return rh, body, err
}
