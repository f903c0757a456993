// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The limits and flags the BPF program and its Go reader share, defined
// here once. They are enums, not macros, so that they reach the object's
// BTF: bpf2go -type exports each one to Go (internal/probe/exec_bpfel.go),
// where internal/probe, internal/event and the receiver's config read them.

#ifndef COMPILERWATCH_EXEC_H
#define COMPILERWATCH_EXEC_H

/* Hard limits compiled into the program; the receiver refuses config above them. */
enum limit {
	ARGS_BYTES_HARD_MAX = 32768, /* argv bytes per record */
	PATH_DEPTH_HARD_MAX = 128,   /* path components walked per path */
	ANCESTORS_HARD_MAX = 16,     /* ancestors per record */
	PATH_BYTES_MAX = 4096,       /* PATH_MAX: per captured path */
	NAME_CHUNK = 256,            /* NAME_MAX + 1: one path component, or an executable's name */
	MOUNT_STACK = 3,             /* mounts stacked on one directory, crossed per level */
	/*
	 * Cgroup levels kept from the root, whatever max_path_depth is. 16
	 * names of at most NAME_MAX bytes and a NUL fill PATH_BYTES_MAX
	 * exactly, so the byte budget never cuts the top.
	 */
	CGROUP_DEPTH_MAX = 16,
	/*
	 * The candidate filter ("prefilter: compilers"): a Bloom filter of
	 * CAND_BLOOM_BITS bits over the hashes of the names that can matter to
	 * compiler detection, and the bounds of the name scan.
	 */
	CAND_BLOOM_BITS_LOG2 = 16,
	CAND_BLOOM_WORDS = (1 << 16) / 64, /* 8 KiB of read-only data */
	CAND_SCAN_MAX = 256,               /* bytes of a base name scanned; a longer one is sent */
	CAND_ENDS_MAX = 4,                 /* the name, and up to 3 stripped version fields */
	CAND_GROUPS_MAX = 8,               /* '-', ':' and the start in a base name; more is sent */
	/*
	 * Cgroups remembered as seen (LRU): the first filtered exec of a cgroup
	 * not in the set is sent anyway, flagged FLAG_CGROUP_SEEN.
	 */
	SEEN_CGROUPS_MAX = 8192,
	/*
	 * Parents climbed to tell whether an exec descends from its pid
	 * namespace's init (FLAG_IN_INIT_TREE); a deeper chain is left unknown.
	 */
	INIT_TREE_STEPS_MAX = 64,
};

/*
 * The candidate-name hash, one polynomial over a name read from its last byte
 * to its first (h = h * CAND_HASH_MUL + byte), then mixed with the 64-bit
 * constant CAND_MIX_HI:CAND_MIX_LO; the top CAND_BLOOM_BITS_LOG2 bits and the
 * next CAND_BLOOM_BITS_LOG2 bits of the product are the two Bloom filter bits.
 * User space builds the filter with the same constants.
 */
enum cand_hash {
	CAND_HASH_MUL = 0x01000193,
	CAND_MIX_HI = 0x9e3779b9u,
	CAND_MIX_LO = 0x7f4a7c15u,
};

/* struct event's flags: the truncation bits (event.Truncation in Go), then other facts. */
enum record_flag {
	TRUNC_ARGS = 1 << 0,        /* argv longer than max_args_bytes */
	TRUNC_PATH = 1 << 1,        /* executable path: depth or bytes */
	TRUNC_CWD = 1 << 2,         /* working directory */
	TRUNC_PARENT_PATH = 1 << 3, /* parent's executable path */
	TRUNC_FILENAME = 1 << 4,    /* bprm->filename */
	TRUNC_CGROUP = 1 << 5,      /* cgroup path */
	TRUNC_ANCESTORS = 1 << 6,   /* more ancestors than configured */
	TRUNC_MASK = 0xff,          /* the bits reserved for truncations */

	FLAG_EXE_DELETED = 1 << 8,
	FLAG_CWD_DELETED = 1 << 9,
	FLAG_PARENT_DELETED = 1 << 10,
	FLAG_CGROUP_V1 = 1 << 11,
	/*
	 * "prefilter: compilers": not a candidate, sent only because it is the
	 * first exec seen in its cgroup. Its reader treats it as "this
	 * container was seen", never as an exec.
	 */
	FLAG_CGROUP_SEEN = 1 << 15,

	/* Process context. */
	FLAG_INTERACTIVE = 1 << 16,     /* the task has a controlling terminal (signal->tty) */
	FLAG_INIT_TREE_KNOWN = 1 << 17, /* the parent walk below reached an answer */
	FLAG_IN_INIT_TREE = 1 << 18,    /* the task descends from the init of its pid namespace, and so on out */
};

/* struct event's ns_uid when the euid has no mapping in the task's user namespace, or it was not read. */
enum ns_uid_value {
	NS_UID_UNKNOWN = 0xffffffff,
};

/*
 * Facts about an executed file (struct event's exe_facts and pexe_facts;
 * event.FileFlags in Go). The kernel reports them with the filesystem's
 * magic; user space, which knows whether the process runs in a container,
 * decides the origin from them.
 */
enum file_fact {
	FILE_MEMFD = 1 << 0,        /* memfd_create() */
	FILE_UNLINKED = 1 << 1,     /* unlinked from its directory */
	FILE_OVL_KNOWN = 1 << 2,    /* overlayfs, and its layer was read */
	FILE_OVL_UPPER = 1 << 3,    /* overlayfs upper layer */
	FILE_ROOT_MOUNT = 1 << 4,   /* on the mount of the exec'ing task's root */
	FILE_ROOT_FS = 1 << 5,      /* on the filesystem (superblock) of that root */
	FILE_USERNS_FS = 1 << 6,    /* filesystem mounted from a user namespace */
	FILE_USERNS_MOUNT = 1 << 7, /* mount outside every mount namespace the initial user namespace owns */
};

#endif
