package formats

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file applies an http-response item's "body-patch" (RFC 6902 JSON
// Patch, RFC 6901 pointers) to the held response body, and writes the result
// the way Pushpin does (handler/httpsession.cpp applyBodyPatch): the body is
// parsed with Qt, patched as a QVariantMap/QVariantList tree and written back
// with QJsonDocument::toJson(Compact). So the output is compact JSON with
// object keys sorted (QMap order: UTF-16 code units), numbers as Qt 6 keeps
// them (whole values that fit in int64 as integers, others in Qt's shortest
// 'g' form), strings escaped as Qt escapes them, and a trailing "\r\n" or
// "\n" of the held body kept.

// Patch operation names.
const (
	opAdd     = "add"
	opRemove  = "remove"
	opReplace = "replace"
	opMove    = "move"
	opCopy    = "copy"
	opTest    = "test"
)

// patchOp is one checked operation of a JSON Patch.
type patchOp struct {
	op      string
	path    []string // tokens; empty means the whole document
	rawPath string
	from    []string
	rawFrom string
	value   any
}

// errNoPath marks a pointer that names nothing in the document.
var errNoPath = errors.New("does not exist")

// ValidateJSONPatch checks a body-patch when a publish is decoded, so that a
// malformed patch is answered with 400 instead of failing at every delivery:
// it must be an array of objects with a known "op", a valid "path", a "value"
// for add, replace and test, and a valid "from" for move and copy.
func ValidateJSONPatch(patch json.RawMessage) error {
	_, err := parsePatch(patch)
	return err
}

// ApplyJSONPatch applies patch to doc, the held response body, and returns
// the patched body written as Pushpin writes it. The held body must be a
// JSON object or array and so must the result. Errors name the operation by
// its 0-based index: "body-patch op 2 (replace): path /a/b does not exist".
func ApplyJSONPatch(doc []byte, patch json.RawMessage) ([]byte, error) {
	ops, err := parsePatch(patch)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(doc) {
		return nil, errors.New("body-patch: held body is not valid UTF-8")
	}
	root, err := parseJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("body-patch: held body is not valid JSON: %w", err)
	}
	if !isContainer(root) {
		return nil, errors.New("body-patch: held body is not a JSON object or array")
	}
	for i := range ops {
		if root, err = ops[i].apply(root); err != nil {
			return nil, fmt.Errorf("body-patch op %d (%s): %w", i, ops[i].op, err)
		}
	}
	if !isContainer(root) {
		return nil, errors.New("body-patch: result is not a JSON object or array")
	}
	out := appendJSON(make([]byte, 0, len(doc)+64), root)
	if bytes.HasSuffix(doc, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	} else if bytes.HasSuffix(doc, []byte("\n")) {
		out = append(out, '\n')
	}
	return out, nil
}

// parsePatch decodes and checks every operation of a patch.
func parsePatch(patch json.RawMessage) ([]patchOp, error) {
	v, err := parseJSON(patch)
	if err != nil {
		return nil, fmt.Errorf("body-patch is not valid JSON: %w", err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, errors.New("body-patch is not an array")
	}
	ops := make([]patchOp, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("body-patch op %d is not an object", i)
		}
		if ops[i], err = parseOp(m); err != nil {
			if ops[i].op == "" {
				return nil, fmt.Errorf("body-patch op %d: %w", i, err)
			}
			return nil, fmt.Errorf("body-patch op %d (%s): %w", i, ops[i].op, err)
		}
	}
	return ops, nil
}

