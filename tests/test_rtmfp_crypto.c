/*
 * test_rtmfp_crypto.c - the profile interface and both profiles: the plain
 * checksum and packet format against fixed vectors (cross-checked with
 * rtmfp-cpp's PlainCryptoAdapter), and the sodium key exchange, packets,
 * replay window, signatures, EPDs and glare.
 */
#include <errno.h>
#include <sodium.h>

#include "t.h"

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_plain.h"
#include "buddyfs/rtmfp_crypto_sodium.h"

/* ref_cksum - an independent Internet checksum: the ones'-complement sum
 * of 16-bit words, the odd last byte taken as a word 0x00XX (rtmfp-cpp). */
static uint16_t ref_cksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		/* a high byte when a partner follows, else a low byte */
		sum += (i % 2 == 0 && i + 1 < len) ? (uint32_t)p[i] << 8 : p[i];
		while (sum > 0xffff) /* end-around carry at each step */
			sum = (sum & 0xffff) + 1;
	}
	return (uint16_t)(~sum & 0xffff);
}

T_CASE(in_cksum_vectors)
{
	/* RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to 2ddf0 -> ddf2. */
	static const uint8_t v[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0x12 };
	static const uint8_t ones[] = { 0xff, 0xff, 0xff, 0xff };
	uint8_t big[1001];
	size_t i;

	T_CHECK_EQ_INT(rtmfp_crypto_in_cksum(v, 8), 0x220d);
	/* odd: 0x12 is the LOW byte of a last word: ddf2 + 0012 = de04 -> 21fb
	 * (RFC 1071 padding would give 100d).  Both values match rtmfp-cpp's
	 * in_cksum() from src/Checksums.cpp, compiled and run on these bytes. */
	T_CHECK_EQ_INT(rtmfp_crypto_in_cksum(v, 9), 0x21fb);
	T_CHECK_EQ_INT(rtmfp_crypto_in_cksum(v + 8, 1), 0xffed);
	T_CHECK_EQ_INT(rtmfp_crypto_in_cksum(v, 0), 0xffff);
	T_CHECK_EQ_INT(rtmfp_crypto_in_cksum(ones, 4), 0x0000);
	T_CHECK_EQ_INT(rtmfp_crypto_in_cksum(ones, 3), 0xff00); /* ~(ffff + 00ff) */
	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 37 + 11);
	for (i = 0; i <= sizeof(big); i += 7)
		T_CHECK_EQ_INT(rtmfp_crypto_in_cksum(big, i), ref_cksum(big, i));
	T_CHECK_EQ_INT(rtmfp_crypto_in_cksum(big, sizeof(big)), ref_cksum(big, sizeof(big)));
	T_CHECK_EQ_INT(rtmfp_crypto_in_cksum(big, sizeof(big) - 1), ref_cksum(big, sizeof(big) - 1));
}

T_CASE(profile_lookup)
{
	struct rtmfp_crypto *c = NULL;
	struct rtmfp_crypto_params none = { 0 };

	T_CHECK(rtmfp_crypto_profile_find(NULL) == &rtmfp_crypto_sodium_ops);
	T_CHECK(rtmfp_crypto_profile_find("sodium") == &rtmfp_crypto_sodium_ops);
	T_CHECK(rtmfp_crypto_profile_find("plain") == &rtmfp_crypto_plain_ops);
	T_CHECK(rtmfp_crypto_profile_find("flash") == NULL);
	T_CHECK_EQ_INT(rtmfp_crypto_new(&c, "flash", &none), -ENOENT);
	T_CHECK_EQ_INT(rtmfp_crypto_new(&c, "plain", &none), -EINVAL);
	T_CHECK_EQ_INT(rtmfp_crypto_new(&c, NULL, &none), -EINVAL);
	T_CHECK(c == NULL);
}

/* ---- plain ---- */

/* The cleartext packet of the cross-check: flags 0x0b, timestamp 0x1234,
 * then an IHello-looking chunk.  Expected bytes were produced by rtmfp-cpp's
 * PlainCryptoAdapter (key->encrypt) with rx salt 0x4567, SKRC 12 34. */
static const uint8_t plain_p[] = { 0x0b, 0x12, 0x34, 0x30, 0x00, 0x03, 0x01, 0x02, 0x03 };
static const char *plain_pkt0 = "0b1234300003010203ffffffffffffffffffffffffffffffffbaba";
static const char *plain_pkt1 = "0b1234300003010203ffffffffffffffffffffffffffffffffccee";
static const char *plain_pkt2 = "0b12343000030102ffffffffffffffffffffffffffffffffd1ec";

