//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// compilerwatch exec capture: one ring-buffer record per successful exec.
//
// Attach point: tp_btf/sched_process_exec. It fires after the point of no
// return of execve/execveat, so failed execs never produce a record, and the
// new mm (argv), the new comm and bprm are all in place.
//
// Kernel requirements (the true minimum for what is used here):
//   - BTF (CONFIG_DEBUG_INFO_BTF) for CO-RE and tp_btf;
//   - 5.8: BPF ring buffer, bpf_ringbuf_query and bpf_ktime_get_boot_ns;
//   - bounded loops (5.3), tp_btf and loads through BTF pointers (5.5) and
//     BTF-verified global functions (5.6) are below that;
//   - the direct program: 6.2 (bpf_rdonly_cast);
//   - overlayfs built as a module: its BTF (CONFIG_DEBUG_INFO_BTF_MODULES,
//     5.11) for the overlay layer; without it only that fact is missing;
//   - a cgroup deeper than CGROUP_DEPTH_MAX is cut at the leaf: 6.0+ jumps
//     to the kept top with cgroup->ancestors[]; before 6.0 the walk climbs
//     one parent at a time, up to CGROUP_SKIP_MAX levels.
//   - the process context (signal->tty, the pid and user namespace
//     fields) is read from fields every kernel above has;
// No kprobes, fentry/fexit or LSM hooks are used: many clusters lack them.
//
// Two programs, one record format. The loader tries handle_exec_btf first
// and falls back to handle_exec when the kernel refuses it:
//   - handle_exec_btf ("direct", Linux 6.2+): the path walks run on BTF
//     pointers made from scalars with the bpf_rdonly_cast() kfunc (6.2), so
//     every field read is a plain load instead of a probe-read helper call,
//     and short dentry names are copied from the dentry with plain loads;
//   - handle_exec ("portable", 5.8+): the walks read with probe-read helpers.
//
// Record layout: a fixed header (struct event, generated into Go by bpf2go
// -type event) followed by variable data, appended in this order:
//   argv bytes | exe path | cwd | parent exe path | filename | cgroup path |
//   ancestors (n x (struct ancestor, then its exe_len bytes of executable
//   name, NUL-terminated))
// Paths are written leaf first as NUL-terminated components; user space
// reverses them. This keeps the walk a simple forward write. A truncated
// file path keeps its deepest components, a truncated cgroup path its top.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_core_read.h"
#include "bpf/bpf_tracing.h"
#include "exec.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TASK_COMM_LEN 16
#define CGROUP_SUBSYS_HARD_MAX 16

/*
 * Data area. The worst case of every field at its hard maximum (32 KiB of
 * argv, five 4 KiB paths, 16 ancestors with 256-byte names: about 57 KiB)
 * stays below DATA_MASK,
 * so masking an offset with DATA_MASK never changes a valid one; it only
 * proves the bound to the verifier, which can lose range information across
 * register copies. The slack after DATA_MASK fits the largest single write.
 */
#define DATA_MASK 0xffff
#define DATA_SIZE (DATA_MASK + 1 + PATH_BYTES_MAX)

#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define TMPFS_MAGIC 0x01021994
#define HUGETLBFS_MAGIC 0x958458f6

enum stat_idx {
	STAT_EXECS = 0,      /* every exec the program saw */
	STAT_RB_DROPS = 1,   /* ring buffer full: record lost */
	STAT_NO_SCRATCH = 2, /* scratch buffer unavailable: record lost */
	STAT_FILTERED = 3,   /* prefilter: counted, not sent (host mount namespace) */
	STAT_FILTERED_NONCAND = 4, /* prefilter compilers: counted, not sent (no candidate name) */
	STAT_CGROUP_SEEN = 5,      /* prefilter compilers: not a candidate, sent as its cgroup's first */
	STAT_MAX,
};

/*
 * One ancestor. Its executable's base name (the dentry name of
 * mm->exe_file: what the kernel executes, not the comm the process may
 * rewrite) follows it in the record, exe_len bytes with the NUL; exe_len is
 * 0 when there is none (a kernel thread, an exiting task) or it did not fit.
 */
struct ancestor {
	__u32 pid;
	char comm[TASK_COMM_LEN];
	__u16 exe_len;
	__u16 _pad;
};

struct event {
	__u64 boot_ns;
	__u32 pid;
	__u32 ppid;
	__u32 vpid;
	__u32 uid;
	__u32 ruid;
	__u32 gid;
	__u32 argc;
	__u32 flags;
	__u16 args_len;
	__u16 exe_len;
	__u16 cwd_len;
	__u16 pexe_len;
	__u16 filename_len;
	__u16 cgroup_len;
	__u8 ancestor_count;
	__u8 exe_facts;  /* FILE_* */
	__u8 pexe_facts; /* FILE_* */
	__u8 _pad;
	__u32 exe_magic;  /* the executable's filesystem magic (statfs f_type), 0 for none */
	__u32 pexe_magic; /* the parent's */
	/*
	 * Where user names come from: the euid as the task's user namespace
	 * numbers it (NS_UID_UNKNOWN when unmapped or not read), its mount
	 * namespace's inode number (as /proc/<pid>/ns/mnt stats), and its root
	 * directory's inode and device (kernel dev_t, MAJOR << 20 | MINOR).
	 */
	__u32 ns_uid;
	__u32 mnt_ns;
	__u64 root_ino;
	__u32 root_dev;
	__u32 init_pid; /* the init (child reaper) of the task's pid namespace, host pid; 0 if none */
	char comm[TASK_COMM_LEN];
};

/* The state of cand_name()'s scan. */
struct cand_scan {
	__u64 kept[CAND_GROUPS_MAX][CAND_ENDS_MAX]; /* the running hashes at each boundary */
	__u32 n, g, flen;
	__u8 chain, fver, first, _pad;
};

struct scratch {
	struct event hdr;
	__u8 data[DATA_SIZE];
	__u64 ptr_slot; /* see as_scalar(); not part of the record */
	__u64 last_cgroup; /* the cgroup of this CPU's last filtered exec, known seen */
	struct cand_scan cand; /* see cand_name() */
};

/* Keep these types in BTF so bpf2go generates their Go types. */
const struct ancestor *unused_ancestor __attribute__((unused));
const enum limit *unused_limit __attribute__((unused));
const enum record_flag *unused_record_flag __attribute__((unused));
const enum file_fact *unused_file_fact __attribute__((unused));
const enum stat_idx *unused_stat_idx __attribute__((unused));
const enum cand_hash *unused_cand_hash __attribute__((unused));
const enum ns_uid_value *unused_ns_uid_value __attribute__((unused));

/* Limits, set from the receiver's config at load time. */
const volatile __u32 max_args_bytes = 4096;
const volatile __u32 max_path_depth = 64;
const volatile __u32 max_ancestors = 4;
/*
 * Wake the reader only when this many bytes wait in the ring. Below it,
 * records are written with BPF_RB_NO_WAKEUP and the reader picks them up on
 * its periodic poll. A wakeup is an irq_work self-IPI: in a VM it traps to
 * the hypervisor and costs tens of microseconds per exec. 0 wakes on every
 * record.
 */
const volatile __u64 wakeup_bytes = 0;
/*
 * The optional prefilter ("prefilter: containers"). When non-zero, execs whose
 * mount namespace is this one (the host's, from /proc/1/ns/mnt) are counted in
 * STAT_FILTERED and not sent. Checked first, so a filtered exec costs one
 * pointer chase. 0 sends every exec.
 */
const volatile __u32 host_mnt_ns = 0;

