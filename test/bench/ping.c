/* SPDX-License-Identifier: MIT */
/* ping: the least a correct client does for a ping, as a yardstick for
 * make bench: connect, 0xFF and guest-sync-delimited, skip to the sync's
 * reply, send guest-ping, read its reply. No options, no messages, no
 * parsing beyond finding the id; built static with musl like qga.
 * usage: ping SOCKET */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char buf[65536];
static size_t len;

/* Reads until s appears in what was read; 0 when it does. */
static int
read_until(int fd, const char *s)
{
	ssize_t n;

	while (!memmem(buf, len, s, strlen(s))) {
		if (len == sizeof buf || (n = read(fd, buf + len, sizeof buf - len)) <= 0)
			return -1;
		len += (size_t)n;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const char sync[] = "\xff{\"execute\":\"guest-sync-delimited\","
	                           "\"arguments\":{\"id\":73217}}";
	static const char ping[] = "{\"execute\":\"guest-ping\"}";
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (argc != 2 || strlen(argv[1]) >= sizeof sun.sun_path)
		return 2;
	strcpy(sun.sun_path, argv[1]);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
	    write(fd, sync, sizeof sync - 1) < 0 || read_until(fd, "73217}\n") < 0)
		return 3;
	len = 0;
	if (write(fd, ping, sizeof ping - 1) < 0 || read_until(fd, "\n") < 0)
		return 3;
	return 0;
}
