#!/usr/bin/env bash
# The GitHub history import's ceiling (issue 15): 10,000 deployments and
# 200,000 commits imported from a local GitHub (127.0.0.1) serving GitHub's
# REST API examples, no rate limit. Prints the time (ns/op), the peak heap
# sampled at each batch (peak-heap-MiB, the local GitHub's own data
# included, server-MiB of it), the requests per deployment, and the
# process's maximum resident set size.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./internal/github/
cd internal/github
if [ -x /usr/bin/time ]; then
  DORA_BENCH_HISTORY=1 /usr/bin/time -f 'max RSS %M KiB, wall %e s' "$bin" -test.run '^$' -test.bench '^BenchmarkHistoryImport$' -test.benchtime 1x -test.benchmem
else
  DORA_BENCH_HISTORY=1 "$bin" -test.run '^$' -test.bench '^BenchmarkHistoryImport$' -test.benchtime 1x -test.benchmem
fi
