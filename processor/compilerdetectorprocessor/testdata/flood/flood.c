/* The dedup flood, run in a container: `flood <link> <keys> <dirs>`, where <link> is link.c's binary.
 *
 * It makes a chain of <keys> execs of /tmp/w/<i>/gcc (link.c, hard-linked), each started by the one before, so each
 * gcc finding has a parent executable of its own, a new dedup key, at the cost of one exec. Each link exits once
 * its child runs; this process, a child subreaper, reaps them all and returns when the chain ends. The last
 * <dirs> links exec in unique working directories of about 3.8 KiB. Links rename their comm to "flood": a gcc
 * under gcc is not what is tested. /tmp must be a tmpfs: the links are more than ext4 allows on one file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) { perror(what); _exit(2); }

static void deepdir(long i, int create) {
	char name[256], top[32];
	memset(name, 'a', 255);
	name[255] = 0;
	snprintf(top, sizeof top, "/tmp/d/%06ld", i);
	if (create && mkdir(top, 0755) < 0) die("mkdir top");
	if (chdir(top) < 0) die("chdir top");
	for (int j = 0; j < 15; j++) {
		if (create && mkdir(name, 0755) < 0) die("mkdir");
		if (chdir(name) < 0) die("chdir");
	}
}

static void copy(const char *from, const char *to) {
	char buf[65536];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0755);
	if (in < 0 || out < 0) die("open");
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n < 0) die("read");
		if (n == 0) break;
		if (write(out, buf, n) != n) die("write");
	}
	close(in);
	close(out);
}

/* spawn starts the chain: it execs link 0, which execs link 1, and so on. */
static void spawn(const char *keys, const char *dirs) {
	char *argv[] = {"gcc", "0", (char *)keys, (char *)dirs, NULL};
	if (atol(dirs) >= atol(keys)) deepdir(0, 0);
	else if (chdir("/") < 0) die("chdir");
	pid_t pid = vfork();
	if (pid < 0) die("vfork");
	if (pid == 0) {
		execv("/tmp/w/0/gcc", argv);
		_exit(127);
	}
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: flood <link> <keys> <dirs>\n");
		return 2;
	}
	long keys = atol(argv[2]), dirs = atol(argv[3]);
	char path[64];
	if (mkdir("/tmp/w", 0755) < 0 || mkdir("/tmp/d", 0755) < 0) die("mkdir");
	copy(argv[1], "/tmp/w/bin");
	for (long k = 0; k < keys; k++) {
		snprintf(path, sizeof path, "/tmp/w/%ld", k);
		if (mkdir(path, 0755) < 0) die("mkdir");
		snprintf(path, sizeof path, "/tmp/w/%ld/gcc", k);
		if (link("/tmp/w/bin", path) < 0) die("link");
	}
	for (long k = 0; k < dirs; k++) deepdir(k, 1);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("subreaper");
	spawn(argv[2], argv[3]);
	for (;;) {
		if (wait(NULL) < 0) {
			if (errno == EINTR) continue;
			if (errno == ECHILD) return 0;
			die("wait");
		}
	}
}
