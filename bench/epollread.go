package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Reading held streams is the generator's main cost in the fan-out
// scenarios: with a goroutine per stream, every message a proxy writes on
// its own costs a wake-up, a goroutine switch and two read calls (the
// second one finds nothing and parks), about as much CPU as the proxy's
// write, so the generator's core filled up first. Here
// one goroutine reads every stream of a group through an epoll set of its
// own: one read call per ready stream, whatever it holds, and no
// goroutine per stream. The epoll descriptor sits in Go's poller, so the
// reader parks like any goroutine and leaves the CPU to the publisher.

// epollReader reads the streams of one sseGroup after their response heads.
type epollReader struct {
	g    *sseGroup
	file *os.File // the epoll descriptor, in Go's poller
	rc   syscall.RawConn
	subs []*sseSub // by registration number (the epoll event's data)
	done chan struct{}
}

func newEpollReader(g *sseGroup) (*epollReader, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	r := &epollReader{g: g, file: f, rc: rc, done: make(chan struct{})}
	go r.loop()
	return r, nil
}

// add takes over the stream of s: its connection is duplicated and closed
// (Go's poller forgets it), and the duplicate joins the epoll set. Call
// with g.mu held.
func (r *epollReader) add(s *sseSub) error {
	var fd int
	var dupErr error
	raw, err := s.conn.c.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	if err := raw.Control(func(orig uintptr) {
		var r1 uintptr
		var e syscall.Errno
		r1, _, e = syscall.Syscall(syscall.SYS_FCNTL, orig, syscall.F_DUPFD_CLOEXEC, 0)
		fd = int(r1)
		if e != 0 {
			dupErr = e
		}
	}); err != nil {
		return err
	}
	if dupErr != nil {
		return fmt.Errorf("dup: %w", dupErr)
	}
	s.conn.Close()
	s.fd = fd
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(len(r.subs))}
	r.subs = append(r.subs, s)
	var ctlErr error
	r.rc.Control(func(epfd uintptr) {
		ctlErr = syscall.EpollCtl(int(epfd), syscall.EPOLL_CTL_ADD, fd, &ev)
	})
	if ctlErr != nil {
		syscall.Close(fd)
		s.fd = -1
		return fmt.Errorf("epoll_ctl: %w", ctlErr)
	}
	return nil
}

// loop reads ready streams until the epoll descriptor is closed.
func (r *epollReader) loop() {
	defer close(r.done)
	buf := make([]byte, 64<<10)
	evs := make([]syscall.EpollEvent, 256)
	ready := make([]*sseSub, 0, len(evs))
	for {
		err := r.rc.Read(func(epfd uintptr) bool {
			n, err := syscall.EpollWait(int(epfd), evs, 0)
			if n <= 0 || err != nil {
				return false // wait until the set is ready
			}
			ready = ready[:0]
			r.g.mu.Lock()
			for _, ev := range evs[:n] {
				ready = append(ready, r.subs[ev.Fd])
			}
			r.g.mu.Unlock()
			for _, s := range ready {
				r.readOne(s, buf)
			}
			return true
		})
		if err != nil {
			return
		}
	}
}

// readOne reads what one ready stream holds (level-triggered: anything
// left over is reported again).
func (r *epollReader) readOne(s *sseSub, buf []byte) {
	if s.fd < 0 {
		return
	}
	n, err := syscall.Read(s.fd, buf)
	switch {
	case n > 0:
		if err := s.feed(r.g, buf[:n]); err != nil {
			r.end(s, err)
		}
	case err == syscall.EAGAIN || err == syscall.EINTR:
	case err != nil:
		r.end(s, fmt.Errorf("stream ended: %w", err))
	default:
		r.end(s, errors.New("stream ended: EOF"))
	}
}

// end drops a stream that ended or failed.
func (r *epollReader) end(s *sseSub, err error) {
	r.rc.Control(func(epfd uintptr) {
		_ = syscall.EpollCtl(int(epfd), syscall.EPOLL_CTL_DEL, s.fd, nil)
	})
	syscall.Close(s.fd)
	s.fd = -1
	if !closingFlag.Load() && s.err == nil {
		s.err = err
		r.g.failed.Add(1)
	}
}

// stop ends the loop and closes every stream.
func (r *epollReader) stop() {
	r.file.Close()
	<-r.done
	for _, s := range r.subs {
		if s.fd >= 0 {
			syscall.Close(s.fd)
			s.fd = -1
		}
	}
}

// streamParse is one stream's decoding state between reads: the chunked
// framing (when chunked) and the current partial line.
type streamParse struct {
	chunked  bool
	state    uint8  // chunkSize, chunkData or chunkCRLF
	left     int    // bytes left of the chunk data, or of its CRLF
	sizeLine []byte // a chunk-size line split across reads
	line     []byte // an event-stream line split across reads
}

const (
	chunkSize = iota
	chunkData
	chunkCRLF
)

// feed decodes bytes read from the stream and handles every complete line.
func (s *sseSub) feed(g *sseGroup, p []byte) error {
	ps := &s.parse
	if !ps.chunked {
		s.body(g, p)
		return nil
	}
	for len(p) > 0 {
		switch ps.state {
		case chunkSize:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				ps.sizeLine = append(ps.sizeLine, p...)
				return nil
			}
			line := p[:i]
			if len(ps.sizeLine) > 0 {
				line = append(ps.sizeLine, line...)
				ps.sizeLine = ps.sizeLine[:0]
			}
			p = p[i+1:]
			line = bytes.TrimRight(line, "\r")
			if j := bytes.IndexByte(line, ';'); j >= 0 {
				line = line[:j]
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if err != nil {
				return fmt.Errorf("%w: chunk size %q", errBadResponse, line)
			}
			if size == 0 {
				return errors.New("stream ended: last chunk")
			}
			ps.state, ps.left = chunkData, int(size)
		case chunkData:
			n := min(ps.left, len(p))
			s.body(g, p[:n])
			p, ps.left = p[n:], ps.left-n
			if ps.left == 0 {
				ps.state, ps.left = chunkCRLF, 2
			}
		case chunkCRLF:
			n := min(ps.left, len(p))
			p, ps.left = p[n:], ps.left-n
			if ps.left == 0 {
				ps.state = chunkSize
			}
		}
	}
	return nil
}

// body splits decoded body bytes into lines for g.line.
func (s *sseSub) body(g *sseGroup, p []byte) {
	ps := &s.parse
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			ps.line = append(ps.line, p...)
			return
		}
		line := p[:i]
		if len(ps.line) > 0 {
			line = append(ps.line, line...)
			ps.line = ps.line[:0]
		}
		g.line(s, bytes.TrimRight(line, "\r"))
		p = p[i+1:]
	}
}
