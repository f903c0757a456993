//go:build !linux

// Package inroot reads files inside a container's root without ever leaving it. It needs Linux (openat2
// RESOLVE_IN_ROOT); elsewhere every call fails.
package inroot // import "github.com/compilerwatch/compilerwatch/internal/inroot"

import (
	"errors"
	"io/fs"
)

// Root is Linux only (openat2).
type Root struct{}

// Process is Linux only (/proc).
type Process struct{}

var (
	ErrNoProcess  = errors.New("no live process of the container")
	errNotOnLinux = errors.New("reading inside a container's root needs Linux")
)

func Open(string) (*Root, error)                           { return nil, errNotOnLinux }
func (*Root) Close() error                                 { return nil }
func (*Root) Identity() (uint32, uint64, error)            { return 0, 0, errNotOnLinux }
func (*Root) ReadDir(string, func(fs.DirEntry) bool) error { return errNotOnLinux }
func (*Root) Stat(string) (fs.FileMode, error)             { return 0, errNotOnLinux }
func (*Root) ReadFile(string, int64) ([]byte, error)       { return nil, errNotOnLinux }
func OpenProcRoot(string, []int, string) (*Root, error)    { return nil, errNotOnLinux }
func OpenProcess(string, int) (*Process, error)            { return nil, errNotOnLinux }
func (*Process) Close() error                              { return nil }
func (*Process) MountNS() (uint64, error)                  { return 0, errNotOnLinux }
func (*Process) Root() (*Root, error)                      { return nil, errNotOnLinux }
func (*Process) InContainer(string) bool                   { return false }
func Support() error                                       { return errNotOnLinux }
