package catalog

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// execCase describes one exec as the receiver reports it. file defaults to exe, comm to Basename(file) cut to
// 15 bytes, and argv[0] to file.
type execCase struct {
	name string
	exe  string   // process.executable.path (resolved)
	file string   // compilerwatch.exec.filename (as invoked)
	argv []string // process.command_args without argv[0]
	comm string
	anc  []string // ancestors, "pid:comm", nearest first
	// ancExe are the ancestors' executable names, parallel to anc; nil takes each ancestor's comm.
	ancExe []string
	trunc  bool // argv was truncated

	want     string // compiler name; "" = not a compiler
	lang     string
	matchSig string
}

func (c execCase) view() *ExecView {
	file := c.file
	if file == "" {
		file = c.exe
	}
	comm := c.comm
	if comm == "" {
		comm = Basename(file)
		if len(comm) > CommLen {
			comm = comm[:CommLen]
		}
	}
	args := append([]string{file}, c.argv...)
	ancExe := c.ancExe
	if ancExe == nil {
		for _, a := range c.anc {
			_, comm, _ := strings.Cut(a, ":")
			ancExe = append(ancExe, comm)
		}
	}
	return &ExecView{
		ExePath:       c.exe,
		ExeName:       Basename(c.exe),
		Filename:      file,
		Argv0:         file,
		Comm:          comm,
		Args:          Strings(args),
		Ancestors:     Strings(c.anc),
		AncestorExes:  Strings(ancExe),
		ArgsTruncated: c.trunc,
		Known:         catalogKnown{NewMatcher(Builtin())},
	}
}

// catalogKnown stands in for the processor's memory of reported compilers in pure Matcher tests: an ancestor is
// known when its executable name is one the catalog reports by name alone (a driver, an assembler) or go.
type catalogKnown struct{ m *Matcher }

func (k catalogKnown) Trust(_ string, _ uint32, exe string) uint8 {
	e := k.m.Lookup(exe)
	switch {
	case e == nil || e.kind == kindStage:
		return 0
	case e.kind == kindTool && e.style != argsGo:
		return 0
	}
	return confers(e)
}

var shellAncestors = []string{"100:bash", "1:containerd-shim"}