// parseOp checks one operation object; on error the returned op names the
// operation when it was known.
func parseOp(m map[string]any) (patchOp, error) {
	var p patchOp
	name, ok := m["op"].(string)
	if !ok {
		return p, errors.New("missing string 'op'")
	}
	switch name {
	case opAdd, opRemove, opReplace, opMove, opCopy, opTest:
	default:
		return p, fmt.Errorf("unknown op %q", name)
	}
	p.op = name
	var err error
	if p.rawPath, p.path, err = pointerField(m, "path"); err != nil {
		return p, err
	}
	switch name {
	case opAdd, opReplace, opTest:
		var ok bool
		if p.value, ok = m["value"]; !ok {
			return p, errors.New("missing 'value'")
		}
	case opMove, opCopy:
		if p.rawFrom, p.from, err = pointerField(m, "from"); err != nil {
			return p, err
		}
		if name == opMove && isProperPrefix(p.from, p.path) {
			return p, fmt.Errorf("cannot move %s into its own child %s", p.rawFrom, p.rawPath)
		}
	}
	return p, nil
}

// pointerField reads and parses a string member holding a JSON Pointer.
func pointerField(m map[string]any, key string) (string, []string, error) {
	s, ok := m[key].(string)
	if !ok {
		return "", nil, fmt.Errorf("missing string '%s'", key)
	}
	toks, err := parsePointer(s)
	if err != nil {
		return "", nil, fmt.Errorf("'%s' %q is not a JSON pointer: %w", key, s, err)
	}
	return s, toks, nil
}

// parsePointer splits an RFC 6901 pointer into unescaped reference tokens.
// "" is the whole document; "/" is the member named "".
func parsePointer(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] != '/' {
		return nil, errors.New("it must be empty or start with '/'")
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		if !strings.Contains(p, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(p); j++ {
			if p[j] != '~' {
				b.WriteByte(p[j])
				continue
			}
			if j+1 >= len(p) || (p[j+1] != '0' && p[j+1] != '1') {
				return nil, errors.New("'~' must be followed by '0' or '1'")
			}
			if p[j+1] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
			j++
		}
		parts[i] = b.String()
	}
	return parts, nil
}

// isProperPrefix reports whether pointer a names an ancestor of pointer b.
func isProperPrefix(a, b []string) bool {
	if len(a) >= len(b) {
		return false
	}
	return slices.Equal(a, b[:len(a)])
}

// apply runs the operation on root and returns the new root.
func (p *patchOp) apply(root any) (any, error) {
	switch p.op {
	case opAdd:
		return p.set(root, p.path, p.rawPath, p.value, true)
	case opReplace:
		return p.set(root, p.path, p.rawPath, p.value, false)
	case opRemove:
		if len(p.path) == 0 {
			return nil, errors.New("cannot remove the whole document")
		}
		return edit(root, p.path, p.rawPath, func(c any, tok string) (any, error) {
			return removeChild(c, tok, p.rawPath)
		})
	case opTest:
		cur, err := lookup(root, p.path, p.rawPath)
		if err != nil {
			return nil, err
		}
		if !jsonEqual(cur, p.value) {
			return nil, fmt.Errorf("test failed: the value at %q differs", p.rawPath)
		}
		return root, nil
	case opMove, opCopy:
		v, err := lookup(root, p.from, p.rawFrom)
		if err != nil {
			return nil, err
		}
		if p.op == opCopy {
			return p.set(root, p.path, p.rawPath, deepCopy(v), true)
		}
		if equalTokens(p.from, p.path) {
			return root, nil
		}
		if root, err = edit(root, p.from, p.rawFrom, func(c any, tok string) (any, error) {
			return removeChild(c, tok, p.rawFrom)
		}); err != nil {
			return nil, err
		}
		return p.set(root, p.path, p.rawPath, v, true)
	}
	return nil, fmt.Errorf("unknown op %q", p.op)
}

// set adds (insert) or replaces (must exist) v at the pointer.
func (p *patchOp) set(root any, toks []string, raw string, v any, insert bool) (any, error) {
	if len(toks) == 0 {
		return v, nil
	}
	return edit(root, toks, raw, func(c any, tok string) (any, error) {
		switch c := c.(type) {
		case map[string]any:
			if _, ok := c[tok]; !ok && !insert {
				return nil, fmt.Errorf("path %s %w", raw, errNoPath)
			}
			c[tok] = v
			return c, nil
		case []any:
			if insert && tok == "-" {
				return append(c, v), nil
			}
			n := len(c)
			if insert {
				n++ // add may insert at the end
			}
			i, err := arrayIndex(tok, n, raw)
			if err != nil {
				return nil, err
			}
			if !insert {
				c[i] = v
				return c, nil
			}
			c = append(c, nil)
			copy(c[i+1:], c[i:])
			c[i] = v
			return c, nil
		}
		return nil, fmt.Errorf("path %s %w", raw, errNoPath)
	})
}

