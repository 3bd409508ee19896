/*
 * test_identity.c - names, peer ids, certificates, the key and config file
 * codecs, and identity_create()/identity_load() on a scratch home.
 */
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/identity.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* scratch - a new empty directory; its path in @dir (PATH_MAX). */
static int scratch(char dir[static 64])
{
	snprintf(dir, 64, "/tmp/test_identity.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static long file_bytes(const char *path, uint8_t *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	long n;

	if (fd < 0)
		return -1;
	n = (long)read(fd, buf, cap);
	close(fd);
	return n;
}

static int put_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0600);
	long n;

	if (fd < 0)
		return -1;
	n = (long)write(fd, data, len);
	close(fd);
	return n == (long)len ? 0 : -1;
}

T_CASE(name_table)
{
	static const struct {
		const char *in, *want; /* want NULL: refused */
	} cases[] = {
		{ "alice", "alice" },
		{ "Alice", "alice" },
		{ "BOB-2.x_y", "bob-2.x_y" },
		{ "a", "a" },
		{ "...", "..." },
		{ ".bob", ".bob" },
		{ "abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345" },
		{ "abcdefghijklmnopqrstuvwxyz0123456", NULL }, /* 33 */
		{ "", NULL },
		{ ".", NULL },
		{ "..", NULL },
		{ "a/b", NULL },
		{ "a b", NULL },
		{ "caf\xc3\xa9", NULL }, /* é in UTF-8 */
		{ "tab\t", NULL },
		{ "at@host", NULL },
		{ "colon:", NULL },
	};
	char out[IDENTITY_NAME_MAX + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = identity_name_normalize(out, cases[i].in);

		if (cases[i].want) {
			if (rc != 0 || strcmp(out, cases[i].want) != 0)
				T_FAIL("'%s' -> rc %d '%s', want '%s'", cases[i].in, rc, out, cases[i].want);
		} else if (rc != BFS_EBADNAME || out[0] != '\0') {
			T_FAIL("'%s' accepted as '%s'", cases[i].in, out);
		}
	}
}

T_CASE(peer_id_hex)
{
	uint8_t id[IDENTITY_PEER_ID_BYTES], back[IDENTITY_PEER_ID_BYTES];
	char hex[IDENTITY_PEER_ID_HEX_BYTES], upper[IDENTITY_PEER_ID_HEX_BYTES], longer[80];

	for (size_t i = 0; i < sizeof(id); i++)
		id[i] = (uint8_t)(i * 37 + 11);
	identity_peer_id_hex(hex, id);
	T_CHECK_EQ_INT(strlen(hex), 64);
	T_CHECK(strspn(hex, "0123456789abcdef") == 64);
	T_CHECK_EQ_INT(identity_peer_id_parse(back, hex), 0);
	T_CHECK_MEM(back, id, sizeof(id));
	for (size_t i = 0; i < 65; i++)
		upper[i] = (hex[i] >= 'a' && hex[i] <= 'f') ? (char)(hex[i] - 32) : hex[i];
	T_CHECK_EQ_INT(identity_peer_id_parse(back, upper), 0);
	T_CHECK_MEM(back, id, sizeof(id));
	hex[63] = '\0';
	T_CHECK_EQ_INT(identity_peer_id_parse(back, hex), BFS_EMALFORMED);
	T_CHECK_EQ_INT(identity_peer_id_parse(back, ""), BFS_EMALFORMED);
	T_CHECK_EQ_INT(identity_peer_id_parse(back, "zz"), BFS_EMALFORMED);
	identity_peer_id_hex(hex, id);
	hex[10] = 'g';
	T_CHECK_EQ_INT(identity_peer_id_parse(back, hex), BFS_EMALFORMED);
	identity_peer_id_hex(upper, id);
	snprintf(longer, sizeof(longer), "%s0", upper);
	T_CHECK_EQ_INT(identity_peer_id_parse(back, longer), BFS_EMALFORMED);
}

