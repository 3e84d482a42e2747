// Package gripsig is GRIP's Grip-Sig and publish keys: a key parsed from
// the forms a configuration gives (a secret, base64, hex, PEM, JWK, a file
// of any of them), JWT verification as an origin or a publish endpoint
// checks it, and a signer that caches its token. It imports nothing from
// Caddy.
package gripsig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FastlyJWK is the public key Fastly Fanout signs Grip-Sig with (ES256,
// iss "fastly:<service_id>"), as published in js-grip. Use it as upstream_key
// when this server sits behind Fanout and should trust Fanout's requests.
const FastlyJWK = `{"kty":"EC","crv":"P-256","x":"CKo5A1ebyFcnmVV8SE5On-8G81JyBjSvcrx4VLetWCg","y":"7gwJqaU6N8TP88--twjkwoB36f-pT3QsmI46nPhjO7M"}`

// DefaultTTL is how long a Grip-Sig token is valid; Pushpin uses one hour.
const DefaultTTL = time.Hour

// maxSigTokenLen bounds the Grip-Sig header Verify will parse. Real tokens are
// a few hundred bytes; anything this long is refused without decoding it.
const maxSigTokenLen = 8 << 10

// minRSABits is the smallest RSA modulus accepted. Pushpin's JWT library
// (jsonwebtoken on ring) refuses smaller RSA keys too.
const minRSABits = 2048

// Key is a parsed Grip-Sig key: what signs requests to the origin, or
// verifies tokens from a trusted upstream. It is immutable and safe for
// concurrent use.
type Key struct {
	alg       string
	method    jwt.SigningMethod
	signKey   any // []byte, *ecdsa.PrivateKey or *rsa.PrivateKey; nil for a public key
	verifyKey any // []byte, *ecdsa.PublicKey or *rsa.PublicKey
	desc      string
	parser    *jwt.Parser
	keyFunc   jwt.Keyfunc
}

// ParseKey reads a key in Pushpin's sig_key/upstream_key forms:
//
//   - "base64:<b64>": a binary secret (HS256);
//   - "file:<path>": a PEM file (EC or RSA; private or public; SEC1, PKCS#1,
//     PKCS#8, PKIX or a certificate), or else a hex-encoded secret, which is
//     what Pushpin 1.38+ reads from a non-PEM file (whitespace is ignored);
//   - a JWK object ({"kty":"EC"|"RSA"|"oct",...}), e.g. FastlyJWK;
//   - anything else: the UTF-8 bytes of a plain secret (HS256).
//
// A relative file path is relative to the working directory.
func ParseKey(s string) (*Key, error) {
	switch {
	case s == "":
		return nil, errors.New("grip sig key: empty key")
	case strings.HasPrefix(s, "file:"):
		path := s[len("file:"):]
		if path == "" {
			return nil, errors.New("grip sig key: file: needs a path")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("grip sig key: %w", err)
		}
		k, err := parseKeyFile(data)
		if err != nil {
			return nil, fmt.Errorf("grip sig key file %s: %w", path, err)
		}
		return k, nil
	case strings.HasPrefix(s, "base64:"):
		secret, err := decodeBase64(s[len("base64:"):])
		if err != nil {
			return nil, fmt.Errorf("grip sig key: base64: %w", err)
		}
		return newSecretKey(secret, "base64 secret")
	case isJWK(s):
		k, err := parseJWK([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("grip sig key: JWK: %w", err)
		}
		return k, nil
	default:
		return newSecretKey([]byte(s), "plain secret")
	}
}

// Alg reports the JWT algorithm the key signs with: HS256, ES256, ES384,
// ES512 or RS256.
func (k *Key) Alg() string { return k.alg }

// String describes the key without revealing it, so a key in a log line or
// error message does not leak the secret.
func (k *Key) String() string { return k.alg + " " + k.desc }

// Verify reports whether token is a valid Grip-Sig from a trusted upstream:
// the signature checks with an algorithm of the key's own family (HS* for a
// secret, RS*/PS* for RSA, the curve's ES* for EC; never "none"), and "exp" is
// present and in the future. As in Pushpin, "iss", "nbf", "iat" and "aud" are
// not checked.
func (k *Key) Verify(token string) bool {
	if token == "" || len(token) > maxSigTokenLen {
		return false
	}
	_, err := k.parser.ParseWithClaims(token, &expClaim{}, k.keyFunc)
	return err == nil
}

// Signer makes Grip-Sig tokens for requests to the origin. Signing ES256 or
// RS256 per request is expensive, so it caches the current token: a token is
// re-used until half of its lifetime has passed (so the origin always sees
// at least ttl/2 left before exp), then re-signed. While one goroutine
// re-signs, others keep getting the previous, still valid token. A wall clock
// that steps backwards also forces a re-sign. Safe for concurrent use.
type Signer struct {
	key *Key
	iss string
	ttl time.Duration
	now func() time.Time // time.Now; tests replace it

	mu  sync.Mutex // held while signing; serialises re-signs
	cur atomic.Pointer[signedToken]
}

// signedToken is one cached token and the wall-clock instants (Unix ns) that
// bound its reuse.
type signedToken struct {
	token     string
	signedAt  int64 // when it was signed
	refreshAt int64 // re-sign from here on
	expires   int64 // its exp claim
}

// fresh reports whether t may be handed out at wall time now without re-signing.
func (t *signedToken) fresh(now int64) bool {
	return t != nil && now >= t.signedAt && now < t.refreshAt
}

// valid reports whether t is still inside its lifetime at wall time now.
func (t *signedToken) valid(now int64) bool {
	return t != nil && now >= t.signedAt && now < t.expires
}

// NewSigner returns a Signer issuing tokens {"iss": iss, "exp": now+ttl}
// signed with k. k must hold a secret or a private key; ttl 0 means
// DefaultTTL, and a ttl under one second is refused because exp counts
// whole seconds.
func NewSigner(k *Key, iss string, ttl time.Duration) (*Signer, error) {
	if k == nil {
		return nil, errors.New("grip signer: no key")
	}
	if k.signKey == nil {
		return nil, fmt.Errorf("grip signer: %s can only verify; signing needs a private key or a secret", k)
	}
	if iss == "" {
		return nil, errors.New("grip signer: empty iss (Pushpin signs only when sig_iss is set)")
	}
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("grip signer: ttl %v is under one second", ttl)
	}
	return &Signer{key: k, iss: iss, ttl: ttl, now: time.Now}, nil
}

// Token returns a Grip-Sig token for the next origin request, signing a new
// one only when the cached one is past half its lifetime.
func (s *Signer) Token() (string, error) {
	now := s.now().UnixNano()
	cur := s.cur.Load()
	if cur.fresh(now) {
		return cur.token, nil
	}
	if !s.mu.TryLock() {
		if cur.valid(now) {
			return cur.token, nil // someone is re-signing; this one still has ~ttl/2 left
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	t := s.now()
	now = t.UnixNano()
	if cur = s.cur.Load(); cur.fresh(now) {
		return cur.token, nil
	}
	next, err := s.sign(t)
	if err != nil {
		return "", err
	}
	s.cur.Store(next)
	return next.token, nil
}

// sign makes a token at wall time t. exp is whole seconds, so the refresh
// point is half of the time really left until exp, not half of ttl.
func (s *Signer) sign(t time.Time) (*signedToken, error) {
	exp := t.Add(s.ttl).Unix()
	claims := jwt.MapClaims{"iss": s.iss, "exp": exp}
	tok, err := jwt.NewWithClaims(s.key.method, claims).SignedString(s.key.signKey)
	if err != nil {
		return nil, fmt.Errorf("grip signer: signing %s: %w", s.key.alg, err)
	}
	now := t.UnixNano()
	expires := time.Unix(exp, 0).UnixNano()
	return &signedToken{token: tok, signedAt: now, refreshAt: now + (expires-now)/2, expires: expires}, nil
}

// Secret returns the key's HMAC secret as parsed (the decoded bytes of a
// base64:, hex file or JWK "oct" key), so a plain bearer token is compared
// with the secret itself, never with the configured text; nil for an EC or
// RSA key, which only verifies signed tokens.
func (k *Key) Secret() []byte {
	if b, ok := k.verifyKey.([]byte); ok {
		return b
	}
	return nil
}

// VerifyPublish reports whether token is a valid publish token: Verify's
// checks, and "nbf", when present, not in the future, so a token made for
// later cannot publish now.
func (k *Key) VerifyPublish(token string) bool {
	if token == "" || len(token) > maxSigTokenLen {
		return false
	}
	_, err := k.parser.ParseWithClaims(token, &expNbfClaims{}, k.keyFunc)
	return err == nil
}

// expNbfClaims is what VerifyPublish looks at: exp, and nbf, which the
// parser checks whenever GetNotBefore returns one.
type expNbfClaims struct {
	expClaim
	Nbf *jwt.NumericDate `json:"nbf"`
}

func (c *expNbfClaims) GetNotBefore() (*jwt.NumericDate, error) { return c.Nbf, nil }

// expClaim is the only claim Verify looks at. Decoding into it (instead of
// RegisteredClaims) keeps unusual iss/aud/nbf values from rejecting a token
// Pushpin would accept.
type expClaim struct {
	Exp *jwt.NumericDate `json:"exp"`
}

func (c *expClaim) GetExpirationTime() (*jwt.NumericDate, error) { return c.Exp, nil }
func (c *expClaim) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c *expClaim) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c *expClaim) GetIssuer() (string, error)                   { return "", nil }
func (c *expClaim) GetSubject() (string, error)                  { return "", nil }
func (c *expClaim) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// newSigKey finishes a key: its parser accepts only validAlgs and requires exp.
func newSigKey(method jwt.SigningMethod, signKey, verifyKey any, desc string, validAlgs []string) *Key {
	k := &Key{
		alg:       method.Alg(),
		method:    method,
		signKey:   signKey,
		verifyKey: verifyKey,
		desc:      desc,
		parser:    jwt.NewParser(jwt.WithValidMethods(validAlgs), jwt.WithExpirationRequired()),
	}
	k.keyFunc = func(*jwt.Token) (any, error) { return k.verifyKey, nil }
	return k
}

// newSecretKey makes an HS256 key. A secret only ever verifies HS* tokens, so
// a public key used as an HMAC secret (alg confusion) cannot pass.
func newSecretKey(secret []byte, desc string) (*Key, error) {
	if len(secret) == 0 {
		return nil, errors.New("grip sig key: empty secret")
	}
	secret = bytes.Clone(secret)
	return newSigKey(jwt.SigningMethodHS256, secret, secret, desc, []string{"HS256", "HS384", "HS512"}), nil
}

// newECKey makes an ES* key; the curve fixes the algorithm.
func newECKey(priv *ecdsa.PrivateKey, pub *ecdsa.PublicKey) (*Key, error) {
	var method *jwt.SigningMethodECDSA
	switch pub.Curve {
	case elliptic.P256():
		method = jwt.SigningMethodES256
	case elliptic.P384():
		method = jwt.SigningMethodES384
	case elliptic.P521():
		method = jwt.SigningMethodES512
	default:
		return nil, fmt.Errorf("unsupported EC curve %s (want P-256, P-384 or P-521)", pub.Curve.Params().Name)
	}
	desc := "EC public key"
	var signKey any
	if priv != nil {
		desc, signKey = "EC private key", priv
	}
	return newSigKey(method, signKey, pub, desc, []string{method.Alg()}), nil
}

// newRSAKey makes an RS256 key that also verifies RS384/512 and PS256/384/512.
func newRSAKey(priv *rsa.PrivateKey, pub *rsa.PublicKey) (*Key, error) {
	if bits := pub.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("RSA key has %d bits; at least %d are needed", bits, minRSABits)
	}
	desc := "RSA public key"
	var signKey any
	if priv != nil {
		desc, signKey = "RSA private key", priv
	}
	return newSigKey(jwt.SigningMethodRS256, signKey, pub, desc,
		[]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}), nil
}

