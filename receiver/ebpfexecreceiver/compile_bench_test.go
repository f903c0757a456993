package ebpfexecreceiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/redact"
)

// The compile corpus: every exec of one `make -j2 -B` of the bench's C
// project, as the real probe captured it (TestRecordCompileCorpus re-records
// it). It is what a compile-heavy node sends: gcc drivers, cc1 and as with
// per-compile temporary file names, collect2 and ld with long argv.
const (
	compileCorpusFile = "testdata/compile_corpus.json"
	// corpusDir replaces the temporary build directory of the capture.
	corpusDir = "/src/project"
)

// corpusEpoch is the time of the corpus's first exec.
var corpusEpoch = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// compileCorpus returns the corpus, moved into cgroupPath unless it is "",
// which keeps the host cgroup of the capture.
func compileCorpus(tb testing.TB, cgroupPath string) []event.Event {
	tb.Helper()
	b, err := os.ReadFile(compileCorpusFile)
	require.NoError(tb, err)
	var evs []event.Event
	require.NoError(tb, json.Unmarshal(b, &evs))
	require.NotEmpty(tb, evs)
	if cgroupPath != "" {
		for i := range evs {
			evs[i].CgroupPath = cgroupPath
		}
	}
	return evs
}

// corpusRecords is the corpus as ring-buffer records, and their mean size.
func corpusRecords(tb testing.TB, cgroupPath string) (raws [][]byte, meanBytes int64) {
	tb.Helper()
	var total int
	for _, ev := range compileCorpus(tb, cgroupPath) {
		raw := event.Encode(&ev)
		raws = append(raws, raw)
		total += len(raw)
	}
	return raws, int64(total / len(raws))
}

// TestCompileCorpus checks that the corpus is what the benchmarks claim it
// is: a gcc build with its stages, and what it weighs per record.
func TestCompileCorpus(t *testing.T) {
	evs := compileCorpus(t, "")
	comms := map[string]int{}
	var argBytes, args int
	for _, ev := range evs {
		comms[ev.Comm]++
		for _, a := range ev.Args {
			argBytes += len(a) + 1
		}
		args += len(ev.Args)
	}
	for _, c := range []string{"cc", "cc1", "as", "collect2", "ld"} {
		require.Positive(t, comms[c], "no %s in the corpus", c)
	}
	require.Equal(t, comms["cc1"], comms["as"], "every compile runs cc1 then as")
	_, mean := corpusRecords(t, "")
	t.Logf("%d execs %v; %d args, %d argv bytes per exec; ring record %d bytes", len(evs), comms,
		args/len(evs), argBytes/len(evs), mean)
}

// Resources the corpus is replayed in: as captured on the host, and in a
// CI runner's container, where every compile is a finding.
var corpusPlaces = []struct{ name, cgroup string }{
	{"host", ""},
	{"container", podCgroup},
}

