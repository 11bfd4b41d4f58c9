/* SPDX-License-Identifier: MIT */
/* Guest files: SHA-256, the undo of file commands (cleanup), guest file
 * handles, progress, cat, get and get -r. */
#include "qga.h"

static const uint32_t sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2};

#define ROR(x, n) ((x) >> (n) | (x) << (32 - (n)))

static void
sha_block(struct sha256 *c, const unsigned char *p)
{
	uint32_t w[64], v[8], t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (; i < 64; i++)
		w[i] = w[i - 16] + w[i - 7] +
		       (ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ w[i - 15] >> 3) +
		       (ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ w[i - 2] >> 10);
	memcpy(v, c->h, sizeof v);
	for (i = 0; i < 64; i++) {
		t1 = v[7] + (ROR(v[4], 6) ^ ROR(v[4], 11) ^ ROR(v[4], 25)) +
		     ((v[4] & v[5]) ^ (~v[4] & v[6])) + sha_k[i] + w[i];
		t2 = (ROR(v[0], 2) ^ ROR(v[0], 13) ^ ROR(v[0], 22)) +
		     ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
		memmove(v + 1, v, 7 * sizeof *v);
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (i = 0; i < 8; i++)
		c->h[i] += v[i];
}

void
sha_init(struct sha256 *c)
{
	static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

	memcpy(c->h, h0, sizeof h0);
	c->len = 0;
}

void
sha_add(struct sha256 *c, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t k;

	for (; c && n; n -= k, p += k) {
		k = 64 - c->len % 64 < n ? 64 - c->len % 64 : n;
		memcpy(c->blk + c->len % 64, p, k);
		c->len += k;
		if (c->len % 64 == 0)
			sha_block(c, c->blk);
	}
}

/* Ends the hash and writes it in hex to hex[65]. */
static void
sha_hex(struct sha256 *c, char *hex)
{
	uint64_t bits = c->len * 8;
	unsigned char pad[72] = {0x80};
	int i;

	for (i = 0; i < 8; i++)
		pad[71 - i] = (unsigned char)(bits >> 8 * i);
	sha_add(c, pad, 1 + (119 - c->len % 64) % 64);
	sha_add(c, pad + 64, 8);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned)(c->h[i / 4] >> (24 - 8 * (i % 4)) & 0xff));
}

/* Opens a guest file and returns its handle; when soft, -1 where it
 * cannot be opened. */
long long
file_open(const char *path, const char *mode, int soft)
{
	struct buf req = {0};
	struct reply r;
	long long h;

	req_begin(&req, "guest-file-open");
	req_str(&req, "path", path);
	req_str(&req, "mode", mode);
	req_end(&req, -1);
	call_any(&req, "guest-file-open", &r, opt.timeout);
	free(req.p);
	if (r.err >= 0 && soft)
		return -1;
	if (r.err >= 0)
		quit(agent_error(&r, "guest-file-open"));
	if (json_int(r.js, &r.tok[r.ret], &h) < 0)
		die(EX_PROTO, "guest-file-open: no handle in the reply");
	return h;
}

/* Closes the guest files left open. After an interruption or a timeout
 * the channel is resynchronised first, which drops the reply in flight.
 * Failures here are not reported over the one that led here. */
void
file_close(int quiet)
{
	struct buf req = {0};
	struct reply r;
	int i;

	for (i = 0; i < 2 && sess.up; i++) {
		if (undo.handle[i] < 0)
			continue;
		interrupted = 0;
		req_begin(&req, "guest-file-close");
		req_int(&req, "handle", undo.handle[i]);
		req_end(&req, -1);
		undo.handle[i] = -1;
		if (!quiet)
			call(&req, "guest-file-close", &r);
		else if (transact(&sess, req.p, req.len, &r, "guest-file-close", opt.timeout))
			break;
	}
	free(req.p);
}

/* Shows bytes and rate on a terminal, for transfers worth watching, with
 * the share done and the time left when the size is known (size > 0). */
void
progress(const char *what, unsigned long long bytes, unsigned long long size,
         long long t0, int last)
{
	static int tty = -1;
	long long ms = now_ms() - t0;
	unsigned long long rate;

	if (tty < 0)
		tty = isatty(2);
	if (!tty || (bytes < (16u << 20) && !last) || (last && ms < 1000))
		return;
	rate = ms > 0 ? (bytes >> 10) * 1000 / 1024 / (unsigned long long)ms : 0;
	fprintf(stderr, "\rqga: %s: %llu MiB", what, bytes >> 20);
	if (size >= bytes && size)
		fprintf(stderr, " of %llu (%llu%%), %llu s left", size >> 20, bytes * 100 / size,
		        ms > 0 && bytes ? (size - bytes) * (unsigned long long)ms / bytes / 1000 : 0);
	fprintf(stderr, ", %llu MiB/s   %s", rate, last ? "\n" : "");
	progress_shown = !last;
}