T_CASE(plain_matches_rtmfp_cpp)
{
	struct rtmfp_crypto *a = NULL, *b = NULL;
	struct rtmfp_crypto_cert *bc = NULL, *ac = NULL;
	struct rtmfp_crypto_key *ka = NULL, *kb = NULL;
	uint8_t pkt[128], want[128], skic[8], skrc[8];
	size_t n, skic_len, skrc_len, off, clen, wn;

	T_CHECK_EQ_INT(rtmfp_crypto_plain_new(&a, "alice", 5), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_plain_new(&b, "bob", 3), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_overhead_bytes(a), 18);
	T_CHECK_EQ_INT(rtmfp_crypto_front_bytes(a), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a, (const uint8_t *)"bob", 3, &bc), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(b, (const uint8_t *)"alice", 5, &ac), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_new(a, &ka), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_new(b, &kb), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_plain_key_set_salt(ka, 0x4567), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_plain_key_set_salt(kb, 0x1234), 0);

	/* before completion: salt 0, same bytes as the default key */
	memcpy(pkt, plain_p, sizeof(plain_p));
	T_CHECK_EQ_INT(rtmfp_crypto_key_seal(ka, pkt, sizeof(pkt), sizeof(plain_p), &n), 0);
	wn = t_unhex(want, sizeof(want), plain_pkt0);
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(pkt, want, n);
	memcpy(pkt, plain_p, sizeof(plain_p));
	T_CHECK_EQ_INT(rtmfp_crypto_seal_default(b, pkt, sizeof(pkt), sizeof(plain_p), &n), 0);
	T_CHECK_MEM(pkt, want, n);
	T_CHECK_EQ_INT(rtmfp_crypto_open_default(b, pkt, n, &off, &clen), 0);
	T_CHECK_EQ_INT(off, 0);
	T_CHECK_EQ_INT(clen, sizeof(plain_p) + 16); /* pad handed on, as rtmfp-cpp */

	/* keying: SKIC = our salt big-endian */
	T_CHECK_EQ_INT(rtmfp_crypto_key_initiator_skic(ka, bc, skic, sizeof(skic), &skic_len), 0);
	T_CHECK_EQ_INT(skic_len, 2);
	T_CHECK(skic[0] == 0x45 && skic[1] == 0x67);
	T_CHECK(!rtmfp_crypto_key_is_complete(ka));
	T_CHECK_EQ_INT(rtmfp_crypto_key_responder(kb, ac, skic, 1, skrc, sizeof(skrc), &skrc_len),
		       BFS_EMALFORMED);
	T_CHECK_EQ_INT(rtmfp_crypto_key_responder(kb, ac, skic, skic_len, skrc, sizeof(skrc), &skrc_len), 0);
	T_CHECK(rtmfp_crypto_key_is_complete(kb));
	T_CHECK_EQ_INT(skrc_len, 2);
	T_CHECK(skrc[0] == 0x12 && skrc[1] == 0x34);
	T_CHECK_EQ_INT(rtmfp_crypto_key_initiator_complete(ka, skrc, skrc_len), 0);
	T_CHECK(rtmfp_crypto_key_is_complete(ka));

	/* complete: checksum + far salt 0x1234 */
	memcpy(pkt, plain_p, sizeof(plain_p));
	T_CHECK_EQ_INT(rtmfp_crypto_key_seal(ka, pkt, sizeof(pkt), sizeof(plain_p), &n), 0);
	wn = t_unhex(want, sizeof(want), plain_pkt1);
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(pkt, want, n);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(kb, pkt, n, &off, &clen), 0);
	T_CHECK_MEM(pkt + off, plain_p, sizeof(plain_p));
	/* the responder's key no longer takes salt-0 packets */
	wn = t_unhex(want, sizeof(want), plain_pkt0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(kb, want, wn, &off, &clen), BFS_ECRYPTO);

	/* even-length P */
	memcpy(pkt, plain_p, 8);
	T_CHECK_EQ_INT(rtmfp_crypto_key_seal(ka, pkt, sizeof(pkt), 8, &n), 0);
	wn = t_unhex(want, sizeof(want), plain_pkt2);
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(pkt, want, n);

	/* and back: b adds a's salt 0x4567, a subtracts its own */
	memcpy(pkt, plain_p, sizeof(plain_p));
	T_CHECK_EQ_INT(rtmfp_crypto_key_seal(kb, pkt, sizeof(pkt), sizeof(plain_p), &n), 0);
	T_CHECK_EQ_INT(buf_load16_be(pkt + n - 2), (0xbaba + 0x4567) & 0xffff);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(ka, pkt, n, &off, &clen), 0);

	rtmfp_crypto_key_free(ka);
	rtmfp_crypto_key_free(kb);
	rtmfp_crypto_cert_free(ac);
	rtmfp_crypto_cert_free(bc);
	rtmfp_crypto_free(a);
	rtmfp_crypto_free(b);
}

T_CASE(plain_rules)
{
	struct rtmfp_crypto *a = NULL;
	struct rtmfp_crypto_cert *c1 = NULL, *c2 = NULL, *c3 = NULL;
	const uint8_t *p;
	uint8_t pkt[64], sig[8], id[32];
	size_t n, off, clen, i;

	memset(pkt, 0x33, sizeof(pkt));
	T_CHECK_EQ_INT(rtmfp_crypto_plain_new(&a, "bob", 3), 0);
	rtmfp_crypto_local_cert(a, &p, &n);
	T_CHECK(n == 3 && memcmp(p, "bob", 3) == 0);
	rtmfp_crypto_local_epd(a, &p, &n);
	T_CHECK(n == 3 && memcmp(p, "bob", 3) == 0);
	T_CHECK(rtmfp_crypto_is_selected(a, (const uint8_t *)"bob", 3));
	T_CHECK(!rtmfp_crypto_is_selected(a, (const uint8_t *)"bo", 2));
	T_CHECK(!rtmfp_crypto_is_selected(a, (const uint8_t *)"bobb", 4));
	T_CHECK(!rtmfp_crypto_is_selected(a, NULL, 0));
	T_CHECK_EQ_INT(rtmfp_crypto_sign(a, RTMFP_CRYPTO_SIG_IIKEYING, pkt, 10, NULL, 0, sig, sizeof(sig), &n), 0);
	T_CHECK(n == 1 && sig[0] == 'X');
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a, NULL, 0, &c1), BFS_EMALFORMED);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a, (const uint8_t *)"alice", 5, &c1), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a, (const uint8_t *)"bobby", 5, &c2), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a, (const uint8_t *)"alice", 5, &c3), 0);
	/* any signature is good */
	T_CHECK_EQ_INT(rtmfp_crypto_cert_verify(c1, RTMFP_CRYPTO_SIG_RIKEYING, pkt, 3, pkt, 3,
						(const uint8_t *)"nonsense", 8), 0);
	T_CHECK(rtmfp_crypto_cert_selected(c1, (const uint8_t *)"alice", 5));
	T_CHECK(!rtmfp_crypto_cert_selected(c1, (const uint8_t *)"Alice", 5));
	/* glare: smaller identity wins; "bob" < "bobby" (prefix), "alice" < "bob" */
	T_CHECK(!rtmfp_crypto_near_wins_glare(a, c1));
	T_CHECK(rtmfp_crypto_near_wins_glare(a, c2));
	T_CHECK(rtmfp_crypto_cert_overrides(c1, c3));
	T_CHECK(!rtmfp_crypto_cert_overrides(c1, c2));
	rtmfp_crypto_cert_peer_id(c1, id);
	crypto_hash_sha256(pkt, (const uint8_t *)"alice", 5);
	T_CHECK_MEM(id, pkt, 32);

	/* any corrupted byte is caught (a one-bit flip changes a ones'-complement sum) */
	for (i = 0; i < sizeof(plain_p) + 18; i++) {
		memcpy(pkt, plain_p, sizeof(plain_p));
		T_CHECK_EQ_INT(rtmfp_crypto_seal_default(a, pkt, sizeof(pkt), sizeof(plain_p), &n), 0);
		pkt[i] ^= 0x10;
		T_CHECK_EQ_INT(rtmfp_crypto_open_default(a, pkt, n, &off, &clen), BFS_ECRYPTO);
	}
	/* sizes */
	T_CHECK_EQ_INT(rtmfp_crypto_seal_default(a, pkt, 18, 1, &n), BFS_ETOOBIG);
	T_CHECK_EQ_INT(rtmfp_crypto_seal_default(a, pkt, 19, 1, &n), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_seal_default(a, pkt, 19, 0, &n), -EINVAL);
	T_CHECK_EQ_INT(rtmfp_crypto_open_default(a, pkt, 2, &off, &clen), BFS_EMALFORMED);
	/* rtmfp-cpp accepts a 3-byte packet without pad */
	pkt[0] = 0x0b;
	buf_store16_be(pkt + 1, rtmfp_crypto_in_cksum(pkt, 1));
	T_CHECK_EQ_INT(rtmfp_crypto_open_default(a, pkt, 3, &off, &clen), 0);
	T_CHECK_EQ_INT(clen, 1);

	rtmfp_crypto_cert_free(c1);
	rtmfp_crypto_cert_free(c2);
	rtmfp_crypto_cert_free(c3);
	rtmfp_crypto_free(a);
}

