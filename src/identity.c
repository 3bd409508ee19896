/*
 * identity.c - key pair, certificate, peer id, names and the identity files
 * of a home directory (see identity.h; byte layouts in docs/PROTOCOL.md).
 *
 * Files are written atomically: a temporary file with a random name made
 * with O_EXCL, fsync, then rename (or link, for the key file, which must
 * never replace another) and an fsync of the directory.  Everything in the
 * home is reached through the home's directory fd (openat, fstatat,
 * renameat, linkat) and opened with O_NOFOLLOW; the home itself is opened
 * with O_NOFOLLOW and must belong to the effective user.  Secrets stay in
 * sodium_malloc() memory or in stack buffers that are wiped before every
 * return.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"

static const uint8_t key_magic[4] = { 'b', 'f', 's', 'k' };

#define FILE_READ_MAX_BYTES IDENTITY_CONFIG_MAX_BYTES

int identity_crypto_init(void)
{
	return sodium_init() < 0 ? BFS_ECRYPTO : 0;
}

/* ---- names ---- */

int identity_name_normalize(char out[static IDENTITY_NAME_MAX + 1], const char *in)
{
	size_t n = strnlen(in, IDENTITY_NAME_MAX + 1);

	out[0] = '\0';
	if (n == 0 || n > IDENTITY_NAME_MAX)
		return BFS_EBADNAME;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
			out[0] = '\0';
			return BFS_EBADNAME;
		}
		out[i] = c;
	}
	out[n] = '\0';
	if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
		out[0] = '\0';
		return BFS_EBADNAME;
	}
	return 0;
}

/* ---- peer ids and certificates ---- */

void identity_peer_id_hex(char out[static IDENTITY_PEER_ID_HEX_BYTES],
			  const uint8_t id[static IDENTITY_PEER_ID_BYTES])
{
	buf_hex(out, id, IDENTITY_PEER_ID_BYTES);
}

int identity_peer_id_parse(uint8_t out[static IDENTITY_PEER_ID_BYTES], const char *hex)
{
	if (!buf_unhex(out, IDENTITY_PEER_ID_BYTES, hex)) {
		memset(out, 0, IDENTITY_PEER_ID_BYTES);
		return BFS_EMALFORMED;
	}
	return 0;
}

void identity_peer_id_of(uint8_t out[static IDENTITY_PEER_ID_BYTES], const uint8_t *cert, size_t cert_len)
{
	crypto_hash_sha256(out, cert, cert_len);
}

int identity_cert_parse(uint8_t public_key[static IDENTITY_PUBLIC_KEY_BYTES], const uint8_t *cert,
			size_t cert_len)
{
	struct buf_reader r;
	uint8_t version;

	buf_reader_init(&r, cert, cert_len);
	if (!buf_get_u8(&r, &version))
		return BFS_EMALFORMED;
	if (version != IDENTITY_CERT_VERSION)
		return BFS_EVERSION;
	if (!buf_get_bytes(&r, public_key, IDENTITY_PUBLIC_KEY_BYTES) || !buf_reader_done(&r))
		return BFS_EMALFORMED;
	return 0;
}

void identity_cert_make(uint8_t cert[static IDENTITY_CERT_BYTES],
			const uint8_t public_key[static IDENTITY_PUBLIC_KEY_BYTES])
{
	struct buf_writer w;

	buf_writer_init(&w, cert, IDENTITY_CERT_BYTES);
	buf_put_u8(&w, IDENTITY_CERT_VERSION);
	buf_put_bytes(&w, public_key, IDENTITY_PUBLIC_KEY_BYTES);
}

/* ---- signatures ---- */

void identity_sign(uint8_t sig[static IDENTITY_SIGNATURE_BYTES], const struct identity *id,
		   const uint8_t *msg, size_t len)
{
	crypto_sign_detached(sig, NULL, msg, len, id->secret_key);
}

int identity_verify(const uint8_t *cert, size_t cert_len, const uint8_t sig[static IDENTITY_SIGNATURE_BYTES],
		    const uint8_t *msg, size_t len)
{
	uint8_t pk[IDENTITY_PUBLIC_KEY_BYTES];
	int rc = identity_cert_parse(pk, cert, cert_len);

	if (rc)
		return rc;
	if (crypto_sign_verify_detached(sig, msg, len, pk) != 0)
		return BFS_EBADSIG;
	return 0;
}

