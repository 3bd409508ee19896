/*
 * test_store.c - the LMDB store: record layouts pinned by byte vectors,
 * decoders that refuse damaged bytes, peers/names, entries, manifests, the
 * block cache's LRU and its cache files, transactions, the schema check,
 * and a writer killed with SIGKILL mid-transaction.
 */
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/log.h"
#include "buddyfs/store.h"

/* ---- helpers ---- */

static char home[64];

static void home_new(void)
{
	snprintf(home, sizeof(home), "/tmp/bfs-test-store-XXXXXX");
	if (!mkdtemp(home)) {
		perror("mkdtemp");
		exit(1);
	}
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* home_rm - the home and all in it (the store, the cache files). */
static void home_rm(void)
{
	nftw(home, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fill(uint8_t *p, size_t n, uint8_t v)
{
	memset(p, v, n);
}

static void peer_init(struct store_peer *p, uint8_t id_byte, const char *name)
{
	memset(p, 0, sizeof(*p));
	fill(p->id, sizeof(p->id), id_byte);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->cert_len = 33;
	p->cert[0] = 1;
	fill(p->cert + 1, 32, id_byte);
	p->buddy = STORE_BUDDY_ADDED;
}

static void entry_init(struct store_entry *e, const uint8_t *buddy, const char *path, uint8_t type)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->buddy, buddy, STORE_PEER_ID_BYTES);
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->type = type;
	e->mode = type == STORE_ENTRY_DIR ? 0755 : 0644;
	e->size = strlen(path);
	e->mtime_ns = 1700000000123456789LL;
	e->version = 1;
}

/* A peer with two addresses: the pinned vector below is its encoding. */
static void vector_peer(struct store_peer *p)
{
	memset(p, 0, sizeof(*p));
	for (int i = 0; i < 32; i++)
		p->id[i] = (uint8_t)(i + 1);
	strcpy(p->name, "bob");
	p->cert_len = 3;
	p->cert[0] = 1;
	p->cert[1] = 2;
	p->cert[2] = 3;
	p->buddy = STORE_BUDDY_ADDED;
	p->mutual = true;
	p->added = 1700000000;
	p->last_seen = 1700003840;
	p->n_addrs = 2;
	p->addrs[0] = (struct store_addr){ .kind = STORE_ADDR_LOCAL, .family = 4, .port = 1935,
					   .addr = { 192, 168, 1, 2 } };
	p->addrs[1] = (struct store_addr){ .kind = STORE_ADDR_OBSERVED, .family = 6, .port = 443,
					   .addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } };
}

static const char PEER_HEX[] =
	"01"                                                               /* version */
	"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" /* id */
	"03 626f62"                                                        /* name */
	"0003 010203"                                                      /* cert */
	"01 01"                                                            /* added, mutual */
	"000000006553f100 0000000065540000"                                /* added, last seen */
	"02"                                                               /* addresses */
	"01 04 078f c0a80102"
	"02 06 01bb 20010db8000000000000000000000001";

static void vector_entry(struct store_entry *e)
{
	memset(e, 0, sizeof(*e));
	strcpy(e->path, "docs/a.txt");
	e->type = STORE_ENTRY_FILE;
	e->deleted = true;
	e->mode = 0644;
	e->size = 1000;
	e->mtime_ns = -1500000000123456789LL;
	fill(e->owner, 32, 0x21);
	e->version = 7;
	fill(e->manifest, 32, 0xab);
}

static const char ENTRY_HEX[] =
	"01 01 01"                                                         /* version, file, deleted */
	"000001a4 00000000000003e8 eb2eedf27d8e32eb"                       /* mode, size, mtime */
	"2121212121212121212121212121212121212121212121212121212121212121" /* owner */
	"0000000000000007"                                                 /* version */
	"abababababababababababababababababababababababababababababababab" /* manifest */
	"000a 646f63732f612e747874";                                       /* path */

static const char BLOCK_LOCAL_HEX[] = "01 01 0009 61622f63642e6f626a 0000000000040000 000003e8";
static const char BLOCK_CACHED_HEX[] = "01 02 00000003 78797a";
static const char BLOCK_CACHED_FILE_HEX[] = "02 03 00040000";

/* ---- codecs ---- */

T_CASE(peer_codec_vector)
{
	uint8_t want[256], got[STORE_PEER_RECORD_MAX_BYTES];
	struct store_peer p, q;
	size_t n = t_unhex(want, sizeof(want), PEER_HEX);
	long len;

	vector_peer(&p);
	len = store_peer_encode(got, sizeof(got), &p);
	T_CHECK_EQ_INT(len, 89);
	T_CHECK_EQ_INT(n, 89);
	T_CHECK_MEM(got, want, n);
	T_CHECK_EQ_INT(store_peer_decode(&q, want, n), 0);
	T_CHECK(memcmp(q.id, p.id, 32) == 0 && strcmp(q.name, "bob") == 0);
	T_CHECK(q.cert_len == 3 && q.buddy == STORE_BUDDY_ADDED && q.mutual);
	T_CHECK(q.added == p.added && q.last_seen == p.last_seen && q.n_addrs == 2);
	T_CHECK(memcmp(&q.addrs[0], &p.addrs[0], sizeof(p.addrs[0])) == 0);
	T_CHECK(memcmp(&q.addrs[1], &p.addrs[1], sizeof(p.addrs[1])) == 0);
	T_CHECK_EQ_INT(store_peer_encode(got, 88, &p), -ENOSPC);
	/* the largest record fits the advertised buffer */
	memset(p.name, 'n', STORE_NAME_MAX);
	p.cert_len = STORE_CERT_MAX_BYTES;
	p.n_addrs = STORE_PEER_ADDRS_MAX;
	for (size_t i = 0; i < p.n_addrs; i++)
		p.addrs[i] = p.addrs[1];
	T_CHECK_EQ_INT(store_peer_encode(got, sizeof(got), &p), STORE_PEER_RECORD_MAX_BYTES);
	p.n_addrs = STORE_PEER_ADDRS_MAX + 1;
	T_CHECK_EQ_INT(store_peer_encode(got, sizeof(got), &p), -EINVAL);
}

T_CASE(entry_codec_vector)
{
	uint8_t want[256], got[STORE_ENTRY_RECORD_MAX_BYTES];
	struct store_entry *e = calloc(2, sizeof(*e));
	size_t n = t_unhex(want, sizeof(want), ENTRY_HEX);
	long len;

	T_CHECK(e != NULL);
	vector_entry(&e[0]);
	len = store_entry_encode(got, sizeof(got), &e[0]);
	T_CHECK_EQ_INT(n, 107);
	if (len != 107 || memcmp(got, want, n) != 0 || store_entry_decode(&e[1], want, n) != 0 ||
	    memcmp(&e[0], &e[1], sizeof(e[0])) != 0) {
		free(e);
		T_FAIL("entry vector does not round-trip (len %ld)", len);
	}
	/* the longest path fits the advertised buffer */
	memset(e[0].path, 'p', STORE_PATH_MAX);
	for (size_t i = 200; i < STORE_PATH_MAX; i += 200)
		e[0].path[i] = '/';
	len = store_entry_encode(got, sizeof(got), &e[0]);
	T_CHECK_EQ_INT(len, STORE_ENTRY_RECORD_MAX_BYTES - 8);
	e[0].has_base = true;
	len = store_entry_encode(got, sizeof(got), &e[0]);
	free(e);
	T_CHECK_EQ_INT(len, STORE_ENTRY_RECORD_MAX_BYTES);
}