/*
 * The optional candidate filter ("prefilter: compilers"). When non-zero, an
 * exec is sent only when one of its names may be a compiler's (see
 * is_candidate()); the others are counted in STAT_FILTERED_NONCAND, but the
 * first of each cgroup, which is sent flagged FLAG_CGROUP_SEEN. cand_bloom is
 * the Bloom filter of candidate names user space builds from the catalog.
 */
const volatile __u32 prefilter_compilers = 0;
const volatile __u64 cand_bloom[CAND_BLOOM_WORDS];

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* overridden from config */
} events SEC(".maps");

/*
 * One scratch record per CPU. A plain array indexed by CPU id, because a
 * per-CPU array value is capped at 32 KiB. max_entries is set to the number
 * of possible CPUs at load time.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

/*
 * The cgroups (kernfs node ids) whose first filtered exec was sent. An LRU:
 * a workload creating cgroups without end evicts the oldest, which only sends
 * another FLAG_CGROUP_SEEN record when one of them execs again.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SEEN_CGROUPS_MAX);
	__type(key, __u64);
	__type(value, __u8);
} seen_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");


/* kernfs_node.parent was renamed __parent in 6.15: CO-RE flavour. */
struct kernfs_node___pre615 {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

/* dentry.d_iname became the d_shortname union in 6.14: CO-RE flavour. */
struct dentry___pre614 {
	unsigned char d_iname[32];
} __attribute__((preserve_access_index));

/*
 * bpf_rdonly_cast() (kfunc, Linux 6.2): a value as a read-only BTF pointer
 * to a kernel type. The verifier rewrites the call into a register move, and
 * loads through the result are plain loads the JIT guards against faults,
 * like every load from a BTF pointer. Only the direct program calls it, so
 * the portable program still loads on kernels that lack it.
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define btf_cast(p, type) ((type *)bpf_rdonly_cast((const void *)(p), bpf_core_type_id_kernel(type)))

/*
 * Field reads shared by both programs. direct is a compile-time constant:
 * the direct program reads p->f with a plain load, which needs p to be a
 * BTF pointer in the verifier's eyes; the portable one calls
 * bpf_probe_read_kernel() on what the verifier sees as a scalar.
 */
#define READ(direct, p, f) ((direct) ? (p)->f : BPF_CORE_READ(p, f))

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn, const bool direct)
{
	if (bpf_core_field_exists(struct kernfs_node, __parent))
		return READ(direct, kn, __parent);
	return READ(direct, (struct kernfs_node___pre615 *)kn, parent);
}

/*
 * Direct loads. In the entry point, task and bprm are BTF pointers, and so is
 * every pointer loaded from them: reading a field is a plain load that the
 * JIT guards against faults (BPF_PROBE_MEM, since 5.5), not a
 * bpf_probe_read_kernel() call. The helper call costs about 100 ns in a VM;
 * the load, a few. Field offsets are still CO-RE relocated.
 */

/* d_unlinked(): unhashed and not the root of its filesystem. d is a BTF pointer. */
static __always_inline bool dentry_unlinked(struct dentry *d)
{
	return d->d_hash.pprev == NULL && d->d_parent != d;
}

/*
 * Mask an offset in a way clang cannot fold away, so the verifier sees the
 * bound on the very register used for the access.
 */
static __always_inline __u64 data_off(__u64 off)
{
	asm volatile("%[off] &= %[mask]" : [off] "+r"(off) : [mask] "i"(DATA_MASK));
	return off;
}

/*
 * The per-CPU scratch record. Every function of one program run executes
 * on the same CPU (tracing programs run with migration disabled), so the
 * global functions below find the record the entry point filled in.
 */
static __always_inline struct scratch *scratch_get(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&scratch_map, &cpu);
}

/*
 * A BTF pointer as a plain scalar, for a global function's scalar argument
 * or for arithmetic the verifier refuses on BTF pointers. The verifier
 * tracks pointer types in registers and on the stack but not in map values:
 * a round trip through the scratch record forgets the type. Storing a
 * pointer in a map needs allow_ptr_leaks, which CAP_PERFMON (required to
 * load this program) grants. Two memory accesses instead of a helper call.
 */
static __always_inline __u64 as_scalar(struct scratch *s, const void *p)
{
	*(volatile __u64 *)&s->ptr_slot = (__u64)p;
	return *(volatile __u64 *)&s->ptr_slot;
}

/* A task's comm (16 bytes, NUL-padded by the kernel) into dst. */
static __always_inline void copy_comm(char *dst, struct task_struct *t, const bool direct)
{
	if (direct) {
		/* Two 8-byte loads from the char array: no helper call. */
		((__u64 *)dst)[0] = *(const __u64 *)&t->comm[0];
		((__u64 *)dst)[1] = *(const __u64 *)&t->comm[8];
		return;
	}
	bpf_probe_read_kernel(dst, TASK_COMM_LEN, t->comm);
}

/*
 * Append one NUL-terminated name at data[*off], never past limit (the end of
 * this field's budget). Returns false when it did not fit.
 */
static __always_inline bool put_name(struct scratch *s, __u32 *off, __u32 limit, const void *name)
{
	__u32 o = *off;
	if (o >= limit || o > DATA_MASK)
		return false;
	long n = bpf_probe_read_kernel_str(&s->data[data_off(o)], NAME_CHUNK, name);
	if (n <= 0)
		return false;
	if (o + n > limit)
		return false; /* the name crossed the field's budget: drop it */
	*off = o + n;
	return true;
}

/*
 * Append a dentry's name, as put_name() would. Short names are stored in the
 * dentry itself (d_shortname; d_iname before 6.14, 32 bytes on 64-bit): with
 * a BTF pointer the direct program copies them with word loads at constant
 * offsets, no helper call. The name is inline when d_name.name points there
 * (it then holds d_name.len bytes and a NUL). The words past the NUL land
 * where the next name, or nothing that is sent, goes: the slack after
 * DATA_MASK covers the overrun.
 */
static __always_inline bool put_dname(struct scratch *s, __u32 *off, __u32 limit, struct dentry *d,
				      const unsigned char *name, const bool direct)
{
	if (!direct)
		return put_name(s, off, limit, name);

	__u32 o = *off;
	if (o >= limit || o > DATA_MASK)
		return false;
	__u64 inl_off, inl_size;
	if (bpf_core_field_exists(struct dentry, d_shortname)) {
		inl_off = bpf_core_field_offset(struct dentry, d_shortname);
		inl_size = bpf_core_field_size(struct dentry, d_shortname);
	} else {
		inl_off = bpf_core_field_offset(struct dentry___pre614, d_iname);
		inl_size = bpf_core_field_size(struct dentry___pre614, d_iname);
	}
	const __u64 *inl = (const void *)d + inl_off;
	__u32 len = d->d_name.len;
	long n;
	if ((__u64)name == (__u64)inl && len < inl_size) {
		__u64 *dst = (void *)&s->data[data_off(o)];
#pragma unroll
		for (int i = 0; i < 5; i++) {
			/* The verifier drops the words past the kernel's array. */
			if (i * 8 < inl_size)
				dst[i] = inl[i];
		}
		s->data[data_off(o + len)] = 0;
		n = len + 1;
	} else {
		n = bpf_probe_read_kernel_str(&s->data[data_off(o)], NAME_CHUNK, name);
	}
	/*
	 * Both ways end in one state: n forgets what the verifier knew of it,
	 * so the walk's next iteration is checked once, not once per way
	 * (twice per level, 2^depth in all).
	 */
	n = as_scalar(s, (const void *)n);
	if (n <= 0 || n > NAME_CHUNK)
		return false;
	if (o + n > limit)
		return false; /* the name crossed the field's budget: drop it */
	*off = o + n;
	return true;
}

