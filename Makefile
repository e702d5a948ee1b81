# otelcol-dora: the dora receiver and its collector distribution.
#
#   make run       build otelcol-dora and run it on config/local.yaml
#   make test      every test, the real kube-apiserver ones included, and a
#                  short fuzz run of every parser
#   make fuzz      a longer fuzz run of every parser
#   make bench     benchmarks, written to BENCHMARKS.md
#   make soak      two replicas under load with restarts (SOAK_DURATION, 10m;
#                  SOAK_TOPOLOGY=agent-gateway: agents and a gateway)
#   make demo      the whole loop on a local control plane, with a summary
#   make build     the otelcol-dora binary (ocb on builder-config.yaml)
#   make tools     etcd, kube-apiserver, kube-controller-manager, ocb
#   make generate  regenerate internal/metadata and the generated tests
#   make lint      gofmt, go vet, staticcheck and govulncheck (offline database)
#   make race      the fast tests under the race detector
#   make jsonv2    the JSON scanner's differential tests under encoding/json v2

SHELL := /bin/bash
ROOT  := $(abspath .)
TOOLS := $(ROOT)/.tools/bin
BIN   := $(ROOT)/bin/otelcol-dora
GO    ?= go

OCB_VERSION := v0.165.0
# A real webhook sender for the Alertmanager source's tests. v0.28.1 builds
# from the module proxy; newer releases need web UI assets it does not have.
ALERTMANAGER_VERSION := v0.28.1
# Prometheus and promtool for the rule tests and the end-to-end test with a
# real Prometheus (its API is all they need; the web UI assets are absent).
PROMETHEUS_VERSION := v0.316.0
K8S_VERSION := v1.37.2
# govulncheck, and the Go vulnerability database it reads offline: vuln.go.dev
# cannot be reached here, but golang.org/x/vulndb on the module proxy carries
# the OSV entries, which tools/vulndb turns into the database's v1 layout.
# Move VULNDB_VERSION to a newer pseudo-version to pick up newer entries.
GOVULNCHECK_VERSION := v1.9.0
STATICCHECK_VERSION := v0.8.2
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB := $(ROOT)/.vulndb/$(VULNDB_VERSION)
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
               -X k8s.io/component-base/version.gitMajor=1 \
               -X k8s.io/component-base/version.gitMinor=37

# The receiver and the otelcol-dora binary build with go.mod's toolchain,
# go1.26.10: it fixes standard library vulnerabilities that govulncheck
# finds reachable under the go1.26.8 installed here. The go command
# downloads it from the module proxy once. The control-plane tools keep the
# installed Go (TOOLS_GO): they only serve the tests.
export GOTOOLCHAIN := go1.26.10
TOOLS_GO := GOTOOLCHAIN=local $(GO)

# What the tests read to find the binaries.
export DORA_TOOLS_BIN := $(TOOLS)
export OTELCOL_DORA_BIN := $(BIN)

# Packages of the receiver module (the helper modules under tools/ are
# separate modules and hold no tests).
PKGS := ./...
TEST_TIMEOUT ?= 25m
# Fuzzing: a short run of every target in `make test`, a longer one in `make fuzz`.
FUZZ_SHORT ?= 20000x
FUZZ_LONG ?= 2000000x

.PHONY: all run demo test unit race jsonv2 fuzz bench soak build tools generate lint vulncheck clean kubectl

all: build

## tools: control-plane binaries for the tests and `make run`, Alertmanager
## and ocb. go build skips the relink when nothing changed, so this is fast
## when warm.
tools: $(TOOLS)/builder $(TOOLS)/alertmanager $(TOOLS)/prometheus
	@mkdir -p $(TOOLS)
	@# Argo CD's notifications engine as a sender for the e2e tests; a module
	@# of its own, so its dependencies stay out of go.mod.
	cd tools/argocdnotify && $(TOOLS_GO) build -o $(TOOLS)/argocdnotify .
	cd tools/etcd && $(TOOLS_GO) build -o $(TOOLS)/etcd go.etcd.io/etcd/server/v3
	cd tools/kube && $(TOOLS_GO) build -ldflags '$(K8S_LDFLAGS)' -o $(TOOLS)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
	cd tools/kube && $(TOOLS_GO) build -ldflags '$(K8S_LDFLAGS)' -o $(TOOLS)/kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager

$(TOOLS)/builder:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(TOOLS_GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)

$(TOOLS)/alertmanager:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(TOOLS_GO) install github.com/prometheus/alertmanager/cmd/alertmanager@$(ALERTMANAGER_VERSION)

