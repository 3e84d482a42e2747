package formats

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Content filters rewrite what a subscriber receives, per subscriber, from
// its meta (Grip-Set-Meta / set-meta). They are Pushpin's var-subst and
// build-id (handler/filter.cpp), whose directives follow Pushpin's Format
// mini-language (handler/format.cpp, idformat.cpp), ported here exactly:
//
//	%%             a literal '%'
//	%X             directive X (an ASCII letter) without argument
//	%(arg)X        directive X with argument arg; inside the parentheses a
//	               backslash takes the next byte literally ("\)" is ')');
//	               "%()X" counts as no argument
//	% + other      error "Unknown directive 'c' at position n"
//
// Each filter knows one directive and rejects the others, so a channel with
// both filters needs the second filter's '%' doubled ("%%(user)s" passes
// build-id as "%(user)s" for var-subst).
const (
	// FilterVarSubst replaces %(name)s with the subscriber's meta value.
	FilterVarSubst = "var-subst"
	// FilterBuildID replaces %I with the id built from meta id_format and
	// the subscription's prev-ids, and %(x)I with x.
	FilterBuildID = "build-id"
)

// ErrContentFilterMismatch marks an item whose content-filters differ from
// the subscription's; Pushpin drops such an item (debug: ends the session).
var ErrContentFilterMismatch = errors.New("content filter mismatch")

// IsContentFilter reports whether a filter name rewrites message content
// (Pushpin's MessageContent target), as opposed to only deciding delivery.
func IsContentFilter(name string) bool {
	return name == FilterVarSubst || name == FilterBuildID
}

// ContentFiltersOf returns the content filters among a channel's filter
// names, in order; nil when there are none.
func ContentFiltersOf(filters []string) []string {
	var out []string
	for _, f := range filters {
		if IsContentFilter(f) {
			out = append(out, f)
		}
	}
	return out
}

// Render applies the content filters among names (a subscription's filter
// names on one channel, in order) with the subscriber's meta to content (an
// http-response body, body-patch result included, an http-stream content or
// a ws-message content of a send action). When itemFilters is non-nil (the
// item format had "content-filters") it must equal the content filters
// among names, order included, else the item is not delivered and the error
// wraps ErrContentFilterMismatch. A filter error (unknown variable, missing
// id_format, bad directive) also means not delivered, with the error to log.
// prevIDs gives a channel's current prev-id, "" when none (nil: none at
// all); build-id renders id_format's %(chan)s with it, and a channel without
// prev-id is an error there. With no content filters it returns content
// itself and does not allocate.
func Render(names []string, meta map[string]string, itemFilters []string, content []byte, prevIDs func(channel string) string) (out []byte, deliver bool, err error) {
	if itemFilters != nil && !sameContentFilters(names, itemFilters) {
		return nil, false, fmt.Errorf("%w: subscription=%s message=%s", ErrContentFilterMismatch,
			strings.Join(ContentFiltersOf(names), ","), strings.Join(itemFilters, ","))
	}
	out = content
	for _, name := range names {
		switch name {
		case FilterVarSubst:
			out, err = varSubst(meta, out)
		case FilterBuildID:
			if prevIDs == nil {
				prevIDs = noPrevIDs
			}
			out, err = buildID(meta, out, prevIDs)
		}
		if err != nil {
			return nil, false, err
		}
	}
	return out, true, nil
}

// RenderInitial applies to an instruction's initial response body (sent
// before a stream hold) the filters Pushpin applies to response content:
// build-id, once, when buildIDOn (one of the subscriber's channels names
// it). As in Pushpin no prev-ids are known there, so only %(x)I and %%
// render and %I is an error. A filter error means the response must not be
// sent (Pushpin answers "filter error: ..." and ends the request). Without
// build-id it returns content itself.
func RenderInitial(buildIDOn bool, meta map[string]string, content []byte) ([]byte, error) {
	if !buildIDOn || len(content) == 0 {
		return content, nil
	}
	return buildID(meta, content, nil)
}

// sameContentFilters compares the content filters among names with want,
// as Pushpin compares the two lists, without allocating.
func sameContentFilters(names, want []string) bool {
	i := 0
	for _, n := range names {
		if !IsContentFilter(n) {
			continue
		}
		if i >= len(want) || want[i] != n {
			return false
		}
		i++
	}
	return i == len(want)
}

func noPrevIDs(string) string { return "" }