/* An entry with the base of its write: record version 2, the base after the path. */
T_CASE(entry_codec_base)
{
	uint8_t want[256], got[STORE_ENTRY_RECORD_MAX_BYTES];
	struct store_entry *e = calloc(2, sizeof(*e));
	size_t n = t_unhex(want, sizeof(want), ENTRY_HEX);
	long len;

	T_CHECK(e != NULL);
	/* a version 1 record still decodes, without a base */
	if (store_entry_decode(&e[1], want, n) != 0 || e[1].has_base) {
		free(e);
		T_FAIL("version 1 entry record not read as before");
	}
	vector_entry(&e[0]);
	e[0].has_base = true;
	e[0].base = 0x0102030405060708ull;
	len = store_entry_encode(got, sizeof(got), &e[0]);
	if (len != 115 || got[0] != 2 || memcmp(got + 1, want + 1, 106) != 0 ||
	    buf_load64_be(got + 107) != e[0].base || store_entry_decode(&e[1], got, (size_t)len) != 0 ||
	    memcmp(&e[0], &e[1], sizeof(e[0])) != 0) {
		free(e);
		T_FAIL("entry with base does not round-trip (len %ld)", len);
	}
	/* a version 2 record without its base, or with bytes after it, is damaged */
	T_CHECK_EQ_INT(store_entry_decode(&e[1], got, (size_t)len - 1), BFS_EMALFORMED);
	got[0] = 1;
	T_CHECK_EQ_INT(store_entry_decode(&e[1], got, (size_t)len), BFS_EMALFORMED);
	got[0] = 3;
	T_CHECK_EQ_INT(store_entry_decode(&e[1], got, (size_t)len), BFS_EVERSION);
	free(e);
}

/* synced records: codec and the put/get/del of one (buddy, path). */
T_CASE(synced_records)
{
	struct store_synced v = { .vv = { 3, 0xffffffffffffffffull }, .version = 42 }, got;
	uint8_t rec[STORE_SYNCED_RECORD_BYTES + 1], buddy[STORE_PEER_ID_BYTES];
	struct store *s = NULL;
	struct store_txn *t;

	memset(v.digest, 0xab, sizeof(v.digest));
	memset(buddy, 7, sizeof(buddy));
	T_CHECK_EQ_INT(store_synced_encode(rec, sizeof(rec), &v), STORE_SYNCED_RECORD_BYTES);
	T_CHECK_EQ_INT(rec[0], 1);
	T_CHECK_EQ_INT(store_synced_decode(&got, rec, STORE_SYNCED_RECORD_BYTES), 0);
	T_CHECK(memcmp(&got, &v, sizeof(v)) == 0);
	T_CHECK_EQ_INT(store_synced_decode(&got, rec, STORE_SYNCED_RECORD_BYTES - 1), BFS_EMALFORMED);
	T_CHECK_EQ_INT(store_synced_decode(&got, rec, STORE_SYNCED_RECORD_BYTES + 1), BFS_EMALFORMED);
	T_CHECK_EQ_INT(store_synced_encode(rec, STORE_SYNCED_RECORD_BYTES - 1, &v), -ENOSPC);
	rec[0] = 2;
	T_CHECK_EQ_INT(store_synced_decode(&got, rec, STORE_SYNCED_RECORD_BYTES), BFS_EVERSION);

	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	T_CHECK_EQ_INT(store_synced_get(s, NULL, buddy, "a/b", &got), -ENOENT);
	T_CHECK_EQ_INT(store_synced_put(s, NULL, buddy, "a/../b", &v), BFS_EBADNAME);
	T_CHECK_EQ_INT(store_synced_put(s, NULL, buddy, "a/b", &v), 0);
	T_CHECK_EQ_INT(store_synced_get(s, NULL, buddy, "a/b", &got), 0);
	T_CHECK(memcmp(&got, &v, sizeof(v)) == 0);
	/* inside a transaction, with an entry: both or neither */
	T_CHECK_EQ_INT(store_txn_begin(s, &t), 0);
	v.version = 43;
	T_CHECK_EQ_INT(store_synced_put(s, t, buddy, "a/b", &v), 0);
	store_txn_abort(t);
	T_CHECK_EQ_INT(store_synced_get(s, NULL, buddy, "a/b", &got), 0);
	T_CHECK(got.version == 42);
	T_CHECK_EQ_INT(store_synced_del(s, NULL, buddy, "a/b"), 0);
	T_CHECK_EQ_INT(store_synced_del(s, NULL, buddy, "a/b"), -ENOENT);
	store_close(s);
	home_rm();
}

T_CASE(block_and_name_codec_vectors)
{
	uint8_t want[64], got[STORE_BLOCK_LOCAL_RECORD_MAX_BYTES], id[32], id2[32];
	struct store_block b = { .kind = STORE_BLOCK_LOCAL, .offset = 262144, .length = 1000 }, c;
	size_t n;

	strcpy(b.object, "ab/cd.obj");
	n = t_unhex(want, sizeof(want), BLOCK_LOCAL_HEX);
	T_CHECK_EQ_INT(store_block_encode(got, sizeof(got), &b), (long)n);
	T_CHECK_MEM(got, want, n);
	T_CHECK_EQ_INT(store_block_decode(&c, want, n), 0);
	T_CHECK(c.kind == STORE_BLOCK_LOCAL && strcmp(c.object, "ab/cd.obj") == 0);
	T_CHECK(c.offset == 262144 && c.length == 1000 && c.data == NULL);

	b = (struct store_block){ .kind = STORE_BLOCK_CACHED, .length = 3, .data = (const uint8_t *)"xyz" };
	n = t_unhex(want, sizeof(want), BLOCK_CACHED_HEX);
	T_CHECK_EQ_INT(store_block_encode(got, sizeof(got), &b), (long)n);
	T_CHECK_MEM(got, want, n);
	T_CHECK_EQ_INT(store_block_decode(&c, want, n), 0);
	T_CHECK(c.kind == STORE_BLOCK_CACHED && c.length == 3 && c.data == want + 6);

	b = (struct store_block){ .kind = STORE_BLOCK_CACHED_FILE, .length = 262144 };
	n = t_unhex(want, sizeof(want), BLOCK_CACHED_FILE_HEX);
	T_CHECK_EQ_INT(n, STORE_BLOCK_CACHED_FILE_RECORD_BYTES);
	T_CHECK_EQ_INT(store_block_encode(got, sizeof(got), &b), (long)n);
	T_CHECK_MEM(got, want, n);
	T_CHECK_EQ_INT(store_block_decode(&c, want, n), 0);
	T_CHECK(c.kind == STORE_BLOCK_CACHED_FILE && c.length == 262144 && c.data == NULL);

	fill(id, 32, 0x5a);
	T_CHECK_EQ_INT(store_name_encode(got, sizeof(got), id), STORE_NAME_RECORD_BYTES);
	T_CHECK(got[0] == 1 && got[1] == 0x5a && got[32] == 0x5a);
	T_CHECK_EQ_INT(store_name_decode(id2, got, 33), 0);
	T_CHECK_MEM(id, id2, 32);
	T_CHECK_EQ_INT(store_name_decode(id2, got, 32), BFS_EMALFORMED);
	T_CHECK_EQ_INT(store_name_decode(id2, got, 34), BFS_EMALFORMED);
	got[0] = 2;
	T_CHECK_EQ_INT(store_name_decode(id2, got, 33), BFS_EVERSION);
}

