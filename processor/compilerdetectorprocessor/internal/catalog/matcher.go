package catalog

import (
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Values of compilerwatch.compiler.match: which signal identified the compiler.
const (
	MatchExecutableName = "executable_name"
	MatchInvokedName    = "invoked_name"
	MatchComm           = "comm"
	MatchCompilerStage  = "compiler_stage"
	MatchArguments      = "arguments"
)

// CommLen is the kernel's TASK_COMM_LEN minus the terminating NUL: comms are cut to 15 bytes.
const CommLen = 15

// List is a read-only list of strings backed by a Go slice (tests, pure callers) or by a pcommon.Slice (the
// processor), so the Matcher reads the record's attributes in place without copying.
type List struct {
	s     []string
	p     pcommon.Slice
	fromP bool
	// dropLast hides the last element: an argument the byte limit may have cut, which must decide nothing.
	dropLast bool
}

func Strings(s []string) List        { return List{s: s} }
func PdataList(p pcommon.Slice) List { return List{p: p, fromP: true} }

// ListAttr reads the string list attribute key of m in place; empty when absent or not a list.
func ListAttr(m pcommon.Map, key string) List {
	if v, ok := m.Get(key); ok && v.Type() == pcommon.ValueTypeSlice {
		return PdataList(v.Slice())
	}
	return List{}
}

func (l List) Len() int {
	n := len(l.s)
	if l.fromP {
		n = l.p.Len()
	}
	if l.dropLast && n > 0 {
		n--
	}
	return n
}

func (l List) At(i int) string {
	if l.fromP {
		return l.p.At(i).Str() // "" for a non-string value
	}
	return l.s[i]
}

// ExecView is the part of one exec record that the matcher reads. Every field may be empty.
type ExecView struct {
	ExePath   string // process.executable.path
	ExeName   string // process.executable.name (basename of ExePath when absent)
	Filename  string // compilerwatch.exec.filename, as invoked, before symlink resolution
	Argv0     string // process.command
	Comm      string // compilerwatch.exec.comm
	Args      List   // process.command_args, argv[0] first
	Ancestors List   // compilerwatch.ancestors, "pid:comm", nearest first
	// AncestorExes is compilerwatch.ancestors.executable.name, parallel to Ancestors: what the kernel executes for
	// each ancestor. Comms are never trusted; an ancestor without an executable name is never trusted either.
	AncestorExes List
	// ArgsTruncated: argv was cut (compilerwatch.truncated has "args", or process.args_count exceeds the captured
	// arguments), so a decision the captured arguments do not reach fails closed.
	ArgsTruncated bool
	// Known answers whether an ancestor is a compiler execution already reported (flagged, deduplicated or
	// excluded); nil trusts no ancestor.
	Known     KnownCompilers
	Container string // container.id, the scope of Known
}

// KnownCompilers remembers the processes whose own exec was found to be a compiler execution.
type KnownCompilers interface {
	// trust returns the trust classes recorded for pid in container, provided the process still executes exe
	// (the base name the kernel reports, normalized); 0 when unknown.
	Trust(container string, pid uint32, exe string) uint8
}

// Match describes a compiler execution. All strings come from the catalog, so returning one allocates
// nothing.
type Match struct {
	Name     string // compilerwatch.compiler.name
	Language string // compilerwatch.compiler.language
	Signal   string // compilerwatch.compiler.match
}

// Trust says which processes a finding vouches for as compilers, so that the stages they run are not
// reported again: the process itself (a driver, or a stage) and, for a stage with no known compiler above it, its
// parent, which is then an unrecognised (renamed) driver.
type Trust struct {
	Self, Parent uint8
}

// Matcher recognises compiler executions in exec records. It is immutable after newMatcher and safe for
// concurrent use; all lookups are map hits and string slicing, with no regular expressions and no allocation.
type Matcher struct {
	byName map[string]*Entry // executable basename -> entry
	byPath map[string]*Entry // absolute executable path -> entry (user entries only)
	// truncated maps a 15-byte comm to the entry whose longer name the kernel cut to it. A nil value marks an
	// ambiguous key (x86_64-linux-gn is every x86_64-linux-gnu- tool).
	truncated map[string]*Entry
}

// newMatcher builds the lookup maps from catalog entries. Later entries win on a name collision, so user entries
// appended after the built-ins override them.
func NewMatcher(entries []*Entry) *Matcher {
	m := &Matcher{
		byName:    make(map[string]*Entry),
		byPath:    make(map[string]*Entry),
		truncated: make(map[string]*Entry),
	}
	for _, e := range entries {
		for _, x := range e.executables {
			if strings.HasPrefix(x, "/") {
				m.byPath[x] = e
			} else {
				m.byName[x] = e
			}
		}
	}
	addTrunc := func(full string, e *Entry) {
		if len(full) <= CommLen {
			return
		}
		k := full[:CommLen]
		if prev, ok := m.truncated[k]; ok && prev != e {
			m.truncated[k] = nil
		} else {
			m.truncated[k] = e
		}
	}
	for name, e := range m.byName {
		addTrunc(name, e)
	}
	for _, d := range crossDrivers {
		e := m.byName[d]
		if e == nil {
			continue // replaced catalog without this driver
		}
		for _, t := range crossTriples {
			addTrunc(t+"-"+d, e)
			// Versioned names whose unversioned form is shorter than 15 bytes are cut inside the version.
			addTrunc(t+"-"+d+"-", e)
		}
	}
	return m
}

// match returns the compiler that v executes, if any.
func (m *Matcher) match(v *ExecView) (Match, bool) {
	r, _, ok := m.Classify(v)
	return r, ok
}

// classify is match, plus the trust the finding confers on the processes involved.
func (m *Matcher) Classify(v *ExecView) (Match, Trust, bool) {
	var stage Match
	haveStage := false
	var stageTrust uint8

	// Name signals, most trustworthy first: the resolved binary, then what was invoked, then comm.
	exeName := v.ExeName
	if exeName == "" {
		exeName = Basename(v.ExePath)
	}
	// User entries may name absolute paths; built-ins never do, so this is one map miss per record.
	if len(m.byPath) > 0 {
		if e := m.byPath[v.ExePath]; e != nil {
			if r, ok := m.evaluate(e, MatchExecutableName, v); ok {
				return r, Trust{Self: confers(e)}, true
			}
		}
		if e := m.byPath[v.Filename]; e != nil {
			if r, ok := m.evaluate(e, MatchInvokedName, v); ok {
				return r, Trust{Self: confers(e)}, true
			}
		}
	}
	for i := 0; i < 4; i++ {
		var name, signal string
		switch i {
		case 0:
			name, signal = exeName, MatchExecutableName
		case 1:
			name, signal = Basename(v.Filename), MatchInvokedName
		case 2:
			name, signal = Basename(v.Argv0), MatchInvokedName
		case 3:
			name, signal = v.Comm, MatchComm
		}
		name = realName(name)
		e := m.Lookup(name)
		if e == nil && i == 3 && len(name) == CommLen {
			e = m.truncated[name]
		}
		if e == nil {
			continue
		}
		if e.kind == kindStage || (e.cc1Stage && isCC1Invocation(v.Args)) {
			if !haveStage {
				stage = Match{Name: e.name, Language: e.language, Signal: MatchCompilerStage}
				stageTrust = e.trust
				if stageTrust == 0 {
					stageTrust = trustDriver
				}
				haveStage = true
			}
			continue
		}
		if i == 0 && e.cc1Stage {
			e = m.clangPersonality(e, v)
		}
		if r, ok := m.evaluate(e, signal, v); ok {
			if e.kind == kindAssembler && knownAncestor(v, e.trust) {
				return Match{}, Trust{}, false
			}
			return r, Trust{Self: confers(e)}, true
		}
	}

	if !haveStage && m.byName["go"] != nil && (isGoToolPath(v.ExePath) || isGoToolPath(v.Filename)) {
		stage = Match{Name: "go", Language: langGo, Signal: MatchCompilerStage}
		stageTrust = trustDriver | trustGo
		haveStage = true
	}
	if haveStage && !knownAncestor(v, stageTrust) {
		return stage, Trust{Self: trustDriver, Parent: stageTrust}, true
	}
	return Match{}, Trust{}, false
}

// confers is the trust a finding for e gives its own process: the stages it runs are part of the compilation
// just reported. A compiler driver (or an assembler) vouches for any stage; go only for Go's. Other general tools
// and wrappers vouch for nothing: a JVM that ran a source file, or cargo, is not the compiler of a C stage below
// it, and the compilers they run are findings of their own.
func confers(e *Entry) uint8 {
	switch {
	case e.kind != kindTool:
		return trustDriver
	case e.style == argsGo:
		return trustGo
	}
	return 0
}

// knownAncestor reports whether an ancestor of v is a process whose own exec was reported as a compiler of one of
// the trust classes, and still executes the file it was reported for. The ancestor's executable name is the
// kernel's (mm->exe_file), never its comm, which any process can set (prctl, /proc/self/comm) and which the kernel
// cuts to 15 bytes. Where that cannot be verified (no name, an unknown pid, a compiler exec the pipeline never
// saw), the stage is reported: a renamed driver is caught by its stages, whatever the names around it.
func knownAncestor(v *ExecView, trust uint8) bool {
	if v.Known == nil {
		return false
	}
	for i, n := 0, min(v.Ancestors.Len(), v.AncestorExes.Len()); i < n; i++ {
		exe := realName(v.AncestorExes.At(i))
		if exe == "" {
			continue
		}
		pid, ok := ancestorPID(v.Ancestors.At(i))
		if !ok {
			continue
		}
		if v.Known.Trust(v.Container, pid, exe)&trust != 0 {
			return true
		}
	}
	return false
}

// ancestorPID parses the pid of a "pid:comm" ancestor entry.
func ancestorPID(a string) (uint32, bool) {
	j := strings.IndexByte(a, ':')
	if j <= 0 {
		return 0, false
	}
	pid, err := strconv.ParseUint(a[:j], 10, 32)
	return uint32(pid), err == nil
}

// realName is the name of the file behind an executable name the kernel decorated: a memfd is
// "memfd:<name>" and /proc shows it, and any unlinked file, with " (deleted)". Fileless execution of a compiler
// is the strongest signal there is, so the decoration must not hide the name.
func realName(name string) string {
	name = strings.TrimSuffix(name, " (deleted)")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:] // a memfd path is "/memfd:<name>"
	}
	return strings.TrimPrefix(name, "memfd:")
}