/* Copies the guest file at path, from off on, to fd; sha (unless NULL)
 * hashes what was copied. */
static void
file_read_to(const char *path, int fd, const char *fdname, long long off, struct sha256 *sha)
{
	struct buf req = {0}, data = {0};
	struct reply r;
	unsigned long long total = 0;
	long long t0 = now_ms(), size = 0;
	int eof, v, s;

	undo.handle[0] = file_open(path, "r", 0);
	/* A terminal's progress line says how much is left. */
	if ((isatty(2) || off) && (size = guest_seek(undo.handle[0], 0, "end")) > 0)
		guest_seek(undo.handle[0], off, "set");
	if (size < off)
		die(EX_USAGE, "get -c: %s is longer here than %s in the guest", fdname, path);
	req_begin(&req, "guest-file-read");
	req_int(&req, "handle", undo.handle[0]);
	req_int(&req, "count", CHUNK);
	req_end(&req, -1);
	/* The next read is asked for before this one's data is decoded and
	 * written, so that the agent reads while qga writes. */
	if ((s = conn_write(&sess, req.p, req.len, conn_deadline(&sess, opt.timeout))))
		quit(s);
	do {
		if ((s = read_reply(&sess, &r, conn_deadline(&sess, opt.timeout),
		                    "reply to guest-file-read")))
			quit(s);
		if (r.err >= 0)
			quit(agent_error(&r, "guest-file-read"));
		eof = (v = json_get(r.js, r.tok, r.ret, "eof")) >= 0 &&
		      r.tok[v].type == JSON_TRUE;
		if ((v = json_get(r.js, r.tok, r.ret, "buf-b64")) < 0 ||
		    r.tok[v].type != JSON_STRING)
			die(EX_PROTO, "guest-file-read: no base64 data in the reply");
		if (!eof && r.tok[v].end > r.tok[v].start && !interrupted &&
		    (s = conn_write(&sess, req.p, req.len,
		                    conn_deadline(&sess, opt.timeout))))
			quit(s);
		if (b64_decode(&data, r.js, &r.tok[v]) < 0)
			die(EX_PROTO, "guest-file-read: no base64 data in the reply");
		if (interrupted)
			die(EX_IO, "%s: interrupted", path);
		if (opt.maxsize && data.len > opt.maxsize - total)
			die(EX_IO, "%s: more than --max-size (%llu bytes)", path, opt.maxsize);
		if (write_all(fd, data.p, data.len) < 0)
			die(EX_IO, "write %s:", fdname);
		sha_add(sha, data.p, data.len);
		total += data.len;
		progress(path, total, size > 0 ? (unsigned long long)size : 0, t0, 0);
	} while (!eof && data.len);
	progress(path, total, size > 0 ? (unsigned long long)size : 0, t0, 1);
	file_close(0);
	free(req.p);
	free(data.p);
}

/* Hashes the first n bytes of the local file fd into sha. */
void
sha_file(struct sha256 *sha, int fd, long long n, const char *name)
{
	char b[65536];
	ssize_t k;
	long long at;

	for (at = 0; at < n; at += k) {
		if ((k = pread(fd, b, n - at < (long long)sizeof b ? (size_t)(n - at) : sizeof b,
		               at)) <= 0)
			die(EX_IO, "read %s:", name);
		sha_add(sha, b, (size_t)k);
	}
}

/* --verify: the guest's SHA-256 of path (sha256sum, or PowerShell's
 * Get-FileHash on Windows) against what qga copied. */
void
verify(const char *what, const char *path, struct sha256 *sha)
{
	struct buf out = {0};
	char mine[65];
	int st;
	/* A minute, and the time to read the file at 20 MB/s. */
	long long ms = timeout_or(60000 + (long long)(sha->len / 20000));

	sha_hex(sha, mine);
	st = guest_sha256(path, &out, ms);
	if (interrupted)
		die(EX_IO, "%s --verify: interrupted", what);
	if (st == -2)
		die(EX_TIMEOUT, "%s --verify: %s in the guest did not end within %s", what,
		    guest_sha_tool(), seconds(ms));
	if (st || out.len < 64)
		die(EX_AGENT, "%s --verify: no %s in the guest for %s", what,
		    guest_sha_tool(), path);
	if (strncasecmp(out.p, mine, 64))
		die(EX_IO, "%s --verify: %s differs: SHA-256 %s here, %.64s in the guest", what,
		    path, mine, out.p);
	free(out.p);
}

int
cmd_cat(int argc, char **argv)
{
	int i;

	if (argc < 2)
		return -1;
	fan_out(0);
	undo.armed = 1;
	for (i = 1; i < argc; i++) {
		fflush(stdout);
		file_read_to(argv[i], 1, "stdout", 0, NULL);
	}
	return 0;
}