/* expect - decode @hex after poking @val at @off (-1: none); want @rc. */
static int peer_try(const char *hex, long off, uint8_t v, size_t extra)
{
	uint8_t b[256] = { 0 };
	struct store_peer p;
	size_t n = t_unhex(b, sizeof(b), hex);

	if (off >= 0)
		b[off] = v;
	return store_peer_decode(&p, b, n + extra);
}

static int entry_try(long off, uint8_t v, size_t extra)
{
	uint8_t b[256] = { 0 };
	struct store_entry *e = malloc(sizeof(*e));
	size_t n = t_unhex(b, sizeof(b), ENTRY_HEX);
	int rc;

	if (off >= 0)
		b[off] = v;
	rc = store_entry_decode(e, b, n + extra);
	free(e);
	return rc;
}

T_CASE(decoders_reject_damage)
{
	uint8_t b[256];
	struct store_peer p;
	struct store_entry *e = malloc(sizeof(*e));
	struct store_block blk;
	size_t n;
	int bad = 0;

	T_CHECK(e != NULL);
	/* every truncation of every record, and one trailing byte */
	n = t_unhex(b, sizeof(b), PEER_HEX);
	for (size_t i = 0; i < n; i++)
		bad += store_peer_decode(&p, b, i) != BFS_EMALFORMED;
	n = t_unhex(b, sizeof(b), ENTRY_HEX);
	for (size_t i = 0; i < n; i++)
		bad += store_entry_decode(e, b, i) != BFS_EMALFORMED;
	n = t_unhex(b, sizeof(b), BLOCK_LOCAL_HEX);
	for (size_t i = 0; i < n; i++)
		bad += store_block_decode(&blk, b, i) != BFS_EMALFORMED;
	n = t_unhex(b, sizeof(b), BLOCK_CACHED_HEX);
	for (size_t i = 0; i < n; i++)
		bad += store_block_decode(&blk, b, i) != BFS_EMALFORMED;
	bad += store_block_decode(&blk, b, n + 1) != BFS_EMALFORMED;
	n = t_unhex(b, sizeof(b), BLOCK_LOCAL_HEX);
	b[n - 4] = 0x40; /* length 0x400003e8: over STORE_BLOCK_MAX_BYTES (found by fuzz_store) */
	bad += store_block_decode(&blk, b, n) != BFS_EMALFORMED;
	b[n - 4] = 0;
	b[n - 1] = 0;
	b[n - 2] = 0; /* length 0 */
	bad += store_block_decode(&blk, b, n) != BFS_EMALFORMED;
	n = t_unhex(b, sizeof(b), BLOCK_CACHED_HEX);
	b[1] = 3; /* unknown kind */
	bad += store_block_decode(&blk, b, n) != BFS_EMALFORMED;
	b[1] = 2;
	b[0] = 9;
	bad += store_block_decode(&blk, b, n) != BFS_EVERSION;
	n = t_unhex(b, sizeof(b), BLOCK_CACHED_FILE_HEX);
	for (size_t i = 0; i < n; i++)
		bad += store_block_decode(&blk, b, i) != BFS_EMALFORMED;
	bad += store_block_decode(&blk, b, n + 1) != BFS_EMALFORMED;
	b[1] = 2; /* version 2 holds file-backed blocks only */
	bad += store_block_decode(&blk, b, n) != BFS_EMALFORMED;
	b[1] = 1;
	bad += store_block_decode(&blk, b, n) != BFS_EMALFORMED;
	b[1] = 3;
	b[2] = 0x40; /* over STORE_BLOCK_MAX_BYTES */
	bad += store_block_decode(&blk, b, n) != BFS_EMALFORMED;
	memset(b + 2, 0, 4); /* length 0 */
	bad += store_block_decode(&blk, b, n) != BFS_EMALFORMED;
	b[0] = 3;
	bad += store_block_decode(&blk, b, n) != BFS_EVERSION;
	n = t_unhex(b, sizeof(b), BLOCK_CACHED_FILE_HEX);
	b[0] = 1; /* version 1 knows no kind 3 */
	bad += store_block_decode(&blk, b, n) != BFS_EMALFORMED;
	free(e);
	T_CHECK_EQ_INT(bad, 0);

	T_CHECK_EQ_INT(peer_try(PEER_HEX, -1, 0, 0), 0);
	T_CHECK_EQ_INT(peer_try(PEER_HEX, -1, 0, 1), BFS_EMALFORMED); /* trailing */
	T_CHECK_EQ_INT(peer_try(PEER_HEX, 0, 2, 0), BFS_EVERSION);
	T_CHECK_EQ_INT(peer_try(PEER_HEX, 33, 33, 0), BFS_EMALFORMED); /* name length */
	T_CHECK_EQ_INT(peer_try(PEER_HEX, 35, 0, 0), BFS_EMALFORMED);  /* NUL in name */
	T_CHECK_EQ_INT(peer_try(PEER_HEX, 37, 0x81, 0), BFS_EMALFORMED); /* cert length */
	T_CHECK_EQ_INT(peer_try(PEER_HEX, 42, 2, 0), BFS_EMALFORMED);  /* buddy state */
	T_CHECK_EQ_INT(peer_try(PEER_HEX, 43, 3, 0), BFS_EMALFORMED);  /* flag bits */
	T_CHECK_EQ_INT(peer_try(PEER_HEX, 60, 9, 0), BFS_EMALFORMED);  /* address count */
	T_CHECK_EQ_INT(peer_try(PEER_HEX, 61, 3, 0), BFS_EMALFORMED);  /* address kind */
	T_CHECK_EQ_INT(peer_try(PEER_HEX, 62, 5, 0), BFS_EMALFORMED);  /* address family */

	T_CHECK_EQ_INT(entry_try(-1, 0, 0), 0);
	T_CHECK_EQ_INT(entry_try(-1, 0, 1), BFS_EMALFORMED);
	T_CHECK_EQ_INT(entry_try(0, 0, 0), BFS_EVERSION);
	T_CHECK_EQ_INT(entry_try(1, 3, 0), BFS_EMALFORMED);    /* type */
	T_CHECK_EQ_INT(entry_try(2, 2, 0), BFS_EMALFORMED);    /* flag bits */
	T_CHECK_EQ_INT(entry_try(4, 0x10, 0), BFS_EMALFORMED); /* mode over 07777 */
	T_CHECK_EQ_INT(entry_try(96, 0xff, 0), BFS_EMALFORMED); /* path length */
	T_CHECK_EQ_INT(entry_try(97, '/', 0), BFS_EMALFORMED);  /* "/ocs/a.txt" */
	T_CHECK_EQ_INT(entry_try(102, '/', 0), BFS_EMALFORMED); /* "docs//.txt" */
	T_CHECK_EQ_INT(entry_try(106, 0, 0), BFS_EMALFORMED);   /* NUL in path */
}

T_CASE(path_rules)
{
	static const char *const bad[] = { "", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "a/.." };
	static const char *const good[] = { "a", "a/b", ".a", "..a", "a.", "a/...", "x y/z" };
	char longname[300];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		T_CHECK_EQ_INT(store_path_check(bad[i]), BFS_EBADNAME);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		T_CHECK_EQ_INT(store_path_check(good[i]), 0);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[STORE_FILE_NAME_MAX] = '\0';
	T_CHECK_EQ_INT(store_path_check(longname), 0);
	longname[STORE_FILE_NAME_MAX] = 'x';
	longname[STORE_FILE_NAME_MAX + 1] = '\0';
	T_CHECK_EQ_INT(store_path_check(longname), BFS_EBADNAME);
}