// newAsymmetricKey wraps a key from the x509 parsers.
func newAsymmetricKey(key any) (*Key, error) {
	switch key := key.(type) {
	case *ecdsa.PrivateKey:
		return newECKey(key, &key.PublicKey)
	case *ecdsa.PublicKey:
		return newECKey(nil, key)
	case *rsa.PrivateKey:
		return newRSAKey(key, &key.PublicKey)
	case *rsa.PublicKey:
		return newRSAKey(nil, key)
	case ed25519.PrivateKey, ed25519.PublicKey:
		return nil, errors.New("Ed25519 keys are not supported (Grip-Sig uses HS256, ES256 or RS256)")
	default:
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
}

// parseKeyFile reads a file's contents as Pushpin does: PEM when it starts
// with "-----BEGIN", otherwise a hex secret. Pushpin's hex decoder silently
// skips bad characters; here anything but hex digits and whitespace is an
// error, so a mistyped file fails loudly instead of yielding another key.
func parseKeyFile(data []byte) (*Key, error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("file is empty")
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return parsePEM(trimmed)
	case isJWK(string(trimmed)):
		return parseJWK(trimmed)
	}
	compact := bytes.Join(bytes.Fields(trimmed), nil)
	secret := make([]byte, hex.DecodedLen(len(compact)))
	if _, err := hex.Decode(secret, compact); err != nil {
		return nil, fmt.Errorf("not PEM, so it must hold a hex-encoded secret (as in Pushpin): %w", err)
	}
	return newSecretKey(secret, "hex secret from file")
}

