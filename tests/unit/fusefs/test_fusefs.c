/* Unit tests for fusefs/: partition tables (MBR, EBR chains, GPT with its
 * CRCs and backup header) and reading an ext4 filesystem made by mke2fs -d
 * through the libext2fs io_manager. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "fusefs/guestfs.h"
#include "fusefs/parttable.h"
#include "tests/unit/test.h"

struct memdisk { uint8_t *p; uint64_t size; int fail_from; };

static ssize_t mem_pread(void *o, void *buf, size_t len, uint64_t off)
{
	struct memdisk *m = o;
	if (m->fail_from >= 0 && off + len > (uint64_t)m->fail_from)
		return -EBADMSG;
	if (off >= m->size)
		return 0;
	if (len > m->size - off)
		len = (size_t)(m->size - off);
	memcpy(buf, m->p + off, len);
	return (ssize_t)len;
}

static struct ffs_disk mkdisk(struct memdisk *m)
{
	return (struct ffs_disk){ m->size, mem_pread, m };
}

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }

static void mbr_entry(uint8_t *sector, int i, uint8_t type, uint32_t lba, uint32_t count)
{
	uint8_t *e = sector + 446 + 16 * i;
	e[4] = type;
	put32(e + 8, lba);
	put32(e + 12, count);
	sector[510] = 0x55;
	sector[511] = 0xaa;
}

static void mbr_and_logicals(void)
{
	struct memdisk m = { calloc(1, 64 << 20), 64 << 20, -1 };
	mbr_entry(m.p, 0, 0x83, 2048, 20480);
	mbr_entry(m.p, 1, 0x05, 40960, 40960);               /* extended */
	mbr_entry(m.p, 2, 0x83, 200000, 100);                 /* past the end */
	/* EBR 1 at 40960: logical at +2048, link to next EBR at ext+20480 */
	mbr_entry(m.p + 40960 * 512ULL, 0, 0x83, 2048, 4096);
	mbr_entry(m.p + 40960 * 512ULL, 1, 0x05, 20480, 20480);
	mbr_entry(m.p + (40960 + 20480) * 512ULL, 0, 0x82, 2048, 2048);
	struct ffs_disk d = mkdisk(&m);
	static struct ffs_parts r;
	CHECK_EQ(ffs_parse_parts(&d, &r), 0);
	CHECK_EQ(r.table, FFS_TABLE_MBR);
	CHECK_EQ(r.n, 3);
	CHECK_EQ(r.part[0].number, 1);
	CHECK_EQ(r.part[0].start, 2048 * 512ULL);
	CHECK_EQ(r.part[1].number, 5);
	CHECK_EQ(r.part[1].start, (40960 + 2048) * 512ULL);
	CHECK_EQ(r.part[2].number, 6);
	CHECK_EQ(r.part[2].start, (40960 + 20480 + 2048) * 512ULL);
	CHECK(strstr(r.note, "partition 3") != NULL);
	/* A chain that links back to itself ends instead of looping. */
	mbr_entry(m.p + (40960 + 20480) * 512ULL, 1, 0x05, 0, 20480);
	put32(m.p + (40960 + 20480) * 512ULL + 446 + 16 + 8, 0);
	mbr_entry(m.p + 40960 * 512ULL, 1, 0x05, 0, 1);      /* link to itself */
	put32(m.p + 40960 * 512ULL + 446 + 16 + 8, 0);
	CHECK_EQ(ffs_parse_parts(&d, &r), 0);
	CHECK_EQ(r.n, 2);
	free(m.p);
}

static void gpt_write(uint8_t *disk, uint64_t size, uint64_t hdr_lba, uint64_t entries_lba,
		      uint32_t n, uint64_t first[], uint64_t last[])
{
	uint8_t *ents = disk + entries_lba * 512;
	memset(ents, 0, 128 * 128);
	for (uint32_t i = 0; i < n; i++) {
		ents[128 * i] = 0xaf;                      /* any non-zero type GUID */
		ents[128 * i + 16] = (uint8_t)i + 1;
		put64(ents + 128 * i + 32, first[i]);
		put64(ents + 128 * i + 40, last[i]);
	}
	uint8_t *h = disk + hdr_lba * 512;
	memset(h, 0, 512);
	memcpy(h, "EFI PART", 8);
	put32(h + 8, 0x10000);
	put32(h + 12, 92);
	put64(h + 24, hdr_lba);
	put64(h + 72, entries_lba);
	put32(h + 80, 128);
	put32(h + 84, 128);
	put32(h + 88, (uint32_t)crc32(0, ents, 128 * 128));
	put32(h + 16, (uint32_t)crc32(0, h, 92));
	(void)size;
}

