package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	nodeNameEnv      = "K8S_NODE_NAME"
	serviceHostEnv   = "KUBERNETES_SERVICE_HOST"
	serviceTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token" //nolint:gosec // a path, not a credential
	userAgent        = "compilerwatch-compiler-detector"
)

// errDisabled means Kubernetes is off; New maps it to (nil, nil).
var errDisabled = errors.New("kubernetes disabled")

// environment is what client construction reads from the process, injectable so tests do not depend on the host.
type environment struct {
	lookupEnv func(string) (string, bool)
	tokenPath string
}

func defaultEnvironment() environment {
	return environment{lookupEnv: os.LookupEnv, tokenPath: serviceTokenPath}
}

func (e environment) inCluster() bool {
	if host, _ := e.lookupEnv(serviceHostEnv); host == "" {
		return false
	}
	_, err := os.Stat(e.tokenPath)
	return err == nil
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
	if cfg.Kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf(`kubernetes: cannot load "kubernetes.kubeconfig" %q: %w`, cfg.Kubeconfig, err)
		}
		return rc, nil
	}
	if env.inCluster() {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: in-cluster configuration: %w", err)
		}
		return rc, nil
	}
	if mode == ModeAuto {
		return nil, errDisabled
	}
	// enabled: true outside a cluster without an explicit path: the usual KUBECONFIG / ~/.kube/config lookup.
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New(`kubernetes: "kubernetes.enabled" is true but this is not a pod with a service ` +
				`account and no kubeconfig was found; set "kubernetes.kubeconfig" or "kubernetes.enabled: auto"`)
		}
		return nil, fmt.Errorf("kubernetes: loading kubeconfig: %w", err)
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
