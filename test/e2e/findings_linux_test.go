//go:build linux

package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compilerwatch/compilerwatch/internal/doccheck"
	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// promSeries is one series of a Prometheus text exposition.
type promSeries struct {
	name   string
	labels map[string]string
	value  float64
}

var promLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)`)
var promLabelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrapeSeries reads every series the collector's Prometheus endpoint serves, labels included.
func scrapeSeries(t *testing.T, addr string) []promSeries {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out []promSeries
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := promLine.FindStringSubmatch(sc.Text())
		if m == nil || strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		require.NoError(t, err, sc.Text())
		s := promSeries{name: m[1], labels: map[string]string{}, value: v}
		for _, p := range promLabelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	require.NoError(t, sc.Err())
	return out
}

// sum adds the series of name whose labels include want.
func sum(series []promSeries, name string, want map[string]string) float64 {
	var total float64
	for _, s := range series {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			match = match && s.labels[k] == v
		}
		if match {
			total += s.value
		}
	}
	return total
}

// TestDistributionFindingsVisible: the built distribution, with log_findings and the Prometheus reader the chart
// configures, after real findings in a runc container on an overlay root (gcc from the image, the same gcc copied in
// at runtime, and the presence scan): each finding is one line on the collector's stdout in the documented format,
// agreeing with the OTLP record (a parent path made to forge a field and a line is quoted and escaped), and is counted in the findings metrics the alerts of docs/alerts.md select, under
// the metric and label names the endpoint really serves. The namespace is set on the resource by contrib's resource
// processor ahead of compiler_detector, where the pod cache would set it in a cluster.
func TestDistributionFindingsVisible(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc", "busybox", "gcc")
	addr, logs := startOTLPSink(t)
	metrics := distro.FreePort(t)
	host, port, _ := strings.Cut(metrics, ":")
	ns := "cw-e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	c := distro.Start(t, fmt.Sprintf(`
receivers:
  ebpf_exec:
    batch: {flush_interval: 50ms}
processors:
  resource/ns:
    attributes:
      - {key: k8s.namespace.name, value: %s, action: insert}
  compiler_detector:
    only_flagged: true
    log_findings: true
    dedup: {window: 0}
  batch:
    timeout: 100ms
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
service:
  pipelines:
    logs: {receivers: [ebpf_exec], processors: [resource/ns, compiler_detector, batch], exporters: [otlp_grpc]}
  telemetry:
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: %s
                port: %s
