/* SPDX-License-Identifier: MIT */
/* A libFuzzer target for get -r's archive parsers: tar_head_parse() of a
 * header block, tar_pax_parse() of a pax header's records and
 * tar_clean() of a name, pure functions of the bytes a guest sent.
 * Whatever those are, each must refuse them or describe what lies within
 * them, and a name it lets through must stay below the folder. qga.c is
 * included whole, its main renamed. Linked with fuzz_main.c it replays a
 * corpus, which is how make check runs it. */
#define main qga_main
#include "../qga.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether a cleaned name could leave the folder or is not clean. */
static int
escapes(const char *name)
{
	const char *p = name;
	size_t n;

	if (*name == '/')
		return 1;
	while (*p) {
		n = strcspn(p, "/");
		if (!n || (n == 1 && *p == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 1;
		p += n;
		if (*p && !*++p)
			return 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tar_head h;
	struct tar_pax x = {0};
	char *name;
	size_t off;

	for (off = 0; off + 512 <= size; off += 512)
		if (!tar_head_parse(data + off, &h) &&
		    (h.mode > 07777 || strlen(h.name) >= sizeof h.name ||
		     strlen(h.link) >= sizeof h.link || !h.type))
			abort();
	if (!tar_pax_parse((const char *)data, size, &x) &&
	    ((x.path.len && x.path.p[x.path.len - 1]) || (x.link.len && x.link.p[x.link.len - 1])))
		abort();
	free(x.path.p);
	free(x.link.p);
	name = memcpy(xrealloc(NULL, size + 1), data, size);
	name[size] = 0;
	if (!tar_clean(name) && escapes(name))
		abort();
	free(name);
	return 0;
}
