//go:build linux

package kubetest

import "syscall"

// childAttr makes etcd and kube-apiserver die with the test binary even if
// it is killed before its cleanups run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
