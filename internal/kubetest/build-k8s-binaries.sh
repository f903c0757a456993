#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd used by the kubetest integration tests.
#
# The binaries are built in throwaway modules (never the product's go.mod) and cached outside the clone, because
# CI runs on a clean clone on the same machine: a cache inside the clone would be rebuilt on every run. Only missing
# binaries are built, so running this repeatedly is cheap.
#
# Environment:
#   K8S_TEST_ROOT   cache root (default /var/tmp/compilerwatch-k8s-v1.37.2)
#   GO              go command (default: go)
set -euo pipefail

K8S_VERSION=v1.37.2
K8S_STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.6.16

ROOT="${K8S_TEST_ROOT:-/var/tmp/compilerwatch-k8s-${K8S_VERSION}}"
GO="${GO:-go}"
BIN="${ROOT}/bin"
SRC="${ROOT}/src"

log() { printf '%s build-k8s-binaries: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The throwaway modules must not inherit the caller's module flags (e.g. GOFLAGS=-mod=mod is fine, -mod=vendor is not)
# nor a go.work of the clone.
export GOFLAGS=-mod=mod
export GOWORK=off

mkdir -p "${BIN}" "${SRC}"

# Builds into a temporary file and renames, so an interrupted build never leaves a truncated binary that later runs
# would take as cached.
build() {
	local dir=$1 pkg=$2 out=$3
	local start=$SECONDS
	log "building ${out} from ${pkg} in ${dir}"
	(
		cd "${dir}"
		"${GO}" mod tidy
		"${GO}" build -trimpath -ldflags="-s -w" -o "${out}.tmp" "${pkg}"
	)
	mv -f "${out}.tmp" "${out}"
	log "built ${out} in $((SECONDS - start))s ($(du -h "${out}" | cut -f1))"
}

build_etcd() {
	local out="${BIN}/etcd"
	if [[ -x "${out}" ]]; then
		log "${out} present, skipping"
		return
	fi
	local dir="${SRC}/etcd"
	mkdir -p "${dir}"
	cat >"${dir}/go.mod" <<MOD
module k8stest/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
MOD
	cat >"${dir}/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
	build "${dir}" go.etcd.io/etcd/server/v3 "${out}"
}

build_apiserver() {
	local out="${BIN}/kube-apiserver"
	if [[ -x "${out}" ]]; then
		log "${out} present, skipping"
		return
	fi
	local dir="${SRC}/apiserver"
	mkdir -p "${dir}"
	# k8s.io/kubernetes requires its staging modules at v0.0.0; every one must be replaced with the published tag.
	local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
		cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client
		cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
		kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
		sample-apiserver sample-cli-plugin sample-controller streaming)
	{
		printf 'module k8stest/apiserver\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "${K8S_VERSION}"
		for m in "${staging[@]}"; do
			printf '\tk8s.io/%s => k8s.io/%s %s\n' "${m}" "${m}" "${K8S_STAGING_VERSION}"
		done
		printf ')\n'
	} >"${dir}/go.mod"
	cat >"${dir}/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
	build "${dir}" k8s.io/kubernetes/cmd/kube-apiserver "${out}"
}

total=$SECONDS
build_etcd
build_apiserver
log "done in $((SECONDS - total))s: ${BIN}/etcd ${BIN}/kube-apiserver"