/* Creates local's temporary sibling, named in undo.local_tmp, with the mode a
 * new file gets (mkstemp makes it 0600). */
static int
create_temp(const char *local)
{
	mode_t mask = umask(0);
	int fd;

	umask(mask);
	if ((size_t)snprintf(undo.local_tmp, PATH_MAX, "%s.qga-XXXXXX", local) >=
	    PATH_MAX)
		die(EX_USAGE, "get: local name too long: %s", local);
	if ((fd = mkostemp(undo.local_tmp, O_CLOEXEC)) >= 0 && fchmod(fd, 0666 & ~mask) < 0) {
		close(fd);
		unlink(undo.local_tmp);
		return -1;
	}
	return fd;
}

/* Ends get -r or put -r by tar's statuses: the guest's, then this side's. */
void
tree_status(const char *what, int guest, int here, const char *name)
{
	if (guest)
		die(EX_AGENT, "%s: tar in the guest failed on %s (%s %d)", what, name,
		    guest == 127 ? "not found:" : "status", guest);
	if (here)
		die(EX_IO, "%s: tar here failed on %s (%s %d)", what, name,
		    here == 127 ? "not found:" : "status", here);
}

/* get -r's copy: LOCAL when it is not there, else the guest folder's
 * name in LOCAL, as cp -r has it; never one that is there already, so
 * that no copy is ever mixed with another. */
static const char *
tree_target(const char *remote, const char *local, char *path, size_t size)
{
	char base[1024];
	struct stat st;
	size_t n = strlen(remote);

	if (!stat(local, &st) && S_ISDIR(st.st_mode)) {
		while (n > 1 && (remote[n - 1] == '/' || remote[n - 1] == '\\'))
			n--;
		snprintf(base, sizeof base, "%.*s", (int)n, remote);
		if (!*guest_base(base) || !strcmp(guest_base(base), ".") ||
		    !strcmp(guest_base(base), ".."))
			die(EX_USAGE, "get -r: name the local folder for '%s'", remote);
		if ((size_t)snprintf(path, size, "%s/%s", local, guest_base(base)) >= size)
			die(EX_USAGE, "get -r: local name too long: %s", local);
		local = path;
	}
	if (!lstat(local, &st))
		die(EX_USAGE, "get -r: %s is there already: a copy never goes into "
		    "another (name a new folder)", local);
	return local;
}

/* Renames from to to, which must not exist: a copy never replaces what
 * came meanwhile. Without renameat2 (Linux before 3.15, or a filesystem
 * without RENAME_NOREPLACE) a look comes first. */
static int
rename_new(const char *from, const char *to)
{
	struct stat st;

	if (!syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */))
		return 0;
	if (errno != ENOSYS && errno != EINVAL)
		return -1;
	if (!lstat(to, &st)) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

/* get -r's child stopped reading before the archive's end: it said why. */
_Noreturn void
untar_ended(void)
{
	int st = reap(undo.untar);

	undo.untar = -1;
	leave(st ? st : EX_PROTO);
}

/* get -r: tar in the guest writes the folder, streamed as exec streams
 * it, to a child of qga's that unpacks it (untar) into a fresh folder
 * beside the copy's place, which it takes when the archive is whole. */
