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
//   - 5.8: BPF ring buffer and bpf_ktime_get_boot_ns;
//   - bounded loops (5.3) and tp_btf (5.5) are below that.
// No kprobes, fentry/fexit or LSM hooks are used: many clusters lack them.
//
// Record layout: a fixed header (struct event, generated into Go by bpf2go
// -type event) followed by variable data, appended in this order:
//   argv bytes | exe path | cwd | parent exe path | filename | cgroup path |
//   ancestors (n x struct ancestor)
// Paths are written leaf first as NUL-terminated components; user space
// reverses them. This keeps the walk a simple forward write.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_core_read.h"
#include "bpf/bpf_tracing.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TASK_COMM_LEN 16
#define NAME_CHUNK 256          /* NAME_MAX + 1 */
#define PATH_BYTES_MAX 4096     /* PATH_MAX: per captured path */
#define ARGS_BYTES_HARD_MAX 32768
#define PATH_DEPTH_HARD_MAX 128
#define MOUNT_STACK 3 /* mounts stacked on one directory, crossed per level */
#define ANCESTORS_HARD_MAX 16
#define CGROUP_SUBSYS_HARD_MAX 16

/*
 * Data area. The worst case of every field at its hard maximum (32 KiB of
 * argv, five 4 KiB paths, 16 ancestors: about 53 KiB) stays below DATA_MASK,
 * so masking an offset with DATA_MASK never changes a valid one; it only
 * proves the bound to the verifier, which can lose range information across
 * register copies. The slack after DATA_MASK fits the largest single write.
 */
#define DATA_MASK 0xffff
#define DATA_SIZE (DATA_MASK + 1 + PATH_BYTES_MAX)

/* Truncation bits: identical to event.Truncation in Go. */
#define TRUNC_ARGS        (1U << 0)
#define TRUNC_PATH        (1U << 1)
#define TRUNC_CWD         (1U << 2)
#define TRUNC_PARENT_PATH (1U << 3)
#define TRUNC_FILENAME    (1U << 4)
#define TRUNC_CGROUP      (1U << 5)
#define TRUNC_ANCESTORS   (1U << 6)
/* Other flags. */
#define FLAG_EXE_DELETED    (1U << 8)
#define FLAG_CWD_DELETED    (1U << 9)
#define FLAG_PARENT_DELETED (1U << 10)
#define FLAG_CGROUP_V1      (1U << 11)

/* Origins: identical to event.Origin in Go. */
#define ORIGIN_UNKNOWN 0
#define ORIGIN_IMAGE 1
#define ORIGIN_UPPER 2
#define ORIGIN_MEMFD 3
#define ORIGIN_TMPFS 4
#define ORIGIN_DELETED 5
#define ORIGIN_HOST 6

#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define TMPFS_MAGIC 0x01021994
#define HUGETLBFS_MAGIC 0x958458f6

enum stat_idx {
	STAT_EXECS = 0,      /* every exec the program saw */
	STAT_RB_DROPS = 1,   /* ring buffer full: record lost */
	STAT_NO_SCRATCH = 2, /* scratch buffer unavailable: record lost */
	STAT_MAX,
};

struct ancestor {
	__u32 pid;
	char comm[TASK_COMM_LEN];
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
	__u8 exe_origin;
	__u8 pexe_origin;
	__u8 _pad;
	char comm[TASK_COMM_LEN];
};

struct scratch {
	struct event hdr;
	__u8 data[DATA_SIZE];
};

/* Keep struct ancestor in BTF so bpf2go generates its Go type. */
const struct ancestor *unused_ancestor __attribute__((unused));

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

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(struct kernfs_node, __parent))
		return BPF_CORE_READ(kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___pre615 *)kn, parent);
}

