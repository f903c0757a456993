/* One link of the dedup flood's exec chain (see flood.c), linked at /tmp/w/<i>/gcc: `gcc <i> <keys> <dirs>` execs
 * link i+1 in a child, waits until that runs, and exits. Run any other way, it exits at once. The wait is a byte
 * the child writes on fd 9 once it runs: a parent released at vfork's completion could exit before the kernel's
 * exec tracepoint reads its executable, and the child's parent would then be the reaper.
 * No libc: a static glibc program costs several times more per exec, and the flood is 100,000 execs. x86_64 only. */

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_dup2 33
#define SYS_pipe2 293
#define SYS_chdir 80
#define SYS_clone 56
#define SYS_execve 59
#define SYS_exit 60
#define SYS_prctl 157
#define PR_SET_NAME 15
#define CLONE_VFORK 0x4000
#define SIGCHLD 17
#define O_CLOEXEC 02000000

static long sys(long n, long a, long b, long c, long d, long e) {
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
	return r;
}

static long atol(const char *s) {
	long n = 0;
	while (*s >= '0' && *s <= '9') n = n * 10 + (*s++ - '0');
	return n;
}

/* put writes s at p and returns the end. */
static char *put(char *p, const char *s) {
	while (*s) *p++ = *s++;
	return p;
}

/* putnum writes n in decimal, zero-padded to width digits. */
static char *putnum(char *p, long n, int width) {
	char d[24];
	int k = 0;
	do {
		d[k++] = '0' + n % 10;
		n /= 10;
	} while (n > 0 || k < width);
	while (k > 0) *p++ = d[--k];
	return p;
}

void cmain(long *sp) {
	long argc = sp[0];
	char **argv = (char **)(sp + 1), **envp = argv + argc + 1;
	if (argc != 4) sys(SYS_exit, 0, 0, 0, 0, 0);
	sys(SYS_write, 9, (long)"x", 1, 0, 0); /* release the parent; EBADF for the first link */
	sys(SYS_close, 9, 0, 0, 0, 0);
	sys(SYS_prctl, PR_SET_NAME, (long)"flood", 0, 0, 0);
	long next = atol(argv[1]) + 1, keys = atol(argv[2]), dirs = atol(argv[3]);
	if (next >= keys) sys(SYS_exit, 0, 0, 0, 0, 0);

	static char cwd[4096], exe[64], num[24];
	char *p = cwd;
	if (next >= keys - dirs) { /* the path flood.c made: /tmp/d/<6 digits> then 15 components of 255 'a' */
		p = putnum(put(p, "/tmp/d/"), next - (keys - dirs), 6);
		for (int j = 0; j < 15; j++) {
			*p++ = '/';
			for (int c = 0; c < 255; c++) *p++ = 'a';
		}
	} else {
		*p++ = '/';
	}
	*p = 0;
	*put(putnum(put(exe, "/tmp/w/"), next, 0), "/gcc") = 0;
	*putnum(num, next, 0) = 0;
	if (sys(SYS_chdir, (long)cwd, 0, 0, 0, 0) < 0) sys(SYS_exit, 3, 0, 0, 0, 0);
	int fds[2];
	if (sys(SYS_pipe2, (long)fds, O_CLOEXEC, 0, 0, 0) < 0 || sys(SYS_dup2, fds[1], 9, 0, 0, 0) < 0) sys(SYS_exit, 4, 0, 0, 0, 0);
	sys(SYS_close, fds[1], 0, 0, 0, 0);
	char *args[] = {"gcc", num, argv[2], argv[3], 0};
	long pid = sys(SYS_clone, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0) {
		sys(SYS_execve, (long)exe, (long)args, (long)envp, 0, 0);
		sys(SYS_exit, 127, 0, 0, 0, 0);
	}
	sys(SYS_close, 9, 0, 0, 0, 0);
	char b;
	sys(SYS_read, fds[0], (long)&b, 1, 0, 0); /* the byte, or end of file if the child died */
	sys(SYS_exit, pid < 0 ? 5 : 0, 0, 0, 0, 0);
}

__asm__(".globl _start\n_start:\n\txor %rbp, %rbp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall cmain\n\thlt\n");
