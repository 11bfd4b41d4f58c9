/* SPDX-License-Identifier: MIT */
/* delay MS LISTEN TARGET [LISTEN TARGET]...: relays each unix socket
 * LISTEN to the unix socket TARGET, holding back every chunk TARGET sends
 * for MS milliseconds, as a guest on a busy host is slow to answer. One
 * process and poll(2) for all of them; a connection reads no more from
 * its target until the chunk it holds has gone, so order is kept. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAXC 1024

struct relay {
	int cfd, afd;
	size_t len;
	long long due;
	char buf[65536];
};

static long long
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static int
unix_sock(const char *path, int listening)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	if (fd < 0)
		return -1;
	if (listening ? bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0 :
	                connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Closes both sides; the target's socket empty, since qemu-ga exits when
 * a client leaves a reply unread. */
static void
drop(struct relay *r)
{
	char b[4096];

	shutdown(r->afd, SHUT_RD);
	while (recv(r->afd, b, sizeof b, MSG_DONTWAIT) > 0)
		;
	close(r->cfd);
	close(r->afd);
	r->cfd = -1;
}

/* Copies what fd has to to, whole; 0 at the end or on an error. */
static int
pass(int fd, int to)
{
	char b[65536];
	ssize_t n = read(fd, b, sizeof b), w;
	size_t off;

	for (off = 0; n > 0 && off < (size_t)n; off += (size_t)w)
		if ((w = write(to, b + off, (size_t)n - off)) <= 0)
			return 0;
	return n > 0;
}

int
main(int argc, char **argv)
{
	static struct relay c[MAXC];
	static struct pollfd p[MAXC * 2 + 512];
	int nl = (argc - 2) / 2, lfd[256], who[MAXC * 2 + 512], i, n, k, wait;
	long long delay, t;

	if (argc < 4 || argc % 2 || nl > 256) {
		fprintf(stderr, "usage: delay MS LISTEN TARGET [LISTEN TARGET]...\n");
		return 2;
	}
	delay = atoll(argv[1]);
	for (i = 0; i < nl; i++)
		if ((lfd[i] = unix_sock(argv[2 + 2 * i], 1)) < 0) {
			perror(argv[2 + 2 * i]);
			return 1;
		}
	for (i = 0; i < MAXC; i++)
		c[i].cfd = -1;
	for (;;) {
		t = now_ms();
		wait = -1;
		for (n = 0; n < nl; n++) {
			p[n] = (struct pollfd){lfd[n], POLLIN, 0};
			who[n] = -1 - n;
		}
		for (i = 0; i < MAXC; i++) {
			if (c[i].cfd < 0)
				continue;
			if (c[i].len && c[i].due <= t) {
				if (write(c[i].cfd, c[i].buf, c[i].len) != (ssize_t)c[i].len) {
					drop(&c[i]);
					continue;
				}
				c[i].len = 0;
			}
			if (c[i].len && (wait < 0 || c[i].due - t < wait))
				wait = (int)(c[i].due - t);
			p[n] = (struct pollfd){c[i].cfd, POLLIN, 0};
			who[n++] = 2 * i;
			if (!c[i].len) {
				p[n] = (struct pollfd){c[i].afd, POLLIN, 0};
				who[n++] = 2 * i + 1;
			}
		}
		if (poll(p, (nfds_t)n, wait) < 0 && errno != EINTR)
			return 1;
		for (k = 0; k < n; k++) {
			if (!p[k].revents)
				continue;
			if (who[k] < 0) {
				int cfd = accept(lfd[-1 - who[k]], NULL, NULL), afd;
				for (i = 0; i < MAXC && c[i].cfd >= 0; i++)
					;
				afd = unix_sock(argv[3 + 2 * (-1 - who[k])], 0);
				if (cfd < 0 || afd < 0 || i == MAXC) {
					close(cfd);
					close(afd);
					continue;
				}
				c[i].cfd = cfd;
				c[i].afd = afd;
				c[i].len = 0;
				continue;
			}
			i = who[k] / 2;
			if (c[i].cfd < 0)
				continue;
			if (who[k] % 2 == 0 && !pass(c[i].cfd, c[i].afd))
				drop(&c[i]);
			else if (who[k] % 2) {
				ssize_t r = read(c[i].afd, c[i].buf, sizeof c[i].buf);
				if (r <= 0)
					drop(&c[i]);
				else {
					c[i].len = (size_t)r;
					c[i].due = now_ms() + delay;
				}
			}
		}
	}
}
