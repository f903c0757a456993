// Package testenv is the test environment shared by the ebpf_exec receiver,
// the compiler_detector processor, the deployment tests and the end-to-end
// tests under test/: the root, capability and binary gates, real runc
// containers in kubelet-shaped cgroups, and the host tool chains mounted
// into them. Import it from _test.go files (and test helper packages) only.
//
// # Gates
//
// RequireRoot, RequireCaps and RequireBinary skip a test whose environment
// cannot run it, with a message naming what is missing. When CI=true
// (InCI) they fail it instead: in CI a kernel test must run, never
// silently skip. Capabilities are read from CapEff in /proc/self/status.
//
// # Containers
//
// NewContainer starts a real runc container, Linux only (the container
// API is in _linux files; tests using it need a linux build constraint).
// The rootfs holds busybox-static (/bin/busybox and applet links), /etc/passwd,
// and empty /proc, /dev, /sys and /tmp; Options add read-only bind mounts
// and symlinks (HostGCCMounts, HostGoMounts), an overlayfs rootfs whose
// upper layer starts empty, and the ids. Init is `sleep 3600`, started
// with `runc run --detach` and stdio to a log file. The runc state lives
// under the test's temp dir (a private --root), so concurrent test binaries
// never see each other's containers. Exec runs a command with `runc exec`.
//
// The container gets containerd's default capabilities, its own pid, ipc,
// uts, mount and network namespaces (no network: loopback only) and no
// cgroup namespace, like a Kubernetes container on a cgroup v1 node.
//
// Cleanup (t.Cleanup) runs `runc delete --force`, kills whatever is left in
// the container's cgroup, removes the container and pod cgroup directories
// from every hierarchy, unmounts the overlay, and then verifies that runc
// no longer lists the container, that no mount remains under the temp dir
// and that the cgroup directories are gone; any leak fails the test. The
// shared ancestors (/kubepods, /kubepods/besteffort, ...) are removed only
// when a test created them and no other container uses them: a file lock
// and markers in /run/compilerwatch-ebpfexectest coordinate concurrent test
// binaries, and a directory that existed before (the kubelet's) is never
// touched. The container's init is reparented to the host's pid 1, which
// reaps it; until it does, it may linger as a zombie.
//
// # Cgroup layout
//
// The cgroup path is shaped like containerd's under the kubelet:
// /kubepods/<qos>/pod<uid>/<64-hex id> (CgroupfsLayout), or
// /kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/cri-containerd-<id>.scope
// (SystemdLayout, created by runc's cgroupfs manager because the systemd
// manager needs a running systemd, which test hosts often lack).
//
// On a hybrid host (v1 controllers under /sys/fs/cgroup/<controller>,
// cgroup2 at /sys/fs/cgroup/unified), runc 1.1.5's cgroupfs manager puts the
// container in every v1 hierarchy, including name=systemd, AND at the same
// path in the cgroup2 hierarchy. Observed /proc/<init pid>/cgroup:
//
//	9:name=systemd:/kubepods/besteffort/pod88acc54f-b382-4a0b-ad16-a8c69bccec64/463a28f1...c082
//	8:pids:/kubepods/besteffort/pod88acc54f-.../463a28f1...c082
//	... (blkio, freezer, devices, memory, cpuset, cpuacct, cpu: the same path)
//	0::/kubepods/besteffort/pod88acc54f-b382-4a0b-ad16-a8c69bccec64/463a28f1...c082
//
// So reading the cgroup v2 (default hierarchy) path first finds the
// container on hybrid hosts too; the v1 fallback is needed only where no
// process is placed in cgroup2 at all (pure v1, or runtimes that skip the
// unified hierarchy), and there the v1 hierarchies carry the same path.
//
// # Tool chains
//
// HostGCCMounts asks the host gcc what it runs and reads and returns the
// file and directory binds and the symlink chains (/usr/bin/cc ->
// /etc/alternatives/cc -> /usr/bin/gcc -> gcc-12 -> x86_64-linux-gnu-gcc-12)
// needed to compile and link C in the container as gcc, as cc, or as a
// renamed copy of the driver. HostGoMounts binds GOROOT read-only and the
// host's build cache read-write, and returns the environment for an
// offline `go build`.
package testenv
