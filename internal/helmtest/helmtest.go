// Package helmtest runs the pinned Helm on the compilerwatch chart for tests: `go run` of the served module,
// like ocb, so go.mod stays free of Helm and Go's build cache compiles it once per machine. Import it from
// _test.go files only.
package helmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Version is the Helm release the chart is checked with.
const Version = "v3.22.0"

// KubeVersion is the Kubernetes version charts are rendered for: the test cluster's kube-apiserver. A `go run`
// Helm carries no version stamp and would assume v1.20.
const KubeVersion = "1.37.2"

// Chart is the chart's directory relative to the repository root.
const Chart = "deploy/helm/compilerwatch"

// RepoRoot is the repository root: the nearest directory above the test's working directory (its package
// directory) that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if dir == filepath.Dir(dir) {
			t.Fatalf("helmtest: no go.mod above %s", wd)
		}
	}
}

// Run runs helm with args in the repository root, with Helm's home directories in a temp dir, and returns
// stdout. A failure fails t with helm's stderr.
func Run(t testing.TB, args ...string) []byte {
	t.Helper()
	out, stderr, err := run(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// RunErr is Run for an expected failure: it returns stderr and the error.
func RunErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	_, stderr, err := run(t, args...)
	return stderr, err
}

func run(t testing.TB, args ...string) ([]byte, string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command("go", append([]string{"run", "helm.sh/helm/v3/cmd/helm@" + Version}, args...)...)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"CGO_ENABLED=0",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.String(), err
}

// Template renders the chart as release `name` in namespace ns with --set values.
func Template(t testing.TB, name, ns string, set ...string) []byte {
	t.Helper()
	args := []string{"template", name, Chart, "--namespace", ns, "--kube-version", KubeVersion}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return Run(t, args...)
}
