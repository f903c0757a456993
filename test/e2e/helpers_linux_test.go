//go:build linux

package e2e_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/compilerwatch/compilerwatch/internal/testenv"
	"github.com/compilerwatch/compilerwatch/test/internal/distro"
)

// otlpSink is the OTLP gRPC backend the distribution exports to. It can be
// stopped and started again on the same address, as a backend outage.
type otlpSink struct {
	addr string
	logs *consumertest.LogsSink
	rcv  receiver.Logs
}

func newOTLPSink(t *testing.T) *otlpSink {
	t.Helper()
	s := &otlpSink{logs: new(consumertest.LogsSink)}
	// A free port is picked, released, then bound: a test binary running in parallel can take it in between,
	// so a first start that finds it taken is retried on another port.
	for attempt := 1; ; attempt++ {
		s.addr = distro.FreePort(t)
		err := s.tryStart()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("starting the OTLP sink on %s: %v", s.addr, err)
		}
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// start (re)starts the sink on its address, as a backend coming back does.
func (s *otlpSink) start(t *testing.T) {
	t.Helper()
	require.NoError(t, s.tryStart())
}

func (s *otlpSink) tryStart() error {
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	cm := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{"grpc": map[string]any{"endpoint": s.addr}}})
	if err := cm.Unmarshal(cfg); err != nil {
		return err
	}
	rcv, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, s.logs)
	if err != nil {
		return err
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		return err
	}
	s.rcv = rcv
	return nil
}

func (s *otlpSink) stop(t *testing.T) {
	t.Helper()
	if s.rcv != nil {
		require.NoError(t, s.rcv.Shutdown(context.Background()))
		s.rcv = nil
	}
}

// sinkRecord is one received log record with its resource, flattened.
type sinkRecord struct {
	res   map[string]any
	attrs map[string]any
	body  string
	rec   plog.LogRecord
}

func (r sinkRecord) str(k string) string { s, _ := r.attrs[k].(string); return s }
func (r sinkRecord) num(k string) int64  { n, _ := r.attrs[k].(int64); return n }
func (r sinkRecord) strs(k string) []string {
	raw, _ := r.attrs[k].([]any)
	out := make([]string, len(raw))
	for i, a := range raw {
		out[i], _ = a.(string)
	}
	return out
}

func sinkRecords(logs []plog.Logs) []sinkRecord {
	var out []sinkRecord
	for _, r := range testenv.Records(logs) {
		out = append(out, sinkRecord{res: r.Resource, attrs: r.Attrs, body: r.Log.Body().AsString(), rec: r.Log})
	}
	return out
}

// waitRecord polls the sink until a record matches.
func waitRecord(t *testing.T, sink *consumertest.LogsSink, what string, timeout time.Duration, match func(sinkRecord) bool) sinkRecord {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range sinkRecords(sink.AllLogs()) {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record for %s at the OTLP sink within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// withArg matches records whose process.command_args contain arg.
func withArg(arg string) func(sinkRecord) bool {
	return func(r sinkRecord) bool {
		for _, a := range r.strs("process.command_args") {
			if a == arg {
				return true
			}
		}
		return false
	}
}

// invalidUTF8 returns a description of every string in ld (resource, scope,
// body and attributes, nested) that is not valid UTF-8.
func invalidUTF8(ld plog.Logs) []string {
	var bad []string
	var value func(path string, v pcommon.Value)
	attrs := func(path string, m pcommon.Map) {
		m.Range(func(k string, v pcommon.Value) bool {
			if !utf8.ValidString(k) {
				bad = append(bad, fmt.Sprintf("%s key %q", path, k))
			}
			value(path+"."+k, v)
			return true
		})
	}
	value = func(path string, v pcommon.Value) {
		switch v.Type() {
		case pcommon.ValueTypeStr:
			if !utf8.ValidString(v.Str()) {
				bad = append(bad, fmt.Sprintf("%s = %q", path, v.Str()))
			}
		case pcommon.ValueTypeSlice:
			for i := 0; i < v.Slice().Len(); i++ {
				value(fmt.Sprintf("%s[%d]", path, i), v.Slice().At(i))
			}
		case pcommon.ValueTypeMap:
			attrs(path, v.Map())
		}
	}
	check := func(path, s string) {
		if !utf8.ValidString(s) {
			bad = append(bad, fmt.Sprintf("%s = %q", path, s))
		}
	}
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		check("resource.schema_url", rl.SchemaUrl())
		attrs("resource", rl.Resource().Attributes())
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			sl := rl.ScopeLogs().At(j)
			check("scope.name", sl.Scope().Name())
			check("scope.version", sl.Scope().Version())
			for k := 0; k < sl.LogRecords().Len(); k++ {
				lr := sl.LogRecords().At(k)
				check("event_name", lr.EventName())
				check("severity_text", lr.SeverityText())
				value("body", lr.Body())
				attrs("attributes", lr.Attributes())
			}
		}
	}
	return bad
}

