package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Attribute names this processor reads and writes. They are defined here rather than shared with the receiver so
// the components stay independent; semconv constants are used where the name exists there.
const (
	// Resource attributes.
	attrHostName       = string(semconv.HostNameKey)
	attrContainerID    = string(semconv.ContainerIDKey)
	attrContainerImage = string(semconv.ContainerImageNameKey)
	attrK8sPodUID      = string(semconv.K8SPodUIDKey)
	attrK8sNamespace   = string(semconv.K8SNamespaceNameKey)
	attrK8sPodLabel    = "k8s.pod.label." // prefix; the label key follows

	// Log record attributes written by the ebpf_exec receiver.
	attrExecutablePath         = string(semconv.ProcessExecutablePathKey)
	attrExecutableName         = string(semconv.ProcessExecutableNameKey)
	attrCommand                = string(semconv.ProcessCommandKey)
	attrCommandArgs            = string(semconv.ProcessCommandArgsKey)
	attrExecFilename           = "compilerwatch.exec.filename"
	attrExecComm               = "compilerwatch.exec.comm"
	attrAncestors              = "compilerwatch.ancestors"
	attrAncestorExeNames       = "compilerwatch.ancestors.executable.name"
	attrArgsCount              = string(semconv.ProcessArgsCountKey)
	attrParentExecutable       = "compilerwatch.parent.executable.path"
	attrParentCommand          = "compilerwatch.parent.command"
	attrExecutableOrigin       = "compilerwatch.executable.origin"
	attrParentExecutableOrigin = "compilerwatch.parent.executable.origin"
	attrProcessPID             = string(semconv.ProcessPIDKey)
	attrTruncated              = "compilerwatch.truncated"

	// Attributes this processor adds to a flagged record.
	attrRuleUUID           = string(semconv.SecurityRuleUUIDKey)
	attrRuleName           = string(semconv.SecurityRuleNameKey)
	attrRuleReference      = string(semconv.SecurityRuleReferenceKey)
	attrRuleCategory       = string(semconv.SecurityRuleCategoryKey)
	attrRuleRulesetName    = string(semconv.SecurityRuleRulesetNameKey)
	attrCompilerName       = "compilerwatch.compiler.name"
	attrCompilerLanguage   = "compilerwatch.compiler.language"
	attrCompilerMatch      = "compilerwatch.compiler.match"
	attrInstalledAtRuntime = "compilerwatch.compiler.installed_at_runtime"
	attrSuppressedCount    = "compilerwatch.dedup.suppressed_count"
	attrCompilersPresent   = "compilerwatch.compilers_present"
)

// Values of the rule "Containers should not execute compilers" (design.md, "A flagged record gets").
const (
	ruleUUID        = "def-000-krp"
	ruleName        = "Containers should not execute compilers"
	ruleReference   = "https://docs.datadoghq.com/security/default_rules/def-000-krp"
	ruleCategory    = "runtime"
	ruleRulesetName = "compilerwatch"
)

const (
	// eventNameDedupSummary names the record emitted when a dedup window closes with suppressed repeats.
	eventNameDedupSummary = "compilerwatch.dedup.summary"
	// eventNameCompilersPresent names the presence finding: compilers found in a container's root.
	eventNameCompilersPresent = "container.compilers_present"
)

// runtimeOrigins are the compilerwatch.executable.origin values that mean the binary was written after the
// container started, which raises a finding to ERROR.
func isRuntimeOrigin(origin string) bool {
	switch origin {
	case "upper_layer", "memfd", "tmpfs", "deleted":
		return true
	}
	return false
}
