package compilerdetectorprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
)

func TestStageNeedsAReportedAncestor(t *testing.T) {
	javaSrc := execRec{exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"Evil.java"}, anc: bashAnc, parent: "/usr/bin/bash"}
	renamed := execRec{exe: "/tmp/x", anc: []string{"50:java", "100:bash"}, ancExe: []string{"java"}, parent: javaSrc.exe}
	tests := []struct {
		name string
		recs map[int64]execRec
		want []string // flagged, by executable name
	}{
		{"driver seen", map[int64]execRec{50: recGCC, 51: under(recCC1, 50, recGCC)}, []string{"x86_64-linux-gnu-gcc-12"}},
		{"driver not seen", map[int64]execRec{51: under(recCC1, 50, recGCC)}, []string{"cc1"}},
		{"driver pid with another executable", map[int64]execRec{50: recGCC, 51: under(recCC1, 50, recSh)}, []string{"x86_64-linux-gnu-gcc-12", "cc1"}},
		{"a java source program vouches for no C stage", map[int64]execRec{
			50: javaSrc, 51: renamed,
			52: {exe: recCC1.exe, anc: []string{"51:x", "50:java", "100:bash"}, ancExe: []string{"x", "java"}, parent: "/tmp/x"},
		}, []string{"java", "cc1"}},
		{"a flagged stage vouches for its parent's next stage", map[int64]execRec{
			51: {exe: recCC1.exe, anc: []string{"50:x", "100:bash"}, ancExe: []string{"x"}, parent: "/tmp/x"},
			52: {exe: recAs.exe, file: "/usr/bin/as", anc: []string{"50:x", "100:bash"}, ancExe: []string{"x"}, parent: "/tmp/x"},
		}, []string{"cc1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Dedup.Window = 0
			h := newHarness(t, cfg, nil)
			ld := plog.NewLogs()
			sl := appendResource(ld, testContainer, nil)
			for pid := int64(50); pid < 60; pid++ {
				if r, ok := tt.recs[pid]; ok {
					appendExec(sl, pid, r)
				}
			}
			require.NoError(t, h.p.ConsumeLogs(context.Background(), ld))
			var got []string
			for _, lr := range flagged(h.sink.AllLogs()) {
				got = append(got, strAttr(lr.Attributes(), attr.ExecutableName))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
