package caddygrip

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/caddy-grip/grip/gripsig"
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

// replaceOptions runs replaceSet on several string options in place,
// stopping at the first error; the keys name the options.
func replaceOptions(repl *caddy.Replacer, opts map[string]*string) error {
	for _, name := range slices.Sorted(maps.Keys(opts)) {
		v, err := replaceSet(repl, name, *opts[name])
		if err != nil {
			return err
		}
		*opts[name] = v
	}
	return nil
}

// replaceList runs replaceSet on each value of a list option: an element
// that is empty, as given or after placeholders, is an error.
func replaceList(repl *caddy.Replacer, option string, raw []string) ([]string, error) {
	out := make([]string, 0, len(raw))
	for i, r := range raw {
		if r == "" {
			return nil, fmt.Errorf("%s: value %d is empty", option, i)
		}
		v, err := replaceSet(repl, option, r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// notNegative refuses a negative size or duration, which JSON can give
// where the Caddyfile cannot; 0 means the default.
func notNegative[N ~int | ~int64](option string, v N, want string) error {
	if v < 0 {
		return fmt.Errorf("%s %d: want a positive %s", option, v, want)
	}
	return nil
}

// parseKeyOption reads a key option (sig_key, upstream_key, key) through
// replaceSet and gripsig.ParseKey; nil when the option is not set.
func parseKeyOption(repl *caddy.Replacer, option, raw string) (*gripsig.Key, error) {
	v, err := replaceSet(repl, option, raw)
	if err != nil || v == "" {
		return nil, err
	}
	k, err := gripsig.ParseKey(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", option, err)
	}
	return k, nil
}

// decodeNamed decodes a module's JSON config as Caddy does (an unknown
// field is an error), and names the field whose value failed when the
// decoder's error does not: caddy.Duration's ("time: invalid duration
// \"abc\"") names only the value.
func decodeNamed[T any](b []byte, v *T) error {
	err := caddy.StrictUnmarshalJSON(b, v)
	if err == nil {
		return nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		one, _ := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		var probe T
		if ferr := caddy.StrictUnmarshalJSON(one, &probe); ferr != nil {
			if strings.Contains(ferr.Error(), k) {
				return ferr
			}
			return fmt.Errorf("%s: %w", k, ferr)
		}
	}
	return err
}
