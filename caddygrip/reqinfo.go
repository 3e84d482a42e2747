package caddygrip

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// requestInfo names the client request a hold or a publish came from, for
// warnings that outlive the request (a hijacked stream, a WebSocket): its
// id (Caddy's {http.request.uuid}, which its access log line then carries
// too), the client's address and the Host it asked for.
type requestInfo struct {
	id, remote, host string
}

// newRequestInfo reads r's id, address and host.
func newRequestInfo(r *http.Request) requestInfo {
	ri := requestInfo{remote: r.RemoteAddr, host: r.Host}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		ri.id, _ = repl.GetString("http.request.uuid")
	}
	return ri
}

// fields are the log fields of the request.
func (ri requestInfo) fields() []zap.Field {
	return []zap.Field{zap.String("request_id", ri.id), zap.String("remote", ri.remote), zap.String("host", ri.host)}
}