/* ---- peers and names ---- */

static int count_peer(void *ctx, const struct store_peer *p)
{
	(void)p;
	(*(int *)ctx)++;
	return 0;
}

T_CASE(peers_and_names)
{
	struct store *s;
	struct store_peer a, b, got;
	int n = 0;

	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	peer_init(&a, 0xa1, "alice");
	peer_init(&b, 0xb2, "alice");
	T_CHECK_EQ_INT(store_peer_put(s, &a), 0);
	T_CHECK_EQ_INT(store_peer_get(s, a.id, &got), 0);
	T_CHECK(strcmp(got.name, "alice") == 0 && got.cert_len == 33);
	T_CHECK_EQ_INT(store_peer_by_name(s, "alice", &got), 0);
	T_CHECK_MEM(got.id, a.id, 32);
	T_CHECK_EQ_INT(store_peer_put(s, &b), -EEXIST); /* name taken */
	T_CHECK_EQ_INT(store_peer_get(s, b.id, &got), -ENOENT);
	T_CHECK_EQ_INT(store_peer_put(s, &a), 0);       /* same id, same name */
	strcpy(a.name, "alicia");                       /* rename */
	T_CHECK_EQ_INT(store_peer_put(s, &a), 0);
	T_CHECK_EQ_INT(store_peer_by_name(s, "alice", &got), -ENOENT);
	T_CHECK_EQ_INT(store_peer_by_name(s, "alicia", &got), 0);
	T_CHECK_EQ_INT(store_peer_put(s, &b), 0);       /* the old name is free */
	T_CHECK_EQ_INT(store_peer_by_name(s, "alice", &got), 0);
	T_CHECK_MEM(got.id, b.id, 32);
	T_CHECK_EQ_INT(store_peer_foreach(s, count_peer, &n), 0);
	T_CHECK_EQ_INT(n, 2);
	a.name[0] = '\0';                               /* an empty name drops it */
	T_CHECK_EQ_INT(store_peer_put(s, &a), 0);
	T_CHECK_EQ_INT(store_peer_by_name(s, "alicia", &got), -ENOENT);
	T_CHECK_EQ_INT(store_peer_del(s, a.id), 0);
	T_CHECK_EQ_INT(store_peer_del(s, a.id), -ENOENT);
	T_CHECK_EQ_INT(store_peer_get(s, a.id, &got), -ENOENT);
	a.cert_len = STORE_CERT_MAX_BYTES + 1;
	T_CHECK_EQ_INT(store_peer_put(s, &a), -EINVAL);
	store_close(s);
	/* it is all still there after a reopen */
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	T_CHECK_EQ_INT(store_peer_by_name(s, "alice", &got), 0);
	T_CHECK_MEM(got.id, b.id, 32);
	T_CHECK_EQ_INT(store_peer_del(s, b.id), 0);
	T_CHECK_EQ_INT(store_peer_by_name(s, "alice", &got), -ENOENT);
	n = 0;
	T_CHECK_EQ_INT(store_peer_foreach(s, count_peer, &n), 0);
	T_CHECK_EQ_INT(n, 0);
	store_close(s);
	home_rm();
}

/* ---- entries ---- */

struct names {
	char buf[512];
	int n;
};

static int collect(void *ctx, const struct store_entry *e)
{
	struct names *c = ctx;
	size_t len = strlen(c->buf);

	snprintf(c->buf + len, sizeof(c->buf) - len, "%s%s%s", len ? " " : "", e->path, e->deleted ? "(x)" : "");
	c->n++;
	return 0;
}

static int stop_at_two(void *ctx, const struct store_entry *e)
{
	(void)e;
	return ++*(int *)ctx == 2 ? 42 : 0;
}

T_CASE(entries_list_one_directory)
{
	static const char *const files[] = { "a/x", "a/y", "a/sub/z", "b", "ab", "a.b" };
	static const char *const dirs[] = { "a", "a/sub" };
	uint8_t me[32], other[32];
	struct store *s;
	struct store_entry *e = malloc(2 * sizeof(*e));
	struct names c;
	int n = 0;

	T_CHECK(e != NULL);
	fill(me, 32, 0x11);
	fill(other, 32, 0x22);
	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		entry_init(e, me, files[i], STORE_ENTRY_FILE);
		T_CHECK_EQ_INT(store_entry_put(s, NULL, e), 0);
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		entry_init(e, me, dirs[i], STORE_ENTRY_DIR);
		T_CHECK_EQ_INT(store_entry_put(s, NULL, e), 0);
	}
	entry_init(e, other, "a/q", STORE_ENTRY_FILE);
	T_CHECK_EQ_INT(store_entry_put(s, NULL, e), 0);

	memset(&c, 0, sizeof(c));
	T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "a", NULL, collect, &c), 0);
	T_CHECK(strcmp(c.buf, "a/sub a/x a/y") == 0);
	memset(&c, 0, sizeof(c));
	T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "", NULL, collect, &c), 0);
	T_CHECK(strcmp(c.buf, "a a.b ab b") == 0);
	memset(&c, 0, sizeof(c));
	T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "a", "sub", collect, &c), 0);
	T_CHECK(strcmp(c.buf, "a/x a/y") == 0);
	memset(&c, 0, sizeof(c));
	T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "a/sub", NULL, collect, &c), 0);
	T_CHECK(strcmp(c.buf, "a/sub/z") == 0);
	memset(&c, 0, sizeof(c));
	T_CHECK_EQ_INT(store_entry_list(s, NULL, other, "a", NULL, collect, &c), 0);
	T_CHECK(strcmp(c.buf, "a/q") == 0);
	memset(&c, 0, sizeof(c));
	T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "nothing", NULL, collect, &c), 0);
	T_CHECK_EQ_INT(c.n, 0);
	memset(&c, 0, sizeof(c));
	T_CHECK_EQ_INT(store_entry_foreach(s, NULL, me, collect, &c), 0);
	T_CHECK_EQ_INT(c.n, 8);
	T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "a", NULL, stop_at_two, &n), 42);
	T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "/a", NULL, collect, &c), BFS_EBADNAME);
	T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "a", "x/y", collect, &c), BFS_EBADNAME);

	/* get, tombstone, delete */
	T_CHECK_EQ_INT(store_entry_get(s, NULL, me, "a/sub/z", &e[1]), 0);
	entry_init(e, me, "a/sub/z", STORE_ENTRY_FILE);
	T_CHECK(memcmp(e, &e[1], sizeof(*e)) == 0);
	e->deleted = true;
	e->version = 2;
	T_CHECK_EQ_INT(store_entry_put(s, NULL, e), 0);
	T_CHECK_EQ_INT(store_entry_get(s, NULL, me, "a/sub/z", &e[1]), 0);
	T_CHECK(e[1].deleted && e[1].version == 2);
	memset(&c, 0, sizeof(c));
	T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "a/sub", NULL, collect, &c), 0);
	T_CHECK(strcmp(c.buf, "a/sub/z(x)") == 0);
	T_CHECK_EQ_INT(store_entry_del(s, NULL, me, "a/sub/z"), 0);
	T_CHECK_EQ_INT(store_entry_del(s, NULL, me, "a/sub/z"), -ENOENT);
	T_CHECK_EQ_INT(store_entry_get(s, NULL, me, "a/sub/z", &e[1]), -ENOENT);
	T_CHECK_EQ_INT(store_entry_get(s, NULL, other, "a/x", &e[1]), -ENOENT);

	/* bad entries */
	entry_init(e, me, "a//b", STORE_ENTRY_FILE);
	T_CHECK_EQ_INT(store_entry_put(s, NULL, e), BFS_EBADNAME);
	entry_init(e, me, "c", 7);
	T_CHECK_EQ_INT(store_entry_put(s, NULL, e), -EINVAL);
	entry_init(e, me, "c", STORE_ENTRY_FILE);
	e->mode = 0100644;
	T_CHECK_EQ_INT(store_entry_put(s, NULL, e), -EINVAL);
	free(e);
	store_close(s);
	home_rm();
}

