package formats

import "strconv"

// Wire limits a published item must respect so that every subscriber can be
// sent it: RFC 6455 section 5.5 (control frames) and 7.4 (close codes), and
// RFC 9110 section 5 (header fields).

// maxControlPayload is the largest ping or pong payload (RFC 6455 5.5).
const maxControlPayload = 125

// maxCloseReason is the largest close reason: a close payload holds at most
// 125 bytes, two of which are the code.
const maxCloseReason = maxControlPayload - 2

// wireCloseCode reports whether code may be sent in a close frame: 1000-1003
// and 1007-1014 (defined or registered), 3000-4999 (libraries and
// applications). 1004-1006 and 1015 must never be sent, and the rest of
// 1000-2999 is reserved.
func wireCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// decTchar marks the bytes of an RFC 9110 token (a header field name).
var decTchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// IsToken reports an RFC 9110 token: a valid header field name or method.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !decTchar[s[i]] {
			return false
		}
	}
	return true
}

// checkHeader refuses a header that cannot be written as is: a name that is
// not a token, or a value with a control byte other than HTAB (NUL, CR and
// LF among them), which would split or truncate the response head.
func checkHeader(h Header) error {
	if h.Name == "" {
		return decErr("headers contains an empty name")
	}
	if !IsToken(h.Name) {
		return decErr("headers contains name " + strconv.Quote(h.Name) + " that is not a valid field name")
	}
	for i := 0; i < len(h.Value); i++ {
		if c := h.Value[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return decErr("headers contains '" + h.Name + "' with a control byte in its value")
		}
	}
	return nil
}
