/* SPDX-License-Identifier: MIT */
/* metrics: what each guest reports of itself, from every agent at once,
 * in Prometheus' text format: printed once, or served over HTTP at each
 * scrape (--listen, on serve's loop). The families are named as
 * node_exporter names the same things, under the prefix qga_. */
#include "qga.h"

enum {
	F_UP, F_DURATION, F_ERRORS, F_AGENT, F_OS, F_UNAME,
	F_FS_SIZE, F_FS_FREE, F_FS_AVAIL, F_FS_USED, F_LOAD1, F_LOAD5, F_LOAD15, F_CPU,
	F_DISK_READS, F_DISK_READ_BYTES, F_DISK_WRITES, F_DISK_WRITTEN_BYTES, F_DISK_IO_TIME,
	F_NET_RX_BYTES, F_NET_RX_PACKETS, F_NET_RX_ERRS, F_NET_RX_DROP,
	F_NET_TX_BYTES, F_NET_TX_PACKETS, F_NET_TX_ERRS, F_NET_TX_DROP,
	F_USERS, F_CPUS_ONLINE, NFAM
};

static const struct family {
	const char *name, *type, *help;
} fams[NFAM] = {
	{"up", "gauge", "1 when the guest agent answered, else 0."},
	{"scrape_duration_seconds", "gauge", "How long the collection from the agent took."},
	{"scrape_errors", "gauge", "1 for each command of the collection that the agent "
	 "lacks, disables or failed, else 0."},
	{"agent_info", "gauge", "The guest agent's version; always 1."},
	{"os_info", "gauge", "The guest's operating system (guest-get-osinfo); always 1."},
	{"uname_info", "gauge", "The guest's host name, kernel and machine; always 1."},
	{"filesystem_size_bytes", "gauge", "A guest file system's size in bytes."},
	{"filesystem_free_bytes", "gauge", "A guest file system's free space in bytes, "
	 "the space kept for root included."},
	{"filesystem_avail_bytes", "gauge", "A guest file system's space available to "
	 "non-root users in bytes."},
	{"filesystem_used_bytes", "gauge", "A guest file system's used space in bytes."},
	{"load1", "gauge", "The guest's load average over 1 minute."},
	{"load5", "gauge", "The guest's load average over 5 minutes."},
	{"load15", "gauge", "The guest's load average over 15 minutes."},
	{"cpu_seconds_total", "counter", "Seconds the guest's CPUs spent in each mode."},
	{"disk_reads_completed_total", "counter", "Reads completed by a guest disk."},
	{"disk_read_bytes_total", "counter", "Bytes read by a guest disk."},
	{"disk_writes_completed_total", "counter", "Writes completed by a guest disk."},
	{"disk_written_bytes_total", "counter", "Bytes written by a guest disk."},
	{"disk_io_time_seconds_total", "counter", "Seconds a guest disk spent doing I/O."},
	{"network_receive_bytes_total", "counter", "Bytes a guest interface received."},
	{"network_receive_packets_total", "counter", "Packets a guest interface received."},
	{"network_receive_errs_total", "counter", "Receive errors of a guest interface."},
	{"network_receive_drop_total", "counter", "Received packets a guest interface dropped."},
	{"network_transmit_bytes_total", "counter", "Bytes a guest interface sent."},
	{"network_transmit_packets_total", "counter", "Packets a guest interface sent."},
	{"network_transmit_errs_total", "counter", "Transmit errors of a guest interface."},
	{"network_transmit_drop_total", "counter", "Packets a guest interface dropped sending."},
	{"users", "gauge", "Users logged in to the guest."},
	{"cpus_online", "gauge", "The guest's online vCPUs."},
};

/* A guest's say is bounded: in each family at most this many series of a
 * target, from as many entries of a reply at most (and each label value
 * at most PROM_LABEL_MAX bytes). */
#define SERIES_MAX 1024

/* And its replies (--max-reply when smaller): none of them comes near. */
#define REPLY_METRICS (4 << 20)

/* What is known of a target in a collection: its series, a buffer per
 * family, and what the later samples need of the earlier replies. */
