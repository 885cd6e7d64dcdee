/* A small static program the attack tests run inside containers, for the
 * calls busybox has no applet for. Each subcommand prints one line: what
 * happened, or the errno name of why not. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(long r, const char *ok)
{
	if (r < 0) {
		printf("error %s\n", strerrorname_np(errno));
		return 1;
	}
	printf("%s\n", ok);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "keyctl")) {
		/* KEYCTL_GET_KEYRING_ID of the session keyring */
		return report(syscall(SYS_keyctl, 0, -3, 0), "keyctl allowed");
	}
	if (argc >= 3 && !strcmp(argv[1], "syscall")) {
		/* A raw syscall by number, no arguments: what the filter answers. */
		return report(syscall(atol(argv[2]), 0, 0, 0, 0, 0, 0), "syscall returned");
	}
	if (argc >= 3 && !strcmp(argv[1], "open-write")) {
		return report(open(argv[2], O_WRONLY | O_CLOEXEC), "opened for writing");
	}
	if (argc >= 3 && !strcmp(argv[1], "open-path")) {
		return report(open(argv[2], O_PATH | O_CLOEXEC), "opened");
	}
	if (argc >= 2 && !strcmp(argv[1], "euid")) {
		/* What a setuid binary gained: its effective uid and capabilities. */
		char line[256];
		FILE *f = fopen("/proc/self/status", "r");
		printf("euid %d\n", (int)geteuid());
		while (f && fgets(line, sizeof line, f))
			if (!strncmp(line, "CapEff:", 7))
				fputs(line, stdout);
		return 0;
	}
	fprintf(stderr, "usage: probe keyctl|syscall NR|open-write PATH|open-path PATH|euid\n");
	return 2;
}
