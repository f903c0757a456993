package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/confmap"
)

// Mode is the value of kubernetes.enabled.
type Mode string

const (
	// ModeAuto turns the cache on inside a cluster (service account present) and leaves it silently off outside.
	ModeAuto Mode = "auto"
	// ModeTrue requires the cache: missing credentials (not a pod with a service account, no kubeconfig) or a
	// kubeconfig that does not load are Start errors. An API server that is unreachable or refuses the requests is
	// not: capture starts without Kubernetes attributes and the cache retries in the background.
	ModeTrue Mode = "true"
	// ModeFalse turns the cache off.
	ModeFalse Mode = "false"
)

// UnmarshalScalar accepts YAML booleans as well as strings, so `enabled: true` (a YAML bool) and `enabled: "true"`
// mean the same; confmap decodes without weak typing and would otherwise refuse a bool for a string type.
func (m *Mode) UnmarshalScalar(v confmap.ScalarValue) error {
	switch raw := v.GetRaw().(type) {
	case bool:
		*m = Mode(strconv.FormatBool(raw))
	case string:
		*m = Mode(strings.ToLower(strings.TrimSpace(raw)))
	case nil:
		*m = ""
	default:
		return fmt.Errorf("expected auto, true or false, got %v", raw)
	}
	return nil
}

// Config is the `kubernetes` section of the compiler_detector processor.
type Config struct {
	// Enabled is auto (default), true or false.
	Enabled Mode `mapstructure:"enabled"`
	// Kubeconfig is an optional kubeconfig path for running outside the cluster. Setting it in auto mode turns the
	// cache on: an explicit kubeconfig is a request to use it.
	Kubeconfig string `mapstructure:"kubeconfig"`
	// NodeName is the node whose pods are cached; empty means the K8S_NODE_NAME environment variable.
	NodeName string `mapstructure:"node_name"`
	// WaitForMetadata is the processor's hold setting, declared here only because it sits in this section of the
	// configuration: the hold (internal/hold) owns its default, its bound and its use. This package never reads it.
	WaitForMetadata time.Duration `mapstructure:"wait_for_metadata"`
	// PodLabels are label keys copied as k8s.pod.label.<key>; ["*"] copies all.
	PodLabels []string `mapstructure:"pod_labels"`
	// PodAnnotations are annotation keys copied as k8s.pod.annotation.<key>; ["*"] copies all.
	PodAnnotations []string `mapstructure:"pod_annotations"`
}

// DefaultConfig returns the documented defaults of the settings this package reads.
func DefaultConfig() Config {
	return Config{Enabled: ModeAuto}
}

// Validate checks the section without touching the environment or the network.
func (c *Config) Validate() error {
	switch c.Enabled {
	case ModeAuto, ModeTrue, ModeFalse:
	default:
		return fmt.Errorf(`"kubernetes.enabled" must be auto, true or false, got %q`, c.Enabled)
	}
	if err := validateKeys("kubernetes.pod_labels", c.PodLabels); err != nil {
		return err
	}
	return validateKeys("kubernetes.pod_annotations", c.PodAnnotations)
}

func validateKeys(field string, keys []string) error {
	for _, k := range keys {
		if k == "" {
			return fmt.Errorf("%q must not contain an empty key", field)
		}
		if k == "*" && len(keys) > 1 {
			return fmt.Errorf(`%q: "*" selects every key and must be the only entry`, field)
		}
	}
	return nil
}