struct mt {
	struct buf fam[NFAM];
	int nseries[NFAM];
	char *cmds;            /* guest-info's commands, as command_list() has them */
	char *host;            /* guest-get-host-name's */
	char *uname[3];        /* machine, release and version, from guest-get-osinfo */
	int step;              /* the next of asks to send */
	int info;              /* guest-info, the first, is answered */
	unsigned ok;           /* the asks answered and taken, a bit each */
};

static void take_info(struct mt *, const struct doc *);
static void take_host(struct mt *, const struct doc *);
static void take_os(struct mt *, const struct doc *);
static void take_fs(struct mt *, const struct doc *);
static void take_load(struct mt *, const struct doc *);
static void take_cpu(struct mt *, const struct doc *);
static void take_disk(struct mt *, const struct doc *);
static void take_net(struct mt *, const struct doc *);
static void take_users(struct mt *, const struct doc *);
static void take_vcpus(struct mt *, const struct doc *);

/* What is asked of each agent, in turn. */
static const struct ask {
	const char *cmd;
	void (*take)(struct mt *, const struct doc *);
} asks[] = {
	{"guest-info", take_info},
	{"guest-get-host-name", take_host},
	{"guest-get-osinfo", take_os},
	{"guest-get-fsinfo", take_fs},
	{"guest-get-load", take_load},
	{"guest-get-cpustats", take_cpu},
	{"guest-get-diskstats", take_disk},
	{"guest-network-get-interfaces", take_net},
	{"guest-get-users", take_users},
	{"guest-get-vcpus", take_vcpus},
};
#define NASKS ((int)(sizeof asks / sizeof *asks))

/* The collection: its engine, its targets, what is known of each. */
static struct collection {
	struct engine e;
	struct mt *mt;
	const char **addr;
	int n;
	int listen;            /* --listen: the collection serves scrapes */
	int held;              /* the targets found held by another client */
	int room;              /* how many are asked at once */
	struct buf text;       /* the last collection's text */
	const char *excl[3];   /* file system types, mount points, disks left out */
} col;

static const char *const excl_default[3] = {
	("autofs,binfmt_misc,bpf,cgroup,cgroup2,configfs,debugfs,devpts,devtmpfs,fusectl,"
	 "hugetlbfs,iso9660,mqueue,nsfs,overlay,proc,procfs,pstore,rpc_pipefs,securityfs,"
	 "selinuxfs,squashfs,erofs,sysfs,tracefs"),
	("/dev,/dev/*,/proc,/proc/*,/sys,/sys/*,/run/credentials/*,/var/lib/docker/*,"
	 "/var/lib/containers/storage/*"),
	"loop*,ram*,zram*,fd*,sr*",
};

/* Whether s is one of the comma-separated names of list, or starts with
 * one that ends in '*'. */
static int
excluded(const char *list, const char *s)
{
	size_t n;

	for (; *list; list += n + (list[n] == ',')) {
		n = strcspn(list, ",");
		if (n && list[n - 1] == '*' ? !strncmp(list, s, n - 1) :
		    strlen(s) == n && !strncmp(list, s, n))
			return 1;
	}
	return 0;
}

/* Adds a sample of family f to the target's series: labels (",k=\"v\""...)
 * after its target's, and its value, v. A series the target already gave
 * is not given twice, nor more than SERIES_MAX. */
static void
sample(struct mt *m, int f, const char *labels, const char *v)
{
	struct buf line = {0};
	struct buf *b = &m->fam[f];
	const char *nl;
	size_t at, n;

	buf_str(&line, "qga_");
	buf_str(&line, fams[f].name);
	buf_str(&line, "{");
	prom_label(&line, "target", col.addr[m - col.mt]);
	buf_str(&line, labels);
	buf_str(&line, "} ");
	n = line.len;
	if (m->nseries[f] >= SERIES_MAX)
		goto out;
	for (at = 0; at < b->len; at = (size_t)(nl - b->p) + 1) {
		if (b->len - at > n && !memcmp(b->p + at, line.p, n))
			goto out;
		nl = memchr(b->p + at, '\n', b->len - at);
	}
	m->nseries[f]++;
	buf_str(&line, v);
	buf_str(&line, "\n");
	buf_add(b, line.p, line.len);
out:
	free(line.p);
}

