/* SPDX-License-Identifier: MIT */
/* Replays files, or every file of folders, through the fuzz target. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int nfiles, nfailed;

static void
replay(const char *path)
{
	FILE *f = fopen(path, "rb");
	static uint8_t buf[1 << 22];
	size_t n;

	if (!f) {
		perror(path);
		nfailed++;
		return;
	}
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	nfiles++;
}

int
main(int argc, char **argv)
{
	struct dirent *d;
	struct stat st;
	char path[4096];
	DIR *dp;
	int i;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
			replay(argv[i]);
			continue;
		}
		if (!(dp = opendir(argv[i]))) {
			perror(argv[i]);
			nfailed++;
			continue;
		}
		while ((d = readdir(dp)))
			if (d->d_name[0] != '.') {
				snprintf(path, sizeof path, "%s/%s", argv[i], d->d_name);
				replay(path);
			}
		closedir(dp);
	}
	printf("fuzz replay: %d files, %d unreadable\n", nfiles, nfailed);
	return nfailed != 0;
}