`, ns, addr, host, port))

	gccPath, err := filepath.EvalSymlinks("/usr/bin/gcc")
	require.NoError(t, err)
	ctr := testenv.NewContainer(t, testenv.Options{
		Overlay: true,
		Mounts:  testenv.HostGCCMounts(t),
		Populate: func(root string) error {
			if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
				return err
			}
			return testenv.CopyFile(gccPath, filepath.Join(root, "usr/local/bin/gcc"), 0o755)
		},
	})
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	ctr.MustExec(t, "/usr/local/bin/gcc", "-DIMAGE_"+run, "--version")
	ctr.MustExec(t, "mkdir", "-p", "/usr/local/sbin")
	ctr.MustExec(t, "cp", "/usr/local/bin/gcc", "/usr/local/sbin/gcc")
	ctr.MustExec(t, "/usr/local/sbin/gcc", "-DRUNTIME_"+run, "--version")
	// A parent whose path would forge a field and a line if printed raw: a busybox shell at a hostile path.
	hostile := "/tmp/x ns=kube-system\nERROR def-000-krp forged"
	ctr.MustExec(t, "mkdir", "-p", hostile)
	ctr.MustExec(t, "cp", "/bin/busybox", hostile+"/busybox")
	ctr.MustExec(t, hostile+"/busybox", "sh", "-c", "/usr/local/bin/gcc -DHOSTILE_"+run+" --version; true")

	image := waitRecord(t, logs, "the image gcc", 30*time.Second, withArg("-DIMAGE_"+run))
	runtime := waitRecord(t, logs, "the runtime gcc", 30*time.Second, withArg("-DRUNTIME_"+run))
	forged := waitRecord(t, logs, "the gcc under a hostile parent", 30*time.Second, withArg("-DHOSTILE_"+run))
	require.Equal(t, hostile+"/busybox", forged.str("compilerwatch.parent.executable.path"))
	require.Equal(t, "image", image.str("compilerwatch.executable.origin"))
	require.Equal(t, "upper_layer", runtime.str("compilerwatch.executable.origin"))
	cid := ctr.ID()[:12]

	// The lines, on stdout (not stderr), as the OTLP records say. The parent is runc's init as the container sees
	// it, which may need quoting (a memfd copy of runc), so it is read back as the documented format says.
	// printed is how the line shows a value: bare when made of safe characters, else a JSON string (for the ASCII
	// values of this test, encoding/json writes the same escapes).
	printed := func(v string) string {
		if regexp.MustCompile(`^[A-Za-z0-9._/:@+,~%-]+$`).MatchString(v) && v != "-" {
			return v
		}
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(v))
		return strings.TrimSuffix(b.String(), "\n")
	}
	finding := func(sev string, r sinkRecord) string {
		return sev + " def-000-krp gcc ns=" + ns + " pod=- ctr=- image=- parent=" + printed(r.str("compilerwatch.parent.executable.path")) +
			" origin=" + r.str("compilerwatch.executable.origin") + " cid=" + cid + "\n"
	}
	wantImage, wantRuntime, wantForged := finding("WARN", image), finding("ERROR", runtime), finding("WARN", forged)
	assert.Contains(t, wantForged, `parent="/tmp/x ns=kube-system\nERROR def-000-krp forged/busybox" origin=image`)
	presence := regexp.MustCompile(`(?m)^WARN def-000-krp present=[a-z0-9+,._-]*\bgcc\b[a-z0-9+,._-]* ns=` + ns + ` pod=- ctr=- image=- cid=` + cid + `$`)
	require.Eventually(t, func() bool {
		out := c.Stdout.String()
		return strings.Contains(out, wantImage) && strings.Contains(out, wantRuntime) && strings.Contains(out, wantForged) &&
			presence.MatchString(out)
	}, 30*time.Second, 100*time.Millisecond, "the four lines on stdout:\n%s", c.Stdout.String())
	for _, want := range []string{wantImage, wantRuntime, wantForged} {
		assert.Equal(t, 1, strings.Count(c.Stdout.String(), want), "one line per finding: %s", want)
	}
	assert.NotContains(t, c.Stdout.String(), "\nERROR def-000-krp forged", "no forged line")
	for _, l := range strings.Split(strings.TrimSuffix(c.Stdout.String(), "\n"), "\n") {
		assert.Regexp(t, `^(WARN|ERROR) def-000-krp `, l, "stdout holds only finding lines")
	}

	t.Logf("stdout:\n%s", c.Stdout.String())

	// The metrics, by the names the alerts use.
	series := scrapeSeries(t, metrics)
	for _, s := range series {
		if strings.Contains(s.name, "findings") && s.labels["k8s_namespace_name"] == ns {
			t.Logf("%s %v %v", s.name, s.labels, s.value)
		}
	}
	const findings, present = "otelcol_processor_compiler_detector_findings", "otelcol_processor_compiler_detector_presence_findings"
	assert.Equal(t, 2.0, sum(series, findings, map[string]string{"k8s_namespace_name": ns, "compilerwatch_compiler_name": "gcc",
		"severity": "WARN", "compilerwatch_compiler_installed_at_runtime": "false"}), "the image gcc, twice")
	assert.Equal(t, 1.0, sum(series, findings, map[string]string{"k8s_namespace_name": ns, "compilerwatch_compiler_name": "gcc",
		"severity": "ERROR", "compilerwatch_compiler_installed_at_runtime": "true"}), "the runtime gcc")
	assert.GreaterOrEqual(t, sum(series, present, map[string]string{"k8s_namespace_name": ns, "compilerwatch_compiler_name": "gcc"}), 1.0)

	// Every finding line printed is one count: the collector sees the whole node, so other tests' compilers may add
	// to both, but never to one alone. Read until two scrapes around the read of stdout agree.
	lines := func() (execs float64) {
		for _, l := range strings.Split(c.Stdout.String(), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && !strings.HasPrefix(f[2], "present=") {
				execs++
			}
		}
		return execs
	}
	for attempt := 0; ; attempt++ {
		before := scrapeSeries(t, metrics)
		execs := lines()
		after := scrapeSeries(t, metrics)
		if sum(before, findings, nil) == sum(after, findings, nil) || attempt == 10 {
			assert.Equal(t, execs, sum(after, findings, nil), "finding lines on stdout vs the findings counter")
			assert.Equal(t, sum(after, findings, nil), sum(after, "otelcol_processor_compiler_detector_flagged_records", nil),
				"findings sum to flagged_records")
			break
		}
	}

	// The alerts of docs/alerts.md: their metrics and labels are what the endpoint serves, and the values they match
	// occur.
	labels := map[string]map[string]map[string]bool{}
	for _, s := range scrapeSeries(t, metrics) {
		if labels[s.name] == nil {
			labels[s.name] = map[string]map[string]bool{}
		}
		for k, v := range s.labels {
			if labels[s.name][k] == nil {
				labels[s.name][k] = map[string]bool{}
			}
			labels[s.name][k][v] = true
		}
	}
	queries := doccheck.Queries(doccheck.Blocks(t, filepath.Join(distro.RepoRoot(t), "docs", "alerts.md"), "promql"))
	require.NotEmpty(t, queries)
	for _, q := range queries {
		p := doccheck.ParsePromQL(q.Text)
		for _, name := range p.Metrics {
			ls, ok := labels[name]
			if !assert.True(t, ok, "alert %q: the endpoint serves no %s", q.Comment, name) {
				continue
			}
			for _, l := range p.Grouping {
				assert.Contains(t, ls, l, "alert %q: %s has no label %s", q.Comment, name, l)
			}
			for l, values := range p.Matchers {
				for _, v := range values {
					assert.True(t, ls[l][v], "alert %q: %s{%s=%q} is not served", q.Comment, name, l, v)
				}
			}
		}
	}
	c.Stop(t)
}
