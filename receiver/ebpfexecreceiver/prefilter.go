package ebpfexecreceiver // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/component"
)

// kthreadd (pid 2 in the host PID namespace) runs in the kernel's initial
// namespaces, the host's. It is a better witness than pid 1: init may run in
// a mount namespace of its own, and as a kernel thread without an mm it has
// no dumpability restriction on reading its namespace links (some sandboxes
// refuse /proc/1/ns/* even to root).
const (
	kthreaddComm    = "/proc/2/comm"
	hostMountNSLink = "/proc/2/ns/mnt"
)

// hostMountNS returns the inode number of the host's mount namespace, which
// the in-kernel prefilter compares each exec's mount namespace against. It
// needs the host PID namespace (the DaemonSet sets hostPID: true).
func hostMountNS() (uint32, error) {
	comm, err := os.ReadFile(kthreaddComm)
	if err != nil || strings.TrimSpace(string(comm)) != "kthreadd" {
		return 0, fmt.Errorf(`"prefilter: containers" needs the host PID namespace (hostPID: true in Kubernetes): `+
			`pid 2 is not kthreadd here (%s: %q, %v)`, kthreaddComm, strings.TrimSpace(string(comm)), err)
	}
	target, err := os.Readlink(hostMountNSLink)
	if err != nil {
		return 0, fmt.Errorf(`"prefilter: containers" needs the host's mount namespace from %s: %w`, hostMountNSLink, err)
	}
	return parseNSLink(target)
}

// parseNSLink parses a namespace link target such as "mnt:[4026531841]".
func parseNSLink(target string) (uint32, error) {
	num, ok := strings.CutPrefix(target, "mnt:[")
	if ok {
		num, ok = strings.CutSuffix(num, "]")
	}
	if !ok {
		return 0, fmt.Errorf("unexpected mount namespace link %q, want mnt:[<inode>]", target)
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("unexpected mount namespace link %q, want mnt:[<inode>]", target)
	}
	return uint32(n), nil
}

// compilerCatalog is what "prefilter: compilers" needs of the compiler_catalog
// extension (processor/compilerdetectorprocessor/catalogextension): the names
// the compiler_detector processors published at their Start, which the
// collector runs before any receiver's.
type compilerCatalog interface {
	CandidateNames() ([]string, error)
}

// candidateNames reads the candidate names from the compiler_catalog
// extension id, or from the only one the host runs when id is empty.
func candidateNames(host component.Host, id component.ID) ([]string, error) {
	var found []component.ID
	var ext component.Component
	for eid, e := range host.GetExtensions() {
		if id != (component.ID{}) && eid != id {
			continue
		}
		if eid.Type().String() == compilerCatalogType {
			found = append(found, eid)
			ext = e
		}
	}
	switch {
	case len(found) == 0 && id != (component.ID{}):
		return nil, fmt.Errorf(`"prefilter: compilers" reads the catalog from extension %q, which the collector does not run: `+
			`add it to service.extensions`, id)
	case len(found) == 0:
		return nil, fmt.Errorf(`"prefilter: compilers" reads the catalog from a %s extension, and the collector runs none: `+
			`add "extensions: {%s: {}}" and list it in service.extensions`, compilerCatalogType, compilerCatalogType)
	case len(found) > 1:
		slices.SortFunc(found, func(a, b component.ID) int { return strings.Compare(a.String(), b.String()) })
		return nil, fmt.Errorf(`"prefilter: compilers": the collector runs several %s extensions (%v); name one in "compiler_catalog"`,
			compilerCatalogType, found)
	}
	cat, ok := ext.(compilerCatalog)
	if !ok {
		return nil, fmt.Errorf(`"prefilter: compilers": extension %q does not hold a compiler catalog`, found[0])
	}
	names, err := cat.CandidateNames()
	if err != nil {
		return nil, fmt.Errorf(`"prefilter: compilers": %w`, err)
	}
	return names, nil
}
