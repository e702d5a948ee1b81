#!/usr/bin/env bash
# `make run`: otelcol-dora on config/local.yaml. Uses the cluster of the
# current kubeconfig when it answers; otherwise starts a local control plane
# (etcd, kube-apiserver, kube-controller-manager and a fake kubelet, the
# same the tests use) and stops it again on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools/bin
KUBECTL=$TOOLS/kubectl
BIN=$ROOT/bin/otelcol-dora

kubeconfig=${KUBECONFIG:-$HOME/.kube/config}
cluster_pid=""
collector_pid=""

cleanup() {
	if [ -n "$collector_pid" ] && kill -0 "$collector_pid" 2>/dev/null; then
		kill -TERM "$collector_pid" 2>/dev/null || true
		wait "$collector_pid" 2>/dev/null || true
	fi
	if [ -n "$cluster_pid" ] && kill -0 "$cluster_pid" 2>/dev/null; then
		echo "Stopping the local control plane (pid $cluster_pid)"
		kill -TERM "$cluster_pid" 2>/dev/null || true
		wait "$cluster_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
# Make INT and TERM run the EXIT trap, so nothing started here is left behind.
trap 'exit 130' INT TERM

if [ -f "${kubeconfig%%:*}" ] && "$KUBECTL" --kubeconfig "$kubeconfig" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
	echo "Using the cluster of $kubeconfig ($("$KUBECTL" --kubeconfig "$kubeconfig" config current-context))"
else
	echo "No reachable cluster in $kubeconfig: starting a local control plane in .run/cluster"
	mkdir -p "$ROOT/.run"
	# A new cluster: the receiver's saved state (.run/storage, see
	# config/local.yaml) belongs to the previous one.
	rm -rf "$ROOT/.run/cluster" "$ROOT/.run/storage"
	go build -o "$TOOLS/localcluster" ./cmd/localcluster
	DORA_TOOLS_BIN=$TOOLS "$TOOLS/localcluster" -dir "$ROOT/.run/cluster" -fake-kubelet >"$ROOT/.run/localcluster.log" 2>&1 &
	cluster_pid=$!
	for _ in $(seq 1 600); do
		[ -f "$ROOT/.run/cluster/localcluster.pid" ] && break
		if ! kill -0 "$cluster_pid" 2>/dev/null; then
			echo "The local control plane failed to start:" >&2
			tail -n 30 "$ROOT/.run/localcluster.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	kubeconfig=$ROOT/.run/cluster/kubeconfig
	"$KUBECTL" --kubeconfig "$kubeconfig" create namespace shop >/dev/null
fi

cat <<MSG

otelcol-dora is starting on config/local.yaml.
  DORA metrics (Prometheus):  curl -s 127.0.0.1:9464/metrics | grep '^platform_'
  Health:                     curl -s 127.0.0.1:13133/
  Try a rollout:
    export KUBECONFIG=$kubeconfig
    $KUBECTL -n shop create deployment api --image=registry.local/api:1.0
    $KUBECTL -n shop set image deployment/api api=registry.local/api:2.0
    curl -s 127.0.0.1:9464/metrics | grep platform_deployments_total
Stop with Ctrl-C.

MSG
DORA_KUBECONFIG=$kubeconfig "$BIN" --config "$ROOT/config/local.yaml" &
collector_pid=$!
wait "$collector_pid"
