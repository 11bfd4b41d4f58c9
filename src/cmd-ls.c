/* SPDX-License-Identifier: MIT */
/* ls: the agent sockets of this host, and whether each answers. */
#include "qga.h"

/* Where hosts keep agents' sockets: Proxmox VE's VMID.qga; libvirt's
 * channel folders, with a folder per domain (domain-ID-NAME, or ID-NAME
 * under /run) holding org.qemu.guest_agent.0, or in older releases
 * NAME.org.qemu.guest_agent.0 itself. */
#define LIBVIRT_AGENT "org.qemu.guest_agent.0"
static const char *const host_dirs[] = {
	"/var/run/qemu-server", "/var/lib/libvirt/qemu/channel/target",
	"/run/libvirt/qemu/channel",
};

struct found *found;
int nfound;

/* Adds path when it is a socket, under name (n bytes of it). */
static void
add_found(const char *path, const char *name, size_t n, int libvirt)
{
	struct stat st;
	int i;

	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	/* One socket found twice, through a link, is probed once. */
	for (i = 0; i < nfound; i++)
		if (found[i].dev == st.st_dev && found[i].ino == st.st_ino)
			return;
	found = xrealloc(found, (size_t)(nfound + 1) * sizeof *found);
	found[nfound].dev = st.st_dev;
	found[nfound].ino = st.st_ino;
	found[nfound].addr = xstrdup(path);
	found[nfound].name = xstrdup(name);
	found[nfound].name[n] = 0;
	found[nfound].held = 0;
	found[nfound++].libvirt = libvirt;
}

/* A folder's sockets: any in a folder given with --dir (kind 0), those
 * named as Proxmox (1) or libvirt (2) name agents' in theirs. */
static void
scan_dir(const char *dir, int kind)
{
	static const char suffix[] = "." LIBVIRT_AGENT;
	char path[4096];
	struct dirent *e;
	const char *n, *p;
	size_t len;
	DIR *d;

	if (!(d = opendir(dir))) {
		if (!kind)
			warn("ls: open %s:", dir);
		return;
	}
	while ((e = readdir(d))) {
		n = e->d_name;
		len = strlen(n);
		snprintf(path, sizeof path, "%s/%s", dir, n);
		if (*n == '.')
			continue;
		if (!kind)
			add_found(path, n, len, 0);
		else if (kind == 1 && len > 4 && !strcmp(n + len - 4, ".qga"))
			add_found(path, n, len - 4, 0);
		else if (kind == 2 && len > sizeof suffix && !strcmp(n + len - (sizeof suffix - 1), suffix))
			add_found(path, n, len - (sizeof suffix - 1), 1);
		else if (kind == 2) {
			p = n + (strncmp(n, "domain-", 7) ? 0 : 7);
			if (p[strspn(p, "0123456789")] == '-' && p[0] != '-')
				p += strspn(p, "0123456789") + 1;
			snprintf(path, sizeof path, "%s/%s/" LIBVIRT_AGENT, dir, n);
			add_found(path, p, strlen(p), 1);
		}
	}
	closedir(d);
}

/* Marks the sockets another client holds: the kernel's table of unix
 * sockets shows a connected one under a name that is theirs. Read once,
 * before any probe connects. */
static void
mark_held(void)
{
	char line[4352], *w, *st = NULL;
	FILE *p = fopen("/proc/net/unix", "r");
	struct stat s;
	int i, k;

	while (p && fgets(line, sizeof line, p))
		for (i = 0, w = strtok(line, " \n"); w; w = strtok(NULL, " \n"), i++) {
			st = i == 5 ? w : st;
			if (i != 7 || strcmp(st, "03") || stat(w, &s))
				continue;
			for (k = 0; k < nfound; k++)
				found[k].held |= found[k].dev == s.st_dev && found[k].ino == s.st_ino;
		}
	if (p)
		fclose(p);
}

static int
by_addr(const void *a, const void *b)
{
	return strcmp(((const struct found *)a)->addr, ((const struct found *)b)->addr);
}

/* In the child for f: a line of tab-separated fields, its state, the
 * agent's version and the guest's system. */
