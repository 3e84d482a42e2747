#!/usr/bin/env bash
# Installs the origin's packages (npm ci), builds Caddy with caddy-grip, runs
# both, and stops both on Ctrl-C. Then:
#   open http://127.0.0.1:8400/                       the chat (two windows)
#   curl -N http://127.0.0.1:8400/events/news          an SSE stream
#   curl http://127.0.0.1:8400/poll/news               a long-poll
#   examples/node-origin/bin/caddy grip-publish --spec http://127.0.0.1:8401 --http-stream news $'data: hello\n'
#   examples/node-origin/bin/caddy grip-publish --spec http://127.0.0.1:8401 --http-response news hello
#   examples/node-origin/bin/caddy grip-publish --spec http://127.0.0.1:8401 --ws room 'hello from the shell'
# (or curl -d '{"items":[{"channel":"news","formats":{"http-stream":{"content":"data: hello\n\n"}}}]}' http://127.0.0.1:8401/publish/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="$here/bin"
mkdir -p "$bin"

echo "installing the origin's packages and building Caddy with caddy-grip into $bin"
(cd "$here" && npm ci --no-audit --no-fund)
(cd "$repo" && go build -o "$bin/caddy" ./integration_test/caddybin)

# Caddy signs its requests to the origin with this key, and the origin
# checks them with it.
if [ -z "${GRIP_SIG_KEY:-}" ]; then
	GRIP_SIG_KEY=$(node -e 'console.log(require("node:crypto").randomBytes(16).toString("hex"))')
fi
export GRIP_SIG_KEY

pids=()
stop() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait
}
trap stop INT TERM EXIT

PORT=3001 GRIP_CONTROL_URI=http://127.0.0.1:8401/ node "$here/server.mjs" &
pids+=($!)
"$bin/caddy" run --config "$here/Caddyfile" --adapter caddyfile &
pids+=($!)
echo "chat: http://127.0.0.1:8400/   (Ctrl-C stops Caddy and the origin)"
wait -n
