package gripsig

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzSigKeyVerify feeds arbitrary Grip-Sig tokens to each key family's
// verification path: it must never panic, must be deterministic, must accept
// only a three-part token whose header names an algorithm of the key's own
// family, and must accept the key's own fresh token while rejecting that
// token with its signature changed.
func FuzzSigKeyVerify(f *testing.F) {
	keys := []*Key{
		mustParseSigKey(f, "changeme"),
		mustParseSigKey(f, keyDir+"ec256-private.pem"),
		mustParseSigKey(f, keyDir+"rsa2048-private.pem"),
	}
	for _, k := range keys {
		tok := mustToken(f, mustSigner(f, k, time.Hour))
		f.Add(tok)
		f.Add(strings.Replace(tok, ".", "..", 1))
	}
	f.Add(`eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjQxMDI0NDQ4MDB9.`)
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		for _, k := range keys {
			ok := k.Verify(token)
			if ok != k.Verify(token) {
				t.Fatalf("%s: Verify(%q) is not deterministic", k, token)
			}
			if !ok {
				continue
			}
			parts := strings.Split(token, ".")
			if len(parts) != 3 || parts[2] == "" {
				t.Fatalf("%s accepted %q, which is not a signed three-part JWT", k, token)
			}
			hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
			if err != nil {
				t.Fatalf("%s accepted %q with an undecodable header: %v", k, token, err)
			}
			var h struct{ Alg string }
			if json.Unmarshal(hdr, &h) != nil || h.Alg[:2] != k.Alg()[:2] && !(k.Alg()[:2] == "RS" && h.Alg[:2] == "PS") {
				t.Fatalf("%s accepted %q with alg %q", k, token, h.Alg)
			}
		}
	})
}

func TestSigKeyVerifyRejectsAlteredSignature(t *testing.T) {
	for _, s := range []string{"changeme", keyDir + "ec256-private.pem", keyDir + "rsa2048-private.pem"} {
		k := mustParseSigKey(t, s)
		tok := mustToken(t, mustSigner(t, k, time.Hour))
		if !k.Verify(tok) {
			t.Fatalf("%s rejects its own token", k)
		}
		i := strings.LastIndexByte(tok, '.') + 1
		c := byte('A')
		if tok[i] == 'A' {
			c = 'B'
		}
		if bad := tok[:i] + string(c) + tok[i+1:]; k.Verify(bad) {
			t.Fatalf("%s accepts its token with an altered signature", k)
		}
	}
}