/*
 * The walks below are global (non-inlined) functions on purpose: the
 * verifier checks a global function once, on its own, and the caller sees
 * only a scalar result. Inlined, each walk's many loop exits multiply the
 * verifier states of everything after it past the 1M instruction limit.
 * Arguments are plain scalars (kernel pointers passed through as_scalar()),
 * which global functions accept on every kernel with BTF-verified
 * subprograms; BTF pointer arguments need 6.8 (__arg_trusted), and only
 * pointers the verifier trusts may be passed there, which a dentry loaded
 * from a file is not.
 *
 * Each walk exists twice, from one template: the portable one reads with
 * probe-read helpers, two calls per path component, the bulk of the
 * portable program's cost; the direct one turns its scalars back into BTF
 * pointers with bpf_rdonly_cast() and reads with plain loads.
 *
 * Result: bytes written in the low 16 bits, WALK_TRUNC when cut short.
 */
#define WALK_TRUNC (1 << 16)
#define WALK_PSEUDO (1 << 17) /* a pseudo file (memfd): /proc shows it " (deleted)" */
#define WALK_LEN(r) ((__u32)(r) & 0xffff)

/*
 * A dentry's parent and name pointer. d_name follows d_parent in every
 * kernel, so one read fetches both; the CO-RE offsets are constants after
 * relocation, and the verifier drops the branch that does not apply.
 */
static __always_inline struct dentry *dentry_up(struct dentry *d, const unsigned char **name, const bool direct)
{
	if (direct) {
		*name = d->d_name.name;
		return d->d_parent;
	}
	__u64 parent_off = bpf_core_field_offset(struct dentry, d_parent);
	__u64 name_off = bpf_core_field_offset(struct dentry, d_name.name);
	if (name_off == parent_off + 16) {
		struct {
			struct dentry *parent;
			__u64 hash_len;
			const unsigned char *name;
		} v = {};
		bpf_probe_read_kernel(&v, sizeof(v), (void *)d + parent_off);
		*name = v.name;
		return v.parent;
	}
	*name = BPF_CORE_READ(d, d_name.name);
	return BPF_CORE_READ(d, d_parent);
}

/*
 * Walk path (dentry, vfsmnt) up to root, crossing mount points, the way
 * d_path() does: the result is the path as seen from root. Components are
 * written leaf first.
 */
static __always_inline int walk_path_impl(__u32 off, __u64 dentry_p, __u64 vfsmnt_p, __u64 root_dentry_p,
					  __u64 root_mnt_p, const bool direct)
{
	struct scratch *s = scratch_get();
	struct dentry *root_dentry = (void *)root_dentry_p;
	struct vfsmount *root_mnt = (void *)root_mnt_p;
	__u32 start = off;
	__u32 limit = off + PATH_BYTES_MAX;
	__u32 depth = max_path_depth;

	if (depth > PATH_DEPTH_HARD_MAX)
		depth = PATH_DEPTH_HARD_MAX;
	if (!s || !dentry_p || !vfsmnt_p || off > DATA_MASK)
		return 0;
	__u64 mnt_p = vfsmnt_p - bpf_core_field_offset(struct mount, mnt);
	struct dentry *dentry;
	struct mount *mnt;
	if (direct) {
		dentry = btf_cast(dentry_p, struct dentry);
		mnt = btf_cast(mnt_p, struct mount);
	} else {
		dentry = (void *)dentry_p;
		mnt = (void *)mnt_p;
	}
	struct vfsmount *vfsmnt = (void *)mnt + bpf_core_field_offset(struct mount, mnt);
	struct dentry *mnt_root = READ(direct, vfsmnt, mnt_root);

	/*
	 * Each iteration emits exactly one name, so the verifier sees the same
	 * state shape at every iteration and can prune; mount crossings happen
	 * inside the iteration (up to MOUNT_STACK stacked mounts per level).
	 * One step past the deepest limit only looks for the root, so a path
	 * exactly max_path_depth deep is complete, not truncated.
	 */
	for (int i = 0; i <= PATH_DEPTH_HARD_MAX; i++) {
		for (int j = 0; j < MOUNT_STACK; j++) {
			if (dentry == root_dentry && vfsmnt == root_mnt)
				goto done;
			if (dentry != mnt_root)
				break;
			struct mount *parent = READ(direct, mnt, mnt_parent);
			if (parent == mnt)
				goto done; /* the global root, or an internal mount (memfd, pipes) */
			dentry = READ(direct, mnt, mnt_mountpoint);
			mnt = parent;
			vfsmnt = (void *)mnt + bpf_core_field_offset(struct mount, mnt);
			mnt_root = READ(direct, vfsmnt, mnt_root);
		}
		if (dentry == root_dentry && vfsmnt == root_mnt)
			goto done;
		if (dentry == mnt_root) {
			/*
			 * Still on a mount's root after MOUNT_STACK crossings: either
			 * the top (global root, internal mount), or more mounts
			 * stacked on one directory than the walk crosses. The names
			 * above them are unknown: truncated, never a shorter path.
			 */
			if (READ(direct, mnt, mnt_parent) == mnt)
				goto done;
			break;
		}
		const unsigned char *name;
		struct dentry *parent = dentry_up(dentry, &name, direct);
		if (parent == dentry) {
			/*
			 * A root that is not its mount's root: a pseudo file such as a
			 * memfd, whose d_dname() /proc renders "/<name> (deleted)".
			 */
			if (i == 0 && put_dname(s, &off, limit, dentry, name, direct))
				return (off - start) | WALK_PSEUDO;
			goto done;
		}
		if (i >= depth)
			break;
		if (!put_dname(s, &off, limit, dentry, name, direct))
			break;
		dentry = parent;
	}
	return (off - start) | WALK_TRUNC;
done:
	return off - start;
}

__noinline int walk_path(__u32 off, __u64 dentry_p, __u64 vfsmnt_p, __u64 root_dentry_p, __u64 root_mnt_p)
{
	return walk_path_impl(off, dentry_p, vfsmnt_p, root_dentry_p, root_mnt_p, false);
}

__noinline int walk_path_btf(__u32 off, __u64 dentry_p, __u64 vfsmnt_p, __u64 root_dentry_p, __u64 root_mnt_p)
{
	return walk_path_impl(off, dentry_p, vfsmnt_p, root_dentry_p, root_mnt_p, true);
}

/*
 * An executable's base name: the name of the dentry of an mm's exe_file,
 * written at off, NUL-terminated, at most NAME_CHUNK bytes. No path walk:
 * one name per ancestor keeps the cost at a few loads (short names are
 * inline in the dentry) or one string read. Returns the bytes written, 0
 * when there is no name or it did not fit.
 */
static __always_inline int put_exe_name_impl(__u32 off, __u64 dentry_p, const bool direct)
{
	struct scratch *s = scratch_get();
	if (!s || !dentry_p || off > DATA_MASK)
		return 0;
	struct dentry *d = direct ? btf_cast(dentry_p, struct dentry) : (void *)dentry_p;
	const unsigned char *name = READ(direct, d, d_name.name);
	__u32 o = off;
	if (!put_dname(s, &o, off + NAME_CHUNK, d, name, direct))
		return 0;
	return o - off;
}

__noinline int put_exe_name(__u32 off, __u64 dentry_p)
{
	return put_exe_name_impl(off, dentry_p, false);
}