T_CASE(cert_and_peer_id)
{
	uint8_t pk[IDENTITY_PUBLIC_KEY_BYTES], back[IDENTITY_PUBLIC_KEY_BYTES];
	uint8_t cert[IDENTITY_CERT_BYTES], id[IDENTITY_PEER_ID_BYTES];
	uint8_t want[IDENTITY_PEER_ID_BYTES];

	/* known answer: SHA-256 of 0x01 followed by 32 zero bytes (python hashlib) */
	memset(pk, 0, sizeof(pk));
	identity_cert_make(cert, pk);
	T_CHECK_EQ_INT(cert[0], 0x01);
	identity_peer_id_of(id, cert, sizeof(cert));
	t_unhex(want, sizeof(want), "1a7dfdeaffeedac489287e85be5e9c049a2ff6470f55cf30260f55395ac1b159");
	T_CHECK_MEM(id, want, sizeof(id));
	for (size_t i = 0; i < sizeof(pk); i++)
		pk[i] = (uint8_t)i;
	identity_cert_make(cert, pk);
	T_CHECK_EQ_INT(identity_cert_parse(back, cert, sizeof(cert)), 0);
	T_CHECK_MEM(back, pk, sizeof(pk));
	T_CHECK_EQ_INT(identity_cert_parse(back, cert, sizeof(cert) - 1), BFS_EMALFORMED);
	T_CHECK_EQ_INT(identity_cert_parse(back, cert, 0), BFS_EMALFORMED);
	cert[0] = 2;
	T_CHECK_EQ_INT(identity_cert_parse(back, cert, sizeof(cert)), BFS_EVERSION);
}

T_CASE(key_file_roundtrip)
{
	uint8_t pk[IDENTITY_PUBLIC_KEY_BYTES], sk[IDENTITY_SECRET_KEY_BYTES], back[IDENTITY_SECRET_KEY_BYTES];
	uint8_t file[IDENTITY_KEY_FILE_BYTES + 8], bad[IDENTITY_KEY_FILE_BYTES + 1];
	struct buf_writer w;

	T_CHECK_EQ_INT(identity_crypto_init(), 0);
	crypto_sign_keypair(pk, sk);
	buf_writer_init(&w, file, IDENTITY_KEY_FILE_BYTES - 1);
	T_CHECK_EQ_INT(identity_key_encode(&w, sk), -ENOSPC);
	T_CHECK_EQ_INT(buf_writer_len(&w), 0);
	buf_writer_init(&w, file, sizeof(file));
	T_CHECK_EQ_INT(identity_key_encode(&w, sk), 0);
	T_CHECK_EQ_INT(buf_writer_len(&w), IDENTITY_KEY_FILE_BYTES);
	T_CHECK_MEM(file, "bfsk\x01\x01", 6);
	T_CHECK_MEM(file + 6, sk, 32);
	T_CHECK_MEM(file + 38, pk, 32);
	T_CHECK_EQ_INT(identity_key_decode(back, file, IDENTITY_KEY_FILE_BYTES), 0);
	T_CHECK_MEM(back, sk, sizeof(sk));

	/* every single flipped bit is caught */
	for (size_t i = 0; i < IDENTITY_KEY_FILE_BYTES * 8; i++) {
		int rc;

		memcpy(bad, file, IDENTITY_KEY_FILE_BYTES);
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		rc = identity_key_decode(back, bad, IDENTITY_KEY_FILE_BYTES);
		if (rc != BFS_EMALFORMED && rc != BFS_EVERSION)
			T_FAIL("bit %zu flipped: rc %d", i, rc);
		if (!sodium_is_zero(back, sizeof(back)))
			T_FAIL("bit %zu flipped: secret not wiped", i);
	}
	/* every truncation, and one byte too many */
	for (size_t n = 0; n < IDENTITY_KEY_FILE_BYTES; n++)
		T_CHECK_EQ_INT(identity_key_decode(back, file, n), BFS_EMALFORMED);
	memcpy(bad, file, IDENTITY_KEY_FILE_BYTES);
	bad[IDENTITY_KEY_FILE_BYTES] = 0;
	T_CHECK_EQ_INT(identity_key_decode(back, bad, sizeof(bad)), BFS_EMALFORMED);
	memcpy(bad, file, IDENTITY_KEY_FILE_BYTES);
	bad[4] = 2;
	T_CHECK_EQ_INT(identity_key_decode(back, bad, IDENTITY_KEY_FILE_BYTES), BFS_EVERSION);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(file, sizeof(file));
}

