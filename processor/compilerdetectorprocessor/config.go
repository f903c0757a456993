package compilerdetectorprocessor // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor"

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"go.opentelemetry.io/collector/component"

	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/dedup"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/exclude"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/hold"
	"github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"
)

// Catalog modes.
const (
	modeExtend  = "extend"
	modeReplace = "replace"
)

// Config is the compiler_detector configuration.
type Config struct {
	// ContainersOnly flags only execs whose resource has container.id, which is the rule's scope.
	ContainersOnly bool `mapstructure:"containers_only"`
	// OnlyFlagged drops every record that is not flagged.
	OnlyFlagged bool `mapstructure:"only_flagged"`
	// ScanForCompilers scans each new container's root once, in the background and bounded, for catalog
	// compilers, and emits a container.compilers_present record when it finds any.
	ScanForCompilers bool `mapstructure:"scan_for_compilers"`
	// LogFindings writes one line per finding to stdout (internal/findinglog), for `kubectl logs`, whatever the
	// exporters do.
	LogFindings bool `mapstructure:"log_findings"`

	Compilers  CompilersConfig `mapstructure:"compilers"`
	Exclude    ExcludeConfig   `mapstructure:"exclude"`
	Dedup      DedupConfig     `mapstructure:"dedup"`
	Kubernetes kube.Config     `mapstructure:"kubernetes"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// CompilersConfig extends or replaces the built-in catalog.
type CompilersConfig struct {
	Mode    string          `mapstructure:"mode"`
	Entries []CompilerEntry `mapstructure:"entries"`
}

// CompilerEntry is a user-defined compiler.
type CompilerEntry struct {
	// Name is the canonical lowercase name reported in compilerwatch.compiler.name.
	Name string `mapstructure:"name"`
	// Language is one of the languages compilerwatch.compiler.language reports (catalog.LanguageList).
	Language string `mapstructure:"language"`
	// Executables are basenames (versioned and cross-prefixed forms match too) or absolute paths.
	Executables []string `mapstructure:"executables"`
	// Args, when set, makes the entry a general tool: it counts only when its first non-option argument is one
	// of these (for example [build, test]).
	Args []string `mapstructure:"args"`
}

// ExcludeConfig are allowlists. A compiler execution they match is counted, not flagged.
type ExcludeConfig = exclude.Config

// DedupConfig suppresses repeated findings per key within a window.
type DedupConfig = dedup.Config

var _ component.Config = (*Config)(nil)

// Validate checks the configuration without side effects.
func (cfg *Config) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }

	switch cfg.Compilers.Mode {
	case modeExtend, modeReplace:
	default:
		add(fmt.Errorf(`"compilers.mode" must be %q or %q, got %q`, modeExtend, modeReplace, cfg.Compilers.Mode))
	}
	if cfg.Compilers.Mode == modeReplace && len(cfg.Compilers.Entries) == 0 {
		add(errors.New(`"compilers.mode" is "replace" but "compilers.entries" is empty: nothing would be detected`))
	}
	for i, e := range cfg.Compilers.Entries {
		if err := e.validate(); err != nil {
			add(fmt.Errorf(`"compilers.entries[%d]": %w`, i, err))
		}
	}

	for i, ns := range cfg.Exclude.Namespaces {
		if strings.TrimSpace(ns) == "" {
			add(fmt.Errorf(`"exclude.namespaces[%d]" is empty`, i))
		}
	}
	for i, g := range cfg.Exclude.Images {
		if err := validateGlob(g); err != nil {
			add(fmt.Errorf(`"exclude.images[%d]": %w`, i, err))
			continue
		}
		// container.image.name carries no tag or digest, so such a pattern could never match.
		last := g[strings.LastIndexByte(g, '/')+1:]
		if strings.ContainsAny(last, ":@") {
			add(fmt.Errorf(`"exclude.images[%d]" %q has a tag or digest, but container.image.name is the repository only`, i, g))
		}
	}
	for k := range cfg.Exclude.PodLabels {
		if k == "" {
			add(errors.New(`"exclude.pod_labels" has an empty label key`))
		}
	}
	for i, g := range cfg.Exclude.ParentExecutables {
		if err := validateGlob(g); err != nil {
			add(fmt.Errorf(`"exclude.parent_executables[%d]": %w`, i, err))
		}
	}
	for i, id := range cfg.Exclude.ContainerIDs {
		if !isContainerID(id) {
			add(fmt.Errorf(`"exclude.container_ids[%d]" %q must be a full container id: 64 lowercase hex characters`, i, id))
		}
	}

	if cfg.Dedup.Window < 0 {
		add(fmt.Errorf(`"dedup.window" must not be negative, got %s`, cfg.Dedup.Window))
	}
	if cfg.Dedup.Window > dedup.MaxWindow {
		add(fmt.Errorf(`"dedup.window" must be at most %s, got %s`, dedup.MaxWindow, cfg.Dedup.Window))
	}
	if cfg.Dedup.Window > 0 && len(cfg.Dedup.Key) == 0 {
		add(errors.New(`"dedup.key" must not be empty while "dedup.window" is set (use window: 0 to disable dedup)`))
	}
	if cfg.Dedup.MaxKeys < 0 {
		add(fmt.Errorf(`"dedup.max_keys" must not be negative, got %d`, cfg.Dedup.MaxKeys))
	} else if cfg.Dedup.Window > 0 && cfg.Dedup.MaxKeys == 0 {
		add(errors.New(`"dedup.max_keys" must be at least 1 while "dedup.window" is set (use window: 0 to disable dedup)`))
	}
	if cfg.Dedup.MaxKeysPerContainer < 0 {
		add(fmt.Errorf(`"dedup.max_keys_per_container" must not be negative, got %d`, cfg.Dedup.MaxKeysPerContainer))
	} else if cfg.Dedup.MaxKeysPerContainer > cfg.Dedup.MaxKeys && cfg.Dedup.MaxKeys > 0 {
		add(fmt.Errorf(`"dedup.max_keys_per_container" (%d) must not exceed "dedup.max_keys" (%d)`,
			cfg.Dedup.MaxKeysPerContainer, cfg.Dedup.MaxKeys))
	}
	seen := make(map[string]bool, len(cfg.Dedup.Key))
	for i, k := range cfg.Dedup.Key {
		switch k {
		case dedup.KeyContainerID, dedup.KeyPodUID, dedup.KeyHostName, dedup.KeyCompiler, dedup.KeyParentExecutable, dedup.KeyExecutable:
		default:
			add(fmt.Errorf(`"dedup.key[%d]" %q is unknown; use %s, %s, %s, %s, %s or %s`, i, k,
				dedup.KeyContainerID, dedup.KeyPodUID, dedup.KeyHostName, dedup.KeyCompiler, dedup.KeyParentExecutable, dedup.KeyExecutable))
			continue
		}
		if seen[k] {
			add(fmt.Errorf(`"dedup.key[%d]" %q is repeated`, i, k))
		}
		seen[k] = true
	}

	// Exclusions on Kubernetes attributes match only what the pod cache adds.
	if cfg.Kubernetes.Enabled == kube.ModeFalse {
		for _, key := range cfg.Exclude.KubernetesKeys() {
			add(fmt.Errorf(`%q needs Kubernetes metadata, but "kubernetes.enabled" is false: it could never match`, key))
		}
	}

	if err := hold.ValidateWait(cfg.Kubernetes.WaitForMetadata.Hold); err != nil {
		add(err)
	}
	// The rest of kubernetes: kube.Config.Validate, which the collector calls on nested configs.
	return errors.Join(errs...)
}

func (e CompilerEntry) validate() error {
	if e.Name == "" {
		return errors.New(`missing required field "name"`)
	}
	if e.Name != strings.ToLower(e.Name) || strings.ContainsAny(e.Name, " \t\n") {
		return fmt.Errorf(`"name" %q must be lowercase with no whitespace`, e.Name)
	}
	if !catalog.IsValidLanguage(e.Language) {
		return fmt.Errorf(`"language" %q must be one of %s`, e.Language, catalog.LanguageList)
	}
	if len(e.Executables) == 0 {
		return errors.New(`missing required field "executables"`)
	}
	for i, x := range e.Executables {
		if x == "" || strings.ContainsAny(x, " \t\n") {
			return fmt.Errorf(`"executables[%d]" %q must be a non-empty name or absolute path without whitespace`, i, x)
		}
		if strings.Contains(x, "/") && !strings.HasPrefix(x, "/") {
			return fmt.Errorf(`"executables[%d]" %q must be a basename or an absolute path`, i, x)
		}
	}
	for i, a := range e.Args {
		if a == "" || a[0] == '-' {
			return fmt.Errorf(`"args[%d]" %q must be a subcommand, not empty or an option`, i, a)
		}
	}
	return nil
}

// validateGlob checks a path.Match pattern. path.Match reports a malformed pattern whatever the subject, so
// matching the empty string is a pure syntax check.
func validateGlob(g string) error {
	if g == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("bad glob %q: %w", g, err)
	}
	return nil
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// catalogEntries returns the catalog this configuration selects.
func (cfg *Config) catalogEntries() []*catalog.Entry {
	user := make([]catalog.User, len(cfg.Compilers.Entries))
	for i, u := range cfg.Compilers.Entries {
		user[i] = catalog.User{Name: u.Name, Language: u.Language, Executables: u.Executables, Args: u.Args}
	}
	return catalog.Entries(cfg.Compilers.Mode == modeReplace, user)
}