__noinline int put_exe_name_btf(__u32 off, __u64 dentry_p)
{
	return put_exe_name_impl(off, dentry_p, true);
}

/*
 * The facts user space decides an executed file's origin from (FILE_*), and
 * its filesystem's magic in *magic. root_mnt is the exec'ing task's root.
 * Every read is a load through a BTF pointer, but for the mount's namespace
 * (container_of) and the overlay layer.
 */
static __always_inline __u8 file_facts(struct scratch *s, struct file *f, struct vfsmount *root_mnt, __u32 *magic,
				       const bool direct)
{
	*magic = 0;
	if (!f)
		return 0;
	struct dentry *d = f->f_path.dentry;
	struct vfsmount *vfsmnt = f->f_path.mnt;
	struct inode *inode = f->f_inode;
	if (!d || !vfsmnt || !inode)
		return 0;
	struct super_block *sb = inode->i_sb;
	unsigned long m = sb->s_magic;
	__u8 facts = 0;
	*magic = m;

	if (m == TMPFS_MAGIC || m == HUGETLBFS_MAGIC) {
		/* memfd_create names its dentry "memfd:<name>". */
		char pfx[6] = {};
		bpf_probe_read_kernel(pfx, sizeof(pfx), d->d_name.name);
		if (pfx[0] == 'm' && pfx[1] == 'e' && pfx[2] == 'm' && pfx[3] == 'f' && pfx[4] == 'd' &&
		    pfx[5] == ':')
			facts |= FILE_MEMFD;
	}
	if (dentry_unlinked(d))
		facts |= FILE_UNLINKED;
	/*
	 * The overlay layer: ovl_inode.__upperdentry, set once the file is in
	 * the upper layer. Where overlayfs is a module, struct ovl_inode lives
	 * in the module's BTF: bpf_rdonly_cast() takes vmlinux type ids only,
	 * so both programs read the field with a helper call at the offset
	 * CO-RE finds in the module's BTF. Without the type (the module was not
	 * loaded when the program was), the layer is unknown and FILE_OVL_KNOWN
	 * stays clear.
	 */
	if (m == OVERLAYFS_SUPER_MAGIC && bpf_core_type_exists(struct ovl_inode)) {
		__u64 upper_p = as_scalar(s, inode) - bpf_core_field_offset(struct ovl_inode, vfs_inode) +
				bpf_core_field_offset(struct ovl_inode, __upperdentry);
		__u64 upper = 0;
		if (bpf_probe_read_kernel(&upper, sizeof(upper), (void *)upper_p) == 0) {
			facts |= FILE_OVL_KNOWN;
			if (upper)
				facts |= FILE_OVL_UPPER;
		}
	}
	if (vfsmnt == root_mnt)
		facts |= FILE_ROOT_MOUNT;
	if (root_mnt && sb == root_mnt->mnt_sb)
		facts |= FILE_ROOT_FS;
	if (sb->s_user_ns->level != 0)
		facts |= FILE_USERNS_FS;
	/*
	 * The mount's namespace: NULL once detached, an error pointer for the
	 * kernel's internal mounts, else owned by a user namespace whose level
	 * is 0 only for the initial one.
	 */
	__u64 mnt_p = as_scalar(s, vfsmnt) - bpf_core_field_offset(struct mount, mnt);
	struct mnt_namespace *ns;
	if (direct)
		ns = btf_cast(mnt_p, struct mount)->mnt_ns;
	else
		ns = BPF_CORE_READ((struct mount *)mnt_p, mnt_ns);
	__u64 ns_v = as_scalar(s, ns);
	if (ns_v == 0 || ns_v >= (__u64)-4095)
		facts |= FILE_USERNS_MOUNT;
	else if ((direct ? ns->user_ns->level : BPF_CORE_READ(ns, user_ns, level)) != 0)
		facts |= FILE_USERNS_MOUNT;
	return facts;
}

/*
 * The cgroup path keeps the levels nearest the root. A container's identity
 * (/kubepods/<qos>/pod<uid>/<id>, or the systemd slices and scope) sits
 * there, while a process that can write its cgroupfs (a privileged pod, a
 * delegated cgroup in a user namespace) adds levels at the leaf only: however
 * deep it nests, it cannot push its container out of the path, nor replace
 * the path with names it chose. 16 levels hold every runtime layout, nested
 * ones (kind, docker-in-docker) included, with room to spare. Deeper levels
 * are dropped and the path is flagged truncated. CGROUP_DEPTH_MAX (exec.h)
 * is that number of levels.
 */
_Static_assert(CGROUP_DEPTH_MAX * NAME_CHUNK <= PATH_BYTES_MAX, "the kept cgroup levels fit one path");
/*
 * Without cgroup->ancestors[] (before 6.0), the walk climbs to level
 * CGROUP_DEPTH_MAX one parent at a time, at most this many steps. A task
 * deeper than CGROUP_DEPTH_MAX + CGROUP_SKIP_MAX there gets an empty path
 * flagged truncated: never the leaf's names, which the task chose.
 */
#define CGROUP_SKIP_MAX 1024

/* cgroup->ancestors[] replaced the ancestor_ids[] array in 6.0: CO-RE flavour. */
struct cgroup___v60 {
	struct cgroup *ancestors[];
} __attribute__((preserve_access_index));

/*
 * Walk a cgroup to its hierarchy's root through its kernfs nodes, from its
 * ancestor at level CGROUP_DEPTH_MAX when it is deeper. Components are
 * written leaf first like every path; the top of the hierarchy is complete.
 */
static __always_inline int walk_cgroup_impl(__u32 off, __u64 cgrp_p, __u64 kn_p, __s32 level, const bool direct)
{
	struct scratch *s = scratch_get();
	__u32 start = off;
	__u32 limit = off + PATH_BYTES_MAX;
	int trunc = 0;

	if (!s || !cgrp_p || off > DATA_MASK)
		return 0;
	struct cgroup *cgrp = direct ? btf_cast(cgrp_p, struct cgroup) : (void *)cgrp_p;
	struct kernfs_node *kn = direct ? btf_cast(kn_p, struct kernfs_node) : (void *)kn_p;
	if (level < 0)
		return WALK_TRUNC;
	if (level > CGROUP_DEPTH_MAX) {
		trunc = WALK_TRUNC;
		/* The ancestor at level CGROUP_DEPTH_MAX. */
		__u64 top = 0;
		if (bpf_core_field_exists(struct cgroup___v60, ancestors)) {
			/*
			 * ancestors[i] is the ancestor at level i. A helper call in
			 * both programs: the verifier refuses plain loads from an
			 * array of pointers past the end of a struct.
			 */
			bpf_probe_read_kernel(&top, sizeof(top),
					      (void *)cgrp_p + bpf_core_field_offset(struct cgroup___v60, ancestors) +
						      CGROUP_DEPTH_MAX * sizeof(top));
		} else {
			/*
			 * Up the cgroup's own parent links (cgroup->self.parent),
			 * which every kernel has: no field that changed name is
			 * read in the loop, so no CO-RE relocation that fails on
			 * this kernel can be hoisted into it.
			 */
			int skip = level - CGROUP_DEPTH_MAX;
			if (skip > CGROUP_SKIP_MAX)
				return WALK_TRUNC;
			struct cgroup_subsys_state *css = &cgrp->self;
			for (int i = 0; i < CGROUP_SKIP_MAX; i++) {
				if (i >= skip || !css)
					break;
				css = READ(direct, css, parent);
			}
			if (css)
				top = as_scalar(s, css) - bpf_core_field_offset(struct cgroup, self);
		}
		if (!top)
			return WALK_TRUNC;
		kn = direct ? btf_cast(top, struct cgroup)->kn : BPF_CORE_READ((struct cgroup *)top, kn);
	}
	/* One step past the limit, to reach the root, which has no name. */
	for (int i = 0; i <= CGROUP_DEPTH_MAX; i++) {
		if (!kn)
			return (off - start) | trunc;
		struct kernfs_node *parent = kn_parent(kn, direct);
		if (!parent)
			return (off - start) | trunc;
		if (i >= CGROUP_DEPTH_MAX)
			break;
		/* kernfs names live outside the node: a helper call in both programs. */
		if (!put_name(s, &off, limit, READ(direct, kn, name)))
			break;
		kn = parent;
	}
	return (off - start) | WALK_TRUNC;
}

