//go:build !linux

package presence

import (
	"errors"
	"io/fs"
)

// Root is Linux only (openat2); elsewhere the presence scan is off.
type Root struct{}

var (
	ErrNoProcess  = errors.New("no live process of the container")
	errNotOnLinux = errors.New("the presence scan needs Linux")
)

func openInRoot(string) (*Root, error)                     { return nil, errNotOnLinux }
func (*Root) Close() error                                 { return nil }
func (*Root) readDir(string, func(fs.DirEntry) bool) error { return errNotOnLinux }
func (*Root) stat(string) (fs.FileMode, error)             { return 0, errNotOnLinux }
func (*Root) readFile(string, int64) ([]byte, error)       { return nil, errNotOnLinux }
func OpenProcRoot(string, []int, string) (*Root, error)    { return nil, errNotOnLinux }
func scanSupport() error                                   { return errNotOnLinux }
