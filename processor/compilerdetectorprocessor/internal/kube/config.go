package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"errors"
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
	case Mode:
		// A configuration marshalled by confmap and read back keeps the typed value.
		*m = Mode(strings.ToLower(strings.TrimSpace(string(raw))))
	case nil:
		*m = ""
	default:
		return fmt.Errorf("expected auto, true or false, got %v", raw)
	}
	return nil
}

// AuthType is kubernetes.auth_type, spelled as contrib's k8sattributesprocessor spells it.
type AuthType string

const (
	// AuthTypeServiceAccount is the pod's service account: token and CA from the service account directory, the API
	// server from KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.
	AuthTypeServiceAccount AuthType = "serviceAccount"
	// AuthTypeKubeConfig is a kubeconfig: kubernetes.kubeconfig, else $KUBECONFIG or ~/.kube/config, with
	// kubernetes.context overriding its current context.
	AuthTypeKubeConfig AuthType = "kubeConfig"
	// AuthTypeNone sends no credentials to the in-cluster API server, which is still verified with ca_file or the
	// service account's CA.
	AuthTypeNone AuthType = "none"
	// AuthTypeTLS authenticates to the in-cluster API server with the client certificate cert_file and key_file.
	AuthTypeTLS AuthType = "tls"
)

// Filter is kubernetes.filter: contrib's spelling of the node selection.
type Filter struct {
	// NodeFromEnvVar names the environment variable holding the node name (node_name's other spelling).
	NodeFromEnvVar string `mapstructure:"node_from_env_var"`
}

// WaitForMetadata is kubernetes.wait_for_metadata, which has two spellings with two meanings:
//
//   - a duration (compilerwatch's): how long a record whose pod is known but whose container is not yet in the
//     pod's status is held for it. The hold (the processor's internal/hold) owns its default, bound and use.
//   - a boolean (contrib's k8sattributesprocessor): true makes Start wait, up to wait_for_metadata_timeout, for the
//     pod cache's first sync, and fail when it has not synced by then. The hold keeps its default.
type WaitForMetadata struct {
	// Hold is the duration spelling's value, or the hold's default.
	// The fields are set by UnmarshalScalar, never decoded as keys.
	Hold time.Duration `mapstructure:"-"`
	// AtStart is the boolean spelling's value.
	AtStart bool `mapstructure:"-"`
	// IsBool records which spelling was written.
	IsBool bool `mapstructure:"-"`
}

// UnmarshalScalar accepts a YAML bool (or "true"/"false"), a duration string, or an integer (nanoseconds, so that
// `0` keeps meaning "never hold").
func (w *WaitForMetadata) UnmarshalScalar(v confmap.ScalarValue) error {
	switch raw := v.GetRaw().(type) {
	case bool:
		w.AtStart, w.IsBool = raw, true
	case string:
		s := strings.TrimSpace(raw)
		if b, err := strconv.ParseBool(s); err == nil && (s == "true" || s == "false") {
			w.AtStart, w.IsBool = b, true
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("expected a duration (the hold, e.g. 5s) or true/false (wait at start), got %q", raw)
		}
		w.Hold, w.AtStart, w.IsBool = d, false, false
	case int:
		w.Hold, w.AtStart, w.IsBool = time.Duration(raw), false, false
	case int64:
		w.Hold, w.AtStart, w.IsBool = time.Duration(raw), false, false
	case uint64:
		w.Hold, w.AtStart, w.IsBool = time.Duration(raw), false, false //nolint:gosec // YAML integers fit
	case nil:
	default:
		return fmt.Errorf("expected a duration (the hold, e.g. 5s) or true/false (wait at start), got %v", raw)
	}
	return nil
}

// MarshalScalar writes the spelling that was read.
func (w WaitForMetadata) MarshalScalar(v confmap.ScalarValue) error {
	if w.IsBool {
		return v.Marshal(w.AtStart)
	}
	return v.Marshal(w.Hold.String())
}

// DefaultWaitForMetadataTimeout is contrib's default of wait_for_metadata_timeout.
const DefaultWaitForMetadataTimeout = 10 * time.Second

// MaxWaitForMetadataTimeout bounds wait_for_metadata_timeout: the collector's Start blocks that long.
const MaxWaitForMetadataTimeout = 5 * time.Minute

