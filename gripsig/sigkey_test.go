package gripsig

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const keyDir = "file:testdata/keys/"

func mustParseSigKey(t testing.TB, s string) *Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatalf("ParseKey(%q): %v", s, err)
	}
	return k
}

func mustSigner(t testing.TB, k *Key, ttl time.Duration) *Signer {
	t.Helper()
	s, err := NewSigner(k, "pushpin", ttl)
	if err != nil {
		t.Fatalf("NewSigner(%s): %v", k, err)
	}
	return s
}

func mustToken(t testing.TB, s *Signer) string {
	t.Helper()
	tok, err := s.Token()
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok
}

// writeFile puts data in a temp file and returns its "file:" key string.
func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + path
}

// writePKCS8 writes a private key as a PKCS#8 PEM file and returns its "file:" key string.
func writePKCS8(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func mustECKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// craft signs arbitrary claims with the plain jwt library, as another GRIP proxy would.
func craft(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing %s: %v", m.Alg(), err)
	}
	return tok
}

// segment decodes part i (0 header, 1 payload) of a JWT into a map.
func segment(t testing.TB, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", tok, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// expOf reads a token's integer exp without failing the test, for use off the test goroutine.
func expOf(tok string) (int64, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return 0, fmt.Errorf("%d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return 0, err
	}
	var c struct{ Exp int64 }
	err = json.Unmarshal(raw, &c)
	return c.Exp, err
}

func TestParseSigKeyAcceptsPushpinForms(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		alg     string
		canSign bool
	}{
		{"plain secret", "changeme", "HS256", true},
		{"base64 secret", "base64:Y2hhbmdlbWU=", "HS256", true},
		{"base64 unpadded url-safe", "base64:-_8", "HS256", true},
		{"file hex secret", keyDir + "hmac-secret.hex", "HS256", true},
		{"file EC SEC1 private with EC PARAMETERS", keyDir + "ec256-private.pem", "ES256", true},
		{"file EC PKCS#8 private", keyDir + "ec256-private-pkcs8.pem", "ES256", true},
		{"file EC PKIX public", keyDir + "ec256-public.pem", "ES256", false},
		{"file RSA PKCS#1 private", keyDir + "rsa2048-private.pem", "RS256", true},
		{"file RSA PKCS#8 private", keyDir + "rsa2048-private-pkcs8.pem", "RS256", true},
		{"file RSA PKIX public", keyDir + "rsa2048-public.pem", "RS256", false},
		{"file RSA PKCS#1 public", keyDir + "rsa2048-public-pkcs1.pem", "RS256", false},
		{"Fastly Fanout JWK", FastlyJWK, "ES256", false},
		{"oct JWK", `{"kty":"oct","k":"Y2hhbmdlbWU"}`, "HS256", true},
		{"brace secret without kty", "{not-a-jwk}", "HS256", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := mustParseSigKey(t, tt.in)
			if k.Alg() != tt.alg {
				t.Errorf("Alg() = %s, want %s", k.Alg(), tt.alg)
			}
			if got := k.signKey != nil; got != tt.canSign {
				t.Errorf("can sign = %v, want %v", got, tt.canSign)
			}
		})
	}
}

func TestParseSigKeyPicksESAlgFromCurve(t *testing.T) {
	for _, tt := range []struct {
		curve elliptic.Curve
		alg   string
	}{{elliptic.P256(), "ES256"}, {elliptic.P384(), "ES384"}, {elliptic.P521(), "ES512"}} {
		k := mustParseSigKey(t, writePKCS8(t, mustECKey(t, tt.curve)))
		if k.Alg() != tt.alg {
			t.Errorf("%s: Alg() = %s, want %s", tt.curve.Params().Name, k.Alg(), tt.alg)
		}
	}
}