__noinline int walk_cgroup(__u32 off, __u64 cgrp_p, __u64 kn_p, __s32 level)
{
	return walk_cgroup_impl(off, cgrp_p, kn_p, level, false);
}

__noinline int walk_cgroup_btf(__u32 off, __u64 cgrp_p, __u64 kn_p, __s32 level)
{
	return walk_cgroup_impl(off, cgrp_p, kn_p, level, true);
}

/*
 * The cgroup: the v2 (default hierarchy) cgroup first. Where the task sits in
 * the v2 root (no v2 in use, or a hybrid host whose runtime only uses v1),
 * fall back to the first v1 hierarchy in which it is not at the root.
 */
static __always_inline struct cgroup *task_cgroup(struct task_struct *task, bool *v1)
{
	struct css_set *cgroups = task->cgroups;
	struct cgroup *cgrp = cgroups->dfl_cgrp;
	struct kernfs_node *kn = cgrp->kn;
	if (kn && kn_parent(kn, true))
		return cgrp;

	__u32 count = CGROUP_SUBSYS_HARD_MAX;
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, CGROUP_SUBSYS_COUNT))
		count = bpf_core_enum_value(enum cgroup_subsys_id, CGROUP_SUBSYS_COUNT);
	/*
	 * Unrolled by hand, because a direct load needs a constant offset and
	 * clang does not unroll this loop with its exits. The kernel's array
	 * has CGROUP_SUBSYS_COUNT entries, so the verifier discards the
	 * indices past it as dead code, whatever vmlinux.h says.
	 */
	struct cgroup_subsys_state **subsys = cgroups->subsys;
#define TRY_SUBSYS(i)                                                            \
	if ((i) < count) {                                                       \
		struct cgroup_subsys_state *css = *(subsys + (i));               \
		struct cgroup *c = css ? css->cgroup : NULL;                     \
		struct kernfs_node *k = c ? c->kn : NULL;                        \
		if (k && kn_parent(k, true)) {                                   \
			*v1 = true;                                              \
			return c;                                                \
		}                                                                \
	}
	TRY_SUBSYS(0) TRY_SUBSYS(1) TRY_SUBSYS(2) TRY_SUBSYS(3)
	TRY_SUBSYS(4) TRY_SUBSYS(5) TRY_SUBSYS(6) TRY_SUBSYS(7)
	TRY_SUBSYS(8) TRY_SUBSYS(9) TRY_SUBSYS(10) TRY_SUBSYS(11)
	TRY_SUBSYS(12) TRY_SUBSYS(13) TRY_SUBSYS(14) TRY_SUBSYS(15)
#undef TRY_SUBSYS
	return cgrp;
}

/*
 * The candidate filter ("prefilter: compilers").
 *
 * The compiler detector recognises an exec by four names: the executable's
 * base name, the invoked filename's base name, argv[0]'s base name and comm.
 * For each it looks up the name itself after dropping a " (deleted)" suffix,
 * a directory and a "memfd:" prefix; the name without up to three trailing
 * version fields (gcc-12, g++-posix); and that name's suffixes after a
 * target-triple prefix (x86_64-linux-gnu-gcc). The kernel checks a superset:
 * every suffix after a '-' or ':' of the name and of each of its
 * version-stripped forms, against a Bloom filter of the catalog's names. So
 * every exec the detector can flag is sent; a few others are too (Bloom
 * filter false positives, names such as foo-gcc). A name this scan cannot
 * decide (longer than CAND_SCAN_MAX, a path or argv[0] longer than the
 * buffer) is sent.
 *
 * The names are read into the scratch record, which a filtered exec does not
 * otherwise use, at these offsets.
 */
#define CAND_OFF_EXE 0
#define CAND_OFF_COMM NAME_CHUNK
#define CAND_OFF_FILENAME (2 * NAME_CHUNK)
#define CAND_OFF_ARGV0 (2 * NAME_CHUNK + PATH_BYTES_MAX)
_Static_assert(CAND_OFF_ARGV0 + PATH_BYTES_MAX <= DATA_MASK + 1, "the candidate names fit the scratch record");

#define CAND_MIX (((__u64)CAND_MIX_HI << 32) | CAND_MIX_LO)
#define CAND_BLOOM_MASK ((1ULL << CAND_BLOOM_BITS_LOG2) - 1)

/* Whether the name hashed to h may be in the candidate set: both its bits are set. */
static __always_inline bool cand_probe(__u64 h)
{
	__u64 x = h * CAND_MIX;
	__u64 a = x >> (64 - CAND_BLOOM_BITS_LOG2);
	__u64 b = (x >> (64 - 2 * CAND_BLOOM_BITS_LOG2)) & CAND_BLOOM_MASK;
	return (cand_bloom[a >> 6] >> (a & 63)) & (cand_bloom[b >> 6] >> (b & 63)) & 1;
}

static __always_inline bool cand_deleted_suffix(struct scratch *s, __u32 at)
{
	const char sfx[] = " (deleted)";
#pragma unroll
	for (int i = 0; i < sizeof(sfx) - 1; i++) {
		if (s->data[data_off(at + i)] != sfx[i])
			return false;
	}
	return true;
}

/*
 * Whether the name at data[off, off + len) may be a candidate. The scan runs
 * from the last byte back to the last '/' (or the start), with one running
 * hash per end: the name's end, then each '-' that strips a version field.
 * At every '-', ':' and at the start it keeps the hashes of the suffixes
 * that start there; they are probed after the scan.
 *
 * The scan's counters and flags live in the scratch record (struct
 * cand_scan), read and written through a volatile pointer each byte: the
 * verifier does not track values in map memory, so the byte loop has one
 * state per iteration instead of one per combination of the counters and
 * flags it would otherwise know exactly. The hashes stay in registers: no
 * branch reads them.
 */
