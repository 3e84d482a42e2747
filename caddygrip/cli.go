package caddygrip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddy-grip/grip/gripsig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "grip-publish",
		Usage: "[flags] <channel> [content]",
		Short: "Publishes one item to a grip_publish endpoint, as pushpin-publish does",
		Long: `
Publishes one item to a grip_publish endpoint (or to Pushpin's publish API).
With the same arguments it sends the same JSON as pushpin-publish: the
content goes out as an http-response body, an http-stream chunk (both with a
newline added unless --no-eol) and a ws-message; --http-response,
--http-stream and --ws send only the formats named. Content "-" is read from
standard input.

--key takes the forms of grip_publish's key option (a secret, base64:,
file:, a PEM or JWK key) and sends a JWT signed with it, valid for one
minute; --user sends HTTP basic authentication, over https only.

The publish URL is --url as given, or --spec (default http://localhost:5561)
with /publish/ appended, as pushpin-publish does. The endpoint's answer is
printed; a status other than 200 is an error.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Args = cobra.MaximumNArgs(2)
			f := cmd.Flags()
			f.String("channel", "", "channel to publish to (or the first argument)")
			f.String("content", "", "content for the HTTP body and WebSocket message (or the second argument; - reads stdin)")
			f.String("id", "", "item id")
			f.String("prev-id", "", "previous item id")
			f.Int("code", 200, "HTTP response code of the http-response format")
			f.StringArrayP("header", "H", nil, `http-response header, "Name: value" (repeatable)`)
			f.StringArrayP("meta", "M", nil, `meta variable, "name=value" (repeatable)`)
			f.String("sender", "", "sender meta value")
			f.Bool("hint", false, "send a hint instead of content")
			f.Bool("close", false, "close streams and WebSocket connections")
			f.Bool("patch", false, "content is a JSON Patch of the held http-response body")
			f.Bool("no-eol", false, "do not add a newline to HTTP payloads")
			f.Bool("no-seq", false, "bypass the sequencing buffer")
			f.Bool("http-response", false, "send the http-response format (with --http-stream/--ws: only those named)")
			f.Bool("http-stream", false, "send the http-stream format")
			f.Bool("ws", false, "send the ws-message format")
			f.String("url", "", "publish URL, as given")
			f.String("spec", "http://localhost:5561", "publish base URL; /publish/ is appended")
			f.String("key", "", "sign a JWT with this key (the forms of grip_publish's key)")
			f.StringP("user", "u", "", "basic authentication, user:password (https only)")
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				return runGripPublish(cmd, args, os.Stdin, cmd.OutOrStdout())
			}
		},
	})
}

// publishCLI is what grip-publish was asked to send.
type publishCLI struct {
	channel, content      string
	haveContent           bool
	id, prevID, sender    string
	code                  int
	headers, meta         []string
	hint, close, patch    bool
	noEOL, noSeq          bool
	response, stream, ws  bool
	publishURL, key, user string
}

func runGripPublish(cmd *cobra.Command, args []string, stdin io.Reader, out io.Writer) error {
	f := cmd.Flags()
	var o publishCLI
	o.channel, _ = f.GetString("channel")
	o.content, _ = f.GetString("content")
	o.haveContent = f.Changed("content")
	if len(args) > 0 {
		if o.channel != "" {
			return errors.New("give the channel as --channel or as the first argument, not both")
		}
		o.channel = args[0]
	}
	if len(args) > 1 {
		if o.haveContent {
			return errors.New("give the content as --content or as the second argument, not both")
		}
		o.content, o.haveContent = args[1], true
	}
	if o.haveContent && o.content == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, defaultMaxPublishBody+1))
		if err != nil {
			return fmt.Errorf("reading content from stdin: %w", err)
		}
		if len(b) > defaultMaxPublishBody {
			return fmt.Errorf("content from stdin is over %d bytes", defaultMaxPublishBody)
		}
		o.content = string(b)
	}
	o.id, _ = f.GetString("id")
	o.prevID, _ = f.GetString("prev-id")
	o.sender, _ = f.GetString("sender")
	o.code, _ = f.GetInt("code")
	o.headers, _ = f.GetStringArray("header")
	o.meta, _ = f.GetStringArray("meta")
	o.hint, _ = f.GetBool("hint")
	o.close, _ = f.GetBool("close")
	o.patch, _ = f.GetBool("patch")
	o.noEOL, _ = f.GetBool("no-eol")
	o.noSeq, _ = f.GetBool("no-seq")
	o.response, _ = f.GetBool("http-response")
	o.stream, _ = f.GetBool("http-stream")
	o.ws, _ = f.GetBool("ws")
	o.key, _ = f.GetString("key")
	o.user, _ = f.GetString("user")
	o.publishURL, _ = f.GetString("url")
	if o.publishURL == "" {
		spec, _ := f.GetString("spec")
		o.publishURL = strings.TrimRight(spec, "/") + "/publish/"
	}
	body, err := o.body()
	if err != nil {
		return err
	}
	return o.send(body, out)
}

// body is the publish request body: one item, formats as pushpin-publish
// builds them.
func (o *publishCLI) body() ([]byte, error) {
	if o.channel == "" {
		return nil, errors.New("no channel: give it as the first argument or --channel")
	}
	if o.hint && o.close {
		return nil, errors.New("--hint and --close cannot be combined")
	}
	if !o.hint && !o.close && !o.haveContent {
		return nil, errors.New("no content: give it as the second argument or --content (- reads stdin)")
	}
	if o.code < 200 || o.code > 999 {
		return nil, fmt.Errorf("--code %d: want 200 to 999", o.code)
	}
	all := !o.response && !o.stream && !o.ws
	eol := "\n"
	if o.noEOL {
		eol = ""
	}
	formats := map[string]any{}
	switch {
	case o.hint:
		for _, on := range []struct {
			name string
			sel  bool
		}{{"http-response", o.response}, {"http-stream", o.stream}, {"ws-message", o.ws}} {
			if all || on.sel {
				formats[on.name] = map[string]any{"action": "hint"}
			}
		}
	case o.close:
		if all || o.stream {
			formats["http-stream"] = map[string]any{"action": "close"}
		}
		if all || o.ws {
			formats["ws-message"] = map[string]any{"action": "close"}
		}
		if len(formats) == 0 {
			return nil, errors.New("--close applies to --http-stream and --ws only")
		}
	case o.patch:
		if !json.Valid([]byte(o.content)) {
			return nil, errors.New("--patch: the content is not JSON")
		}
		if o.stream || o.ws {
			return nil, errors.New("--patch applies to --http-response only")
		}
		resp := map[string]any{"body-patch": json.RawMessage(o.content), "code": o.code}
		if err := o.addHeaders(resp); err != nil {
			return nil, err
		}
		formats["http-response"] = resp
	default:
		if all || o.response {
			resp := map[string]any{"body": o.content + eol, "code": o.code}
			if err := o.addHeaders(resp); err != nil {
				return nil, err
			}
			formats["http-response"] = resp
		}
		if all || o.stream {
			formats["http-stream"] = map[string]any{"content": o.content + eol}
		}
		if all || o.ws {
			formats["ws-message"] = map[string]any{"content": o.content}
		}
	}
	item := map[string]any{"channel": o.channel, "formats": formats}
	if o.id != "" {
		item["id"] = o.id
	}
	if o.prevID != "" {
		item["prev-id"] = o.prevID
	}
	if o.noSeq {
		item["no-seq"] = true
	}
	meta := map[string]string{}
	for _, m := range o.meta {
		k, v, ok := strings.Cut(m, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--meta %q: want name=value", m)
		}
		meta[k] = v
	}
	if o.sender != "" {
		meta["sender"] = o.sender
	}
	if len(meta) > 0 {
		item["meta"] = meta
	}
	return json.Marshal(map[string]any{"items": []any{item}})
}

// addHeaders puts the --header values into an http-response format.
func (o *publishCLI) addHeaders(resp map[string]any) error {
	if len(o.headers) == 0 {
		return nil
	}
	var hs [][2]string
	for _, h := range o.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
		hs = append(hs, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	resp["headers"] = hs
	return nil
}

// send posts body and prints the endpoint's answer.
func (o *publishCLI) send(body []byte, out io.Writer) error {
	u, err := url.Parse(o.publishURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("publish URL %q: want an http:// or https:// URL", o.publishURL)
	}
	req, err := http.NewRequest(http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case o.key != "" && o.user != "":
		return errors.New("--key and --user cannot be combined")
	case o.key != "":
		k, err := gripsig.ParseKey(o.key)
		if err != nil {
			return fmt.Errorf("--key: %w", err)
		}
		s, err := gripsig.NewSigner(k, "caddy-grip-publish", time.Minute)
		if err != nil {
			return fmt.Errorf("--key: %w", err)
		}
		tok, err := s.Token()
		if err != nil {
			return fmt.Errorf("--key: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case o.user != "":
		if u.Scheme != "https" {
			return errors.New("--user: basic authentication is sent over https only")
		}
		name, pass, _ := strings.Cut(o.user, ":")
		req.SetBasicAuth(name, pass)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish refused: %s: %s", resp.Status, strings.TrimSpace(string(answer)))
	}
	_, err = out.Write(answer)
	return err
}
