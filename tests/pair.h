/*
 * pair.h - the loopback harness that tests and benches share for nodes in
 * one process: each node has a temp home with an identity, its sodium
 * crypto profile and a store, and a real RTMFP instance (rtmfp_posix) on
 * 127.0.0.1, all on one loop.  Owns: making and removing a node's home and
 * instance, opening a flow from one node to another, pinning one node as
 * the other's buddy, running the loop for a while, and the rtmfp-to-sync
 * callbacks (their ctx is a struct sync **).
 *
 * Leaves to the includer: its own node struct (which embeds a struct
 * pair_node), the protocol module behind the instance (sync, xfer or a
 * hand-made peer), which callbacks to wire, and what to check.
 *
 * Static inline functions: include it from one .c file per binary (tests
 * get -Itests; a bench includes "../tests/pair.h").
 */
#ifndef BUDDYFS_TESTS_PAIR_H
#define BUDDYFS_TESTS_PAIR_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buddyfs/identity.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/sync.h"
#include "buddyfs/udp.h"

#define PAIR_HOME_BYTES 64

/* pair_node - what every node of the harness has; embed it in the test's node. */
struct pair_node {
	char home[PAIR_HOME_BYTES];   /* a mkdtemp template until pair_node_open */
	struct identity *id;
	struct rtmfp_crypto *crypto;
	struct rtmfp_posix *px;       /* NULL while stopped */
	struct store *store;
	struct sockaddr_storage bound; /* where px listens */
};

