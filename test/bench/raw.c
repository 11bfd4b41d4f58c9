/* SPDX-License-Identifier: MIT */
/* raw: the least a client can do against the agent, as a yardstick for
 * make bench. Blocking I/O, no resync, replies taken as lines; file data
 * is neither encoded nor decoded beyond what the agent needs.
 *
 *   raw SOCK ping N                 N guest-pings, one after another
 *   raw SOCK lines FILE             each line of FILE as a request, in turn
 *   raw SOCK window FILE W          the same, with up to W requests sent
 *                                   ahead of their replies
 *   raw SOCK exec PROG              guest-exec, then guest-exec-status
 *                                   until it exited, no pause
 *   raw SOCK read PATH CHUNK        guest-file-read CHUNK bytes at a time
 *   raw SOCK write PATH CHUNK SIZE  guest-file-write SIZE bytes of one
 *                                   base64 chunk, CHUNK bytes at a time
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fd;
static char *buf;
static size_t cap, len, off;

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static void
put(const char *s, size_t n)
{
	ssize_t w;

	for (; n; s += w, n -= (size_t)w)
		if ((w = write(fd, s, n)) <= 0)
			die("write");
}

/* The next reply line, NUL terminated. */
static char *
line(void)
{
	char *nl, *l;
	ssize_t n;

	while (!(nl = memchr(buf + off, '\n', len - off))) {
		if (off) {
			memmove(buf, buf + off, len - off);
			len -= off;
			off = 0;
		}
		if (cap - len < 65536 && !(buf = realloc(buf, cap = cap * 2 + 65536)))
			die("realloc");
		if ((n = read(fd, buf + len, cap - len)) <= 0)
			die("read");
		len += (size_t)n;
	}
	*nl = 0;
	l = buf + off;
	off = (size_t)(nl + 1 - buf);
	return l;
}

static long long
num(const char *l, const char *key)
{
	const char *p = strstr(l, key);

	return p ? atoll(p + strlen(key)) : -1;
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char req[512], *l, *b64;
	long long i, k, n, h, chunk, size;
	static const char a64[] = "ABCD";

	if (argc < 4)
		return 2;
	strncpy(sun.sun_path, argv[1], sizeof sun.sun_path - 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
		die(argv[1]);
	if (!strcmp(argv[2], "ping")) {
		n = atoll(argv[3]);
		for (i = 0; i < n; i++) {
			put("{\"execute\":\"guest-ping\"}", 24);
			line();
		}
	} else if (!strcmp(argv[2], "lines")) {
		FILE *f = fopen(argv[3], "r");

		if (!f)
			die(argv[3]);
		while (fgets(req, sizeof req, f)) {
			put(req, strcspn(req, "\n"));
			line();
		}
	} else if (!strcmp(argv[2], "window") && argc > 4) {
		FILE *f = fopen(argv[3], "r");
		long long ahead = 0, w = atoll(argv[4]);

		if (!f)
			die(argv[3]);
		for (;;) {
			while (ahead < w && fgets(req, sizeof req, f)) {
				put(req, strcspn(req, "\n"));
				ahead++;
			}
			if (!ahead)
				break;
			line();
			ahead--;
		}
	} else if (!strcmp(argv[2], "exec")) {
		snprintf(req, sizeof req, "{\"execute\":\"guest-exec\",\"arguments\":"
		         "{\"path\":\"%s\",\"capture-output\":true}}", argv[3]);
		put(req, strlen(req));
		h = num(line(), "\"pid\": ");
		snprintf(req, sizeof req, "{\"execute\":\"guest-exec-status\","
		         "\"arguments\":{\"pid\":%lld}}", h);
		do
			put(req, strlen(req));
		while (!strstr(line(), "\"exited\": true"));
	} else if (!strcmp(argv[2], "read") || !strcmp(argv[2], "write")) {
		int rd = argv[2][0] == 'r';
		chunk = argc > 4 ? atoll(argv[4]) : 4 << 20;
		size = argc > 5 ? atoll(argv[5]) : 0;
		snprintf(req, sizeof req, "{\"execute\":\"guest-file-open\",\"arguments\":"
		         "{\"path\":\"%s\",\"mode\":\"%s\"}}", argv[3], rd ? "r" : "w");
		put(req, strlen(req));
		h = num(line(), "\"return\": ");
		if (rd) {
			snprintf(req, sizeof req, "{\"execute\":\"guest-file-read\","
			         "\"arguments\":{\"handle\":%lld,\"count\":%lld}}", h, chunk);
			do
				put(req, strlen(req));
			while (!strstr(l = line(), "\"eof\": true") && num(l, "\"count\": ") > 0);
		} else {
			/* One chunk's base64, built once: 3 bytes of data are 4 chars. */
			n = chunk / 3 * 4;
			if (!(b64 = malloc((size_t)n + 256)))
				die("malloc");
			i = sprintf(b64, "{\"execute\":\"guest-file-write\",\"arguments\":"
			            "{\"handle\":%lld,\"buf-b64\":\"", h);
			for (k = 0; k < n; k++)
				b64[i + k] = a64[k & 3];
			strcpy(b64 + i + n, "\"}}");
			for (; size > 0; size -= chunk / 3 * 3) {
				put(b64, strlen(b64));
				line();
			}
		}
		snprintf(req, sizeof req, "{\"execute\":\"guest-file-close\","
		         "\"arguments\":{\"handle\":%lld}}", h);
		put(req, strlen(req));
		line();
	} else
		return 2;
	return 0;
}