/* A sample of an integer, scaled down by div (1: as it is; 1000: ms as
 * seconds), or of the number at token i of d; none when i is not one. */
static void
sample_int(struct mt *m, int f, const char *labels, long long v, int div)
{
	char s[48];

	if (div == 1)
		snprintf(s, sizeof s, "%lld", v);
	else
		snprintf(s, sizeof s, "%s%lld.%03lld", v < 0 ? "-" : "",
		         (v < 0 ? -(v / div) : v / div), (v < 0 ? -(v % div) : v % div));
	sample(m, f, labels, s);
}

/* A JSON number, as the tokenizer checked it, is a number as Prometheus
 * reads one too. */
static void
sample_num(struct mt *m, int f, const char *labels, const struct doc *d, int i)
{
	char s[40];
	size_t n;

	if (i < 0 || d->t[i].type != JSON_NUMBER || (n = d->t[i].end - d->t[i].start) >= sizeof s)
		return;
	memcpy(s, d->js + d->t[i].start, n);
	s[n] = 0;
	sample(m, f, labels, s);
}

/* The labels key="the string at token i of d", into b, emptied first. */
static void
labels_of(struct buf *b, const struct doc *d, const char *key, int i)
{
	char *v = dstr(d, i);

	b->len = 0;
	prom_label(b, key, v);
	buf_add(b, "", 1);
	b->len--;
	free(v);
}

static void
take_info(struct mt *m, const struct doc *d)
{
	struct buf b = {0};

	labels_of(&b, d, "version", dget(d, 0, "version"));
	sample(m, F_AGENT, b.p, "1");
	free(b.p);
}

static void
take_host(struct mt *m, const struct doc *d)
{
	m->host = dstr(d, dget(d, 0, "host-name"));
}

static void
take_os(struct mt *m, const struct doc *d)
{
	static const char *const keys[] = {"id", "name", "pretty-name", "version", "version-id"};
	static const char *const names[] = {"id", "name", "pretty_name", "version", "version_id"};
	struct buf b = {0};
	char *v;
	size_t i;

	for (i = 0; i < sizeof keys / sizeof *keys; i++) {
		v = dstr(d, dget(d, 0, keys[i]));
		prom_label(&b, names[i], v);
		free(v);
	}
	buf_add(&b, "", 1);
	sample(m, F_OS, b.p, "1");
	m->uname[0] = dstr(d, dget(d, 0, "machine"));
	m->uname[1] = dstr(d, dget(d, 0, "kernel-release"));
	m->uname[2] = dstr(d, dget(d, 0, "kernel-version"));
	free(b.p);
}

/* Sizes as df(1) and qga df see them (show_df): size is the whole file
 * system (total-bytes-privileged, 9.1 on), avail is what is left to
 * others than root (total-bytes is that plus used), and free what is left
 * to root, known only with total-bytes-privileged. */
static void
take_fs(struct mt *m, const struct doc *d)
{
	struct buf b = {0};
	struct fs f;
	int i, k;

	each(d, 0, i, k) {
		if (k >= SERIES_MAX)
			break;
		fs_at(d, i, &f);
		if (f.used >= 0 && f.total >= f.used && !excluded(col.excl[0], f.type) &&
		    !excluded(col.excl[1], f.mnt)) {
			b.len = 0;
			prom_label(&b, "device", f.dev);
			prom_label(&b, "fstype", f.type);
			prom_label(&b, "mountpoint", f.mnt);
			buf_add(&b, "", 1);
			sample_int(m, F_FS_SIZE, b.p, f.priv >= f.total ? f.priv : f.total, 1);
			if (f.priv >= f.total)
				sample_int(m, F_FS_FREE, b.p, f.priv - f.used, 1);
			sample_int(m, F_FS_AVAIL, b.p, f.total - f.used, 1);
			sample_int(m, F_FS_USED, b.p, f.used, 1);
		}
		fs_free(&f);
	}
	free(b.p);
}

