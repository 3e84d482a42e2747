// Package caddygrip holds the Caddy modules that make Caddy a GRIP proxy:
// http.handlers.grip holds client connections on behalf of plain HTTP origins,
// and http.handlers.grip_publish accepts items to push to them.
package caddygrip
