/* A small static program the attack tests run inside containers, for the
 * calls busybox has no applet for. Each subcommand prints one line: what
 * happened, or the errno name of why not. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
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

/* Whether the file at PATH can be opened and holds NEEDLE. */
static int file_has(const char *path, const char *needle)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long n;
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	return n > 0 && memmem(buf, n, needle, strlen(needle)) != NULL;
}

/* What a process of the container can take from another process it sees in
 * /proc (with CAP_SYS_PTRACE): a host file through its root or cwd, or the
 * needle in its environment. Returns a bit per kind found. */
static int peek(int pid, const char *marker, const char *base, const char *needle)
{
	char path[4096];
	int found = 0;
	snprintf(path, sizeof path, "/proc/%d/root%s", pid, marker);
	found |= file_has(path, needle) << 0;
	snprintf(path, sizeof path, "/proc/%d/cwd/%s", pid, base);
	found |= file_has(path, needle) << 1;
	snprintf(path, sizeof path, "/proc/%d/environ", pid);
	found |= file_has(path, needle) << 2;
	return found;
}

/* Watches for SECONDS: every process that appears, and above all the pids
 * about to be handed out next, is peeked at as often as possible. Prints
 * "found root|cwd|environ PID" once per kind, then "watched N". */
static int watch(int secs, const char *marker, const char *needle)
{
	const char *base = strrchr(marker, '/') ? strrchr(marker, '/') + 1 : marker;
	int self = getpid(), seen = 0, reported = 0;
	time_t end = time(NULL) + secs;
	printf("watching\n");
	fflush(stdout);
	while (time(NULL) < end) {
		int max = self;
		DIR *d = opendir("/proc");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			int pid = atoi(e->d_name);
			if (pid <= 1 || pid == self)
				continue;
			if (pid > max)
				max = pid;
			seen++;
			reported |= peek(pid, marker, base, needle) & ~reported;
		}
		if (d)
			closedir(d);
		for (int round = 0; round < 3000; round++)
			for (int pid = max + 1; pid <= max + 3; pid++)
				reported |= peek(pid, marker, base, needle) & ~reported;
		for (int k = 0; k < 3; k++)
			if (reported & (1 << k) && !(reported & (8 << k))) {
				printf("found %s\n", (const char *[]){"root", "cwd", "environ"}[k]);
				fflush(stdout);
				reported |= 8 << k;
			}
	}
	printf("watched %d\n", seen);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "watch"))
		return watch(atoi(argv[2]), argv[3], argv[4]);
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
	if (argc >= 3 && !strcmp(argv[1], "udp-recv")) {
		/* One datagram on PORT (10 s at most): "got MSG from ADDR". */
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
		struct timeval tv = { .tv_sec = 10 };
		char buf[256];
		struct sockaddr_in from;
		socklen_t fl = sizeof from;
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		if (report(bind(s, (struct sockaddr *)&a, sizeof a), "listening"))
			return 1;
		fflush(stdout);
		long n = recvfrom(s, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
		if (n < 0)
			return report(n, "");
		buf[n] = 0;
		printf("got %s from %s\n", buf, inet_ntoa(from.sin_addr));
		return 0;
	}
	if (argc >= 5 && !strcmp(argv[1], "udp-send")) {
		/* MSG to ADDR:PORT (broadcast allowed), COUNT times (default 50)
		 * every 100 ms: the receiver may start later. */
		int count = argc >= 6 ? atoi(argv[5]) : 50;
		int s = socket(AF_INET, SOCK_DGRAM, 0), on = 1;
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		inet_aton(argv[2], &a.sin_addr);
		if (report(setsockopt(s, SOL_SOCKET, SO_BROADCAST, &on, sizeof on), "broadcasting"))
			return 1;
		for (int i = 0; i < count; i++) {
			if (sendto(s, argv[4], strlen(argv[4]), 0, (struct sockaddr *)&a, sizeof a) < 0)
				return report(-1, "");
			usleep(100000);
		}
		return 0;
	}
	fprintf(stderr, "usage: probe keyctl|syscall NR|open-write PATH|open-path PATH|euid|udp-recv PORT|udp-send ADDR PORT MSG [COUNT]|watch SECONDS MARKER NEEDLE\n");
	return 2;
}