/* sign_ctx_start - begin an Ed25519ph state over "len(ctx) || ctx"; false for a bad @ctx. */
static bool sign_ctx_start(crypto_sign_state *st, const char *ctx)
{
	size_t n = strnlen(ctx, IDENTITY_SIGN_CTX_MAX_BYTES + 1);
	uint8_t n8 = (uint8_t)n;

	if (n == 0 || n > IDENTITY_SIGN_CTX_MAX_BYTES)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (ctx[i] < 0x20 || ctx[i] > 0x7e)
			return false;
	}
	crypto_sign_init(st);
	crypto_sign_update(st, &n8, 1);
	crypto_sign_update(st, (const uint8_t *)ctx, n);
	return true;
}

int identity_sign_ctx(uint8_t sig[static IDENTITY_SIGNATURE_BYTES], const struct identity *id,
		      const char *ctx, const uint8_t *msg, size_t len)
{
	crypto_sign_state st;

	if (!sign_ctx_start(&st, ctx)) {
		memset(sig, 0, IDENTITY_SIGNATURE_BYTES);
		return -EINVAL;
	}
	crypto_sign_update(&st, msg, len);
	crypto_sign_final_create(&st, sig, NULL, id->secret_key);
	sodium_memzero(&st, sizeof(st));
	return 0;
}

int identity_verify_ctx(const uint8_t *cert, size_t cert_len,
			const uint8_t sig[static IDENTITY_SIGNATURE_BYTES], const char *ctx,
			const uint8_t *msg, size_t len)
{
	uint8_t pk[IDENTITY_PUBLIC_KEY_BYTES];
	crypto_sign_state st;
	int rc = identity_cert_parse(pk, cert, cert_len);

	if (rc)
		return rc;
	if (!sign_ctx_start(&st, ctx))
		return -EINVAL;
	crypto_sign_update(&st, msg, len);
	if (crypto_sign_final_verify(&st, sig, pk) != 0)
		return BFS_EBADSIG;
	return 0;
}

/* ---- rendezvous address ---- */

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-';
}

static bool v6_char(char c)
{
	return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
	       c == ':' || c == '.';
}

