/* SPDX-License-Identifier: MIT */
/* put and put -r: a file or folder copied to the guest, into place
 * only once it is whole. */
#include "qga.h"

/* Sends fd's bytes to the open guest file; returns how many. sha (unless
 * NULL) hashes them. */
unsigned long long
put_data(int fd, long long at, const char *local, const char *remote, struct sha256 *sha)
{
	struct buf req = {0}, data = {0};
	unsigned long long total = 0, size = 0;
	long long t0 = now_ms(), count;
	struct reply r;
	struct stat st;
	struct doc d;
	size_t off;
	ssize_t n;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		size = (unsigned long long)st.st_size;
	else
		at = -1;
	buf_need(&data, CHUNK);
	for (;;) {
		/* A file is read at its own offsets, which the children of
		 * several targets do not share. */
		for (data.len = 0; data.len < CHUNK; data.len += (size_t)n) {
			n = at >= 0 ? pread(fd, data.p + data.len, CHUNK - data.len, at) :
			    wait_input(fd) < 0 ? -1 : read(fd, data.p + data.len, CHUNK - data.len);
			at += at < 0 || n <= 0 ? 0 : n;
			if (n < 0 && errno == EINTR && !interrupted)
				n = 0;
			else if (n < 0)
				die(EX_IO, "read %s:", local);
			else if (n == 0)
				break;
		}
		sha_add(sha, data.p, data.len);
		/* The agent may write less than it was given: send the rest. */
		for (off = 0; off < data.len; off += (size_t)count) {
			if (interrupted)
				die(EX_IO, "%s: interrupted", remote);
			req_begin(&req, "guest-file-write");
			req_int(&req, "handle", undo.handle[0]);
			req_b64(&req, "buf-b64", data.p + off, data.len - off);
			req_end(&req, -1);
			call(&req, "guest-file-write", &r);
			doc_reply(&d, &r, "guest-file-write", "{count:i,eof:b}");
			count = dint(&d, dget(&d, 0, "count"), -1);
			free(d.t);
			if (count <= 0 || (size_t)count > data.len - off)
				die(EX_PROTO, "%s: the agent wrote %lld of %zu bytes",
				    remote, count, data.len - off);
			total += (unsigned long long)count;
			progress(remote, total, size, t0, 0);
		}
		if (data.len < CHUNK)
			break;
	}
	progress(remote, total, size, t0, 1);
	free(req.p);
	free(data.p);
	return total;
}

/* Moves the guest file h's position to off from its start, its end, or
 * where it is ("cur", which also clears the end-of-file mark); returns it. */
long long
guest_seek(long long h, long long off, const char *whence)
{
	struct buf req = {0};
	struct reply r;
	long long pos;
	int v;

	req_begin(&req, "guest-file-seek");
	req_int(&req, "handle", h);
	req_int(&req, "offset", off);
	req_str(&req, "whence", whence);
	req_end(&req, -1);
	call(&req, "guest-file-seek", &r);
	free(req.p);
	v = json_get(r.js, r.tok, r.ret, "position");
	return v >= 0 && !json_int(r.js, &r.tok[v], &pos) ? pos : -1;
}

const struct option get_longs[] = {
	{"recursive", no_argument, NULL, 'r'},
	{"continue", no_argument, NULL, 'c'},
	{"verify", no_argument, NULL, O_VERIFY},
	{NULL, 0, NULL, 0}
};

const struct option put_longs[] = {
	{"append", no_argument, NULL, 'a'},
	{"recursive", no_argument, NULL, 'r'},
	{"continue", no_argument, NULL, 'c'},
	{"verify", no_argument, NULL, O_VERIFY},
	{"inplace", no_argument, NULL, O_INPLACE},
	{"mode", required_argument, NULL, 'm'},
	{NULL, 0, NULL, 0}
};

/* What put was asked, from its options. */
struct put_opts {
	int append, inplace, tree, cont, check;
	long long mode;       /* -m, or -1 */
};