/* ---- sodium ---- */

struct end {
	struct rtmfp_crypto *c;
	uint8_t sk[64];
	uint8_t id[32];
};

static int end_make(struct end *e, const char *name, unsigned int flags)
{
	uint8_t pk[32];
	int rc;

	crypto_sign_keypair(pk, e->sk);
	rc = rtmfp_crypto_sodium_new(&e->c, e->sk, (const uint8_t *)name, name ? strlen(name) : 0, flags);
	if (rc == 0)
		rtmfp_crypto_local_peer_id(e->c, e->id);
	return rc;
}

/* A handshake as the session layer runs it; fake isid/cookie/rsid bytes. */
struct hs {
	struct rtmfp_crypto_cert *r_cert; /* at the initiator */
	struct rtmfp_crypto_cert *i_cert; /* at the responder */
	struct rtmfp_crypto_key *ki, *kr;
	uint8_t skic[RTMFP_CRYPTO_MAX_SKIC_BYTES], skrc[RTMFP_CRYPTO_MAX_SKRC_BYTES];
	size_t skic_len, skrc_len;
	uint8_t iik[512], rik[256];       /* signed parameters */
	size_t iik_len, rik_len;
	uint8_t isig[64], rsig[64];
	size_t isig_len, rsig_len;
};

static void hs_free(struct hs *h)
{
	rtmfp_crypto_cert_free(h->r_cert);
	rtmfp_crypto_cert_free(h->i_cert);
	rtmfp_crypto_key_free(h->ki);
	rtmfp_crypto_key_free(h->kr);
	memset(h, 0, sizeof(*h));
}

/* hs_initiator - RHello received: decode, SKIC, IIKeying signed + signature. */
static int hs_initiator(struct hs *h, struct end *i, struct end *r)
{
	const uint8_t *cert, *my;
	size_t cert_len, my_len;
	int rc;

	rtmfp_crypto_local_cert(r->c, &cert, &cert_len);
	if ((rc = rtmfp_crypto_cert_decode(i->c, cert, cert_len, &h->r_cert)) < 0 ||
	    (rc = rtmfp_crypto_key_new(i->c, &h->ki)) < 0 ||
	    (rc = rtmfp_crypto_key_initiator_skic(h->ki, h->r_cert, h->skic, sizeof(h->skic),
						  &h->skic_len)) < 0)
		return rc;
	/* isid(4) | cookie field | cert field | skic field (1-byte VLU lengths) */
	rtmfp_crypto_local_cert(i->c, &my, &my_len);
	memcpy(h->iik, "\x01\x02\x03\x04\x04" "COOK", 9);
	h->iik_len = 9;
	h->iik[h->iik_len++] = (uint8_t)my_len;
	memcpy(h->iik + h->iik_len, my, my_len);
	h->iik_len += my_len;
	h->iik[h->iik_len++] = (uint8_t)h->skic_len;
	memcpy(h->iik + h->iik_len, h->skic, h->skic_len);
	h->iik_len += h->skic_len;
	return rtmfp_crypto_sign(i->c, RTMFP_CRYPTO_SIG_IIKEYING, h->iik, h->iik_len, NULL, 0,
				 h->isig, sizeof(h->isig), &h->isig_len);
}

/* hs_responder - IIKeying received: decode, verify, SKRC, RIKeying signature. */
static int hs_responder(struct hs *h, struct end *i, struct end *r)
{
	const uint8_t *cert;
	size_t cert_len;
	int rc;

	rtmfp_crypto_local_cert(i->c, &cert, &cert_len);
	if ((rc = rtmfp_crypto_cert_decode(r->c, cert, cert_len, &h->i_cert)) < 0 ||
	    (rc = rtmfp_crypto_cert_verify(h->i_cert, RTMFP_CRYPTO_SIG_IIKEYING, h->iik, h->iik_len,
					   NULL, 0, h->isig, h->isig_len)) < 0 ||
	    (rc = rtmfp_crypto_key_new(r->c, &h->kr)) < 0 ||
	    (rc = rtmfp_crypto_key_responder(h->kr, h->i_cert, h->skic, h->skic_len, h->skrc,
					     sizeof(h->skrc), &h->skrc_len)) < 0)
		return rc;
	memcpy(h->rik, "\x0a\x0b\x0c\x0d", 4);
	h->rik_len = 4;
	h->rik[h->rik_len++] = (uint8_t)h->skrc_len;
	memcpy(h->rik + h->rik_len, h->skrc, h->skrc_len);
	h->rik_len += h->skrc_len;
	return rtmfp_crypto_sign(r->c, RTMFP_CRYPTO_SIG_RIKEYING, h->rik, h->rik_len, h->skic,
				 h->skic_len, h->rsig, sizeof(h->rsig), &h->rsig_len);
}