/* parse_port - 1-5 decimal digits, 1-65535. */
static int parse_port(uint16_t *port, const char *s)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int identity_addr_parse(char host[static IDENTITY_HOST_MAX + 1], uint16_t *port, const char *in,
			uint16_t default_port)
{
	const char *host_start, *host_end, *rest;
	size_t n;
	bool v6 = in[0] == '[';

	host[0] = '\0';
	*port = 0;
	if (v6) {
		host_start = in + 1;
		host_end = strchr(host_start, ']');
		if (!host_end)
			return -EINVAL;
		rest = host_end + 1;
	} else {
		host_start = in;
		host_end = strchr(in, ':');
		if (!host_end)
			host_end = in + strlen(in);
		rest = host_end;
	}
	n = (size_t)(host_end - host_start);
	if (n == 0 || n > IDENTITY_HOST_MAX || (!v6 && host_start[0] == '-'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = host_start[i];

		if (v6 ? !v6_char(c) : !host_char(c))
			goto bad;
		host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	host[n] = '\0';
	if (v6 && !strchr(host, ':'))
		goto bad;
	if (rest[0] == '\0') {
		*port = default_port;
		return 0;
	}
	if (rest[0] != ':' || parse_port(port, rest + 1) != 0)
		goto bad;
	return 0;
bad:
	host[0] = '\0';
	*port = 0;
	return -EINVAL;
}

void identity_addr_format(char out[static IDENTITY_ADDR_TEXT_BYTES], const char *host, uint16_t port)
{
	snprintf(out, IDENTITY_ADDR_TEXT_BYTES, strchr(host, ':') ? "[%.*s]:%u" : "%.*s:%u",
		 IDENTITY_HOST_MAX, host, (unsigned)port);
}

/* ---- key file ---- */

int identity_key_encode(struct buf_writer *w, const uint8_t secret_key[static IDENTITY_SECRET_KEY_BYTES])
{
	size_t mark = buf_writer_mark(w);

	buf_put_bytes(w, key_magic, sizeof(key_magic));
	buf_put_u8(w, IDENTITY_KEY_FILE_VERSION);
	buf_put_u8(w, IDENTITY_KEY_TYPE_ED25519);
	/* libsodium's secret key is the seed followed by the public key. */
	buf_put_bytes(w, secret_key, IDENTITY_SEED_BYTES);
	buf_put_bytes(w, secret_key + IDENTITY_SEED_BYTES, IDENTITY_PUBLIC_KEY_BYTES);
	if (!buf_writer_ok(w)) {
		buf_writer_rollback(w, mark);
		return -ENOSPC;
	}
	return 0;
}

int identity_key_decode(uint8_t secret_key[static IDENTITY_SECRET_KEY_BYTES], const uint8_t *in, size_t len)
{
	uint8_t magic[sizeof(key_magic)], version, type;
	uint8_t seed[IDENTITY_SEED_BYTES], pk[IDENTITY_PUBLIC_KEY_BYTES], derived[IDENTITY_PUBLIC_KEY_BYTES];
	struct buf_reader r;
	int rc = BFS_EMALFORMED;

	memset(secret_key, 0, IDENTITY_SECRET_KEY_BYTES);
	buf_reader_init(&r, in, len);
	buf_get_bytes(&r, magic, sizeof(magic));
	buf_get_u8(&r, &version);
	buf_get_u8(&r, &type);
	if (!buf_reader_ok(&r) || memcmp(magic, key_magic, sizeof(magic)) != 0)
		goto out;
	if (version != IDENTITY_KEY_FILE_VERSION || type != IDENTITY_KEY_TYPE_ED25519) {
		rc = BFS_EVERSION;
		goto out;
	}
	buf_get_bytes(&r, seed, sizeof(seed));
	buf_get_bytes(&r, pk, sizeof(pk));
	if (!buf_reader_done(&r))
		goto out;
	if (identity_crypto_init() != 0) {
		rc = BFS_ECRYPTO;
		goto out;
	}
	crypto_sign_seed_keypair(derived, secret_key, seed);
	if (crypto_verify_32(derived, pk) != 0)
		goto out;
	rc = 0;
out:
	if (rc)
		sodium_memzero(secret_key, IDENTITY_SECRET_KEY_BYTES);
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

/* ---- config file ---- */

int identity_config_encode(struct buf_writer *w, const struct identity_config *c)
{
	char name[IDENTITY_NAME_MAX + 1], addr[IDENTITY_ADDR_TEXT_BYTES];
	char host[IDENTITY_HOST_MAX + 1];
	uint16_t port;
	size_t mark = buf_writer_mark(w);

	if (identity_name_normalize(name, c->name) != 0 || strcmp(name, c->name) != 0)
		return -EINVAL;
	buf_put_bytes(w, IDENTITY_CONFIG_HEADER "\n", strlen(IDENTITY_CONFIG_HEADER) + 1);
	buf_put_bytes(w, "name ", 5);
	buf_put_bytes(w, name, strlen(name));
	buf_put_u8(w, '\n');
	if (c->rdv_host[0]) {
		identity_addr_format(addr, c->rdv_host, c->rdv_port);
		if (identity_addr_parse(host, &port, addr, IDENTITY_RDV_DEFAULT_PORT) != 0) {
			buf_writer_rollback(w, mark);
			return -EINVAL;
		}
		buf_put_bytes(w, "rendezvous ", 11);
		buf_put_bytes(w, addr, strlen(addr));
		buf_put_u8(w, '\n');
	}
	if (!buf_writer_ok(w)) {
		buf_writer_rollback(w, mark);
		return -ENOSPC;
	}
	return 0;
}

/*
 * next_line - the next line of @r into @line (without its '\n'); false at
 * the end.  Sets *bad on a byte that has no place in a config file or a line
 * that does not fit.
 */
static bool next_line(struct buf_reader *r, char *line, size_t cap, bool *bad)
{
	size_t n = 0;
	uint8_t c;

	if (buf_reader_remaining(r) == 0)
		return false;
	while (buf_get_u8(r, &c) && c != '\n') {
		if (c < 0x20 || c >= 0x7f || n + 1 >= cap) {
			*bad = true;
			return false;
		}
		line[n++] = (char)c;
	}
	line[n] = '\0';
	return true;
}

int identity_config_decode(struct identity_config *out, const uint8_t *in, size_t len)
{
	char line[IDENTITY_CONFIG_MAX_BYTES + 1];
	struct buf_reader r;
	bool bad = false, have_name = false, have_rdv = false;
	int rc;
	const char *header_word = "buddyfs-config ";

	memset(out, 0, sizeof(*out));
	if (len > IDENTITY_CONFIG_MAX_BYTES)
		return BFS_EMALFORMED;
	buf_reader_init(&r, in, len);
	if (!next_line(&r, line, sizeof(line), &bad))
		return BFS_EMALFORMED;
	if (strcmp(line, IDENTITY_CONFIG_HEADER) != 0) {
		const char *v = line + strlen(header_word);

		/* "buddyfs-config N": a version we do not know */
		if (strncmp(line, header_word, strlen(header_word)) == 0 && v[0] &&
		    strspn(v, "0123456789") == strlen(v))
			return BFS_EVERSION;
		return BFS_EMALFORMED;
	}
	while (next_line(&r, line, sizeof(line), &bad)) {
		char *value = strchr(line, ' ');

		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (!value)
			goto bad;
		*value++ = '\0';
		if (strcmp(line, "name") == 0 && !have_name) {
			if (identity_name_normalize(out->name, value) != 0)
				goto bad;
			have_name = true;
		} else if (strcmp(line, "rendezvous") == 0 && !have_rdv) {
			rc = identity_addr_parse(out->rdv_host, &out->rdv_port, value, IDENTITY_RDV_DEFAULT_PORT);
			if (rc)
				goto bad;
			have_rdv = true;
		} else {
			goto bad;
		}
	}
	if (bad || !have_name)
		goto bad;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return BFS_EMALFORMED;
}

/* ---- the home directory ---- */

static int join(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s%s", a, b);

	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

int identity_home_resolve(char *out, size_t cap, const char *opt)
{
	const char *env;

	if (cap)
		out[0] = '\0';
	if (opt)
		return opt[0] ? join(out, cap, opt, "") : -ENOENT;
	env = getenv("BUDDYFS_HOME");
	if (env && env[0])
		return join(out, cap, env, "");
	env = getenv("XDG_DATA_HOME");
	if (env && env[0] == '/') /* the XDG spec ignores relative paths */
		return join(out, cap, env, "/buddyfs");
	env = getenv("HOME");
	if (env && env[0])
		return join(out, cap, env, "/.local/share/buddyfs");
	return -ENOENT;
}

/*
 * sync_parent - fsync the directory that holds @path, so that a new entry
 * @path survives a crash.
 */
static int sync_parent(const char *path)
{
	char dir[PATH_MAX];
	size_t n;
	int fd, rc = join(dir, sizeof(dir), path, "");

	if (rc)
		return rc;
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	while (n > 0 && dir[n - 1] != '/')
		n--;
	if (n == 0)
		snprintf(dir, sizeof(dir), ".");
	else
		dir[n > 1 ? n - 1 : 1] = '\0'; /* keep "/" for a child of the root */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fsync(fd) != 0 ? -errno : 0;
	close(fd);
	return rc;
}

/*
 * mkdir_p - make @path and its missing parents, each mode 0700, and fsync
 * the parent of each directory made.  A last component that exists (as
 * anything, a symbolic link too) is left for open_home() to judge.
 */
static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	int rc = join(buf, sizeof(buf), path, "");

	if (rc)
		return rc;
	if (buf[0] == '\0')
		return -ENOENT;
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(buf, 0700) == 0) {
			rc = sync_parent(buf);
			if (rc)
				return rc;
		} else if (errno != EEXIST) {
			return -errno;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	return 0;
}

/* Temporary files: "." FILE TMP_INFIX and 2 * TMP_RANDOM_BYTES hex digits. */
#define TMP_INFIX ".tmp."
#define TMP_RANDOM_BYTES 8
#define TMP_TRIES 16
#define TMP_NAME_BYTES 64

/*
 * is_our_tmp - whether @entry is named like a temporary file of ours (any
 * suffix, so the pid-named files of older versions count too).
 */
static bool is_our_tmp(const char *entry)
{
	static const char *const files[] = { IDENTITY_KEY_FILE, IDENTITY_CERT_FILE, IDENTITY_CONFIG_FILE };

	if (entry[0] != '.')
		return false;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t n = strlen(files[i]);

		if (strncmp(entry + 1, files[i], n) == 0 &&
		    strncmp(entry + 1 + n, TMP_INFIX, strlen(TMP_INFIX)) == 0)
			return true;
	}
	return false;
}

/*
 * open_tmp - make a new temporary file for @name in @dirfd with a random
 * suffix and O_EXCL, trying again on a clash.  Its name goes to @tmp.
 * Returns the fd or -errno.
 */
static int open_tmp(char tmp[static TMP_NAME_BYTES], int dirfd, const char *name, mode_t mode)
{
	uint8_t rnd[TMP_RANDOM_BYTES];
	char hex[2 * TMP_RANDOM_BYTES + 1];
	int fd = -1;

	for (int i = 0; i < TMP_TRIES; i++) {
		randombytes_buf(rnd, sizeof(rnd));
		buf_hex(hex, rnd, sizeof(rnd));
		snprintf(tmp, TMP_NAME_BYTES, ".%s" TMP_INFIX "%s", name, hex);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	return fd >= 0 ? fd : -errno;
}

/*
 * write_atomic - put @len bytes as @name in @dirfd: a temporary file with
 * O_EXCL, fsync, then rename() over @name, or with @no_clobber link() so
 * that an existing @name stays (-EEXIST); then fsync the directory.
 */
static int write_atomic(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
			bool no_clobber)
{
	char tmp[TMP_NAME_BYTES];
	const uint8_t *p = data;
	int fd, rc = 0;

	fd = open_tmp(tmp, dirfd, name, mode);
	if (fd < 0)
		return fd;
	if (fchmod(fd, mode) != 0)
		goto fail;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (no_clobber) {
		if (linkat(dirfd, tmp, dirfd, name, 0) != 0)
			goto fail;
		unlinkat(dirfd, tmp, 0);
	} else if (renameat(dirfd, tmp, dirfd, name) != 0) {
		goto fail;
	}
	if (fsync(dirfd) != 0)
		return -errno;
	return 0;
fail:
	rc = -errno;
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return rc;
}

/*
 * read_small - read all of @name in @dirfd into @buf (at most @cap bytes),
 * never through a symbolic link (-ELOOP).  Returns the length, -errno, or
 * BFS_EMALFORMED for a file that is not regular or is larger than @cap.
 * *st gets the file's status.
 */
static long read_small(int dirfd, const char *name, uint8_t *buf, size_t cap, struct stat *st)
{
	size_t len = 0;
	long rc;
	/* O_NONBLOCK: a FIFO must not block us */
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		rc = BFS_EMALFORMED;
		goto out;
	}
	for (;;) {
		uint8_t extra;
		ssize_t n = len < cap ? read(fd, buf + len, cap - len) : read(fd, &extra, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if (len == cap) {
			rc = BFS_EMALFORMED; /* too long to be ours */
			goto out;
		}
		len += (size_t)n;
	}
	rc = (long)len;
out:
	close(fd);
	return rc;
}

static struct identity *identity_alloc(void)
{
	struct identity *id;

	if (identity_crypto_init() != 0)
		return NULL;
	id = sodium_malloc(sizeof(*id));
	if (id)
		memset(id, 0, sizeof(*id));
	return id;
}

void identity_free(struct identity *id)
{
	if (id)
		sodium_free(id); /* wipes the whole allocation */
}

/*
 * open_home - open @home as a directory, not through a symbolic link, and
 * check that it is ours.  Returns the fd, BFS_ENOIDENT when @home is
 * missing, -ELOOP (a symbolic link) or -EPERM (another owner), each logged,
 * or -errno.
 */
static int open_home(const char *home)
{
	struct stat st;
	int fd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		int rc = -errno;

		if (rc == -ENOENT)
			return BFS_ENOIDENT;
		if ((rc == -ELOOP || rc == -ENOTDIR) && lstat(home, &st) == 0 && S_ISLNK(st.st_mode)) {
			log_error("%s is a symbolic link; buddyfs wants a real directory as its home: "
				  "pass the link's target or another directory with --home", home);
			return -ELOOP;
		}
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	if (st.st_uid != geteuid()) {
		log_error("%s belongs to uid %u, not to you (uid %u): pass a directory of your own with --home",
			  home, (unsigned)st.st_uid, (unsigned)geteuid());
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* entry_is_ours - whether @name in @dirfd is a file a buddyfs home may hold before its key file. */
static bool entry_is_ours(int dirfd, const char *name)
{
	uint8_t buf[IDENTITY_CONFIG_MAX_BYTES], pk[IDENTITY_PUBLIC_KEY_BYTES];
	struct identity_config c;
	struct stat st;
	long n;
	int rc;

	if (strcmp(name, "store") == 0)
		return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
	if (strcmp(name, IDENTITY_CERT_FILE) == 0) {
		n = read_small(dirfd, name, buf, IDENTITY_CERT_BYTES, &st);
		rc = n < 0 ? (int)n : identity_cert_parse(pk, buf, (size_t)n);
		return rc == 0; /* any first byte but 0x01 would be "another version" */
	}
	if (strcmp(name, IDENTITY_CONFIG_FILE) == 0) {
		n = read_small(dirfd, name, buf, sizeof(buf), &st);
		rc = n < 0 ? (int)n : identity_config_decode(&c, buf, (size_t)n);
		return rc == 0 || rc == BFS_EVERSION;
	}
	return false;
}

/* printable - @in with every byte outside 0x20-0x7e as '?', cut to fit @out. */
static void printable(char *out, size_t cap, const char *in)
{
	size_t i;

	for (i = 0; i + 1 < cap && in[i]; i++)
		out[i] = (in[i] >= 0x20 && in[i] <= 0x7e) ? in[i] : '?';
	out[i] = '\0';
}

/*
 * scan_home - with the home's lock held: remove our stale temporary files
 * and put in @foreign (cap bytes, printable) the first entry that a buddyfs
 * home would not hold ("" if none).  Returns 0 or -errno.
 */
static int scan_home(int dirfd, const char *home, char *foreign, size_t cap)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	int rc = 0, fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	foreign[0] = '\0';
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((errno = 0, e = readdir(d)) != NULL) {
		const char *name = e->d_name;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		/* only identity_create() writes them, and it holds the lock we hold */
		if (is_our_tmp(name) && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) && unlinkat(dirfd, name, 0) == 0) {
			log_info("removed the stale temporary file %s/%s", home, name);
			continue;
		}
		if (!foreign[0] && !entry_is_ours(dirfd, name))
			printable(foreign, cap, name);
	}
	if (errno)
		rc = -errno;
	closedir(d);
	return rc;
}

int identity_create(struct identity **out, const char *home, const char *name, const char *rdv_host,
		    uint16_t rdv_port)
{
	char folded[IDENTITY_NAME_MAX + 1], foreign[NAME_MAX + 1];
	uint8_t key_file[IDENTITY_KEY_FILE_BYTES], config[IDENTITY_CONFIG_MAX_BYTES];
	struct identity *id = NULL;
	struct buf_writer w;
	struct stat st;
	int dirfd = -1, rc;

	if (out)
		*out = NULL;
	if (identity_name_normalize(folded, name) != 0 || strcmp(folded, name) != 0)
		return BFS_EBADNAME;
	if ((rdv_host[0] != '\0') != (rdv_port != 0) || strlen(rdv_host) > IDENTITY_HOST_MAX)
		return -EINVAL;
	rc = mkdir_p(home);
	if (rc)
		return rc;
	dirfd = open_home(home);
	if (dirfd < 0)
		return dirfd == BFS_ENOIDENT ? -ENOENT : dirfd; /* removed under us */
	/* Two inits at once: the second waits here, then finds the key file. */
	if (flock(dirfd, LOCK_EX) != 0)
		goto fail_errno;
	rc = scan_home(dirfd, home, foreign, sizeof(foreign));
	if (rc)
		goto out;
	if (fstatat(dirfd, IDENTITY_KEY_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		rc = -EEXIST;
		goto out;
	}
	if (errno != ENOENT)
		goto fail_errno;
	if (foreign[0]) {
		log_error("%s is not empty and does not look like a buddyfs home (it holds '%s'): pass a new "
			  "or empty directory with --home", home, foreign);
		rc = -ENOTEMPTY;
		goto out;
	}
	if (fstat(dirfd, &st) != 0)
		goto fail_errno;
	if ((st.st_mode & 07777) != 0700) {
		if (fchmod(dirfd, 0700) != 0)
			goto fail_errno;
		log_info("set the mode of %s to 0700 (was %04o)", home, (unsigned)(st.st_mode & 07777));
	}

	id = identity_alloc();
	if (!id) {
		rc = -ENOMEM;
		goto out;
	}
	crypto_sign_keypair(id->public_key, id->secret_key);
	identity_cert_make(id->cert, id->public_key);
	identity_peer_id_of(id->peer_id, id->cert, sizeof(id->cert));
	memcpy(id->config.name, folded, sizeof(folded));
	snprintf(id->config.rdv_host, sizeof(id->config.rdv_host), "%s", rdv_host);
	id->config.rdv_port = rdv_port;

	/* cert and config first; the key file last, as the commit point */
	rc = write_atomic(dirfd, IDENTITY_CERT_FILE, id->cert, sizeof(id->cert), 0644, false);
	if (rc)
		goto out;
	buf_writer_init(&w, config, sizeof(config));
	rc = identity_config_encode(&w, &id->config);
	if (rc)
		goto out;
	rc = write_atomic(dirfd, IDENTITY_CONFIG_FILE, config, buf_writer_len(&w), 0644, false);
	if (rc)
		goto out;
	buf_writer_init(&w, key_file, sizeof(key_file));
	rc = identity_key_encode(&w, id->secret_key);
	if (rc)
		goto out;
	rc = write_atomic(dirfd, IDENTITY_KEY_FILE, key_file, buf_writer_len(&w), 0600, true);
	goto out;
fail_errno:
	rc = -errno;
out:
	sodium_memzero(key_file, sizeof(key_file));
	if (dirfd >= 0)
		close(dirfd); /* drops the lock */
	if (rc == 0 && out)
		*out = id;
	else
		identity_free(id);
	return rc;
}

int identity_load(struct identity **out, const char *home, const char **failed_file)
{
	uint8_t buf[FILE_READ_MAX_BYTES];
	const char *file = NULL;
	struct identity *id = NULL;
	struct stat st;
	long n;
	int dirfd, rc;

	*out = NULL;
	if (failed_file)
		*failed_file = NULL;
	dirfd = open_home(home);
	if (dirfd < 0)
		return dirfd;
	id = identity_alloc();
	if (!id) {
		rc = -ENOMEM;
		goto out;
	}

	file = IDENTITY_KEY_FILE;
	n = read_small(dirfd, file, buf, IDENTITY_KEY_FILE_BYTES, &st);
	if (n < 0) {
		rc = n == -ENOENT ? BFS_ENOIDENT : (int)n;
		goto out;
	}
	if (st.st_mode & 077) {
		/* like OpenSSH: a secret key others may read is not used */
		log_error("%s/%s has mode %04o: a secret key open to group or others is not used; run 'chmod 600 %s/%s'",
			  home, file, (unsigned)(st.st_mode & 07777), home, file);
		rc = -EACCES;
		goto out;
	}
	rc = identity_key_decode(id->secret_key, buf, (size_t)n);
	if (rc)
		goto out;
	memcpy(id->public_key, id->secret_key + IDENTITY_SEED_BYTES, IDENTITY_PUBLIC_KEY_BYTES);

	file = IDENTITY_CERT_FILE;
	n = read_small(dirfd, file, buf, IDENTITY_CERT_BYTES, &st);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	rc = identity_cert_parse(id->cert + 1, buf, (size_t)n);
	if (rc)
		goto out;
	if (crypto_verify_32(id->cert + 1, id->public_key) != 0) {
		rc = BFS_EMALFORMED; /* the certificate of another key */
		goto out;
	}
	identity_cert_make(id->cert, id->public_key);
	identity_peer_id_of(id->peer_id, id->cert, sizeof(id->cert));

	file = IDENTITY_CONFIG_FILE;
	n = read_small(dirfd, file, buf, IDENTITY_CONFIG_MAX_BYTES, &st);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	rc = identity_config_decode(&id->config, buf, (size_t)n);
out:
	sodium_memzero(buf, sizeof(buf));
	close(dirfd);
	if (rc) {
		if (failed_file)
			*failed_file = rc == BFS_ENOIDENT ? NULL : file;
		identity_free(id);
		return rc;
	}
	*out = id;
	return 0;
}
