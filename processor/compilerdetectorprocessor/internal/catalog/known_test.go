package catalog

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKnownProcs(t *testing.T) {
	k := NewKnown()
	k.Add("c1", 10, "/memfd:gcc (deleted)", trustDriver)
	assert.Equal(t, trustDriver, k.Trust("c1", 10, "gcc"), "memfd and deleted decorations are the same file")
	assert.Zero(t, k.Trust("c1", 10, "x"), "the pid now executes something else")
	assert.Zero(t, k.Trust("c2", 10, "gcc"), "another container's pid")
	assert.Zero(t, k.Trust("c1", 11, "gcc"))
	k.Add("c1", 10, "gcc", trustGo)
	assert.Equal(t, trustDriver|trustGo, k.Trust("c1", 10, "gcc"))
	k.Add("c1", 10, "go", trustGo)
	assert.Equal(t, trustGo, k.Trust("c1", 10, "go"), "a new exec of the pid replaces it")
	k.Add("c1", 12, "", trustDriver)
	k.Add("c1", 13, "gcc", 0)
	assert.Equal(t, 1, k.len(), "nothing is remembered without a name or a trust")

	for i := range maxKnownCompilers + 100 {
		k.Add("c3", uint32(1000+i), "gcc", trustDriver)
	}
	assert.Equal(t, maxKnownCompilers, k.len(), "bounded")
	assert.Zero(t, k.Trust("c3", 1000, "gcc"), "the oldest are forgotten first")
	assert.Equal(t, trustDriver, k.Trust("c3", uint32(1000+maxKnownCompilers+99), "gcc"))
}

// A stage is suppressed only under an ancestor whose own exec the processor reported, identified by pid and
// kernel executable name.
