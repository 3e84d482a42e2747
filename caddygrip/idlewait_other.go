//go:build !linux

package caddygrip

import (
	"bufio"
	"net"
)

// newIdleWaiter does not wait: readers park in gorilla's read path.
func newIdleWaiter(net.Conn, *bufio.Reader) func() { return func() {} }