/* hs_complete - RIKeying received at the initiator. */
static int hs_complete(struct hs *h)
{
	int rc = rtmfp_crypto_cert_verify(h->r_cert, RTMFP_CRYPTO_SIG_RIKEYING, h->rik, h->rik_len,
					  h->skic, h->skic_len, h->rsig, h->rsig_len);

	if (rc < 0)
		return rc;
	return rtmfp_crypto_key_initiator_complete(h->ki, h->rik + 5, h->skrc_len);
}

static int hs_run(struct hs *h, struct end *i, struct end *r)
{
	int rc;

	memset(h, 0, sizeof(*h));
	if ((rc = hs_initiator(h, i, r)) < 0 || (rc = hs_responder(h, i, r)) < 0)
		return rc;
	return hs_complete(h);
}

/* send - seal @n bytes of a recognisable cleartext with @from into @pkt. */
static int send_pkt(struct rtmfp_crypto_key *from, uint8_t *pkt, size_t cap, size_t n, uint8_t seed,
		    size_t *len)
{
	size_t i, front = rtmfp_crypto_front_bytes(from->profile);

	for (i = 0; i < n; i++)
		pkt[front + i] = (uint8_t)(seed + i);
	return rtmfp_crypto_key_seal(from, pkt, cap, n, len);
}

static bool got_pkt(const uint8_t *pkt, size_t off, size_t clen, size_t n, uint8_t seed)
{
	size_t i;

	if (clen != n)
		return false;
	for (i = 0; i < n; i++)
		if (pkt[off + i] != (uint8_t)(seed + i))
			return false;
	return true;
}

T_CASE(sodium_handshake_and_packets)
{
	struct end a = { 0 }, b = { 0 };
	struct hs h;
	uint8_t pkt[1300], copy[1300];
	size_t n, off, clen, cn;

	T_CHECK_EQ_INT(end_make(&a, NULL, 0), 0);
	T_CHECK_EQ_INT(end_make(&b, NULL, 0), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_overhead_bytes(a.c), 24);
	T_CHECK_EQ_INT(hs_run(&h, &a, &b), 0);
	T_CHECK(rtmfp_crypto_key_is_complete(h.ki));
	T_CHECK(rtmfp_crypto_key_is_complete(h.kr));
	T_CHECK_EQ_INT(h.skic_len, 66);
	T_CHECK_EQ_INT(h.skrc_len, 66);
	T_CHECK_EQ_INT(h.isig_len, 64);
	T_CHECK_EQ_INT(rtmfp_crypto_sodium_key_cipher(h.ki), rtmfp_crypto_sodium_key_cipher(h.kr));
	if (crypto_aead_aes256gcm_is_available())
		T_CHECK_EQ_INT(rtmfp_crypto_sodium_key_cipher(h.ki), RTMFP_CRYPTO_SODIUM_CIPHER_AES256GCM);
	else
		T_CHECK_EQ_INT(rtmfp_crypto_sodium_key_cipher(h.ki), RTMFP_CRYPTO_SODIUM_CIPHER_CHACHA20POLY1305);

	/* both ways, a full-size packet: 1,280 - 4 (SSID) - 24 overhead */
	T_CHECK_EQ_INT(send_pkt(h.ki, pkt, sizeof(pkt), 1252, 7, &n), 0);
	T_CHECK_EQ_INT(n, 1276);
	T_CHECK(pkt[8] != 7 || pkt[9] != 8); /* not in clear */
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.kr, pkt, n, &off, &clen), 0);
	T_CHECK(got_pkt(pkt, off, clen, 1252, 7));
	T_CHECK_EQ_INT(send_pkt(h.kr, pkt, sizeof(pkt), 1, 9, &n), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, n, &off, &clen), 0);
	T_CHECK(got_pkt(pkt, off, clen, 1, 9));
	/* a key does not open its own direction's packets */
	T_CHECK_EQ_INT(send_pkt(h.ki, pkt, sizeof(pkt), 50, 1, &n), 0);
	memcpy(copy, pkt, n);
	cn = n;
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, n, &off, &clen), BFS_ECRYPTO);
	/* tampered ciphertext, tag, counter: rejected, and the window unmoved */
	memcpy(pkt, copy, cn);
	pkt[20] ^= 1;
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.kr, pkt, cn, &off, &clen), BFS_ECRYPTO);
	memcpy(pkt, copy, cn);
	pkt[cn - 1] ^= 0x80;
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.kr, pkt, cn, &off, &clen), BFS_ECRYPTO);
	memcpy(pkt, copy, cn);
	pkt[7] ^= 0x40;
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.kr, pkt, cn, &off, &clen), BFS_ECRYPTO);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.kr, pkt, 24, &off, &clen), BFS_EMALFORMED);
	memcpy(pkt, copy, cn);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.kr, pkt, cn, &off, &clen), 0);
	T_CHECK(got_pkt(pkt, off, clen, 50, 1));
	/* replayed */
	memcpy(pkt, copy, cn);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.kr, pkt, cn, &off, &clen), BFS_ECRYPTO);
	/* sizes */
	T_CHECK_EQ_INT(send_pkt(h.ki, pkt, 24, 1, 0, &n), BFS_ETOOBIG);
	T_CHECK_EQ_INT(send_pkt(h.ki, pkt, 25, 1, 0, &n), 0);

	hs_free(&h);
	rtmfp_crypto_free(a.c);
	rtmfp_crypto_free(b.c);
}