static void gpt_tables(void)
{
	uint64_t size = 64 << 20;
	struct memdisk m = { calloc(1, size), size, -1 };
	mbr_entry(m.p, 0, 0xee, 1, (uint32_t)(size / 512 - 1));
	uint64_t first[] = { 2048, 10240, 1ULL << 40 }, last[] = { 10239, 20479, (1ULL << 40) + 5 };
	gpt_write(m.p, size, 1, 2, 3, first, last);
	gpt_write(m.p, size, size / 512 - 1, size / 512 - 33, 3, first, last);
	struct ffs_disk d = mkdisk(&m);
	static struct ffs_parts r;
	CHECK_EQ(ffs_parse_parts(&d, &r), 0);
	CHECK_EQ(r.table, FFS_TABLE_GPT);
	CHECK_EQ(r.n, 2);
	CHECK_EQ(r.part[1].number, 2);
	CHECK_EQ(r.part[1].start, 10240 * 512ULL);
	CHECK_EQ(r.part[1].size, 10240 * 512ULL);
	CHECK(strstr(r.note, "entry 3") != NULL);
	/* Damage the primary header: the backup is used. */
	m.p[512 + 40] ^= 1;
	CHECK_EQ(ffs_parse_parts(&d, &r), 0);
	CHECK_EQ(r.n, 2);
	CHECK(strstr(r.note, "backup") != NULL);
	/* Damage the backup's entries too: a clear error. */
	m.p[(size / 512 - 33) * 512 + 40] ^= 1;
	CHECK_EQ(ffs_parse_parts(&d, &r), -EINVAL);
	CHECK(strstr(r.note, "no valid GPT") != NULL);
	free(m.p);
}

static void random_tables_do_not_crash(void)
{
	struct memdisk m = { malloc(1 << 20), 1 << 20, -1 };
	srand(7);
	static struct ffs_parts r;
	for (int i = 0; i < 2000; i++) {
		for (int j = 0; j < 8192; j++)
			m.p[j] = (uint8_t)rand();
		m.p[510] = 0x55;
		m.p[511] = 0xaa;
		for (int k = 0; k < 4; k++)
			m.p[446 + 16 * k] = 0;
		if (i & 1)
			m.p[446 + 4] = 0xee;
		struct ffs_disk d = mkdisk(&m);
		int rc = ffs_parse_parts(&d, &r);
		CHECK(rc == 0 || rc == -EINVAL);
		CHECK(r.n >= 0 && r.n <= FFS_MAX_PARTS);
	}
	free(m.p);
}

/* --- ext4 through libext2fs ---------------------------------------------- */

static char dir[] = "/tmp/roam-ffs-XXXXXX";
static struct memdisk img = { NULL, 0, -1 };

static int sh(const char *cmd)
{
	int rc = system(cmd);
	return rc == 0 ? 0 : -1;
}

static int make_image(void)
{
	if (!mkdtemp(dir))
		return -1;
	char cmd[4096];
	snprintf(cmd, sizeof(cmd),
		 "set -e; cd %s; mkdir -p src/etc src/big src/d; echo roam-guest > src/etc/hostname;"
		 "printf 'hello\\n' > src/a.txt; chmod 640 src/a.txt; ln src/a.txt src/hard.txt;"
		 "ln -s /etc/hostname src/link; ln -s $(printf 'x%%.0s' $(seq 1 100)) src/longlink;"
		 "truncate -s 10M src/big/sparse; printf tail >> src/big/sparse;"
		 "for i in $(seq 1 300); do echo $i > src/d/f$i; done;"
		 "head -c 300000 /dev/urandom > src/big/rand;"
		 "mke2fs -q -t ext4 -d src -b 4096 fs.img 32M", dir);
	if (sh(cmd))
		return -1;
	char path[256];
	snprintf(path, sizeof(path), "%s/fs.img", dir);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	struct stat st;
	fstat(fd, &st);
	img.size = (uint64_t)st.st_size;
	img.p = malloc(img.size);
	if (!img.p || pread(fd, img.p, img.size, 0) != (ssize_t)img.size)
		return -1;
	close(fd);
	return 0;
}

static int count_entry(void *arg, const char *name, uint64_t ino, unsigned dtype)
{
	(*(int *)arg)++;
	return 0;
}

