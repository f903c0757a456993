#!/usr/bin/env bash
# Copies the libbpf headers bpf/exec.c includes from Debian's libbpf-dev package into bpf/include/bpf/ and
# records the package version and licence next to them (VERSION, COPYRIGHT). There is no network access to
# upstream libbpf here; Debian's package is the source. Run as root if libbpf-dev is not installed yet (it is
# installed with apt-get). Afterwards run `make generate-check`: if the headers changed the BPF object, commit the
# regenerated bpf2go output (make generate) with them.
set -euo pipefail
cd "$(dirname "$0")/bpf"

# The headers exec.c uses, directly or through each other.
HEADERS=(bpf_core_read.h bpf_endian.h bpf_helper_defs.h bpf_helpers.h bpf_tracing.h)

if ! dpkg-query -W -f='${Status}' libbpf-dev 2>/dev/null | grep -q 'install ok installed'; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libbpf-dev
fi
version=$(dpkg-query -W -f='${Version}' libbpf-dev)
major=$(sed -n 's/^#define LIBBPF_MAJOR_VERSION \([0-9]*\)$/\1/p' /usr/include/bpf/libbpf_version.h)
minor=$(sed -n 's/^#define LIBBPF_MINOR_VERSION \([0-9]*\)$/\1/p' /usr/include/bpf/libbpf_version.h)

for h in "${HEADERS[@]}"; do
	install -m 0644 "/usr/include/bpf/$h" "$h"
done
install -m 0644 /usr/share/doc/libbpf-dev/copyright COPYRIGHT

{
	echo "# Written by bpf/include/update-libbpf.sh; do not edit by hand."
	echo "source: Debian package libbpf-dev ${version} (/usr/include/bpf)"
	echo "upstream: libbpf ${major}.${minor} (https://github.com/libbpf/libbpf)"
	echo "licence: LGPL-2.1 OR BSD-2-Clause (SPDX headers of the files; Debian's copyright file is COPYRIGHT)"
	echo "files:"
	for h in "${HEADERS[@]}"; do
		echo "  ${h} sha256:$(sha256sum "$h" | cut -d' ' -f1)"
	done
} > VERSION
echo "libbpf headers from libbpf-dev ${version} in $(pwd)"
