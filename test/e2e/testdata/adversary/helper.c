// The adversary's helper, built static on the host and bind-mounted into the
// test container (adversary_linux_test.go):
//
//   helper memfd <name> <file> argv...     copy file into memfd_create(name), execveat it
//   helper deleted <file> <copy> argv...   copy file to copy, unlink it, execveat the open file
//   helper comm <comm> <path> argv...      set own comm (prctl), run path as a child, wait
//
// Any other first argument exits 0: copied to a name such as "java", it is a
// program whose arguments only the detector reads.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int copy(int in, int out)
{
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			return -1;
	return n < 0 ? -1 : 0;
}

static int exec_fd(int fd, char **argv)
{
	syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
	perror("execveat");
	return 127;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "memfd") == 0) {
		int in = open(argv[3], O_RDONLY);
		int fd = memfd_create(argv[2], MFD_CLOEXEC);
		if (in < 0 || fd < 0 || copy(in, fd) != 0) {
			perror("memfd");
			return 126;
		}
		return exec_fd(fd, argv + 4);
	}
	if (argc >= 5 && strcmp(argv[1], "deleted") == 0) {
		int in = open(argv[2], O_RDONLY);
		int out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0755);
		if (in < 0 || out < 0 || copy(in, out) != 0 || close(out) != 0) {
			perror("copy");
			return 126;
		}
		int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
		if (fd < 0 || unlink(argv[3]) != 0) {
			perror("unlink");
			return 126;
		}
		return exec_fd(fd, argv + 4);
	}
	if (argc >= 4 && strcmp(argv[1], "comm") == 0) {
		if (prctl(PR_SET_NAME, argv[2]) != 0) {
			perror("prctl");
			return 126;
		}
		pid_t p = fork();
		if (p == 0) {
			execv(argv[3], argv + 4);
			perror("execv");
			_exit(127);
		}
		int st;
		if (p < 0 || waitpid(p, &st, 0) < 0)
			return 126;
		return WIFEXITED(st) ? WEXITSTATUS(st) : 125;
	}
	return 0;
}