/* ---- transactions, manifests ---- */

T_CASE(txn_groups_changes)
{
	uint8_t me[32], h[32];
	struct store *s;
	struct store_txn *t, *t2;
	struct store_entry *e = malloc(sizeof(*e));
	struct store_peer p;
	struct store_block b;
	uint8_t *m;
	size_t mlen;

	T_CHECK(e != NULL);
	fill(me, 32, 0x11);
	fill(h, 32, 0x77);
	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);

	/* aborted: nothing stays */
	T_CHECK_EQ_INT(store_txn_begin(s, &t), 0);
	T_CHECK_EQ_INT(store_txn_begin(s, &t2), -EBUSY);
	entry_init(e, me, "f", STORE_ENTRY_FILE);
	T_CHECK_EQ_INT(store_entry_put(s, t, e), 0);
	T_CHECK_EQ_INT(store_manifest_put(s, t, h, (const uint8_t *)"manifest", 8), 0);
	T_CHECK_EQ_INT(store_block_local_put(s, t, h, "obj/1", 0, 100), 0);
	T_CHECK_EQ_INT(store_entry_get(s, NULL, me, "f", e), 0);   /* reads see it */
	T_CHECK_EQ_INT(store_entry_put(s, NULL, e), -EBUSY);       /* writes wait */
	peer_init(&p, 1, "x");
	T_CHECK_EQ_INT(store_peer_put(s, &p), -EBUSY);
	T_CHECK_EQ_INT(store_entry_del(s, t, me, "nope"), -ENOENT); /* a clean failure */
	store_txn_abort(t);
	T_CHECK_EQ_INT(store_entry_get(s, NULL, me, "f", e), -ENOENT);
	T_CHECK_EQ_INT(store_manifest_get(s, NULL, h, &m, &mlen), -ENOENT);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h, &b, NULL, 0), -ENOENT);

	/* committed: all of it */
	T_CHECK_EQ_INT(store_txn_begin(s, &t), 0);
	entry_init(e, me, "f", STORE_ENTRY_FILE);
	T_CHECK_EQ_INT(store_entry_put(s, t, e), 0);
	T_CHECK_EQ_INT(store_entry_del(s, t, me, "nope"), -ENOENT); /* does not spoil t */
	T_CHECK_EQ_INT(store_manifest_put(s, t, h, (const uint8_t *)"manifest", 8), 0);
	T_CHECK_EQ_INT(store_block_local_put(s, t, h, "obj/1", 4096, 100), 0);
	T_CHECK_EQ_INT(store_txn_commit(t), 0);
	T_CHECK_EQ_INT(store_entry_get(s, NULL, me, "f", e), 0);
	T_CHECK_EQ_INT(store_manifest_get(s, NULL, h, &m, &mlen), 0);
	T_CHECK(mlen == 8 && memcmp(m, "manifest", 8) == 0);
	free(m);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h, &b, NULL, 0), 0);
	T_CHECK(b.kind == STORE_BLOCK_LOCAL && b.offset == 4096 && b.length == 100);
	T_CHECK(strcmp(b.object, "obj/1") == 0);
	T_CHECK_EQ_INT(store_manifest_del(s, NULL, h), 0);
	T_CHECK_EQ_INT(store_manifest_del(s, NULL, h), -ENOENT);
	T_CHECK_EQ_INT(store_manifest_put(s, NULL, h, m, 0), -EINVAL);
	T_CHECK_EQ_INT(store_entry_put(s, t, e), -EINVAL); /* t has ended */
	T_CHECK_EQ_INT(store_block_local_put(s, NULL, h, "../x", 0, 1), BFS_EBADNAME);
	T_CHECK_EQ_INT(store_block_local_put(s, NULL, h, "x", 0, 0), -EINVAL);
	free(e);
	store_close(s);
	home_rm();
}

T_CASE(map_full_is_enospc)
{
	static uint8_t big[64 * 1024];
	uint8_t h[32] = { 0 };
	struct store *s;
	struct store_txn *t;
	int rc = 0, i;

	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 1 << 20), 0);
	/* in one transaction: the first failure spoils it, commit reports it */
	T_CHECK_EQ_INT(store_txn_begin(s, &t), 0);
	for (i = 0; i < 64 && rc == 0; i++) {
		h[0] = (uint8_t)i;
		rc = store_manifest_put(s, t, h, big, sizeof(big));
	}
	T_CHECK_EQ_INT(rc, -ENOSPC);
	h[0] = 0;
	T_CHECK_EQ_INT(store_manifest_put(s, t, h, big, 1), -ENOSPC);
	T_CHECK_EQ_INT(store_txn_commit(t), -ENOSPC);
	T_CHECK_EQ_INT(store_manifest_del(s, NULL, h), -ENOENT); /* nothing committed */
	/* one at a time: the store goes on working */
	for (rc = 0, i = 0; i < 64 && rc == 0; i++) {
		h[0] = (uint8_t)i;
		rc = store_manifest_put(s, NULL, h, big, sizeof(big));
	}
	T_CHECK_EQ_INT(rc, -ENOSPC);
	h[0] = 0;
	T_CHECK_EQ_INT(store_manifest_del(s, NULL, h), 0);
	store_close(s);
	home_rm();
}

/* ---- the block cache ---- */

static void block_hash(uint8_t h[32], uint8_t v)
{
	fill(h, 32, 0);
	h[0] = 0xbb;
	h[31] = v;
}

T_CASE(block_cache_lru)
{
	static uint8_t data[1000], buf[1000];
	uint8_t h[6][32];
	struct store *s;
	struct store_block b;
	uint64_t bytes, count;

	for (uint8_t i = 0; i < 6; i++)
		block_hash(h[i], i);
	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	store_block_cache_set_limit(s, 3000);
	for (int i = 0; i < 3; i++) {
		fill(data, sizeof(data), (uint8_t)i);
		T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[i], data, sizeof(data)), 0);
	}
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[0], &b, buf, sizeof(buf)), 0); /* 0 used */
	T_CHECK(b.kind == STORE_BLOCK_CACHED && b.length == 1000 && b.data == NULL && buf[999] == 0);
	fill(data, sizeof(data), 3);
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[3], data, sizeof(data)), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[1], &b, NULL, 0), -ENOENT); /* 1 was oldest */
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[0], &b, NULL, 0), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[2], &b, buf, sizeof(buf)), 0);
	T_CHECK(buf[0] == 2);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, buf, 999), -ERANGE);
	T_CHECK_EQ_INT(b.length, 1000);
	T_CHECK_EQ_INT(store_block_cache_usage(s, &bytes, &count), 0);
	T_CHECK(bytes == 3000 && count == 3);
	store_close(s); /* the LRU order (2 newest, then 3, then 0) survives */

	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	store_block_cache_set_limit(s, 3000);
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[4], data, sizeof(data)), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[0], &b, NULL, 0), -ENOENT);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, NULL, 0), 0);
	/* made local: out of the cache */
	T_CHECK_EQ_INT(store_block_local_put(s, NULL, h[3], "o", 0, 1000), 0);
	T_CHECK_EQ_INT(store_block_cache_usage(s, &bytes, &count), 0);
	T_CHECK(bytes == 2000 && count == 2);
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[3], data, sizeof(data)), 0); /* stays local */
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, buf, sizeof(buf)), 0);
	T_CHECK(b.kind == STORE_BLOCK_LOCAL);
	T_CHECK_EQ_INT(store_block_del(s, NULL, h[4]), 0);
	T_CHECK_EQ_INT(store_block_del(s, NULL, h[4]), -ENOENT);
	T_CHECK_EQ_INT(store_block_cache_usage(s, &bytes, &count), 0);
	T_CHECK(bytes == 1000 && count == 1);
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[5], data, 3001), BFS_ETOOBIG);
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[5], data, 0), -EINVAL);
	/* many blocks through a small cache: usage stays under the cap */
	for (int i = 0; i < 100; i++) {
		block_hash(h[5], (uint8_t)(100 + i));
		T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[5], data, 100 + (size_t)i * 7), 0);
		T_CHECK_EQ_INT(store_block_cache_usage(s, &bytes, &count), 0);
		T_CHECK(bytes <= 3000);
	}
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[5], &b, buf, sizeof(buf)), 0); /* newest stays */
	store_close(s);
	home_rm();
}