func TestSecretFormsAreTheSameKey(t *testing.T) {
	forms := []string{"changeme", "base64:Y2hhbmdlbWU=", keyDir + "hmac-secret.hex",
		writeFile(t, []byte("  63 68 61 6e\n67 65 6d 65  \n")), `{"kty":"oct","k":"Y2hhbmdlbWU"}`}
	for _, a := range forms {
		tok := mustToken(t, mustSigner(t, mustParseSigKey(t, a), 0))
		for _, b := range forms {
			if !mustParseSigKey(t, b).Verify(tok) {
				t.Errorf("token signed with %q does not verify with %q", a, b)
			}
		}
	}
}

// Pushpin's jwttest.cpp validTokenBinaryKey: secret 01 61 80 fe, claim {"foo":"bar"}.
func TestBinarySecretMatchesPushpinVector(t *testing.T) {
	const tok = "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJmb28iOiAiYmFyIn0.-eLxyGEITnd6IP4WvGJx9CmIOt--Qcs3LB6wblJ7KXI"
	k := mustParseSigKey(t, "base64:AWGA/g==")
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return k.verifyKey, nil }); err != nil {
		t.Fatalf("signature of Pushpin's vector does not check: %v", err)
	}
	if k.Verify(tok) {
		t.Error("Verify accepted a token without exp")
	}
}

