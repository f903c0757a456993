package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	nodeNameEnv      = "K8S_NODE_NAME"
	serviceHostEnv   = "KUBERNETES_SERVICE_HOST"
	servicePortEnv   = "KUBERNETES_SERVICE_PORT"
	serviceTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token" //nolint:gosec // a path, not a credential
	serviceCAPath    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	userAgent        = "compilerwatch-compiler-detector"
)

// errDisabled means Kubernetes is off; New maps it to (nil, nil).
var errDisabled = errors.New("kubernetes disabled")

// environment is what client construction reads from the process, injectable so tests do not depend on the host.
type environment struct {
	lookupEnv func(string) (string, bool)
	tokenPath string
	caPath    string
}

func defaultEnvironment() environment {
	return environment{lookupEnv: os.LookupEnv, tokenPath: serviceTokenPath, caPath: serviceCAPath}
}

func (e environment) getenv(key string) string {
	v, _ := e.lookupEnv(key)
	return v
}

// inCluster reports whether this is a pod with a service account: the API server's address in the environment
// and a token mounted.
func (e environment) inCluster() bool {
	if e.getenv(serviceHostEnv) == "" {
		return false
	}
	_, err := os.Stat(e.tokenPath)
	return err == nil
}

// apiServerHost is the in-cluster API server's URL, from the environment the kubelet sets in every pod.
func (e environment) apiServerHost() (string, error) {
	host, port := e.getenv(serviceHostEnv), e.getenv(servicePortEnv)
	if host == "" || port == "" {
		return "", errors.New(serviceHostEnv + " and " + servicePortEnv + " must be set (they are in every pod)")
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

// restConfig decides whether Kubernetes is on and returns the client configuration. errDisabled means "off, say
// nothing": auto outside a cluster, or false.
func restConfig(cfg *Config, env environment) (*rest.Config, error) {
	mode := cfg.Enabled
	if mode == "" {
		mode = ModeAuto
	}
	if mode == ModeFalse {
		return nil, errDisabled
	}
	switch {
	case cfg.AuthType == AuthTypeKubeConfig || cfg.Kubeconfig != "" || cfg.Context != "":
		// An explicit kubeconfig (auth type, path or context) is a request to use it, in auto mode too.
		return kubeconfig(cfg, true)
	case cfg.AuthType == AuthTypeServiceAccount || (cfg.AuthType == "" && env.inCluster()):
		if !env.inCluster() {
			if mode == ModeAuto {
				return nil, errDisabled
			}
			return nil, fmt.Errorf(`kubernetes: "kubernetes.auth_type" is serviceAccount but this is not a pod with a `+
				`service account (%s unset or no token at %s)`, serviceHostEnv, env.tokenPath)
		}
		return serviceAccount(env)
	case cfg.AuthType == AuthTypeNone || cfg.AuthType == AuthTypeTLS:
		if env.getenv(serviceHostEnv) == "" && mode == ModeAuto {
			return nil, errDisabled
		}
		return inClusterHost(cfg, env)
	case mode == ModeAuto:
		return nil, errDisabled
	}
	// enabled: true outside a cluster without an explicit kubeconfig: the usual KUBECONFIG / ~/.kube/config lookup.
	return kubeconfig(cfg, false)
}

// kubeconfig loads kubernetes.kubeconfig, or $KUBECONFIG / ~/.kube/config, with kubernetes.context.
func kubeconfig(cfg *Config, explicit bool) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = cfg.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	switch {
	case err == nil:
		return rc, nil
	case cfg.Kubeconfig != "":
		return nil, fmt.Errorf(`kubernetes: cannot load "kubernetes.kubeconfig" %q: %w`, cfg.Kubeconfig, err)
	case clientcmd.IsEmptyConfig(err) && !explicit:
		return nil, errors.New(`kubernetes: "kubernetes.enabled" is true but this is not a pod with a service ` +
			`account and no kubeconfig was found; set "kubernetes.kubeconfig" or "kubernetes.enabled: auto"`)
	case clientcmd.IsEmptyConfig(err):
		return nil, errors.New(`kubernetes: no kubeconfig found ($KUBECONFIG, ~/.kube/config); set "kubernetes.kubeconfig"`)
	default:
		return nil, fmt.Errorf("kubernetes: loading kubeconfig: %w", err)
	}
}

// serviceAccount is client-go's in-cluster configuration, with the token and CA paths of env. The token file is
// re-read as the kubelet rotates it.
func serviceAccount(env environment) (*rest.Config, error) {
	host, err := env.apiServerHost()
	if err != nil {
		return nil, fmt.Errorf("kubernetes: in-cluster configuration: %w", err)
	}
	if _, err := os.Stat(env.caPath); err != nil {
		return nil, fmt.Errorf("kubernetes: in-cluster configuration: the service account's CA: %w", err)
	}
	return &rest.Config{Host: host, BearerTokenFile: env.tokenPath, TLSClientConfig: rest.TLSClientConfig{CAFile: env.caPath}}, nil
}

// inClusterHost is auth_type none or tls: the in-cluster API server, verified with ca_file or the service
// account's CA (never unverified: a pod on the network could otherwise answer for it and hand out any pod's
// metadata), with the client certificate for tls and no credentials for none.
func inClusterHost(cfg *Config, env environment) (*rest.Config, error) {
	host, err := env.apiServerHost()
	if err != nil {
		return nil, fmt.Errorf("kubernetes: auth_type %s: %w", cfg.AuthType, err)
	}
	ca := cfg.CAFile
	if ca == "" {
		ca = env.caPath
	}
	if _, err := os.Stat(ca); err != nil {
		return nil, fmt.Errorf(`kubernetes: auth_type %s verifies the API server with "kubernetes.ca_file" or the `+
			`service account's CA: %w`, cfg.AuthType, err)
	}
	rc := &rest.Config{Host: host, TLSClientConfig: rest.TLSClientConfig{CAFile: ca}}
	if cfg.AuthType == AuthTypeTLS {
		rc.CertFile, rc.KeyFile = cfg.CertFile, cfg.KeyFile
	}
	return rc, nil
}

// newAPI builds the API client with a transport that reports reachability to h.
func newAPI(rc *rest.Config, h *health) (API, error) {
	rc = rest.CopyConfig(rc)
	rc.UserAgent = userAgent
	// client-go's default (5 QPS, burst 10) would spread owner GETs for a full node (110 pods after a restart)
	// over 20s; the kubelet itself uses 50/100.
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 20, 50
	}
	// Protobuf halves list and watch payloads for pods; the transform sanitizes strings to UTF-8 afterwards.
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.Wrap(func(next http.RoundTripper) http.RoundTripper { return &roundTripper{next: next, health: h} })
	return newRESTAPI(rc)
}
