/* VM configuration JSON (vmconfig.h): a writer and a strict reader for the
 * flat object roam writes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoint/vmconfig.h"
#include "monitor/vm.h"

bool ckpt_name_valid(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > CKPT_NAME_MAX || n[0] == '.' || n[0] == '-')
		return false;
	for (; *n; n++)
		if (!(*n == '.' || *n == '_' || *n == '-' || (*n >= '0' && *n <= '9') ||
		      (*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z')))
			return false;
	return true;
}

static void put_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

int ckpt_config_encode(const struct ckpt_config *c, char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "{\"version\":%d,\"name\":", CKPT_CONFIG_VERSION);
	put_json_str(f, c->name);
	fprintf(f, ",\"mem\":%llu,\"cpus\":%d,\"append\":", (unsigned long long)c->mem, c->cpus);
	put_json_str(f, c->append);
	fprintf(f, ",\"disks\":%d,\"readonly\":", c->disks);
	put_json_str(f, c->readonly);
	fprintf(f, ",\"rng\":%s,\"created\":%lld}\n", c->rng ? "true" : "false", (long long)c->created);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

struct parser { const char *p, *end; };

static void ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\t' || *ps->p == '\r'))
		ps->p++;
}

static int expect(struct parser *ps, char c)
{
	ws(ps);
	if (ps->p >= ps->end || *ps->p != c)
		return -EINVAL;
	ps->p++;
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits of a \u escape, exactly (the text is not NUL-terminated,
 * so no sscanf: it skips blanks and reads a sign or "0x" and past them). */
static int hex4(struct parser *ps, unsigned *v)
{
	if (ps->end - ps->p < 4)
		return -EINVAL;
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int d = hex_digit(ps->p[i]);
		if (d < 0)
			return -EINVAL;
		*v = *v << 4 | (unsigned)d;
	}
	ps->p += 4;
	return 0;
}

/* A JSON string into out (at most n-1 bytes); only the escapes the writer
 * produces are accepted: \" \\ \/ and \u0001..\u001f (never \u0000,
 * which would cut the string short). */
static int string(struct parser *ps, char *out, size_t n)
{
	if (expect(ps, '"'))
		return -EINVAL;
	size_t k = 0;
	while (ps->p < ps->end && *ps->p != '"') {
		char c = *ps->p++;
		if ((unsigned char)c < 0x20)
			return -EINVAL;
		if (c == '\\') {
			if (ps->p >= ps->end)
				return -EINVAL;
			c = *ps->p++;
			if (c == 'u') {
				unsigned v;
				if (hex4(ps, &v) || v == 0 || v >= 0x20)
					return -EINVAL;
				c = (char)v;
			} else if (c != '"' && c != '\\' && c != '/') {
				return -EINVAL;
			}
		}
		if (k + 1 >= n)
			return -E2BIG;
		out[k++] = c;
	}
	if (ps->p >= ps->end)
		return -EINVAL;
	ps->p++;
	out[k] = 0;
	return 0;
}

static int number(struct parser *ps, long long *v)
{
	ws(ps);
	char tmp[32];
	size_t k = 0;
	while (ps->p < ps->end && k < sizeof(tmp) - 1 && (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')))
		tmp[k++] = *ps->p++;
	tmp[k] = 0;
	char *e;
	errno = 0;
	*v = strtoll(tmp, &e, 10);
	return k == 0 || *e || errno ? -EINVAL : 0;
}

static int boolean(struct parser *ps, bool *v)
{
	ws(ps);
	if (ps->end - ps->p >= 4 && !memcmp(ps->p, "true", 4)) {
		ps->p += 4;
		*v = true;
		return 0;
	}
	if (ps->end - ps->p >= 5 && !memcmp(ps->p, "false", 5)) {
		ps->p += 5;
		*v = false;
		return 0;
	}
	return -EINVAL;
}

int ckpt_config_decode(const char *text, size_t len, struct ckpt_config *c, char *err, size_t errlen)
{
	struct parser ps = { text, text + len };
	memset(c, 0, sizeof(*c));
	long long version = -1, mem = -1, cpus = -1, disks = -1, created = 0;
	static const char *const keys[] = { "version", "name", "mem", "cpus", "append", "disks",
					    "readonly", "rng", "created" };
	unsigned seen = 0;
	c->rng = true;
	if (expect(&ps, '{'))
		goto bad;
	for (int first = 1;; first = 0) {
		ws(&ps);
		if (ps.p < ps.end && *ps.p == '}') {
			ps.p++;
			break;
		}
		if (!first && expect(&ps, ','))
			goto bad;
		char key[32];
		if (string(&ps, key, sizeof(key)) || expect(&ps, ':'))
			goto bad;
		/* A key twice is refused: readers that keep the first and
		 * readers that keep the last would see different VMs. */
		size_t k = 0;
		while (k < sizeof(keys) / sizeof(keys[0]) && strcmp(key, keys[k]))
			k++;
		if (k == sizeof(keys) / sizeof(keys[0]) || seen & 1u << k)
			goto bad;
		seen |= 1u << k;
		int rc;
		switch (k) {
		case 0: rc = number(&ps, &version); break;
		case 1: rc = string(&ps, c->name, sizeof(c->name)); break;
		case 2: rc = number(&ps, &mem); break;
		case 3: rc = number(&ps, &cpus); break;
		case 4: rc = string(&ps, c->append, sizeof(c->append)); break;
		case 5: rc = number(&ps, &disks); break;
		case 6: rc = string(&ps, c->readonly, sizeof(c->readonly)); break;
		case 7: rc = boolean(&ps, &c->rng); break;
		default: rc = number(&ps, &created); break;
		}
		if (rc)
			goto bad;
	}
	ws(&ps);
	if (ps.p != ps.end || !(seen & 1u))   /* junk after it, or no "version" */
		goto bad;
	if (version != CKPT_CONFIG_VERSION) {
		snprintf(err, errlen, "VM config version %lld is not supported by this roam", version);
		return -EPROTONOSUPPORT;
	}
	if (!ckpt_name_valid(c->name) || mem < (16LL << 20) || mem % 4096 || cpus < 1 ||
	    cpus > VM_MAX_CPUS || disks < 0 || disks > VM_MAX_DISKS ||
	    strlen(c->readonly) != (size_t)disks || strspn(c->readonly, "01") != (size_t)disks)
		goto bad;
	c->mem = (uint64_t)mem;
	c->cpus = (int)cpus;
	c->disks = (int)disks;
	c->created = created;
	return 0;
bad:
	snprintf(err, errlen, "the VM config is malformed");
	return -EINVAL;
}
