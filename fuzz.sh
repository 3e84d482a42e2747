#!/usr/bin/env bash
# Runs every Go fuzz target in the module for N minutes each, one at a time.
#   ./fuzz.sh [minutes]            (default 10)
# Environment: FUZZ_PARALLEL (go test -parallel, default 1), FUZZ_ONLY (a
# regular expression of target names to run), NICE (nice level, default 19).
# Targets are found by grepping "func Fuzz" in *_test.go. A failing input is
# kept by go test in <package>/testdata/fuzz/<Target>/; the script then exits 1.
set -u
minutes=${1:-10}
parallel=${FUZZ_PARALLEL:-1}
only=${FUZZ_ONLY:-.}
nicelvl=${NICE:-19}
cd "$(dirname "$0")"
status=0
while IFS=: read -r file name; do
	[[ $name =~ $only ]] || continue
	pkg=./$(dirname "$file")
	log=$(mktemp)
	echo "== $name ($pkg, ${minutes}m, -parallel=$parallel)"
	nice -n "$nicelvl" go test "$pkg" -run '^$' -fuzz "^${name}\$" \
		-fuzztime "${minutes}m" -parallel "$parallel" >"$log" 2>&1
	rc=$?
	last=$(grep 'fuzz: elapsed:' "$log" | tail -n 1)
	echo "   ${last:-no progress line}"
	if [[ $rc -ne 0 ]]; then
		echo "   FINDING or failure (exit $rc):"
		grep -v '^fuzz: elapsed:' "$log" | tail -n 30 | sed 's/^/   /'
		status=1
	fi
	rm -f "$log"
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . |
	sed 's|^\./||; s|:func |:|' | sort -u)
exit $status