/* cache_file - HOME/cache/<2 hex>/<64 hex> of @h. */
static void cache_file(char *out, size_t cap, const uint8_t h[32])
{
	char hex[65];

	sodium_bin2hex(hex, sizeof(hex), h, 32);
	snprintf(out, cap, "%s/cache/%.2s/%s", home, hex, hex);
}

/* file_is - @path holds exactly @n bytes of @want. */
static bool file_is(const char *path, const uint8_t *want, size_t n)
{
	static uint8_t got[4096];
	int fd = open(path, O_RDONLY);
	ssize_t k = fd < 0 ? -1 : read(fd, got, sizeof(got));

	if (fd >= 0)
		close(fd);
	return k == (ssize_t)n && memcmp(got, want, n) == 0;
}

static bool file_gone(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 && errno == ENOENT;
}

/* raw_put is below, with the damaged records */
static int raw_put(const char *db, const void *key, size_t klen, const void *v, size_t vlen);

T_CASE(block_cache_files)
{
	static uint8_t data[4][1000], buf[1000];
	uint8_t h[4][32], rec[6 + 1000];
	char path[4][256];
	struct store *s;
	struct store_block b;
	uint64_t bytes, count;
	int fd;

	for (int i = 0; i < 4; i++) {
		for (size_t j = 0; j < sizeof(data[i]); j++)
			data[i][j] = (uint8_t)(j * 7 + (size_t)i);
		crypto_generichash(h[i], 32, data[i], sizeof(data[i]), NULL, 0);
	}
	home_new();
	for (int i = 0; i < 4; i++)
		cache_file(path[i], sizeof(path[i]), h[i]);
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	store_block_cache_set_limit(s, 2000);
	/* the bytes go to a file, the record stays small */
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[0], data[0], 1000), 0);
	T_CHECK(file_is(path[0], data[0], 1000));
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[0], &b, buf, sizeof(buf)), 0);
	T_CHECK(b.kind == STORE_BLOCK_CACHED && b.length == 1000 && b.data == NULL);
	T_CHECK_MEM(buf, data[0], 1000);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[0], &b, NULL, 0), 0);
	/* eviction removes the oldest block's file */
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[1], data[1], 1000), 0);
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[2], data[2], 1000), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[0], &b, NULL, 0), -ENOENT);
	T_CHECK(file_gone(path[0]));
	T_CHECK(file_is(path[1], data[1], 1000) && file_is(path[2], data[2], 1000));
	/* delete and made local remove the file too */
	T_CHECK_EQ_INT(store_block_del(s, NULL, h[1]), 0);
	T_CHECK(file_gone(path[1]));
	T_CHECK_EQ_INT(store_block_local_put(s, NULL, h[2], "o", 0, 1000), 0);
	T_CHECK(file_gone(path[2]));
	T_CHECK_EQ_INT(store_block_cache_usage(s, &bytes, &count), 0);
	T_CHECK(bytes == 0 && count == 0);
	/* a missing or short file is "not cached"; a put writes it again */
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[3], data[3], 1000), 0);
	T_CHECK_EQ_INT(unlink(path[3]), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, buf, sizeof(buf)), -ENOENT);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, NULL, 0), -ENOENT);
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[3], data[3], 1000), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, buf, sizeof(buf)), 0);
	T_CHECK_MEM(buf, data[3], 1000);
	T_CHECK_EQ_INT(truncate(path[3], 999), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, buf, sizeof(buf)), -ENOENT);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, NULL, 0), -ENOENT);
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[3], data[3], 1000), 0);
	T_CHECK_EQ_INT(store_block_cache_usage(s, &bytes, &count), 0);
	T_CHECK(bytes == 1000 && count == 1);
	store_close(s);

	/* a torn file (a crash after the commit, before the bytes reached the
	 * disk) is checked against the hash on its first read in a process */
	fd = open(path[3], O_WRONLY);
	T_CHECK(fd >= 0 && pwrite(fd, "\0\0\0\0", 4, 500) == 4);
	if (fd >= 0)
		close(fd);
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, NULL, 0), 0); /* size only */
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, buf, sizeof(buf)), -ENOENT);
	T_CHECK(file_gone(path[3]));
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[3], data[3], 1000), 0);
	T_CHECK(file_is(path[3], data[3], 1000));
	store_close(s);
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0); /* a good file passes the check */
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[3], &b, buf, sizeof(buf)), 0);
	T_CHECK_MEM(buf, data[3], 1000);
	store_close(s);

	/* a record of the old layout (bytes inline, version 1) still reads */
	rec[0] = 1;
	rec[1] = STORE_BLOCK_CACHED;
	buf_store32_be(rec + 2, 1000);
	memcpy(rec + 6, data[0], 1000);
	T_CHECK_EQ_INT(raw_put("blocks", h[0], 32, rec, sizeof(rec)), 0);
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[0], &b, buf, sizeof(buf)), 0);
	T_CHECK(b.kind == STORE_BLOCK_CACHED && b.length == 1000);
	T_CHECK_MEM(buf, data[0], 1000);
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h[0], data[0], 1000), 0); /* left inline */
	T_CHECK(file_gone(path[0]));
	T_CHECK_EQ_INT(store_block_del(s, NULL, h[0]), 0);
	T_CHECK_EQ_INT(store_block_get(s, NULL, h[0], &b, NULL, 0), -ENOENT);
	store_close(s);
	home_rm();
}

/* ---- schema and damaged records ---- */

/* raw_put - write @key -> @v in sub-database @db with LMDB directly. */
static int raw_put(const char *db, const void *key, size_t klen, const void *v, size_t vlen)
{
	char path[128];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key }, d = { .mv_size = vlen, .mv_data = (void *)v };
	int rc;

	snprintf(path, sizeof(path), "%s/store", home);
	rc = mdb_env_create(&env);
	if (rc)
		return rc;
	mdb_env_set_maxdbs(env, 16);
	rc = mdb_env_open(env, path, 0, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, db, 0, &dbi);
		if (rc == 0)
			rc = mdb_put(txn, dbi, &k, &d, 0);
		rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	}
	mdb_env_close(env);
	return rc;
}