func TestParseSigKeyRejectsBadKeys(t *testing.T) {
	edPriv := func() any { _, p, _ := ed25519.GenerateKey(rand.Reader); return p }()
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	encrypted := "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
	fastly := map[string]string{}
	if err := json.Unmarshal([]byte(FastlyJWK), &fastly); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty key"},
		{"empty base64", "base64:", "empty secret"},
		{"bad base64", "base64:***", "base64"},
		{"file without path", "file:", "needs a path"},
		{"missing file", keyDir + "missing.pem", "no such file"},
		{"empty file", writeFile(t, []byte("\n")), "empty"},
		{"file with non-hex secret", writeFile(t, []byte("changeme\n")), "hex-encoded secret"},
		{"odd-length hex", writeFile(t, []byte("abc")), "hex"},
		{"PEM without key block", writeFile(t, []byte("-----BEGIN X-----\n-----END\n")), "no PEM key block"},
		{"unknown PEM block", writeFile(t, pem.EncodeToMemory(&pem.Block{Type: "DH PARAMETERS", Bytes: []byte{1}})), "unsupported PEM block"},
		{"corrupt PEM key", writeFile(t, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})), "PEM PRIVATE KEY"},
		{"encrypted PEM", writeFile(t, []byte(encrypted)), "encrypted"},
		{"encrypted PKCS#8", writeFile(t, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})), "encrypted"},
		{"Ed25519", writePKCS8(t, edPriv), "Ed25519"},
		{"P-224", writePKCS8(t, mustECKey(t, elliptic.P224())), "P-224"},
		{"RSA 1024", writePKCS8(t, rsa1024), "1024 bits"},
		{"JWK bad JSON", `{"kty":`, "JWK"},
		{"JWK unknown kty", `{"kty":"OKP","crv":"Ed25519","x":"AA"}`, "unsupported kty"},
		{"JWK unknown crv", `{"kty":"EC","crv":"P-192","x":"AA","y":"AA"}`, "unsupported crv"},
		{"JWK missing y", `{"kty":"EC","crv":"P-256","x":"` + fastly["x"] + `"}`, `missing "y"`},
		{"JWK short x", `{"kty":"EC","crv":"P-256","x":"AAAA","y":"` + fastly["y"] + `"}`, "32 bytes"},
		{"JWK point off curve", `{"kty":"EC","crv":"P-256","x":"` + fastly["y"] + `","y":"` + fastly["x"] + `"}`, "JWK"},
		{"JWK d not matching", `{"kty":"EC","crv":"P-256","x":"` + fastly["x"] + `","y":"` + fastly["y"] + `","d":"` + strings.Repeat("A", 42) + `E"}`, "does not match"},
		{"JWK RSA private", `{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}`, "RSA private"},
		{"JWK RSA small", `{"kty":"RSA","n":"` + base64.RawURLEncoding.EncodeToString(rsa1024.N.Bytes()) + `","e":"AQAB"}`, "1024 bits"},
		{"JWK RSA bad e", `{"kty":"RSA","n":"AQAB","e":"AQ"}`, "exponent"},
		{"JWK empty oct", `{"kty":"oct","k":""}`, `missing "k"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.in)
			if err == nil {
				t.Fatalf("ParseKey accepted it as %s", k)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestNewSignerRefuses(t *testing.T) {
	hs := mustParseSigKey(t, "changeme")
	tests := []struct {
		name string
		key  *Key
		iss  string
		ttl  time.Duration
		want string
	}{
		{"EC public key", mustParseSigKey(t, keyDir+"ec256-public.pem"), "pushpin", 0, "can only verify"},
		{"RSA public key", mustParseSigKey(t, keyDir+"rsa2048-public.pem"), "pushpin", 0, "can only verify"},
		{"Fastly JWK", mustParseSigKey(t, FastlyJWK), "pushpin", 0, "can only verify"},
		{"nil key", nil, "pushpin", 0, "no key"},
		{"empty iss", hs, "", 0, "empty iss"},
		{"sub-second ttl", hs, "pushpin", 500 * time.Millisecond, "under one second"},
		{"negative ttl", hs, "pushpin", -time.Hour, "under one second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSigner(tt.key, tt.iss, tt.ttl)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewSigner error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestSignerTokenRoundTripsPerAlg(t *testing.T) {
	p384, p521 := mustECKey(t, elliptic.P384()), mustECKey(t, elliptic.P521())
	pubPEM := func(k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	tests := []struct {
		name, priv, pub, alg string
	}{
		{"HS256", "changeme", "changeme", "HS256"},
		{"ES256 SEC1", keyDir + "ec256-private.pem", keyDir + "ec256-public.pem", "ES256"},
		{"ES256 PKCS#8", keyDir + "ec256-private-pkcs8.pem", keyDir + "ec256-public.pem", "ES256"},
		{"RS256 PKCS#1", keyDir + "rsa2048-private.pem", keyDir + "rsa2048-public-pkcs1.pem", "RS256"},
		{"RS256 PKCS#8", keyDir + "rsa2048-private-pkcs8.pem", keyDir + "rsa2048-public.pem", "RS256"},
		{"ES384", writePKCS8(t, p384), pubPEM(p384), "ES384"},
		{"ES512", writePKCS8(t, p521), pubPEM(p521), "ES512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			priv := mustParseSigKey(t, tt.priv)
			tok := mustToken(t, mustSigner(t, priv, 0))
			if h := segment(t, tok, 0); h["alg"] != tt.alg || h["typ"] != "JWT" {
				t.Errorf("header = %v, want alg %s typ JWT", h, tt.alg)
			}
			if !priv.Verify(tok) {
				t.Error("the signing key does not verify its own token")
			}
			if !mustParseSigKey(t, tt.pub).Verify(tok) {
				t.Error("the public key does not verify the token")
			}
		})
	}
}

func TestSignerTokensValidateWithPlainJWTParser(t *testing.T) {
	readPub := func(name string) any {
		data, err := os.ReadFile("testdata/keys/" + name)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	tests := []struct {
		name, key string
		verify    any
		alg       string
	}{
		{"HS256 with the same secret", "changeme", []byte("changeme"), "HS256"},
		{"ES256 with the public key", keyDir + "ec256-private.pem", readPub("ec256-public.pem"), "ES256"},
		{"RS256 with the public key", keyDir + "rsa2048-private.pem", readPub("rsa2048-public.pem"), "RS256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mustToken(t, mustSigner(t, mustParseSigKey(t, tt.key), 0))
			var claims jwt.RegisteredClaims
			_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return tt.verify, nil },
				jwt.WithValidMethods([]string{tt.alg}), jwt.WithExpirationRequired(), jwt.WithIssuer("pushpin"))
			if err != nil {
				t.Fatalf("plain jwt/v5 parser refused the token: %v", err)
			}
		})
	}
}

func TestVerifyAcceptsValidUpstreamTokens(t *testing.T) {
	hs := mustParseSigKey(t, "changeme")
	rsaKey := mustParseSigKey(t, keyDir+"rsa2048-private.pem")
	rsaPub := mustParseSigKey(t, keyDir+"rsa2048-public.pem")
	exp := time.Now().Add(time.Minute).Unix()
	tests := []struct {
		name string
		key  *Key
		tok  string
	}{
		{"HS384 with the secret", hs, craft(t, jwt.SigningMethodHS384, []byte("changeme"), jwt.MapClaims{"exp": exp})},
		{"HS512 with the secret", hs, craft(t, jwt.SigningMethodHS512, []byte("changeme"), jwt.MapClaims{"exp": exp})},
		{"PS256 with the RSA key", rsaPub, craft(t, jwt.SigningMethodPS256, rsaKey.signKey, jwt.MapClaims{"exp": exp})},
		{"RS512 with the RSA key", rsaPub, craft(t, jwt.SigningMethodRS512, rsaKey.signKey, jwt.MapClaims{"exp": exp})},
		{"fractional exp", hs, craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{"exp": float64(exp) + 0.5})},
		{"iss, nbf, iat and aud are ignored", hs, craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{
			"exp": exp, "iss": 42, "nbf": exp, "iat": exp, "aud": []int{1}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.key.Verify(tt.tok) {
				t.Errorf("Verify refused %s", tt.tok)
			}
		})
	}
}

func TestVerifyRefusesInvalidTokens(t *testing.T) {
	hs := mustParseSigKey(t, "changeme")
	ecPriv := mustParseSigKey(t, keyDir+"ec256-private.pem")
	ecPub := mustParseSigKey(t, keyDir+"ec256-public.pem")
	rsaPriv := mustParseSigKey(t, keyDir+"rsa2048-private.pem")
	rsaPub := mustParseSigKey(t, keyDir+"rsa2048-public.pem")
	ecPubPEM, err := os.ReadFile("testdata/keys/ec256-public.pem")
	if err != nil {
		t.Fatal(err)
	}
	rsaPubPEM, err := os.ReadFile("testdata/keys/rsa2048-public.pem")
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	valid := jwt.MapClaims{"iss": "pushpin", "exp": now.Add(time.Hour).Unix()}
	hsTok := craft(t, jwt.SigningMethodHS256, []byte("changeme"), valid)
	parts := strings.Split(hsTok, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":99999999999,"iss":"pushpin"}`)) + "." + parts[2]
	none := func() string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, valid).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}()
	esTok := craft(t, jwt.SigningMethodES256, ecPriv.signKey, valid)

	tests := []struct {
		name string
		key  *Key
		tok  string
	}{
		{"empty", hs, ""},
		{"garbage", hs, "a.b.c"},
		{"oversized", hs, hsTok + strings.Repeat("A", maxSigTokenLen)},
		{"expired", hs, craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{"exp": now.Add(-time.Second).Unix()})},
		{"exp now", hs, craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{"exp": now.Unix()})},
		{"exp zero", hs, craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{"exp": 0})},
		{"no exp", hs, craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{"iss": "pushpin"})},
		{"exp not a number", hs, craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{"exp": "tomorrow"})},
		{"tampered payload", hs, tampered},
		{"wrong secret", hs, craft(t, jwt.SigningMethodHS256, []byte("changemf"), valid)},
		{"wrong EC key", ecPub, craft(t, jwt.SigningMethodES256, mustECKey(t, elliptic.P256()), valid)},
		{"wrong RSA key", rsaPub, craft(t, jwt.SigningMethodRS256, otherRSA, valid)},
		{"ES256 token, P-384 key", mustParseSigKey(t, writePKCS8(t, mustECKey(t, elliptic.P384()))), esTok},
		{"none to secret", hs, none},
		{"none to EC key", ecPub, none},
		{"none to RSA key", rsaPub, none},
		{"HS256 signed with EC public PEM, to EC key", ecPub, craft(t, jwt.SigningMethodHS256, ecPubPEM, valid)},
		{"HS256 signed with RSA public PEM, to RSA key", rsaPub, craft(t, jwt.SigningMethodHS256, rsaPubPEM, valid)},
		{"ES256 token to a secret", hs, esTok},
		{"ES256 token to the EC public PEM as secret", mustParseSigKey(t, string(ecPubPEM)), esTok},
		{"RS256 token to a secret", hs, craft(t, jwt.SigningMethodRS256, rsaPriv.signKey, valid)},
		{"RS256 token to the EC key", ecPub, craft(t, jwt.SigningMethodRS256, rsaPriv.signKey, valid)},
		{"ES256 token to the RSA key", rsaPub, esTok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.key.Verify(tt.tok) {
				t.Errorf("Verify accepted %s", tt.tok)
			}
		})
	}
}