T_CASE(sodium_replay_window)
{
	struct end a = { 0 }, b = { 0 };
	struct hs h;
	static uint8_t early[4][64];
	uint8_t pkt[64];
	size_t n, off, clen, i, en = 0;

	T_CHECK_EQ_INT(end_make(&a, NULL, RTMFP_CRYPTO_F_NO_AES), 0);
	T_CHECK_EQ_INT(end_make(&b, NULL, 0), 0);
	T_CHECK_EQ_INT(hs_run(&h, &a, &b), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_sodium_key_cipher(h.kr), RTMFP_CRYPTO_SODIUM_CIPHER_CHACHA20POLY1305);
	/* counters 0..3 kept back */
	for (i = 0; i < 4; i++)
		T_CHECK_EQ_INT(send_pkt(h.kr, early[i], sizeof(early[i]), 10, (uint8_t)i, &en), 0);
	T_CHECK_EQ_INT(buf_load64_be(early[3]), 3);
	/* out of order within the window: 3, 1 */
	memcpy(pkt, early[3], en);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, en, &off, &clen), 0);
	memcpy(pkt, early[1], en);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, en, &off, &clen), 0);
	T_CHECK(got_pkt(pkt, off, clen, 10, 1));
	memcpy(pkt, early[1], en);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, en, &off, &clen), BFS_ECRYPTO);
	/* move the top to counter WINDOW + 2: counter 2 is still inside (2 + W >= W + 2) */
	for (i = 4; i <= RTMFP_CRYPTO_SODIUM_REPLAY_WINDOW + 2; i++)
		T_CHECK_EQ_INT(send_pkt(h.kr, pkt, sizeof(pkt), 10, 0, &n), 0);
	T_CHECK_EQ_INT(buf_load64_be(pkt), RTMFP_CRYPTO_SODIUM_REPLAY_WINDOW + 2);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, n, &off, &clen), 0);
	memcpy(pkt, early[2], en);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, en, &off, &clen), 0);
	/* counter 0 is one past the window edge: too old */
	memcpy(pkt, early[0], en);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, en, &off, &clen), BFS_ECRYPTO);
	/* a big jump clears the ring; older ones stay rejected */
	for (i = 0; i < 3 * RTMFP_CRYPTO_SODIUM_REPLAY_WINDOW; i++)
		T_CHECK_EQ_INT(send_pkt(h.kr, pkt, sizeof(pkt), 10, 0, &n), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, n, &off, &clen), 0);
	memcpy(pkt, early[3], en);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, en, &off, &clen), BFS_ECRYPTO);

	hs_free(&h);
	rtmfp_crypto_free(a.c);
	rtmfp_crypto_free(b.c);
}

T_CASE(sodium_refusals)
{
	struct end a = { 0 }, b = { 0 }, m = { 0 };
	struct hs h;
	uint8_t skrc[128], bad[128];
	const uint8_t *p;
	size_t n;

	T_CHECK_EQ_INT(end_make(&a, NULL, 0), 0);
	T_CHECK_EQ_INT(end_make(&b, NULL, 0), 0);
	T_CHECK_EQ_INT(end_make(&m, NULL, 0), 0);

	/* bad signature on the IIKeying (SKIC) */
	memset(&h, 0, sizeof(h));
	T_CHECK_EQ_INT(hs_initiator(&h, &a, &b), 0);
	h.isig[5] ^= 1;
	T_CHECK_EQ_INT(hs_responder(&h, &a, &b), BFS_EBADSIG);
	h.isig[5] ^= 1;
	h.iik[h.iik_len - 3] ^= 1; /* a byte of the SKIC */
	rtmfp_crypto_cert_free(h.i_cert);
	h.i_cert = NULL;
	T_CHECK_EQ_INT(hs_responder(&h, &a, &b), BFS_EBADSIG);
	h.iik[h.iik_len - 3] ^= 1;
	/* an IIKeying signature does not pass as an RIKeying one */
	rtmfp_crypto_cert_free(h.i_cert);
	h.i_cert = NULL;
	T_CHECK_EQ_INT(hs_responder(&h, &a, &b), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_verify(h.i_cert, RTMFP_CRYPTO_SIG_RIKEYING, h.iik, h.iik_len,
						NULL, 0, h.isig, h.isig_len), BFS_EBADSIG);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_verify(h.i_cert, RTMFP_CRYPTO_SIG_IIKEYING, h.iik, h.iik_len,
						NULL, 0, h.isig, 63), BFS_EBADSIG);
	/* bad signature on the RIKeying (SKRC): refused, key still incomplete */
	h.rsig[0] ^= 1;
	T_CHECK_EQ_INT(hs_complete(&h), BFS_EBADSIG);
	h.rsig[0] ^= 1;
	T_CHECK(!rtmfp_crypto_key_is_complete(h.ki));
	/* an SKRC for someone else, or a cipher not offered: refused, key unchanged */
	memcpy(bad, h.skrc, h.skrc_len);
	bad[40] ^= 1;
	T_CHECK_EQ_INT(rtmfp_crypto_key_initiator_complete(h.ki, bad, h.skrc_len), BFS_EPROTO);
	memcpy(bad, h.skrc, h.skrc_len);
	bad[1] = 0x04;
	T_CHECK_EQ_INT(rtmfp_crypto_key_initiator_complete(h.ki, bad, h.skrc_len), BFS_EPROTO);
	T_CHECK_EQ_INT(rtmfp_crypto_key_initiator_complete(h.ki, bad, 65), BFS_EMALFORMED);
	memcpy(bad, h.skrc, h.skrc_len);
	memset(bad + 2, 0, 32); /* X25519 public key 0: degenerate result */
	T_CHECK_EQ_INT(rtmfp_crypto_key_initiator_complete(h.ki, bad, h.skrc_len), BFS_ECRYPTO);
	T_CHECK(!rtmfp_crypto_key_is_complete(h.ki));
	T_CHECK_EQ_INT(hs_complete(&h), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_initiator_complete(h.ki, h.skrc, h.skrc_len), -EINVAL);
	hs_free(&h);

	/* a SKIC made for b is refused by m (even with a good signature) */
	memset(&h, 0, sizeof(h));
	T_CHECK_EQ_INT(hs_initiator(&h, &a, &b), 0);
	T_CHECK_EQ_INT(hs_responder(&h, &a, &m), BFS_EPROTO);
	rtmfp_crypto_key_free(h.kr);
	rtmfp_crypto_cert_free(h.i_cert);
	h.i_cert = NULL;
	rtmfp_crypto_local_cert(a.c, &p, &n);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(b.c, p, n, &h.i_cert), 0);
	/* a cert decoded by another profile instance is misuse */
	T_CHECK_EQ_INT(rtmfp_crypto_key_new(m.c, &h.kr), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_responder(h.kr, h.i_cert, h.skic, h.skic_len, skrc, sizeof(skrc), &n),
		       -EINVAL);
	rtmfp_crypto_key_free(h.kr);
	T_CHECK_EQ_INT(rtmfp_crypto_key_new(b.c, &h.kr), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_responder(h.kr, h.i_cert, h.skic, 65, skrc, sizeof(skrc), &n),
		       BFS_EMALFORMED);
	memcpy(bad, h.skic, h.skic_len);
	bad[0] = 2;
	T_CHECK_EQ_INT(rtmfp_crypto_key_responder(h.kr, h.i_cert, bad, h.skic_len, skrc, sizeof(skrc), &n),
		       BFS_EMALFORMED);
	memcpy(bad, h.skic, h.skic_len);
	bad[1] = 0x02; /* no ChaCha20-Poly1305 */
	T_CHECK_EQ_INT(rtmfp_crypto_key_responder(h.kr, h.i_cert, bad, h.skic_len, skrc, sizeof(skrc), &n),
		       BFS_EPROTO);
	T_CHECK_EQ_INT(rtmfp_crypto_key_responder(h.kr, h.i_cert, h.skic, h.skic_len, skrc, 65, &n),
		       BFS_ETOOBIG);
	T_CHECK(!rtmfp_crypto_key_is_complete(h.kr));
	T_CHECK_EQ_INT(rtmfp_crypto_key_responder(h.kr, h.i_cert, h.skic, h.skic_len, skrc, sizeof(skrc), &n), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_responder(h.kr, h.i_cert, h.skic, h.skic_len, skrc, sizeof(skrc), &n),
		       -EINVAL);
	hs_free(&h);

	rtmfp_crypto_free(a.c);
	rtmfp_crypto_free(b.c);
	rtmfp_crypto_free(m.c);
}