/* tmp_name - @block's file name with ".<pid>.tmp", as a put in process @pid writes it. */
static void tmp_name(char *out, size_t cap, const char *block, long pid)
{
	snprintf(out, cap, "%s.%ld.tmp", block, pid);
}

T_CASE(cache_sweep_removes_dead_leftovers)
{
	static uint8_t data[1000];
	char block[256], dead[300], live[300], other[300];
	struct store *s;
	uint8_t h[32];
	pid_t child;
	int fd;

	memset(data, 0x5a, sizeof(data));
	crypto_generichash(h, 32, data, sizeof(data), NULL, 0);
	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	T_CHECK_EQ_INT(store_cache_sweep(s), 0); /* no cache directory yet */
	T_CHECK_EQ_INT(store_block_cache_put(s, NULL, h, data, sizeof(data)), 0);
	cache_file(block, sizeof(block), h);
	/* a process that died mid-put, one still running (us), a stranger */
	child = fork();
	if (child == 0)
		_exit(0);
	T_CHECK(child > 0);
	waitpid(child, NULL, 0);
	tmp_name(dead, sizeof(dead), block, (long)child);
	tmp_name(live, sizeof(live), block, (long)getpid());
	snprintf(other, sizeof(other), "%s.notes", block);
	for (int i = 0; i < 3; i++) {
		fd = open(i == 0 ? dead : i == 1 ? live : other, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		T_CHECK(fd >= 0);
		if (fd >= 0)
			close(fd);
	}
	T_CHECK_EQ_INT(store_cache_sweep(s), 1);
	T_CHECK(file_gone(dead));
	T_CHECK(!file_gone(live) && !file_gone(other));
	T_CHECK(file_is(block, data, sizeof(data))); /* the block itself stays */
	unlink(live);
	unlink(other);
	store_close(s);
}

T_CASE(schema_mismatch)
{
	uint8_t v[4];
	struct store *s;

	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	store_close(s);
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0); /* the version we wrote */
	store_close(s);
	buf_store32_be(v, 99);
	T_CHECK_EQ_INT(raw_put("meta", "schema", 6, v, 4), 0);
	T_CHECK_EQ_INT(store_open(&s, home, 0), BFS_ESCHEMA);
	T_CHECK(s == NULL);
	T_CHECK_EQ_INT(raw_put("meta", "schema", 6, v, 3), 0);
	T_CHECK_EQ_INT(store_open(&s, home, 0), BFS_ESCHEMA);
	T_CHECK(strcmp(bfs_strerror(BFS_ESCHEMA), "unknown store schema version") == 0);
	home_rm();
	T_CHECK_EQ_INT(store_open(&s, "/nonexistent/dir", 0), -ENOENT);
}

static int count_entry(void *ctx, const struct store_entry *e)
{
	(void)e;
	(*(int *)ctx)++;
	return 0;
}

T_CASE(damaged_records)
{
	static const uint8_t junk[] = { 1, 2, 3 };
	uint8_t id[32], name_rec[33], me[32];
	struct store *s;
	struct store_peer p;
	struct store_entry *e = malloc(sizeof(*e));
	struct store_block b;
	uint8_t key[32 + 32 + 1];
	int n = 0;

	T_CHECK(e != NULL);
	fill(id, 32, 0x44);
	fill(me, 32, 0x11);
	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	entry_init(e, me, "ok", STORE_ENTRY_FILE);
	T_CHECK_EQ_INT(store_entry_put(s, NULL, e), 0);
	store_close(s);
	/* a peer record of the wrong version, a name to it, a junk block */
	T_CHECK_EQ_INT(raw_put("peers", id, 32, "\x07junk", 5), 0);
	store_name_encode(name_rec, sizeof(name_rec), id);
	T_CHECK_EQ_INT(raw_put("names", "dora", 4, name_rec, sizeof(name_rec)), 0);
	T_CHECK_EQ_INT(raw_put("blocks", id, 32, junk, sizeof(junk)), 0);
	/* an entry record filed under another path's key */
	memcpy(key, me, 32);
	memset(key + 32, 0, 33);
	key[64] = 'z';
	T_CHECK_EQ_INT(raw_put("entries", key, sizeof(key), "\x01", 1), 0);

	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	T_CHECK_EQ_INT(store_peer_get(s, id, &p), BFS_EVERSION);
	T_CHECK_EQ_INT(store_peer_by_name(s, "dora", &p), BFS_EVERSION);
	T_CHECK_EQ_INT(store_peer_foreach(s, count_peer, &n), BFS_EVERSION);
	T_CHECK_EQ_INT(store_peer_del(s, id), 0); /* removes the damage */
	T_CHECK_EQ_INT(store_peer_by_name(s, "dora", &p), -ENOENT);
	T_CHECK_EQ_INT(store_block_get(s, NULL, id, &b, NULL, 0), BFS_EMALFORMED);
	T_CHECK_EQ_INT(store_block_local_put(s, NULL, id, "o", 0, 1), 0); /* replaced */
	T_CHECK_EQ_INT(store_block_get(s, NULL, id, &b, NULL, 0), 0);
	T_CHECK_EQ_INT(store_entry_get(s, NULL, me, "ok", e), 0);
	T_CHECK_EQ_INT(store_entry_foreach(s, NULL, me, count_entry, &n), BFS_EMALFORMED);
	free(e);
	store_close(s);
	home_rm();
}

/* ---- a writer killed mid-transaction ---- */

#define CRASH_FILES 24
#define CRASH_ROUNDS 20
#define CRASH_BLOCK_BYTES 4096
#define CRASH_CACHE_BLOCKS 10

/* crash_txn - one logical change: every record tagged @tag. */
static int crash_txn(struct store *s, uint64_t tag)
{
	static uint8_t block[CRASH_BLOCK_BYTES];
	uint8_t me[32], h[32], tb[8];
	struct store_txn *t;
	struct store_entry e;
	struct store_peer p;
	int rc;

	fill(me, 32, 0x11);
	rc = store_txn_begin(s, &t);
	for (int i = 0; rc == 0 && i < CRASH_FILES; i++) {
		char path[32];

		snprintf(path, sizeof(path), "dir/f%02d", i);
		entry_init(&e, me, path, STORE_ENTRY_FILE);
		e.version = tag;
		e.size = tag * 3;
		rc = store_entry_put(s, t, &e);
	}
	buf_store64_be(tb, tag);
	fill(h, 32, 0x99);
	if (rc == 0)
		rc = store_manifest_put(s, t, h, tb, sizeof(tb));
	peer_init(&p, 0x55, tag % 2 ? "odd" : "even"); /* renames each time */
	p.last_seen = tag;
	if (rc == 0)
		rc = store_peer_put(s, &p) == -EBUSY ? 0 : -1; /* (outside t) */
	block_hash(h, (uint8_t)tag);
	h[1] = (uint8_t)(tag >> 8);
	memcpy(block, tb, sizeof(tb));
	if (rc == 0)
		rc = store_block_cache_put(s, t, h, block, sizeof(block));
	if (rc) {
		store_txn_abort(t);
		return rc;
	}
	rc = store_txn_commit(t);
	if (rc == 0)
		rc = store_peer_put(s, &p); /* a separate change, one txn of its own */
	return rc;
}

