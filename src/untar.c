/* SPDX-License-Identifier: MIT */
/* get -r's own unpacking of the guest's tar stream, which trusts
 * nothing in it. */
#include "qga.h"

/* get -r reads the guest's tar stream itself rather than giving it to
 * the host's tar, which as root keeps the archive's owners, setuid bits
 * and device nodes, and writes through a symbolic link that the archive,
 * or an earlier copy, put in its way. Here only files, folders and
 * symbolic links are made, in a fresh folder that nobody else can enter,
 * each name walked from that folder one part at a time with O_NOFOLLOW,
 * files made with O_EXCL. Links are made last, after every file, so that
 * nothing is written through one; a hard link is made only to a file
 * this archive made. Owners are the user's; modes keep only the
 * permission bits that umask allows. The folder takes its place once
 * the archive has ended well. */

/* What a tar header block says, pax's and GNU's long names applied. */
struct tar_head {
	char type;
	unsigned mode;
	long long mtime;
	unsigned long long size;
	char name[257];      /* ustar's prefix, '/' and name */
	char link[101];
};

/* The most a pax header or a GNU long name may hold, and the most the
 * folders and links kept for the end may take. */
#define TAR_META_MAX (64 << 10)
#define TAR_DEFER_MAX (64 << 20)

/* A header's number field p[0..n): octal digits between spaces and NULs,
 * or base-256 (GNU's, for sizes past 8 GiB) when its first bit is set.
 * Returns -1 for anything else or a value past 2^63. */
static int
tar_num(const unsigned char *p, size_t n, unsigned long long *v)
{
	size_t i = 0;

	*v = 0;
	if (*p == 0xff) {
		/* Negative, for a time before 1970: two's complement. */
		for (*v = ~0ULL, i = 1; i < n; i++) {
			if (*v >> 55 != 0x1ff)
				return -1;
			*v = *v << 8 | p[i];
		}
		return 0;
	}
	if (*p == 0x80) {
		for (i = 1; i < n; i++) {
			if (*v >> 55)
				return -1;
			*v = *v << 8 | p[i];
		}
		return 0;
	}
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (*v >> 60)
			return -1;
		*v = *v << 3 | (unsigned)(p[i] - '0');
	}
	for (; i < n; i++)
		if (p[i] != ' ' && p[i])
			return -1;
	return 0;
}

/* Parses the 512-byte header block b, a pure function of its bytes:
 * 0, 1 for a block of zeros (the archive's end), -1 for one that is not
 * a header (its checksum is not the sum of its bytes). */
static int
tar_head_parse(const unsigned char *b, struct tar_head *h)
{
	unsigned long long sum, v;
	unsigned long mine = 0;
	long theirs = 0;
	int i, ustar;

	for (i = 0; i < 512 && !b[i]; i++)
		;
	if (i == 512)
		return 1;
	for (i = 0; i < 512; i++) {
		mine += i >= 148 && i < 156 ? ' ' : b[i];
		theirs += i >= 148 && i < 156 ? ' ' : (signed char)b[i];
	}
	if (tar_num(b + 148, 8, &sum) < 0 || (sum != mine && (long long)sum != theirs))
		return -1;
	memset(h, 0, sizeof *h);
	h->type = b[156] ? (char)b[156] : '0';
	if (tar_num(b + 100, 8, &v) < 0 || v >> 63)
		return -1;
	h->mode = (unsigned)(v & 07777);
	if (tar_num(b + 124, 12, &h->size) < 0 || h->size >> 63 || tar_num(b + 136, 12, &v) < 0)
		return -1;
	h->mtime = (long long)v;
	/* POSIX ustar has a prefix; GNU's "ustar  " keeps times there. */
	ustar = !memcmp(b + 257, "ustar", 6);
	if (ustar && b[345])
		snprintf(h->name, sizeof h->name, "%.155s/%.100s", (const char *)b + 345,
		         (const char *)b);
	else
		snprintf(h->name, sizeof h->name, "%.100s", (const char *)b);
	snprintf(h->link, sizeof h->link, "%.100s", (const char *)b + 157);
	return 0;
}