T_CASE(sodium_certs_epds_glare)
{
	struct end a = { 0 }, b = { 0 }, s = { 0 };
	struct rtmfp_crypto_cert *bc = NULL, *sc = NULL, *bc2 = NULL;
	struct rtmfp_crypto *bad = NULL;
	const uint8_t *p;
	uint8_t epd[300], cert[64], id[32], sk[64];
	size_t n, len;

	T_CHECK_EQ_INT(end_make(&a, NULL, 0), 0);
	T_CHECK_EQ_INT(end_make(&b, NULL, 0), 0);
	T_CHECK_EQ_INT(end_make(&s, "rdv.example.net", 0), 0);

	/* certificate = 0x01 | public key; peer id = SHA-256(certificate) */
	rtmfp_crypto_local_cert(b.c, &p, &len);
	T_CHECK_EQ_INT(len, 33);
	T_CHECK(p[0] == 0x01);
	T_CHECK_MEM(p + 1, b.sk + 32, 32);
	crypto_hash_sha256(id, p, len);
	T_CHECK_MEM(id, b.id, 32);
	rtmfp_crypto_local_epd(b.c, &p, &len);
	T_CHECK(len == 33 && p[0] == 0x0f);
	T_CHECK_MEM(p + 1, b.id, 32);

	rtmfp_crypto_local_cert(b.c, &p, &len);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a.c, p, len, &bc), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a.c, p, len, &bc2), 0);
	rtmfp_crypto_cert_peer_id(bc, id);
	T_CHECK_MEM(id, b.id, 32);
	rtmfp_crypto_sodium_epd_peer_id(epd, b.id);
	T_CHECK(rtmfp_crypto_cert_selected(bc, epd, 33));
	T_CHECK(rtmfp_crypto_is_selected(b.c, epd, 33));
	T_CHECK(!rtmfp_crypto_is_selected(a.c, epd, 33));     /* wrong responder */
	T_CHECK(!rtmfp_crypto_cert_selected(bc, epd, 32));
	rtmfp_crypto_sodium_epd_peer_id(epd, a.id);
	T_CHECK(!rtmfp_crypto_cert_selected(bc, epd, 33));    /* wrong responder */
	T_CHECK(rtmfp_crypto_cert_overrides(bc, bc2));

	/* a named server: cert carries the name, peer id covers only 0x01 | key */
	rtmfp_crypto_local_cert(s.c, &p, &len);
	T_CHECK_EQ_INT(len, 33 + 2 + 15);
	T_CHECK(p[33] == 0x0a && p[34] == 15 && memcmp(p + 35, "rdv.example.net", 15) == 0);
	crypto_hash_sha256(id, p, 33);
	T_CHECK_MEM(id, s.id, 32);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a.c, p, len, &sc), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_sodium_epd_name(epd, sizeof(epd), &n, (const uint8_t *)"rdv.example.net", 15), 0);
	T_CHECK(n == 16 && epd[0] == 0x0a);
	T_CHECK(rtmfp_crypto_cert_selected(sc, epd, n));
	T_CHECK(rtmfp_crypto_is_selected(s.c, epd, n));
	T_CHECK(!rtmfp_crypto_cert_selected(bc, epd, n));
	T_CHECK(!rtmfp_crypto_cert_selected(sc, epd, n - 1));
	T_CHECK(!rtmfp_crypto_is_selected(s.c, epd, 1));

	/* malformed certificates */
	rtmfp_crypto_local_cert(b.c, &p, &len);
	memset(cert, 0x0a, sizeof(cert));
	memcpy(cert, p, len);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a.c, cert, 32, &bc2), BFS_EMALFORMED);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a.c, cert, 34, &bc2), BFS_EMALFORMED);
	cert[33] = 0x0a;
	cert[34] = 0;
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a.c, cert, 35, &bc2), BFS_EMALFORMED);
	cert[34] = 2;
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a.c, cert, 36, &bc2), BFS_EMALFORMED);
	cert[0] = 0x02;
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a.c, cert, 33, &bc2), BFS_EMALFORMED);
	cert[0] = 0x01;
	memset(cert + 1, 0, 32); /* small-order point */
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(a.c, cert, 33, &bc2), BFS_EMALFORMED);

	/* glare: the lower peer id wins, exactly one side */
	T_CHECK(rtmfp_crypto_near_wins_glare(a.c, bc) == (memcmp(a.id, b.id, 32) < 0));
	rtmfp_crypto_free(bad);
	rtmfp_crypto_cert_free(sc);
	sc = NULL;
	rtmfp_crypto_local_cert(a.c, &p, &len);
	T_CHECK_EQ_INT(rtmfp_crypto_cert_decode(b.c, p, len, &sc), 0);
	T_CHECK(rtmfp_crypto_near_wins_glare(a.c, bc) != rtmfp_crypto_near_wins_glare(b.c, sc));

	/* a secret key whose public half is not its seed's */
	memcpy(sk, a.sk, 64);
	sk[40] ^= 1;
	T_CHECK_EQ_INT(rtmfp_crypto_sodium_new(&bad, sk, NULL, 0, 0), -EINVAL);

	rtmfp_crypto_cert_free(bc);
	rtmfp_crypto_cert_free(bc2);
	rtmfp_crypto_cert_free(sc);
	rtmfp_crypto_free(a.c);
	rtmfp_crypto_free(b.c);
	rtmfp_crypto_free(s.c);
}