// clangPersonality picks clang++ over clang when that is the name it was invoked by: clang chooses its driver
// mode from argv[0], and clang++ is a symlink to the clang binary, so the resolved name alone loses the language.
func (m *Matcher) clangPersonality(e *Entry, v *ExecView) *Entry {
	for _, n := range [...]string{Basename(v.Filename), Basename(v.Argv0)} {
		if p := m.Lookup(n); p != nil && p.cc1Stage {
			return p
		}
	}
	return e
}

// verdict is what a tool's arguments say about compiling.
type verdict uint8

const (
	// undecided: the captured arguments end before the decisive one.
	undecided verdict = iota
	compiles
	notCompiling
)

// evaluate decides whether entry e, found by signal, is a compiler execution given the arguments.
//
// Argument matches fail closed on truncated argv: when the receiver cut argv (max_args_bytes) before the decisive
// argument, the record is flagged with match "arguments". The last captured argument may itself be cut, so it
// decides nothing then. A decisively non-compiling form in the captured prefix (go version, java -jar) stays
// unflagged.
func (m *Matcher) evaluate(e *Entry, signal string, v *ExecView) (Match, bool) {
	if e.kind != kindTool {
		return Match{Name: e.name, Language: e.language, Signal: signal}, true
	}
	args := v.Args
	args.dropLast = v.ArgsTruncated
	var lang string
	var vd verdict
	switch e.style {
	case argsGo:
		vd = goArgs(args)
	case argsCargo:
		lang, vd = cargoArgs(e, args)
	case argsJava:
		vd = javaSourceMode(args)
	case argsWrapper:
		op := firstOperand(args, 1)
		if op != "" {
			if w := m.wrapped(op); w != nil {
				return Match{Name: w.name, Language: w.language, Signal: MatchArguments}, true
			}
			vd = notCompiling
		}
	default:
		if sub := firstOperand(args, 1); sub != "" {
			var ok bool
			if lang, ok = e.subcommands[sub]; ok {
				vd = compiles
			} else {
				vd = notCompiling
			}
		}
	}
	if vd == notCompiling || (vd == undecided && !v.ArgsTruncated) {
		return Match{}, false
	}
	if lang == "" {
		lang = e.language
	}
	return Match{Name: e.name, Language: lang, Signal: MatchArguments}, true
}

