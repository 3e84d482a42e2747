package caddygrip

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-grip/grip/gripsig"
	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
)

// provisionPublish provisions p as Caddy would, releasing it at test end.
func provisionPublish(t *testing.T, p *Publish) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if p.Hub == "" {
		p.Hub = "publish-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	}
	err := p.Provision(ctx)
	if err == nil {
		t.Cleanup(func() { _ = p.Cleanup() })
	}
	return err
}

// servePublish posts body with the given Authorization and returns the status and body.
func servePublish(t *testing.T, p *Publish, auth, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/publish/", strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	if err := p.ServeHTTP(w, req, nil); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w.Code, w.Body.String()
}

const okItem = `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}}]}`

func TestPublishKeyAcceptsOnlyTheParsedSecretOrAVerifiedJWT(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	hexPath := write("secret.hex", "6368616e67656d65\n") // "changeme"
	pemPath := testKeys + "ec256-public.pem"
	ecPriv := testECPrivateKey(t)
	exp := time.Now().Add(time.Hour).Unix()
	hsJWT := craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{"exp": exp})
	esJWT := craft(t, jwt.SigningMethodES256, ecPriv, jwt.MapClaims{"exp": exp})
	notYet := craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{"exp": exp, "nbf": exp - 60})
	expired := craft(t, jwt.SigningMethodHS256, []byte("changeme"), jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})
	b64 := "base64:" + base64.StdEncoding.EncodeToString([]byte("changeme"))
	cases := []struct {
		name, key, token string
		status           int
	}{
		{"plain secret", "changeme", "changeme", 200},
		{"plain secret, wrong token", "changeme", "changemf", 401},
		{"hex file: the secret publishes", "file:" + hexPath, "changeme", 200},
		{"hex file: the path is refused", "file:" + hexPath, "file:" + hexPath, 401},
		{"hex file: the hex text is refused", "file:" + hexPath, "6368616e67656d65", 401},
		{"base64: the secret publishes", b64, "changeme", 200},
		{"base64: the text is refused", b64, b64, 401},
		{"secret: HS256 JWT", b64, hsJWT, 200},
		{"secret: JWT with nbf in the future", "changeme", notYet, 401},
		{"secret: expired JWT", "changeme", expired, 401},
		{"PEM file: the path is refused", "file:" + pemPath, "file:" + pemPath, 401},
		{"PEM file: ES256 JWT", "file:" + pemPath, esJWT, 200},
		{"PEM file: HS256 JWT over the path", "file:" + pemPath, craft(t, jwt.SigningMethodHS256, []byte("file:"+pemPath), jwt.MapClaims{"exp": exp}), 401},
		{"JWK: the JWK text is refused", gripsig.FastlyJWK, gripsig.FastlyJWK, 401},
		{"JWK: HS256 JWT over the JWK text", gripsig.FastlyJWK, craft(t, jwt.SigningMethodHS256, []byte(gripsig.FastlyJWK), jwt.MapClaims{"exp": exp}), 401},
		{"oct JWK: the decoded secret publishes", `{"kty":"oct","k":"Y2hhbmdlbWU"}`, "changeme", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &Publish{Key: tc.key}
			if err := provisionPublish(t, p); err != nil {
				t.Fatal(err)
			}
			if status, body := servePublish(t, p, "Bearer "+tc.token, okItem); status != tc.status {
				t.Fatalf("status %d (%q), want %d", status, body, tc.status)
			}
		})
	}
}