T_CASE(sodium_default_key)
{
	struct end a = { 0 }, b = { 0 };
	struct rtmfp_crypto_key *k = NULL;
	uint8_t pkt[128], ref[128], nonce[12] = { 0 };
	size_t n, off, clen;
	static const char key_text[] = "buddyfs rtmfp sodium default v1.";

	T_CHECK_EQ_INT(end_make(&a, NULL, 0), 0);
	T_CHECK_EQ_INT(end_make(&b, NULL, 0), 0);
	/* incomplete key seals with the default key; any profile opens it */
	T_CHECK_EQ_INT(rtmfp_crypto_key_new(a.c, &k), 0);
	T_CHECK_EQ_INT(send_pkt(k, pkt, sizeof(pkt), 30, 3, &n), 0);
	T_CHECK_EQ_INT(n, 30 + 24);
	memcpy(ref, pkt, n);
	T_CHECK_EQ_INT(rtmfp_crypto_open_default(b.c, pkt, n, &off, &clen), 0);
	T_CHECK(got_pkt(pkt, off, clen, 30, 3));
	/* the published key: ChaCha20-Poly1305-IETF, nonce 0^4 | counter */
	memcpy(nonce + 4, ref, 8);
	T_CHECK_EQ_INT(sizeof(key_text), 33);
	T_CHECK_EQ_INT(crypto_aead_chacha20poly1305_ietf_decrypt_detached(
			       ref + 8, NULL, ref + 8, 30, ref + 38, NULL, 0, nonce,
			       (const uint8_t *)key_text), 0);
	T_CHECK(got_pkt(ref, 8, 30, 30, 3));
	/* no replay window for the default key */
	T_CHECK_EQ_INT(rtmfp_crypto_seal_default(a.c, pkt + 8 - 8, sizeof(pkt), 30, &n), 0);
	memcpy(ref, pkt, n);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(k, pkt, n, &off, &clen), 0);
	memcpy(pkt, ref, n);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(k, pkt, n, &off, &clen), 0);
	pkt[10] ^= 1;
	T_CHECK_EQ_INT(rtmfp_crypto_open_default(b.c, pkt, n, &off, &clen), BFS_ECRYPTO);
	rtmfp_crypto_key_free(k);
	rtmfp_crypto_free(a.c);
	rtmfp_crypto_free(b.c);
}

T_CASE(sodium_cipher_negotiation)
{
	struct end a = { 0 }, b = { 0 }, c = { 0 };
	struct hs h;
	uint8_t pkt[200];
	size_t n, off, clen;

	T_CHECK_EQ_INT(end_make(&a, NULL, 0), 0);
	T_CHECK_EQ_INT(end_make(&b, NULL, 0), 0);
	T_CHECK_EQ_INT(end_make(&c, NULL, RTMFP_CRYPTO_F_NO_AES), 0);
	/* forced ChaCha on either side wins */
	T_CHECK_EQ_INT(hs_run(&h, &a, &c), 0);
	T_CHECK_EQ_INT(h.skic[1], crypto_aead_aes256gcm_is_available() ? 0x03 : 0x01);
	T_CHECK_EQ_INT(rtmfp_crypto_sodium_key_cipher(h.ki), RTMFP_CRYPTO_SODIUM_CIPHER_CHACHA20POLY1305);
	T_CHECK_EQ_INT(send_pkt(h.ki, pkt, sizeof(pkt), 100, 5, &n), 0);
	T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.kr, pkt, n, &off, &clen), 0);
	T_CHECK(got_pkt(pkt, off, clen, 100, 5));
	hs_free(&h);
	T_CHECK_EQ_INT(hs_run(&h, &c, &a), 0);
	T_CHECK_EQ_INT(h.skic[1], 0x01);
	T_CHECK_EQ_INT(rtmfp_crypto_sodium_key_cipher(h.kr), RTMFP_CRYPTO_SODIUM_CIPHER_CHACHA20POLY1305);
	hs_free(&h);
	/* both able: AES-256-GCM, both ways */
	T_CHECK_EQ_INT(hs_run(&h, &a, &b), 0);
	if (crypto_aead_aes256gcm_is_available()) {
		T_CHECK_EQ_INT(h.skrc[1], RTMFP_CRYPTO_SODIUM_CIPHER_AES256GCM);
		T_CHECK_EQ_INT(send_pkt(h.kr, pkt, sizeof(pkt), 100, 6, &n), 0);
		T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.ki, pkt, n, &off, &clen), 0);
		T_CHECK(got_pkt(pkt, off, clen, 100, 6));
		T_CHECK_EQ_INT(send_pkt(h.ki, pkt, sizeof(pkt), 100, 8, &n), 0);
		pkt[n - 3] ^= 4;
		T_CHECK_EQ_INT(rtmfp_crypto_key_open(h.kr, pkt, n, &off, &clen), BFS_ECRYPTO);
	} else {
		printf("  (AES-256-GCM not available on this CPU: ChaCha20-Poly1305 only)\n");
	}
	hs_free(&h);
	rtmfp_crypto_free(a.c);
	rtmfp_crypto_free(b.c);
	rtmfp_crypto_free(c.c);
}