static inline int pair_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* pair_rm_rf - remove @dir and everything under it (errors ignored). */
static inline void pair_rm_rf(const char *dir)
{
	nftw(dir, pair_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* pair_fast_params - RTMFP timers short enough for tests: keepalive 0.5 s, give up after 2 s, open 3 s. */
static inline struct rtmfp_params pair_fast_params(void)
{
	struct rtmfp_params p;

	rtmfp_params_default(&p);
	p.keepalive_ns = LOOP_NS_PER_S / 2;
	p.retransmit_limit_ns = 2 * LOOP_NS_PER_S;
	p.open_timeout_ns = 3 * LOOP_NS_PER_S;
	return p;
}

/*
 * pair_node_open - make the home from the mkdtemp template in @p->home, an
 * identity named @name in it, its crypto profile and its store.  Returns 0
 * or the first error; pair_node_close() frees what was made either way.
 */
static inline int pair_node_open(struct pair_node *p, const char *name)
{
	int rc;

	if (!mkdtemp(p->home))
		return -errno;
	rc = identity_create(&p->id, p->home, name, "", 0);
	if (rc == 0)
		rc = rtmfp_crypto_sodium_new(&p->crypto, p->id->secret_key, NULL, 0, 0);
	if (rc == 0)
		rc = store_open(&p->store, p->home, 0);
	return rc;
}

/*
 * pair_node_listen - start @p's instance on 127.0.0.1 (a free port, kept in
 * @p->bound) on @loop, with callbacks @cb and their @ctx, @rp (NULL: the
 * defaults).
 */
static inline int pair_node_listen(struct pair_node *p, struct loop *loop, const struct rtmfp_callbacks *cb,
				   void *ctx, const struct rtmfp_params *rp)
{
	struct sockaddr_storage any;
	int rc;

	udp_addr_parse(&any, "127.0.0.1:0", 0);
	rc = rtmfp_posix_new(&p->px, loop, p->crypto, cb, ctx, rp, &any);
	if (rc)
		return rc;
	return udp_local(rtmfp_posix_udp(p->px), &p->bound);
}

/* pair_node_stop - the instance vanishes without a word to the far end (as kill -9). */
static inline void pair_node_stop(struct pair_node *p)
{
	rtmfp_posix_free(p->px);
	p->px = NULL;
}

/* pair_node_close - stop @p, free its store, crypto and identity, remove its home; @p is zeroed. */
static inline void pair_node_close(struct pair_node *p)
{
	pair_node_stop(p);
	store_close(p->store);
	rtmfp_crypto_free(p->crypto);
	identity_free(p->id);
	if (p->home[0])
		pair_rm_rf(p->home);
	memset(p, 0, sizeof(*p));
}

/* pair_open_flow - a flow from @from to @peer_id at @to's address, as a daemon's open_flow. */
static inline int pair_open_flow(struct pair_node *from, const struct pair_node *to,
				 const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
				 size_t meta_len, struct rtmfp_send **out)
{
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES];

	rtmfp_crypto_sodium_epd_peer_id(epd, peer_id);
	return rtmfp_open_flow(rtmfp_posix_core(from->px), out, epd, sizeof(epd), meta, meta_len, &to->bound, 1,
			       rtmfp_posix_now());
}

/* pair_add_buddy - @n pins @b's certificate as buddy @name in @state (as `buddy add` does). */
static inline int pair_add_buddy(struct pair_node *n, const struct pair_node *b, const char *name, uint8_t state)
{
	struct store_peer p;

	memset(&p, 0, sizeof(p));
	memcpy(p.id, b->id->peer_id, 32);
	snprintf(p.name, sizeof(p.name), "%s", name);
	memcpy(p.cert, b->id->cert, IDENTITY_CERT_BYTES);
	p.cert_len = IDENTITY_CERT_BYTES;
	p.buddy = state;
	return store_peer_put(n->store, &p);
}

/* pair_run_for - run @loop for @ns. */
/*
 * pair_manifest - write @len bytes of @data to the file @path and make @n's
 * signed manifest of it (@bp NULL: the defaults): *out (the caller frees
 * it), its encoding *bytes (*blen bytes, valid while *out lives) and its
 * hash.  0, -errno or the manifest module's error (then *out is NULL).
 */
static inline int pair_manifest(const struct pair_node *n, const char *path, const void *data, size_t len,
				const struct manifest_build_params *bp, struct manifest **out, const uint8_t **bytes,
				size_t *blen, uint8_t hash[32])
{
	struct manifest *m = NULL;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc;

	*out = NULL;
	if (fd < 0)
		return -errno;
	rc = write(fd, data, len) == (ssize_t)len ? 0 : -EIO;
	if (rc == 0)
		rc = manifest_build(&m, fd, n->id->peer_id, bp);
	close(fd);
	if (rc == 0)
		rc = manifest_sign(m, n->id->secret_key);
	if (rc == 0)
		rc = manifest_bytes(m, bytes, blen);
	if (rc == 0)
		rc = manifest_hash(m, hash);
	if (rc) {
		manifest_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

static inline void pair_run_for(struct loop *loop, uint64_t ns)
{
	uint64_t end = loop_clock_ns() + ns;

	while (loop_clock_ns() < end)
		loop_run_once(loop, 10 * LOOP_NS_PER_MS);
}

/* ---- rtmfp events to sync; the callbacks' ctx is the node's struct sync ** ---- */

static inline void pair_sync_session_opened(void *ctx, struct rtmfp_session *s)
{
	sync_on_session_opened(*(struct sync **)ctx, s);
}

static inline void pair_sync_session_closed(void *ctx, struct rtmfp_session *s, int err)
{
	sync_on_session_closed(*(struct sync **)ctx, s, err);
}

/* pair_sync_recv_flow - a flow sync does not take is closed. */
static inline void pair_sync_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t len,
				       struct rtmfp_send *assoc)
{
	if (!sync_on_recv_flow(*(struct sync **)ctx, f, meta, len, assoc))
		rtmfp_recv_close(f, rtmfp_posix_now());
}

static inline void pair_sync_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	sync_on_message(*(struct sync **)ctx, f, msg, len);
}

static inline void pair_sync_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	sync_on_recv_closed(*(struct sync **)ctx, f, err);
}

static inline void pair_sync_writable(void *ctx, struct rtmfp_send *f)
{
	sync_on_writable(*(struct sync **)ctx, f);
}

static inline void pair_sync_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	sync_on_send_closed(*(struct sync **)ctx, f, err);
}

#endif