static void
take_load(struct mt *m, const struct doc *d)
{
	sample_num(m, F_LOAD1, "", d, dget(d, 0, "load1m"));
	sample_num(m, F_LOAD5, "", d, dget(d, 0, "load5m"));
	sample_num(m, F_LOAD15, "", d, dget(d, 0, "load15m"));
}

/* The agent counts in milliseconds. Guest time is counted in user and
 * nice already, as in /proc/stat, so it is not a mode of its own. */
static void
take_cpu(struct mt *m, const struct doc *d)
{
	static const char *const modes[] = {"user", "nice", "system", "idle", "iowait", "irq",
	                                    "softirq", "steal"};
	struct buf b = {0};
	char cpu[24];
	size_t j;
	int i, k, v;

	each(d, 0, i, k) {
		if (k >= SERIES_MAX)
			break;
		snprintf(cpu, sizeof cpu, "%lld", dint(d, dget(d, i, "cpu"), -1));
		for (j = 0; j < sizeof modes / sizeof *modes; j++) {
			if ((v = dget(d, i, modes[j])) < 0)
				continue;
			b.len = 0;
			prom_label(&b, "cpu", cpu);
			prom_label(&b, "mode", modes[j]);
			buf_add(&b, "", 1);
			sample_int(m, F_CPU, b.p, dint(d, v, 0), 1000);
		}
	}
	free(b.p);
}

/* Whether the disk name is a partition of another of d's, i: its name and
 * a number, with a 'p' between after a name that ends in a digit
 * (nvme0n1p1, mmcblk0p2). Its I/O is its disk's too, so it is left out, as
 * node_exporter leaves it. */
static int
partition(const struct doc *d, const char *name)
{
	char disk[PROM_LABEL_MAX + 1];
	size_t n = strlen(name), k;
	int i, j, t;

	for (k = n; k && isdigit((unsigned char)name[k - 1]); k--)
		;
	if (k == n || !k || k > PROM_LABEL_MAX)
		return 0;
	k -= name[k - 1] == 'p' && k > 1 && isdigit((unsigned char)name[k - 2]);
	memcpy(disk, name, k);
	disk[k] = 0;
	each(d, 0, i, j)
		if (j < SERIES_MAX && (t = dget(d, i, "name")) >= 0 && json_eq(d->js, &d->t[t], disk))
			return 1;
	return 0;
}

/* Sectors are of 512 bytes, whatever the disk's own, as in /proc. */
static long long
sectors(long long v)
{
	return v < 0 ? 0 : v > LLONG_MAX / 512 ? LLONG_MAX : v * 512;
}

static void
take_disk(struct mt *m, const struct doc *d)
{
	struct buf b = {0};
	char *name;
	int i, k, s;

	each(d, 0, i, k) {
		if (k >= SERIES_MAX)
			break;
		name = dstr(d, dget(d, i, "name"));
		s = dget(d, i, "stats");
		if (s >= 0 && !excluded(col.excl[2], name) && !partition(d, name)) {
			labels_of(&b, d, "device", dget(d, i, "name"));
			sample_int(m, F_DISK_READS, b.p, dint(d, dget(d, s, "read-ios"), 0), 1);
			sample_int(m, F_DISK_READ_BYTES, b.p,
			           sectors(dint(d, dget(d, s, "read-sectors"), 0)), 1);
			sample_int(m, F_DISK_WRITES, b.p, dint(d, dget(d, s, "write-ios"), 0), 1);
			sample_int(m, F_DISK_WRITTEN_BYTES, b.p,
			           sectors(dint(d, dget(d, s, "write-sectors"), 0)), 1);
			sample_int(m, F_DISK_IO_TIME, b.p, dint(d, dget(d, s, "total-ticks"), 0), 1000);
		}
		free(name);
	}
	free(b.p);
}

