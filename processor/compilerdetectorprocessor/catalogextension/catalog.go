// Package catalogextension is the compiler_catalog extension, the one place where the compiler catalog a
// compiler_detector processor resolved (the built-ins and compilers.entries) is shared with the components in
// front of it. A processor publishes its catalog's candidate names at Start (the collector starts extensions,
// then processors, then receivers); the ebpf_exec receiver with "prefilter: compilers" reads them at its own Start
// through an interface it defines, so that no user copies names into its configuration and neither component
// imports the other.
package catalogextension // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/catalogextension"

import (
	"context"
	"errors"
	"slices"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
)

// Publisher is what a compiler_detector processor finds in the host's extensions to publish its catalog to.
type Publisher interface {
	// Publish records the candidate names of processor id's catalog, replacing what id published before.
	Publish(id component.ID, names []string)
	// Withdraw forgets what processor id published.
	Withdraw(id component.ID)
}

// ErrNothingPublished is CandidateNames' error before any processor published its catalog.
var ErrNothingPublished = errors.New("no compiler_detector processor has published its catalog to the compiler_catalog " +
	"extension: put a compiler_detector in the receiver's pipeline")

// Catalog is the compiler_catalog extension. It is safe for concurrent use.
type Catalog struct {
	mu        sync.Mutex
	published map[component.ID][]string
}

var (
	_ extension.Extension = (*Catalog)(nil)
	_ Publisher           = (*Catalog)(nil)
)

// New returns an empty catalog.
func New() *Catalog { return &Catalog{published: map[component.ID][]string{}} }

func (*Catalog) Start(context.Context, component.Host) error { return nil }
func (*Catalog) Shutdown(context.Context) error              { return nil }

func (c *Catalog) Publish(id component.ID, names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.published[id] = slices.Clone(names)
}

func (c *Catalog) Withdraw(id component.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.published, id)
}

// CandidateNames is the union of the names every processor published, sorted: a filter in front of several
// processors passes what any of them can flag. ErrNothingPublished when none has.
func (c *Catalog) CandidateNames() ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.published) == 0 {
		return nil, ErrNothingPublished
	}
	var all []string
	for _, names := range c.published {
		all = append(all, names...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}
