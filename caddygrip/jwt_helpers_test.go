package caddygrip

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// testKeys is where the test keys live, beside the Grip-Sig package.
const testKeys = "../gripsig/testdata/keys/"

// craft signs claims with m and key, as a publisher's JWT library would.
func craft(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing %s: %v", m.Alg(), err)
	}
	return tok
}

// testECPrivateKey reads the test EC P-256 private key.
func testECPrivateKey(t testing.TB) any {
	t.Helper()
	block, _ := pem.Decode([]byte(mustRead(t, testKeys+"ec256-private-pkcs8.pem")))
	if block == nil {
		t.Fatal("no PEM block in the test key")
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}
