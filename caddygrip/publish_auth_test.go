package caddygrip

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
)

// publishWithKey returns a Publish whose key is parsed as Provision does.
func publishWithKey(t *testing.T, key string) *Publish {
	t.Helper()
	p := &Publish{Key: key}
	if err := p.provisionOptions(caddy.NewReplacer()); err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	return p
}

func bearer(tok string) string { return "Bearer " + tok }

// TestPublishKeyTextIsNeverAToken checks that the configured key text (a
// path, a JWK, the base64 form) does not publish, while the secret it
// names does: the token is compared with the parsed secret.
func TestPublishKeyTextIsNeverAToken(t *testing.T) {
	hexFile := testKeys + "hmac-secret.hex" // hex of "changeme"
	pubPEM := testKeys + "ec256-public.pem"
	jwkOct := `{"kty":"oct","k":"` + base64.RawURLEncoding.EncodeToString([]byte("jwk-secret")) + `"}`
	tests := []struct {
		name, key string
		refused   []string
		accepted  []string
	}{
		{"hex file", "file:" + hexFile, []string{"file:" + hexFile, "6368616e67656d65"}, []string{"changeme"}},
		{"base64", "base64:" + base64.StdEncoding.EncodeToString([]byte("b64-secret")),
			[]string{"base64:" + base64.StdEncoding.EncodeToString([]byte("b64-secret"))}, []string{"b64-secret"}},
		{"public PEM", "file:" + pubPEM, []string{"file:" + pubPEM, mustRead(t, pubPEM)}, nil},
		{"JWK oct", jwkOct, []string{jwkOct}, []string{"jwk-secret"}},
		{"plain", "plain-secret", []string{"plain-secre", "plain-secret-"}, []string{"plain-secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := publishWithKey(t, tt.key)
			for _, tok := range tt.refused {
				if p.authorized(bearer(tok)) {
					t.Errorf("token %.40q publishes", tok)
				}
			}
			for _, tok := range tt.accepted {
				if !p.authorized(bearer(tok)) {
					t.Errorf("token %q (the secret) refused", tok)
				}
			}
			if p.authorized("") {
				t.Error("no Authorization publishes")
			}
		})
	}
}

// TestPublishAsymmetricKeyAcceptsOnlyVerifiedJWTs checks that an EC public
// key accepts a JWT signed by its private key, and nothing else.
func TestPublishAsymmetricKeyAcceptsOnlyVerifiedJWTs(t *testing.T) {
	p := publishWithKey(t, "file:"+testKeys+"ec256-public.pem")
	priv := testECPrivateKey(t)
	exp := time.Now().Add(time.Hour).Unix()
	if tok := craft(t, jwt.SigningMethodES256, priv, jwt.MapClaims{"iss": "pub", "exp": exp}); !p.authorized(bearer(tok)) {
		t.Error("a JWT the key verifies is refused")
	}
	if tok := craft(t, jwt.SigningMethodHS256, []byte(mustRead(t, testKeys+"ec256-public.pem")), jwt.MapClaims{"exp": exp}); p.authorized(bearer(tok)) {
		t.Error("an HS256 JWT keyed with the public key text publishes")
	}
}

// TestPublishJWTNotBeforeIsChecked checks nbf and exp on publish tokens.
func TestPublishJWTNotBeforeIsChecked(t *testing.T) {
	p := publishWithKey(t, "secret")
	now := time.Now()
	tests := []struct {
		name   string
		claims jwt.MapClaims
		want   bool
	}{
		{"valid", jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}, true},
		{"nbf past", jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix()}, true},
		{"nbf future", jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour / 2).Unix()}, false},
		{"expired", jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()}, false},
		{"no exp", jwt.MapClaims{"iss": "x"}, false},
	}
	for _, tt := range tests {
		tok := craft(t, jwt.SigningMethodHS256, []byte("secret"), tt.claims)
		if got := p.authorized(bearer(tok)); got != tt.want {
			t.Errorf("%s: authorized = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestPublishKeyEmptyAfterPlaceholdersFailsClosed checks that a key made
// of an unset variable stops provisioning instead of turning auth off.
func TestPublishKeyEmptyAfterPlaceholdersFailsClosed(t *testing.T) {
	t.Setenv("GRIP_TEST_SET_KEY", "from-env")
	p := &Publish{Key: "{env.GRIP_TEST_UNSET_KEY_XYZ}"}
	err := p.provisionOptions(caddy.NewReplacer())
	if err == nil || !strings.Contains(err.Error(), "key") || !strings.Contains(err.Error(), "GRIP_TEST_UNSET_KEY_XYZ") {
		t.Fatalf("provisionOptions = %v, want an error naming the option and placeholder", err)
	}
	p = publishWithKey(t, "{env.GRIP_TEST_SET_KEY}")
	if !p.authorized(bearer("from-env")) || p.authorized(bearer("{env.GRIP_TEST_SET_KEY}")) {
		t.Error("a key from the environment is not the token")
	}
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKeyOptionsEmptyAfterPlaceholdersFailClosed checks sig_key,
// upstream_key and sig_iss: set but empty after placeholders is an error
// naming the option, not signing (or verifying) turned off.
func TestKeyOptionsEmptyAfterPlaceholdersFailClosed(t *testing.T) {
	repl := caddy.NewReplacer()
	for _, option := range []string{"sig_key", "upstream_key", "key"} {
		k, err := parseKeyOption(repl, option, "{env.GRIP_TEST_UNSET_KEY_XYZ}")
		if err == nil || k != nil || !strings.HasPrefix(err.Error(), option+":") {
			t.Errorf("%s: got %v, %v; want an error naming the option", option, k, err)
		}
	}
	if _, err := replaceSet(repl, "sig_iss", "{env.GRIP_TEST_UNSET_KEY_XYZ}"); err == nil {
		t.Error("sig_iss empty after placeholders accepted")
	}
	if k, err := parseKeyOption(repl, "sig_key", ""); k != nil || err != nil {
		t.Errorf("unset option: got %v, %v; want nothing", k, err)
	}
}
