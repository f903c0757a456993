package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import "strings"

// NormalizeContainerID strips a runtime prefix ("containerd://", "cri-o://", "docker://", any "<scheme>://") and
// returns the id when it is a full container id (64 lowercase hex), "" otherwise. Truncated ids are refused
// rather than prefix-matched: a 12-hex id can match another container's.
func NormalizeContainerID(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		id = id[i+3:]
	}
	if len(id) != 64 {
		return ""
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return id
}