T_CASE(addr_table)
{
	static const struct {
		const char *in, *host; /* host NULL: refused */
		unsigned port;
	} cases[] = {
		{ "rdv.example.net:1935", "rdv.example.net", 1935 },
		{ "RDV.Example.NET", "rdv.example.net", 1935 },
		{ "10.0.0.1:1", "10.0.0.1", 1 },
		{ "h:65535", "h", 65535 },
		{ "[::1]:2000", "::1", 2000 },
		{ "[FE80::1]", "fe80::1", 1935 },
		{ "h:65536", NULL, 0 },
		{ "h:0", NULL, 0 },
		{ "h:", NULL, 0 },
		{ ":1935", NULL, 0 },
		{ "", NULL, 0 },
		{ "::1", NULL, 0 },
		{ "h:12a", NULL, 0 },
		{ "h:+12", NULL, 0 },
		{ "h:000001", NULL, 0 },
		{ "h_x:1", NULL, 0 },
		{ "-h:1", NULL, 0 },
		{ "[]:1", NULL, 0 },
		{ "[1.2.3.4]:1", NULL, 0 },
		{ "[::1]x", NULL, 0 },
		{ "[::1", NULL, 0 },
		{ "h:1:2", NULL, 0 },
	};
	char host[IDENTITY_HOST_MAX + 1], text[IDENTITY_ADDR_TEXT_BYTES], again[IDENTITY_HOST_MAX + 1];
	uint16_t port, port2;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = identity_addr_parse(host, &port, cases[i].in, 1935);

		if (!cases[i].host) {
			if (rc != -EINVAL || host[0] || port)
				T_FAIL("'%s' accepted", cases[i].in);
			continue;
		}
		if (rc != 0 || strcmp(host, cases[i].host) != 0 || port != cases[i].port)
			T_FAIL("'%s' -> %d '%s' %u", cases[i].in, rc, host, port);
		identity_addr_format(text, host, port);
		T_CHECK_EQ_INT(identity_addr_parse(again, &port2, text, 1), 0);
		T_CHECK(strcmp(again, host) == 0 && port2 == port);
	}
	memset(text, 'a', 254);
	text[254] = '\0';
	T_CHECK_EQ_INT(identity_addr_parse(host, &port, text, 1), -EINVAL);
	text[253] = '\0';
	T_CHECK_EQ_INT(identity_addr_parse(host, &port, text, 1), 0);
}

T_CASE(config_roundtrip)
{
	struct identity_config c = { .name = "alice", .rdv_host = "::1", .rdv_port = 7 }, back;
	uint8_t buf[IDENTITY_CONFIG_MAX_BYTES];
	const char *want = "buddyfs-config 1\nname alice\nrendezvous [::1]:7\n";
	struct buf_writer w;

	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(identity_config_encode(&w, &c), 0);
	T_CHECK_EQ_INT(buf_writer_len(&w), strlen(want));
	T_CHECK_MEM(buf, want, strlen(want));
	T_CHECK_EQ_INT(identity_config_decode(&back, buf, buf_writer_len(&w)), 0);
	T_CHECK(strcmp(back.name, "alice") == 0 && strcmp(back.rdv_host, "::1") == 0 && back.rdv_port == 7);

	memset(&c, 0, sizeof(c));
	strcpy(c.name, "bob");
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(identity_config_encode(&w, &c), 0);
	T_CHECK_EQ_INT(identity_config_decode(&back, buf, buf_writer_len(&w)), 0);
	T_CHECK(strcmp(back.name, "bob") == 0 && back.rdv_host[0] == '\0' && back.rdv_port == 0);
	buf_writer_init(&w, buf, 10);
	T_CHECK_EQ_INT(identity_config_encode(&w, &c), -ENOSPC);
	strcpy(c.name, "Bob");
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(identity_config_encode(&w, &c), -EINVAL);
}

T_CASE(config_decode_table)
{
	static const struct {
		const char *text;
		int rc;
	} cases[] = {
		{ "buddyfs-config 1\nname a\n", 0 },
		{ "buddyfs-config 1\nname a", 0 },
		{ "buddyfs-config 1\n\n# comment\nname A\nrendezvous h\n", 0 },
		{ "buddyfs-config 2\nname a\n", BFS_EVERSION },
		{ "buddyfs-config 1\n", BFS_EMALFORMED },
		{ "", BFS_EMALFORMED },
		{ "name a\n", BFS_EMALFORMED },
		{ "buddyfs-config 1\nname a\nname b\n", BFS_EMALFORMED },
		{ "buddyfs-config 1\nname a/b\n", BFS_EMALFORMED },
		{ "buddyfs-config 1\nname a\ncolour blue\n", BFS_EMALFORMED },
		{ "buddyfs-config 1\nname a\nrendezvous h:0\n", BFS_EMALFORMED },
		{ "buddyfs-config 1\nname a\r\n", BFS_EMALFORMED },
		{ "buddyfs-config 1\nname\n", BFS_EMALFORMED },
		{ "buddyfs-config 1\nname a\nrendezvous h\nrendezvous h\n", BFS_EMALFORMED },
		{ "buddyfs-config 1 \nname a\n", BFS_EMALFORMED },
	};
	struct identity_config c;
	uint8_t big[IDENTITY_CONFIG_MAX_BYTES + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = identity_config_decode(&c, (const uint8_t *)cases[i].text, strlen(cases[i].text));

		if (rc != cases[i].rc)
			T_FAIL("case %zu: rc %d, want %d", i, rc, cases[i].rc);
	}
	T_CHECK_EQ_INT(identity_config_decode(&c, (const uint8_t *)"buddyfs-config 1\nname a\0\n", 25),
		       BFS_EMALFORMED);
	memset(big, '#', sizeof(big));
	memcpy(big, "buddyfs-config 1\nname a\n", 24);
	T_CHECK_EQ_INT(identity_config_decode(&c, big, sizeof(big)), BFS_EMALFORMED);
	T_CHECK_EQ_INT(identity_config_decode(&c, big, sizeof(big) - 1), 0);
}

