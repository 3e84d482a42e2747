package caddygrip

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/natsbus"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the node-wide grip configuration, the `grip` global option: the
// NATS bus that joins this node's hubs to the same-named hubs of other
// nodes. Every grip and grip_publish handler registers its hub with it;
// when the config starts, each of those hubs gets the bus the config asks
// for, keeping its current one when nothing changed. When the config
// stops and the next one has no `grip` option, its hubs return to the
// local bus.
type App struct {
	// NATS joins every hub on this node to the hubs of the same name on
	// other nodes: a publish on any node reaches the clients held by all
	// of them. Without it each hub is local to this node.
	NATS *NATSConfig `json:"nats,omitempty"`

	// History keeps the last items of channels in every hub of this node,
	// so that a client whose prev-id is behind is caught up by the hub
	// instead of its origin. Without it nothing is kept, as in Pushpin.
	History *HistoryOptions `json:"history,omitempty"`

	// Limits bounds the queues, de-dup window, sequencer and wake pacing of
	// every hub of this node; a limit left out keeps the hub's default.
	Limits *HubLimits `json:"limits,omitempty"`

	hubCfg hub.Config // Limits and History, checked
	resume resumeFlags
	logger *zap.Logger
	mu     *sync.Mutex
	hubs   map[string]*pooledHub
	opts   *natsbus.Options // resolved NATS options; nil for the local bus
	key    string           // identity of opts, to keep an unchanged bus across reloads
}

// NATSConfig is how a node reaches NATS.
type NATSConfig struct {
	// URLs are the NATS servers (nats://, tls://, ws:// or wss://); the
	// client connects to one and fails over to the others.
	URLs []string `json:"urls,omitempty"`
	// SubjectPrefix starts every subject the bus uses. Default: "grip".
	// Nodes that share a NATS server and a prefix share their hubs.
	SubjectPrefix string `json:"subject_prefix,omitempty"`
	// Name is the client name shown in NATS monitoring. Default: the
	// host name.
	Name string `json:"name,omitempty"`
	// Credentials is a NATS credentials file (JWT and NKey seed).
	Credentials string `json:"credentials,omitempty"`
	// Token authenticates with a token.
	Token string `json:"token,omitempty"`
	// User and Password authenticate with a user name and password.
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS configures the TLS client: the CA that signs the servers and
	// an optional client certificate.
	TLS *NATSTLS `json:"tls,omitempty"`
	// Linger is how long a channel stays subscribed on NATS after its last
	// local subscriber leaves, so that long-poll cycles do not churn
	// subscriptions. Default: 60s, as Pushpin's subscription_linger.
	Linger caddy.Duration `json:"linger,omitempty"`
}

// HistoryOptions says which channels keep how much history.
type HistoryOptions struct {
	// Channels are name patterns ('*' matches any run of characters,
	// dots and slashes included); empty means every channel.
	Channels []string `json:"channels,omitempty"`
	// Size is how many items each channel keeps.
	Size int `json:"size,omitempty"`
	// TTL drops items older than it; 0 keeps them until pushed out.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// MaxBytes bounds the history of all the channels of a hub together;
	// the channels published to least recently go first. Default: 64 MiB.
	MaxBytes int `json:"max_bytes,omitempty"`
	// Resume turns on extensions that resume from the history without an
	// origin prev-id: "last_event_id" (an SSE client's Last-Event-ID, or
	// ?lastEventId=, as the prev-id of a single-channel stream whose origin
	// gave none) and "websocket" (a "prev-id" field on the subscribe
	// control message). EXPERIMENTAL: extensions to GRIP.
	Resume []string `json:"resume,omitempty"`
	// Store is where the history lives: "memory" (each node keeps the
	// channels it follows) or "jetstream" (with `nats`: one JetStream
	// stream per hub, with size, ttl and max_bytes as its limits, so any
	// node catches a client up on any channel, the memory ring being a
	// cache). Default: "jetstream" when `nats` is set, else "memory".
	// EXPERIMENTAL.
	Store string `json:"store,omitempty"`
}

// The history stores.
const (
	storeMemory    = "memory"
	storeJetStream = "jetstream"
)

// resumeFlags are the Resume extensions turned on.
type resumeFlags struct{ lastEventID, websocket bool }