static void
get_tree(const char *remote, const char *local)
{
	struct untar u = {0};
	struct buf args = {0}, none = {0};
	char path[4096], keep[PATH_MAX];
	int p[2], st, here;

	local = tree_target(remote, local, path, sizeof path);
	if ((size_t)snprintf(undo.local_tmp, PATH_MAX, "%s.qga-XXXXXX", local) >=
	    PATH_MAX || !mkdtemp(undo.local_tmp)) {
		undo.local_tmp[0] = 0;
		die(EX_IO, "get -r: make a folder beside %s:", local);
	}
	u = (struct untar){.what = remote, .max = opt.maxsize, .mask = umask(0)};
	umask(u.mask);
	if ((u.root = open(undo.local_tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    pipe2(p, O_CLOEXEC) < 0)
		die(EX_IO, "get -r: %s:", undo.local_tmp);
	buf_str(&args, ",\"-c\",\"cd -- \\\"$1\\\" && exec tar -cf - .\",\"sh\",");
	buf_jstr(&args, remote, strlen(remote));
	fflush(stdout);
	/* The child only unpacks: a signal ends it as it is, the session is
	 * not its own, and it undoes nothing (qga does). */
	hold_signals(1);
	if ((undo.untar = fork()) < 0)
		die(EX_IO, "get -r: fork:");
	if (!undo.untar) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		hold_signals(0);
		undo.armed = 0;
		close(sess.fd);
		sess.owed = sess.partial = 0;
		close(p[1]);
		u.in = p[0];
		failure.status = 0;
		if ((st = untar(&u)) && !failure.status)
			fail(st, "get -r: %s: the archive from the guest ended early", remote);
		if (st)
			say();
		_exit(st);
	}
	hold_signals(0);
	close(p[0]);
	st = exec_stream(&args, &none, &none, "/bin/sh", 0, -1, 1, p[1]);
	/* A guest's tar that failed says why: the child's words would not. */
	if (st)
		kill(undo.untar, SIGKILL);
	close(p[1]);
	here = reap(undo.untar);
	undo.untar = -1;
	if (st < 0)
		die(EX_AGENT, "get -r: the guest cannot stream tar's output");
	if (st)
		die(EX_AGENT, "get -r: tar in the guest failed on %s (%s %d)", remote,
		    st == 127 ? "not found:" : "status", st);
	if (here > 128)
		die(EX_IO, "get -r: the unpacking was ended by signal %d", here - 128);
	if (here)
		leave(here);
	if (fchmod(u.root, 0777 & ~u.mask) < 0)
		die(EX_IO, "get -r: %s:", undo.local_tmp);
	if (rename_new(undo.local_tmp, local) < 0) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			die(EX_IO, "get -r: rename to %s:", local);
		/* The copy is whole: it stays, under its temporary name. */
		copy(keep, sizeof keep, undo.local_tmp);
		undo.local_tmp[0] = 0;
		die(EX_IO, "get -r: %s came there meanwhile: the copy is in %s", local, keep);
	}
	undo.local_tmp[0] = 0;
	close(u.root);
	free(args.p);
}

/* With several targets, get puts each one's copy in a folder of its own
 * in dir, named after the target: the name of that folder, once the
 * child of the target runs. */
static const char *
target_dir(const char *dir)
{
	static char path[2048];
	const char *s;
	size_t n;

	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		die(EX_IO, "mkdir %s:", dir);
	n = (size_t)snprintf(path, sizeof path - 256, "%s/", dir);
	for (s = many.tag + strspn(many.tag, "/"); *s && n < sizeof path - 1; s++)
		path[n++] = *s == '/' ? '_' : *s;
	path[n] = 0;
	if (mkdir(path, 0777) < 0 && errno != EEXIST)
		die(EX_IO, "mkdir %s:", path);
	return path;
}

int
cmd_get(int argc, char **argv)
{
	const char *remote, *base, *local;
	char path[4096];
	struct stat st;
	struct sha256 sha;
	long long off = 0;
	int ch, fd, tree = 0, cont = 0, check = 0;

	while ((ch = cmdopt(argc, argv)) != -1)
		*(ch == 'r' ? &tree : ch == 'c' ? &cont : &check) = 1;
	argc -= optind - 1;
	argv += optind - 1;
	if (argc < 2 || argc > 3)
		return -1;
	if (tree && (cont || check))
		die(EX_USAGE, "get -r copies a folder whole: not with -c or --verify");
	remote = argv[1];
	/* The last part of a path with a backslash depends on the guest's OS,
	 * which each target is asked. */
	if (strchr(remote, '\\'))
		fan_out(0);
	base = guest_base(remote);
	local = argc == 3 ? argv[2] : base;
	if (!*local)
		die(EX_USAGE, "get: name the local file for '%s'", remote);
	fan_out(0);
	undo.armed = 1;
	sha_init(&sha);
	if (many.n > 1 && strcmp(local, "-"))
		local = target_dir(argc == 3 ? argv[2] : ".");
	if (tree) {
		get_tree(remote, local);
		return 0;
	}
	if (!strcmp(local, "-")) {
		if (cont)
			die(EX_USAGE, "get -c: name the local file to continue");
		file_read_to(remote, 1, "stdout", 0, check ? &sha : NULL);
		if (check)
			verify("get", remote, &sha);
		return 0;
	}
	if (stat(local, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (!*base)
			die(EX_USAGE, "get: name the local file for '%s'", remote);
		snprintf(path, sizeof path, "%s/%s", local, base);
		local = path;
	}
	/* -c continues local in place, from where it ends. */
	if (cont && ((fd = open(local, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666)) < 0 ||
	             (off = lseek(fd, 0, SEEK_END)) < 0))
		die(EX_IO, "open %s:", local);
	if (!cont && (fd = create_temp(local)) < 0) {
		undo.local_tmp[0] = 0;
		die(EX_IO, "create %s:", local);
	}
	if (check)
		sha_file(&sha, fd, off, local);
	file_read_to(remote, fd, local, off, check ? &sha : NULL);
	if (check)
		verify("get", remote, &sha);
	if (close(fd) < 0 || (!cont && rename(undo.local_tmp, local) < 0))
		die(EX_IO, "write %s:", local);
	undo.local_tmp[0] = 0;
	return 0;
}
