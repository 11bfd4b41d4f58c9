/* SPDX-License-Identifier: MIT */
/* Finding a built-in command, suggestions for a name the agent lacks,
 * help and shell completion. */
#include "qga.h"

const struct cmd *
find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < ncmds; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

/* The optimal string alignment distance of a and b (an edit is a letter
 * added, dropped, changed, or two swapped), or 9 when it is surely
 * more than 2. One edit is a typo; two only in a long name. */
static int
distance(const char *a, const char *b)
{
	int d[3][64], n = (int)strlen(a), m = (int)strlen(b), i, j, v;

	if (n > 62 || m > 62 || n - m > 2 || m - n > 2)
		return 9;
	for (j = 0; j <= m; j++)
		d[0][j] = j;
	for (i = 1; i <= n; i++) {
		int *row = d[i % 3], *up = d[(i - 1) % 3], *up2 = d[(i + 1) % 3];
		row[0] = i;
		for (j = 1; j <= m; j++) {
			v = up[j - 1] + (a[i - 1] != b[j - 1]);
			if (up[j] + 1 < v)
				v = up[j] + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    up2[j - 2] + 1 < v)
				v = up2[j - 2] + 1;
			row[j] = v;
		}
	}
	return d[n % 3][m];
}

/* Keeps cand[0..len) in best when it is closer to name than best. */
static void
closest(const char *name, const char *cand, size_t len, char *best, int *bd)
{
	char c[64];
	int d;

	if (len >= sizeof c)
		return;
	memcpy(c, cand, len);
	c[len] = 0;
	d = distance(name, c);
	if (d < *bd && (d == 1 || (d == 2 && strlen(name) >= 12))) {
		strcpy(best, c);
		*bd = d;
	}
}

static void
suggest_builtin(const char *name)
{
	char best[64] = "";
	int bd = 9;
	size_t i;

	for (i = 0; i < ncmds; i++)
		closest(name, cmds[i].name, strlen(cmds[i].name), best, &bd);
	if (*best)
		fprintf(stderr, "qga: did you mean '%s'?\n", best);
}

/* Whether r is the error of a command that does not exist. */
int
not_found(const struct reply *r)
{
	char desc[400];

	return r->err >= 0 && strstr(member_str(r->js, &r->tok[r->err], "desc",
	                                        desc, sizeof desc), "has not been found");
}

/* Says which command name is closest to the one nobody knows: a built-in,
 * one of the schema's, or one the peer lists (guest-info, or QMP's
 * query-commands, asked once). */
void
suggest(struct conn *c, const char *name)
{
	const char *list = ",";

	peer_commands(c, &list);
	suggest_from(list, name);
}

/* As suggest(), with the peer's commands as command_list() has them. A
 * bare name is also compared as guest-NAME. */
void
suggest_from(const char *list, const char *name)
{
	const char *p, *e;
	char gname[160], best[64] = "", cand[64];
	int bd = 9, j;
	size_t w;

	snprintf(gname, sizeof gname, "guest-%.*s", (int)sizeof gname - 7, name);
	for (j = 0; j < 2; j++) {
		const char *nm = j ? gname : name;
		if (j && !strncmp(name, "guest-", 6))
			break;
		for (w = 0; w < ncmds; w++)
			closest(nm, cmds[w].name, strlen(cmds[w].name), best, &bd);
		for (w = 0; w < nagent_cmds; w++) {
			snprintf(cand, sizeof cand, "%s", agent_cmds[w].name);
			closest(nm, cand, strlen(cand), best, &bd);
		}
		for (p = list + 1; (e = strchr(p, ',')); p = e + 1)
			closest(nm, p + (*p == '!'), (size_t)(e - p - (*p == '!')), best, &bd);
	}
	if (*best)
		fprintf(stderr, "qga: did you mean '%s'?\n", best);
}

int
cmd_help(int argc, char **argv)
{
	const struct cmd *c;

	if (argc == 1)
		usage(0);
	if (argc != 2)
		return -1;
	if (!(c = find_cmd(argv[1]))) {
		fprintf(stderr, "qga: help: unknown command '%s'\n", argv[1]);
		suggest_builtin(argv[1]);
		leave(EX_USAGE);
	}
	cmd_help_text(c);
	return 0;
}