// varSubst is the var-subst filter: %(name)s becomes the meta value of name
// (case-insensitive, as meta keys are).
func varSubst(meta map[string]string, content []byte) ([]byte, error) {
	if bytes.IndexByte(content, '%') < 0 {
		return content, nil
	}
	out, err := formatProcess(content, func(typ byte, arg []byte, hasArg bool) ([]byte, error) {
		if typ != 's' {
			return nil, fmt.Errorf("Unknown directive '%c'", typ)
		}
		if !hasArg {
			return nil, errors.New("Directive 's' requires argument")
		}
		v, ok := meta[strings.ToLower(string(arg))]
		if !ok {
			return nil, fmt.Errorf("No such variable '%s'", arg)
		}
		return []byte(v), nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FilterVarSubst, err)
	}
	return out, nil
}

// buildID is the build-id filter. The id is meta id_format rendered with
// %(chan)s = chan's prev-id; prevIDs nil means no channels are known, so
// there is no id and only %(x)I renders. meta id_encoding "hex" hex-encodes
// ids; any other value is an error. Like Pushpin it checks the meta before
// looking at the content, so a missing id_format fails every item.
func buildID(meta map[string]string, content []byte, prevIDs func(string) string) ([]byte, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s", FilterBuildID, fmt.Sprintf(format, a...))
	}
	idFormat, ok := meta["id_format"]
	if !ok {
		return nil, fail("no sub meta 'id_format'")
	}
	var id []byte
	hasID := prevIDs != nil
	if hasID {
		var err error
		if id, err = renderID([]byte(idFormat), prevIDs); err != nil {
			return nil, fail("failed to render ID: %v", err)
		}
	}
	enc, isHex := meta["id_encoding"]
	if isHex && enc != "hex" {
		return nil, fail("unsupported encoding: %s", enc)
	}
	if bytes.IndexByte(content, '%') < 0 {
		return content, nil
	}
	out, err := formatProcess(content, func(typ byte, arg []byte, hasArg bool) ([]byte, error) {
		if typ != 'I' {
			return nil, fmt.Errorf("Unknown directive '%c'", typ)
		}
		v := arg
		if !hasArg {
			if !hasID {
				return nil, errors.New("No ID specified and no default ID in context")
			}
			v = id
		}
		if isHex {
			return hex.AppendEncode(nil, v), nil
		}
		return v, nil
	})
	if err != nil {
		return nil, fail("%v", err)
	}
	return out, nil
}

// renderID renders an id_format: %(chan)s is chan's prev-id, which must be
// set (idformat.cpp renderId).
func renderID(format []byte, prevIDs func(string) string) ([]byte, error) {
	return formatProcess(format, func(typ byte, arg []byte, hasArg bool) ([]byte, error) {
		if typ != 's' {
			return nil, fmt.Errorf("Unknown directive '%c'", typ)
		}
		if !hasArg {
			return nil, errors.New("Directive 's' requires argument")
		}
		v := prevIDs(string(arg))
		if v == "" {
			return nil, fmt.Errorf("No such variable '%s'", arg)
		}
		return []byte(v), nil
	})
}

// formatProcess is Pushpin's Format::process: it copies format, replacing
// %% with '%' and each directive with what handle returns. Positions in
// errors are 0-based byte offsets, as Pushpin reports them.
func formatProcess(format []byte, handle func(typ byte, arg []byte, hasArg bool) ([]byte, error)) ([]byte, error) {
	out := make([]byte, 0, len(format))
	n := len(format)
	for i := 0; i < n; i++ {
		c := format[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+1 >= n {
			return nil, fmt.Errorf("Expected directive after '%%' at position %d", i)
		}
		i++
		c = format[i]
		switch {
		case c == '%':
			out = append(out, '%')
		case c == '(':
			fieldStart := i
			if i+1 >= n {
				return nil, fmt.Errorf("Expected character after '(' at position %d", i)
			}
			var arg []byte
			closed := false
			for i++; i < n; i++ {
				c = format[i]
				if c == '\\' {
					if i+1 >= n {
						return nil, fmt.Errorf("Expected character after '\\' at position %d", i)
					}
					i++
					arg = append(arg, format[i])
				} else if c == ')' {
					closed = true
					break
				} else {
					arg = append(arg, c)
				}
			}
			if !closed {
				return nil, fmt.Errorf("Unterminated field starting at position %d", fieldStart)
			}
			if i+1 >= n {
				return nil, fmt.Errorf("Expected directive after ')' at position %d", i)
			}
			i++
			v, err := handle(format[i], arg, len(arg) > 0)
			if err != nil {
				return nil, fmt.Errorf("%w at position %d", err, i)
			}
			out = append(out, v...)
		case isASCIILetter(c):
			v, err := handle(c, nil, false)
			if err != nil {
				return nil, fmt.Errorf("%w at position %d", err, i)
			}
			out = append(out, v...)
		default:
			return nil, fmt.Errorf("Unknown directive '%c' at position %d", c, i)
		}
	}
	return out, nil
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
