// Package catalog is the compiler catalog and the matcher that recognises compiler executions in exec records. It
// is pure: no I/O, no clock, no pdata beyond reading attribute lists in place.
package catalog // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/catalog"

import "slices"

// Version is the version of the built-in catalog and of the rule it implements, reported as security_rule.version.
// It changes whenever the built-in entries or the way they match change, so that a finding can be traced to the
// catalog that made it. Entries added from the configuration do not change it.
const Version = "1.0.0"

// Languages reported in compilerwatch.compiler.language: a closed list, checked for user entries.
const (
	langC        = "c"
	langCXX      = "c++"
	langObjC     = "objective-c"
	langFortran  = "fortran"
	langGo       = "go"
	langJava     = "java"
	langKotlin   = "kotlin"
	langScala    = "scala"
	langRust     = "rust"
	langSwift    = "swift"
	langHaskell  = "haskell"
	langCSharp   = "c#"
	langZig      = "zig"
	langCUDA     = "cuda"
	langAssembly = "assembly"
	langWasm     = "wasm"
	langOther    = "other"
	LanguageList = "c, c++, objective-c, fortran, go, java, kotlin, scala, rust, swift, haskell, c#, zig, cuda, assembly, wasm, other"
)

func IsValidLanguage(l string) bool {
	switch l {
	case langC, langCXX, langObjC, langFortran, langGo, langJava, langKotlin, langScala, langRust, langSwift,
		langHaskell, langCSharp, langZig, langCUDA, langAssembly, langWasm, langOther:
		return true
	}
	return false
}

// entryKind says when a catalog entry counts as a compiler execution.
type entryKind uint8

const (
	// kindDriver is a compiler by its name alone (gcc, rustc, javac). Drivers are always flagged, and a driver
	// reported as such vouches for the stages it runs.
	kindDriver entryKind = iota
	// kindAssembler is flagged by name, like a driver, but it is also what drivers run for every object file, so
	// it is suppressed under a reported compiler ancestor, like a stage.
	kindAssembler
	// kindStage is a compiler-internal program (cc1, collect2, Go's compile). It is reported with match
	// compiler_stage, and only when no ancestor is a compiler already reported: that is what catches renamed
	// drivers.
	kindStage
	// kindTool is a general tool that compiles only with certain arguments (go build, cargo build, java Foo.java).
	kindTool
)

// argStyle selects how a kindTool entry reads its arguments.
type argStyle uint8

const (
	// argsSubcommand: the first argument that is not an option must be one of entry.subcommands.
	argsSubcommand argStyle = iota
	// argsGo: go [-C dir] build|run|install|test, and go tool compile|link|asm|cgo.
	argsGo
	// argsCargo: cargo [+toolchain] [global options] build|run|test|rustc|...
	argsCargo
	// argsJava: java in source-file mode (java [options] Foo.java, or --source N).
	argsJava
	// argsWrapper: ccache-style wrappers; the first non-option argument names the real compiler, which is
	// reported. A wrapper on its own (ccache -s) is not a compiler.
	argsWrapper
)

// Trust classes: which reported compilers vouch for a stage below them.
const (
	trustDriver uint8 = 1 << iota // any compiler driver
	trustGo                       // the go command, the only legitimate parent of pkg/tool/*/compile
)

// Entry is one compiler in the catalog. Entries are immutable after the Matcher is built.
type Entry struct {
	name        string // canonical, lowercase
	language    string
	kind        entryKind
	executables []string // basenames; user entries may also give absolute paths
	// kindTool only.
	style       argStyle
	subcommands map[string]string // subcommand -> language ("" = the entry's language)
	// cc1Stage marks clang, whose driver re-executes itself as "clang -cc1" when the integrated cc1 is off.
	cc1Stage bool
	// trust is the ancestor class that suppresses this entry (stages and assemblers).
	trust uint8
}

func subs(lang string, names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = lang
	}
	return m
}