T_CASE(home_resolve)
{
	char out[4096];

	T_CHECK_EQ_INT(identity_home_resolve(out, sizeof(out), "/x/y"), 0);
	T_CHECK(strcmp(out, "/x/y") == 0);
	T_CHECK_EQ_INT(identity_home_resolve(out, sizeof(out), ""), -ENOENT);
	setenv("BUDDYFS_HOME", "/b", 1);
	setenv("XDG_DATA_HOME", "/xdg", 1);
	setenv("HOME", "/h", 1);
	T_CHECK_EQ_INT(identity_home_resolve(out, sizeof(out), NULL), 0);
	T_CHECK(strcmp(out, "/b") == 0);
	setenv("BUDDYFS_HOME", "", 1);
	T_CHECK_EQ_INT(identity_home_resolve(out, sizeof(out), NULL), 0);
	T_CHECK(strcmp(out, "/xdg/buddyfs") == 0);
	setenv("XDG_DATA_HOME", "relative", 1);
	T_CHECK_EQ_INT(identity_home_resolve(out, sizeof(out), NULL), 0);
	T_CHECK(strcmp(out, "/h/.local/share/buddyfs") == 0);
	unsetenv("HOME");
	T_CHECK_EQ_INT(identity_home_resolve(out, sizeof(out), NULL), -ENOENT);
	T_CHECK_EQ_INT(identity_home_resolve(out, 4, "/long/path"), -ENAMETOOLONG);
	unsetenv("BUDDYFS_HOME");
	unsetenv("XDG_DATA_HOME");
}

T_CASE(create_load_roundtrip)
{
	char dir[64], home[128], path[256];
	uint8_t before[128], after[128], sig[IDENTITY_SIGNATURE_BYTES];
	struct identity *id = NULL, *loaded = NULL, *other = NULL;
	const char *failed = "x";
	struct stat st;
	long n1, n2;
	int rc;

	T_CHECK_EQ_INT(scratch(dir), 0);
	snprintf(home, sizeof(home), "%s/a/b/home", dir);
	T_CHECK_EQ_INT(identity_load(&loaded, home, &failed), BFS_ENOIDENT);
	T_CHECK(failed == NULL && loaded == NULL);
	T_CHECK_EQ_INT(identity_create(&id, home, "Alice", "", 0), BFS_EBADNAME);
	rc = identity_create(&id, home, "alice", "rdv.example.net", 1935);
	T_CHECK_EQ_INT(rc, 0);
	T_CHECK(stat(home, &st) == 0 && (st.st_mode & 07777) == 0700);
	snprintf(path, sizeof(path), "%s/a", dir);
	T_CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0700);
	snprintf(path, sizeof(path), "%s/identity.key", home);
	T_CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600);
	T_CHECK_EQ_INT(st.st_size, IDENTITY_KEY_FILE_BYTES);
	n1 = file_bytes(path, before, sizeof(before));

	T_CHECK_EQ_INT(identity_load(&loaded, home, &failed), 0);
	T_CHECK_MEM(loaded->peer_id, id->peer_id, IDENTITY_PEER_ID_BYTES);
	T_CHECK_MEM(loaded->cert, id->cert, IDENTITY_CERT_BYTES);
	T_CHECK_MEM(loaded->secret_key, id->secret_key, IDENTITY_SECRET_KEY_BYTES);
	T_CHECK(strcmp(loaded->config.name, "alice") == 0);
	T_CHECK(strcmp(loaded->config.rdv_host, "rdv.example.net") == 0 && loaded->config.rdv_port == 1935);
	T_CHECK_EQ_INT(loaded->cert[0], 1);
	T_CHECK_MEM(loaded->cert + 1, loaded->public_key, 32);

	identity_sign(sig, loaded, (const uint8_t *)"hello", 5);
	T_CHECK_EQ_INT(identity_verify(id->cert, sizeof(id->cert), sig, (const uint8_t *)"hello", 5), 0);
	T_CHECK_EQ_INT(identity_verify(id->cert, sizeof(id->cert), sig, (const uint8_t *)"hellO", 5),
		       BFS_EBADSIG);
	T_CHECK_EQ_INT(identity_verify(id->cert, 5, sig, (const uint8_t *)"hello", 5), BFS_EMALFORMED);

	/* a second create is refused and changes nothing */
	T_CHECK_EQ_INT(identity_create(&other, home, "bob", "", 0), -EEXIST);
	T_CHECK(other == NULL);
	n2 = file_bytes(path, after, sizeof(after));
	T_CHECK(n1 == IDENTITY_KEY_FILE_BYTES && n2 == n1);
	T_CHECK_MEM(before, after, (size_t)n1);
	identity_free(id);
	identity_free(loaded);
	id = loaded = NULL;
	identity_free(NULL);
	rm_tree(dir);
}