func TestSignerClaimsAreExactlyIssAndExp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tok := mustToken(t, mustSigner(t, mustParseSigKey(t, "changeme"), 0))
		claims := segment(t, tok, 1)
		want := map[string]any{"iss": "pushpin", "exp": float64(time.Now().Add(time.Hour).Unix())}
		if fmt.Sprint(claims) != fmt.Sprint(want) {
			t.Errorf("claims = %v, want %v", claims, want)
		}
	})
}

func TestSignerReusesTokenUntilHalfLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustSigner(t, mustParseSigKey(t, keyDir+"ec256-private.pem"), time.Hour)
		first := mustToken(t, s)
		time.Sleep(30*time.Minute - time.Nanosecond)
		if got := mustToken(t, s); got != first {
			t.Fatal("token re-signed before half its lifetime")
		}
		time.Sleep(time.Nanosecond)
		second := mustToken(t, s)
		if second == first {
			t.Fatal("token not re-signed at half its lifetime")
		}
		if exp := segment(t, second, 1)["exp"]; exp != float64(time.Now().Add(time.Hour).Unix()) {
			t.Errorf("re-signed exp = %v, want now+1h", exp)
		}
		time.Sleep(29 * time.Minute)
		if got := mustToken(t, s); got != second {
			t.Error("new token not reused")
		}
	})
}