func matcherCases() []execCase {
	sh := shellAncestors
	return []execCase{
		// C and C++ drivers, plain, versioned, symlinked and cross-prefixed.
		{name: "gcc", exe: "/usr/bin/gcc", argv: []string{"-c", "x.c"}, anc: sh, want: "gcc", lang: langC, matchSig: MatchExecutableName},
		{name: "gcc via versioned binary", exe: "/usr/bin/x86_64-linux-gnu-gcc-12", file: "/usr/bin/gcc", anc: sh, want: "gcc", lang: langC, matchSig: MatchExecutableName},
		{name: "gcc-12 invoked", exe: "/usr/bin/x86_64-linux-gnu-gcc-12", file: "/usr/bin/gcc-12", anc: sh, want: "gcc", lang: langC, matchSig: MatchExecutableName},
		{name: "cc symlink resolves to gcc", exe: "/usr/bin/x86_64-linux-gnu-gcc-12", file: "/usr/bin/cc", anc: sh, want: "gcc", lang: langC, matchSig: MatchExecutableName},
		{name: "cc unresolved", exe: "", file: "/usr/bin/cc", anc: sh, want: "cc", lang: langC, matchSig: MatchInvokedName},
		{name: "c99 script runs under dash", exe: "/usr/bin/dash", file: "/usr/bin/c99", anc: sh, want: "cc", lang: langC, matchSig: MatchInvokedName},
		{name: "g++", exe: "/usr/bin/g++", anc: sh, want: "g++", lang: langCXX, matchSig: MatchExecutableName},
		{name: "cross g++ versioned", exe: "/usr/bin/x86_64-linux-gnu-g++-12", anc: sh, want: "g++", lang: langCXX, matchSig: MatchExecutableName},
		{name: "aarch64 cross gcc", exe: "/usr/bin/aarch64-linux-gnu-gcc", anc: sh, want: "gcc", lang: langC, matchSig: MatchExecutableName},
		{name: "arm-none-eabi-gcc", exe: "/opt/arm/bin/arm-none-eabi-gcc", anc: sh, want: "gcc", lang: langC, matchSig: MatchExecutableName},
		{name: "mingw g++ posix", exe: "/usr/bin/x86_64-w64-mingw32-g++-posix", anc: sh, want: "g++", lang: langCXX, matchSig: MatchExecutableName},
		{name: "c++", exe: "/usr/bin/c++", anc: sh, want: "c++", lang: langCXX, matchSig: MatchExecutableName},
		{name: "clang-19", exe: "/usr/lib/llvm-19/bin/clang", file: "/usr/bin/clang-19", anc: sh, want: "clang", lang: langC, matchSig: MatchExecutableName},
		{name: "clang versioned binary", exe: "/usr/bin/clang-19", anc: sh, want: "clang", lang: langC, matchSig: MatchExecutableName},
		{name: "clang++ symlink keeps its personality", exe: "/usr/lib/llvm-19/bin/clang", file: "/usr/bin/clang++", anc: sh, want: "clang++", lang: langCXX, matchSig: MatchExecutableName},
		{name: "cc symlink to clang", exe: "/usr/lib/llvm-19/bin/clang", file: "/usr/bin/cc", anc: sh, want: "clang", lang: langC, matchSig: MatchExecutableName},
		{name: "clang++-19 binary", exe: "/usr/bin/clang++-19", anc: sh, want: "clang++", lang: langCXX, matchSig: MatchExecutableName},
		{name: "clang -cc1 under clang is a stage", exe: "/usr/lib/llvm-19/bin/clang", argv: []string{"-cc1", "-triple"}, anc: []string{"50:clang", "1:bash"}},
		{name: "clang -cc1 from renamed driver", exe: "/usr/lib/llvm-19/bin/clang", argv: []string{"-cc1"}, anc: []string{"50:x", "1:bash"}, want: "clang", lang: langC, matchSig: MatchCompilerStage},
		{name: "tcc", exe: "/usr/bin/tcc", anc: sh, want: "tcc", lang: langC, matchSig: MatchExecutableName},
		{name: "icx", exe: "/opt/intel/oneapi/compiler/latest/bin/icx", anc: sh, want: "icx", lang: langC, matchSig: MatchExecutableName},
		{name: "icpx", exe: "/opt/intel/oneapi/compiler/latest/bin/icpx", anc: sh, want: "icpx", lang: langCXX, matchSig: MatchExecutableName},
		{name: "icc", exe: "/opt/intel/bin/icc", anc: sh, want: "icc", lang: langC, matchSig: MatchExecutableName},
		{name: "bcc", exe: "/usr/bin/bcc", anc: sh, want: "bcc", lang: langC, matchSig: MatchExecutableName},
		// Fortran and Go.
		{name: "gfortran-12", exe: "/usr/bin/x86_64-linux-gnu-gfortran-12", file: "/usr/bin/gfortran", anc: sh, want: "gfortran", lang: langFortran, matchSig: MatchExecutableName},
		{name: "gccgo", exe: "/usr/bin/gccgo-12", anc: sh, want: "gccgo", lang: langGo, matchSig: MatchExecutableName},
		{name: "go build", exe: "/usr/local/go/bin/go", argv: []string{"build", "./..."}, anc: sh, want: "go", lang: langGo, matchSig: MatchArguments},
		{name: "go -C dir run", exe: "/usr/local/go/bin/go", argv: []string{"-C", "/src", "run", "."}, anc: sh, want: "go", lang: langGo, matchSig: MatchArguments},
		{name: "go install", exe: "/usr/local/go/bin/go", argv: []string{"install", "example.com/x@latest"}, anc: sh, want: "go", lang: langGo, matchSig: MatchArguments},
		{name: "go test", exe: "/usr/local/go/bin/go", argv: []string{"test", "./..."}, anc: sh, want: "go", lang: langGo, matchSig: MatchArguments},
		{name: "go tool compile", exe: "/usr/local/go/bin/go", argv: []string{"tool", "compile", "x.go"}, anc: sh, want: "go", lang: langGo, matchSig: MatchArguments},
		{name: "go version", exe: "/usr/local/go/bin/go", argv: []string{"version"}, anc: sh},
		{name: "go env", exe: "/usr/local/go/bin/go", argv: []string{"env", "GOPATH"}, anc: sh},
		{name: "go mod download", exe: "/usr/local/go/bin/go", argv: []string{"mod", "download"}, anc: sh},
		{name: "go tool pprof", exe: "/usr/local/go/bin/go", argv: []string{"tool", "pprof"}, anc: sh},
		{name: "go compile stage under go", exe: "/usr/local/go/pkg/tool/linux_amd64/compile", argv: []string{"-o", "x.a"}, anc: []string{"70:go", "1:bash"}},
		{name: "go link stage under go", exe: "/usr/local/go/pkg/tool/linux_amd64/link", anc: []string{"70:go"}},
		{name: "go compile run directly", exe: "/usr/local/go/pkg/tool/linux_amd64/compile", anc: sh, want: "go", lang: langGo, matchSig: MatchCompilerStage},
		{name: "go toolchain from module cache", exe: "/root/go/pkg/mod/golang.org/toolchain@v0.0.1-go1.26.0.linux-amd64/pkg/tool/linux_amd64/link", anc: []string{"9:make"}, want: "go", lang: langGo, matchSig: MatchCompilerStage},
		{name: "coreutils link is not go", exe: "/usr/bin/link", anc: sh},
		{name: "a compile script is not go", exe: "/usr/local/bin/compile", anc: sh},
		// JVM.
		{name: "javac", exe: "/usr/lib/jvm/java-17-openjdk-amd64/bin/javac", file: "/usr/bin/javac", anc: sh, want: "javac", lang: langJava, matchSig: MatchExecutableName},
		{name: "ecj", exe: "/usr/bin/ecj", anc: sh, want: "ecj", lang: langJava, matchSig: MatchExecutableName},
		{name: "java source file", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-cp", "lib", "Hello.java", "arg"}, anc: sh, want: "java", lang: langJava, matchSig: MatchArguments},
		{name: "java --source", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"--source", "21", "script"}, anc: sh, want: "java", lang: langJava, matchSig: MatchArguments},
		{name: "java -jar", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-jar", "app.jar", "Foo.java"}, anc: sh},
		{name: "java main class", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-Xmx1g", "-cp", "app.jar", "com.example.Main"}, anc: sh},
		{name: "java -version", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-version"}, anc: sh},
		// Arguments the kernel or the byte limit shaped: shebang lines, many options, truncated argv.
		{name: "java shebang --source as one argument", exe: "/usr/lib/jvm/java-21/bin/java", file: "./script", argv: []string{"--source 21", "./script", "a"}, anc: sh, want: "java", lang: langJava, matchSig: MatchArguments},
		{name: "java shebang with options before --source", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-cp /x --source 21", "./script"}, anc: sh, want: "java", lang: langJava, matchSig: MatchArguments},
		{name: "java shebang -cp value then main class", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-cp /x", "com.Main"}, anc: sh},
		{name: "java after 100 options", exe: "/usr/lib/jvm/java-21/bin/java", argv: append(repeat("-Da=b", 100), "X.java"), anc: sh, want: "java", lang: langJava, matchSig: MatchArguments},
		{name: "java truncated inside a huge option", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-Dpad=" + strings.Repeat("x", 4000)}, trunc: true, anc: sh, want: "java", lang: langJava, matchSig: MatchArguments},
		{name: "java truncated inside the classpath", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-cp", strings.Repeat("x", 4000)}, trunc: true, anc: sh, want: "java", lang: langJava, matchSig: MatchArguments},
		{name: "java long classpath then main class, complete", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-cp", strings.Repeat("x", 4000), "com.Main"}, anc: sh},
		{name: "java truncated after the main class", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-cp", "a.jar", "com.Main", "arg"}, trunc: true, anc: sh},
		{name: "java truncated after -jar", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-jar", "app.jar", "x"}, trunc: true, anc: sh},
		{name: "java main class cut by the limit decides nothing", exe: "/usr/lib/jvm/java-21/bin/java", argv: []string{"-Da", "X.ja"}, trunc: true, anc: sh, want: "java", lang: langJava, matchSig: MatchArguments},
		{name: "go truncated before the subcommand", exe: "/usr/local/go/bin/go", argv: []string{"-C", strings.Repeat("d", 4000)}, trunc: true, anc: sh, want: "go", lang: langGo, matchSig: MatchArguments},
		{name: "go subcommand cut by the limit", exe: "/usr/local/go/bin/go", argv: []string{"ver"}, trunc: true, anc: sh, want: "go", lang: langGo, matchSig: MatchArguments},
		{name: "go version seen before truncation", exe: "/usr/local/go/bin/go", argv: []string{"version", "-m", "x"}, trunc: true, anc: sh},
		{name: "go build seen before truncation", exe: "/usr/local/go/bin/go", argv: []string{"build", "x"}, trunc: true, anc: sh, want: "go", lang: langGo, matchSig: MatchArguments},
		{name: "go shebang run with a flag", exe: "/usr/local/go/bin/go", argv: []string{"run -x", "./s.go"}, anc: sh, want: "go", lang: langGo, matchSig: MatchArguments},
		{name: "cargo after 100 options", exe: "/root/.cargo/bin/cargo", argv: append(repeat("-v", 100), "build"), anc: sh, want: "cargo", lang: langRust, matchSig: MatchArguments},
		{name: "cargo script", exe: "/root/.cargo/bin/cargo", argv: []string{"+nightly", "-Zscript", "./s.rs"}, anc: sh, want: "cargo", lang: langRust, matchSig: MatchArguments},
		{name: "cargo truncated before the subcommand", exe: "/root/.cargo/bin/cargo", argv: []string{"--config", "x"}, trunc: true, anc: sh, want: "cargo", lang: langRust, matchSig: MatchArguments},
		{name: "dotnet truncated before the subcommand", exe: "/usr/share/dotnet/dotnet", argv: []string{"-d"}, trunc: true, anc: sh, want: "dotnet", lang: langCSharp, matchSig: MatchArguments},
		{name: "ccache after 100 options", exe: "/usr/bin/ccache", argv: append(repeat("-v", 100), "gcc"), anc: sh, want: "gcc", lang: langC, matchSig: MatchArguments},
		{name: "kotlinc", exe: "/opt/kotlinc/bin/kotlinc-jvm", anc: sh, want: "kotlinc", lang: langKotlin, matchSig: MatchExecutableName},
		{name: "scalac", exe: "/usr/bin/scalac", anc: sh, want: "scalac", lang: langScala, matchSig: MatchExecutableName},
		// Rust.
		{name: "rustc", exe: "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/rustc", anc: sh, want: "rustc", lang: langRust, matchSig: MatchExecutableName},
		{name: "cargo build", exe: "/root/.cargo/bin/cargo", argv: []string{"build", "--release"}, anc: sh, want: "cargo", lang: langRust, matchSig: MatchArguments},
		{name: "cargo +nightly --color always test", exe: "/root/.cargo/bin/cargo", argv: []string{"+nightly", "--color", "always", "test"}, anc: sh, want: "cargo", lang: langRust, matchSig: MatchArguments},
		{name: "cargo rustc", exe: "/root/.cargo/bin/cargo", argv: []string{"rustc", "--", "-O"}, anc: sh, want: "cargo", lang: langRust, matchSig: MatchArguments},
		{name: "cargo --version", exe: "/root/.cargo/bin/cargo", argv: []string{"--version"}, anc: sh},
		{name: "cargo fetch", exe: "/root/.cargo/bin/cargo", argv: []string{"fetch"}, anc: sh},
		// Zig, .NET, Swift and others.
		{name: "zig cc", exe: "/opt/zig/zig", argv: []string{"cc", "-c", "x.c"}, anc: sh, want: "zig", lang: langC, matchSig: MatchArguments},
		{name: "zig c++", exe: "/opt/zig/zig", argv: []string{"c++", "x.cpp"}, anc: sh, want: "zig", lang: langCXX, matchSig: MatchArguments},
		{name: "zig build-exe", exe: "/opt/zig/zig", argv: []string{"build-exe", "main.zig"}, anc: sh, want: "zig", lang: langZig, matchSig: MatchArguments},
		{name: "zig version", exe: "/opt/zig/zig", argv: []string{"version"}, anc: sh},
		{name: "dotnet build", exe: "/usr/share/dotnet/dotnet", argv: []string{"build", "-c", "Release"}, anc: sh, want: "dotnet", lang: langCSharp, matchSig: MatchArguments},
		{name: "dotnet app.dll", exe: "/usr/share/dotnet/dotnet", argv: []string{"app.dll"}, anc: sh},
		{name: "swiftc via swift-frontend", exe: "/usr/bin/swift-frontend", file: "/usr/bin/swiftc", anc: sh, want: "swiftc", lang: langSwift, matchSig: MatchInvokedName},
		{name: "swift-frontend stage under swiftc", exe: "/usr/bin/swift-frontend", argv: []string{"-frontend", "-c"}, anc: []string{"40:swiftc"}},
		{name: "swift build", exe: "/usr/bin/swift", argv: []string{"build"}, anc: sh, want: "swift", lang: langSwift, matchSig: MatchArguments},
		{name: "ghc versioned", exe: "/usr/lib/ghc/bin/ghc-9.4.7", anc: sh, want: "ghc", lang: langHaskell, matchSig: MatchExecutableName},
		{name: "csc", exe: "/usr/bin/csc", anc: sh, want: "csc", lang: langCSharp, matchSig: MatchExecutableName},
		{name: "mcs", exe: "/usr/bin/mcs", anc: sh, want: "mcs", lang: langCSharp, matchSig: MatchExecutableName},
		{name: "nvcc", exe: "/usr/local/cuda/bin/nvcc", anc: sh, want: "nvcc", lang: langCUDA, matchSig: MatchExecutableName},
		{name: "ptxas under nvcc", exe: "/usr/local/cuda/bin/ptxas", anc: []string{"12:nvcc"}},
		{name: "emcc", exe: "/emsdk/upstream/emscripten/emcc", anc: sh, want: "emcc", lang: langWasm, matchSig: MatchExecutableName},
		// Assemblers: flagged alone, not under a driver.
		{name: "as alone", exe: "/usr/bin/x86_64-linux-gnu-as", file: "/usr/bin/as", anc: sh, want: "as", lang: langAssembly, matchSig: MatchExecutableName},
		{name: "as under gcc", exe: "/usr/bin/x86_64-linux-gnu-as", file: "/usr/bin/as", anc: []string{"20:gcc", "1:bash"}},
		{name: "as under truncated cross gcc", exe: "/usr/bin/x86_64-linux-gnu-as", anc: []string{"20:x86_64-linux-gn", "1:make"}, ancExe: []string{"x86_64-linux-gnu-gcc-12", "make"}},
		{name: "nasm", exe: "/usr/bin/nasm", anc: sh, want: "nasm", lang: langAssembly, matchSig: MatchExecutableName},
		{name: "yasm", exe: "/usr/bin/yasm", anc: sh, want: "yasm", lang: langAssembly, matchSig: MatchExecutableName},
		// GCC stages: one finding per compilation, renamed drivers caught.
		{name: "cc1 under gcc", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:gcc", "10:make"}},
		{name: "cc1 under gcc-12", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:gcc-12"}},
		{name: "cc1plus under truncated cross g++", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1plus", anc: []string{"20:x86_64-linux-gn", "10:make"}, ancExe: []string{"x86_64-linux-gnu-g++-12", "make"}},
		// Ancestors are trusted by the kernel's executable name, never by comm.
		{name: "cc1 under a comm-spoofed gcc", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:gcc", "10:sh"}, ancExe: []string{"x", "busybox"}, want: "gcc", lang: langC, matchSig: MatchCompilerStage},
		{name: "cc1 under a truncated comm sharing a driver's prefix", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:x86_64-linux-gn"}, ancExe: []string{"x86_64-linux-gnu-evil"}, want: "gcc", lang: langC, matchSig: MatchCompilerStage},
		{name: "cc1 with no ancestor executable names", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:gcc"}, ancExe: []string{}, want: "gcc", lang: langC, matchSig: MatchCompilerStage},
		{name: "as under a comm-spoofed gcc", exe: "/usr/bin/x86_64-linux-gnu-as", anc: []string{"20:gcc"}, ancExe: []string{"x"}, want: "as", lang: langAssembly, matchSig: MatchExecutableName},
		{name: "cc1 under a memfd gcc", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:3"}, ancExe: []string{"memfd:gcc"}},
		{name: "cc1 under cc", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:cc", "10:sh"}},
		{name: "cc1 under renamed driver", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:x", "10:sh"}, want: "gcc", lang: langC, matchSig: MatchCompilerStage},
		{name: "cc1 with no ancestors", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", want: "gcc", lang: langC, matchSig: MatchCompilerStage},
		{name: "cc1plus under renamed driver", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1plus", anc: []string{"20:build", "10:sh"}, want: "g++", lang: langCXX, matchSig: MatchCompilerStage},
		{name: "cc1 under cpp is still flagged", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", argv: []string{"-E"}, anc: []string{"20:cpp"}, want: "gcc", lang: langC, matchSig: MatchCompilerStage},
		{name: "cc1 under java is flagged", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:java"}, want: "gcc", lang: langC, matchSig: MatchCompilerStage},
		{name: "cc1 under go is flagged", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:go"}, want: "gcc", lang: langC, matchSig: MatchCompilerStage},
		{name: "cc1obj renamed", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1obj", anc: sh, want: "gcc", lang: langObjC, matchSig: MatchCompilerStage},
		{name: "collect2 under gcc", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/collect2", anc: []string{"20:gcc"}},
		{name: "collect2 renamed", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/collect2", anc: []string{"20:x"}, want: "gcc", lang: langOther, matchSig: MatchCompilerStage},
		{name: "lto1 deep under gcc", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/lto1", anc: []string{"30:lto-wrapper", "29:ld", "28:collect2", "20:gcc"}},
		{name: "lto1 with no compiler ancestor", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/lto1", anc: []string{"30:ld", "1:sh"}, want: "gcc", lang: langOther, matchSig: MatchCompilerStage},
		{name: "f951 renamed", exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/f951", anc: sh, want: "gfortran", lang: langFortran, matchSig: MatchCompilerStage},
		// Wrappers.
		{name: "ccache alone", exe: "/usr/bin/ccache", argv: []string{"-s"}, anc: sh},
		{name: "ccache gcc", exe: "/usr/bin/ccache", argv: []string{"gcc", "-c", "x.c"}, anc: sh, want: "gcc", lang: langC, matchSig: MatchArguments},
		{name: "ccache masquerade symlink", exe: "/usr/bin/ccache", file: "/usr/lib/ccache/gcc", argv: []string{"-c", "x.c"}, anc: sh, want: "gcc", lang: langC, matchSig: MatchInvokedName},
		{name: "ccache with a non-compiler", exe: "/usr/bin/ccache", argv: []string{"make"}, anc: sh},
		// Comm as the last signal.
		{name: "fexecve memfd named gcc", exe: "/memfd:gcc (deleted)", file: "/dev/fd/3", comm: "3", anc: sh, want: "gcc", lang: langC, matchSig: MatchExecutableName},
		{name: "memfd comm names gcc", exe: "", file: "/dev/fd/3", comm: "memfd:gcc", anc: sh, want: "gcc", lang: langC, matchSig: MatchComm},
		{name: "deleted gcc", exe: "/tmp/gcc (deleted)", file: "/proc/self/fd/3", comm: "3", anc: sh, want: "gcc", lang: langC, matchSig: MatchExecutableName},
		{name: "deleted cc1 renamed driver", exe: "/tmp/cc1 (deleted)", file: "/proc/self/fd/3", anc: sh, want: "gcc", lang: langC, matchSig: MatchCompilerStage},
		{name: "memfd of another name", exe: "/memfd:x (deleted)", file: "/dev/fd/3", comm: "3", anc: sh},
		{name: "comm cut cross gcc ambiguous", exe: "", file: "", comm: "x86_64-linux-gn", anc: sh},
		// Must not match.
		{name: "clangd", exe: "/usr/lib/llvm-19/bin/clangd", anc: sh},
		{name: "clang-format-19", exe: "/usr/bin/clang-format-19", anc: sh},
		{name: "clang-tidy", exe: "/usr/bin/clang-tidy", anc: sh},
		{name: "gcc-ar", exe: "/usr/bin/x86_64-linux-gnu-gcc-ar-12", file: "/usr/bin/gcc-ar", anc: sh},
		{name: "gcc-nm", exe: "/usr/bin/gcc-nm-12", anc: sh},
		{name: "gcc-ranlib", exe: "/usr/bin/x86_64-linux-gnu-gcc-ranlib-12", anc: sh},
		{name: "cpp", exe: "/usr/bin/x86_64-linux-gnu-cpp-12", file: "/usr/bin/cpp", anc: sh},
		{name: "make", exe: "/usr/bin/make", argv: []string{"-j8"}, anc: sh},
		{name: "cmake", exe: "/usr/bin/cmake", anc: sh},
		{name: "ld", exe: "/usr/bin/x86_64-linux-gnu-ld.bfd", file: "/usr/bin/ld", anc: []string{"20:collect2"}},
		{name: "sh", exe: "/usr/bin/dash", file: "/bin/sh", argv: []string{"-c", "gcc -c x.c"}, anc: sh},
		{name: "bash", exe: "/usr/bin/bash", anc: sh},
		{name: "busybox sh", exe: "/bin/busybox", file: "/bin/sh", anc: sh},
		{name: "python", exe: "/usr/bin/python3.11", file: "/usr/bin/python3", argv: []string{"setup.py", "build"}, anc: sh},
		{name: "node", exe: "/usr/bin/node", anc: sh},
		{name: "perl", exe: "/usr/bin/perl", anc: sh},
		{name: "foo-as is not an assembler", exe: "/usr/bin/foo-as", anc: sh},
		{name: "cc1 spelled as a file, not a stage path", exe: "/usr/bin/cc1-helper", anc: sh},
		{name: "empty record", exe: ""},
	}
}

func repeat(a string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = a
	}
	return out
}

func TestMatcher(t *testing.T) {
	m := NewMatcher(Builtin())
	cases := matcherCases()
	assert.GreaterOrEqual(t, len(cases), 60)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := m.match(tc.view())
			if tc.want == "" {
				assert.False(t, ok, "unexpected match %+v", got)
				return
			}
			if assert.True(t, ok, "no match") {
				assert.Equal(t, Match{Name: tc.want, Language: tc.lang, Signal: tc.matchSig}, got)
			}
		})
	}
}

// userEntries extend the built-in catalog in the user-entry tests.
func userEntries() []User {
	return []User{
		{Name: "bazel", Language: langOther, Executables: []string{"bazel", "bazelisk"}, Args: []string{"build", "test"}},
		{Name: "mycc", Language: langC, Executables: []string{"/opt/tools/bin/mycc"}},
		{Name: "gcc-custom", Language: langC, Executables: []string{"gcc"}},
	}
}

func TestMatcherUserEntries(t *testing.T) {
	m := NewMatcher(Entries(false, userEntries()))
	for _, tc := range userEntryCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := m.match(tc.view())
			if tc.want == "" {
				assert.False(t, ok, "unexpected match %+v", got)
				return
			}
			assert.Equal(t, Match{Name: tc.want, Language: tc.lang, Signal: tc.matchSig}, got)
		})
	}

	m = NewMatcher(Entries(true, []User{
		{Name: "mycc", Language: langC, Executables: []string{"mycc"}},
	}))
	_, ok := m.match(execCase{exe: "/usr/bin/gcc"}.view())
	assert.False(t, ok, "replace drops the built-in gcc")
	_, ok = m.match(execCase{exe: "/usr/local/go/pkg/tool/linux_amd64/compile"}.view())
	assert.False(t, ok, "replace drops the Go stages")
	got, ok := m.match(execCase{exe: "/usr/bin/mycc-2"}.view())
	assert.True(t, ok)
	assert.Equal(t, "mycc", got.Name)
}

// userEntryCases are matched against the catalog of userEntries.
func userEntryCases() []execCase {
	return []execCase{
		{name: "user tool with subcommand", exe: "/usr/bin/bazelisk", argv: []string{"--batch", "build", "//..."}, want: "bazel", lang: langOther, matchSig: MatchArguments},
		{name: "user tool without subcommand", exe: "/usr/bin/bazel", argv: []string{"info"}},
		{name: "user absolute path", exe: "/opt/tools/bin/mycc", want: "mycc", lang: langC, matchSig: MatchExecutableName},
		{name: "same basename elsewhere", exe: "/usr/bin/mycc"},
		{name: "user entry overrides built-in", exe: "/usr/bin/gcc-12", want: "gcc-custom", lang: langC, matchSig: MatchExecutableName},
		{name: "built-ins kept", exe: "/usr/bin/rustc", want: "rustc", lang: langRust, matchSig: MatchExecutableName},
	}
}

func TestStripVersion(t *testing.T) {
	for in, want := range map[string]string{
		"gcc-12": "gcc", "ghc-9.4.7": "ghc", "clang++-19": "clang++", "cc1": "cc1", "lto1": "lto1",
		"x86_64-w64-mingw32-gcc-10-posix": "x86_64-w64-mingw32-gcc", "gcc-ar": "gcc-ar", "python3.11": "python3.11",
		"gcc-": "gcc-", "-12": "-12",
	} {
		assert.Equal(t, want, stripVersion(in), in)
	}
}

func TestIsGoToolPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/usr/local/go/pkg/tool/linux_amd64/compile": true,
		"/usr/lib/go-1.22/pkg/tool/linux_arm64/link": true,
		"pkg/tool/linux_amd64/asm":                   true,
		"/usr/local/go/pkg/tool/linux_amd64/vet":     false,
		"/usr/local/go/pkg/tool/compile":             false,
		"/usr/local/go/pkg/tools/linux_amd64/link":   false,
		"/usr/bin/compile":                           false,
		"":                                           false,
	} {
		assert.Equal(t, want, isGoToolPath(p), p)
	}
}

func BenchmarkMatcher(b *testing.B) {
	m := NewMatcher(Builtin())
	views := []*ExecView{
		execCase{exe: "/usr/bin/bash", file: "/bin/sh", argv: []string{"-c", "true"}, anc: shellAncestors}.view(),
		execCase{exe: "/usr/bin/python3.11", file: "/usr/bin/python3", argv: []string{"app.py"}, anc: shellAncestors}.view(),
		execCase{exe: "/usr/bin/x86_64-linux-gnu-gcc-12", file: "/usr/bin/gcc", anc: shellAncestors}.view(),
		execCase{exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", anc: []string{"20:gcc", "10:make"}}.view(),
		execCase{exe: "/usr/local/go/bin/go", argv: []string{"build", "./..."}, anc: shellAncestors}.view(),
	}
	names := []string{"non-compiler", "interpreter", "driver", "stage-suppressed", "go-build"}
	for i, v := range views {
		b.Run(names[i], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.match(v)
			}
		})
	}
}
