package caddygrip

import (
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
		default:
			return d.Errf("grip: unknown option %q", d.Val())
		}
	}
	return nil
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
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
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
				var v string
				if !d.AllArgs(&v) {
					return nil, d.ArgErr()
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