static void
take_net(struct mt *m, const struct doc *d)
{
	static const char *const keys[] = {"rx-bytes", "rx-packets", "rx-errs", "rx-dropped",
	                                   "tx-bytes", "tx-packets", "tx-errs", "tx-dropped"};
	struct buf b = {0};
	int i, k, s, j, v;

	each(d, 0, i, k) {
		if (k >= SERIES_MAX)
			break;
		if ((s = dget(d, i, "statistics")) < 0)
			continue;
		labels_of(&b, d, "device", dget(d, i, "name"));
		for (j = 0; j < 8; j++)
			if ((v = dget(d, s, keys[j])) >= 0)
				sample_int(m, F_NET_RX_BYTES + j, b.p, dint(d, v, 0), 1);
	}
	free(b.p);
}

static void
take_users(struct mt *m, const struct doc *d)
{
	sample_int(m, F_USERS, "", d->t[0].size, 1);
}

static void
take_vcpus(struct mt *m, const struct doc *d)
{
	int i, k, n = 0;

	each(d, 0, i, k)
		n += dtrue(d, dget(d, i, "online"));
	sample_int(m, F_CPUS_ONLINE, "", n, 1);
}

/* The engine's hooks */

/* Whether the agent has command name, enabled, as guest-info said; when
 * it did not say, whether to try is the agent's to answer. */
static int
has(const struct mt *m, const char *name)
{
	const char *p;
	size_t n = strlen(name);

	if (!m->cmds)
		return 1;
	for (p = m->cmds; (p = strstr(p, name)); p += n)
		if (p[-1] == ',' && p[n] == ',')
			return 1;
	return 0;
}

/* The next of asks that the agent has; those it lacks fail unasked. What
 * it has is known once guest-info, the first, is answered: the others are
 * then sent together, and answered in turn. */
static const char *
next_ask(struct engine *e, struct job *j, struct buf *b)
{
	struct mt *m = &col.mt[j->index];

	(void)e;
	if (m->step == 1 && !m->info)
		return engine_wait;
	while (m->step < NASKS && !has(m, asks[m->step].cmd))
		m->step++;
	if (m->step == NASKS)
		return NULL;
	req_begin(b, asks[m->step].cmd);
	req_end(b, -1);
	return asks[m->step++].cmd;
}

/* A reply of the shape its command's row in agent_cmds gives is taken. */
static void
take_reply(struct engine *e, struct job *j, const char *name, const char *js,
           size_t len, const struct reply *r)
{
	struct mt *m = &col.mt[j->index];
	const struct ask *a = asks;
	const char *shape;
	struct buf names = {0};
	struct doc d;

	(void)e;
	(void)js;
	(void)len;
	while (strcmp(a->cmd, name))
		a++;
	m->info |= a->take == take_info;
	shape = a->take == take_info ? SHAPE_INFO : shape_of(a->cmd);
	if (r->ret < 0 || doc_return(&d, r, a->cmd, shape))
		return;
	m->ok |= 1u << (a - asks);
	a->take(m, &d);
	if (a->take == take_info && !command_list(r, 0, &names))
		m->cmds = names.p;
	free(d.t);
}

/* The samples of the target itself, once its job is over. */
static void
job_done(struct engine *e, struct job *j)
{
	static const char *const keys[] = {"machine", "release", "version"};
	struct mt *m = &col.mt[j->index];
	struct buf b = {0};
	int i;

	(void)e;
	sample_int(m, F_UP, "", j->up, 1);
	sample_int(m, F_DURATION, "", j->ms, 1000);
	for (i = 0; j->up && i < NASKS; i++) {
		b.len = 0;
		prom_label(&b, "command", asks[i].cmd);
		buf_add(&b, "", 1);
		sample_int(m, F_ERRORS, b.p, !(m->ok & 1u << i), 1);
	}
	if (m->host || m->uname[0]) {
		b.len = 0;
		for (i = 0; i < 3; i++)
			prom_label(&b, keys[i], m->uname[i] ? m->uname[i] : "");
		prom_label(&b, "nodename", m->host ? m->host : "");
		buf_add(&b, "", 1);
		sample(m, F_UNAME, b.p, "1");
	}
	if (j->status && !col.listen && !many.quiet)
		warn("metrics: %s", j->why);
	free(b.p);
	/* Held until every target is done: no room to spare. */
	for (i = 0; i < NFAM; i++)
		if (m->fam[i].len)
			m->fam[i].p = xrealloc(m->fam[i].p, m->fam[i].cap = m->fam[i].len);
}

