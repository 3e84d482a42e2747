#!/usr/bin/env bash
# Builds Caddy with caddy-grip and the Go origin, runs both, and stops both
# on Ctrl-C. Then:
#   open http://127.0.0.1:8300/                       the chat (two windows)
#   curl -N http://127.0.0.1:8300/events/news          an SSE stream
#   curl http://127.0.0.1:8300/poll/news               a long-poll
#   examples/go-origin/bin/caddy grip-publish --spec http://127.0.0.1:8301 --http-stream news $'data: hello\n'
#   examples/go-origin/bin/caddy grip-publish --spec http://127.0.0.1:8301 --http-response news hello
#   examples/go-origin/bin/caddy grip-publish --spec http://127.0.0.1:8301 --ws room 'hello from the shell'
# (or curl -d '{"items":[{"channel":"news","formats":{"http-stream":{"content":"data: hello\n\n"}}}]}' http://127.0.0.1:8301/publish/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="$here/bin"
mkdir -p "$bin"

echo "building Caddy with caddy-grip and the origin into $bin"
(cd "$repo" && go build -o "$bin/caddy" ./integration_test/caddybin && go build -o "$bin/go-origin" ./examples/go-origin)

pids=()
stop() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait
}
trap stop INT TERM EXIT

"$bin/go-origin" -listen 127.0.0.1:3000 -publish http://127.0.0.1:8301/publish/ &
pids+=($!)
"$bin/caddy" run --config "$here/Caddyfile" --adapter caddyfile &
pids+=($!)
echo "chat: http://127.0.0.1:8300/   (Ctrl-C stops Caddy and the origin)"
wait -n
