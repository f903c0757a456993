/*
 * execload: the exec load generator of `make bench`.
 *
 *   execload -s STREAMS -d SECONDS [-r RATE] PROGRAM TAG
 *   execload -d SECONDS -x COMMAND [ARG...]
 *
 * Each of STREAMS child processes runs vfork+execve(PROGRAM, {PROGRAM, TAG})
 * in a loop for SECONDS. With -r, the streams together run RATE execs per
 * second, each on an absolute schedule (clock_nanosleep TIMER_ABSTIME), so a
 * slow exec does not lower the rate; without it they run as fast as they can.
 * It prints one line: "execs=N failed=F seconds=S", where N counts execs whose
 * child exited 0, so N is the number of successful execs performed.
 *
 * With -x, it runs COMMAND (an absolute path) with its arguments again and
 * again, one at a time, until SECONDS have passed, and N counts the runs that
 * exited 0 (a build: `make -B`). It is built static, so the same binary runs
 * on the host and in a container that has no C library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct counts {
	long execs;
	long failed;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One exec. Its own function: after vfork, only this frame is shared with the
 * child, and the child touches nothing in it before execve or _exit. */
static __attribute__((noinline)) int run_one(const char *prog, char **argv, char **envp)
{
	pid_t p = vfork();
	if (p == 0) {
		execve(prog, argv, envp);
		_exit(127);
	}
	int st;
	return p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void stream(struct counts *c, const char *prog, char *tag, double seconds, double rate)
{
	char *argv[] = {(char *)prog, tag, NULL};
	char *envp[] = {NULL};
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	double t0 = start.tv_sec + start.tv_nsec / 1e9;
	for (long i = 0;; i++) {
		if (rate > 0) {
			double at = t0 + i / rate;
			if (at - t0 >= seconds)
				break;
			struct timespec ts = {.tv_sec = (time_t)at, .tv_nsec = (long)((at - (time_t)at) * 1e9)};
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
		} else if (now() - t0 >= seconds) {
			break;
		}
		if (run_one(prog, argv, envp))
			c->execs++;
		else
			c->failed++;
	}
}

/* -x: run argv until seconds have passed, one run at a time. */
static int repeat_command(char **cmd, double seconds)
{
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
	long runs = 0, failed = 0;
	double t0 = now();
	while (now() - t0 < seconds) {
		pid_t p = fork();
		if (p < 0) {
			perror("fork");
			return 1;
		}
		if (p == 0) {
			execve(cmd[0], cmd, envp);
			perror(cmd[0]);
			_exit(127);
		}
		int st;
		if (waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			runs++;
		else
			failed++;
	}
	printf("execs=%ld failed=%ld seconds=%.6f\n", runs, failed, now() - t0);
	return failed ? 2 : 0;
}

int main(int argc, char **argv)
{
	int streams = 1, repeat = 0, opt;
	double seconds = 3, rate = 0;
	/* "+": stop at the first non-option, so COMMAND's own options stay its own. */
	while ((opt = getopt(argc, argv, "+s:d:r:x")) != -1) {
		switch (opt) {
		case 's': streams = atoi(optarg); break;
		case 'd': seconds = atof(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'x': repeat = 1; break;
		default: goto usage;
		}
	}
	if (repeat) {
		if (argc - optind < 1 || seconds <= 0)
			goto usage;
		return repeat_command(&argv[optind], seconds);
	}
	if (argc - optind != 2 || streams < 1 || streams > 256 || seconds <= 0 || rate < 0)
		goto usage;

	struct counts *c = mmap(NULL, streams * sizeof(*c), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(c, 0, streams * sizeof(*c));
	double t0 = now();
	for (int s = 0; s < streams; s++) {
		pid_t p = fork();
		if (p < 0) {
			perror("fork");
			return 1;
		}
		if (p == 0) {
			stream(&c[s], argv[optind], argv[optind + 1], seconds, rate / streams);
			_exit(0);
		}
	}
	for (int s = 0; s < streams; s++)
		wait(NULL);
	long execs = 0, failed = 0;
	for (int s = 0; s < streams; s++) {
		execs += c[s].execs;
		failed += c[s].failed;
	}
	printf("execs=%ld failed=%ld seconds=%.6f\n", execs, failed, now() - t0);
	return failed ? 2 : 0;
usage:
	fprintf(stderr, "usage: execload -s STREAMS -d SECONDS [-r RATE] PROGRAM TAG\n"
			"       execload -d SECONDS -x COMMAND [ARG...]\n");
	return 64;
}
