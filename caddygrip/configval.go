package caddygrip

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

// replaceSet replaces the known placeholders in an option's value. A value
// that is set but empty afterwards is an error naming the option and the
// text, so a missing variable never turns a feature (signing, publish
// authentication) silently off.
func replaceSet(repl *caddy.Replacer, option, raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	v := repl.ReplaceKnown(raw, "")
	if v == "" {
		return "", fmt.Errorf("%s: %q is empty after replacing placeholders: set it, or remove the option", option, raw)
	}
	return v, nil
}

// parseKeyOption reads a key option (sig_key, upstream_key, key) through
// replaceSet and ParseSigKey; nil when the option is not set.
func parseKeyOption(repl *caddy.Replacer, option, raw string) (*SigKey, error) {
	v, err := replaceSet(repl, option, raw)
	if err != nil || v == "" {
		return nil, err
	}
	k, err := ParseSigKey(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", option, err)
	}
	return k, nil
}