/* d_unlinked(): unhashed and not the root of its filesystem. */
static __always_inline bool dentry_unlinked(struct dentry *d)
{
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	void *pprev = BPF_CORE_READ(d, d_hash.pprev);
	return pprev == NULL && parent != d;
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
 * The walks below are global (non-inlined) functions on purpose: the
 * verifier checks a global function once, on its own, and the caller sees
 * only a scalar result. Inlined, each walk's many loop exits multiply the
 * verifier states of everything after it past the 1M instruction limit.
 * Arguments are plain scalars (kernel pointers obtained by probe reads), which
 * global functions accept on every kernel with BTF-verified subprograms.
 *
 * Result: bytes written in the low 16 bits, WALK_TRUNC when cut short.
 */
#define WALK_TRUNC (1 << 16)
#define WALK_PSEUDO (1 << 17) /* a pseudo file (memfd): /proc shows it " (deleted)" */
#define WALK_LEN(r) ((__u32)(r) & 0xffff)

/*
 * Walk path (dentry, vfsmount) up to root, crossing mount points, the way
 * d_path() does: the result is the path as seen from root. Components are
 * written leaf first.
 */
__noinline int walk_path(__u32 off, __u64 dentry_p, __u64 vfsmnt_p, __u64 root_dentry_p, __u64 root_mnt_p)
{
	struct scratch *s = scratch_get();
	struct dentry *dentry = (void *)dentry_p;
	struct vfsmount *vfsmnt = (void *)vfsmnt_p;
	struct dentry *root_dentry = (void *)root_dentry_p;
	struct vfsmount *root_mnt = (void *)root_mnt_p;
	__u32 start = off;
	__u32 limit = off + PATH_BYTES_MAX;
	__u32 depth = max_path_depth;

	if (!s || !dentry || !vfsmnt || off > DATA_MASK)
		return 0;
	struct mount *mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);

	/*
	 * Each iteration emits exactly one name, so the verifier sees the same
	 * state shape at every iteration and can prune; mount crossings happen
	 * inside the iteration (up to MOUNT_STACK stacked mounts per level).
	 */
	for (int i = 0; i < PATH_DEPTH_HARD_MAX; i++) {
		for (int j = 0; j < MOUNT_STACK; j++) {
			if (dentry == root_dentry && vfsmnt == root_mnt)
				goto done;
			if (dentry != BPF_CORE_READ(vfsmnt, mnt_root))
				break;
			struct mount *parent = BPF_CORE_READ(mnt, mnt_parent);
			if (parent == mnt)
				goto done; /* the global root, or an internal mount (memfd, pipes) */
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = parent;
			vfsmnt = (void *)mnt + bpf_core_field_offset(struct mount, mnt);
		}
		if (dentry == root_dentry && vfsmnt == root_mnt)
			goto done;
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
		if (parent == dentry) {
			/*
			 * A root that is not its mount's root: a pseudo file such as a
			 * memfd, whose d_dname() /proc renders "/<name> (deleted)".
			 */
			if (i == 0 && put_name(s, &off, limit, BPF_CORE_READ(dentry, d_name.name)))
				return (off - start) | WALK_PSEUDO;
			goto done;
		}
		if (i >= depth)
			break;
		if (!put_name(s, &off, limit, BPF_CORE_READ(dentry, d_name.name)))
			break;
		dentry = parent;
	}
	return (off - start) | WALK_TRUNC;
done:
	return off - start;
}

/* Where the executed file lives: overlay layer, memfd, tmpfs, deleted, host. */
static __always_inline __u8 file_origin(struct file *f)
{
	if (!f)
		return ORIGIN_UNKNOWN;
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	if (!d || !inode)
		return ORIGIN_UNKNOWN;
	unsigned long magic = BPF_CORE_READ(inode, i_sb, s_magic);

	if (magic == TMPFS_MAGIC || magic == HUGETLBFS_MAGIC) {
		/* memfd_create names its dentry "memfd:<name>". */
		char pfx[6] = {};
		bpf_probe_read_kernel(pfx, sizeof(pfx), BPF_CORE_READ(d, d_name.name));
		if (pfx[0] == 'm' && pfx[1] == 'e' && pfx[2] == 'm' && pfx[3] == 'f' && pfx[4] == 'd' &&
		    pfx[5] == ':')
			return ORIGIN_MEMFD;
	}
	if (dentry_unlinked(d))
		return ORIGIN_DELETED;
	if (magic == TMPFS_MAGIC)
		return ORIGIN_TMPFS;
	if (magic == OVERLAYFS_SUPER_MAGIC) {
		if (!bpf_core_type_exists(struct ovl_inode))
			return ORIGIN_UNKNOWN;
		struct ovl_inode *oi = (void *)inode - bpf_core_field_offset(struct ovl_inode, vfs_inode);
		return BPF_CORE_READ(oi, __upperdentry) ? ORIGIN_UPPER : ORIGIN_IMAGE;
	}
	return ORIGIN_HOST;
}