static void ext4_files(void)
{
	struct ffs_disk d = mkdisk(&img);
	struct ffs_fs *fs;
	char err[200];
	CHECK_EQ(ffs_fs_open(&d, 0, img.size, &fs, err, sizeof(err)), 0);
	uint64_t ino;
	struct ffs_stat st;
	char buf[4096];
	CHECK_EQ(ffs_fs_lookup(fs, "/etc/hostname", 0, &ino), 0);
	CHECK_EQ(ffs_fs_read(fs, ino, buf, sizeof(buf), 0), 11);
	CHECK(!memcmp(buf, "roam-guest\n", 11));
	CHECK_EQ(ffs_fs_lookup(fs, "/a.txt", 0, &ino), 0);
	CHECK_EQ(ffs_fs_stat(fs, ino, &st), 0);
	CHECK_EQ(st.mode & 07777, 0640);
	CHECK_EQ(st.nlink, 2);
	CHECK_EQ(ffs_fs_lookup(fs, "/link", 0, &ino), 0);
	CHECK_EQ(ffs_fs_readlink(fs, ino, buf, sizeof(buf)), 0);
	CHECK(!strcmp(buf, "/etc/hostname"));
	CHECK_EQ(ffs_fs_lookup(fs, "/link", 1, &ino), 0);      /* follows inside the guest */
	CHECK_EQ(ffs_fs_read(fs, ino, buf, 4, 0), 4);
	CHECK_EQ(ffs_fs_lookup(fs, "/longlink", 0, &ino), 0);
	CHECK_EQ(ffs_fs_readlink(fs, ino, buf, sizeof(buf)), 0);
	CHECK_EQ(strlen(buf), 100);
	CHECK_EQ(ffs_fs_readlink(fs, ino, buf, 50), -ENAMETOOLONG);
	CHECK_EQ(ffs_fs_lookup(fs, "/big/sparse", 0, &ino), 0);
	CHECK_EQ(ffs_fs_stat(fs, ino, &st), 0);
	CHECK_EQ(st.size, (10 << 20) + 4);
	CHECK(st.blocks <= 16);                                 /* the hole is not allocated */
	CHECK_EQ(ffs_fs_read(fs, ino, buf, 8, 5 << 20), 8);
	CHECK_EQ(buf[0] | buf[7], 0);
	CHECK_EQ(ffs_fs_read(fs, ino, buf, 100, 10 << 20), 4);
	CHECK(!memcmp(buf, "tail", 4));
	CHECK_EQ(ffs_fs_read(fs, ino, buf, 100, 20 << 20), 0);
	CHECK_EQ(ffs_fs_lookup(fs, "/d", 0, &ino), 0);
	int n = 0;
	CHECK_EQ(ffs_fs_readdir(fs, ino, count_entry, &n), 0);
	CHECK_EQ(n, 300);
	CHECK_EQ(ffs_fs_lookup_at(fs, ino, "f123", &ino), 0);
	CHECK_EQ(ffs_fs_read(fs, ino, buf, 10, 0), 4);
	CHECK_EQ(ffs_fs_lookup(fs, "/nope", 0, &ino), -ENOENT);
	CHECK_EQ(ffs_fs_lookup(fs, "/a.txt/x", 0, &ino), -ENOTDIR);
	CHECK_EQ(ffs_fs_stat(fs, 1ULL << 40, &st), -ENOENT);
	ffs_fs_free(fs);
	ffs_fs_free(NULL);
}

static void ext4_damage(void)
{
	char err[200];
	struct ffs_fs *fs;
	/* Reads past a point fail (a corrupt chunk in the store): files there
	 * give -EIO, the rest still reads. */
	struct memdisk bad = img;
	struct ffs_disk d = mkdisk(&bad);
	CHECK_EQ(ffs_fs_open(&d, 0, img.size, &fs, err, sizeof(err)), 0);
	uint64_t ino;
	CHECK_EQ(ffs_fs_lookup(fs, "/big/rand", 0, &ino), 0);
	bad.fail_from = 0;                                      /* everything now fails */
	char buf[4096];
	ssize_t n = ffs_fs_read(fs, ino, buf, sizeof(buf), 100000);
	CHECK(n == -EIO);
	bad.fail_from = -1;
	ffs_fs_free(fs);
	/* A truncated disk: the superblock is there, the rest is not. Opening
	 * may work; reading what is gone is an I/O error. */
	struct memdisk trunc = { img.p, 8192, -1 };
	d = mkdisk(&trunc);
	if (ffs_fs_open(&d, 0, trunc.size, &fs, err, sizeof(err)) == 0) {
		int rc = ffs_fs_lookup(fs, "/etc/hostname", 0, &ino);
		CHECK(rc == -EIO || rc == -ENOENT);
		ffs_fs_free(fs);
	}
	/* Wiped superblock magic: not an ext filesystem. */
	uint8_t *copy = malloc(img.size);
	memcpy(copy, img.p, img.size);
	copy[1024 + 56] = 0;
	struct memdisk wiped = { copy, img.size, -1 };
	d = mkdisk(&wiped);
	CHECK_EQ(ffs_fs_open(&d, 0, img.size, &fs, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "no ext2/3/4") != NULL);
	/* Garbage group descriptors: refused with a clear reason. */
	memcpy(copy, img.p, img.size);
	memset(copy + 4096, 0xa5, 4096);
	CHECK(ffs_fs_open(&d, 0, img.size, &fs, err, sizeof(err)) < 0 || (ffs_fs_free(fs), 1));
	free(copy);
}

int main(void)
{
	TEST(mbr_and_logicals);
	TEST(gpt_tables);
	TEST(random_tables_do_not_crash);
	if (make_image() == 0) {
		TEST(ext4_files);
		TEST(ext4_damage);
	} else {
		printf("FAIL: make_image: mke2fs -d failed\n");
		test_failures++;
	}
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {}
	free(img.p);
	TEST_EXIT();
}