// lookup resolves an executable basename to a catalog entry, accepting versioned (gcc-12, clang++-19) and
// cross-prefixed (x86_64-linux-gnu-g++-12, arm-none-eabi-gcc) forms of catalog names.
func (m *Matcher) Lookup(name string) *Entry {
	if name == "" {
		return nil
	}
	if e := m.byName[name]; e != nil {
		return e
	}
	base := stripVersion(name)
	if base != name {
		if e := m.byName[base]; e != nil {
			return e
		}
	}
	return m.stripTriple(base)
}

// stripTriple looks up the name after a target-triple prefix. The first field must be a known architecture;
// then each later '-' boundary is tried, shortest prefix first, so x86_64-linux-gnu-gcc-ar finds neither
// "gcc-ar" nor "ar" in the catalog and stays unmatched.
func (m *Matcher) stripTriple(name string) *Entry {
	i := strings.IndexByte(name, '-')
	if i <= 0 || !knownArch(name[:i]) {
		return nil
	}
	for rest := name[i+1:]; ; {
		j := strings.IndexByte(rest, '-')
		if j < 0 {
			return nil
		}
		rest = rest[j+1:]
		if e := m.byName[rest]; e != nil {
			return e
		}
	}
}

// stripVersion removes trailing version fields: gcc-12 -> gcc, ghc-9.4.7 -> ghc, and mingw's thread-model
// suffixes (x86_64-w64-mingw32-g++-posix). A name without a dash keeps its digits: cc1 and lto1 are names.
func stripVersion(name string) string {
	for n := 0; n < 3; n++ {
		i := strings.LastIndexByte(name, '-')
		if i <= 0 || i == len(name)-1 {
			return name
		}
		suffix := name[i+1:]
		if suffix != "posix" && suffix != "win32" && !isVersion(suffix) {
			return name
		}
		name = name[:i]
	}
	return name
}

