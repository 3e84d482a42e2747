// Package freeport picks TCP ports for the servers that the tests and the
// bench start (Caddy, Pushpin, origins), so that two runs on one machine
// never meet: Caddy listens with SO_REUSEPORT, so two processes on a fixed
// port would silently share its connections.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
)

// The ports are drawn below Linux's ephemeral range (32768 and up), so
// that no outgoing connection (a client, or a TIME_WAIT left by the
// bench's thousands of them) takes one before its server binds it.
const (
	low  = 20000
	high = 32768
)

// Ports returns n distinct TCP ports that were free on every address a
// moment ago. Each is held until all are drawn, so none repeats.
func Ports(n int) ([]int, error) {
	ports := make([]int, 0, n)
	held := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 10000 {
			return nil, fmt.Errorf("no %d free ports found in %d-%d", n, low, high-1)
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", low+rand.IntN(high-low)))
		if err != nil {
			continue
		}
		held = append(held, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Addrs returns n distinct free ports as 127.0.0.1:<port> addresses.
func Addrs(n int) ([]string, error) {
	ports, err := Ports(n)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, n)
	for i, p := range ports {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return addrs, nil
}