func TestPublishRefusesBatchOverASubscriberQueue(t *testing.T) {
	batch := func(n int, channel func(i int) string) string {
		var b strings.Builder
		b.WriteString(`{"items":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"channel":%q,"formats":{"http-stream":{"content":"x"}}}`, channel(i))
		}
		b.WriteString(`]}`)
		return b.String()
	}
	one := func(int) string { return "c" }
	cases := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"1,000 items for one channel", batch(1000, one), 200, "Published\n"},
		{"1,001 items for one channel", batch(1001, one), 413, "Batch too large: more than 1000 items for channel \"c\""},
		{"1,001 items over two channels", batch(1001, func(i int) string { return fmt.Sprint("c", i%2) }), 200, "Published\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &Publish{MaxBodySize: 1 << 20}
			if err := provisionPublish(t, p); err != nil {
				t.Fatal(err)
			}
			status, body := servePublish(t, p, "", tc.body)
			if status != tc.status || !strings.HasPrefix(body, tc.want) {
				t.Fatalf("got %d %q, want %d %q", status, body, tc.status, tc.want)
			}
		})
	}
}

func TestPublishAnswers400ForItemsThatCannotBeSent(t *testing.T) {
	cases := []struct{ name, item string }{
		{"ping over 125 bytes", `{"channel":"c","formats":{"ws-message":{"type":"ping","content":"` + strings.Repeat("a", 126) + `"}}}`},
		{"close code 1006", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1006}}}`},
		{"http-response code 99", `{"channel":"c","formats":{"http-response":{"code":99,"body":"x"}}}`},
		{"header value with CR LF", `{"channel":"c","formats":{"http-response":{"headers":{"X":"a\r\nb: c"},"body":"x"}}}`},
		{"channel over max_channel_length", `{"channel":"abcdefghi","formats":{"http-stream":{"content":"x"}}}`},
		{"id over max_id_length", `{"channel":"c","id":"abcdefghi","formats":{"http-stream":{"content":"x"}}}`},
	}
	p := &Publish{MaxChannelLength: 8, MaxIDLength: 8}
	if err := provisionPublish(t, p); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := servePublish(t, p, "", `{"items":[`+tc.item+`]}`)
			if status != 400 || !strings.HasPrefix(body, "Invalid format: item 0: ") {
				t.Fatalf("got %d %q, want 400 naming item 0", status, body)
			}
		})
	}
}

func TestProvisionFailsClosedOnEmptyPlaceholders(t *testing.T) {
	const unset = "{env.CADDY_GRIP_TEST_UNSET_VARIABLE}"
	os.Unsetenv("CADDY_GRIP_TEST_UNSET_VARIABLE")
	cases := []struct {
		name      string
		provision func(t *testing.T) error
		want      string
	}{
		{"grip_publish key", func(t *testing.T) error { return provisionPublish(t, &Publish{Key: unset}) },
			`key: "` + unset + `" is empty after replacing placeholders: set it, or remove the option`},
		{"grip sig_key", func(t *testing.T) error { return provisionGrip(t, &Grip{SigKey: unset}) },
			`sig_key: "` + unset + `" is empty after replacing placeholders: set it, or remove the option`},
		{"grip sig_iss", func(t *testing.T) error { return provisionGrip(t, &Grip{SigKey: "k", SigIss: unset}) },
			`sig_iss: "` + unset + `" is empty after replacing placeholders: set it, or remove the option`},
		{"grip upstream_key", func(t *testing.T) error { return provisionGrip(t, &Grip{UpstreamKey: unset}) },
			`upstream_key: "` + unset + `" is empty after replacing placeholders: set it, or remove the option`},
		{"grip_publish negative max_channel_length", func(t *testing.T) error { return provisionPublish(t, &Publish{MaxChannelLength: -1}) },
			"max_channel_length -1: want a positive number of bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.provision(t)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// provisionGrip provisions g as Caddy would, releasing it at test end.
// The test context has no events app, so a Provision that gets past every
// option check panics in onExit; that is returned as errProvisioned.
func provisionGrip(t *testing.T, g *Grip) (err error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if g.Hub == "" {
		g.Hub = "grip-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	}
	t.Cleanup(func() {
		if g.ref.hub != nil {
			_ = g.Cleanup()
		}
	})
	defer func() {
		if recover() != nil {
			err = errProvisioned
		}
	}()
	return g.Provision(ctx)
}

var errProvisioned = errors.New("provisioned: every option was accepted")