/* The collection */

static void
collect_free(void)
{
	int i, f;

	for (i = 0; i < col.n; i++) {
		for (f = 0; f < NFAM; f++)
			free(col.mt[i].fam[f].p);
		free(col.mt[i].cmds);
		free(col.mt[i].host);
		for (f = 0; f < 3; f++)
			free(col.mt[i].uname[f]);
	}
	free(col.mt);
	col.mt = NULL;
	col.n = 0;
}

/* Starts a collection from the targets given, or else from every agent
 * ls finds now; one another client holds is not asked (it would cost a
 * timeout), and is down. */
static void
collect_start(void)
{
	int i, k, live = 0;

	collect_free();
	if (many.n) {
		/* A target given twice is asked once: its series would be twice. */
		col.addr = xrealloc(col.addr, (size_t)many.n * sizeof *col.addr);
		for (i = 0; i < many.n; i++) {
			for (k = 0; k < col.n && strcmp(col.addr[k], many.addr[i]); k++)
				;
			if (k == col.n)
				col.addr[col.n++] = many.addr[i];
		}
		col.held = 0;
	} else {
		forget_agents();
		find_agents();
		col.addr = xrealloc(col.addr, (size_t)(nfound ? nfound : 1) * sizeof *col.addr);
		for (i = 0; i < nfound; i++)
			if (!found[i].held)
				col.addr[live++] = found[i].addr;
		col.held = 0;
		for (i = 0; i < nfound; i++)
			if (found[i].held)
				col.addr[live + col.held++] = found[i].addr;
		col.n = nfound;
	}
	col.mt = xrealloc(NULL, (size_t)(col.n ? col.n : 1) * sizeof *col.mt);
	memset(col.mt, 0, (size_t)(col.n ? col.n : 1) * sizeof *col.mt);
	for (i = col.n - col.held; i < col.n; i++) {
		sample_int(&col.mt[i], F_UP, "", 0, 1);
		if (!col.listen && !many.quiet)
			warn("metrics: %s: another client holds it (libvirtd?)", col.addr[i]);
	}
	engine_init(&col.e, col.addr, col.n - col.held, timeout_or(5000), col.room);
	col.e.maxreply = opt.maxreply < REPLY_METRICS ? opt.maxreply : REPLY_METRICS;
	col.e.next = next_ask;
	col.e.window = ENGINE_WINDOW;
	col.e.answer = take_reply;
	col.e.on_end = job_done;
}

/* The text of the collection that has ended, into col.text (printed a
 * family at a time without --listen): each family with samples, all its
 * targets' series under its HELP and TYPE. */
static void
collect_end(void)
{
	int i, f, any;

	col.text.len = 0;
	for (f = 0; f < NFAM; f++) {
		for (i = any = 0; i < col.n; i++)
			any |= col.mt[i].fam[f].len > 0;
		if (!any)
			continue;
		prom_family(&col.text, fams[f].name, fams[f].type, fams[f].help);
		for (i = 0; i < col.n; i++)
			buf_add(&col.text, col.mt[i].fam[f].p, col.mt[i].fam[f].len);
		if (!col.listen && fwrite(col.text.p, 1, col.text.len, stdout) != col.text.len)
			die(EX_IO, "write stdout:");
		col.text.len -= col.listen ? 0 : col.text.len;
	}
	collect_free();
}

/* --listen: a scrape joins the collection under way, or starts one; all
 * that wait get its text when it ends. */

static int collecting;

static void
scrape(int i, int keep)
{
	enqueue(i, ITEM_SCRAPE, "", 0, "metrics", keep)->text = 1;
	if (!collecting) {
		collect_start();
		collecting = 1;
	}
}

/* serve's turn: the collection moved on, and when it has ended the
 * scrapes that wait for it answered. Returns the ms serve may wait, from
 * wait (-1: for ever). */