static void
put_options(struct put_opts *o, int argc, char **argv)
{
	char *end;
	int ch;

	o->mode = -1;
	while ((ch = cmdopt(argc, argv)) != -1) {
		if (ch == 'a')
			o->append = 1;
		else if (ch == 'r')
			o->tree = 1;
		else if (ch == 'c')
			o->cont = 1;
		else if (ch == O_VERIFY)
			o->check = 1;
		else if (ch == O_INPLACE)
			o->inplace = 1;
		else if ((o->mode = num(optarg, &end, 8, 07777)) < 0 || *end)
			die(EX_USAGE, "put: bad --mode '%s': expected octal", optarg);
	}
	if (argc - optind != 2)
		die(EX_USAGE, "put: name the local file, or - for stdin, and the "
		    "guest file: qga put LOCAL|- REMOTE");
	if (o->tree && (o->cont || o->check || o->append))
		die(EX_USAGE, "put -r copies a folder whole: not with -a, -c or --verify");
	if (o->cont && (o->append || !strcmp(argv[optind], "-")))
		die(EX_USAGE, "put -c continues a file from where the guest's copy ends: "
		    "not with -a or stdin");
	if (o->check && o->append)
		die(EX_USAGE, "put --verify checks the whole file: not with -a");
}

/* Whether the guest file is new: whether the agent cannot open it. */
static int
put_isnew(const char *remote)
{
	struct buf req = {0};
	struct reply r;
	int isnew;

	req_begin(&req, "guest-file-open");
	req_str(&req, "path", remote);
	req_str(&req, "mode", "r");
	req_end(&req, -1);
	call_any(&req, "guest-file-open", &r, opt.timeout);
	if (!(isnew = r.err >= 0) && json_int(r.js, &r.tok[r.ret], &undo.handle[0]) == 0)
		file_close(0);
	free(req.p);
	return isnew;
}

/* Names the temporary file beside remote in undo.guest_tmp, after the
 * leftovers of an earlier put that was killed are gone. A folder as the
 * target takes the file in it under local's name, as cp does (mv would
 * put the temporary file in it): then the target, in into, is returned. */
static const char *
put_temp(const char *local, const char *remote, char *into, size_t size)
{
	char prefix[4080];
	const char *base;

	for (;;) {
		base = guest_base(remote);
		if ((size_t)snprintf(prefix, sizeof prefix, "%.*s.%s.qga-put-",
		                     (int)(base - remote), remote, base) >= sizeof prefix - 16)
			die(EX_USAGE, "put: guest path too long: %s", remote);
		if (!guest_clear(prefix, remote))
			break;
		if (!strcmp(local, "-") || remote == into)
			die(EX_USAGE, "put: %s is a folder in the guest: name the file to "
			    "write in it", remote);
		if ((size_t)snprintf(into, size, "%s%s%s", remote, *base ? "/" : "",
		                     strrchr(local, '/') ? strrchr(local, '/') + 1 : local) >= size)
			die(EX_USAGE, "put: guest path too long: %s/...", remote);
		remote = into;
	}
	snprintf(undo.guest_tmp, PATH_MAX, "%s%08x", prefix, random_id());
	return remote;
}

/* put writes a temporary file beside the target, named for what it is,
 * checks its size, gives it its mode and renames it over the target with
 * guest-exec, so that the target is the old file or the new one, never
 * part of either. Without guest-exec (or with --inplace, or -a) it writes
 * in place, and says so. */
