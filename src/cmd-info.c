/* SPDX-License-Identifier: MIT */
/* The information commands: the shapes of their replies, and info, ip,
 * df, disks, users and the other tables. */
#include "qga.h"

/* Runs a command without arguments; with -j prints its reply and ends. */
void
simple_call(const char *name, struct reply *r, struct doc *d)
{
	struct buf req = {0};

	req_begin(&req, name);
	req_end(&req, -1);
	call(&req, name, r);
	free(req.p);
	if (opt.json) {
		print_result(r);
		leave(0);
	}
	if (d)
		doc_reply(d, r, name, shape_of(name));
}

/* Formats Unix time as ISO 8601 UTC, with nanoseconds unless nsec < 0. */
const char *
iso_time(long long secs, long nsec)
{
	static char s[80];
	time_t t = (time_t)secs;
	struct tm tm;
	int n;

	if (!gmtime_r(&t, &tm))
		return "-";
	n = snprintf(s, sizeof s, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
	             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	snprintf(s + n, sizeof s - (size_t)n, nsec >= 0 ? ".%09ldZ" : "Z", nsec);
	return s;
}

/* Sizes as df -h shows them, rounded up: 17G, 9.5M, 512. */
static const char *
human(long long v, char *s, size_t n)
{
	static const char units[] = "KMGTPE";
	unsigned long long x = (unsigned long long)v, d = 1, q, r;
	int u = -1;

	if (v < 0)
		return "-";
	while (x / d >= 1024 && u < 5) {
		d *= 1024;
		u++;
	}
	q = x / d;
	r = x % d;
	if (u >= 0 && q < 10) {
		/* Tenths, rounded up through 1/1024ths to stay in range. */
		q = q * 10 + ((r + d / 1024 - 1) / (d / 1024) * 10 + 1023) / 1024;
		if (q < 100) {
			snprintf(s, n, "%llu.%llu%c", q / 10, q % 10, units[u]);
			return s;
		}
		q /= 10;
	} else
		q += r > 0;
	if (q == 1024 && u < 5)
		snprintf(s, n, "1.0%c", units[u + 1]);
	else if (u < 0)
		snprintf(s, n, "%llu", q);
	else
		snprintf(s, n, "%llu%c", q, units[u]);
	return s;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
by_number(const void *a, const void *b)
{
	long long x = num(*(char *const *)a, NULL, 10, 1LL << 40);
	long long y = num(*(char *const *)b, NULL, 10, 1LL << 40);

	return (x > y) - (x < y);
}

static int
listed_in(const struct doc *d, int list, const char *name)
{
	int i, k, v;

	each(d, list, i, k)
		if ((v = dget(d, i, "name")) >= 0 && json_eq(d->js, &d->t[v], name))
			return 1;
	return 0;
}

static int
by_since(const void *a, const void *b)
{
	return strverscmp((*(const struct agent_cmd *const *)a)->since,
	                  (*(const struct agent_cmd *const *)b)->since);
}

void
show_info(const struct doc *d)
{
	const struct agent_cmd *lacks[16];
	char **names, *version;
	int list, i, k, n = 0, off = 0;

	list = dget(d, 0, "supported_commands");
	names = xrealloc(NULL, (list >= 0 ? d->t[list].size : 0) * sizeof *names + 1);
	each(d, list, i, k) {
		char *nm = dstr(d, dget(d, i, "name")), *line;
		int en = dtrue(d, dget(d, i, "enabled"));
		int sr = dtrue(d, dget(d, i, "success-response"));
		int de = dtrue(d, dget(d, i, "denied"));
		line = xrealloc(NULL, strlen(nm) + 64);
		snprintf(line, strlen(nm) + 64, "%-34s %s%s", nm, de ? "denied by the proxy" :
		         en ? "enabled" : "disabled", sr ? "" : ", no reply on success");
		off += !en;
		names[n++] = line;
		free(nm);
	}
	qsort(names, (size_t)n, sizeof *names, by_name);
	version = dstr(d, dget(d, 0, "version"));
	text_line("qemu-ga %s: %d commands, %d disabled", version, n, off);
	for (i = 0; i < n; i++) {
		text_line("%s", names[i]);
		free(names[i]);
	}
	/* Those it lacks of the newer commands, by the version that has them. */
	for (i = 0, n = 0; i < (int)nagent_cmds && n < (int)(sizeof lacks / sizeof *lacks); i++)
		if (agent_cmds[i].since && !listed_in(d, list, agent_cmds[i].name))
			lacks[n++] = &agent_cmds[i];
	qsort(lacks, (size_t)n, sizeof *lacks, by_since);
	for (i = 0; i < n; i++)
		printf("%-34s not in this agent (%s)\n", lacks[i]->name, missing_why(lacks[i]->name));
	free(names);
	free(version);
}

void
show_osinfo(const struct doc *d)
{
	int i, k;
	char *key, *s;

	for (k = 0, i = 1; (unsigned)k < d->t[0].size; k++, i = (int)d->t[i + 1].next) {
		key = dstr(d, i);
		s = dtext(d, i + 1);
		text_line("%s: %s", key, s);
		free(key);
		free(s);
	}
}

/* A reply that is a string, as fsfreeze status has it. */
void
show_text(const struct doc *d)
{
	char *s;

	text_line("%s", s = dtext(d, 0));
	free(s);
}

void
show_hostname(const struct doc *d)
{
	char *s;

	text_line("%s", s = dstr(d, dget(d, 0, "host-name")));
	free(s);
}

void
show_time(const struct doc *d)
{
	long long ns;

	ns = dint(d, 0, 0);
	printf("%s\n", iso_time(ns / 1000000000, (long)(ns % 1000000000)));
}

void
show_timezone(const struct doc *d)
{
	long long off;
	unsigned long long a;
	char *zone;

	off = dint(d, dget(d, 0, "offset"), 0);
	/* Unsigned, so that the most negative offset has a size too. */
	a = off < 0 ? 0 - (unsigned long long)off : (unsigned long long)off;
	zone = dstr(d, dget(d, 0, "zone"));
	text_line("%s%s%c%02llu%02llu", zone, *zone ? " " : "", off < 0 ? '-' : '+',
	          a / 3600, a / 60 % 60);
	free(zone);
}

void
show_ifconfig(const struct doc *d)
{
	struct table t = {NULL, 3, 0, 0};
	struct buf addrs = {0};
	int i, k, a, j, ips;
	char *name, *mac, *ip, pfx[16];

	each(d, 0, i, k) {
		name = dstr(d, dget(d, i, "name"));
		mac = dstr(d, dget(d, i, "hardware-address"));
		addrs.len = 0;
		ips = dget(d, i, "ip-addresses");
		each(d, ips, a, j) {
			ip = dstr(d, dget(d, a, "ip-address"));
			snprintf(pfx, sizeof pfx, "/%lld", dint(d, dget(d, a, "prefix"), 0));
			buf_str(&addrs, addrs.len ? " " : "");
			buf_str(&addrs, ip);
			buf_str(&addrs, pfx);
			free(ip);
		}
		buf_add(&addrs, "", 1);
		table_add(&t, name, *mac ? mac : "-", addrs.p);
		free(name);
		free(mac);
	}
	table_print(&t);
	free(addrs.p);
}

/* Whether ip is loopback or link-local, which ip leaves out unless -a.
 * Agents write addresses in the canonical form (a Windows link-local one
 * with %ZONE after it). */
static int
local_ip(const char *ip)
{
	return !strncmp(ip, "127.", 4) || !strncmp(ip, "169.254.", 8) ||
	       !strcmp(ip, "::1") || !strncmp(ip, "fe80:", 5);
}

/* Whether the guest's ip is an address, which may be put on a command
 * line: what inet_pton takes, an IPv6 one with a zone of letters, digits
 * and ._- after a %. */
static int
is_ip(const char *ip)
{
	unsigned char a[16];
	char s[INET6_ADDRSTRLEN + 1];
	size_t n = strcspn(ip, "%");

	if (n >= sizeof s)
		return 0;
	memcpy(s, ip, n);
	s[n] = 0;
	if (!ip[n])
		return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
	return ip[n + 1] && !ip[n + 1 + strspn(ip + n + 1, "abcdefghijklmnopqrstuvwxyz"
	       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")] && inet_pton(AF_INET6, s, a) == 1;
}

/* Counts the addresses of the interfaces named iface (all for NULL) of
 * family fam ("ipv4", "ipv6" or NULL), printing them unless quiet. What
 * is not an address is left out, and said. */
static int
print_ips(const struct doc *d, const char *iface, const char *fam, int all,
          int quiet)
{
	int i, k, a, j, n = 0, v;
	char *ip;

	each(d, 0, i, k) {
		v = dget(d, i, "name");
		if (iface && (v < 0 || !json_eq(d->js, &d->t[v], iface)))
			continue;
		each(d, dget(d, i, "ip-addresses"), a, j) {
			v = dget(d, a, "ip-address-type");
			if (fam && (v < 0 || !json_eq(d->js, &d->t[v], fam)))
				continue;
			ip = dstr(d, dget(d, a, "ip-address"));
			if (*ip && !is_ip(ip) && !quiet)
				warn("ip: '%s' is not an address: left out", ip);
			else if (*ip && (all || !local_ip(ip)) && ++n && !quiet)
				printf("%s\n", ip);
			free(ip);
		}
	}
	return n;
}

const struct option ip_longs[] = {
	{"all", no_argument, NULL, 'a'},
	{"wait", required_argument, NULL, 'w'},
	{NULL, 0, NULL, 0}
};

/* The guest's addresses, one a line; with --wait, until there is one. */
int
cmd_ip(int argc, char **argv)
{
	struct timespec nap = {1, 0};
	struct buf b = {0};
	long long wait = -1, deadline;
	const char *fam = NULL;
	struct reply r;
	struct doc d;
	int ch, n, s, all = 0;

	while ((ch = cmdopt(argc, argv)) != -1) {
		if (ch == '4' || ch == '6')
			fam = ch == '4' ? "ipv4" : "ipv6";
		else if (ch == 'a')
			all = 1;
		else if (parse_seconds(optarg, &wait) < 0)
			die(EX_USAGE, "ip: bad --wait '%s': expected seconds", optarg);
	}
	if (argc - optind > 1)
		return -1;
	fan_out(0);
	deadline = deadline_in(wait);
	if (wait > 0 && (s = wait_agent(wait)))
		quit(s);
	req_begin(&b, "guest-network-get-interfaces");
	req_end(&b, -1);
	for (;;) {
		call(&b, "guest-network-get-interfaces", &r);
		doc_reply(&d, &r, "guest-network-get-interfaces",
		          shape_of("guest-network-get-interfaces"));
		n = print_ips(&d, argv[optind], fam, all, opt.json);
		free(d.t);
		if (n || wait <= 0 || now_ms() >= deadline)
			break;
		nanosleep(&nap, NULL);
	}
	free(b.p);
	if (!n && wait > 0)
		die(EX_TIMEOUT, "ip: no address within %s", seconds(wait));
	if (opt.json)
		print_result(&r);
	return !n;
}

/* 100 * part / whole rounded up, for whole > 0 and part >= 0; sizes
 * near 2^63 are taken in units of 128 bytes, so that nothing overflows. */
static long long
percent(long long part, long long whole)
{
	while (part > LLONG_MAX / 200 || whole > LLONG_MAX / 200) {
		part /= 128;
		whole /= 128;
	}
	return whole ? (part * 100 + whole - 1) / whole : 100;
}

/* The file system at token i of guest-get-fsinfo's reply d, into f: its
 * device is its first disk's, else its name; a size the agent left out
 * is -1. Its strings are f's to free (fs_free). */
void
fs_at(const struct doc *d, int i, struct fs *f)
{
	int disks = dget(d, i, "disk");

	f->mnt = dstr(d, dget(d, i, "mountpoint"));
	f->type = dstr(d, dget(d, i, "type"));
	f->dev = dstr(d, disks >= 0 && d->t[disks].size ?
	              dget(d, disks + 1, "dev") : dget(d, i, "name"));
	f->used = dint(d, dget(d, i, "used-bytes"), -1);
	f->total = dint(d, dget(d, i, "total-bytes"), -1);
	f->priv = dint(d, dget(d, i, "total-bytes-privileged"), -1);
}

void
fs_free(struct fs *f)
{
	free(f->mnt);
	free(f->type);
	free(f->dev);
}

/* What df(1) shows: Size is the whole filesystem (total-bytes-privileged,
 * 9.1 on), Avail what an unprivileged user may still use (total-bytes is
 * that plus Used) and Use% Used of Used plus Avail, rounded up. */
void
show_df(const struct doc *d)
{
	struct table t = {NULL, 7, 0, 0};
	struct fs f;
	int i, k;
	char u[24], s[24], a[24], pct[24];

	table_add(&t, "Mounted on", "Type", "Device", "Size", "Used", "Avail", "Use%");
	each(d, 0, i, k) {
		fs_at(d, i, &f);
		if (f.used >= 0 && f.total > 0)
			snprintf(pct, sizeof pct, "%lld%%", percent(f.used, f.total));
		else
			strcpy(pct, "-");
		table_add(&t, f.mnt, f.type, *f.dev ? f.dev : "-",
		          human(f.priv >= 0 ? f.priv : f.total, s, sizeof s), human(f.used, u, sizeof u),
		          human(f.used >= 0 && f.total >= f.used ? f.total - f.used : -1, a, sizeof a),
		          pct);
		fs_free(&f);
	}
	table_print(&t);
}

/* Disks with the serial that maps a guest disk to a host drive. */
void
show_disks(const struct doc *d)
{
	static const char *const keys[] = {"bus-type", "serial", "alias"};
	struct table t = {NULL, 6, 0, 0};
	struct buf deps = {0};
	int i, k, a, j, dv;
	char *name, *dep, *more[3];

	table_add(&t, "NAME", "TYPE", "BUS", "SERIAL", "ALIAS", "DEPENDS ON");
	each(d, 0, i, k) {
		name = dstr(d, dget(d, i, "name"));
		deps.len = 0;
		dv = dget(d, i, "dependencies");
		each(d, dv, a, j) {
			dep = dstr(d, a);
			buf_str(&deps, deps.len ? " " : "");
			buf_str(&deps, dep);
			free(dep);
		}
		if (!deps.len)
			buf_str(&deps, "-");
		buf_add(&deps, "", 1);
		for (j = 0; j < 3; j++)
			more[j] = dtext(d, dget(d, j < 2 ? dget(d, i, "address") : i, keys[j]));
		table_add(&t, name, dtrue(d, dget(d, i, "partition")) ? "partition" : "disk",
		          more[0], more[1], more[2], deps.p);
		for (j = 0; j < 3; j++)
			free(more[j]);
		free(name);
	}
	table_print(&t);
	free(deps.p);
}

/* A column of a table made of an array of objects: its heading, the
 * member it shows and how: as it came (0), yes or no ('y'),
 * as a time in seconds ('T'). */
struct col {
	const char *head, *key;
	char how;
};

/* Prints the table, its rows sorted by their first cell's number when
 * sort is set (some lists come in no set order). */
static void
show_cols(const struct doc *d, const struct col *c, int ncol, int sort)
{
	struct table t = {NULL, ncol, 0, 0};
	int i, j, k, v;
	char *s, x[32];

	for (j = 0; j < ncol; j++)
		table_cell(&t, c[j].head);
	each(d, 0, i, k) {
		for (j = 0; j < ncol; j++) {
			v = dget(d, i, c[j].key);
			s = NULL;
			if (v < 0 || !c[j].how)
				s = dtext(d, v);
			else if (c[j].how == 'y')
				strcpy(x, dtrue(d, v) ? "yes" : "no");
			else
				copy(x, sizeof x, iso_time(num(d->js + d->t[v].start, NULL,
				                               10, 1LL << 40), -1));
			table_cell(&t, s ? s : x);
			free(s);
		}
	}
	if (sort)
		qsort(t.cell + ncol, (size_t)(t.n / ncol - 1), (size_t)ncol * sizeof *t.cell,
		      by_number);
	table_print(&t);
}

void
show_users(const struct doc *d)
{
	static const struct col c[] = {
		{"USER", "user", 0}, {"DOMAIN", "domain", 0}, {"LOGIN (UTC)", "login-time", 'T'}};

	if (!d->t[0].size)
		puts("nobody is logged in");
	else
		show_cols(d, c, 3, 0);
}

void
show_vcpus(const struct doc *d)
{
	static const struct col c[] = {
		{"CPU", "logical-id", 0}, {"ONLINE", "online", 'y'},
		{"CAN-OFFLINE", "can-offline", 'y'}};

	show_cols(d, c, 3, 1);
}

/* A load average as uptime(1) shows it, rounded to hundredths from the
 * agent's decimal text (which has no exponent: the kernel's load is a
 * multiple of 1/2048). */
void
show_load(const struct doc *d)
{
	static const char *const keys[] = {"load1m", "load5m", "load15m"};
	long long h;
	char *s, *p;
	int i;

	printf("load average:");
	for (i = 0; i < 3; i++) {
		s = dtext(d, dget(d, 0, keys[i]));
		if ((h = num(s, &p, 10, 1LL << 40)) >= 0 && *p == '.' &&
		    p[1] >= '0' && p[1] <= '9') {
			h = h * 100 + (p[1] - '0') * 10;
			if (p[2] >= '0' && p[2] <= '9')
				h += p[2] - '0' + (p[3] >= '5' && p[3] <= '9');
		} else if (h >= 0)
			h *= 100;
		if (h < 0)
			printf(" -");
		else
			printf(" %lld.%02lld", h / 100, h % 100);
		putc(i < 2 ? ',' : '\n', stdout);
		free(s);
	}
}

/* Routes as ip(8) shows them: the kernel's local and unreachable entries
 * and IPv6 multicast are left out. */
void
show_routes(const struct doc *d)
{
	struct table t = {NULL, 4, 0, 0};
	unsigned char mask[4];
	char *dst, *gw, *pfx, *dev, *met, where[80];
	int i, k, bits, b, v6, skip;

	table_add(&t, "DESTINATION", "GATEWAY", "IFACE", "METRIC");
	each(d, 0, i, k) {
		v6 = dint(d, dget(d, i, "version"), 4) == 6;
		dst = dtext(d, dget(d, i, "flags"));
		/* RTF_LOCAL and RTF_REJECT, in a number over 2^63. */
		skip = (strtoull(dst, NULL, 10) & 0x80000200) != 0;
		free(dst);
		dst = dtext(d, dget(d, i, "destination"));
		if (skip || (v6 && !strncmp(dst, "ff", 2))) {
			free(dst);
			continue;
		}
		gw = dtext(d, dget(d, i, v6 ? "nexthop" : "gateway"));
		pfx = dtext(d, dget(d, i, v6 ? "desprefixlen" : "mask"));
		if (!v6 && inet_pton(AF_INET, pfx, mask) == 1)
			for (bits = b = 0; b < 32; b++)
				bits += mask[b / 8] >> (7 - b % 8) & 1;
		else
			bits = (int)num(pfx, NULL, 10, 128);
		if (bits)
			snprintf(where, sizeof where, "%s/%d", dst, bits);
		else
			strcpy(where, "default");
		dev = dtext(d, dget(d, i, "iface"));
		met = dtext(d, dget(d, i, "metric"));
		table_add(&t, where, strcmp(gw, "0.0.0.0") && strcmp(gw, "::") ? gw : "-",
		          dev, met);
		free(dst);
		free(gw);
		free(pfx);
		free(dev);
		free(met);
	}
	table_print(&t);
}
