//go:build !linux

package caddygrip

import (
	"bufio"
	"net"
)

// newIdleWaiter does not wait: readers park in their read call.
func newIdleWaiter(net.Conn, *bufio.Reader) (wait func(), parks bool) { return func() {}, false }