// parsePEM takes the first key block, skipping EC PARAMETERS and the like.
func parsePEM(data []byte) (*Key, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM key block found")
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("encrypted PEM keys are not supported; decrypt it first")
		}
		var key any
		var err error
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM %s: %w", block.Type, err)
		}
		return newAsymmetricKey(key)
	}
}

// isJWK reports whether s looks like a JSON Web Key rather than a plain
// secret that happens to start with a brace.
func isJWK(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "{") && strings.Contains(s, `"kty"`)
}

// jwk holds the JSON Web Key members ParseKey understands.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
	N   string `json:"n"`
	E   string `json:"e"`
	K   string `json:"k"`
}

// parseJWK reads an EC (public or private), RSA (public) or oct (secret) JWK.
func parseJWK(data []byte) (*Key, error) {
	var j jwk
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, err
	}
	switch j.Kty {
	case "EC":
		return parseECJWK(j)
	case "RSA":
		if j.D != "" {
			return nil, errors.New("RSA private JWKs are not supported; use a PEM file")
		}
		n, err := b64urlField("n", j.N)
		if err != nil {
			return nil, err
		}
		e, err := b64urlField("e", j.E)
		if err != nil {
			return nil, err
		}
		if len(e) > 4 || new(big.Int).SetBytes(e).Int64() < 3 {
			return nil, errors.New(`bad RSA exponent "e"`)
		}
		return newRSAKey(nil, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())})
	case "oct":
		k, err := b64urlField("k", j.K)
		if err != nil {
			return nil, err
		}
		return newSecretKey(k, "JWK secret")
	default:
		return nil, fmt.Errorf("unsupported kty %q (want EC, RSA or oct)", j.Kty)
	}
}

// parseECJWK builds an EC key from x, y and, for a private key, d.
func parseECJWK(j jwk) (*Key, error) {
	curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
	curve, ok := curves[j.Crv]
	if !ok {
		return nil, fmt.Errorf("unsupported crv %q (want P-256, P-384 or P-521)", j.Crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	x, err := b64urlField("x", j.X)
	if err != nil {
		return nil, err
	}
	y, err := b64urlField("y", j.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("%s coordinates must be %d bytes", j.Crv, size)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, err
	}
	if j.D == "" {
		return newECKey(nil, pub)
	}
	d, err := b64urlField("d", j.D)
	if err != nil {
		return nil, err
	}
	priv, err := ecdsa.ParseRawPrivateKey(curve, d)
	if err != nil {
		return nil, err
	}
	if !priv.PublicKey.Equal(pub) {
		return nil, errors.New(`"d" does not match "x" and "y"`)
	}
	return newECKey(priv, pub)
}

// b64urlField decodes a required base64url JWK member, padded or not.
func b64urlField(name, v string) ([]byte, error) {
	if v == "" {
		return nil, fmt.Errorf("missing %q", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	return b, nil
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, ignoring
// whitespace, as leniently as a config value deserves.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