T_CASE(load_damaged)
{
	char dir[64], path[256];
	uint8_t key[128], cert[64];
	struct identity *id = NULL, *loaded = NULL;
	const char *failed = NULL;
	long n, nc;

	T_CHECK_EQ_INT(scratch(dir), 0);
	T_CHECK_EQ_INT(identity_create(&id, dir, "carol", "", 0), 0); /* existing dir 0700 */
	snprintf(path, sizeof(path), "%s/identity.key", dir);
	n = file_bytes(path, key, sizeof(key));
	T_CHECK_EQ_INT(n, IDENTITY_KEY_FILE_BYTES);

	/* a flipped byte in the seed */
	key[10] ^= 0x40;
	T_CHECK_EQ_INT(put_file(path, key, (size_t)n), 0);
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), BFS_EMALFORMED);
	T_CHECK(loaded == NULL && failed && strcmp(failed, IDENTITY_KEY_FILE) == 0);
	key[10] ^= 0x40;
	/* truncated, empty, garbage, too long */
	T_CHECK_EQ_INT(put_file(path, key, 20), 0);
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), BFS_EMALFORMED);
	T_CHECK_EQ_INT(put_file(path, "", 0), 0);
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), BFS_EMALFORMED);
	memset(key + 70, 'x', 2);
	T_CHECK_EQ_INT(put_file(path, "hello world, not a key file at all", 34), 0);
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), BFS_EMALFORMED);
	T_CHECK_EQ_INT(put_file(path, key, (size_t)n + 2), 0); /* too long */
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), BFS_EMALFORMED);
	T_CHECK(loaded == NULL);
	T_CHECK_EQ_INT(put_file(path, key, (size_t)n), 0);
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), 0);
	identity_free(loaded);
	loaded = NULL;

	/* a certificate of another key */
	snprintf(path, sizeof(path), "%s/cert", dir);
	nc = file_bytes(path, cert, sizeof(cert));
	T_CHECK_EQ_INT(nc, IDENTITY_CERT_BYTES);
	cert[5] ^= 1;
	T_CHECK_EQ_INT(put_file(path, cert, (size_t)nc), 0);
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), BFS_EMALFORMED);
	T_CHECK(failed && strcmp(failed, IDENTITY_CERT_FILE) == 0);
	cert[5] ^= 1;
	cert[0] = 9;
	T_CHECK_EQ_INT(put_file(path, cert, (size_t)nc), 0);
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), BFS_EVERSION);
	unlink(path);
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), -ENOENT);
	T_CHECK(failed && strcmp(failed, IDENTITY_CERT_FILE) == 0);
	cert[0] = 1;
	T_CHECK_EQ_INT(put_file(path, cert, (size_t)nc), 0);

	/* a damaged config */
	snprintf(path, sizeof(path), "%s/config", dir);
	T_CHECK_EQ_INT(put_file(path, "buddyfs-config 1\nname ..\n", 25), 0);
	T_CHECK_EQ_INT(identity_load(&loaded, dir, &failed), BFS_EMALFORMED);
	T_CHECK(failed && strcmp(failed, IDENTITY_CONFIG_FILE) == 0);
	T_CHECK(loaded == NULL);
	identity_free(id);
	id = NULL;
	rm_tree(dir);
}

/* make_identity - a scratch directory holding a fresh identity (freed here). */
static int make_identity(char dir[static 64])
{
	struct identity *id = NULL;
	int rc;

	if (scratch(dir) != 0)
		return -1;
	rc = identity_create(&id, dir, "dana", "", 0);
	identity_free(id);
	return rc;
}