// BenchmarkCompileDecode is the decode of one ring record of the corpus.
func BenchmarkCompileDecode(b *testing.B) {
	raws, mean := corpusRecords(b, "")
	dec := event.NewDecoder()
	var ev event.Event
	b.SetBytes(mean)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := dec.Decode(raws[i%len(raws)], 0, &ev); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCompileRedact is the redaction of one argv of the corpus (no
// secret in it: the common case). Bytes are argv bytes.
func BenchmarkCompileRedact(b *testing.B) {
	evs := compileCorpus(b, "")
	r, err := redact.New(true, nil)
	require.NoError(b, err)
	var total int
	for _, ev := range evs {
		for _, a := range ev.Args {
			total += len(a) + 1
		}
	}
	b.SetBytes(int64(total / len(evs)))
	args := make([]string, 0, 64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		args = append(args[:0], evs[i%len(evs)].Args...)
		if r.Args(args) != 0 {
			b.Fatal("a secret in a compile's argv")
		}
		i++
	}
}

// BenchmarkCompileConvert is the conversion of one decoded exec to pdata,
// with redaction off and on, in batches of the default max_size.
func BenchmarkCompileConvert(b *testing.B) {
	for _, redactOn := range []bool{false, true} {
		name := "redaction_off"
		if redactOn {
			name = "redaction_on"
		}
		b.Run(name, func(b *testing.B) {
			evs := compileCorpus(b, podCgroup)
			c := newTestConverter(b, redactOn)
			args := make([]string, 0, 64)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := evs[i%len(evs)]
				ev.Args = append(args[:0], ev.Args...) // Append redacts in place
				c.Append(&ev)
				if c.Len() >= defaultBatchMaxSize {
					_ = c.Take()
				}
				i++
			}
		})
	}
}

// corpusProcessor is compiler_detector with its defaults changed by set.
func corpusProcessor(b *testing.B, set func(*compilerdetectorprocessor.Config)) processor.Logs {
	ctx := context.Background()
	pf := compilerdetectorprocessor.NewFactory()
	cfg := pf.CreateDefaultConfig().(*compilerdetectorprocessor.Config)
	cfg.ScanForCompilers = false // a background scan of a root the corpus's container does not have
	if set != nil {
		set(cfg)
	}
	proc, err := pf.CreateLogs(ctx, processortest.NewNopSettings(pf.Type()), cfg, consumertest.NewNop())
	require.NoError(b, err)
	require.NoError(b, proc.Start(ctx, componentHost{}))
	b.Cleanup(func() { require.NoError(b, proc.Shutdown(ctx)) })
	return proc
}

type componentHost struct{ component.Host }

// BenchmarkCompilePipeline is the user-space path of one exec of the corpus,
// ring record to the processor's output: decode, convert with redaction,
// compiler_detector, in batches of the receiver's default max_size. One op
// is one exec; bytes are ring-record bytes.
//
//   - full: the processor's defaults (every exec passes on, compilers in
//     containers flagged), the configuration of `make bench`;
//   - only_flagged: the shipped DaemonSet's processor (without its
//     Kubernetes metadata): only findings pass on.
//
// On the host nothing is flagged; in the container every compile is a
// finding, and all but the first of each key are deduplicated.
func BenchmarkCompilePipeline(b *testing.B) {
	for _, conf := range []struct {
		name string
		set  func(*compilerdetectorprocessor.Config)
	}{
		{"full", nil},
		{"only_flagged", func(c *compilerdetectorprocessor.Config) { c.OnlyFlagged = true }},
	} {
		for _, place := range corpusPlaces {
			b.Run(conf.name+"/"+place.name, func(b *testing.B) {
				ctx := context.Background()
				conv, err := newReceiverConverter(createDefaultConfig().(*Config), receivertest.NewNopSettings(metadata.Type))
				require.NoError(b, err)
				proc := corpusProcessor(b, conf.set)
				raws, mean := corpusRecords(b, place.cgroup)
				dec := event.NewDecoder()
				var ev event.Event
				offset := time.Now().UnixNano()
				b.SetBytes(mean)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := dec.Decode(raws[i%len(raws)], offset, &ev); err != nil {
						b.Fatal(err)
					}
					conv.Append(&ev)
					if conv.Len() >= defaultBatchMaxSize {
						if err := proc.ConsumeLogs(ctx, conv.Take()); err != nil {
							b.Fatal(err)
						}
					}
					i++
				}
			})
		}
	}
}

// BenchmarkCompileExport is what the otlp_grpc exporter does with a batch of
// the corpus's records (full export, in a container): marshal to protobuf,
// then gzip (its default compression). One op is one batch of the whole
// corpus; bytes are protobuf bytes before compression; ns/record divides.
func BenchmarkCompileExport(b *testing.B) {
	evs := compileCorpus(b, podCgroup)
	c := newTestConverter(b, true)
	for i := range evs {
		ev := evs[i]
		ev.Args = slices.Clone(ev.Args)
		c.Append(&ev)
	}
	ld := c.Take()
	n := ld.LogRecordCount()
	var m plog.ProtoMarshaler
	pb, err := m.MarshalLogs(ld)
	require.NoError(b, err)
	for _, level := range []struct {
		name string
		gzip bool
	}{{"marshal", false}, {"marshal_gzip", true}} {
		b.Run(level.name, func(b *testing.B) {
			var out bytes.Buffer
			zw := gzip.NewWriter(&out)
			b.SetBytes(int64(len(pb)))
			b.ReportAllocs()
			for b.Loop() {
				pb, err := m.MarshalLogs(ld)
				if err != nil {
					b.Fatal(err)
				}
				if level.gzip {
					out.Reset()
					zw.Reset(&out)
					_, _ = zw.Write(pb)
					_ = zw.Close()
				}
			}
			// Per record, not per batch.
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
			if level.gzip {
				b.ReportMetric(float64(out.Len())/float64(n), "gzip-B/record")
			}
			b.ReportMetric(float64(len(pb))/float64(n), "proto-B/record")
		})
	}
}
