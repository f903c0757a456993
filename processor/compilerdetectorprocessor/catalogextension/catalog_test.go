package catalogextension

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/catalogextension/internal/metadata"
)

func TestCatalogUnion(t *testing.T) {
	c := New()
	_, err := c.CandidateNames()
	require.ErrorIs(t, err, ErrNothingPublished)

	a, b := component.MustNewID("compiler_detector"), component.MustNewIDWithName("compiler_detector", "ci")
	c.Publish(a, []string{"gcc", "cc1"})
	c.Publish(b, []string{"mycc", "gcc"})
	got, err := c.CandidateNames()
	require.NoError(t, err)
	assert.Equal(t, []string{"cc1", "gcc", "mycc"}, got, "the union, sorted, without duplicates")

	c.Publish(b, []string{"zcc"})
	got, _ = c.CandidateNames()
	assert.Equal(t, []string{"cc1", "gcc", "zcc"}, got, "a processor's new catalog replaces its old one")

	c.Withdraw(a)
	c.Withdraw(b)
	_, err = c.CandidateNames()
	assert.ErrorIs(t, err, ErrNothingPublished)
}

func TestFactory(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	cfg := f.CreateDefaultConfig()
	require.NoError(t, componenttest.CheckConfigStruct(cfg))
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	_, ok := ext.(Publisher)
	assert.True(t, ok)
	require.NoError(t, ext.Shutdown(context.Background()))
}