static _Noreturn void
probe(const struct found *f)
{
	struct buf req = {0};
	struct reply r;
	struct doc d;
	char *ver, *os = NULL, *m;
	long long ms = timeout_or(1000);
	int s, i;

	if (f->held) {
		printf("held by %s\n", f->libvirt ? "libvirtd" : "another client");
		leave(0);
	}
	if ((s = session_open(&sess, target_addr(), ms))) {
		printf("%s\n", s == EX_TIMEOUT ? "no answer" : failure.cause);
		leave(0);
	}
	req_begin(&req, "guest-info");
	req_end(&req, -1);
	call_for(&req, "guest-info", &r, ms);
	doc_reply(&d, &r, "guest-info", SHAPE_INFO);
	m = dstr(&d, dget(&d, 0, "version"));
	ver = escaped(m);
	free(m);
	free(d.t);
	req_begin(&req, "guest-get-osinfo");
	req_end(&req, -1);
	call_any(&req, "guest-get-osinfo", &r, ms);
	if (r.err < 0) {
		doc_reply(&d, &r, "guest-get-osinfo", SHAPE_OSINFO);
		if ((i = dget(&d, 0, "pretty-name")) < 0)
			i = dget(&d, 0, "name");
		m = dstr(&d, i);
		os = escaped(m);
		free(m);
		free(d.t);
	}
	/* Escaped, the guest's words hold no tab or newline of this line. */
	printf("up\t%s\t%s\n", ver, os && *os ? os : "-");
	free(ver);
	free(os);
	free(req.p);
	leave(0);
}

/* The agent sockets of this host, into found (after any found already):
 * Proxmox's and libvirt's, the targets given, QGA_SOCKET's and
 * /tmp/qga.sock, in the order of their addresses, those another client
 * holds marked. A second call finds them afresh. */
void
find_agents(void)
{
	const char *env = getenv("QGA_SOCKET");
	int i;

	for (i = 0; i < (int)(sizeof host_dirs / sizeof *host_dirs); i++)
		scan_dir(host_dirs[i], i ? 2 : 1);
	for (i = 0; i < many.n; i++)
		add_found(many.addr[i], "", 0, 0);
	if (env)
		add_found(env, "", 0, 0);
	add_found("/tmp/qga.sock", "", 0, 0);
	qsort(found, (size_t)nfound, sizeof *found, by_addr);
	mark_held();
}

/* Forgets what find_agents() found. */
void
forget_agents(void)
{
	while (nfound--) {
		free(found[nfound].addr);
		free(found[nfound].name);
	}
	nfound = 0;
}

int
cmd_ls(int argc, char **argv)
{
	static const char *const key[] = {"address", "name", "agent", "version", "os"};
	struct table t = {NULL, 5, 0, 0};
	struct buf o = {0}, *out;
	const char *v[5];
	int ch, i, k, virsh = -1;

	while ((ch = cmdopt(argc, argv)) != -1)
		scan_dir(optarg, 0);
	if (optind != argc)
		return -1;
	find_agents();
	if (!nfound)
		die(EX_AGENT, "ls: no agent socket in Proxmox's or libvirt's folders, "
		    "QGA_SOCKET or /tmp/qga.sock");
	many.addr = xrealloc(many.addr, (size_t)nfound * sizeof *many.addr);
	for (i = 0; i < nfound; i++)
		many.addr[i] = found[i].addr;
	many.n = nfound;
	many.quiet = 1;
	many.held = out = xrealloc(NULL, (size_t)nfound * sizeof *out);
	memset(out, 0, (size_t)nfound * sizeof *out);
	if (run_targets(0) < 0)
		probe(&found[many.index]);
	if (!many.json)
		table_add(&t, "ADDRESS", "NAME", "AGENT", "VERSION", "OS");
	for (i = 0; i < nfound; i++) {
		buf_add(&out[i], "", 1);
		v[0] = found[i].addr;
		v[1] = *found[i].name ? found[i].name : "-";
		v[2] = strtok(out[i].p, "\t\n");
		v[3] = strtok(NULL, "\t\n");
		v[4] = strtok(NULL, "\t\n");
		if (v[2] && !strcmp(v[2], "held by libvirtd"))
			virsh = i;
		for (k = 0; k < 5; k++) {
			v[k] = v[k] ? v[k] : "-";
			if (!many.json) {
				table_cell(&t, v[k]);
				continue;
			}
			buf_str(&o, k ? ",\"" : "{\"");
			buf_str(&o, key[k]);
			buf_str(&o, "\":");
			if (strcmp(v[k], "-"))
				buf_jstr(&o, v[k], strlen(v[k]));
			else
				buf_str(&o, "null");
		}
		if (many.json)
			buf_str(&o, "}\n");
		free(out[i].p);
	}
	if (o.len)
		fwrite(o.p, 1, o.len, stdout);
	if (!many.json)
		table_print(&t);
	if (virsh >= 0)
		warn("ls: libvirtd holds an agent: ask it through libvirt, as in "
		     "virsh qemu-agent-command %s '{\"execute\":\"guest-ping\"}'",
		     found[virsh].name);
	free(o.p);
	free(out);
	return 0;
}

/* Waits for the agent: the socket may not exist yet, the agent may not be
 * up, a chardev may accept and stay silent. Each try is bounded by a
 * second (or what is left), so a late agent is found soon after it starts. */
const struct option ls_longs[] = {
	{"dir", required_argument, NULL, 'd'},
	{NULL, 0, NULL, 0}
};
