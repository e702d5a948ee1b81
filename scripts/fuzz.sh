#!/usr/bin/env bash
# Runs every Go fuzz target of the receiver for a number of executions:
#   scripts/fuzz.sh 20000x     (the short run in `make test`)
#   scripts/fuzz.sh 2000000x   (`make fuzz`)
# Counts, not durations: with a duration, go1.26's fuzz coordinator can fail
# a target with "context deadline exceeded" and no crasher when the time
# runs out under CPU contention (golang/go#75804, fixed in go1.27).
# Seeds are the fixtures each target adds plus testdata/fuzz/<Target>/;
# a crasher is written there by Go and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20000x}
status=0
while IFS=: read -r file target; do
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $target for $duration"
	# Minimizing a new input can take the whole budget on large fixtures;
	# a few seconds is enough to keep the corpus small.
	if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$duration" -fuzzminimizetime 3s; then
		status=1
	fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' internal | sed 's/func //' | sort -u)
exit $status
