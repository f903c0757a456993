# compilerwatch. `make run` and `make test` are the two commands a new user needs;
# both run as root on a Debian/Ubuntu machine with Go 1.26 (see README.md).
SHELL := /bin/bash
GO ?= go
OCB_VERSION := v0.165.0
OCB := $(GO) run go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)
# Helm for the chart tests (internal/helmtest runs the same version through `go run`).
HELM_VERSION := v3.22.0
GOLANGCI_LINT := $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
BIN := build/otelcol-compilerwatch
CLANG ?= clang-19
PROBE_DIR := receiver/ebpfexecreceiver/internal/probe
GENERATED := $(PROBE_DIR)/exec_bpfel.go $(PROBE_DIR)/exec_bpfel.o
K8S_BIN_DIR ?= /var/tmp/compilerwatch-k8s-v1.37.2/bin
export K8S_BIN_DIR
# Tests are built with ocb's settings (-trimpath, no cgo), like the distribution they test, so they reuse the
# packages `make build` just compiled: on a cold cache the test/e2e package compiles in ~40 s instead of ~150 s.
TEST_LIKE_OCB := CGO_ENABLED=0 $(GO) test -trimpath
GO_SOURCES := $(shell find receiver processor -name '*.go' -not -name '*_test.go') go.mod go.sum

.PHONY: all build image run demo test test-unit generate generate-check k8s-binaries bench lint clean deps

all: build

## deps: install the Debian packages the tests and `make generate` need (root).
deps:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		clang-19 llvm-19 runc busybox-static bpftool libbpf-tools gcc make git ca-certificates openssl iproute2

## generate: rebuild the BPF object and its Go bindings from bpf/ with clang-19.
generate:
	cd $(PROBE_DIR) && $(GO) generate ./...

## generate-check: fail when the committed bpf2go output is stale.
generate-check:
	@command -v $(CLANG) >/dev/null || { \
		if [ "$$CI" = true ]; then echo "generate-check: $(CLANG) is missing (make deps)"; exit 1; fi; \
		echo "generate-check: SKIPPED, $(CLANG) not installed (make deps)"; exit 0; }; \
	tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cp $(GENERATED) $$tmp/; \
	$(MAKE) --no-print-directory generate >/dev/null; \
	if ! cmp -s $$tmp/exec_bpfel.o $(PROBE_DIR)/exec_bpfel.o || ! cmp -s $$tmp/exec_bpfel.go $(PROBE_DIR)/exec_bpfel.go; then \
		echo "generate-check: the committed bpf2go output is stale; commit the regenerated files:"; \
		git status --short $(GENERATED); exit 1; \
	fi; \
	echo "generate-check: bpf2go output is fresh"

## build: build the otelcol-compilerwatch distribution with ocb into build/.
build: $(BIN)

$(BIN): builder-config.yaml $(GO_SOURCES)
	$(OCB) --config builder-config.yaml
	@ls -l $(BIN)

## image: cross-build the collector for linux/amd64 and linux/arm64 into build/linux-<arch>/, then write the
## OCI image (no Docker engine) into build/image/: oci/ (layout, multi-arch index), oci.tar (ctr images
## import) and one docker-archive per architecture (docker load). ocb generates the sources; `go build` runs
## with ocb's own flags, so the amd64 build reuses `make build`'s cache.
IMAGE_ARCHES := amd64 arm64
image:
	$(OCB) --config builder-config.yaml --skip-compilation
	set -e; cd build && for arch in $(IMAGE_ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -o linux-$$arch/otelcol-compilerwatch "-ldflags=-s -w" -gcflags= .; \
	done
	$(GO) run ./deploy/image -root . -out build/image

## run: build, then run the collector as root with testdata/config.yaml.
run: build
	@[ "$$(id -u)" = 0 ] || { echo "make run: run as root (or grant CAP_BPF and CAP_PERFMON; CAP_SYS_RESOURCE too on kernels before 5.11)"; exit 1; }
	$(BIN) --config testdata/config.yaml

## demo: start the collector, compile a C file in a real runc container, show the finding, clean up.
demo: build
	@[ "$$(id -u)" = 0 ] || { echo "make demo: run as root"; exit 1; }
	COMPILERWATCH_DEMO=1 $(TEST_LIKE_OCB) -count=1 -run '^TestDemo$$' -v ./test/demo | grep -v -e '^=== RUN' -e '^--- PASS' -e '^PASS' -e '^ok '

## k8s-binaries: build the real etcd, kube-apiserver and node binaries (kubelet, containerd, ctr, crictl, CNI
## plugins) used by the k8s and node tests (cached under /var/tmp).
k8s-binaries:
	bash internal/kubetest/build-k8s-binaries.sh

## test: vet, freshness of generated code, unit, kernel, container, k8s and e2e tests.
test: generate-check build k8s-binaries image
	$(GO) vet ./...
	@# The arm64 build embeds the same BPF object; its spec is parsed by the tests on this machine.
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -trimpath -c -o /dev/null ./receiver/ebpfexecreceiver/internal/probe
	@# Compile Helm once, before the test packages that run it start in parallel.
	CGO_ENABLED=0 $(GO) run helm.sh/helm/v3/cmd/helm@$(HELM_VERSION) version --short
	$(TEST_LIKE_OCB) -count=1 -timeout 25m ./...

## test-unit: only the tests that need neither root nor the kernel: under -short the internal/testenv gates
## (RequireRoot, RequireCaps, RequireBinary, SkipShort) skip every root, kernel, container and cluster test, even
## with CI=true, and the checks of `make build`/`make image` artifacts skip when those are missing.
test-unit:
	$(GO) test -count=1 -short ./...

## bench: the performance harness (root, about 10 minutes with warm caches): the chart's shipped configuration
## (against a test kube-apiserver), the same with prefilter: compilers and containers, a full export, execsnoop and
## nothing attached, alternated, under storms and make -j2 on the host and in runc containers, plus 60 s idle;
## prints progress and the table with the targets, writes bench-results/ and docs/benchmarks.md.
bench: build
	COMPILERWATCH_BENCH=1 $(TEST_LIKE_OCB) -count=1 -v -timeout 30m -run '^TestBench$$' ./test/bench

## lint: golangci-lint with .golangci.yml (the default linters plus dupl); CI runs it after make test.
lint:
	$(GOLANGCI_LINT) run ./...

clean:
	rm -rf build