/* What a pax extended header changes of the next entry. */
struct tar_pax {
	struct buf path, link;    /* NUL-terminated when set */
	unsigned long long size;
	long long mtime;
	int has_size, has_mtime, sparse;
};

/* Takes the pax records of s[0..n), each "LEN KEY=VALUE\n" where LEN
 * counts the whole record, a pure function of the bytes: 0, or -1 when
 * they are not records. Keys other than path, linkpath, size and mtime
 * change nothing, but GNU's sparse files are told, since their data
 * would be wrong. */
static int
tar_pax_parse(const char *s, size_t n, struct tar_pax *x)
{
	size_t len, k, off = 0;
	const char *r, *eq, *val;
	char *end;
	long long v;

	while (off < n) {
		r = s + off;
		len = 0;
		for (k = 0; off + k < n && r[k] >= '0' && r[k] <= '9' && k < 9; k++)
			len = len * 10 + (size_t)(r[k] - '0');
		if (!k || off + k >= n || r[k] != ' ' || len <= k + 1 || len > n - off ||
		    r[len - 1] != '\n' || !(eq = memchr(r + k + 1, '=', len - k - 1)))
			return -1;
		val = eq + 1;
		k++;
#define KEY(name) ((size_t)(eq - r) - k == sizeof name - 1 && !memcmp(r + k, name, sizeof name - 1))
		if (KEY("path") || KEY("linkpath")) {
			struct buf *b = KEY("path") ? &x->path : &x->link;
			b->len = 0;
			buf_add(b, val, (size_t)(r + len - 1 - val));
			buf_add(b, "", 1);
		} else if (KEY("size") || KEY("mtime")) {
			if ((*val < '0' || *val > '9') && (!KEY("mtime") || *val != '-' ||
			    val[1] < '0' || val[1] > '9'))
				return -1;
			errno = 0;
			v = strtoll(val, &end, 10);
			if (errno || (end != r + len - 1 && *end != '.'))
				return -1;
			if (KEY("size")) {
				x->size = (unsigned long long)v;
				x->has_size = 1;
			} else {
				x->mtime = v;
				x->has_mtime = 1;
			}
		} else if ((size_t)(eq - r) - k > 11 && !memcmp(r + k, "GNU.sparse.", 11))
			x->sparse = 1;
#undef KEY
		off += len;
	}
	return 0;
}

/* An archive's name made safe to make below the folder: "." and empty
 * parts dropped, in place. -1 for an absolute name or one with "..",
 * which could reach outside it. "" is the folder itself. */
static int
tar_clean(char *name)
{
	char *in = name, *out = name, *part;
	size_t n;

	if (*name == '/')
		return -1;
	for (part = name; *part; part += n + (part[n] == '/'))
		if ((n = strcspn(part, "/")) == 2 && part[0] == '.' && part[1] == '.')
			return -1;
	while (*in) {
		part = in;
		n = strcspn(in, "/");
		in += n + (in[n] == '/');
		if (!n || (n == 1 && *part == '.'))
			continue;
		if (out != name)
			*out++ = '/';
		memmove(out, part, n);
		out += n;
	}
	*out = 0;
	return 0;
}

/* The most parts a name may have: deeper ones are skipped, so that the
 * folders open at once to remove a copy stay few. */
#define TAR_DEPTH_MAX 256

/* Reads n bytes of the archive into p, or skips them (p NULL). 0, or a
 * failure's status; EX_PROTO without a message for an early end, which
 * the guest's tar status may explain. */
