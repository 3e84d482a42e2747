// Package grip is the module root; importing it registers the caddy-grip
// modules, so that `xcaddy build --with github.com/caddy-grip/grip` works.
package grip

import _ "github.com/caddy-grip/grip/caddygrip"