// removeChild deletes member or element tok of container c.
func removeChild(c any, tok, raw string) (any, error) {
	switch c := c.(type) {
	case map[string]any:
		if _, ok := c[tok]; !ok {
			return nil, fmt.Errorf("path %s %w", raw, errNoPath)
		}
		delete(c, tok)
		return c, nil
	case []any:
		i, err := arrayIndex(tok, len(c), raw)
		if err != nil {
			return nil, err
		}
		return append(c[:i], c[i+1:]...), nil
	}
	return nil, fmt.Errorf("path %s %w", raw, errNoPath)
}

// edit walks to the parent of the last token and replaces it with what fn
// returns, rebuilding the chain back to the root (arrays may grow or shrink).
func edit(v any, toks []string, raw string, fn func(parent any, tok string) (any, error)) (any, error) {
	if len(toks) == 1 {
		return fn(v, toks[0])
	}
	switch c := v.(type) {
	case map[string]any:
		child, ok := c[toks[0]]
		if !ok {
			return nil, fmt.Errorf("path %s %w", raw, errNoPath)
		}
		nc, err := edit(child, toks[1:], raw, fn)
		if err != nil {
			return nil, err
		}
		c[toks[0]] = nc
		return c, nil
	case []any:
		i, err := arrayIndex(toks[0], len(c), raw)
		if err != nil {
			return nil, err
		}
		nc, err := edit(c[i], toks[1:], raw, fn)
		if err != nil {
			return nil, err
		}
		c[i] = nc
		return c, nil
	}
	return nil, fmt.Errorf("path %s %w", raw, errNoPath)
}

// lookup returns the value the pointer names.
func lookup(v any, toks []string, raw string) (any, error) {
	for _, tok := range toks {
		switch c := v.(type) {
		case map[string]any:
			child, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("path %s %w", raw, errNoPath)
			}
			v = child
		case []any:
			i, err := arrayIndex(tok, len(c), raw)
			if err != nil {
				return nil, err
			}
			v = c[i]
		default:
			return nil, fmt.Errorf("path %s %w", raw, errNoPath)
		}
	}
	return v, nil
}

// arrayIndex parses an RFC 6901 array index ("0" or no leading zero) below n.
func arrayIndex(tok string, n int, raw string) (int, error) {
	if tok == "-" {
		return 0, fmt.Errorf("path %s: '-' names no existing element", raw)
	}
	if tok == "" || (len(tok) > 1 && tok[0] == '0') || strings.TrimLeft(tok, "0123456789") != "" {
		return 0, fmt.Errorf("path %s: %q is not an array index", raw, tok)
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i >= n {
		return 0, fmt.Errorf("path %s: array index %s is out of range", raw, tok)
	}
	return i, nil
}

func equalTokens(a, b []string) bool { return slices.Equal(a, b) }

func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

// jsonEqual compares two values as JSON values (RFC 6902 test).
func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case bool, string, jnum:
		return a == b
	case []any:
		bl, ok := b.([]any)
		if !ok || len(a) != len(bl) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], bl[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, av := range a {
			bv, ok := bm[k]
			if !ok || !jsonEqual(av, bv) {
				return false
			}
		}
		return true
	}
	return false
}

func deepCopy(v any) any {
	switch c := v.(type) {
	case []any:
		out := make([]any, len(c))
		for i, e := range c {
			out[i] = deepCopy(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(c))
		for k, e := range c {
			out[k] = deepCopy(e)
		}
		return out
	}
	return v
}