// promConfig is the service::telemetry::metrics section that serves the
// collector's internal metrics on addr, named as the default reader names
// them (no type or unit suffix).
func promConfig(addr string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf(`
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: %s
                port: %s
                without_scope_info: true
                without_units: true
                without_type_suffix: true`, host, port)
}

// scrapeMetrics reads the collector's Prometheus endpoint and sums each
// metric over its label sets. A "_total" suffix is dropped, so names are
// the instrument names whatever the exporter's suffix settings.
func scrapeMetrics(addr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			_, rest, ok = strings.Cut(line[strings.LastIndexByte(line, '}'):], " ")
		}
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[strings.TrimSuffix(name, "_total")] += v
	}
	return out, sc.Err()
}

// metricsWhenReady scrapes until the endpoint answers.
func metricsWhenReady(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	var lastErr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		m, err := scrapeMetrics(addr)
		if err == nil {
			return m
		}
		lastErr = err
	}
	t.Fatalf("the collector's metrics endpoint %s did not answer: %v", addr, lastErr)
	return nil
}

// rssBytes is VmRSS of a process.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib << 10, err
		}
	}
	return 0, errors.New("no VmRSS line")
}

// bpfObjects are the ids of the BPF objects a process holds file
// descriptors for, read from /proc/<pid>/fdinfo.
type bpfObjects struct {
	progs, maps, links []uint32
}

func bpfObjectsOf(pid int) (bpfObjects, error) {
	var o bpfObjects
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return o, err
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		var key string
		var dst *[]uint32
		switch target {
		case "anon_inode:bpf-prog":
			key, dst = "prog_id:", &o.progs
		case "anon_inode:bpf-map":
			key, dst = "map_id:", &o.maps
		case "anon_inode:bpf_link":
			key, dst = "link_id:", &o.links
		default:
			continue
		}
		if id, ok := fdinfoField(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()), key); ok {
			*dst = append(*dst, id)
		}
	}
	return o, nil
}

func fdinfoField(path, key string) (uint32, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			return uint32(n), err == nil
		}
	}
	return 0, false
}

// stillLoaded returns the objects of o the kernel still has. The kernel frees
// BPF objects after an RCU grace period, so callers poll.
func stillLoaded(o bpfObjects) []string {
	var left []string
	for _, id := range o.progs {
		if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
			_ = p.Close()
			left = append(left, fmt.Sprintf("program %d", id))
		}
	}
	for _, id := range o.maps {
		if m, err := ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
			_ = m.Close()
			left = append(left, fmt.Sprintf("map %d", id))
		}
	}
	for _, id := range o.links {
		if l, err := link.NewFromID(link.ID(id)); err == nil {
			_ = l.Close()
			left = append(left, fmt.Sprintf("link %d", id))
		}
	}
	return left
}

// execProgramNames are the receiver's two BPF programs: the direct one (6.2+)
// and the portable fallback.
var execProgramNames = []string{"handle_exec_btf", "handle_exec"}

func isExecProgram(name string) bool { return slices.Contains(execProgramNames, name) }

// programsNamed lists the ids of every loaded BPF program with one of these names.
func programsNamed(names ...string) ([]uint32, error) {
	var ids []uint32
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return ids, nil
		}
		if err != nil {
			return ids, err
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // freed meanwhile
		}
		info, err := p.Info()
		_ = p.Close()
		if err == nil && slices.Contains(names, info.Name) {
			ids = append(ids, uint32(id))
		}
	}
}

// bpfProgramHolders maps each program id to the pids holding a descriptor
// of it or of a link to it, over every process.
func bpfProgramHolders() map[uint32][]int {
	out := map[uint32][]int{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdinfos, err := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", pid))
		if err != nil {
			continue
		}
		for _, fd := range fdinfos {
			if id, ok := fdinfoField(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()), "prog_id:"); ok {
				out[id] = append(out[id], pid)
			}
		}
	}
	return out
}

// logLines returns the lines of a collector log that contain s.
func logLines(log, s string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
