package kube

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"k8s.io/klog/v2"
)

// TestKlogGoesToZap checks that a Cache built from configuration routes client-go's klog output (as the reflector
// writes it) to the collector's logger.
func TestKlogGoesToZap(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	t.Cleanup(klog.ClearLogger)
	kubeconfig := writeKubeconfig(t, "https://127.0.0.1:1")
	c, err := New(Config{Enabled: ModeTrue, Kubeconfig: kubeconfig, NodeName: testNode}, Settings{Logger: zap.New(core)})
	require.NoError(t, err)
	require.NotNil(t, c)

	klog.ErrorS(errors.New("connection refused"), "Failed to watch", "reflector", "pods")
	klog.InfoS("Waiting for caches to sync")
	klog.Flush()

	entries := logs.FilterLoggerName("client-go").All()
	require.Len(t, entries, 2, "both klog lines reach zap: %v", logs.All())
	assert.Equal(t, zapcore.ErrorLevel, entries[0].Level)
	assert.Equal(t, "Failed to watch", entries[0].Message)
	assert.Equal(t, "pods", entries[0].ContextMap()["reflector"])
	assert.Equal(t, "connection refused", entries[0].ContextMap()["error"])
	assert.Equal(t, zapcore.InfoLevel, entries[1].Level)
}
