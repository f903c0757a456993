package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/dedup"
)

// processResource is the one funnel every record goes through, synchronous or released from hold: match,
// exclude, dedup, flag, and drop what only_flagged does not keep. It reports whether the resource is left empty
// and goes.
//
// A compilerwatch.container.seen record (the receiver's "prefilter: compilers" sends one for a container's first
// exec that is no compiler's) starts the container's presence scan like any record, and is then dropped: it is
// not an exec.
func (p *compilerDetector) processResource(rl plog.ResourceLogs, now time.Time, st *stats) bool {
	res := rl.Resource().Attributes()
	if p.presence != nil {
		p.presence.Observe(rl.Resource(), rl)
	}
	inScope := !p.cfg.ContainersOnly || attr.Str(res, attr.ContainerID) != ""
	resExcluded := -1 // computed on the first match only
	seen := false
	rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
		sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
			if lr.EventName() == attr.EventContainerSeen {
				seen = true
				return true
			}
			flagged := inScope && p.processRecord(res, &resExcluded, lr, now, st)
			if !flagged && p.cfg.OnlyFlagged {
				st.dropped++
				return true
			}
			return false
		})
		return (p.cfg.OnlyFlagged || seen) && sl.LogRecords().Len() == 0
	})
	return (p.cfg.OnlyFlagged || seen) && rl.ScopeLogs().Len() == 0
}

// processRecord flags lr if it is a compiler execution that is neither excluded nor a duplicate.
func (p *compilerDetector) processRecord(res pcommon.Map, resExcluded *int, lr plog.LogRecord, now time.Time, st *stats) bool {
	attrs := lr.Attributes()
	v := catalog.ExecView{
		ExePath:      attr.Str(attrs, attr.ExecutablePath),
		ExeName:      attr.Str(attrs, attr.ExecutableName),
		Filename:     attr.Str(attrs, attr.ExecFilename),
		Argv0:        attr.Str(attrs, attr.Command),
		Comm:         attr.Str(attrs, attr.ExecComm),
		Args:         catalog.ListAttr(attrs, attr.CommandArgs),
		Ancestors:    catalog.ListAttr(attrs, attr.Ancestors),
		AncestorExes: catalog.ListAttr(attrs, attr.AncestorExeNames),
		Known:        p.known,
		Container:    attr.Str(res, attr.ContainerID),
	}
	v.ArgsTruncated = argsTruncated(attrs, v.Args)
	m, trust, ok := p.matcher.Classify(&v)
	if !ok {
		return false
	}
	// Remembered before exclusion and dedup: an excluded or repeated compiler still vouches for its stages.
	var pid int64
	pv, hasPID := attrs.Get(attr.ProcessPID)
	if hasPID = hasPID && pv.Type() == pcommon.ValueTypeInt; hasPID {
		pid = pv.Int()
	}
	p.known.Remember(&v, pid, hasPID, trust)
	if *resExcluded < 0 {
		*resExcluded = 0
		if p.exclude.ResourceExcluded(res) {
			*resExcluded = 1
		}
	}
	parentExe := attr.Str(attrs, attr.ParentExecutable)
	parentComm := attr.Str(attrs, attr.ParentCommand)
	if *resExcluded == 1 || p.exclude.ParentExcluded(parentExe, v.AncestorExes) {
		st.excluded++
		return false
	}

	// A stage caught without a driver ancestor stands for an unrecognised (renamed) driver, its parent: if that
	// was written at runtime, so was the compiler.
	runtime := attr.IsRuntimeOrigin(attr.Str(attrs, attr.ExecutableOrigin)) ||
		(m.Signal == catalog.MatchCompilerStage && attr.IsRuntimeOrigin(attr.Str(attrs, attr.ParentExecutableOrigin)))
	sev := plog.SeverityNumberWarn
	if runtime {
		sev = plog.SeverityNumberError
	}
	var carried int64
	if p.dedup != nil {
		keyParent := parentExe
		if keyParent == "" {
			keyParent = parentComm // the receiver could not read the parent's exe
		}
		obs := p.dedup.Observe(res, now, dedup.Finding{
			Compiler: m.Name, Language: m.Language, ParentExe: parentExe, KeyParent: keyParent, Executable: v.ExePath,
			Severity: sev, Runtime: runtime,
		})
		carried = obs.Carried
		if obs.Collapsed {
			st.collapsed++
		}
		st.evicted += int64(obs.Evicted)
		if obs.Summary != nil {
			st.evictedWindows = append(st.evictedWindows, obs.Summary)
		}
		if !obs.Flag {
			st.deduplicated++
			return false
		}
	}
	flagRecord(lr, m, sev, runtime, carried)
	p.report.finding(res, lr, m, runtime)
	st.flagged++
	return true
}

// argsTruncated reports whether the receiver captured less than the whole argv.
func argsTruncated(attrs pcommon.Map, args catalog.List) bool {
	if v, ok := attrs.Get(attr.ArgsCount); ok && v.Type() == pcommon.ValueTypeInt && v.Int() > int64(args.Len()) {
		return true
	}
	tr := catalog.ListAttr(attrs, attr.Truncated)
	for i, n := 0, tr.Len(); i < n; i++ {
		if tr.At(i) == "args" {
			return true
		}
	}
	return false
}

// flagRecord adds the finding to lr. Attributes are added only where absent; severity is only ever raised.
func flagRecord(lr plog.LogRecord, m catalog.Match, sev plog.SeverityNumber, runtime bool, carried int64) {
	if lr.SeverityNumber() < sev {
		lr.SetSeverityNumber(sev)
		lr.SetSeverityText(attr.SeverityText(sev))
	}
	attrs := lr.Attributes()
	attr.PutRule(attrs)
	attr.PutStrIfAbsent(attrs, attr.CompilerName, m.Name)
	attr.PutStrIfAbsent(attrs, attr.CompilerLanguage, m.Language)
	attr.PutStrIfAbsent(attrs, attr.CompilerMatch, m.Signal)
	if runtime {
		if _, ok := attrs.Get(attr.InstalledAtRuntime); !ok {
			attrs.PutBool(attr.InstalledAtRuntime, true)
		}
	}
	if carried > 0 {
		if _, ok := attrs.Get(attr.SuppressedCount); !ok {
			attrs.PutInt(attr.SuppressedCount, carried)
		}
	}
}
