#!/usr/bin/env bash
# Runs the go test benchmarks of issue 7 and writes BENCHMARKS.md.
# DORA_BENCH_PENDING sets the pending-change count of the engine memory and
# save/restore benchmarks (default 1000000, the issue's figure; building it
# takes about 10-20 s here).
set -euo pipefail
cd "$(dirname "$0")/.."
export DORA_BENCH_PENDING="${DORA_BENCH_PENDING:-1000000}"
# One go test per group, with an iteration count that keeps the whole run to
# a few minutes (Emit and the 1M-change state take seconds per iteration).
runs=(
  "-bench ^BenchmarkApply -benchtime 20000x ./internal/engine/"
  "-bench ^BenchmarkSnapshotAt -benchtime 50x ./internal/engine/"
  "-bench ^Benchmark(PendingChanges|ExportEncode|DecodeImport)\$ -benchtime 1x ./internal/engine/"
  "-bench . -benchtime 20x ./internal/emitter/"
  "-bench FileStorage\$ -benchtime 1x ./internal/persist/"
  "-bench . ./internal/github/ ./internal/webhook/"
  "-bench Push ./internal/bitbucket/ ./internal/bitbucketdc/ ./internal/azuredevops/"
)
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
cmd=""
for r in "${runs[@]}"; do
  cmd+="go test -run '^\$' -benchmem -count 3 $r"$'\n'
  echo "+ DORA_BENCH_PENDING=$DORA_BENCH_PENDING go test -run '^\$' -benchmem -count 3 $r" >&2
  # shellcheck disable=SC2086
  go test -run '^$' -benchmem -count 3 $r | tee -a "$raw" >&2
done