/* lcg - a fixed pseudo-random sequence, so failures repeat. */
static uint32_t lcg(uint64_t *state, uint32_t bound)
{
	*state = *state * 6364136223846793005u + 1442695040888963407u;
	return (uint32_t)(*state >> 33) % bound;
}

/* try_open - open a copy of @pkt with @k and check it against the model. */
static bool try_open(struct rtmfp_crypto_key *k, const uint8_t *pkt, size_t len, uint32_t c,
		     uint8_t *seen, uint64_t *top, size_t *ok)
{
	uint8_t copy[64];
	size_t off, clen;
	bool want = !seen[c] && (uint64_t)c + 1 + RTMFP_CRYPTO_SODIUM_REPLAY_WINDOW >= *top;
	int rc;

	memcpy(copy, pkt, len);
	rc = rtmfp_crypto_key_open(k, copy, len, &off, &clen);
	if (rc == 0) {
		(*ok)++;
		seen[c] = 1;
		if ((uint64_t)c + 1 > *top)
			*top = (uint64_t)c + 1;
	}
	return (rc == 0) == want;
}

/*
 * The replay window against a model: a counter is accepted iff it was never
 * accepted and is at most WINDOW below the highest accepted.  Deliveries
 * are reordered by up to WINDOW / 4 places, duplicated, skip gaps wider
 * than the window (the ring is cleared) and probe the exact window edge.
 */
T_CASE(sodium_replay_window_model)
{
	enum { N = 40000, W = RTMFP_CRYPTO_SODIUM_REPLAY_WINDOW, LEN = 8 + 2 + 16 };
	static uint8_t pkts[N][LEN], seen[N];
	static uint32_t order[2 * N];
	struct end a = { 0 }, b = { 0 };
	struct hs h;
	uint64_t rnd = 42, top = 0;
	size_t n, m = 0, i, bad = 0, ok = 0, gaps = 0, edges = 0;

	T_CHECK_EQ_INT(end_make(&a, NULL, RTMFP_CRYPTO_F_NO_AES), 0);
	T_CHECK_EQ_INT(end_make(&b, NULL, 0), 0);
	T_CHECK_EQ_INT(hs_run(&h, &a, &b), 0);
	for (i = 0; i < N; i++)
		T_CHECK_EQ_INT(send_pkt(h.ki, pkts[i], LEN, 2, (uint8_t)i, &n), 0);
	for (i = 0; i < N; i++) {
		if (lcg(&rnd, 4000) == 0) { /* a gap the window cannot span */
			i += W + 64 + lcg(&rnd, 300);
			gaps++;
			if (i >= N)
				break;
		}
		order[m++] = (uint32_t)i;
		if (lcg(&rnd, 4) == 0) /* a duplicate of a recent one */
			order[m++] = (uint32_t)(i - lcg(&rnd, (uint32_t)(i < W + 100 ? i + 1 : W + 100)));
	}
	for (i = 0; i < m; i++) { /* local shuffle */
		size_t j = i + lcg(&rnd, W / 4);
		uint32_t t;

		if (j < m) {
			t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
	}
	for (i = 0; i < m; i++) {
		uint32_t c = order[i];

		bad += !try_open(h.kr, pkts[c], LEN, c, seen, &top, &ok);
		if (lcg(&rnd, 8) == 0 && top >= W + 2) { /* just inside, just outside */
			c = (uint32_t)(top - 1 - W - lcg(&rnd, 2));
			bad += !try_open(h.kr, pkts[c], LEN, c, seen, &top, &ok);
			edges++;
		}
	}
	T_CHECK_EQ_INT(bad, 0);
	T_CHECK(ok > N / 2 && ok < N && gaps >= 2 && edges > 1000); /* all paths taken */
	hs_free(&h);
	rtmfp_crypto_free(a.c);
	rtmfp_crypto_free(b.c);
}

/* A key holds libsodium states that need 64-byte alignment (BLAKE2b); a
 * plain malloc gives 16, which is undefined behaviour (UBSan: "member access
 * within misaligned address ... requires 64 byte alignment"). */
T_CASE(sodium_key_alignment)
{
	struct end a = { 0 };
	struct rtmfp_crypto_key *k[8] = { 0 };
	size_t i;

	T_CHECK_EQ_INT(end_make(&a, NULL, 0), 0);
	for (i = 0; i < 8; i++) {
		T_CHECK_EQ_INT(rtmfp_crypto_key_new(a.c, &k[i]), 0);
		T_CHECK((uintptr_t)k[i] % _Alignof(crypto_generichash_state) == 0);
		T_CHECK((uintptr_t)k[i] % _Alignof(crypto_aead_aes256gcm_state) == 0);
	}
	for (i = 0; i < 8; i++)
		rtmfp_crypto_key_free(k[i]);
	rtmfp_crypto_free(a.c);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	T_RUN(in_cksum_vectors);
	T_RUN(profile_lookup);
	T_RUN(plain_matches_rtmfp_cpp);
	T_RUN(plain_rules);
	T_RUN(sodium_handshake_and_packets);
	T_RUN(sodium_replay_window);
	T_RUN(sodium_refusals);
	T_RUN(sodium_certs_epds_glare);
	T_RUN(sodium_default_key);
	T_RUN(sodium_cipher_negotiation);
	T_RUN(sodium_key_alignment);
	T_RUN(sodium_replay_window_model);
	return t_done();
}
