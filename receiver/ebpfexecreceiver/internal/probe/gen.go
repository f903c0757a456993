package probe

// The BPF C source lives in bpf/ at the module root. The generated Go and
// object files are committed, so building and testing need no clang;
// `make generate` reruns this with clang-19 and `make generate-check` fails
// when the committed output is stale.
//
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type event -type ancestor -type limit -type record_flag -type file_fact -type stat_idx -type cand_hash -type ns_uid_value -go-package probe exec ../../../../bpf/exec.c -- -I../../../../bpf/include
