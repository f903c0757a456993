package ebpfexecreceiver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/event"
	"github.com/compilerwatch/compilerwatch/receiver/ebpfexecreceiver/internal/metadata"
)

// pipelineRecords are raw ring-buffer records of a busy node: mostly host
// and container processes that are not compilers, one build in a container
// (driver and stages), and now and then an argument with a secret.
func pipelineRecords() [][]byte {
	cgroups := []string{hostCgroup, dockerCgroup, podCgroup, "/init.scope"}
	bash := []event.Ancestor{{PID: 900, Comm: "bash"}, {PID: 800, Comm: "sshd"}, {PID: 1, Comm: "systemd"}, {PID: 0}}
	var out [][]byte
	for i := range 512 {
		ev := fullEvent()
		ev.PID, ev.ParentPID, ev.Truncated = uint32(10000+i), 900, 0
		ev.CgroupPath = cgroups[i%len(cgroups)]
		ev.Ancestors = bash[:3]
		switch i % 8 {
		case 0: // a compiler driver in a container
			ev.Comm, ev.Filename, ev.ExePath = "gcc", "/usr/bin/gcc", "/usr/bin/x86_64-linux-gnu-gcc-12"
			ev.Args = []string{"gcc", "-O2", "-g", "-Wall", "-c", fmt.Sprintf("src/file%d.c", i), "-o", fmt.Sprintf("obj/file%d.o", i)}
			ev.CgroupPath = dockerCgroup
		case 1: // its stage
			ev.Comm, ev.Filename, ev.ExePath = "cc1", "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1"
			ev.Args = []string{"/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", "-quiet", fmt.Sprintf("src/file%d.c", i), "-O2", "-o", "/tmp/ccX.s"}
			ev.Ancestors = append([]event.Ancestor{{PID: 9000, Comm: "gcc"}}, bash[:3]...)
			ev.CgroupPath = dockerCgroup
		case 2:
			ev.Comm, ev.Filename, ev.ExePath = "curl", "/usr/bin/curl", "/usr/bin/curl"
			ev.Args = []string{"curl", "-H", "Authorization: Bearer abcdef0123456789abcdef", "https://example.com/api"}
		default:
			ev.Comm, ev.Filename, ev.ExePath = "sed", "/bin/sed", "/usr/bin/sed"
			ev.Args = []string{"sed", "-n", "s/a/b/p", fmt.Sprintf("/var/log/app-%d.log", i)}
		}
		ev.Argc = uint32(len(ev.Args))
		out = append(out, event.Encode(&ev))
	}
	return out
}

// BenchmarkPipeline is the user-space path of one exec, from the raw ring
// record to the processor's output: decode, convert with redaction, then
// the compiler_detector processor in its default configuration, in batches
// of the receiver's default max_size. One op is one event, so ns/op and
// allocs/op compare directly with the 8 µs per event target.
func BenchmarkPipeline(b *testing.B) {
	ctx := context.Background()
	conv, err := newReceiverConverter(createDefaultConfig().(*Config), receivertest.NewNopSettings(metadata.Type))
	require.NoError(b, err)
	pf := compilerdetectorprocessor.NewFactory()
	proc, err := pf.CreateLogs(ctx, processortest.NewNopSettings(pf.Type()), pf.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(b, err)
	require.NoError(b, proc.Start(ctx, nil))
	b.Cleanup(func() { require.NoError(b, proc.Shutdown(ctx)) })

	raws := pipelineRecords()
	dec := event.NewDecoder()
	var ev event.Event
	offset := time.Now().UnixNano()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if err := dec.Decode(raws[i%len(raws)], offset, &ev); err != nil {
			b.Fatal(err)
		}
		conv.Append(&ev)
		if conv.Len() >= 512 {
			if err := proc.ConsumeLogs(ctx, conv.Take()); err != nil {
				b.Fatal(err)
			}
		}
		i++
	}
}