// config checks the options and returns the hub's form.
func (o *HistoryOptions) config() (hub.HistoryConfig, error) {
	if o.Size <= 0 {
		return hub.HistoryConfig{}, fmt.Errorf("size %d: want a positive number of items", o.Size)
	}
	if o.TTL < 0 {
		return hub.HistoryConfig{}, fmt.Errorf("ttl %v: want a positive duration", time.Duration(o.TTL))
	}
	if o.MaxBytes < 0 {
		return hub.HistoryConfig{}, fmt.Errorf("max_bytes %d: want a positive number of bytes", o.MaxBytes)
	}
	for i, p := range o.Channels {
		if p == "" {
			return hub.HistoryConfig{}, fmt.Errorf("channels[%d]: empty pattern", i)
		}
	}
	for _, r := range o.Resume {
		if r != "last_event_id" && r != "websocket" {
			return hub.HistoryConfig{}, fmt.Errorf("resume %q: want last_event_id or websocket", r)
		}
	}
	if o.Store != "" && o.Store != storeMemory && o.Store != storeJetStream {
		return hub.HistoryConfig{}, fmt.Errorf("store %q: want memory or jetstream", o.Store)
	}
	return hub.HistoryConfig{Channels: o.Channels, Size: o.Size, TTL: time.Duration(o.TTL), MaxBytes: o.MaxBytes}, nil
}

// NATSTLS names the PEM files of a NATS TLS client.
type NATSTLS struct {
	// CA is the file of the certificate authorities that sign the servers.
	CA string `json:"ca,omitempty"`
	// Cert and Key are the client certificate and its key.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "grip",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision resolves and checks the NATS options; a set option that is
// empty after placeholders, or invalid, is an error.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.mu = new(sync.Mutex)
	a.hubs = make(map[string]*pooledHub)
	if a.History != nil {
		h, err := a.History.config()
		if err != nil {
			return fmt.Errorf("grip: history: %w", err)
		}
		a.hubCfg.History = h
		for _, r := range a.History.Resume {
			a.resume.lastEventID = a.resume.lastEventID || r == "last_event_id"
			a.resume.websocket = a.resume.websocket || r == "websocket"
		}
	}
	if err := a.Limits.apply(&a.hubCfg); err != nil {
		return fmt.Errorf("grip: limits: %w", err)
	}
	if a.NATS == nil {
		if a.History != nil && a.History.Store == storeJetStream {
			return fmt.Errorf("grip: history: store jetstream: needs the nats option")
		}
		return nil
	}
	opts, key, err := a.NATS.resolve(caddy.NewReplacer())
	if err != nil {
		return fmt.Errorf("grip: nats: %w", err)
	}
	if a.History != nil && a.History.Store != storeMemory {
		hist := a.hubCfg.History
		maxBytes := hist.MaxBytes
		if maxBytes <= 0 {
			maxBytes = hub.DefaultHistoryBytes
		}
		opts.History = &natsbus.HistoryOptions{Covers: hist.Keeps, Size: hist.Size, MaxAge: hist.TTL, MaxBytes: int64(maxBytes)}
		// A change of the history's limits makes a new bus, which
		// updates the stream.
		k, _ := json.Marshal([]any{hist.Channels, hist.Size, hist.TTL, maxBytes})
		key += " history " + string(k)
	}
	a.opts, a.key = opts, key
	return nil
}

// register records that this config uses hub p.
func (a *App) register(name string, p *pooledHub) {
	a.mu.Lock()
	a.hubs[name] = p
	a.mu.Unlock()
}

// Start gives every hub this config uses the bus it asks for; a hub whose
// bus is already the same keeps it, NATS connection and all.
func (a *App) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, p := range a.hubs {
		if err := p.useBus(a, name, a.opts, a.key, a.logger); err != nil {
			return fmt.Errorf("grip: hub %q: %w", name, err)
		}
		p.useConfig(a.hubCfg, a.resume)
	}
	return nil
}

// Stop leaves each hub's bus to the config that follows, if its app has
// set it; a hub that no later app has claimed returns to the local bus.
func (a *App) Stop() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, p := range a.hubs {
		p.disown(a, name, a.logger)
	}
	return nil
}

