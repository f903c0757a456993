// Package attr is the one place that names the attributes and events the compiler_detector processor reads and
// writes, and the values of the rule it reports. The names are defined here rather than shared with the receiver so
// the components stay independent; semconv constants are used where the name exists there.
package attr // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/attr"

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
)

// Attribute names.
const (
	// Resource attributes.
	HostName       = string(semconv.HostNameKey)
	ContainerID    = string(semconv.ContainerIDKey)
	ContainerImage = string(semconv.ContainerImageNameKey)
	// ContainerImageTags and K8sPodName are set by internal/kube with the other Kubernetes attributes.
	ContainerImageTags = string(semconv.ContainerImageTagsKey)
	K8sPodName         = string(semconv.K8SPodNameKey)
	K8sPodUID          = string(semconv.K8SPodUIDKey)
	K8sNamespace       = string(semconv.K8SNamespaceNameKey)
	// Prefixes of semconv's k8s.pod.label.<key> and k8s.pod.annotation.<key> (templates in semconv, so there are
	// no Key constants to use).
	K8sPodLabel      = "k8s.pod.label."
	K8sPodAnnotation = "k8s.pod.annotation."
	// Prefixes of semconv's k8s.namespace.label.<key> and k8s.namespace.annotation.<key>.
	K8sNamespaceLabel      = "k8s.namespace.label."
	K8sNamespaceAnnotation = "k8s.namespace.annotation."
	K8sContainerName       = string(semconv.K8SContainerNameKey)

	// Log record attributes written by the ebpf_exec receiver.
	ExecutablePath         = string(semconv.ProcessExecutablePathKey)
	ExecutableName         = string(semconv.ProcessExecutableNameKey)
	Command                = string(semconv.ProcessCommandKey)
	CommandArgs            = string(semconv.ProcessCommandArgsKey)
	ExecFilename           = "compilerwatch.exec.filename"
	ExecComm               = "compilerwatch.exec.comm"
	Ancestors              = "compilerwatch.ancestors"
	AncestorExeNames       = "compilerwatch.ancestors.executable.name"
	ArgsCount              = string(semconv.ProcessArgsCountKey)
	ParentExecutable       = "compilerwatch.parent.executable.path"
	ParentCommand          = "compilerwatch.parent.command"
	ExecutableOrigin       = "compilerwatch.executable.origin"
	ParentExecutableOrigin = "compilerwatch.parent.executable.origin"
	ProcessPID             = string(semconv.ProcessPIDKey)
	Truncated              = "compilerwatch.truncated"
	// Process context, which findings pass on: a controlling terminal, and descent from the container's first
	// process (false for an exec entered from outside, such as kubectl exec).
	Interactive = string(semconv.ProcessInteractiveKey)
	InInitTree  = "compilerwatch.process.in_init_tree"

	// Attributes this processor adds to a flagged record.
	RuleUUID        = string(semconv.SecurityRuleUUIDKey)
	RuleName        = string(semconv.SecurityRuleNameKey)
	RuleReference   = string(semconv.SecurityRuleReferenceKey)
	RuleCategory    = string(semconv.SecurityRuleCategoryKey)
	RuleRulesetName = string(semconv.SecurityRuleRulesetNameKey)
	RuleVersion     = string(semconv.SecurityRuleVersionKey)
	RuleDescription = string(semconv.SecurityRuleDescriptionKey)
	// ThreatTechniqueID is the MITRE ATT&CK technique (ECS threat.technique.id; semconv has no name for it).
	ThreatTechniqueID  = "compilerwatch.threat.technique.id"
	CompilerName       = "compilerwatch.compiler.name"
	CompilerLanguage   = "compilerwatch.compiler.language"
	CompilerMatch      = "compilerwatch.compiler.match"
	InstalledAtRuntime = "compilerwatch.compiler.installed_at_runtime"
	SuppressedCount    = "compilerwatch.dedup.suppressed_count"
	CompilersPresent   = "compilerwatch.compilers_present"
)

// Values of the rule "Containers should not execute compilers", which every finding carries.
const (
	RuleUUIDValue        = "def-000-krp"
	RuleNameValue        = "Containers should not execute compilers"
	RuleReferenceValue   = "https://docs.datadoghq.com/security/default_rules/def-000-krp"
	RuleCategoryValue    = "runtime"
	RuleRulesetNameValue = "compilerwatch"
	RuleDescriptionValue = "A compiler ran in a container, or a container's image holds one: code built inside a running " +
		"container escapes the review and scanning its image went through."
	// ThreatTechniqueIDValue is MITRE ATT&CK T1027.004, Obfuscated Files or Information: Compile After Delivery.
	ThreatTechniqueIDValue = "T1027.004"
)

const (
	// EventDedupSummary names the record emitted when a dedup window closes with suppressed repeats.
	EventDedupSummary = "compilerwatch.dedup.summary"
	// EventCompilersPresent names the presence finding: compilers found in a container's root.
	EventCompilersPresent = "container.compilers_present"
	// EventContainerSeen names the receiver's record of a container's first exec that its "prefilter: compilers"
	// did not send as an exec: it only starts the container's presence scan, and is never passed on.
	EventContainerSeen = "compilerwatch.container.seen"
)

// IsRuntimeOrigin reports whether a compilerwatch.executable.origin value means the binary was written after the
// container started, which raises a finding to ERROR.
func IsRuntimeOrigin(origin string) bool {
	switch origin {
	case "upper_layer", "memfd", "tmpfs", "deleted":
		return true
	}
	return false
}

// PutRule adds the rule's attributes where absent.
func PutRule(attrs pcommon.Map) {
	PutStrIfAbsent(attrs, RuleUUID, RuleUUIDValue)
	PutStrIfAbsent(attrs, RuleName, RuleNameValue)
	PutStrIfAbsent(attrs, RuleReference, RuleReferenceValue)
	PutStrIfAbsent(attrs, RuleCategory, RuleCategoryValue)
	PutStrIfAbsent(attrs, RuleRulesetName, RuleRulesetNameValue)
	PutStrIfAbsent(attrs, RuleVersion, catalog.Version)
	PutStrIfAbsent(attrs, RuleDescription, RuleDescriptionValue)
	PutStrIfAbsent(attrs, ThreatTechniqueID, ThreatTechniqueIDValue)
}

// PutStrIfAbsent sets k to v unless m has k already.
func PutStrIfAbsent(m pcommon.Map, k, v string) {
	if _, ok := m.Get(k); !ok {
		m.PutStr(k, v)
	}
}

// Str returns the string value of key in m; "" when absent.
func Str(m pcommon.Map, key string) string {
	if v, ok := m.Get(key); ok {
		return v.Str()
	}
	return ""
}

// SeverityText is the text of the two severities a finding has.
func SeverityText(sev plog.SeverityNumber) string {
	if sev >= plog.SeverityNumberError {
		return "ERROR"
	}
	return "WARN"
}

// ContainerKey identifies the container a resource belongs to: container.id, else k8s.pod.uid; "" for the host.
// It keys the hold's per-container order and dedup's owners.
func ContainerKey(res pcommon.Map) string {
	if id := Str(res, ContainerID); id != "" {
		return id
	}
	return Str(res, K8sPodUID)
}