/* Walk a kernfs (cgroup) node to its root, leaf first. */
__noinline int walk_kernfs(__u32 off, __u64 kn_p)
{
	struct scratch *s = scratch_get();
	struct kernfs_node *kn = (void *)kn_p;
	__u32 start = off;
	__u32 limit = off + PATH_BYTES_MAX;
	__u32 depth = max_path_depth;

	if (!s || off > DATA_SIZE)
		return 0;
	for (int i = 0; i < PATH_DEPTH_HARD_MAX; i++) {
		if (!kn)
			return off - start;
		struct kernfs_node *parent = kn_parent(kn);
		if (!parent)
			return off - start; /* the hierarchy root has no name to add */
		if (i >= depth)
			break;
		if (!put_name(s, &off, limit, BPF_CORE_READ(kn, name)))
			break;
		kn = parent;
	}
	return (off - start) | WALK_TRUNC;
}

/*
 * Ancestors, nearest (the parent) first, as struct ancestor entries.
 * Result: entries written in the low 8 bits, WALK_TRUNC when there were more.
 */
__noinline int walk_ancestors(__u32 off, __u64 parent_p)
{
	struct scratch *s = scratch_get();
	struct task_struct *p = (void *)parent_p;
	__u32 amax = max_ancestors;
	int n = 0;

	if (!s)
		return 0;
	for (int i = 0; i < ANCESTORS_HARD_MAX; i++) {
		if (!p)
			break;
		__u32 pid = BPF_CORE_READ(p, tgid);
		if (pid == 0)
			break;
		if (i >= amax)
			return n | WALK_TRUNC;
		if (off > DATA_SIZE - sizeof(struct ancestor))
			break;
		struct ancestor *a = (void *)&s->data[data_off(off)];
		a->pid = pid;
		/* comm is NUL-padded in the kernel: a fixed-size copy leaves no stale bytes. */
		bpf_probe_read_kernel(a->comm, sizeof(a->comm), BPF_CORE_READ(p, group_leader, comm));
		off += sizeof(struct ancestor);
		n++;
		struct task_struct *next = BPF_CORE_READ(p, group_leader, real_parent);
		if (next == p)
			break;
		p = next;
	}
	return n;
}

/*
 * The cgroup: the v2 (default hierarchy) cgroup first. Where the task sits in
 * the v2 root (no v2 in use, or a hybrid host whose runtime only uses v1),
 * fall back to the first v1 hierarchy in which it is not at the root.
 */
