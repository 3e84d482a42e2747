package caddygrip

import (
	"bufio"
	"net"
	"syscall"
)

// newIdleWaiter returns a function that parks until conn has something to
// read, on a shallow stack: an idle session's reader then waits in a few
// small frames instead of gorilla's read path, and its goroutine keeps a
// 2 KB stack. It returns at once while br, the connection's read buffer,
// holds data, and on any error (ReadMessage then meets it). It waits only
// on a plain TCP connection: a wrapper (TLS, PROXY protocol) may hold
// read data of its own that a peek at the socket would not see. parks
// reports whether it waits; br may be nil when there is no read buffer.
func newIdleWaiter(conn net.Conn, br *bufio.Reader) (wait func(), parks bool) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return func() {}, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return func() {}, false
	}
	var b [1]byte
	readable := func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return n > 0 || err != syscall.EAGAIN
	}
	return func() {
		if br == nil || br.Buffered() == 0 {
			_ = raw.Read(readable)
		}
	}, true
}
