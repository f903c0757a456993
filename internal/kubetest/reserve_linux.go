//go:build linux

package kubetest

import (
	"fmt"
	"syscall"
)

// reservePort binds a TCP socket to a free loopback port without listening on it, and returns the port and a
// function that closes the socket. Until then no other process can bind the port, and a connection to it is
// refused, as it is to an API server that is down.
func reservePort() (int, func(), error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("reserving a port: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		_ = syscall.Close(fd)
		return 0, nil, fmt.Errorf("reserving a port: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return 0, nil, fmt.Errorf("reserving a port: %w", err)
	}
	return sa.(*syscall.SockaddrInet4).Port, func() { _ = syscall.Close(fd) }, nil
}
