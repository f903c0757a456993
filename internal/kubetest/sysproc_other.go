//go:build !linux

package kubetest

import "syscall"

// childAttr: elsewhere there is no parent-death signal; cleanups stop the
// processes by PID.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