static int file_mode(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* #1: a home that is a symbolic link is refused; the target is left alone. */
T_CASE(create_refuses_symlink_home)
{
	char dir[64], target[128], link[128], path[160], dangling[128];
	uint8_t got[64];
	struct identity *id = NULL;

	T_CHECK_EQ_INT(scratch(dir), 0);
	snprintf(target, sizeof(target), "%s/ssh", dir);
	snprintf(link, sizeof(link), "%s/home", dir);
	T_CHECK_EQ_INT(mkdir(target, 0755), 0);
	T_CHECK_EQ_INT(chmod(target, 0755), 0);
	snprintf(path, sizeof(path), "%s/config", target);
	T_CHECK_EQ_INT(put_file(path, "Host *\n", 7), 0);
	T_CHECK_EQ_INT(symlink(target, link), 0);
	T_CHECK_EQ_INT(identity_create(&id, link, "eve", "", 0), -ELOOP);
	T_CHECK(id == NULL);
	T_CHECK_EQ_INT(file_mode(target), 0755);
	T_CHECK_EQ_INT(file_bytes(path, got, sizeof(got)), 7);
	T_CHECK_MEM(got, "Host *\n", 7);
	snprintf(path, sizeof(path), "%s/identity.key", target);
	T_CHECK(access(path, F_OK) != 0);
	snprintf(path, sizeof(path), "%s/cert", target);
	T_CHECK(access(path, F_OK) != 0);

	/* an empty target and a dangling link are refused too */
	snprintf(path, sizeof(path), "%s/config", target);
	unlink(path);
	T_CHECK_EQ_INT(identity_create(&id, link, "eve", "", 0), -ELOOP);
	T_CHECK_EQ_INT(file_mode(target), 0755);
	snprintf(dangling, sizeof(dangling), "%s/dangling", dir);
	snprintf(path, sizeof(path), "%s/nowhere", dir);
	T_CHECK_EQ_INT(symlink(path, dangling), 0);
	T_CHECK_EQ_INT(identity_create(&id, dangling, "eve", "", 0), -ELOOP);
	T_CHECK(access(path, F_OK) != 0);
	rm_tree(dir);
}

/* #1: a non-empty directory that is not a buddyfs home is refused, untouched. */
T_CASE(create_refuses_foreign_dir)
{
	char dir[64], path[128];
	uint8_t got[64];
	struct identity *id = NULL;

	T_CHECK_EQ_INT(scratch(dir), 0);
	T_CHECK_EQ_INT(chmod(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/known_hosts", dir);
	T_CHECK_EQ_INT(put_file(path, "h ssh-ed25519 AAAA\n", 19), 0);
	snprintf(path, sizeof(path), "%s/config", dir);
	T_CHECK_EQ_INT(put_file(path, "Host *\n", 7), 0);
	T_CHECK_EQ_INT(identity_create(&id, dir, "eve", "", 0), -ENOTEMPTY);
	T_CHECK(id == NULL);
	T_CHECK_EQ_INT(file_mode(dir), 0755);
	T_CHECK_EQ_INT(file_bytes(path, got, sizeof(got)), 7);
	T_CHECK_MEM(got, "Host *\n", 7);

	/* a lone config or cert that is not ours counts as foreign as well */
	snprintf(path, sizeof(path), "%s/known_hosts", dir);
	unlink(path);
	T_CHECK_EQ_INT(identity_create(&id, dir, "eve", "", 0), -ENOTEMPTY);
	snprintf(path, sizeof(path), "%s/config", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/cert", dir);
	T_CHECK_EQ_INT(put_file(path, "-----BEGIN CERTIFICATE-----\n", 28), 0);
	T_CHECK_EQ_INT(identity_create(&id, dir, "eve", "", 0), -ENOTEMPTY);
	T_CHECK_EQ_INT(file_bytes(path, got, sizeof(got)), 28);
	unlink(path);
	/* an unknown subdirectory is foreign */
	snprintf(path, sizeof(path), "%s/sub", dir);
	T_CHECK_EQ_INT(mkdir(path, 0700), 0);
	T_CHECK_EQ_INT(identity_create(&id, dir, "eve", "", 0), -ENOTEMPTY);
	rmdir(path);
	/* emptied: accepted */
	T_CHECK_EQ_INT(identity_create(&id, dir, "eve", "", 0), 0);
	T_CHECK_EQ_INT(file_mode(dir), 0700);
	identity_free(id);
	rm_tree(dir);
}

/*
 * #1, #3: what an init that stopped before its key file leaves behind (our
 * cert, our config, temporary files named with the pid we have now) does not
 * block the next init; the temporary files are removed.
 */
T_CASE(create_resumes_own_leftovers)
{
	char dir[64], path[160], home2[64];
	static const char *const files[] = { "identity.key", "cert", "config" };
	struct identity *id = NULL;

	T_CHECK_EQ_INT(make_identity(home2), 0);
	T_CHECK_EQ_INT(scratch(dir), 0);
	for (size_t i = 1; i < 3; i++) { /* cert and config of another, unfinished init */
		char from[160];
		uint8_t buf[256];
		long n;

		snprintf(from, sizeof(from), "%s/%s", home2, files[i]);
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		n = file_bytes(from, buf, sizeof(buf));
		T_CHECK(n > 0 && put_file(path, buf, (size_t)n) == 0);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/.%s.tmp.%ld", dir, files[i], (long)getpid());
		T_CHECK_EQ_INT(put_file(path, "stale", 5), 0);
	}
	snprintf(path, sizeof(path), "%s/store", dir);
	T_CHECK_EQ_INT(mkdir(path, 0700), 0);
	T_CHECK_EQ_INT(identity_create(&id, dir, "frank", "", 0), 0);
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/.%s.tmp.%ld", dir, files[i], (long)getpid());
		T_CHECK(access(path, F_OK) != 0);
	}
	identity_free(id);
	id = NULL;
	T_CHECK_EQ_INT(identity_load(&id, dir, NULL), 0);
	T_CHECK(id && strcmp(id->config.name, "frank") == 0);
	identity_free(id);
	rm_tree(dir);
	rm_tree(home2);
}

/* #1, #2: a home of another user is refused by create and load. */
T_CASE(home_of_other_user_refused)
{
	char dir[64], path[128];
	struct identity *id = NULL;
	const char *failed = "x";

	if (geteuid() != 0) {
		/* only root can give a directory away: use one that root owns */
		T_CHECK_EQ_INT(identity_create(&id, "/", "eve", "", 0), -EPERM);
		T_CHECK_EQ_INT(identity_load(&id, "/", &failed), -EPERM);
		return;
	}
	T_CHECK_EQ_INT(scratch(dir), 0);
	snprintf(path, sizeof(path), "%s/h", dir);
	T_CHECK_EQ_INT(mkdir(path, 0700), 0);
	T_CHECK_EQ_INT(chown(path, 65534, 65534), 0);
	T_CHECK_EQ_INT(identity_create(&id, path, "eve", "", 0), -EPERM);
	T_CHECK(id == NULL);
	T_CHECK_EQ_INT(chown(path, 0, 0), 0);
	T_CHECK_EQ_INT(identity_create(&id, path, "eve", "", 0), 0);
	identity_free(id);
	id = NULL;
	T_CHECK_EQ_INT(chown(path, 65534, 65534), 0);
	T_CHECK_EQ_INT(identity_load(&id, path, &failed), -EPERM);
	T_CHECK(id == NULL && failed == NULL);
	rm_tree(dir);
}

/* #2: a key file that group or others may read is refused, like OpenSSH does. */
T_CASE(load_refuses_open_key_mode)
{
	static const int modes[] = { 0644, 0640, 0604, 0620, 0602, 0660, 0666 };
	char dir[64], path[128];
	struct identity *id = NULL;
	const char *failed = NULL;

	T_CHECK_EQ_INT(make_identity(dir), 0);
	snprintf(path, sizeof(path), "%s/identity.key", dir);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		T_CHECK_EQ_INT(chmod(path, (mode_t)modes[i]), 0);
		if (identity_load(&id, dir, &failed) != -EACCES || id)
			T_FAIL("mode %04o accepted", modes[i]);
		T_CHECK(failed && strcmp(failed, IDENTITY_KEY_FILE) == 0);
		identity_free(id);
		id = NULL;
	}
	T_CHECK_EQ_INT(chmod(path, 0400), 0);
	T_CHECK_EQ_INT(identity_load(&id, dir, &failed), 0);
	identity_free(id);
	id = NULL;
	T_CHECK_EQ_INT(chmod(path, 0600), 0);
	T_CHECK_EQ_INT(identity_load(&id, dir, &failed), 0);
	identity_free(id);
	rm_tree(dir);
}

/* #2: no file of the home, nor the home, is read through a symbolic link. */
T_CASE(load_refuses_symlinks)
{
	static const char *const files[] = { "identity.key", "cert", "config" };
	char dir[64], other[64], path[160], target[160], link[160];
	struct identity *id = NULL;
	const char *failed = NULL;

	T_CHECK_EQ_INT(make_identity(dir), 0);
	T_CHECK_EQ_INT(scratch(other), 0);
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		snprintf(target, sizeof(target), "%s/%s", other, files[i]);
		T_CHECK_EQ_INT(rename(path, target), 0);
		T_CHECK_EQ_INT(symlink(target, path), 0);
		T_CHECK_EQ_INT(identity_load(&id, dir, &failed), -ELOOP);
		T_CHECK(id == NULL && failed && strcmp(failed, files[i]) == 0);
		T_CHECK_EQ_INT(unlink(path), 0);
		T_CHECK_EQ_INT(rename(target, path), 0);
	}
	T_CHECK_EQ_INT(identity_load(&id, dir, &failed), 0);
	identity_free(id);
	id = NULL;
	snprintf(link, sizeof(link), "%s/link", other);
	T_CHECK_EQ_INT(symlink(dir, link), 0);
	T_CHECK_EQ_INT(identity_load(&id, link, &failed), -ELOOP);
	T_CHECK(id == NULL && failed == NULL);
	rm_tree(dir);
	rm_tree(other);
}

/* #4: signatures with a context verify only under the same context. */
T_CASE(sign_ctx_domain_separation)
{
	char dir[64], longctx[IDENTITY_SIGN_CTX_MAX_BYTES + 2];
	uint8_t sig[IDENTITY_SIGNATURE_BYTES], raw[IDENTITY_SIGNATURE_BYTES], sig2[IDENTITY_SIGNATURE_BYTES];
	const uint8_t *msg = (const uint8_t *)"hello";
	struct identity *id = NULL;

	T_CHECK_EQ_INT(scratch(dir), 0);
	T_CHECK_EQ_INT(identity_create(&id, dir, "gina", "", 0), 0);
	T_CHECK_EQ_INT(identity_sign_ctx(sig, id, "buddyfs-test v1", msg, 5), 0);
	T_CHECK_EQ_INT(identity_verify_ctx(id->cert, sizeof(id->cert), sig, "buddyfs-test v1", msg, 5), 0);
	T_CHECK_EQ_INT(identity_verify_ctx(id->cert, sizeof(id->cert), sig, "buddyfs-test v2", msg, 5),
		       BFS_EBADSIG);
	T_CHECK_EQ_INT(identity_verify_ctx(id->cert, sizeof(id->cert), sig, "buddyfs-test v1",
					   (const uint8_t *)"hellO", 5), BFS_EBADSIG);
	/* never a plain signature, either way round */
	T_CHECK_EQ_INT(identity_verify(id->cert, sizeof(id->cert), sig, msg, 5), BFS_EBADSIG);
	identity_sign(raw, id, msg, 5);
	T_CHECK_EQ_INT(identity_verify_ctx(id->cert, sizeof(id->cert), raw, "buddyfs-test v1", msg, 5),
		       BFS_EBADSIG);
	/* the context's length is signed: ("ab", "c") is not ("a", "bc") */
	T_CHECK_EQ_INT(identity_sign_ctx(sig2, id, "ab", (const uint8_t *)"c", 1), 0);
	T_CHECK_EQ_INT(identity_verify_ctx(id->cert, sizeof(id->cert), sig2, "a", (const uint8_t *)"bc", 2),
		       BFS_EBADSIG);
	T_CHECK_EQ_INT(identity_verify_ctx(id->cert, sizeof(id->cert), sig2, "ab", (const uint8_t *)"c", 1), 0);
	/* an empty message is fine; bad contexts are refused */
	T_CHECK_EQ_INT(identity_sign_ctx(sig2, id, "x", NULL, 0), 0);
	T_CHECK_EQ_INT(identity_verify_ctx(id->cert, sizeof(id->cert), sig2, "x", NULL, 0), 0);
	memset(longctx, 'c', sizeof(longctx));
	longctx[IDENTITY_SIGN_CTX_MAX_BYTES] = '\0';
	T_CHECK_EQ_INT(identity_sign_ctx(sig2, id, longctx, msg, 5), 0);
	longctx[IDENTITY_SIGN_CTX_MAX_BYTES] = 'c';
	longctx[IDENTITY_SIGN_CTX_MAX_BYTES + 1] = '\0';
	T_CHECK_EQ_INT(identity_sign_ctx(sig2, id, longctx, msg, 5), -EINVAL);
	T_CHECK(sodium_is_zero(sig2, sizeof(sig2)));
	T_CHECK_EQ_INT(identity_sign_ctx(sig2, id, "", msg, 5), -EINVAL);
	T_CHECK_EQ_INT(identity_sign_ctx(sig2, id, "tab\there", msg, 5), -EINVAL);
	T_CHECK_EQ_INT(identity_verify_ctx(id->cert, sizeof(id->cert), sig, "", msg, 5), -EINVAL);
	T_CHECK_EQ_INT(identity_verify_ctx(id->cert, 3, sig, "buddyfs-test v1", msg, 5), BFS_EMALFORMED);
	identity_free(id);
	rm_tree(dir);
}

int main(void)
{
	T_RUN(name_table);
	T_RUN(peer_id_hex);
	T_RUN(cert_and_peer_id);
	T_RUN(key_file_roundtrip);
	T_RUN(addr_table);
	T_RUN(config_roundtrip);
	T_RUN(config_decode_table);
	T_RUN(home_resolve);
	T_RUN(create_load_roundtrip);
	T_RUN(load_damaged);
	T_RUN(create_refuses_symlink_home);
	T_RUN(create_refuses_foreign_dir);
	T_RUN(create_resumes_own_leftovers);
	T_RUN(home_of_other_user_refused);
	T_RUN(load_refuses_open_key_mode);
	T_RUN(load_refuses_symlinks);
	T_RUN(sign_ctx_domain_separation);
	return t_done();
}