// exp is whole seconds: a 1 s token signed at x.5 s has only 0.5 s left, so
// it must be re-signed after 0.25 s, not after ttl/2. (ES256 signatures are
// randomised, so a re-sign shows even when exp is unchanged.)
func TestSignerRefreshCountsTimeLeftUntilExp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustSigner(t, mustParseSigKey(t, keyDir+"ec256-private.pem"), time.Second)
		time.Sleep(500 * time.Millisecond)
		first := mustToken(t, s)
		time.Sleep(249 * time.Millisecond)
		if got := mustToken(t, s); got != first {
			t.Fatal("re-signed too early")
		}
		time.Sleep(time.Millisecond)
		if got := mustToken(t, s); got == first {
			t.Fatal("kept a token with under half of its remaining life")
		}
	})
}

func TestSignerResignsWhenWallClockStepsBack(t *testing.T) {
	s := mustSigner(t, mustParseSigKey(t, "changeme"), time.Hour)
	now := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return now }
	first := mustToken(t, s)
	now = now.Add(-time.Hour)
	second := mustToken(t, s)
	if second == first {
		t.Fatal("kept a token signed in the future")
	}
	if exp := segment(t, second, 1)["exp"]; exp != float64(now.Add(time.Hour).Unix()) {
		t.Errorf("exp = %v, want %d", exp, now.Add(time.Hour).Unix())
	}
}

