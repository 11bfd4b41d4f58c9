/* SPDX-License-Identifier: MIT */
/* A libFuzzer target for what the built-in commands make of a reply: its
 * shape checked as doc_parse() checks it, then, when it passes, printed as
 * text by the command's show function, pure functions of the reply's
 * bytes. An input is a command's name, a newline, then the reply; a name
 * that is none of them picks one by its first byte. Whatever the reply,
 * nothing may read or write out of bounds or overflow. qga.c is included
 * whole, its main renamed. Linked with fuzz_main.c it replays a corpus,
 * which is how make check runs it. What is printed goes to /dev/null. */
#define main qga_main
#include "../qga.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ip -a, as it prints the addresses. */
static void
show_ips(const struct doc *d)
{
	print_ips(d, NULL, NULL, 1, 0);
}

/* exec -j's object, and the status exec would exit with. */
static void
show_exec(const struct doc *d)
{
	struct buf js = {0};

	if (!exec_json(&js, d))
		print_json(js.p, js.len);
	free(js.p);
	exit_code(d, "prog");
}

struct shown {
	const char *name, *shape;
	void (*show)(const struct doc *);
};

static const struct shown extra[] = {
	{"guest-exec-status", SHAPE_STATUS, show_exec},
	{"guest-network-get-interfaces", NULL, show_ips},
	{"guest-fsfreeze-status", NULL, show_text},
	{"guest-fstrim", NULL, show_fstrim},
	{"guest-ssh-get-authorized-keys", NULL, show_keys},
};
#define NEXTRA (sizeof extra / sizeof *extra)
#define NCMDS (sizeof cmds / sizeof *cmds)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct shown t[NCMDS + NEXTRA];
	static size_t nt;
	static int null = -1, out = -1;
	const char *s = (const char *)data, *nl = memchr(s, '\n', size);
	const struct shown *c;
	const struct json_tok *v;
	struct reply r;
	struct doc d;
	size_t i, q;

	/* The commands that show a reply as text, with their shapes. */
	for (i = 0; !nt && i < NCMDS + NEXTRA; i++)
		if (i >= NCMDS)
			t[nt++] = extra[i - NCMDS];
		else if (cmds[i].show)
			t[nt++] = (struct shown){cmds[i].uses, NULL, cmds[i].show};
	if (null < 0) {
		null = open("/dev/null", O_WRONLY);
		out = dup(1);
	}
	if (!size)
		return 0;
	c = &t[(unsigned char)s[0] % nt];
	for (i = 0; nl && i < nt; i++)
		if (strlen(t[i].name) == (size_t)(nl - s) && !memcmp(s, t[i].name, (size_t)(nl - s)))
			c = &t[i];
	if (nl) {
		size -= (size_t)(nl + 1 - s);
		s = nl + 1;
	}
	if (reply_text(&r, s, size, c->name) || r.ret < 0)
		return 0;
	v = &r.tok[r.ret];
	q = v->type == JSON_STRING;
	if (!doc_parse(&d, r.js + v->start - q, v->end - v->start + 2 * q,
	               c->shape ? c->shape : shape_of(c->name), c->name)) {
		fflush(stdout);
		dup2(null, 1);
		c->show(&d);
		fflush(stdout);
		if (out >= 0)
			dup2(out, 1);
	}
	free(d.t);
	return 0;
}