static int
long_named(const struct option *lo, const char *name)
{
	for (; lo->name; lo++)
		if (!strcmp(lo->name, name))
			return 1;
	return 0;
}

/* Prints a command's options, long and short, separated by spaces; its
 * own long option wins over a global one of the same name. */
static void
print_opts(const struct cmd *c)
{
	const struct option *lo;
	const char *p;

	for (lo = c ? c->longs : NULL; lo && lo->name; lo++)
		printf(" --%s", lo->name);
	for (lo = global_longs; lo->name; lo++)
		if (!c || !c->longs || !long_named(c->longs, lo->name))
			printf(" --%s", lo->name);
	for (p = GLOBAL_SHORTS; *p; p++)
		if (*p != ':')
			printf(" -%c", *p);
	for (p = c && c->shorts ? c->shorts : ""; *p; p++)
		if (*p != ':')
			printf(" -%c", *p);
}

/* The start of both scripts: bash's words and index, or zsh's. */
static const char comp_head[] =
"_qga() {\n"
"\tlocal i cmd= opts%1$s\n"
"\tfor ((i = %2$s; i < %3$s; i++)); do\n"
"\t\tcase ${%4$s[i]} in\n"
"\t\t-s|--socket|-t|--timeout|--max-reply) ((i++)) ;;\n"
"\t\t--) break ;;\n"
"\t\t-*) ;;\n"
"\t\t*) cmd=${%4$s[i]}; break ;;\n"
"\t\tesac\n"
"\tdone\n"
"\tcase ${%4$s[%3$s-1]} in\n"
"\t-s|--socket) %5$s; return ;;\n"
"\t-t|--timeout|--max-reply) return ;;\n"
"\tesac\n"
"\tcase $cmd in\n";

/* Prints a completion script. The commands, their options and the
 * guest agent's command names come from the tables above. */
int
cmd_completion(int argc, char **argv)
{
	int bash;
	size_t i;

	if (argc != 2 || (strcmp(argv[1], "bash") && strcmp(argv[1], "zsh")))
		return -1;
	bash = argv[1][0] == 'b';
	printf("%s", bash ? "# bash completion for qga: qga completion bash\n" :
	       "#compdef qga\n# zsh completion for qga: qga completion zsh\n");
	if (bash)
		printf(comp_head, " cur=${COMP_WORDS[COMP_CWORD]}", "1", "COMP_CWORD",
		       "COMP_WORDS", "COMPREPLY=($(compgen -W 'unix: tcp: vsock: hvsock: pve: serial:' -- "
		       "\"$cur\") $(compgen -f -- \"$cur\")); compopt -o nospace 2>/dev/null");
	else
		printf(comp_head, "", "2", "CURRENT", "words",
		       "compadd -S '' unix: tcp: vsock: hvsock: pve: serial:; _files");
	for (i = 0; i < ncmds; i++) {
		printf("\t%s) opts='", cmds[i].name);
		print_opts(&cmds[i]);
		printf("' ;;\n");
	}
	printf("\t*) opts='");
	print_opts(NULL);
	printf("' ;;\n\tesac\n");
	if (bash)
		printf("\tif [[ $cur == -* ]]; then\n"
		       "\t\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
		       "\telif [[ -z $cmd ]]; then\n\t\tCOMPREPLY=($(compgen -W '");
	else
		printf("\tif [[ ${words[CURRENT]} == -* ]]; then\n"
		       "\t\tcompadd -- ${=opts}\n"
		       "\telif [[ -z $cmd ]]; then\n\t\tcompadd --");
	for (i = 0; i < ncmds; i++)
		printf(" %s", cmds[i].name);
	for (i = 0; i < nagent_cmds; i++)
		printf(" %s", agent_cmds[i].name);
	if (bash)
		printf("' -- \"$cur\"))\n\tfi\n}\ncomplete -o default -F _qga qga\n");
	else
		printf("\n\telse\n\t\t_files\n\tfi\n}\n"
		       "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n"
		       "\t_qga \"$@\"\nelse\n\tcompdef _qga qga\nfi\n");
	return 0;
}
