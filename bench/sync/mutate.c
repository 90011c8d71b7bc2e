/* Benchmark helper for bench/sync/run.sh (built by it against libroam.a).
 *   mutate write STORE VM OFF:FILE...   new head commit of VM whose disk0 has
 *                                       FILE's bytes at byte offset OFF (each
 *                                       pair); other roots unchanged
 *   mutate export STORE VM DIR          DIR/disk0.raw and DIR/memory.raw of
 *                                       VM's head (the raw-file equivalents
 *                                       rsync and scp move) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "image/commit.h"
#include "image/store.h"

static int die(const char *what)
{
	fprintf(stderr, "mutate: %s: %s\n", what, store_last_error());
	return 1;
}

static int do_export(struct store *s, const struct store_commit *c, const char *dir)
{
	const char *names[] = { "disk0", "memory" };
	for (int i = 0; i < 2; i++) {
		const struct store_commit_root *r = store_commit_root(c, names[i]);
		if (!r)
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s.raw", dir, names[i]);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || store_export_fd(s, &r->hash, fd, NULL) < 0)
			return die(path);
		close(fd);
	}
	return 0;
}

static int do_write(struct store *s, const char *vm, struct store_commit *c,
		    const struct store_hash *head, int n, char **pairs)
{
	const struct store_commit_root *r = store_commit_root(c, "disk0");
	if (!r)
		return die("no disk0");
	struct store_tree *t;
	if (store_tree_open(s, &r->hash, &t) < 0)
		return die("tree open");
	uint64_t size = store_tree_size(t), cs = store_chunk_size(s);
	struct store_tree_builder *b;
	if (store_tree_builder_new(s, size, &r->hash, &b) < 0)
		return die("builder");
	/* changed chunks, each read once from the tree then overlaid by every
	 * pair that touches it (pairs may overlap one another) */
	struct mod { uint64_t index, len; uint8_t *buf; } *mods = NULL;
	size_t n_mods = 0;
	for (int i = 0; i < n; i++) {
		char *colon = strchr(pairs[i], ':');
		if (!colon)
			return 2;
		uint64_t off = strtoull(pairs[i], NULL, 0);
		int fd = open(colon + 1, O_RDONLY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0)
			return 1;
		uint8_t *data = malloc((size_t)st.st_size);
		if (!data || read(fd, data, (size_t)st.st_size) != st.st_size)
			return 1;
		close(fd);
		uint64_t end = off + (uint64_t)st.st_size;
		for (uint64_t ci = off / cs; ci * cs < end && ci * cs < size; ci++) {
			uint64_t cstart = ci * cs, clen = size - cstart < cs ? size - cstart : cs;
			struct mod *m = NULL;
			for (size_t k = 0; k < n_mods; k++)
				if (mods[k].index == ci)
					m = &mods[k];
			if (!m) {
				mods = realloc(mods, (n_mods + 1) * sizeof(*mods));
				m = &mods[n_mods++];
				m->index = ci;
				m->len = clen;
				m->buf = malloc(cs);
				if (store_tree_read(t, m->buf, clen, cstart) != (ssize_t)clen)
					return die("read");
			}
			uint64_t a = off > cstart ? off : cstart, e = end < cstart + clen ? end : cstart + clen;
			memcpy(m->buf + (a - cstart), data + (a - off), e - a);
		}
		free(data);
	}
	for (size_t k = 0; k < n_mods; k++) {
		if (store_tree_builder_set(b, mods[k].index, mods[k].buf, mods[k].len) < 0)
			return die("set");
		free(mods[k].buf);
	}
	free(mods);
	struct store_hash root, nc;
	if (store_tree_builder_finish(b, &root) < 0)
		return die("finish");
	store_tree_builder_free(b);
	store_tree_free(t);
	struct store_commit m = *c;
	m.parents[0] = *head;
	m.n_parents = 1;
	m.time = time(NULL);
	m.message = "bench: 20 MiB disk change";
	for (size_t i = 0; i < m.n_roots; i++)
		if (!strcmp(m.roots[i].name, "disk0"))
			m.roots[i].hash = root;
	if (store_commit_put(s, &m, &nc) < 0)
		return die("commit");
	char ref[300];
	snprintf(ref, sizeof(ref), "vms/%s/head", vm);
	if (store_ref_cas(s, ref, head, &nc) < 0)
		return die("ref");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	struct store *s;
	if (store_open(argv[2], 0, &s) < 0)
		return die(argv[2]);
	char ref[300];
	struct store_hash head;
	struct store_commit *c;
	snprintf(ref, sizeof(ref), "vms/%s/head", argv[3]);
	if (store_ref_get(s, ref, &head) < 0 || store_commit_get(s, &head, &c) < 0)
		return die(ref);
	int rc = !strcmp(argv[1], "export") ? do_export(s, c, argv[4])
					     : do_write(s, argv[3], c, &head, argc - 4, argv + 4);
	store_commit_free(c);
	store_free(s);
	return rc;
}