$(TOOLS)/prometheus:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(TOOLS_GO) install github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_VERSION) github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)

## kubectl: only `make run` users need it, to change Deployments by hand.
kubectl: $(TOOLS)/kubectl
$(TOOLS)/kubectl:
	cd tools/kube && $(TOOLS_GO) build -ldflags '$(K8S_LDFLAGS)' -o $(TOOLS)/kubectl k8s.io/kubernetes/cmd/kubectl

## build: the otelcol-dora distribution.
build: $(TOOLS)/builder
	@mkdir -p build bin
	$(TOOLS)/builder --config builder-config.yaml
	@# A new file renamed over the old one: a running otelcol-dora keeps its
	@# binary (cp over it fails with "Text file busy").
	cp build/otelcol-dora/otelcol-dora $(BIN).new && mv -f $(BIN).new $(BIN)

## test: unit tests, the real API server tests and the end-to-end test of
## the built binary.
test: tools build
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	bash scripts/fuzz.sh $(FUZZ_SHORT)

## bench: the Go benchmarks (engine, emitter, webhook parsing against the
## floor), then the load of the built binary (cmd/doraload: webhooks and
## spans against a net/http floor and the otlp receiver, freshness on a local
## kube-apiserver), the Kubernetes scale run (cmd/k8sscale), the gateway's
## ingest of agents' records (doraload -mode forwarded) and agents on three
## API servers forwarding to a gateway (k8sscale -clusters 3); writes
## BENCHMARKS.md. About 25 minutes on 2 cores.
bench: tools build
	bash scripts/bench.sh

## soak: two otelcol-dora replicas with leader election on a real control
## plane, under a steady mix of rollouts and webhooks, one of them stopped
## (SIGKILL or SIGTERM) and restarted every 90 s; then the counters are
## checked against what was sent. SOAK_DURATION of load (default 10m).
## SOAK_TOPOLOGY=agent-gateway runs issue 16's topology instead: three
## control planes with an agent each, forwarding to two gateway replicas
## (agents and gateway replicas restarted in turn; checked per cluster).
SOAK_DURATION ?= 10m
SOAK_TOPOLOGY ?= single
soak: build tools
	$(GO) run ./cmd/soak -duration $(SOAK_DURATION) -topology $(SOAK_TOPOLOGY)

## fuzz: every parser's fuzz target, longer.
fuzz:
	bash scripts/fuzz.sh $(FUZZ_LONG)

## unit: the fast tests only (no control plane, no binary).
unit:
	$(GO) test -count=1 -short $(PKGS)

## race: the fast tests under the race detector (the ingest path, the
## sources' pooled buffers and the emit loop share data across goroutines).
race:
	$(GO) test -count=1 -race -short $(PKGS)

## jsonv2: the scanner's differential tests (against encoding/json) under
## GOEXPERIMENT=jsonv2 too, so they compare outcomes, not one version's words.
jsonv2:
	GOEXPERIMENT=jsonv2 $(GO) test -count=1 ./internal/jsonscan/... ./internal/github ./internal/gitlab ./internal/bitbucket ./internal/bitbucketdc ./internal/azuredevops

## run: otelcol-dora on config/local.yaml, against the current kubeconfig's
## cluster, or against a local control plane started here when there is none.
run: build kubectl tools
	@bash scripts/run.sh

## demo: a local control plane, otelcol-dora and Prometheus, a scripted
## delivery history played slowly, and a DORA summary per service.
demo: build tools
	$(GO) run ./cmd/demo

generate:
	$(GO) tool mdatagen metadata.yaml
	@# mdatagen names the generated test package after the folder; the
	@# receiver's package is dorareceiver whatever the checkout is called.
	sed -i 's/^package .*/package dorareceiver/' generated_component_test.go generated_package_test.go
	cd doraconnector && $(GO) tool mdatagen metadata.yaml

lint: $(TOOLS)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(TOOLS)/staticcheck $(PKGS)
	$(MAKE) --no-print-directory vulncheck

## vulncheck: govulncheck on the receiver's packages (reachable code only),
## with the offline database; exits non-zero on any finding.
vulncheck: $(TOOLS)/govulncheck $(VULNDB)/index/modules.json
	$(TOOLS)/govulncheck -db file://$(VULNDB) $(PKGS)

$(TOOLS)/staticcheck:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(TOOLS_GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(TOOLS)/govulncheck:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(TOOLS_GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

$(VULNDB)/index/modules.json:
	cd tools/vulndb && $(GO) run . -module golang.org/x/vulndb@$(VULNDB_VERSION) -out $(VULNDB)

clean:
	rm -rf build bin .run
