package probe

import "strings"

// CandidateBloom is the Bloom filter the BPF program's candidate filter
// ("prefilter: compilers") checks exec names against, built from the names
// that can matter to compiler detection. Its hash and layout are the ones
// bpf/exec.c uses (enum cand_hash and the CAND_* limits of bpf/exec.h).
type CandidateBloom struct {
	words [candBloomWords]uint64
	names int
}

const (
	candBloomBitsLog2 = uint(execLimitCAND_BLOOM_BITS_LOG2)
	candBloomWords    = int(execLimitCAND_BLOOM_WORDS)
	candBloomMask     = uint64(1)<<candBloomBitsLog2 - 1
	candHashMul       = uint64(execCandHashCAND_HASH_MUL)
	candMix           = uint64(execCandHashCAND_MIX_HI)<<32 | uint64(execCandHashCAND_MIX_LO)
	// CandScanMax is the longest base name the kernel scans; an exec with a
	// longer one is sent.
	CandScanMax   = int(execLimitCAND_SCAN_MAX)
	candEndsMax   = int(execLimitCAND_ENDS_MAX)
	candGroupsMax = int(execLimitCAND_GROUPS_MAX)
	// SeenCgroupsMax is how many cgroups the candidate filter remembers as
	// seen (an LRU).
	SeenCgroupsMax = int(execLimitSEEN_CGROUPS_MAX)
)

// NewCandidateBloom builds the filter over names. The empty name is never a
// candidate.
func NewCandidateBloom(names []string) *CandidateBloom {
	b := &CandidateBloom{}
	for _, n := range names {
		if n == "" {
			continue
		}
		a, c := candBits(candHash(n))
		b.words[a>>6] |= 1 << (a & 63)
		b.words[c>>6] |= 1 << (c & 63)
		b.names++
	}
	return b
}

// Names is how many names the filter was built from.
func (b *CandidateBloom) Names() int { return b.names }

// candHash is the polynomial of bpf/exec.c's cand_name(), read from the last
// byte to the first.
func candHash(s string) uint64 {
	var h uint64
	for i := len(s) - 1; i >= 0; i-- {
		h = h*candHashMul + uint64(s[i])
	}
	return h
}

func candBits(h uint64) (a, b uint64) {
	x := h * candMix
	return x >> (64 - candBloomBitsLog2), (x >> (64 - 2*candBloomBitsLog2)) & candBloomMask
}

func (b *CandidateBloom) probe(h uint64) bool {
	a, c := candBits(h)
	return (b.words[a>>6]>>(a&63))&(b.words[c>>6]>>(c&63))&1 != 0
}

// MayMatch is the kernel's check of one name (a comm, or the base name of
// an executable, a filename or argv[0]), step for step: whether the exec is
// sent on account of it. It exists so that tests can check, without a
// kernel, that the kernel never drops a name the detector matches.
func (b *CandidateBloom) MayMatch(name string) bool {
	if len(name) > PathBytesMax {
		return true
	}
	end := len(name)
	if strings.HasSuffix(name, " (deleted)") {
		end -= len(" (deleted)")
	}
	var h [candEndsMax]uint64
	var kept [][candEndsMax]uint64
	n := 1
	chain, fver := true, true
	flen := 0
	var first byte
	for k := 0; k < CandScanMax; k++ {
		c := byte('/')
		if k < end {
			c = name[end-1-k]
		}
		if c == '/' || c == '-' || c == ':' {
			if len(kept) >= candGroupsMax {
				return true
			}
			kept = append(kept, h)
		}
		if c == '/' {
			for _, g := range kept {
				for _, v := range g {
					if b.probe(v) {
						return true
					}
				}
			}
			return false
		}
		for i := range h {
			h[i] = h[i]*candHashMul + uint64(c)
		}
		if c == '-' {
			ver := flen == 5 || (flen > 0 && fver && first >= '0' && first <= '9')
			if chain && ver && n < candEndsMax {
				h[n] = 0
				n++
			} else {
				chain = false
			}
			fver, flen = true, 0
		} else {
			fver = fver && (c >= '0' && c <= '9' || c == '.')
			flen++
		}
		first = c
	}
	return true
}
