package ebpfexecreceiver // import "github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver"

import (
	"fmt"
	"os"
	"strconv"
	"strings"
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
