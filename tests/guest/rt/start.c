/* BSP start-up of the test kernels: checks the Multiboot hand-off, copies
 * the command line and the memory size out of low memory (the trampolines
 * reuse it), sets up the CPU tables and the heap, prints the banner and
 * runs the kernel's test_main(). Also answers command line queries. */
#include "rt.h"

static char cmdline[1024];
static u64 mem_top;

struct mb_info {
	u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	u32 syms[4];
	u32 mmap_length, mmap_addr;
} __attribute__((packed));

struct mb_mmap {
	u32 size;
	u64 base, len;
	u32 type;
} __attribute__((packed));

static u64 mb_mem_top(const struct mb_info *mb)
{
	u64 top = 0;
	if (mb->flags & (1u << 6)) {
		u64 p = mb->mmap_addr, end = p + mb->mmap_length;
		while (p + sizeof(struct mb_mmap) <= end && p < 0x100000000ULL) {
			const struct mb_mmap *e = (const void *)p;
			u64 b = e->base, l = e->len;
			if (e->type == 1 && b <= 0x100000 && b + l > 0x100000)
				top = b + l;      /* the region holding 1 MiB and up */
			if (e->type == 1 && b >= 0x100000 && b == top)
				top = b + l;      /* contiguous continuation */
			if (e->size < 20)
				break;
			p += e->size + 4;
		}
	}
	if (!top && (mb->flags & 1))
		top = 0x100000 + (u64)mb->mem_upper * 1024;
	if (top > 0xfec00000ULL)
		top = 0xfec00000ULL;
	return top;
}

void rt_start(u32 magic, u32 info);
void rt_start(u32 magic, u32 info)
{
	rt_console_init();
	const struct mb_info *mb = (const void *)(u64)info;
	if (magic == 0x2BADB002 && info) {
		if ((mb->flags & 4) && mb->cmdline) {
			const char *s = (const char *)(u64)mb->cmdline;
			size_t i = 0;
			for (; s[i] && i + 1 < sizeof(cmdline); i++)
				cmdline[i] = s[i];
			cmdline[i] = 0;
		}
		mem_top = mb_mem_top(mb);
	}
	rt_printf("ROAM-GUEST kernel=%s cmdline=\"%s\"\n", rt_kernel_name, cmdline);
	if (magic != 0x2BADB002)
		rt_panic("bad multiboot magic %#x in EAX", magic);
	u64 m = rt_opt_u64("mem", 0);
	if (m)
		mem_top = m;
	if (!mem_top)
		rt_panic("no memory size in the multiboot info (flags %#x)", mb->flags);
	rt_mem_init(mem_top);
	rt_cpu_init_bsp();
	test_main();
	rt_finish();
}

const char *rt_cmdline(void) { return cmdline; }
u64 rt_mem_top(void) { return mem_top; }

/* Finds key=value (or a bare key) among space-separated words. */
static const char *find_opt(const char *key, size_t *vlen)
{
	size_t kl = strlen(key);
	const char *p = cmdline;
	while (*p) {
		while (*p == ' ')
			p++;
		const char *w = p;
		while (*p && *p != ' ')
			p++;
		if ((size_t)(p - w) >= kl && !strncmp(w, key, kl)) {
			if (w + kl == p) {
				*vlen = 0;
				return "1";
			}
			if (w[kl] == '=') {
				*vlen = p - (w + kl + 1);
				return w + kl + 1;
			}
		}
	}
	return NULL;
}

bool rt_opt(const char *key, char *buf, size_t n)
{
	size_t l;
	const char *v = find_opt(key, &l);
	if (!v)
		return false;
	if (v[0] == '1' && l == 0)
		l = 1;
	if (l >= n)
		l = n - 1;
	memcpy(buf, v, l);
	buf[l] = 0;
	return true;
}

u64 rt_opt_u64(const char *key, u64 dflt)
{
	char buf[32];
	if (!rt_opt(key, buf, sizeof(buf)) || !buf[0])
		return dflt;
	return rt_strtou64(buf, NULL);
}

/* Is name in the comma-separated list of option key? Entries ending in '*'
 * match prefixes. */
static bool in_list(const char *key, const char *name)
{
	char list[256];
	if (!rt_opt(key, list, sizeof(list)))
		return false;
	char *p = list;
	while (*p) {
		char *e = p;
		while (*e && *e != ',')
			e++;
		size_t l = e - p;
		if (l && p[l - 1] == '*') {
			if (!strncmp(name, p, l - 1))
				return true;
		} else if (l == strlen(name) && !strncmp(name, p, l)) {
			return true;
		}
		p = *e ? e + 1 : e;
	}
	return false;
}

bool rt_test_enabled(const char *name)
{
	char tmp[4];
	if (in_list("skip", name)) {
		rt_skip(name, "skipped by the command line");
		return false;
	}
	return !rt_opt("test", tmp, sizeof(tmp)) || in_list("test", name);
}