// resolve replaces placeholders, checks every option and returns the bus
// options with a key that is equal for equal configurations.
func (c *NATSConfig) resolve(repl *caddy.Replacer) (*natsbus.Options, string, error) {
	r := resolved{}
	if len(c.URLs) == 0 {
		return nil, "", fmt.Errorf("urls: want at least one NATS URL")
	}
	for i, raw := range c.URLs {
		u, err := replaceSet(repl, fmt.Sprintf("urls[%d]", i), raw)
		if err != nil {
			return nil, "", err
		}
		if u == "" {
			return nil, "", fmt.Errorf("urls[%d]: empty", i)
		}
		if err := checkNATSURL(u); err != nil {
			return nil, "", fmt.Errorf("url %q: %w", u, err)
		}
		r.URLs = append(r.URLs, u)
	}
	fields := []stringOption{
		{"subject_prefix", c.SubjectPrefix, &r.Prefix},
		{"name", c.Name, &r.Name},
		{"credentials", c.Credentials, &r.Credentials},
		{"token", c.Token, &r.Token},
		{"user", c.User, &r.User},
		{"password", c.Password, &r.Password},
	}
	if c.TLS != nil {
		fields = append(fields,
			stringOption{"tls ca", c.TLS.CA, &r.CA},
			stringOption{"tls cert", c.TLS.Cert, &r.Cert},
			stringOption{"tls key", c.TLS.Key, &r.Key})
	}
	for _, f := range fields {
		v, err := replaceSet(repl, f.name, f.raw)
		if err != nil {
			return nil, "", err
		}
		*f.dst = v
	}
	if err := checkSubjectPrefix(r.Prefix); err != nil {
		return nil, "", fmt.Errorf("subject_prefix %q: %w", r.Prefix, err)
	}
	if (r.User == "") != (r.Password == "") {
		return nil, "", fmt.Errorf("user and password: set both or neither")
	}
	if (r.Cert == "") != (r.Key == "") {
		return nil, "", fmt.Errorf("tls cert and key: set both or neither")
	}
	if c.TLS != nil && r.CA == "" && r.Cert == "" {
		return nil, "", fmt.Errorf("tls: set ca, or cert and key")
	}
	for _, f := range []struct{ name, path string }{{"credentials", r.Credentials}, {"tls ca", r.CA}, {"tls cert", r.Cert}, {"tls key", r.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, "", fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if c.Linger < 0 {
		return nil, "", fmt.Errorf("linger %s: want a positive duration", time.Duration(c.Linger))
	}
	r.Linger = time.Duration(c.Linger)
	if r.Name == "" {
		r.Name, _ = os.Hostname()
	}
	if r.Prefix == "" {
		r.Prefix = natsbus.DefaultPrefix
	}
	key, err := json.Marshal(r)
	if err != nil {
		return nil, "", err
	}
	return r.options(), string(key), nil
}

// stringOption is one string option to resolve: its name for errors, its
// configured text and where the result goes.
type stringOption struct {
	name, raw string
	dst       *string
}

// resolved is a NATSConfig with placeholders replaced and defaults set.
type resolved struct {
	URLs                             []string
	Prefix, Name, Credentials, Token string
	User, Password, CA, Cert, Key    string
	Linger                           time.Duration
}

func (r resolved) options() *natsbus.Options {
	o := &natsbus.Options{URLs: r.URLs, Prefix: r.Prefix, Name: r.Name, Linger: r.Linger}
	if r.Credentials != "" {
		o.NATS = append(o.NATS, nats.UserCredentials(r.Credentials))
	}
	if r.Token != "" {
		o.NATS = append(o.NATS, nats.Token(r.Token))
	}
	if r.User != "" {
		o.NATS = append(o.NATS, nats.UserInfo(r.User, r.Password))
	}
	if r.CA != "" {
		o.NATS = append(o.NATS, nats.RootCAs(r.CA))
	}
	if r.Cert != "" {
		o.NATS = append(o.NATS, nats.ClientCert(r.Cert, r.Key))
	}
	return o
}

// checkNATSURL accepts the URL forms nats.go dials.
func checkNATSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("want a nats://, tls://, ws:// or wss:// URL")
	}
	if u.Host == "" {
		return fmt.Errorf("no host")
	}
	return nil
}

// checkSubjectPrefix accepts a prefix of NATS subject tokens: no
// wildcards, whitespace or empty tokens.
func checkSubjectPrefix(p string) error {
	if p == "" {
		return nil
	}
	tokenStart := true
	for i := 0; i < len(p); i++ {
		switch ch := p[i]; {
		case ch == '.':
			if tokenStart {
				return fmt.Errorf("empty subject token")
			}
			tokenStart = true
			continue
		case ch == '*' || ch == '>' || ch <= ' ' || ch == 0x7f:
			return fmt.Errorf("want subject tokens without wildcards or spaces")
		}
		tokenStart = false
	}
	if tokenStart {
		return fmt.Errorf("empty subject token")
	}
	return nil
}

// hubSubjectPrefix is the subject prefix of one hub's bus: the configured
// prefix and the hub's name as one token, spelled as it is when it is
// plain, else as "=" and its base64url form.
func hubSubjectPrefix(prefix, hubName string) string {
	plain := hubName != ""
	for i := 0; i < len(hubName) && plain; i++ {
		c := hubName[i]
		plain = c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if plain {
		return prefix + "." + hubName
	}
	return prefix + ".=" + base64.RawURLEncoding.EncodeToString([]byte(hubName))
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