int
exporter_tick(int wait)
{
	struct item *it;
	long long w;
	size_t k;

	if (!collecting)
		return wait;
	if ((w = engine_tick(&col.e, now_ms())) >= 0 || col.e.running)
		return wait < 0 || w < wait ? (int)(w > 3600000 ? 3600000 : w) : wait;
	collecting = 0;
	collect_end();
	for (k = sv.qhead; k < sv.qhead + sv.qlen; k++) {
		it = &sv.q[k];
		if (it->kind == ITEM_SCRAPE && it->state == COLLECTING)
			item_done(it, 200, col.text.p, col.text.len);
	}
	return 0;
}

int
exporter_poll(struct pollfd *pfd)
{
	return collecting ? engine_poll(&col.e, pfd) : 0;
}

void
exporter_io(const struct pollfd *pfd, int n)
{
	if (collecting)
		engine_io(&col.e, pfd, n);
}

/* serve stops: the collection under way ends, its links released. */
void
exporter_stop(void)
{
	if (collecting)
		engine_stop(&col.e, EX_IO, "stopping");
	collecting = 0;
}

/* An HTTP request to the exporter: GET /metrics, and a page at / that
 * links to it. */
void
exporter_http(int i, const struct http_req *r)
{
	static const char page[] = "<!DOCTYPE html>\n<html><head><title>qga metrics</title>"
		"</head>\n<body><h1>qga metrics</h1>\n<p>What the guests' agents report: "
		"<a href=\"metrics\">metrics</a></p></body></html>\n";

	if (http_is(r, "GET", "/"))
		enqueue(i, ITEM_LOCAL, page, sizeof page - 1, "index", r->keep)->text = 2;
	else if (*sv.token && !r->auth)
		http_local(i, 401, r->keep);
	else if (http_is(r, "GET", "/metrics"))
		scrape(i, r->keep);
	else
		http_local(i, http_is(r, NULL, "/metrics") || http_is(r, NULL, "/") ? 405 : 404,
		           r->keep && !r->chunked);
}

const struct option metrics_longs[] = {
	{"listen", required_argument, NULL, 'l'},
	{"token-file", required_argument, NULL, O_TOKEN},
	{"fs-types-exclude", required_argument, NULL, O_FSTYPES},
	{"mount-points-exclude", required_argument, NULL, O_MOUNTS},
	{"disks-exclude", required_argument, NULL, O_DISKS},
	{NULL, 0, NULL, 0}
};

int
cmd_metrics(int argc, char **argv)
{
	char *addrs[16];
	int http[16], na = 0, ch, i;

	memcpy(col.excl, excl_default, sizeof col.excl);
	while ((ch = cmdopt(argc, argv)) != -1) {
		switch (ch) {
		case 'l':
			if (na == 16)
				die(EX_USAGE, "metrics: at most 16 listen addresses");
			http[na] = 1;
			addrs[na++] = optarg;
			break;
		case O_TOKEN: read_token(optarg); break;
		case O_FSTYPES: col.excl[0] = optarg; break;
		case O_MOUNTS: col.excl[1] = optarg; break;
		case O_DISKS: col.excl[2] = optarg; break;
		}
	}
	if (optind != argc)
		return -1;
	if (opt.qmp)
		die(EX_USAGE, "metrics: the metrics are a guest agent's: not with --qmp");
	/* The agents are asked in one process: no child per target; 256 at
	 * once unless -P says, which --listen's clients leave room for. */
	many.fanned = 1;
	col.room = engine_room(many.max ? many.max : 256, na ? 64 + na : 0);
	if (!na) {
		collect_start();
		engine_run(&col.e);
		if (interrupted)
			quit(fail(128 + interrupted, "interrupted"));
		collect_end();
		if (fflush(stdout))
			die(EX_IO, "write stdout:");
		return 0;
	}
	col.listen = sv.exporter = 1;
	sv.quiet = many.quiet;
	sv.link.fd = -1;
	sv.max = 64;
	sv.maxreq = 65536;
	sv.mode = 0600;
	/* A client that reads none of its scrapes is cut off past this. */
	sv.maxout = opt.maxreply;
	for (i = 0; i < na; i++)
		serve_listen(addrs[i], http[i]);
	return serve_run(addrs, na, col.room);
}
