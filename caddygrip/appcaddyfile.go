package caddygrip

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("grip", parseGripApp)
}

// parseGripApp reads the `grip` global option into the grip app.
func parseGripApp(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	if err := a.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "grip", Value: caddyconfig.JSON(a, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the global option:
//
//	grip {
//		nats <url...> {
//			urls           <url...>
//			subject_prefix <prefix>
//			name           <client name>
//			credentials    <file>
//			token          <token>
//			user           <user>
//			password       <password>
//			tls {
//				ca   <file>
//				cert <file>
//				key  <file>
//			}
//			linger <duration>
//		}
//		limits {
//			queue_items     <n>
//			queue_bytes     <size>
//			dedup_window    <duration>|off
//			dedup_bytes     <size>
//			sequencer_wait  <duration>
//			sequencer_items <n>
//			sequencer_bytes <size>
//			wake_interval   <duration>|off
//		}
//		history <size>
//		history {
//			channels  <pattern>...
//			size      <items>
//			ttl       <duration>
//			max_bytes <size>
//			resume    last_event_id|websocket...
//			store     memory|jetstream
//		}
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "nats":
			if a.NATS != nil {
				return d.Err("grip: nats given twice")
			}
			n, err := parseNATS(d)
			if err != nil {
				return err
			}
			a.NATS = n
		case "limits":
			if a.Limits != nil {
				return d.Err("grip: limits given twice")
			}
			l, err := parseLimits(d)
			if err != nil {
				return err
			}
			a.Limits = l
		case "history":
			if a.History != nil {
				return d.Err("grip: history given twice")
			}
			h, err := parseHistory(d)
			if err != nil {
				return err
			}
			a.History = h
		default:
			return d.Errf("grip: unknown option %q", d.Val())
		}
	}
	return nil
}

func parseHistory(d *caddyfile.Dispenser) (*HistoryOptions, error) {
	h := new(HistoryOptions)
	if d.NextArg() {
		n, err := strconv.Atoi(d.Val())
		if err != nil || n <= 0 {
			return nil, d.Errf("grip: history %q: want a positive number of items", d.Val())
		}
		h.Size = n
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	}
	for d.NextBlock(1) {
		opt := d.Val()
		switch opt {
		case "channels":
			h.Channels = d.RemainingArgs()
			if len(h.Channels) == 0 {
				return nil, d.ArgErr()
			}
		case "resume":
			h.Resume = d.RemainingArgs()
			if len(h.Resume) == 0 {
				return nil, d.ArgErr()
			}
			for _, r := range h.Resume {
				if r != "last_event_id" && r != "websocket" {
					return nil, d.Errf("grip: history: resume %q: want last_event_id or websocket", r)
				}
			}
		case "store":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			if v != storeMemory && v != storeJetStream {
				return nil, d.Errf("grip: history: store %q: want memory or jetstream", v)
			}
			h.Store = v
		case "size":
			n, err := intArg(d, "grip: history", opt)
			if err != nil {
				return nil, err
			}
			h.Size = n
		case "ttl":
			dur, err := durationArg(d, "grip: history", opt)
			if err != nil {
				return nil, err
			}
			h.TTL = dur
		case "max_bytes":
			n, err := sizeArg(d, "grip: history", opt)
			if err != nil {
				return nil, err
			}
			h.MaxBytes = n
		default:
			return nil, d.Errf("grip: history: unknown option %q", opt)
		}
	}
	if h.Size == 0 {
		return nil, d.Err("grip: history: want a size (history <items>, or size in the block)")
	}
	return h, nil
}

func parseNATS(d *caddyfile.Dispenser) (*NATSConfig, error) {
	n := new(NATSConfig)
	n.URLs = d.RemainingArgs()
	for d.NextBlock(1) {
		opt := d.Val()
		switch opt {
		case "url", "urls":
			urls := d.RemainingArgs()
			if len(urls) == 0 {
				return nil, d.ArgErr()
			}
			n.URLs = append(n.URLs, urls...)
		case "subject_prefix", "name", "credentials", "token", "user", "password":
			v, err := stringArg(d, "grip: nats", opt)
			if err != nil {
				return nil, err
			}
			*map[string]*string{
				"subject_prefix": &n.SubjectPrefix, "name": &n.Name, "credentials": &n.Credentials,
				"token": &n.Token, "user": &n.User, "password": &n.Password,
			}[opt] = v
		case "linger":
			dur, err := durationArg(d, "grip: nats", "linger")
			if err != nil {
				return nil, err
			}
			n.Linger = dur
		case "tls":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			n.TLS = new(NATSTLS)
			for d.NextBlock(2) {
				sub := d.Val()
				v, err := stringArg(d, "grip: nats tls", sub)
				if err != nil {
					return nil, err
				}
				switch sub {
				case "ca":
					n.TLS.CA = v
				case "cert":
					n.TLS.Cert = v
				case "key":
					n.TLS.Key = v
				default:
					return nil, d.Errf("grip: nats tls: unknown option %q", sub)
				}
			}
		default:
			return nil, d.Errf("grip: nats: unknown option %q", opt)
		}
	}
	if len(n.URLs) == 0 {
		return nil, d.Err("grip: nats: want at least one NATS URL")
	}
	return n, nil
}

var _ caddyfile.Unmarshaler = (*App)(nil)