// Builtin returns a fresh copy of the built-in catalog.
//
// Deliberately absent, so they are never flagged by name:
//   - gcc-ar, gcc-nm, gcc-ranlib (and the llvm-ar family): wrappers that load the LTO plugin into ar/nm/ranlib.
//     They read and archive existing objects and never run a compiler stage.
//   - cpp and clang-cpp: preprocessors only. If they run cc1 -E, that cc1 is reported as a stage, because only
//     a reported compiler vouches for a stage (trusting any name we do not flag would let a renamed driver called
//     "cpp" hide its stages).
//   - clangd, clang-format, clang-tidy: editor and lint tooling; they produce no code.
//   - make, cmake, ninja, ld and linkers, shells, interpreters (python, node, perl, ruby): they run compilers,
//     and the compiler they run is flagged itself.
//   - ccache/sccache/distcc/icecc alone: flagged only with a compiler argument (argsWrapper).
//   - java, dotnet: flagged only when they compile (source-file mode, build subcommands). Even then they vouch
//     for no stage below them, since a JVM or .NET process would otherwise hide a renamed driver's stages.
func Builtin() []*Entry {
	drv := func(name, lang string, exes ...string) *Entry {
		return &Entry{name: name, language: lang, kind: kindDriver, executables: exes}
	}
	stage := func(name, lang string, trust uint8, exes ...string) *Entry {
		return &Entry{name: name, language: lang, kind: kindStage, executables: exes, trust: trust}
	}
	asm := func(name string, exes ...string) *Entry {
		return &Entry{name: name, language: langAssembly, kind: kindAssembler, executables: exes, trust: trustDriver}
	}
	tool := func(name, lang string, style argStyle, sub map[string]string, exes ...string) *Entry {
		return &Entry{name: name, language: lang, kind: kindTool, style: style, subcommands: sub, executables: exes}
	}
	clang := drv("clang", langC, "clang", "clang-cl")
	clang.cc1Stage = true
	clangxx := drv("clang++", langCXX, "clang++")
	clangxx.cc1Stage = true

	return []*Entry{
		// C and C++ drivers.
		drv("gcc", langC, "gcc"),
		drv("g++", langCXX, "g++"),
		drv("cc", langC, "cc", "c89", "c99", "c89-gcc", "c99-gcc"),
		drv("c++", langCXX, "c++"),
		clang, clangxx,
		drv("tcc", langC, "tcc"),
		drv("icc", langC, "icc"),
		drv("icx", langC, "icx"),
		drv("icpc", langCXX, "icpc"),
		drv("icpx", langCXX, "icpx"),
		drv("pcc", langC, "pcc"),
		drv("sdcc", langC, "sdcc"),
		drv("bcc", langC, "bcc"),
		// Fortran.
		drv("gfortran", langFortran, "gfortran", "g77", "g95", "f77", "f95"),
		drv("flang", langFortran, "flang", "flang-new"),
		drv("ifort", langFortran, "ifort"),
		drv("ifx", langFortran, "ifx"),
		drv("nvfortran", langFortran, "nvfortran"),
		// Go.
		drv("gccgo", langGo, "gccgo"),
		tool("go", langGo, argsGo, subs("", "build", "run", "install", "test"), "go"),
		tool("tinygo", langGo, argsSubcommand, subs("", "build", "run", "test", "flash", "build-library"), "tinygo"),
		// JVM.
		drv("javac", langJava, "javac"),
		drv("ecj", langJava, "ecj"),
		tool("java", langJava, argsJava, nil, "java"),
		drv("kotlinc", langKotlin, "kotlinc", "kotlinc-jvm", "kotlinc-js", "kotlinc-native", "konanc"),
		drv("scalac", langScala, "scalac"),
		// Rust.
		drv("rustc", langRust, "rustc"),
		tool("cargo", langRust, argsCargo,
			subs("", "build", "b", "run", "r", "test", "t", "bench", "rustc", "install"), "cargo"),
		// Swift: swiftc is a symlink to swift-frontend, which the driver also runs as its per-file stage.
		drv("swiftc", langSwift, "swiftc"),
		stage("swiftc", langSwift, trustDriver, "swift-frontend"),
		tool("swift", langSwift, argsSubcommand, subs("", "build", "run", "test"), "swift"),
		// Haskell, C#, Zig, CUDA, WebAssembly and others.
		drv("ghc", langHaskell, "ghc"),
		drv("csc", langCSharp, "csc"),
		drv("mcs", langCSharp, "mcs", "mono-csc", "dmcs", "gmcs"),
		tool("dotnet", langCSharp, argsSubcommand, subs("", "build", "publish", "run", "test", "pack", "msbuild"), "dotnet"),
		tool("zig", langZig, argsSubcommand, map[string]string{
			"cc": langC, "c++": langCXX, "build-exe": "", "build-lib": "", "build-obj": "", "build": "", "run": "", "test": "",
		}, "zig"),
		drv("nvcc", langCUDA, "nvcc"),
		stage("nvcc", langCUDA, trustDriver, "cicc", "ptxas"),
		drv("emcc", langWasm, "emcc", "em++"),
		drv("gdc", langOther, "gdc"),
		drv("ldc2", langOther, "ldc2", "ldmd2"),
		drv("dmd", langOther, "dmd"),
		drv("gnat", langOther, "gnat", "gnatmake"),
		drv("fpc", langOther, "fpc"),
		drv("ocamlopt", langOther, "ocamlopt", "ocamlc"),
		drv("valac", langOther, "valac"),
		// Assemblers.
		asm("as", "as", "gas"),
		asm("nasm", "nasm"),
		asm("yasm", "yasm"),
		// GCC-internal stages, named after the driver that owns them.
		stage("gcc", langC, trustDriver, "cc1"),
		stage("g++", langCXX, trustDriver, "cc1plus"),
		stage("gcc", langObjC, trustDriver, "cc1obj", "cc1objplus"),
		stage("gcc", langOther, trustDriver, "collect2", "lto1", "lto-wrapper"),
		stage("gfortran", langFortran, trustDriver, "f951"),
		stage("gccgo", langGo, trustDriver, "go1"),
		stage("gdc", langOther, trustDriver, "d21"),
		stage("gnat", langOther, trustDriver, "gnat1"),
		// Wrappers: report the compiler they wrap.
		tool("ccache", langOther, argsWrapper, nil, "ccache", "sccache", "distcc", "icecc"),
	}
}

