#!/usr/bin/env bash
# Builds Caddy with caddy-grip (./caddy), or runs it with Caddyfile.example.
#   ./xcaddy.sh build   build ./caddy (Caddy $CADDY_VERSION + this module)
#   ./xcaddy.sh run     build if the sources changed, then run Caddyfile.example
set -euo pipefail
cd "$(dirname "$0")"
CADDY_VERSION="${CADDY_VERSION:-v2.11.9}"

build() {
	# xcaddy is pinned as a Go tool in go.mod; the module is not published,
	# so it is given a version and this directory as its source.
	go tool xcaddy build "$CADDY_VERSION" \
		--with "github.com/caddy-grip/grip@v0.0.0=." \
		--output ./caddy
}

stale() {
	[ ! -x ./caddy ] || [ -n "$(find . -path ./bench -prune -o \( -name '*.go' -o -name go.mod \) -newer ./caddy -print -quit)" ]
}

case "${1:-}" in
build) build ;;
run)
	if stale; then build; fi
	exec ./caddy run --config Caddyfile.example --adapter caddyfile
	;;
*)
	echo "usage: $0 build|run" >&2
	exit 2
	;;
esac