func TestSignerTokenIsSafeForConcurrentUse(t *testing.T) {
	for _, key := range []string{"changeme", keyDir + "ec256-private.pem"} {
		t.Run(key, func(t *testing.T) {
			k := mustParseSigKey(t, key)
			s := mustSigner(t, k, 10*time.Second)
			base := time.Now()
			var offset atomic.Int64
			s.now = func() time.Time { return base.Add(time.Duration(offset.Load())) }
			const workers, calls = 8, 300
			var wg sync.WaitGroup
			var mu sync.Mutex
			seen := map[string]bool{}
			for range workers {
				wg.Go(func() {
					for range calls {
						before := base.Add(time.Duration(offset.Load()))
						tok, err := s.Token()
						offset.Add(int64(100 * time.Millisecond))
						if err != nil {
							t.Error(err)
							return
						}
						// Token read the clock at or after before, and its token was valid then.
						if exp, err := expOf(tok); err != nil || !before.Before(time.Unix(exp, 0)) {
							t.Errorf("token handed out at or after %v has exp %d (%v)", before, exp, err)
						}
						mu.Lock()
						seen[tok] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(seen) < 2 {
				t.Fatalf("%d distinct tokens; the clock ran %v so it should have re-signed", len(seen), time.Duration(offset.Load()))
			}
			for tok := range seen {
				if !k.Verify(tok) {
					t.Errorf("token does not verify: %s", tok)
				}
			}
		})
	}
}

func TestSigKeyStringHidesSecret(t *testing.T) {
	k := mustParseSigKey(t, "changeme")
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %s", k, k, k)} {
		if strings.Contains(s, "changeme") {
			t.Errorf("%q leaks the secret", s)
		}
	}
	if got := fmt.Sprint(k); got != "HS256 plain secret" {
		t.Errorf("String() = %q", got)
	}
}

func TestFastlyJWKIsTheES256PublicKey(t *testing.T) {
	k := mustParseSigKey(t, FastlyJWK)
	pub, ok := k.verifyKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("verify key = %T, want a P-256 public key", k.verifyKey)
	}
	raw, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	x := base64.RawURLEncoding.EncodeToString(raw[1:33])
	if !strings.Contains(FastlyJWK, `"x":"`+x+`"`) {
		t.Errorf("x = %s does not round-trip", x)
	}
}

func TestECJWKPrivateKeySigns(t *testing.T) {
	priv := mustECKey(t, elliptic.P256())
	raw, err := priv.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	d, err := priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	jwkPub := fmt.Sprintf(`{"kty":"EC","crv":"P-256","x":%q,"y":%q}`, enc(raw[1:33]), enc(raw[33:]))
	jwkPriv := strings.TrimSuffix(jwkPub, "}") + fmt.Sprintf(`,"d":%q}`, enc(d))
	tok := mustToken(t, mustSigner(t, mustParseSigKey(t, jwkPriv), 0))
	if !mustParseSigKey(t, jwkPub).Verify(tok) {
		t.Error("public JWK does not verify a token signed with the private JWK")
	}
}

// FuzzParseKey feeds key texts and tokens to ParseKey and Verify: no
// panic, and an asymmetric key's own text never verifies as a token.
func FuzzParseKey(f *testing.F) {
	for _, seed := range [][2]string{
		{"changeme", "changeme"},
		{"base64:Y2hhbmdlbWU=", "eyJhbGciOiJIUzI1NiJ9.e30.x"},
		{FastlyJWK, FastlyJWK},
		{`{"kty":"oct","k":"Y2hhbmdlbWU"}`, "a.b.c"},
		{"file:-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----", ""},
		{"file:0011aabb", "file:0011aabb"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, key, token string) {
		var k *Key
		var err error
		if rest, ok := strings.CutPrefix(key, "file:"); ok {
			k, err = parseKeyFile([]byte(rest)) // the file's contents, without touching the disk
		} else {
			k, err = ParseKey(key)
		}
		if err != nil {
			return
		}
		_ = k.Verify(token)
		_ = k.VerifyPublish(token)
		if k.Secret() == nil && (k.Verify(key) || k.VerifyPublish(key)) {
			t.Fatalf("%s verifies its own text as a token", k)
		}
	})
}