// goToolStages are Go's per-package programs under $GOROOT/pkg/tool/<goos>_<goarch>/. They are matched by path
// only: "compile" and "link" are far too common as bare names (coreutils ships link).
func goToolStage(name string) bool {
	return slices.Contains(goToolStages[:], name)
}

var goToolStages = [...]string{"compile", "link", "asm", "cgo"}

// crossTriples are target prefixes whose 15-byte kernel-truncated comm must still be recognised, the last signal
// of a record's own names: x86_64-linux-gnu-gcc-12 runs with comm "x86_64-linux-gn". Full names never need this list; they are
// recognised by stripping any prefix that starts with a known architecture (see stripTriple).
var crossTriples = [...]string{
	"x86_64-linux-gnu", "x86_64-pc-linux-gnu", "x86_64-unknown-linux-gnu", "x86_64-linux-gnux32",
	"x86_64-redhat-linux", "x86_64-alpine-linux-musl", "x86_64-linux-musl", "x86_64-w64-mingw32",
	"i686-linux-gnu", "i686-w64-mingw32", "i686-redhat-linux",
	"aarch64-linux-gnu", "aarch64-redhat-linux", "aarch64-alpine-linux-musl", "aarch64-linux-musl",
	"aarch64-none-elf", "aarch64-none-linux-gnu",
	"arm-linux-gnueabihf", "arm-linux-gnueabi", "arm-none-eabi",
	"riscv64-linux-gnu", "riscv64-unknown-elf", "riscv64-unknown-linux-gnu",
	"powerpc64le-linux-gnu", "powerpc64-linux-gnu", "powerpc-linux-gnu",
	"s390x-linux-gnu", "mips-linux-gnu", "mipsel-linux-gnu", "mips64el-linux-gnuabi64",
	"loongarch64-linux-gnu", "sparc64-linux-gnu", "m68k-linux-gnu", "hppa-linux-gnu", "alpha-linux-gnu",
	"sh4-linux-gnu",
}

// crossDrivers are the catalog names that toolchains ship with a target prefix.
var crossDrivers = [...]string{"gcc", "g++", "c++", "cc", "gfortran", "gccgo", "gdc", "gnat", "clang", "clang++"}

// knownArch reports whether s is the architecture field of a target triple. It gates prefix stripping, so that a
// tool such as "foo-as" is not mistaken for the assembler.
func knownArch(s string) bool {
	switch s {
	case "x86_64", "amd64", "x86", "i386", "i486", "i586", "i686",
		"aarch64", "aarch64_be", "arm64", "arm", "armel", "armhf", "armeb",
		"riscv32", "riscv64", "mips", "mipsel", "mips64", "mips64el",
		"mipsisa32r6", "mipsisa32r6el", "mipsisa64r6", "mipsisa64r6el",
		"powerpc", "powerpc64", "powerpc64le", "ppc", "ppc64", "ppc64le",
		"s390", "s390x", "sparc", "sparc64", "sparcv9", "loongarch64", "m68k", "avr", "msp430", "xtensa",
		"hppa", "alpha", "sh4", "ia64", "or1k", "arc", "csky", "microblaze", "nios2",
		"wasm32", "wasm64", "nvptx", "nvptx64", "amdgcn", "bpf", "bpfel", "bpfeb":
		return true
	}
	// armv7l, armv7a, armv8l, thumbv7em...: architecture plus sub-version.
	for _, p := range [...]string{"armv", "thumbv"} {
		if len(s) > len(p) && s[:len(p)] == p && s[len(p)] >= '0' && s[len(p)] <= '9' {
			return true
		}
	}
	return false
}

// Name is the entry's canonical name, reported as compilerwatch.compiler.name.
func (e *Entry) Name() string { return e.name }

// Tool reports whether the entry is a general tool, a compiler only with certain arguments.
func (e *Entry) Tool() bool { return e.kind == kindTool }

// User is a compiler the configuration adds (compilers.entries).
type User struct {
	Name        string
	Language    string
	Executables []string
	// Args, when set, makes the entry a general tool: it counts only when its first non-option argument is one of
	// these.
	Args []string
}

// Entries returns the catalog a configuration selects: the built-ins unless replace is set, then the user
// entries, which override built-ins with the same executable name.
func Entries(replace bool, user []User) []*Entry {
	var entries []*Entry
	if !replace {
		entries = Builtin()
	}
	for _, u := range user {
		e := &Entry{name: u.Name, language: u.Language, kind: kindDriver, executables: u.Executables}
		if len(u.Args) > 0 {
			e.kind = kindTool
			e.style = argsSubcommand
			e.subcommands = subs("", u.Args...)
		}
		entries = append(entries, e)
	}
	return entries
}