__noinline int cand_name(__u32 off, __u32 len)
{
	struct scratch *s = scratch_get();
	if (!s || off > DATA_MASK || len > PATH_BYTES_MAX)
		return 1;
	volatile struct cand_scan *cs = &s->cand;
	__u32 end = len;
	if (end >= 10 && cand_deleted_suffix(s, off + end - 10))
		end -= 10;
	__u64 h0 = 0, h1 = 0, h2 = 0, h3 = 0;
	cs->n = 1;     /* live ends */
	cs->g = 0;     /* boundaries kept */
	cs->chain = 1; /* every field after the last '-' so far was a version */
	cs->fver = 1;  /* the current field is digits and dots */
	cs->flen = 0;  /* the current field's length */
	cs->first = 0; /* the current field's first byte (the last one read) */
	bool done = false;
	for (__u32 k = 0; k < CAND_SCAN_MAX; k++) {
		__u8 c = '/';
		if (k < end)
			c = s->data[data_off(off + end - 1 - k)];
		if (c == '/' || c == '-' || c == ':') {
			__u32 g = cs->g;
			if (g >= CAND_GROUPS_MAX)
				return 1; /* more boundaries than slots */
			volatile __u64 *kept = cs->kept[g & (CAND_GROUPS_MAX - 1)];
			kept[0] = h0;
			kept[1] = h1;
			kept[2] = h2;
			kept[3] = h3;
			cs->g = g + 1;
		}
		if (c == '/') {
			done = true;
			break;
		}
		h0 = h0 * CAND_HASH_MUL + c;
		h1 = h1 * CAND_HASH_MUL + c;
		h2 = h2 * CAND_HASH_MUL + c;
		h3 = h3 * CAND_HASH_MUL + c;
		if (c == '-') {
			/* A version field: digits and dots from a digit, or posix/win32 (any 5 bytes). */
			__u32 flen = cs->flen, n = cs->n;
			__u8 first = cs->first;
			bool ver = flen == 5 || (flen > 0 && cs->fver && first >= '0' && first <= '9');
			if (cs->chain && ver && n < CAND_ENDS_MAX) {
				/* A new end: the name without this field and the ones after it. */
				if (n == 1)
					h1 = 0;
				else if (n == 2)
					h2 = 0;
				else
					h3 = 0;
				cs->n = n + 1;
			} else {
				cs->chain = 0;
			}
			cs->fver = 1;
			cs->flen = 0;
		} else {
			if (!((c >= '0' && c <= '9') || c == '.'))
				cs->fver = 0;
			cs->flen = cs->flen + 1;
		}
		cs->first = c;
	}
	if (!done)
		return 1; /* a base name longer than the scan */
	/*
	 * An end that is not live holds the hash of the whole suffix, a
	 * duplicate of h[0]'s: probing it costs a probe, never a false match.
	 */
	__u32 g = cs->g;
#pragma unroll
	for (int i = 0; i < CAND_GROUPS_MAX; i++) {
		if (i >= g)
			break;
#pragma unroll
		for (int j = 0; j < CAND_ENDS_MAX; j++) {
			if (cand_probe(cs->kept[i][j]))
				return 1;
		}
	}
	return 0;
}

/*
 * Whether the name at data[off, off + len) has comm (clen bytes at
 * CAND_OFF_COMM) as its whole base name: its check is then comm's, done
 * already. The common case for the executable and argv[0].
 */
static __always_inline bool cand_is_comm(struct scratch *s, __u32 off, __u32 len, __u32 clen)
{
	if (clen == 0 || clen >= TASK_COMM_LEN || len < clen || off > DATA_MASK || len > PATH_BYTES_MAX)
		return false;
	__u32 start = off + len - clen;
	if (len > clen && s->data[data_off(start - 1)] != '/')
		return false;
	for (__u32 i = 0; i < TASK_COMM_LEN - 1; i++) {
		if (i >= clen)
			break;
		if (s->data[data_off(start + i)] != s->data[data_off(CAND_OFF_COMM + i)])
			return false;
	}
	return true;
}

/*
 * The executable's base name as /proc/<pid>/exe shows it: the name of the
 * mountpoint when the file is a mount's root (a bind-mounted file), like the
 * path walk. Sent when more mounts are stacked than the walk crosses.
 */
static __always_inline int cand_exe_impl(__u64 dentry_p, __u64 vfsmnt_p, __u32 clen, const bool direct)
{
	struct scratch *s = scratch_get();
	if (!s || !dentry_p || !vfsmnt_p)
		return 1;
	__u64 mnt_p = vfsmnt_p - bpf_core_field_offset(struct mount, mnt);
	struct dentry *d;
	struct mount *mnt;
	if (direct) {
		d = btf_cast(dentry_p, struct dentry);
		mnt = btf_cast(mnt_p, struct mount);
	} else {
		d = (void *)dentry_p;
		mnt = (void *)mnt_p;
	}
	struct vfsmount *vfsmnt = (void *)mnt + bpf_core_field_offset(struct mount, mnt);
	for (int j = 0; j <= MOUNT_STACK; j++) {
		if (d != READ(direct, vfsmnt, mnt_root))
			break;
		struct mount *parent = READ(direct, mnt, mnt_parent);
		if (parent == mnt)
			break; /* the global root or an internal mount: the dentry's own name */
		if (j == MOUNT_STACK)
			return 1;
		d = READ(direct, mnt, mnt_mountpoint);
		mnt = parent;
		vfsmnt = (void *)mnt + bpf_core_field_offset(struct mount, mnt);
	}
	const unsigned char *name = READ(direct, d, d_name.name);
	__u32 o = CAND_OFF_EXE;
	if (!put_dname(s, &o, CAND_OFF_EXE + NAME_CHUNK, d, name, direct))
		return 1;
	__u32 len = o - CAND_OFF_EXE - 1;
	if (cand_is_comm(s, CAND_OFF_EXE, len, clen))
		return 0;
	return cand_name(CAND_OFF_EXE, len);
}

__noinline int cand_exe(__u64 dentry_p, __u64 vfsmnt_p, __u32 clen)
{
	return cand_exe_impl(dentry_p, vfsmnt_p, clen, false);
}

__noinline int cand_exe_btf(__u64 dentry_p, __u64 vfsmnt_p, __u32 clen)
{
	return cand_exe_impl(dentry_p, vfsmnt_p, clen, true);
}

/*
 * Whether the exec may matter to compiler detection: cheapest name first,
 * and no record is built for one that does not.
 */
static __always_inline bool is_candidate(struct scratch *s, struct task_struct *task, struct linux_binprm *bprm,
					 const bool direct)
{
	/* comm, as the exec set it. */
	char *comm = (char *)&s->data[CAND_OFF_COMM];
	copy_comm(comm, task, direct);
	__u32 len = 0;
#pragma unroll
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] == 0)
			break;
		len++;
	}
	if (cand_name(CAND_OFF_COMM, len))
		return true;

	struct file *file = bprm->file;
	if (!file)
		return true;
	if (direct ? cand_exe_btf(as_scalar(s, file->f_path.dentry), as_scalar(s, file->f_path.mnt), len)
		   : cand_exe(as_scalar(s, file->f_path.dentry), as_scalar(s, file->f_path.mnt), len))
		return true;

	/*
	 * The filename as invoked; a path that fills the buffer may be cut. The
	 * exec set comm to its base name cut to 15 bytes, unless it took comm
	 * from the file's dentry (fexecve, 6.14+: comm_from_dentry): a shorter
	 * comm is that whole base name, checked already.
	 */
	bool from_dentry = false;
	if (bpf_core_field_exists(struct linux_binprm, comm_from_dentry))
		from_dentry = BPF_CORE_READ_BITFIELD(bprm, comm_from_dentry);
	long n;
	if (len >= TASK_COMM_LEN - 1 || from_dentry) {
		n = bpf_probe_read_kernel_str(&s->data[CAND_OFF_FILENAME], PATH_BYTES_MAX, bprm->filename);
		if (n <= 0 || n >= PATH_BYTES_MAX || cand_name(CAND_OFF_FILENAME, n - 1))
			return true;
	}

	/*
	 * argv[0]. One that the record would cut (max_args_bytes) shows the
	 * detector a different base name: sent.
	 */
	struct mm_struct *mm = task->mm;
	unsigned long arg_start = mm->arg_start;
	if (mm->arg_end > arg_start) {
		n = bpf_probe_read_user_str(&s->data[CAND_OFF_ARGV0], PATH_BYTES_MAX, (void *)arg_start);
		if (n >= PATH_BYTES_MAX || n > max_args_bytes)
			return true;
		if (n > 0 && !cand_is_comm(s, CAND_OFF_ARGV0, n - 1, len) && cand_name(CAND_OFF_ARGV0, n - 1))
			return true;
	}
	return false;
}