# Mean of each figure per benchmark over the runs.
table=$(awk '
/^Benchmark/ {
  name=$1; sub(/-[0-9]+$/, "", name)
  if (!(name in n)) order[++k]=name
  n[name]++
  for (i=3; i<NF; i+=2) { sum[name, $(i+1)] += $i; units[$(i+1)]=1 }
}
END {
  for (j=1; j<=k; j++) {
    b=order[j]; c=n[b]
    printf "%s|%d|%.0f|%.0f|%.0f|%s|%s\n", b, c, sum[b,"ns/op"]/c, sum[b,"allocs/op"]/c, sum[b,"B/op"]/c,
      ((b SUBSEP "events/s") in sum ? sprintf("%.0f", sum[b,"events/s"]/c) : ""),
      ((b SUBSEP "MiB") in sum ? sprintf("%.1f MiB", sum[b,"MiB"]/c) : ((b SUBSEP "points") in sum ? sprintf("%.0f points", sum[b,"points"]/c) : ((b SUBSEP "state-MiB") in sum ? sprintf("%.1f MiB JSON", sum[b,"state-MiB"]/c) : ((b SUBSEP "snapshot-MiB") in sum ? sprintf("%.1f MiB snapshot", sum[b,"snapshot-MiB"]/c) : ""))))
  }
}' "$raw")
ns() { awk -F'|' -v b="$1" '$1==b {print $3}' <<<"$table"; }
ratio() { awk -v a="$(ns "$1")" -v b="$(ns "$2")" 'BEGIN { if (a>0 && b>0) printf "%.2f", b/a; else print "n/a" }'; }
parser_ratio=$(ratio BenchmarkPushParseVerify BenchmarkPushFloor)
handler_ratio=$(ratio BenchmarkHandlerGitHubPush BenchmarkHandlerFloor)
bitbucket_ratio=$(ratio BenchmarkBitbucketPushParseVerify BenchmarkBitbucketPushFloor)
bitbucketdc_ratio=$(ratio BenchmarkBitbucketDCPushParseVerify BenchmarkBitbucketDCPushFloor)
azuredevops_ratio=$(ratio BenchmarkAzureDevOpsPushParseVerify BenchmarkAzureDevOpsPushFloor)
mem=$(awk -F'|' '$1=="BenchmarkPendingChanges" {print $7}' <<<"$table")
save_ms=$(awk -v x="$(ns BenchmarkExportEncode)" 'BEGIN {printf "%.0f", x/1e6}')
load_ms=$(awk -v x="$(ns BenchmarkDecodeImport)" 'BEGIN {printf "%.0f", x/1e6}')
emit_ms=$(awk -v x="$(ns BenchmarkEmit3000Series)" 'BEGIN {printf "%.1f", x/1e6}')
build_s=$(awk -v x="$(ns BenchmarkPendingChanges)" 'BEGIN {printf "%.1f", x/1e9}')
fs_save_ms=$(awk -v x="$(ns BenchmarkSaveFileStorage)" 'BEGIN {printf "%.0f", x/1e6}')
fs_restore_ms=$(awk -v x="$(ns BenchmarkRestoreFileStorage)" 'BEGIN {printf "%.0f", x/1e6}')
fs_size=$(awk -F'|' '$1=="BenchmarkSaveFileStorage" {print $7}' <<<"$table")

{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d). Command:"
  echo
  echo '```'
  echo "export DORA_BENCH_PENDING=$DORA_BENCH_PENDING"
  printf '%s' "$cmd"
  echo '```'
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB memory, $(go version | awk '{print $3, $4}')."
  echo "Figures are means of the 3 runs; ratios are throughput of dora / throughput of the floor on the same bytes."
  echo
  echo "| benchmark | runs | ns/op | allocs/op | B/op | events/s | other |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  awk -F'|' '{printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' <<<"$table"
  echo
  echo "## Ratios (dora vs floor, in process, no network)"
  echo
  echo "- GitHub push (testdata/push.json, 3 commits, 4,169 bytes, HMAC-SHA256), parse+verify vs read+HMAC: **${parser_ratio}x** the floor's rate."
  echo "- VCS sources' pushes (issue 17), parse+verify vs read+HMAC on the same bytes: Bitbucket Cloud (internal/bitbucket/testdata/repo-push.json, 5 commits, 35,566 bytes) **${bitbucket_ratio}x**, Bitbucket Data Center (refs-changed-v10.json, 4 commits) **${bitbucketdc_ratio}x**, Azure DevOps (git.push.json, basic authentication instead of an HMAC) **${azuredevops_ratio}x**. Target (through the binary: the load section's \"VCS sources' pushes\"): at least 0.7x."
  echo "- Same payload through the webhook Handler (GitHub provider, accepting sink) vs a bare net/http handler reading the body and checking the HMAC (httptest recorder): **${handler_ratio}x**. Issue target (end to end, over loopback): at least 0.8x."
  echo
  echo "## Issue 7 targets"
  echo
  echo "Measured here:"
  echo
  echo "- Engine events/s and allocations per event for each event kind: in the table (BenchmarkApply*), warm engine of 1,000 services x 3 environments."
  echo "- Memory of ${DORA_BENCH_PENDING} pending changes: ${mem} live heap, built in ${build_s} s (target for 1,000,000: under 256 MiB). Before the fix (profiled: 96% of CPU in the dedup window's copy on every expiry; a map and a heap object per commit): 257 MiB and 181 s for 1,000,000."
  echo "- Save and restore of ${DORA_BENCH_PENDING} pending changes through the storage extension (the contrib file_storage, bbolt on disk; Export + snapshot encoding + write, and read + decoding + Import): ${fs_save_ms} ms and ${fs_restore_ms} ms, snapshot ${fs_size} (target for 1,000,000: under 2 s each). Before snapshot version 2 (all JSON, 84 MiB): about 7.0 s and 8.6 s."
  echo "- The engine state alone as JSON (Export + JSON encode, JSON decode + Import; the version 1 snapshot codec): ${save_ms} ms and ${load_ms} ms."
  echo "- Metric emission of a 3,000-series snapshot: ${emit_ms} ms per Emit (BenchmarkEmit3000Series). Before the fix (profiled: 83% in the generated MetricsBuilder comparing each point's attributes with every earlier one): 4,699 ms."
  echo "- Webhook parse+verify vs floor, in process: ${parser_ratio}x (parser), ${handler_ratio}x (handler). The 0.8x target is for the whole binary over loopback: see the load section below."
  echo "- End to end through \`bin/otelcol-dora\` (webhooks and CI/CD spans against the floor and the otlp receiver, p50/p99 at 1,000/s, freshness): the load section below (cmd/doraload)."
  echo "- Kubernetes scale (10,000 Deployments on a real API server against a plain informer, mass rollout): the Kubernetes section below (cmd/k8sscale)."
  echo
  echo "## What the profiles showed, and the fixes (item 7)"
  echo
  echo "Before figures are from the first \`make bench\` (2026-11-26, session 1) or from the engineer's run named; after figures are the ones on this page."
  echo
  echo "- GitHub push parsing: encoding/json's reflection, a validation pass plus a decode pass, \`fmt.Sprintf\` per commit, \`hmac.New\` per delivery (5 allocations), a map per commit. Now a one-pass pull scanner (internal/jsonscan/jsonscan.go) that reads only the fields used and validates what it skips, checked against encoding/json by fuzzing (same events, same error messages); pooled HMAC state and body buffers. Parse+verify 67 allocs/op, 0.13x the floor before; GitLab push decoded in one pass instead of two."
  echo "- Metric emission: 83% of the time in the generated MetricsBuilder's O(n^2) attribute comparison; counters and gauges are now built with pdata directly (output checked equal to the generated builder's). 3,000 series: 4,699 ms before."
  echo "- 1,000,000 pending changes: 96% of the build time in the dedup window's copy on every expiry, and a heap object plus map entries per commit; now a head index, and commits by value in a ring with an index. 257 MiB and 181 s before."
  echo "- Save/restore through file_storage: the JSON snapshot of 1M changes was 84 MiB and took about 7 s / 8.6 s; snapshot version 2 writes the commits in a compact binary form (version 1 still loads)."
  echo "- CI/CD spans through the binary (each export is a deployment, so its 2xx waits for an emission that carries it to the pipeline): at first 0.36-0.47x of the otlp receiver, with the engine's rolling values (recomputed over every service's whole history at each emission) at 28% of the CPU. The rolling values are now cached per service and recomputed only when its inputs change or a window boundary passes (checked equal to the old computation on randomized histories); a change-triggered emission sends only the changed services' series, and leaves out level gauges whose value did not change (every emit_interval sends everything): 0.65-0.71x. The profile then showed the emit loop at 28% of the CPU, half of it the prometheus exporter's accumulation: an emission started at the first change of a burst and carried only it, so every other delivery of the burst waited for (and paid) another one. A change now waits 100 us for the rest of its burst before it is emitted: 0.94x in the experiment (0 / 100 us / 300 us / 1 ms gave 0.69x / 0.94x / 0.89x / 0.36x: 1 ms makes senders that wait for their answers idle)."
  echo "- Webhook ingest through the binary: at the targets within run-to-run noise, not reliably above them (medians of 0.74-0.83x of the floor and 0.93-1.10x of the otlp receiver over seven runs on a quiet machine; single rounds 0.61-1.08x and 0.75-1.28x). The remaining difference to the floor is confighttp's server stack (otelhttp instrumentation, client info, decompression, body limit), which the otlp receiver has too and the bare net/http floor does not, and the push parsing itself (about 5 us for 4 KB: the scanner validates every skipped value so that a malformed body gets the same 400 as before)."
  echo "- Kubernetes source: the stored object kept full ObjectMeta/TypeMeta and a change set even without storage; now a small Meta, interned condition strings and no dirty set without storage: 1,136 B per Deployment before, under 1 KiB now (Kubernetes section)."
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2

# --- History import (issue 15) ---------------------------------------------
# 10,000 deployments and 200,000 commits imported by the GitHub importer from
# a local GitHub on 127.0.0.1 (scripts/bench-github-history.sh), no rate
# limit: time, peak heap, requests per deployment and the process's max RSS.
hist_out=$(bash scripts/bench-github-history.sh 2>&1) || { echo "$hist_out" >&2; exit 1; }
echo "$hist_out" >&2
hist_line=$(grep '^BenchmarkHistoryImport' <<<"$hist_out")
hist_s=$(awk '{for (i=1;i<NF;i++) if ($(i+1)=="ns/op") printf "%.1f", $i/1e9}' <<<"$hist_line")
hist_heap=$(awk '{for (i=1;i<NF;i++) if ($(i+1)=="peak-heap-MiB") print $i}' <<<"$hist_line")
hist_server=$(awk '{for (i=1;i<NF;i++) if ($(i+1)=="server-MiB") print $i}' <<<"$hist_line")
hist_req=$(awk '{for (i=1;i<NF;i++) if ($(i+1)=="requests/deployment") print $i}' <<<"$hist_line")
hist_rss=$(sed -n 's/^max RSS \([0-9]*\) KiB.*/\1/p' <<<"$hist_out" | awk '{printf "%.0f", $1/1024}')
{
  echo
  echo "## History import (issue 15)"
  echo
  echo "\`bash scripts/bench-github-history.sh\`: the GitHub importer (go-github, internal/github/history.go) reads 10,000 deployments and 200,000 commits from a local GitHub on 127.0.0.1 serving GitHub's REST API examples, with no rate limit, into a sink that keeps the events (250,000). The ceiling, on this machine:"
  echo
  echo "| figure | measured | target |"
  echo "| --- | --- | --- |"
  echo "| time | ${hist_s} s | under 60 s |"
  echo "| peak heap (sampled at each batch; the local GitHub's own ${hist_server} MiB included) | ${hist_heap} MiB | under 512 MiB |"
  echo "| max RSS of the process (importer and local server) | ${hist_rss:-n/a} MiB | under 512 MiB |"
  echo "| requests per deployment (one statuses request each, one compare page per 250 commits, one list page per 100 items) | ${hist_req} | at most 1 + 1 per 100 commits = 1.2 |"
} >> BENCHMARKS.md
echo "appended the history import section to BENCHMARKS.md" >&2

# The load part (cmd/doraload): the whole otelcol-dora binary over loopback
# against a net/http floor and the collector's own otlp receiver (webhook
# ingest, CI/CD spans), and the freshness of the Prometheus endpoint after a
# webhook and after a rollout on a local kube-apiserver. It needs
# bin/otelcol-dora (make build) and the control-plane binaries (make tools),
# takes 1-3 minutes and appends its own section. DORA_BENCH_LOAD=0 skips it;
# DORA_LOAD_FLAGS passes flags (see `go run ./cmd/doraload -h`).
if [[ "${DORA_BENCH_LOAD:-1}" != 0 ]]; then
  loaddir=$(mktemp -d)
  go build -o "$loaddir/doraload" ./cmd/doraload
  echo "+ doraload ${DORA_LOAD_FLAGS:-}" >&2
  # shellcheck disable=SC2086
  section=$("$loaddir/doraload" ${DORA_LOAD_FLAGS:-}) || { rm -rf "$loaddir"; exit 1; }
  rm -rf "$loaddir"
  printf '\n%s\n' "$section" >> BENCHMARKS.md
  echo "appended the load section (cmd/doraload) to BENCHMARKS.md" >&2
fi

# The gateway's ingest of agents' records (issue 16): the same OTLP/HTTP logs
# exports into the dora receiver's logs path and into the otlp receiver, then
# the count checked once after redeliveries. About 1 minute; its own section.
# DORA_BENCH_FORWARDED=0 skips it; DORA_FORWARDED_FLAGS passes flags.
if [[ "${DORA_BENCH_FORWARDED:-1}" != 0 ]]; then
  fwddir=$(mktemp -d)
  go build -o "$fwddir/doraload" ./cmd/doraload
  echo "+ doraload -mode forwarded ${DORA_FORWARDED_FLAGS:-}" >&2
  # shellcheck disable=SC2086
  if section=$("$fwddir/doraload" -mode forwarded ${DORA_FORWARDED_FLAGS:-}); then
    printf '\n%s\n' "$section" >> BENCHMARKS.md
  else
    # It prints its section before failing on a wrong count: keep it.
    printf '\n%s\n\n**The forwarded-events run failed** (see the make bench output).\n' "$section" >> BENCHMARKS.md
    rm -rf "$fwddir"
    exit 1
  fi
  rm -rf "$fwddir"
  echo "appended the gateway ingest section (doraload -mode forwarded) to BENCHMARKS.md" >&2
fi

# --- Kubernetes scale (issue 7, item 4) -------------------------------------
# 10,000 Deployments in 100 namespaces on a real etcd + kube-apiserver; a plain
# client-go informer and the receiver's source, each in its own process, then
# a mass rollout counted by the source. About 3-5 minutes on 2 cores.
# DORA_BENCH_K8S_DEPLOYMENTS and DORA_BENCH_K8S_NAMESPACES shrink it.
k8s_tools="${DORA_TOOLS_BIN:-$PWD/.tools/bin}"
if [[ ! -x "$k8s_tools/etcd" || ! -x "$k8s_tools/kube-apiserver" ]]; then
  echo "+ make tools (etcd and kube-apiserver for the Kubernetes scale benchmark)" >&2
  make tools >&2
fi
k8s_tmp=$(mktemp -d)
k8s_n="${DORA_BENCH_K8S_DEPLOYMENTS:-10000}"
k8s_ns="${DORA_BENCH_K8S_NAMESPACES:-100}"
go build -o "$k8s_tmp/k8sscale" ./cmd/k8sscale
echo "+ go run ./cmd/k8sscale -deployments $k8s_n -namespaces $k8s_ns -markdown" >&2
if "$k8s_tmp/k8sscale" -deployments "$k8s_n" -namespaces "$k8s_ns" -markdown >"$k8s_tmp/section.md"; then
  cat "$k8s_tmp/section.md" >>BENCHMARKS.md
  echo "appended the Kubernetes scale section to BENCHMARKS.md" >&2
else
  # Keep what it printed (it names the miss), and say the run failed.
  { cat "$k8s_tmp/section.md"; printf '\n**The Kubernetes scale run failed** (see the make bench output).\n'; } >>BENCHMARKS.md
  rm -rf "$k8s_tmp"
  exit 1
fi
rm -rf "$k8s_tmp"

# --- Agents and a gateway at scale (issue 16) ---------------------------------
# Three real API servers with DORA_BENCH_GW_DEPLOYMENTS Deployments each (the
# issue's 10,000 by default: about 10 minutes on 2 cores, most of it writing
# the Deployments; DORA_BENCH_GW_DEPLOYMENTS=2000 takes about 2.5), an
# otelcol-dora agent per cluster forwarding to one otelcol-dora gateway, a
# mass rollout in all three. DORA_BENCH_GW=0 skips it.
if [[ "${DORA_BENCH_GW:-1}" != 0 ]]; then
  gw_tmp=$(mktemp -d)
  gw_n="${DORA_BENCH_GW_DEPLOYMENTS:-10000}"
  gw_c="${DORA_BENCH_GW_CLUSTERS:-3}"
  gw_ns=$(( gw_n < 100 ? gw_n : 100 ))
  go build -o "$gw_tmp/k8sscale" ./cmd/k8sscale
  echo "+ go run ./cmd/k8sscale -clusters $gw_c -deployments $gw_n -namespaces $gw_ns -bin bin/otelcol-dora -rollout-timeout 6m -markdown" >&2
  if "$gw_tmp/k8sscale" -clusters "$gw_c" -deployments "$gw_n" -namespaces "$gw_ns" -bin bin/otelcol-dora -rollout-timeout 6m -markdown >"$gw_tmp/section.md"; then
    cat "$gw_tmp/section.md" >>BENCHMARKS.md
    echo "appended the agent/gateway scale section to BENCHMARKS.md" >&2
  else
    { cat "$gw_tmp/section.md"; printf '\n**The agent/gateway scale run failed** (see the make bench output).\n'; } >>BENCHMARKS.md
    rm -rf "$gw_tmp"
    exit 1
  fi
  rm -rf "$gw_tmp"
fi