static void crash_child(uint64_t first, volatile uint64_t *committed)
{
	struct store *s;

	if (store_open(&s, home, 0))
		_exit(2);
	store_block_cache_set_limit(s, CRASH_CACHE_BLOCKS * CRASH_BLOCK_BYTES);
	for (uint64_t tag = first;; tag++) {
		if (crash_txn(s, tag))
			_exit(3);
		*committed = tag;
	}
}

struct crash_check {
	uint64_t tag;
	int n, mixed;
};

static int crash_collect(void *ctx, const struct store_entry *e)
{
	struct crash_check *c = ctx;

	if (c->n++ == 0)
		c->tag = e->version;
	if (e->version != c->tag || e->size != e->version * 3)
		c->mixed++;
	return 0;
}

T_CASE(crash_keeps_last_commit)
{
	volatile uint64_t *committed;
	uint64_t last = 0, last_peer = 0, bytes, count, mtag;
	uint8_t me[32], h[32];
	struct crash_check c;
	struct store_peer p;
	struct store *s;
	uint8_t *m;
	size_t mlen;
	int status, unreported = 0;

	committed = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_CHECK(committed != MAP_FAILED);
	*committed = 0;
	fill(me, 32, 0x11);
	fill(h, 32, 0x99);
	home_new();
	srand(4242);
	for (int round = 0; round < CRASH_ROUNDS; round++) {
		pid_t pid;

		*committed = last;
		pid = fork();
		T_CHECK(pid >= 0);
		if (pid == 0)
			crash_child(last + 1, committed);
		usleep(30000 + (useconds_t)(rand() % 270000));
		kill(pid, SIGKILL);
		T_CHECK(waitpid(pid, &status, 0) == pid);
		T_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL); /* no error exit */

		T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
		memset(&c, 0, sizeof(c));
		T_CHECK_EQ_INT(store_entry_list(s, NULL, me, "dir", NULL, crash_collect, &c), 0);
		T_CHECK_EQ_INT(c.mixed, 0);
		T_CHECK(c.n == 0 || c.n == CRASH_FILES);
		/* exactly the last commit: the one reported, or one more that
		 * committed before it could be reported */
		T_CHECK(c.tag == *committed || c.tag == *committed + 1);
		T_CHECK(c.tag >= last);
		if (c.n) {
			T_CHECK_EQ_INT(store_manifest_get(s, NULL, h, &m, &mlen), 0);
			mtag = mlen == 8 ? buf_load64_be(m) : 0;
			free(m);
			T_CHECK(mtag == c.tag);
			/*
			 * The peer's own txn comes after each tag's: c.tag, or
			 * older when the kill fell between the two.  A child
			 * starts at last + 1, so after kills in that gap in two
			 * rounds in a row the peer lags by more than one tag:
			 * what holds is that it never goes back nor ahead.
			 */
			fill(p.id, 32, 0x55);
			if (store_peer_get(s, p.id, &p) == 0) {
				T_CHECK(p.last_seen <= c.tag && p.last_seen >= last_peer);
				T_CHECK(p.last_seen == c.tag || c.tag == *committed + 1 || c.tag == last);
				T_CHECK(strcmp(p.name, p.last_seen % 2 ? "odd" : "even") == 0);
				T_CHECK_EQ_INT(store_peer_by_name(s, p.last_seen % 2 ? "even" : "odd", &p), -ENOENT);
				last_peer = p.last_seen;
			} else {
				T_CHECK_EQ_INT(last_peer, 0);
			}
			T_CHECK_EQ_INT(store_block_cache_usage(s, &bytes, &count), 0);
			T_CHECK(count >= 1 && count <= CRASH_CACHE_BLOCKS);
			T_CHECK(bytes == count * CRASH_BLOCK_BYTES);
		}
		store_close(s);
		last = c.tag;
		unreported += c.tag == *committed + 1;
	}
	T_CHECK(last > 0);
	printf("  crash: %d kills, %llu commits survived, %d of them killed before reporting\n", CRASH_ROUNDS,
	       (unsigned long long)last, unreported);
	munmap((void *)committed, 4096);
	home_rm();
}

/* ---- readers left behind by a crashed process ---- */

/*
 * The children below report through a shared word and then wait to be
 * killed with SIGKILL, as in a crash (and so that no leak check runs in
 * them under valgrind or LeakSanitizer).
 */
static volatile int *child_state; /* 1 running, 2 in place, or a negative error */

static void wait_for_kill(void)
{
	for (;;)
		pause();
}

static int stop_reading(void *ctx, const struct store_peer *p)
{
	(void)ctx;
	(void)p;
	*child_state = 2; /* inside the read transaction: its reader slot is taken */
	wait_for_kill();
	return 0;
}

/* run_child - open the store, then read (@what 1) or just close it; returns once in place, killed. */
static int run_child(int what)
{
	struct store *s;
	int status, rc;
	pid_t pid;

	*child_state = 1;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		rc = store_open(&s, home, 0);
		if (rc == 0 && what == 1)
			rc = store_peer_foreach(s, stop_reading, NULL);
		if (rc == 0)
			store_close(s);
		*child_state = rc ? rc : 2;
		wait_for_kill();
	}
	for (int i = 0; i < 2000 && *child_state == 1; i++)
		usleep(5000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return *child_state == 2 ? 0 : *child_state == 1 ? -ETIMEDOUT : *child_state;
}

/*
 * A process killed inside a read transaction leaves a reader slot in the
 * shared lock file.  While another process (the daemon) keeps the store
 * open, that stale slot pins a snapshot: LMDB can no longer reuse freed
 * pages and a small map fills with rewrites of one record.  store_open()
 * clears the slots of dead processes (mdb_reader_check).
 */
T_CASE(dead_reader_does_not_pin_pages)
{
	static uint8_t big[32 * 1024];
	uint8_t h[32] = { 7 };
	struct store_peer p;
	struct store *s;
	int rc = 0, i;

	child_state = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_CHECK(child_state != MAP_FAILED);
	home_new();
	T_CHECK_EQ_INT(store_open(&s, home, 1 << 20), 0); /* the long-lived opener */
	peer_init(&p, 0x31, "carol");
	T_CHECK_EQ_INT(store_peer_put(s, &p), 0);
	T_CHECK_EQ_INT(store_manifest_put(s, NULL, h, big, sizeof(big)), 0);
	T_CHECK_EQ_INT(run_child(1), 0); /* killed while it reads */
	T_CHECK_EQ_INT(run_child(0), 0); /* a later command: its store_open cleans up */
	for (i = 0; i < 200 && rc == 0; i++) {
		big[0] = (uint8_t)i;
		rc = store_manifest_put(s, NULL, h, big, sizeof(big));
	}
	T_CHECK_EQ_INT(rc, 0);
	store_close(s);
	home_rm();
	munmap((void *)child_state, 4096);
}

int main(void)
{
	log_init("test_store");
	T_RUN(peer_codec_vector);
	T_RUN(entry_codec_vector);
	T_RUN(entry_codec_base);
	T_RUN(synced_records);
	T_RUN(block_and_name_codec_vectors);
	T_RUN(decoders_reject_damage);
	T_RUN(path_rules);
	T_RUN(peers_and_names);
	T_RUN(entries_list_one_directory);
	T_RUN(txn_groups_changes);
	T_RUN(map_full_is_enospc);
	T_RUN(block_cache_lru);
	T_RUN(block_cache_files);
	T_RUN(cache_sweep_removes_dead_leftovers);
	T_RUN(schema_mismatch);
	T_RUN(damaged_records);
	T_RUN(crash_keeps_last_commit);
	T_RUN(dead_reader_does_not_pin_pages);
	return t_done();
}