func isVersion(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// wrapped returns the driver a ccache-style wrapper runs: ccache gcc -c x.c -> gcc.
func (m *Matcher) wrapped(op string) *Entry {
	e := m.Lookup(Basename(op))
	if e == nil || e.kind != kindDriver {
		return nil
	}
	return e
}

// isCC1Invocation reports clang re-executing itself as its compiler proper (clang -cc1 / -cc1as).
func isCC1Invocation(args List) bool {
	if args.Len() < 2 {
		return false
	}
	a := args.At(1)
	return a == "-cc1" || a == "-cc1as"
}

// firstOperand returns the first argument at or after index from that is not an option. Every captured argument
// is scanned: thousands of short options must not push the operand out of sight.
func firstOperand(args List, from int) string {
	for i, n := from, args.Len(); i < n; i++ {
		a := args.At(i)
		if a == "" || a[0] == '-' {
			continue
		}
		return firstField(a)
	}
	return ""
}

// firstField is the first whitespace-separated word of a: a shebang line passes everything after the interpreter
// as one argument (#!/usr/bin/go run -x gives argv [go, "run -x", script]).
func firstField(a string) string {
	if i := strings.IndexAny(a, " \t"); i > 0 {
		return a[:i]
	}
	return a
}

// goArgs: go [-C dir] build|run|install|test ..., and go tool compile|link|asm|cgo.
func goArgs(args List) verdict {
	i, n := 1, args.Len()
	// -C dir is the only flag accepted before the subcommand.
	for i < n {
		a := args.At(i)
		if a == "-C" || a == "--C" {
			i += 2
			continue
		}
		if strings.HasPrefix(a, "-C=") || strings.HasPrefix(a, "--C=") {
			i++
			continue
		}
		break
	}
	if i >= n {
		return undecided
	}
	switch firstField(args.At(i)) {
	case "build", "run", "install", "test":
		return compiles
	case "tool":
		if i+1 >= n {
			return undecided
		}
		if goToolStage(firstField(args.At(i + 1))) {
			return compiles
		}
	}
	return notCompiling
}

// cargoArgs: cargo [+toolchain] [global options] <subcommand>. Options that take a separate value are skipped
// with their value, so "cargo --color always build" is still a build. An operand that is a path or a .rs file is
// a single-file package (cargo script), which cargo compiles.
func cargoArgs(e *Entry, args List) (string, verdict) {
	for i, n := 1, args.Len(); i < n; i++ {
		a := args.At(i)
		switch {
		case a == "":
			continue
		case i == 1 && a[0] == '+':
			continue
		case a == "--color" || a == "-Z" || a == "--config" || a == "-C" || a == "--explain":
			i++
			continue
		case a[0] == '-':
			continue
		}
		a = firstField(a)
		if lang, ok := e.subcommands[a]; ok {
			return lang, compiles
		}
		if strings.HasSuffix(a, ".rs") || strings.ContainsRune(a, '/') {
			return "", compiles
		}
		return "", notCompiling
	}
	return "", undecided
}

// javaValueOptions are java launcher options whose value is the next argument.
func javaValueOption(a string) bool {
	switch a {
	case "-cp", "-classpath", "--class-path", "-p", "--module-path", "--upgrade-module-path",
		"--add-modules", "--limit-modules", "--add-reads", "--add-exports", "--add-opens", "--patch-module",
		"--enable-native-access", "-d", "--describe-module":
		return true
	}
	return false
}

// javaSourceMode reports java launching a source file (JEP 330): java [options] Foo.java, or --source N. A
// shebang line (#!/usr/bin/java --source 21) reaches java as one argument "--source 21", which the launcher
// splits; the script it names then need not end in .java.
func javaSourceMode(args List) verdict {
	skipValue := false
	for i, n := 1, args.Len(); i < n; i++ {
		a := args.At(i)
		if skipValue {
			skipValue = false
			continue
		}
		if a != "" && a[0] == '-' && strings.ContainsAny(a, " \t") {
			pending := false // an option whose value is the next field
			for _, f := range strings.Fields(a) {
				if pending {
					pending = false
					continue
				}
				vd, takesValue := javaOption(f)
				if vd != undecided {
					return vd
				}
				pending = takesValue
			}
			skipValue = pending
			continue
		}
		vd, takesValue := javaOption(a)
		switch {
		case vd != undecided:
			return vd
		case takesValue:
			skipValue = true
		case a == "" || a[0] == '-' || a[0] == '@':
			// other options, @argfiles
		default:
			if strings.HasSuffix(a, ".java") {
				return compiles
			}
			return notCompiling // a main class
		}
	}
	return undecided
}

// javaOption classifies one java launcher option: decisive (--source, -jar, -m) or taking the next argument.
func javaOption(a string) (verdict, bool) {
	switch {
	case a == "--source" || strings.HasPrefix(a, "--source="):
		return compiles, false
	case a == "-jar" || a == "-m" || a == "--module" || strings.HasPrefix(a, "--module="):
		return notCompiling, false
	case javaValueOption(a):
		return undecided, true
	}
	return undecided, false
}

// isGoToolPath reports .../pkg/tool/<goos>_<goarch>/{compile,link,asm,cgo}.
func isGoToolPath(p string) bool {
	if p == "" {
		return false
	}
	dir, base := splitLast(p)
	if !goToolStage(base) {
		return false
	}
	dir, osArch := splitLast(dir)
	if strings.IndexByte(osArch, '_') <= 0 {
		return false
	}
	dir, tool := splitLast(dir)
	if tool != "tool" {
		return false
	}
	_, pkg := splitLast(dir)
	return pkg == "pkg"
}

func splitLast(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

func Basename(p string) string {
	_, b := splitLast(p)
	return b
}

// CandidateNames is every name that can make an exec matter to the matcher, for a filter in front of it (the
// receiver's "prefilter: compilers"): the catalog's executable names, the base names of its absolute paths, the
// 15-byte comms that stand for one compiler, and Go's tool stages when go is in the catalog. The matcher reads no
// exec whose names (after the decorations, version fields and target prefixes Lookup accepts) are all outside
// this set, except to suppress a stage below an ancestor, which itself was in it. Sorted, without duplicates.
func (m *Matcher) CandidateNames() []string {
	set := make(map[string]struct{}, len(m.byName)+len(m.truncated))
	for n := range m.byName {
		set[n] = struct{}{}
	}
	for p := range m.byPath {
		set[Basename(p)] = struct{}{}
	}
	for k, e := range m.truncated {
		if e != nil {
			set[k] = struct{}{}
		}
	}
	if m.byName["go"] != nil {
		for _, n := range goToolStages {
			set[n] = struct{}{}
		}
	}
	delete(set, "")
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