// Config is the `kubernetes` section of the compiler_detector processor. Where contrib's k8sattributesprocessor
// has a key with the same meaning (auth_type, context, filter.node_from_env_var, wait_for_metadata: true,
// wait_for_metadata_timeout), its spelling is accepted; setting both spellings of one setting is an error.
type Config struct {
	// Enabled is auto (default), true or false.
	Enabled Mode `mapstructure:"enabled"`
	// AuthType is how the API server is reached: serviceAccount, kubeConfig, none or tls. Empty: the pod's service
	// account inside a cluster, else (enabled: true, or kubeconfig set) a kubeconfig.
	AuthType AuthType `mapstructure:"auth_type"`
	// Kubeconfig is an optional kubeconfig path for running outside the cluster. Setting it in auto mode turns the
	// cache on: an explicit kubeconfig is a request to use it.
	Kubeconfig string `mapstructure:"kubeconfig"`
	// Context overrides the kubeconfig's current context.
	Context string `mapstructure:"context"`
	// CAFile verifies the API server for auth_type none and tls (default: the service account's ca.crt).
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are the client certificate of auth_type tls.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// NodeName is the node whose pods are cached; empty means the K8S_NODE_NAME environment variable.
	NodeName string `mapstructure:"node_name"`
	// Filter is contrib's spelling of the node: filter.node_from_env_var.
	Filter Filter `mapstructure:"filter"`
	// WaitForMetadata is the hold's duration or contrib's wait-at-start boolean.
	WaitForMetadata WaitForMetadata `mapstructure:"wait_for_metadata"`
	// WaitForMetadataTimeout bounds the wait at start of wait_for_metadata: true; 0 means 10s.
	WaitForMetadataTimeout time.Duration `mapstructure:"wait_for_metadata_timeout"`
	// PodLabels are label keys copied as k8s.pod.label.<key>; ["*"] copies all.
	PodLabels []string `mapstructure:"pod_labels"`
	// PodAnnotations are annotation keys copied as k8s.pod.annotation.<key>; ["*"] copies all.
	PodAnnotations []string `mapstructure:"pod_annotations"`
	// NamespaceLabels are the pod's namespace's label keys copied as k8s.namespace.label.<key>; ["*"] copies
	// all. Setting it or NamespaceAnnotations starts a namespace informer.
	NamespaceLabels []string `mapstructure:"namespace_labels"`
	// NamespaceAnnotations are annotation keys copied as k8s.namespace.annotation.<key>; ["*"] copies all.
	NamespaceAnnotations []string `mapstructure:"namespace_annotations"`
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
	if err := c.validateAuth(); err != nil {
		return err
	}
	if c.NodeName != "" && c.Filter.NodeFromEnvVar != "" {
		return errors.New(`"kubernetes.node_name" and "kubernetes.filter.node_from_env_var" are two spellings of ` +
			`the node: set one`)
	}
	if c.WaitForMetadataTimeout != 0 && !c.WaitForMetadata.IsBool {
		return errors.New(`"kubernetes.wait_for_metadata_timeout" bounds the wait at start of ` +
			`"kubernetes.wait_for_metadata: true"; with "kubernetes.wait_for_metadata" a duration (the hold) or unset ` +
			`it has no effect: set "wait_for_metadata: true" or remove the timeout`)
	}
	if c.WaitForMetadataTimeout < 0 || c.WaitForMetadataTimeout > MaxWaitForMetadataTimeout {
		return fmt.Errorf(`"kubernetes.wait_for_metadata_timeout" must be between 0s (10s) and %s, got %s`,
			MaxWaitForMetadataTimeout, c.WaitForMetadataTimeout)
	}
	for _, l := range []struct {
		field string
		keys  []string
	}{
		{"kubernetes.pod_labels", c.PodLabels},
		{"kubernetes.pod_annotations", c.PodAnnotations},
		{"kubernetes.namespace_labels", c.NamespaceLabels},
		{"kubernetes.namespace_annotations", c.NamespaceAnnotations},
	} {
		if err := validateKeys(l.field, l.keys); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateAuth() error {
	switch c.AuthType {
	case "", AuthTypeServiceAccount, AuthTypeKubeConfig, AuthTypeNone, AuthTypeTLS:
	default:
		return fmt.Errorf(`"kubernetes.auth_type" must be serviceAccount, kubeConfig, none or tls, got %q`, c.AuthType)
	}
	kubeconfigOnly := func(key, value string) error {
		if value != "" && c.AuthType != "" && c.AuthType != AuthTypeKubeConfig {
			return fmt.Errorf(`"kubernetes.%s" is a kubeconfig setting, but "kubernetes.auth_type" is %q: `+
				`use auth_type kubeConfig (or leave auth_type unset)`, key, c.AuthType)
		}
		return nil
	}
	if err := kubeconfigOnly("kubeconfig", c.Kubeconfig); err != nil {
		return err
	}
	if err := kubeconfigOnly("context", c.Context); err != nil {
		return err
	}
	if c.CAFile != "" && c.AuthType != AuthTypeNone && c.AuthType != AuthTypeTLS {
		return fmt.Errorf(`"kubernetes.ca_file" applies to auth_type none and tls only, but "kubernetes.auth_type" is %q`, c.AuthType)
	}
	if c.AuthType == AuthTypeTLS {
		if c.CertFile == "" || c.KeyFile == "" {
			return errors.New(`"kubernetes.auth_type" tls needs "kubernetes.cert_file" and "kubernetes.key_file"`)
		}
	} else if c.CertFile != "" || c.KeyFile != "" {
		return fmt.Errorf(`"kubernetes.cert_file" and "kubernetes.key_file" apply to auth_type tls only, but `+
			`"kubernetes.auth_type" is %q`, c.AuthType)
	}
	return nil
}

// namespaces reports whether namespace labels or annotations are configured, which needs the namespace informer.
func (c *Config) namespaces() bool {
	return len(c.NamespaceLabels) > 0 || len(c.NamespaceAnnotations) > 0
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