static int
tar_read(struct untar *u, void *p, unsigned long long n)
{
	char skip[65536];
	ssize_t r;
	size_t step;

	while (n) {
		step = n < sizeof skip ? (size_t)n : sizeof skip;
		if ((r = read(u->in, p ? p : skip, step)) < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(EX_IO, "get -r: read the archive:");
		if (!r)
			return EX_PROTO;
		u->got += (unsigned long long)r;
		if (u->max && u->got > u->max)
			return fail(EX_IO, "get -r: %s: more than --max-size (%llu bytes)", u->what,
			            u->max);
		if (p)
			p = (char *)p + r;
		n -= (unsigned long long)r;
	}
	return 0;
}

/* Opens the folder below root that holds path, a clean name that is not
 * "", making the folders missing on the way when make is set; *leaf is
 * the name's last part. -1 where a part is not a folder: a symbolic link
 * is never followed. The caller closes what is not root. */
static int
tar_parent(int root, char *path, const char **leaf, int make)
{
	char *s = path, *slash;
	int fd = root, next;

	while ((slash = strchr(s, '/'))) {
		*slash = 0;
		next = openat(fd, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && make && !mkdirat(fd, s, 0777))
			next = openat(fd, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		*slash = '/';
		if (fd != root)
			close(fd);
		if (next < 0)
			return -1;
		fd = next;
		s = slash + 1;
	}
	*leaf = s;
	return fd;
}

/* Makes room for leaf in dir: a file or link of an earlier entry of the
 * same name goes, as tar replaces it; a folder stays. */
static int
tar_unlink(int dir, const char *leaf)
{
	return unlinkat(dir, leaf, 0) < 0 && errno != ENOENT ? -1 : 0;
}

/* Writes the entry's size bytes of data into the new file leaf of dir. */
static int
tar_file(struct untar *u, int dir, const char *leaf, const struct tar_head *h, int *made)
{
	char data[65536];
	unsigned long long left = h->size;
	size_t step;
	int fd, s, tries;

	for (tries = 0; (fd = openat(dir, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	                             O_CLOEXEC, 0600)) < 0 && errno == EEXIST && tries < 1; tries++)
		if (tar_unlink(dir, leaf) < 0)
			break;
	if (fd < 0) {
		tries = errno;
		s = tar_read(u, NULL, h->size);
		errno = tries;
		return s;
	}
	while (left) {
		step = left < sizeof data ? (size_t)left : sizeof data;
		if ((s = tar_read(u, data, step))) {
			close(fd);
			return s;
		}
		if (write_all(fd, data, step) < 0) {
			close(fd);
			return fail(EX_IO, "get -r: write %s:", h->name);
		}
		left -= step;
	}
	fchmod(fd, h->mode & 0777 & ~u->mask);
	futimens(fd, (struct timespec[2]){{0, UTIME_OMIT}, {(time_t)h->mtime, 0}});
	if (close(fd) < 0)
		return fail(EX_IO, "get -r: write %s:", h->name);
	*made = 1;
	return 0;
}

/* Keeps a folder (link NULL) or a symbolic link, whose placeholder is
 * st, for the end. */
static int
tar_keep(struct untar *u, const char *path, const char *link, const struct tar_head *h,
         const struct stat *st)
{
	/* What malloc and the array's doubling take counts too. */
	size_t more = 2 * sizeof *u->late + strlen(path) + 33 + (link ? strlen(link) + 33 : 0);

	if ((u->bytes += more) > TAR_DEFER_MAX)
		return fail(EX_IO, "get -r: %s: more folders and links than qga keeps (%d MiB "
		            "of names)", u->what, TAR_DEFER_MAX >> 20);
	if (u->nlate == u->cap) {
		u->cap = u->cap ? 2 * u->cap : 64;
		u->late = xrealloc(u->late, u->cap * sizeof *u->late);
	}
	u->late[u->nlate++] = (struct tar_late){xstrdup(path), link ? xstrdup(link) : NULL,
	                                        h->mode, h->mtime, *st};
	return 0;
}

/* A hard link: made only to a file this archive made, within the copy. */
static int
tar_hardlink(int root, int dir, const char *leaf, char *target)
{
	const char *tleaf;
	struct stat st;
	int tdir, r = -1;

	if (tar_clean(target) < 0 || !*target || (tdir = tar_parent(root, target, &tleaf, 0)) < 0)
		return -1;
	if (!fstatat(tdir, tleaf, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode) &&
	    !tar_unlink(dir, leaf))
		r = linkat(tdir, tleaf, dir, leaf, 0);
	if (tdir != root)
		close(tdir);
	return r;
}

/* Why an entry of kind type is not made, or NULL when it can be. */
static const char *
tar_refused(const struct tar_head *h, const char *name, int sparse)
{
	const char *s;
	int depth = 1;

	for (s = name; *s; s++)
		depth += *s == '/';
	if (depth > TAR_DEPTH_MAX || strlen(name) >= 4096)
		return "a name too long or too deep";
	if (sparse)
		return "a sparse file, which qga does not unpack";
	switch (h->type) {
	case '0': case '7': case '5': case '2': case '1': return NULL;
	case '3': return "a character device";
	case '4': return "a block device";
	case '6': return "a FIFO";
	default: return "an entry of a kind qga does not unpack";
	}
}

/* The bytes of data that follow the header h: none for a link, a device,
 * a FIFO or a folder, whatever its size says (as POSIX has it). */
static unsigned long long
tar_data(const struct tar_head *h)
{
	return strchr("123456", h->type) ? 0 : h->size;
}

/* Makes the entry h, named name (clean), whose data comes next. */
static int
tar_entry(struct untar *u, struct tar_head *h, char *name, char *link, int sparse)
{
	const char *why = tar_refused(h, name, sparse), *leaf;
	struct stat st = {0};
	int dir, fd, s = 0, made = 0;

	if (!why && !*name && h->type != '5')
		why = "not a folder, as the copy's own name";
	if (why || !*name) {
		if (why)
			warn("get -r: %s: skipped: %s", name, why);
		else if ((s = tar_keep(u, "", NULL, h, &st)))
			return s;
		return tar_read(u, NULL, tar_data(h));
	}
	if ((dir = tar_parent(u->root, name, &leaf, 1)) < 0) {
		warn("get -r: %s: skipped: a part of its name is not a folder", name);
		return tar_read(u, NULL, tar_data(h));
	}
	switch (h->type) {
	case '5':
		if (mkdirat(dir, leaf, 0700) < 0 && (errno != EEXIST ||
		    fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode)))
			break;
		made = !(s = tar_keep(u, name, NULL, h, &st));
		break;
	case '2':
		if (tar_unlink(dir, leaf) < 0 || (fd = openat(dir, leaf, O_WRONLY | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
			break;
		made = !fstat(fd, &st) && !(s = tar_keep(u, name, link, h, &st));
		close(fd);
		break;
	case '1':
		made = !tar_hardlink(u->root, dir, leaf, link);
		break;
	default:
		s = tar_file(u, dir, leaf, h, &made);
	}
	if (dir != u->root)
		close(dir);
	if (!s && !made)
		warn("get -r: %s: skipped: %s", name, h->type == '1' ?
		     "a hard link to no file of this copy" : strerror(errno));
	return s;
}

/* The end: the links, then each folder's mode and time, the deepest
 * first (a folder's time changes as things are made in it). The copy's
 * own folder keeps the mode it was made with. */
static void
tar_finish(struct untar *u)
{
	struct tar_late *l;
	const char *leaf;
	struct stat st;
	int dir, fd;
	size_t i;

	/* The last link of a name is made first: its placeholder is the one
	 * that is there, and an earlier one's finds a link in its place. */
	for (i = u->nlate; i-- > 0;) {
		l = &u->late[i];
		if (!l->link || (dir = tar_parent(u->root, l->path, &leaf, 0)) < 0)
			continue;
		if (!fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode) &&
		    !st.st_size && !(st.st_mode & 07777) && st.st_dev == l->st.st_dev &&
		    st.st_ino == l->st.st_ino && st.st_ctim.tv_sec == l->st.st_ctim.tv_sec &&
		    st.st_ctim.tv_nsec == l->st.st_ctim.tv_nsec && !unlinkat(dir, leaf, 0)) {
			if (symlinkat(l->link, dir, leaf) < 0)
				warn("get -r: %s: skipped:", l->path);
			else
				utimensat(dir, leaf, (struct timespec[2]){{0, UTIME_OMIT},
				          {(time_t)l->mtime, 0}}, AT_SYMLINK_NOFOLLOW);
		}
		if (dir != u->root)
			close(dir);
	}
	for (i = u->nlate; i-- > 0;) {
		l = &u->late[i];
		if (l->link)
			continue;
		fd = u->root;
		if (*l->path && (dir = tar_parent(u->root, l->path, &leaf, 0)) >= 0) {
			fd = openat(dir, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (dir != u->root)
				close(dir);
			if (fd < 0)
				continue;
			fchmod(fd, l->mode & 0777 & ~u->mask);
		} else if (*l->path)
			continue;
		futimens(fd, (struct timespec[2]){{0, UTIME_OMIT}, {(time_t)l->mtime, 0}});
		if (fd != u->root)
			close(fd);
	}
}

/* Removes name in dirfd, a folder with all it holds, following no link. */
void
rm_tree(int dirfd, const char *name)
{
	struct dirent *e;
	DIR *d;
	int fd;

	if (!unlinkat(dirfd, name, 0) || (errno != EISDIR && errno != EPERM))
		return;
	/* A folder the archive gave no permission to is given it back. */
	if ((fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 &&
	    errno == EACCES && !fchmodat(dirfd, name, 0700, 0))
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	fchmod(fd, 0700);
	if (!(d = fdopendir(fd))) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rm_tree(fd, e->d_name);
	closedir(d);
	unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* Unpacks the archive read from u->in into the folder u->root: 0, or a
 * failure's status (with its message recorded, but for an early end). */
int
untar(struct untar *u)
{
	unsigned char b[512];
	struct tar_head h;
	struct tar_pax x = {0};
	struct buf meta = {0};
	unsigned long long end;
	char *name, *link;
	ssize_t n;
	int r, s = 0;

	while (!(s = tar_read(u, b, 512))) {
		if ((r = tar_head_parse(b, &h)) < 0) {
			s = fail(EX_PROTO, "get -r: %s: not a tar archive from the guest", u->what);
			break;
		}
		if (r)
			break;
		if (strchr("xLKg", h.type)) {
			/* What describes the next entry: its size is bounded. */
			if (h.size > TAR_META_MAX) {
				s = fail(EX_PROTO, "get -r: %s: an archive header of %llu bytes",
				         u->what, h.size);
				break;
			}
			meta.len = 0;
			buf_need(&meta, (size_t)h.size + 1);
			if ((s = tar_read(u, meta.p, h.size)) ||
			    (s = tar_read(u, NULL, -h.size & 511)))
				break;
			meta.len = (size_t)h.size;
			meta.p[meta.len] = 0;
			if (h.type == 'x' && tar_pax_parse(meta.p, meta.len, &x) < 0) {
				s = fail(EX_PROTO, "get -r: %s: a pax header that is not one", u->what);
				break;
			}
			if (h.type == 'L' || h.type == 'K') {
				struct buf *to = h.type == 'L' ? &x.path : &x.link;
				to->len = 0;
				buf_add(to, meta.p, strlen(meta.p) + 1);
			}
			continue;
		}
		if (x.has_size)
			h.size = x.size;
		if (x.has_mtime)
			h.mtime = x.mtime;
		name = x.path.len ? x.path.p : h.name;
		link = x.link.len ? x.link.p : h.link;
		if (tar_clean(name) < 0) {
			warn("get -r: %s: skipped: a name outside the folder", name);
			s = tar_read(u, NULL, tar_data(&h));
		} else
			s = tar_entry(u, &h, name, link, x.sparse);
		if (!s)
			s = tar_read(u, NULL, -tar_data(&h) & 511);
		x.path.len = x.link.len = 0;
		x.has_size = x.has_mtime = x.sparse = 0;
		if (s)
			break;
	}
	/* tar pads its output to whole records, 10 KiB by default: what
	 * follows the end is read, up to 1 MiB. */
	end = u->got + (1 << 20);
	while (!s && (n = read(u->in, b, sizeof b)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (u->got += (unsigned long long)n) > end ||
		    (u->max && u->got > u->max))
			s = fail(EX_PROTO, "get -r: %s: more data after the archive's end", u->what);
	}
	if (!s)
		tar_finish(u);
	free(meta.p);
	free(x.path.p);
	free(x.link.p);
	return s;
}