/*
 * Whether this filtered exec is the first seen in its cgroup, which is then
 * remembered. A per-CPU cache of the last such cgroup spares the map lookup
 * to a run of execs in one cgroup.
 */
static __always_inline bool cgroup_first_seen(struct scratch *s, struct task_struct *task)
{
	bool v1 = false;
	struct cgroup *cgrp = task_cgroup(task, &v1);
	struct kernfs_node *kn = cgrp->kn;
	__u64 id = kn ? kn->id : 0;
	if (s->last_cgroup == id)
		return false;
	s->last_cgroup = id;
	if (bpf_map_lookup_elem(&seen_cgroups, &id))
		return false;
	__u8 one = 1;
	/* Two CPUs racing on a new cgroup: one of them sends it. */
	return bpf_map_update_elem(&seen_cgroups, &id, &one, BPF_NOEXIST) == 0;
}

static __always_inline int walk_path_any(__u32 off, __u64 d, __u64 m, __u64 rd, __u64 rm, const bool direct)
{
	return direct ? walk_path_btf(off, d, m, rd, rm) : walk_path(off, d, m, rd, rm);
}

/*
 * The number of pid at level (its upid numbers[level].nr). Computed
 * address: a cast in the direct program, a helper call in the portable one.
 */
static __always_inline __u64 upid_at(struct scratch *s, struct pid *pid, unsigned int level)
{
	return as_scalar(s, pid) + bpf_core_field_offset(struct pid, numbers) +
	       (level & 31) * bpf_core_type_size(struct upid);
}

static __always_inline __u32 pid_nr_at(struct scratch *s, struct pid *pid, unsigned int level, const bool direct)
{
	__u64 upid_p = upid_at(s, pid, level);
	if (direct)
		return btf_cast(upid_p, struct upid)->nr;
	struct upid up = {};
	bpf_probe_read_kernel(&up, sizeof(up), (void *)upid_p);
	return up.nr;
}

/*
 * The host pid of the init (child reaper) of the pid namespace pid is
 * numbered in at level: a process that lives as long as the container and
 * sees the same root, through which user space reads the container's files
 * after the exec'ing process is gone. 0 when the namespace has none.
 */
static __always_inline __u32 ns_init_tgid(struct scratch *s, struct pid *pid, unsigned int level, const bool direct)
{
	__u64 upid_p = upid_at(s, pid, level);
	struct task_struct *reaper;
	if (direct) {
		reaper = btf_cast(upid_p, struct upid)->ns->child_reaper;
		return reaper ? reaper->tgid : 0;
	}
	struct upid up = {};
	bpf_probe_read_kernel(&up, sizeof(up), (void *)upid_p);
	return BPF_CORE_READ(up.ns, child_reaper, tgid);
}

/*
 * The effective uid as the task's user namespace numbers it, which is what
 * the names in its root's /etc/passwd are for: from_kuid() on the map's
 * inline extents. A map of more than UID_GID_MAP_MAX_BASE_EXTENTS (5)
 * extents lives out of line and is not read: NS_UID_UNKNOWN, like an
 * unmapped uid. The extents hold initial-namespace ids, whatever the nesting.
 */
#define UID_MAP_INLINE_EXTENTS 5
static __always_inline __u32 euid_in_userns(const struct cred *cred)
{
	__u32 kuid = cred->euid.val;
	struct user_namespace *ns = cred->user_ns;
	if (ns->level == 0)
		return kuid;
	__u32 n = ns->uid_map.nr_extents;
	if (n > UID_MAP_INLINE_EXTENTS)
		return NS_UID_UNKNOWN;
	/* Unrolled by hand: a direct load needs a constant offset (see task_cgroup). */
#define TRY_EXTENT(i)                                                              \
	if ((i) < n) {                                                             \
		struct uid_gid_extent *x = &ns->uid_map.extent[i];                 \
		__u32 lower = x->lower_first;                                      \
		if (kuid >= lower && kuid - lower < x->count)                      \
			return x->first + (kuid - lower);                          \
	}
	TRY_EXTENT(0) TRY_EXTENT(1) TRY_EXTENT(2) TRY_EXTENT(3) TRY_EXTENT(4)
#undef TRY_EXTENT
	return NS_UID_UNKNOWN;
}

/*
 * Whether the task descends from the init of its pid namespace: climbing
 * real_parent, every time the chain leaves a pid namespace it must leave
 * from that namespace's init (pid 1 there), out to the initial namespace.
 * A process entered with setns (runc exec, kubectl exec) leaves from a
 * process that is not init: FLAG_INIT_TREE_KNOWN alone. So does one in a
 * pid namespace made inside such a session. Nothing is said for a task of
 * the initial pid namespace, a chain deeper than INIT_TREE_STEPS_MAX or one
 * that does not end at the initial namespace. An orphan is reparented to
 * the init (or a subreaper): the flag tells how the exec was started, it
 * is not a boundary a process cannot cross.
 */
static __always_inline __u32 init_tree_flags(struct scratch *s, struct task_struct *task, const bool direct)
{
	unsigned int level = task->thread_pid->level;
	if (level == 0)
		return 0;
	struct task_struct *p = task->group_leader;
	for (int i = 0; i < INIT_TREE_STEPS_MAX; i++) {
		struct task_struct *q = p->real_parent;
		if (!q || q == p)
			return 0;
		unsigned int ql = q->thread_pid->level;
		if (ql > level)
			return 0; /* a parent deeper than its child: not a chain this walk knows */
		if (ql < level) {
			if (pid_nr_at(s, p->thread_pid, level, direct) != 1)
				return FLAG_INIT_TREE_KNOWN;
			if (ql == 0)
				return FLAG_INIT_TREE_KNOWN | FLAG_IN_INIT_TREE;
			level = ql;
		}
		p = q->group_leader;
	}
	return 0;
}