static __always_inline struct kernfs_node *task_cgroup_kn(struct task_struct *task, bool *v1)
{
	struct css_set *cgroups = BPF_CORE_READ(task, cgroups);
	struct kernfs_node *kn = BPF_CORE_READ(cgroups, dfl_cgrp, kn);
	if (kn && kn_parent(kn))
		return kn;

	__u32 count = CGROUP_SUBSYS_HARD_MAX;
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, CGROUP_SUBSYS_COUNT))
		count = bpf_core_enum_value(enum cgroup_subsys_id, CGROUP_SUBSYS_COUNT);
	for (int i = 0; i < CGROUP_SUBSYS_HARD_MAX; i++) {
		if (i >= count)
			break;
		struct cgroup_subsys_state *css = BPF_CORE_READ(cgroups, subsys[i]);
		if (!css)
			continue;
		struct kernfs_node *k = BPF_CORE_READ(css, cgroup, kn);
		if (k && kn_parent(k)) {
			*v1 = true;
			return k;
		}
	}
	return kn;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	stat_inc(STAT_EXECS);

	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &cpu);
	if (!s) {
		stat_inc(STAT_NO_SCRATCH);
		return 0;
	}
	struct event *e = &s->hdr;
	__u32 flags = 0;

	e->boot_ns = bpf_ktime_get_boot_ns();
	e->pid = BPF_CORE_READ(task, tgid);
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	e->ppid = BPF_CORE_READ(parent, tgid);

	/* The pid as the task's own pid namespace numbers it. */
	struct pid *tp = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(tp, level);
	struct upid up = {};
	void *numbers = (void *)tp + bpf_core_field_offset(struct pid, numbers);
	bpf_probe_read_kernel(&up, sizeof(up), numbers + (level & 31) * bpf_core_type_size(struct upid));
	e->vpid = up.nr;

	const struct cred *cred = BPF_CORE_READ(task, cred);
	e->uid = BPF_CORE_READ(cred, euid.val);
	e->ruid = BPF_CORE_READ(cred, uid.val);
	e->gid = BPF_CORE_READ(cred, egid.val);
	e->argc = BPF_CORE_READ(bprm, argc);
	bpf_probe_read_kernel(e->comm, sizeof(e->comm), task->comm);

	/* argv, read from the new mm: arg_start..arg_end. */
	__u32 off = 0;
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long arg_start = BPF_CORE_READ(mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(mm, arg_end);
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

	struct path root = BPF_CORE_READ(task, fs, root);
	__u64 rd = (__u64)root.dentry, rm = (__u64)root.mnt;
	int r;

	/* The executable, as /proc/<pid>/exe shows it (bprm->file). */
	struct file *file = BPF_CORE_READ(bprm, file);
	r = walk_path(off, (__u64)BPF_CORE_READ(file, f_path.dentry), (__u64)BPF_CORE_READ(file, f_path.mnt), rd, rm);
	__u32 n = WALK_LEN(r);
	if (r & WALK_TRUNC)
		flags |= TRUNC_PATH;
	if ((r & WALK_PSEUDO) || (file && dentry_unlinked(BPF_CORE_READ(file, f_path.dentry))))
		flags |= FLAG_EXE_DELETED;
	e->exe_len = n;
	off += n;
	e->exe_origin = file_origin(file);

	/* The working directory, as /proc/<pid>/cwd shows it. */
	struct path pwd = BPF_CORE_READ(task, fs, pwd);
	r = walk_path(off, (__u64)pwd.dentry, (__u64)pwd.mnt, rd, rm);
	n = WALK_LEN(r);
	if (r & WALK_TRUNC)
		flags |= TRUNC_CWD;
	if (pwd.dentry && dentry_unlinked(pwd.dentry))
		flags |= FLAG_CWD_DELETED;
	e->cwd_len = n;
	off += n;

	/* The parent's executable, resolved against this task's root. */
	struct file *pfile = BPF_CORE_READ(parent, mm, exe_file);
	n = 0;
	if (pfile) {
		r = walk_path(off, (__u64)BPF_CORE_READ(pfile, f_path.dentry), (__u64)BPF_CORE_READ(pfile, f_path.mnt), rd,
			      rm);
		n = WALK_LEN(r);
		if (r & WALK_TRUNC)
			flags |= TRUNC_PARENT_PATH;
		if ((r & WALK_PSEUDO) || dentry_unlinked(BPF_CORE_READ(pfile, f_path.dentry)))
			flags |= FLAG_PARENT_DELETED;
	}
	e->pexe_len = n;
	off += n;
	e->pexe_origin = file_origin(pfile);

	/* The filename as invoked (before symlink and shebang resolution). */
	n = 0;
	if (off <= DATA_SIZE - PATH_BYTES_MAX) {
		long r = bpf_probe_read_kernel_str(&s->data[data_off(off)], PATH_BYTES_MAX,
						   BPF_CORE_READ(bprm, filename));
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
	r = walk_kernfs(off, (__u64)task_cgroup_kn(task, &v1));
	n = WALK_LEN(r);
	if (r & WALK_TRUNC)
		flags |= TRUNC_CGROUP;
	if (v1)
		flags |= FLAG_CGROUP_V1;
	e->cgroup_len = n;
	off += n;

	/* Ancestors, nearest (the parent) first. */
	r = walk_ancestors(off, (__u64)parent);
	n = r & 0xff;
	if (n > ANCESTORS_HARD_MAX)
		n = ANCESTORS_HARD_MAX;
	if (r & WALK_TRUNC)
		flags |= TRUNC_ANCESTORS;
	e->ancestor_count = n;
	off += n * sizeof(struct ancestor);
	e->flags = flags;

	__u64 size = sizeof(struct event) + off;
	if (size > sizeof(struct scratch))
		size = sizeof(struct scratch);
	__u64 wake = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + size >= wakeup_bytes)
		wake = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, s, size, wake) != 0)
		stat_inc(STAT_RB_DROPS);
	return 0;
}
