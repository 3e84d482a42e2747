// Command caddybin is Caddy with caddy-grip, for tests that need Caddy in a
// process of its own (exit, signals, several nodes).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-grip/grip/caddygrip"
)

func main() {
	caddycmd.Main()
}