/* The entry point of both programs; direct is a compile-time constant. */
static __always_inline int handle(struct task_struct *task, struct linux_binprm *bprm, const bool direct)
{
	stat_inc(STAT_EXECS);

	if (host_mnt_ns && task->nsproxy->mnt_ns->ns.inum == host_mnt_ns) {
		stat_inc(STAT_FILTERED);
		return 0;
	}

	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &cpu);
	if (!s) {
		stat_inc(STAT_NO_SCRATCH);
		return 0;
	}
	struct event *e = &s->hdr;
	__u32 flags = 0;

	if (prefilter_compilers && !is_candidate(s, task, bprm, direct)) {
		if (!cgroup_first_seen(s, task)) {
			stat_inc(STAT_FILTERED_NONCAND);
			return 0;
		}
		stat_inc(STAT_CGROUP_SEEN);
		flags |= FLAG_CGROUP_SEEN;
	}

	e->boot_ns = bpf_ktime_get_boot_ns();
	e->pid = task->tgid;
	struct task_struct *parent = task->real_parent;
	e->ppid = parent->tgid;

	/* The pid as the task's own pid namespace numbers it: numbers[level]. */
	struct pid *tp = task->thread_pid;
	unsigned int level = tp->level;
	e->vpid = pid_nr_at(s, tp, level, direct);
	e->init_pid = ns_init_tgid(s, tp, level, direct);

	const struct cred *cred = task->cred;
	e->uid = cred->euid.val;
	e->ruid = cred->uid.val;
	e->gid = cred->egid.val;

	/* Process context: a terminal, the init tree, and where names come from. */
	if (task->signal->tty)
		flags |= FLAG_INTERACTIVE;
	flags |= init_tree_flags(s, task, direct);
	e->ns_uid = euid_in_userns(cred);
	e->mnt_ns = task->nsproxy->mnt_ns->ns.inum;
	e->argc = bprm->argc;
	copy_comm(e->comm, task, direct);

	/* argv, read from the new mm: arg_start..arg_end. */
	__u32 off = 0;
	struct mm_struct *mm = task->mm;
	unsigned long arg_start = mm->arg_start;
	unsigned long arg_end = mm->arg_end;
	__u64 alen = arg_end > arg_start ? arg_end - arg_start : 0;
	__u32 amax = max_args_bytes;
	if (amax > ARGS_BYTES_HARD_MAX)
		amax = ARGS_BYTES_HARD_MAX;
	if (alen > amax) {
		alen = amax;
		flags |= TRUNC_ARGS;
	}
	if (alen > ARGS_BYTES_HARD_MAX)
		alen = ARGS_BYTES_HARD_MAX;
	if (alen > 0 && bpf_probe_read_user(&s->data[0], alen, (void *)arg_start) == 0)
		off = alen;
	e->args_len = off;

	struct fs_struct *fs = task->fs;
	__u64 rd = as_scalar(s, fs->root.dentry), rm = as_scalar(s, fs->root.mnt);
	int r;
	struct dentry *root = fs->root.dentry;
	e->root_ino = root->d_inode->i_ino;
	e->root_dev = root->d_sb->s_dev;

	/* The executable, as /proc/<pid>/exe shows it (bprm->file). */
	struct file *file = bprm->file;
	r = walk_path_any(off, as_scalar(s, file->f_path.dentry), as_scalar(s, file->f_path.mnt), rd, rm, direct);
	__u32 n = WALK_LEN(r);
	if (r & WALK_TRUNC)
		flags |= TRUNC_PATH;
	if ((r & WALK_PSEUDO) || (file && dentry_unlinked(file->f_path.dentry)))
		flags |= FLAG_EXE_DELETED;
	e->exe_len = n;
	off += n;
	struct vfsmount *root_mnt = fs->root.mnt;
	e->exe_facts = file_facts(s, file, root_mnt, &e->exe_magic, direct);

	/* The working directory, as /proc/<pid>/cwd shows it. */
	struct dentry *pwd = fs->pwd.dentry;
	r = walk_path_any(off, as_scalar(s, pwd), as_scalar(s, fs->pwd.mnt), rd, rm, direct);
	n = WALK_LEN(r);
	if (r & WALK_TRUNC)
		flags |= TRUNC_CWD;
	if (pwd && dentry_unlinked(pwd))
		flags |= FLAG_CWD_DELETED;
	e->cwd_len = n;
	off += n;

	/* The parent's executable, resolved against this task's root. */
	struct file *pfile = parent->mm->exe_file;
	n = 0;
	if (pfile) {
		r = walk_path_any(off, as_scalar(s, pfile->f_path.dentry), as_scalar(s, pfile->f_path.mnt), rd, rm,
				  direct);
		n = WALK_LEN(r);
		if (r & WALK_TRUNC)
			flags |= TRUNC_PARENT_PATH;
		if ((r & WALK_PSEUDO) || dentry_unlinked(pfile->f_path.dentry))
			flags |= FLAG_PARENT_DELETED;
	}
	e->pexe_len = n;
	off += n;
	e->pexe_facts = file_facts(s, pfile, root_mnt, &e->pexe_magic, direct);

	/* The filename as invoked (before symlink and shebang resolution). */
	n = 0;
	if (off <= DATA_SIZE - PATH_BYTES_MAX) {
		long r = bpf_probe_read_kernel_str(&s->data[data_off(off)], PATH_BYTES_MAX, bprm->filename);
		if (r > 0) {
			n = r;
			if (r == PATH_BYTES_MAX)
				flags |= TRUNC_FILENAME;
		}
	}
	e->filename_len = n;
	off += n;

	/* The cgroup path. */
	bool v1 = false;
	struct cgroup *cgrp = task_cgroup(task, &v1);
	/*
	 * The cgroup's node and level: plain loads here, where cgrp is a BTF
	 * pointer in both programs, so a cgroup of common depth costs no helper
	 * call more than its names. level is in every kernel this program
	 * loads on (4.5+); without it the path is left empty, flagged.
	 */
	__s32 cg_level = -1;
	if (bpf_core_field_exists(struct cgroup, level))
		cg_level = cgrp->level;
	__u64 cg = as_scalar(s, cgrp), cg_kn = as_scalar(s, cgrp->kn);
	r = direct ? walk_cgroup_btf(off, cg, cg_kn, cg_level) : walk_cgroup(off, cg, cg_kn, cg_level);
	n = WALK_LEN(r);
	if (r & WALK_TRUNC)
		flags |= TRUNC_CGROUP;
	if (v1)
		flags |= FLAG_CGROUP_V1;
	e->cgroup_len = n;
	off += n;

	/*
	 * Ancestors, nearest (the parent) first, as struct ancestor entries. In
	 * the entry point rather than a global function, so that walking up is
	 * direct loads; it is last, so its exits add few verifier states.
	 */
	struct task_struct *p = parent;
	__u32 ancmax = max_ancestors;
	if (ancmax > ANCESTORS_HARD_MAX)
		ancmax = ANCESTORS_HARD_MAX;
	n = 0;
	/* One step past the maximum, to see whether there were more. */
	for (int i = 0; i <= ANCESTORS_HARD_MAX; i++) {
		if (!p)
			break;
		__u32 pid = p->tgid;
		if (pid == 0)
			break;
		if (i >= ancmax) {
			flags |= TRUNC_ANCESTORS;
			break;
		}
		if (off > DATA_MASK - sizeof(struct ancestor))
			break;
		struct ancestor *a = (void *)&s->data[data_off(off)];
		a->pid = pid;
		struct task_struct *leader = p->group_leader;
		/* comm is NUL-padded in the kernel: a fixed-size copy leaves no stale bytes. */
		copy_comm(a->comm, leader, direct);
		a->_pad = 0;
		off += sizeof(struct ancestor);
		/* The executable's name, right after its entry. */
		__u64 xd = 0;
		struct mm_struct *amm = leader->mm;
		if (amm) {
			struct file *xf = amm->exe_file;
			if (xf)
				xd = as_scalar(s, xf->f_path.dentry);
		}
		__u32 xl = 0;
		if (xd)
			xl = direct ? put_exe_name_btf(off, xd) : put_exe_name(off, xd);
		if (xl > NAME_CHUNK)
			xl = 0;
		a->exe_len = xl;
		off += xl;
		n++;
		struct task_struct *next = leader->real_parent;
		if (next == p)
			break;
		p = next;
	}
	e->ancestor_count = n;
	e->flags = flags;

	__u64 size = sizeof(struct event) + off;
	if (size > offsetof(struct scratch, ptr_slot))
		size = offsetof(struct scratch, ptr_slot);
	__u64 wake = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + size >= wakeup_bytes)
		wake = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, s, size, wake) != 0)
		stat_inc(STAT_RB_DROPS);
	return 0;
}

/* The portable program: Linux 5.8+ with BTF. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	return handle(task, bprm, false);
}

/*
 * The direct program: Linux 6.2+ (bpf_rdonly_cast). The loader tries it
 * first; the record is byte for byte the portable program's.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec_btf, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	return handle(task, bprm, true);
}
