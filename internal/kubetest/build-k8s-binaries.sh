#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd used by the kubetest integration tests, and the node binaries (kubelet,
# containerd, containerd-shim-runc-v2, ctr, crictl, the CNI plugins bridge, host-local and loopback) used by nodetest.
#
# The binaries are built in throwaway modules (never the product's go.mod) and cached outside the clone, because
# CI runs on a clean clone on the same machine: a cache inside the clone would be rebuilt on every run. Only missing
# binaries are built, so running this repeatedly is cheap. Concurrent runs (two test processes, two clones) take
# turns on a lock in the cache root: the second waits, then finds the binaries present.
#
# Environment:
#   K8S_TEST_ROOT   cache root (default /var/tmp/compilerwatch-k8s-v1.37.2)
#   GO              go command (default: go)
set -euo pipefail

K8S_VERSION=v1.37.2
K8S_STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.6.16
CONTAINERD_VERSION=v2.4.2
CRITOOLS_VERSION=v1.37.0
CNI_PLUGINS_VERSION=v1.10.0

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
exec 9>"${ROOT}/.build.lock"
if ! flock -n 9; then
	log "another build holds ${ROOT}/.build.lock, waiting"
	flock 9
fi

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

# kube-apiserver and kubelet come from one throwaway module and one `go build`, so they share one dependency
# resolution and one compile of the common packages; only the missing ones are built.
build_kubernetes() {
	local cmds=(kube-apiserver kubelet) missing=() pkgs=() c
	for c in "${cmds[@]}"; do
		if [[ -x "${BIN}/${c}" ]]; then
			log "${BIN}/${c} present, skipping"
		else
			missing+=("${c}")
			pkgs+=("k8s.io/kubernetes/cmd/${c}")
		fi
	done
	if ((${#missing[@]} == 0)); then
		return
	fi
	local dir="${SRC}/kubernetes"
	mkdir -p "${dir}"
	# k8s.io/kubernetes requires its staging modules at v0.0.0; every one must be replaced with the published tag.
	local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
		cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client
		cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
		kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
		sample-apiserver sample-cli-plugin sample-controller streaming)
	{
		printf 'module k8stest/kubernetes\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "${K8S_VERSION}"
		for m in "${staging[@]}"; do
			printf '\tk8s.io/%s => k8s.io/%s %s\n' "${m}" "${m}" "${K8S_STAGING_VERSION}"
		done
		printf ')\n'
	} >"${dir}/go.mod"
	{
		printf '//go:build tools\n\npackage tools\n\nimport (\n'
		for c in "${cmds[@]}"; do
			printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "${c}"
		done
		printf ')\n'
	} >"${dir}/tools.go"
	# Without the version stamp the Node reports kubeletVersion v0.0.0-master.
	build_multi "${dir}" "-X k8s.io/component-base/version.gitVersion=${K8S_VERSION}" "" "${pkgs[@]}"
}

# Builds several commands of one module in one `go build` into a temporary directory, then moves each binary in.
#   build_multi DIR EXTRA_LDFLAGS TAGS PKG...
build_multi() {
	local dir=$1 ldx=$2 tags=$3
	shift 3
	local start=$SECONDS tmp="${BIN}/.tmp.$$" p name
	log "building $* in ${dir}"
	rm -rf "${tmp}"
	mkdir -p "${tmp}"
	(
		cd "${dir}"
		"${GO}" mod tidy
		CGO_ENABLED=0 "${GO}" build -trimpath -tags "${tags}" -ldflags="-s -w ${ldx}" -o "${tmp}/" "$@"
	)
	for p in "$@"; do
		name=${p##*/}
		mv -f "${tmp}/${name}" "${BIN}/${name}"
		log "built ${BIN}/${name} ($(du -h "${BIN}/${name}" | cut -f1))"
	done
	rmdir "${tmp}"
	log "built $* in $((SECONDS - start))s"
}

# Writes a throwaway module that requires MOD at VERSION and builds the commands PKG... that are missing.
#   build_module NAME MOD VERSION TAGS PKG...
build_module() {
	local name=$1 mod=$2 version=$3 tags=$4
	shift 4
	local pkgs=() p
	for p in "$@"; do
		if [[ -x "${BIN}/${p##*/}" ]]; then
			log "${BIN}/${p##*/} present, skipping"
		else
			pkgs+=("${p}")
		fi
	done
	if ((${#pkgs[@]} == 0)); then
		return
	fi
	local dir="${SRC}/${name}"
	mkdir -p "${dir}"
	printf 'module k8stest/%s\n\ngo 1.26.0\n\nrequire %s %s\n' "${name}" "${mod}" "${version}" >"${dir}/go.mod"
	{
		printf '//go:build tools\n\npackage tools\n\nimport (\n'
		for p in "$@"; do
			printf '\t_ "%s"\n' "${p}"
		done
		printf ')\n'
	} >"${dir}/tools.go"
	build_multi "${dir}" "" "${tags}" "${pkgs[@]}"
}

build_node() {
	build_module containerd github.com/containerd/containerd/v2 "${CONTAINERD_VERSION}" "no_btrfs no_devmapper no_zfs" \
		github.com/containerd/containerd/v2/cmd/containerd \
		github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
		github.com/containerd/containerd/v2/cmd/ctr
	build_module cri-tools sigs.k8s.io/cri-tools "${CRITOOLS_VERSION}" "" sigs.k8s.io/cri-tools/cmd/crictl
	build_module cni-plugins github.com/containernetworking/plugins "${CNI_PLUGINS_VERSION}" "" \
		github.com/containernetworking/plugins/plugins/main/bridge \
		github.com/containernetworking/plugins/plugins/ipam/host-local \
		github.com/containernetworking/plugins/plugins/main/loopback
}

total=$SECONDS
build_etcd
build_kubernetes
build_node
log "done in $((SECONDS - total))s: $(cd "${BIN}" && echo *)"
