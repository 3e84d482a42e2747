#!/usr/bin/env bash
# The Live Counter: builds Caddy with caddy-grip and the origin, starts
# Varnish (counter.vcl, in a temporary directory), the origin and Caddy on
# loopback, and stops all three on Ctrl-C. Then:
#   open http://127.0.0.1:8500/                    the counter and its button
#   curl -N -H 'Accept: text/event-stream' http://127.0.0.1:8500/counters/1/
#   curl -X POST http://127.0.0.1:8500/counters/1/ add one
#   curl -sI http://127.0.0.1:8502/counters/1/     Varnish's own answer (Age, X-Varnish)
#   curl -X BAN -H "Grip-Channel: counter-1" http://127.0.0.1:8502/   drop its cached answers
# Needs varnishd (Debian: apt-get install varnish).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="$here/bin"
mkdir -p "$bin"
command -v varnishd >/dev/null || { echo "varnishd is not on PATH (apt-get install varnish)" >&2; exit 1; }

echo "building Caddy with caddy-grip and the origin into $bin"
(cd "$repo" && go build -o "$bin/caddy" ./integration_test/caddybin && go build -o "$bin/livecounter" ./examples/livecounter)

work=$(mktemp -d)
pids=()
stop() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait
	rm -rf "$work"
}
trap stop INT TERM EXIT

# -F: in the foreground, so that its PID is the one to stop; -j none: no
# jail, so that it runs from the temporary directory as any user.
varnishd -F -j none -n "$work/varnish" -a 127.0.0.1:8502 -T 127.0.0.1:0 \
	-f "$here/counter.vcl" -s malloc,64m -p thread_pools=1 -p thread_pool_min=10 &
pids+=($!)
"$bin/livecounter" -listen 127.0.0.1:8503 -purge http://127.0.0.1:8502 -publish http://127.0.0.1:8501/publish/ &
pids+=($!)
"$bin/caddy" run --config "$here/Caddyfile" --adapter caddyfile &
pids+=($!)
echo "counter: http://127.0.0.1:8500/   (Ctrl-C stops Caddy, Varnish and the origin)"
wait -n
