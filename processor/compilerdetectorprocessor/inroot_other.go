//go:build !linux

package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"errors"
	"io/fs"
)

// inRoot is Linux only (openat2); elsewhere the presence scan is off.
type inRoot struct{}

var (
	errNoProcess  = errors.New("no live process of the container")
	errNotOnLinux = errors.New("the presence scan needs Linux")
)

func openInRoot(string) (*inRoot, error)                     { return nil, errNotOnLinux }
func (*inRoot) Close() error                                 { return nil }
func (*inRoot) readDir(string, func(fs.DirEntry) bool) error { return errNotOnLinux }
func (*inRoot) stat(string) (fs.FileMode, error)             { return 0, errNotOnLinux }
func (*inRoot) readFile(string, int64) ([]byte, error)       { return nil, errNotOnLinux }
func openProcRoot(string, []int, string) (*inRoot, error)    { return nil, errNotOnLinux }
func scanSupport() error                                     { return errNotOnLinux }
