package caddygrip

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	// Before inserts at the anchor: registering grip_publish first gives
	// grip_publish, grip, grip_relay, reverse_proxy, so no `order` line is
	// needed.
	httpcaddyfile.RegisterHandlerDirective("grip_publish", parsePublish)
	httpcaddyfile.RegisterDirectiveOrder("grip_publish", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterHandlerDirective("grip", parseGrip)
	httpcaddyfile.RegisterDirectiveOrder("grip", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterHandlerDirective("grip_relay", parseRelay)
	httpcaddyfile.RegisterDirectiveOrder("grip_relay", httpcaddyfile.Before, "reverse_proxy")
}

func parseGrip(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Grip)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

func parsePublish(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(Publish)
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return p, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	grip [<matcher>] {
//		hub               <name>
//		sig_key           <key>
//		sig_iss           <issuer>
//		upstream_key      <key>
//		max_instruct_size <bytes>
//		write_timeout     <duration>
//		websocket         over_http|passthrough
//		origins           <pattern>...
//		max_message_size  <bytes>
//		update_on_first_subscription on|off
//		id                <name>
//		reload_close_delay <duration>
//		auto_cross_origin
//		jsonp {
//			mode             extended|basic
//			callback         <param>
//			body_param       <param>
//			default_callback <name>
//			default_method   <method>
//		}
//	}
func (g *Grip) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		var err error
		switch opt {
		case "hub":
			err = stringOpt(d, "grip", opt, &g.Hub)
		case "sig_key":
			err = stringOpt(d, "grip", opt, &g.SigKey)
		case "sig_iss":
			err = stringOpt(d, "grip", opt, &g.SigIss)
		case "upstream_key":
			err = stringOpt(d, "grip", opt, &g.UpstreamKey)
		case "max_instruct_size":
			err = intOpt(d, "grip", opt, &g.MaxInstructSize)
		case "write_timeout":
			err = durationOpt(d, "grip", opt, &g.WriteTimeout)
		case "id":
			if !d.AllArgs(&g.ID) {
				return d.ArgErr()
			}
			if g.ID == "" {
				return d.Errf("grip: id: want a name")
			}
		case "reload_close_delay":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < 0 {
				return d.Errf("grip: reload_close_delay %q: want a duration, 0 or more", v)
			}
			g.ReloadCloseDelay = caddy.Duration(dur)
		case "websocket":
			if !d.AllArgs(&g.WebSocket) {
				return d.ArgErr()
			}
			if g.WebSocket != "over_http" && g.WebSocket != "passthrough" {
				return d.Errf("grip: websocket %q: want over_http or passthrough", g.WebSocket)
			}
		case "origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, o := range args {
				if o == "" {
					return d.Errf("grip: origins: want patterns, got an empty string")
				}
			}
			g.Origins = append(g.Origins, args...)
		case "max_message_size":
			err = intOpt(d, "grip", opt, &g.MaxMessageSize)
		case "auto_cross_origin":
			if d.NextArg() {
				return d.ArgErr()
			}
			g.AutoCrossOrigin = true
		case "jsonp":
			j, err := parseJSONPCaddyfile(d)
			if err != nil {
				return err
			}
			g.JSONP = j
		case "update_on_first_subscription":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			switch v {
			case "on", "off":
				on := v == "on"
				g.UpdateOnFirstSubscription = &on
			default:
				return d.Errf("grip: update_on_first_subscription %q: want on or off", v)
			}
		default:
			return d.Errf("unrecognized grip option '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	grip_publish [<matcher>] {
//		hub           <name>
//		key           <secret>|base64:<secret>|file:<path>|<JWK>
//		max_body_size <bytes>
//		max_channel_length <bytes>
//		max_id_length <bytes>
//	}
func (p *Publish) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		var err error
		switch opt {
		case "hub":
			err = stringOpt(d, "grip_publish", opt, &p.Hub)
		case "key":
			err = stringOpt(d, "grip_publish", opt, &p.Key)
		case "max_body_size":
			var n int
			n, err = intArg(d, "grip_publish", opt)
			p.MaxBodySize = int64(n)
		case "max_channel_length":
			err = intOpt(d, "grip_publish", opt, &p.MaxChannelLength)
		case "max_id_length":
			err = intOpt(d, "grip_publish", opt, &p.MaxIDLength)
		default:
			return d.Errf("unrecognized grip_publish option '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stringArg reads one non-empty argument of a string option.
func stringArg(d *caddyfile.Dispenser, directive, option string) (string, error) {
	var s string
	if !d.AllArgs(&s) {
		return "", d.ArgErr()
	}
	if s == "" {
		return "", d.Errf("%s: %s: want a value, got an empty string", directive, option)
	}
	return s, nil
}

// intArg reads one positive integer argument; an error names the option.
func intArg(d *caddyfile.Dispenser, directive, option string) (int, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: %s %q: want a positive integer", directive, option, s)
	}
	return n, nil
}

// durationArg reads one positive duration argument; an error names the option.
func durationArg(d *caddyfile.Dispenser, directive, option string) (caddy.Duration, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: %s %q: want a positive duration", directive, option, s)
	}
	return caddy.Duration(dur), nil
}

// stringOpt, intOpt and durationOpt read an option's one argument, as
// stringArg, intArg and durationArg do, into dst.
func stringOpt(d *caddyfile.Dispenser, directive, option string, dst *string) (err error) {
	*dst, err = stringArg(d, directive, option)
	return err
}

func intOpt(d *caddyfile.Dispenser, directive, option string, dst *int) (err error) {
	*dst, err = intArg(d, directive, option)
	return err
}

func durationOpt(d *caddyfile.Dispenser, directive, option string, dst *caddy.Duration) (err error) {
	*dst, err = durationArg(d, directive, option)
	return err
}

// sizeArg reads one positive size argument (bytes, or with a unit such as
// 64MiB or 1MB), at most 1 TiB; an error names the option.
func sizeArg(d *caddyfile.Dispenser, directive, option string) (int, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<40 {
		return 0, d.Errf("%s: %s %q: want a size such as 64MiB", directive, option, s)
	}
	return int(n), nil
}

// durationOrOffArg reads one positive duration argument, or "off", which
// is returned as -1ns (the hub's "turned off"); an error names the option.
func durationOrOffArg(d *caddyfile.Dispenser, directive, option string) (caddy.Duration, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	if s == "off" {
		return -1, nil
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: %s %q: want a positive duration or off", directive, option, s)
	}
	return caddy.Duration(dur), nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Grip)(nil)
	_ caddyfile.Unmarshaler = (*Publish)(nil)
)