int
cmd_put(int argc, char **argv)
{
	struct put_opts o = {0};
	const char *local, *remote;
	char mstr[24], into[4096];
	unsigned long long total;
	long long size, off = 0;
	int fd = 0, exec, isnew = 0;
	struct sha256 sha;
	struct stat st;

	put_options(&o, argc, argv);
	local = argv[optind];
	remote = argv[optind + 1];
	if (o.tree) {
		fan_out(0);
		undo.armed = 1;
		put_tree(local, remote);
		return 0;
	}
	if (!strcmp(local, "-") && isatty(0))
		die(EX_USAGE, "put: stdin is a terminal: pipe the data in, or name a file");
	if (strcmp(local, "-") && ((fd = open(local, O_RDONLY | O_CLOEXEC)) < 0 ||
	                           fstat(fd, &st) < 0))
		die(EX_IO, "open %s:", local);
	fan_out(!strcmp(local, "-"));
	snprintf(mstr, sizeof mstr, "%llo", (unsigned long long)(o.mode >= 0 ? o.mode :
	         fd ? st.st_mode & 0777 : 0644));
	undo.armed = 1;
	exec = enabled("guest-exec") && enabled("guest-exec-status");
	o.inplace |= o.cont;
	if (!o.append && !o.inplace && !exec)
		warn("put: guest-exec is disabled in the guest agent: writing %s in "
		     "place, not atomically", remote);
	if (o.append || o.inplace || !exec)
		isnew = put_isnew(remote);
	else
		remote = put_temp(local, remote, into, sizeof into);
	undo.handle[0] = file_open(*undo.guest_tmp ? undo.guest_tmp : remote,
	                           o.append || o.cont ? "a" : "w", 0);
	/* A new file written in place gets its mode before its data, so that
	 * it is never world-writable, even when interrupted. */
	if (isnew && exec)
		guest_chmod(mstr, remote);
	/* -c sends what comes after the guest's copy, which it appends to. */
	if (o.cont && (off = guest_seek(undo.handle[0], 0, "end")) > st.st_size)
		die(EX_USAGE, "put -c: %s is longer in the guest than %s here", remote, local);
	sha_init(&sha);
	if (o.check)
		sha_file(&sha, fd, off, local);
	total = put_data(fd, fd ? off : lseek(0, 0, SEEK_CUR), local, remote, o.check ? &sha : NULL);
	size = guest_seek(undo.handle[0], 0, "end");
	if (o.append ? size < (long long)total : size != off + (long long)total)
		die(EX_PROTO, "put: %s holds %lld bytes after %llu were written", remote,
		    size, total);
	file_close(0);
	/* The temporary file is checked before it takes the target's place. */
	if (o.check)
		verify("put", *undo.guest_tmp ? undo.guest_tmp : remote, &sha);
	if (*undo.guest_tmp) {
		if (guest_replace(undo.guest_tmp, remote, mstr))
			die(EX_AGENT, "put: %s could not be put in place: it is unchanged",
			    remote);
		undo.guest_tmp[0] = 0;
	} else if (isnew && !exec)
		warn("put: %s is new, and the agent made it world-writable (0666): "
		     "guest-exec, which would set its mode, is disabled", remote);
	return 0;
}

/* put -r: tar here writes the folder into a temporary file beside remote,
 * which tar in the guest unpacks into remote and removes. */
void
put_tree(const char *local, const char *remote)
{
	static const char unpack[] = "mkdir -p -- \"$2\" && tar -xpf \"$1\" -C \"$2\"; "
	                             "s=$?; rm -f -- \"$1\"; exit $s";
	const char *mktar[] = {"tar", "-cf", "-", "-C", local, ".", NULL};
	const char *run[] = {"/bin/sh", "-c", unpack, "sh", undo.guest_tmp, remote, NULL};
	struct buf args = {0}, none = {0};
	unsigned long long total;
	size_t n;
	int p[2], st;
	pid_t pid;

	if (guest_run((const char *[]){"/bin/sh", "-c", "command -v tar", NULL}))
		die(EX_AGENT, "put -r: the guest has no tar (or no /bin/sh or guest-exec)");
	n = strlen(remote);
	snprintf(undo.guest_tmp, PATH_MAX, "%.*s.qga-put-%08x.tar",
	         (int)(n - (n > 1 && remote[n - 1] == '/')), remote, random_id());
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = spawn(mktar, -1, p[1])) < 0)
		die(EX_IO, "put -r: start tar here:");
	close(p[1]);
	undo.handle[0] = file_open(undo.guest_tmp, "w", 0);
	total = put_data(p[0], -1, local, remote, NULL);
	close(p[0]);
	if ((st = reap(pid)))
		tree_status("put -r", 0, st, local);
	if (guest_seek(undo.handle[0], 0, "end") != (long long)total)
		die(EX_PROTO, "put -r: the archive in the guest is not as long as written");
	file_close(0);
	for (st = 1; st < 6; st++) {
		buf_add(&args, ",", 1);
		buf_jstr(&args, run[st], strlen(run[st]));
	}
	if ((st = exec_stream(&args, &none, &none, "/bin/sh", 0, -1, 0, 1)) < 0)
		st = guest_run(run);
	tree_status("put -r", st, 0, remote);
	undo.guest_tmp[0] = 0;
	free(args.p);
}
