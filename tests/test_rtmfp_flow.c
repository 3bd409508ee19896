/*
 * test_rtmfp_flow.c - RTMFP send and receive flows (RFC 7016 §3.6), alone
 * and joined by a simulated link: a seeded PRNG drops, delays (reorders)
 * and duplicates packets both ways on a fake clock, and a small stand-in
 * for the session applies the rules the flows leave to it (ack every 2nd
 * data packet or at once when asked, delayed-ack timer, RTO, probes, a cap
 * on bytes in flight).
 */
#include "t.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/err.h"
#include "buddyfs/rtmfp_recvflow.h"
#include "buddyfs/rtmfp_sendflow.h"
#include "buddyfs/rtmfp_wire.h"

#define MS 1000000ull

/* ---- PRNG (xorshift64*) ---- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static bool rng_chance(uint64_t *s, unsigned int percent)
{
	return rng_next(s) % 100 < percent;
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

/* Content of message i, byte j: cheap, deterministic. */
static void fill_msg(uint8_t *p, size_t len, uint64_t i)
{
	uint64_t s = i * 0x9E3779B97F4A7C15ull + 1;
	size_t j;

	for (j = 0; j < len; j++) {
		if ((j & 7) == 0)
			rng_next(&s);
		p[j] = (uint8_t)(s >> ((j & 7) * 8));
	}
}

/* ---- receive side collector ---- */

struct rx {
	uint64_t count;
	uint64_t *hashes;
	size_t *sizes;
	size_t max;
	bool overflow;
	uint64_t pause_after;   /* pause the flow after this many (0: never) */
};

static void on_msg(void *ctx, struct rtmfp_recvflow *f, const uint8_t *d,
		   size_t len)
{
	struct rx *rx = ctx;

	if (rx->count >= rx->max) {
		rx->overflow = true;
		return;
	}
	rx->hashes[rx->count] = fnv(FNV_INIT, d, len);
	rx->sizes[rx->count] = len;
	rx->count++;
	if (rx->pause_after && rx->count == rx->pause_after)
		rtmfp_recvflow_set_paused(f, true);
}

/* ---- the simulated link ---- */

#define MAX_CHUNKS 64
#define MAX_RANGES 600

enum { P_DATA, P_ACK, P_PROBE };

struct chunk {
	uint64_t seq, fsn_offset;
	uint8_t fra;
	bool abandon, final;
	uint32_t len;
	uint8_t *data;
};

struct pkt {
	struct pkt *next;
	uint64_t at;
	int kind;
	size_t n;
	struct chunk ch[MAX_CHUNKS];
	struct rtmfp_recvflow_ack ack;
	struct rtmfp_wire_seq_range *ranges;
};

struct link {
	uint64_t rng;
	unsigned int loss, dup, jitter_ms; /* percent, percent, ms */
	struct pkt *q;   /* sorted by arrival time */
	uint64_t sent, dropped;
};

static struct pkt *pkt_clone(const struct pkt *p)
{
	struct pkt *c = malloc(sizeof(*c));
	size_t i;

	*c = *p;
	for (i = 0; i < p->n; i++) {
		c->ch[i].data = NULL;
		if (p->ch[i].len) {
			c->ch[i].data = malloc(p->ch[i].len);
			memcpy(c->ch[i].data, p->ch[i].data, p->ch[i].len);
		}
	}
	if (p->ranges) {
		c->ranges = malloc(sizeof(*c->ranges) * (p->ack.nranges + 1));
		memcpy(c->ranges, p->ranges,
		       sizeof(*c->ranges) * p->ack.nranges);
	}
	return c;
}

static void pkt_free(struct pkt *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->ch[i].data);
	free(p->ranges);
	free(p);
}

static void enqueue(struct link *l, struct pkt *p, uint64_t now)
{
	struct pkt **pp;

	/* in order, except a few packets held back by up to jitter_ms */
	p->at = now + 5 * MS;
	if (l->jitter_ms && rng_chance(&l->rng, 5))
		p->at += 1 + rng_next(&l->rng) % (l->jitter_ms * MS);
	for (pp = &l->q; *pp && (*pp)->at <= p->at; pp = &(*pp)->next)
		;
	p->next = *pp;
	*pp = p;
}

/* Send @p (owned) over @l: maybe lost, maybe duplicated. */
static void link_send(struct link *l, struct pkt *p, uint64_t now)
{
	l->sent++;
	if (rng_chance(&l->rng, l->loss)) {
		l->dropped++;
		pkt_free(p);
		return;
	}
	if (l->dup && rng_chance(&l->rng, l->dup))
		enqueue(l, pkt_clone(p), now);
	enqueue(l, p, now);
}

static struct pkt *link_recv(struct link *l, uint64_t now)
{
	struct pkt *p = l->q;

	if (!p || p->at > now)
		return NULL;
	l->q = p->next;
	return p;
}

static void link_drain(struct link *l)
{
	struct pkt *p;

	while ((p = l->q)) {
		l->q = p->next;
		pkt_free(p);
	}
}

/* ---- the session stand-in ---- */

#define PKT_BYTES 1200
#define CHUNK_OVERHEAD 16     /* header, flags, flow id, seq, fsn offset */
#define CWND_BYTES (192 * 1024)

struct sim {
	struct rtmfp_sendflow *sf;
	struct rtmfp_recvflow *rf;
	struct link fwd, back;
	uint64_t now;
	bool vary_room;
	/* sender */
	uint64_t erto, rto_at;
	uint64_t probes;
	uint64_t timeouts;
	/* receiver */
	unsigned int data_pkts_unacked;
	uint64_t delack_at;
	uint64_t acks_sent;
	struct rtmfp_wire_seq_range ranges[MAX_RANGES];
};

static void sim_send_data(struct sim *s)
{
	int budget_pkts = 32;

	while (budget_pkts-- > 0 &&
	       rtmfp_sendflow_bytes_in_flight(s->sf) < CWND_BYTES) {
		struct pkt *p = calloc(1, sizeof(*p));
		size_t room = PKT_BYTES;
		struct rtmfp_sendflow_frag fr;

		/* a path whose packet budget changes (retransmissions that
		 * no longer fit must wait for a big enough packet) */
		if (s->vary_room)
			room = 40 + rng_next(&s->fwd.rng) % (PKT_BYTES - 40);

		p->kind = P_DATA;
		while (p->n < MAX_CHUNKS && room > CHUNK_OVERHEAD) {
			size_t opt = rtmfp_sendflow_wants_options(s->sf) ? 8 : 0;
			struct chunk *c = &p->ch[p->n];

			if (room < CHUNK_OVERHEAD + opt)
				break;
			if (rtmfp_sendflow_next(s->sf, s->now,
						room - CHUNK_OVERHEAD - opt,
						&fr) != 1)
				break;
			c->seq = fr.seq;
			c->fsn_offset = fr.fsn_offset;
			c->fra = fr.fra;
			c->abandon = fr.abandon;
			c->final = fr.final;
			c->len = (uint32_t)fr.len;
			if (fr.len) {
				c->data = malloc(fr.len);
				memcpy(c->data, fr.data, fr.len);
			}
			rtmfp_sendflow_commit(s->sf, &fr, s->now,
					      fr.len + CHUNK_OVERHEAD + opt);
			room -= fr.len + CHUNK_OVERHEAD + opt;
			p->n++;
		}
		if (!p->n) {
			free(p);
			if (s->vary_room && rtmfp_sendflow_has_data(s->sf))
				continue; /* too small for what is due */
			break;
		}
		if (!s->rto_at)
			s->rto_at = s->now + s->erto;
		link_send(&s->fwd, p, s->now);
	}
}

static void sim_send_ack(struct sim *s)
{
	struct pkt *p = calloc(1, sizeof(*p));
	int rc;

	p->kind = P_ACK;
	rc = rtmfp_recvflow_ack(s->rf, 1100, s->ranges, MAX_RANGES, &p->ack);
	if (rc) {
		free(p);
		return;
	}
	p->ranges = malloc(sizeof(*p->ranges) * (p->ack.nranges + 1));
	memcpy(p->ranges, s->ranges, sizeof(*p->ranges) * p->ack.nranges);
	s->acks_sent++;
	s->data_pkts_unacked = 0;
	s->delack_at = 0;
	link_send(&s->back, p, s->now);
}

static void sim_receiver(struct sim *s)
{
	struct pkt *p;
	size_t i;

	while ((p = link_recv(&s->fwd, s->now))) {
		if (p->kind == P_PROBE) {
			rtmfp_recvflow_on_probe(s->rf);
		} else {
			for (i = 0; i < p->n; i++) {
				struct chunk *c = &p->ch[i];

				(void)rtmfp_recvflow_data(s->rf, c->seq,
					c->fsn_offset, c->fra, c->abandon,
					c->final, c->data, c->len);
			}
			s->data_pkts_unacked++;
		}
		pkt_free(p);
		/* session rules: at once when asked, else every 2nd packet */
		if (rtmfp_recvflow_ack_now(s->rf) || s->data_pkts_unacked >= 2)
			sim_send_ack(s);
		else if (rtmfp_recvflow_ack_wanted(s->rf) && !s->delack_at)
			s->delack_at = s->now + 50 * MS;
	}
	if (s->delack_at && s->now >= s->delack_at)
		sim_send_ack(s);
}

static void sim_sender_acks(struct sim *s)
{
	struct pkt *p;
	size_t i;

	while ((p = link_recv(&s->back, s->now))) {
		struct rtmfp_sendflow_ack_result r;

		(void)rtmfp_sendflow_ack_begin(s->sf, s->now,
					       p->ack.buffer_blocks,
					       p->ack.cumulative_ack, &r);
		for (i = 0; i < p->ack.nranges; i++)
			(void)rtmfp_sendflow_ack_range(s->sf, s->now,
						       p->ranges[i].first,
						       p->ranges[i].last, &r);
		rtmfp_sendflow_ack_end(s->sf, s->now, &r);
		if (r.frags_acked) {
			s->erto = 100 * MS;
			s->rto_at = rtmfp_sendflow_bytes_in_flight(s->sf) ?
				    s->now + s->erto : 0;
		}
		pkt_free(p);
	}
	if (s->rto_at && s->now >= s->rto_at) {
		if (rtmfp_sendflow_bytes_in_flight(s->sf)) {
			rtmfp_sendflow_on_timeout(s->sf);
			s->timeouts++;
		}
		s->erto = s->erto * 2 > 2000 * MS ? 2000 * MS : s->erto * 2;
		s->rto_at = 0;
	}
	if (rtmfp_sendflow_probe_due(s->sf, s->now, s->erto)) {
		struct pkt *pr = calloc(1, sizeof(*pr));

		pr->kind = P_PROBE;
		s->probes++;
		link_send(&s->fwd, pr, s->now);
	}
}

static void sim_step(struct sim *s)
{
	sim_sender_acks(s);
	sim_send_data(s);
	sim_receiver(s);
	s->now += MS;
}

static void sim_init(struct sim *s, uint64_t seed, unsigned int loss,
		     unsigned int dup, unsigned int jitter_ms)
{
	memset(s, 0, sizeof(*s));
	s->fwd.rng = seed;
	s->back.rng = seed ^ 0xabcdef;
	s->fwd.loss = s->back.loss = loss;
	s->fwd.dup = s->back.dup = dup;
	s->fwd.jitter_ms = s->back.jitter_ms = jitter_ms;
	s->erto = 100 * MS;
	s->now = 1000 * MS;
}

static void sim_fini(struct sim *s)
{
	link_drain(&s->fwd);
	link_drain(&s->back);
	rtmfp_sendflow_free(s->sf);
	rtmfp_recvflow_free(s->rf);
}

/* ---- the end-to-end runs ---- */

#define NMSG 1000

/* Sizes from 1 byte to 1 MiB, log-uniform, with both ends present. */
static size_t msg_size(uint64_t *rng, size_t i)
{
	unsigned int bits;

	if (i == 0)
		return 1;
	if (i == 1 || i == NMSG / 2)
		return 1u << 20;
	bits = (unsigned int)(rng_next(rng) % 21);
	return 1 + (size_t)(rng_next(rng) % ((size_t)1 << bits));
}

struct e2e_result {
	bool ok;
	uint64_t delivered, retx, timeouts, sim_ms, bytes, packets;
};

static void e2e(uint64_t seed, unsigned int loss, bool vary_room,
		struct e2e_result *res)
{
	struct sim s;
	struct rx rx = { 0 };
	struct rtmfp_sendflow_config sc = { 0 };
	struct rtmfp_recvflow_config rc = { 0 };
	uint64_t *want = calloc(NMSG, sizeof(*want));
	size_t *wsize = calloc(NMSG, sizeof(*wsize));
	uint8_t *buf = malloc(1u << 20);
	uint64_t rng = seed;
	size_t next_msg = 0, i;
	uint64_t start;
	bool closed = false, waiting = false;

	memset(res, 0, sizeof(*res));
	sim_init(&s, seed, loss, loss ? 2 : 0,
		 getenv("FLOW_JITTER") ? (unsigned)atoi(getenv("FLOW_JITTER")) : 4);
	s.vary_room = vary_room;
	rx.max = NMSG;
	rx.hashes = calloc(NMSG, sizeof(*rx.hashes));
	rx.sizes = calloc(NMSG, sizeof(*rx.sizes));
	sc.flow_id = 5;
	sc.metadata = (const uint8_t *)"test";
	sc.metadata_len = 4;
	sc.send_buffer_bytes = 2u << 20;
	rc.flow_id = 5;
	rc.on_message = on_msg;
	rc.ctx = &rx;
	rc.buffer_bytes = 1u << 20;
	if (rtmfp_sendflow_new(&s.sf, &sc) || rtmfp_recvflow_new(&s.rf, &rc))
		goto out;
	start = s.now;
	while (s.now - start < 3600000 * MS) {
		/* the writer */
		if (waiting && rtmfp_sendflow_take_writable(s.sf))
			waiting = false;
		while (!waiting && next_msg < NMSG) {
			size_t len = wsize[next_msg] ? wsize[next_msg] :
				     msg_size(&rng, next_msg);
			int r;

			wsize[next_msg] = len;
			fill_msg(buf, len, next_msg);
			want[next_msg] = fnv(FNV_INIT, buf, len);
			r = rtmfp_sendflow_write(s.sf, buf, len, 0, NULL);
			if (r == -EAGAIN || r == -ENOBUFS) {
				waiting = true;
				break;
			}
			if (r)
				goto out;
			next_msg++;
		}
		if (next_msg == NMSG && !closed) {
			rtmfp_sendflow_close(s.sf);
			closed = true;
		}
		sim_step(&s);
		if (rtmfp_sendflow_state(s.sf) == RTMFP_SENDFLOW_COMPLETE &&
		    rtmfp_recvflow_state(s.rf) == RTMFP_RECVFLOW_COMPLETE)
			break;
	}
	res->delivered = rx.count;
	res->retx = rtmfp_sendflow_retransmissions(s.sf);
	res->timeouts = s.timeouts;
	res->sim_ms = (s.now - start) / MS;
	res->packets = s.fwd.sent;
	for (i = 0; i < NMSG; i++)
		res->bytes += wsize[i];
	if (rx.count != NMSG || rx.overflow ||
	    rtmfp_sendflow_state(s.sf) != RTMFP_SENDFLOW_COMPLETE ||
	    rtmfp_recvflow_state(s.rf) != RTMFP_RECVFLOW_COMPLETE)
		goto out;
	for (i = 0; i < NMSG; i++) {
		if (rx.hashes[i] != want[i] || rx.sizes[i] != wsize[i])
			goto out;
	}
	res->ok = true;
out:
	sim_fini(&s);
	free(rx.hashes);
	free(rx.sizes);
	free(want);
	free(wsize);
	free(buf);
}

static void e2e_case(uint64_t seed, unsigned int loss, bool vary_room)
{
	struct e2e_result r;

	e2e(seed, loss, vary_room, &r);
	printf("  loss %u%%%s: %llu/%d messages, %llu bytes, %llu packets, "
	       "%llu retransmissions, %llu RTOs, %llu simulated ms\n", loss,
	       vary_room ? " (packet budget 40..1200)" : "",
	       (unsigned long long)r.delivered, NMSG,
	       (unsigned long long)r.bytes, (unsigned long long)r.packets,
	       (unsigned long long)r.retx, (unsigned long long)r.timeouts,
	       (unsigned long long)r.sim_ms);
	T_CHECK(r.ok);
}

T_CASE(link_loss_0) { e2e_case(1, 0, false); }
T_CASE(link_loss_10_varying_packets) { e2e_case(2, 10, true); }
T_CASE(link_loss_30) { e2e_case(3, 30, false); }

/* ---- unit cases ---- */

static struct rtmfp_sendflow *new_sf(void)
{
	struct rtmfp_sendflow_config c = { 0 };
	struct rtmfp_sendflow *f = NULL;

	c.flow_id = 1;
	if (rtmfp_sendflow_new(&f, &c))
		return NULL;
	return f;
}

/* Send one fragment of at most @max bytes; returns its seq (0: none). */
static uint64_t send1(struct rtmfp_sendflow *f, uint64_t now, size_t max,
		      struct rtmfp_sendflow_frag *out)
{
	struct rtmfp_sendflow_frag fr;

	if (rtmfp_sendflow_next(f, now, max, &fr) != 1)
		return 0;
	rtmfp_sendflow_commit(f, &fr, now, fr.len + 10);
	if (out)
		*out = fr;
	return fr.seq;
}

static void ack(struct rtmfp_sendflow *f, uint64_t now, uint64_t blocks,
		uint64_t cum, const struct rtmfp_wire_seq_range *r, size_t n,
		struct rtmfp_sendflow_ack_result *res)
{
	size_t i;

	(void)rtmfp_sendflow_ack_begin(f, now, blocks, cum, res);
	for (i = 0; i < n; i++)
		(void)rtmfp_sendflow_ack_range(f, now, r[i].first, r[i].last,
					       res);
	rtmfp_sendflow_ack_end(f, now, res);
}

T_CASE(send_fragments_and_options)
{
	struct rtmfp_sendflow *f = new_sf();
	struct rtmfp_sendflow_frag fr;
	struct rtmfp_sendflow_ack_result r;
	uint8_t msg[250];
	struct rtmfp_wire_seq_range rg = { 2, 3 };

	T_CHECK(f);
	fill_msg(msg, sizeof(msg), 7);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, msg, sizeof(msg), 0, NULL), 0);
	T_CHECK(rtmfp_sendflow_wants_options(f));
	T_CHECK_EQ_INT(send1(f, 1, 100, &fr), 1);
	T_CHECK(fr.fra == RTMFP_WIRE_UD_FRA_BEGIN && fr.len == 100 &&
		fr.options && !fr.retransmission && fr.fsn_offset == 1);
	T_CHECK_MEM(fr.data, msg, 100);
	T_CHECK_EQ_INT(send1(f, 1, 100, &fr), 2);
	T_CHECK(fr.fra == RTMFP_WIRE_UD_FRA_MIDDLE && fr.fsn_offset == 2);
	T_CHECK_EQ_INT(send1(f, 1, 100, &fr), 3);
	T_CHECK(fr.fra == RTMFP_WIRE_UD_FRA_END && fr.len == 50);
	T_CHECK_MEM(fr.data, msg + 200, 50);
	T_CHECK_EQ_INT(send1(f, 1, 100, &fr), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_in_flight(f), 250 + 30);
	/* a range ack does not stop the options, any ack does */
	ack(f, 2, 64, 0, &rg, 1, &r);
	T_CHECK(!rtmfp_sendflow_wants_options(f));
	T_CHECK_EQ_INT(r.frags_acked, 2);
	T_CHECK_EQ_INT(r.bytes_acked, 110 + 60);
	T_CHECK(r.has_rtt && r.rtt_ns == 1);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_in_flight(f), 110);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_queued(f), 250);
	ack(f, 3, 64, 3, NULL, 0, &r);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_queued(f), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_in_flight(f), 0);
	rtmfp_sendflow_free(f);
}

T_CASE(send_write_limits)
{
	struct rtmfp_sendflow_config c = { 0 };
	struct rtmfp_sendflow *f = NULL;
	struct rtmfp_sendflow_ack_result r;
	uint8_t b[1000] = { 0 };

	c.send_buffer_bytes = 2000;
	c.max_messages = 3;
	c.max_message_bytes = 5000;
	T_CHECK_EQ_INT(rtmfp_sendflow_new(&f, &c), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 1000, 0, NULL), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 1000, 0, NULL), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 1, 0, NULL), -EAGAIN);
	T_CHECK(!rtmfp_sendflow_take_writable(f));
	/* send and ack the first message: room again */
	T_CHECK_EQ_INT(send1(f, 0, 1000, NULL), 1);
	ack(f, 1, 64, 1, NULL, 0, &r);
	T_CHECK(rtmfp_sendflow_take_writable(f));
	T_CHECK(!rtmfp_sendflow_take_writable(f));
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 1, 0, NULL), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 1, 0, NULL), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 1, 0, NULL), -ENOBUFS);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_queued(f), 1002);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 6000, 0, NULL), -EMSGSIZE);
	rtmfp_sendflow_close(f);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 1, 0, NULL), BFS_ECLOSED);
	rtmfp_sendflow_free(f);

	/* a message bigger than the buffer goes into an empty queue */
	T_CHECK_EQ_INT(rtmfp_sendflow_new(&f, &c), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 1, 0, NULL), 0);
	rtmfp_sendflow_free(f);
	{
		uint8_t *big = calloc(1, 4000);

		T_CHECK_EQ_INT(rtmfp_sendflow_new(&f, &c), 0);
		T_CHECK_EQ_INT(rtmfp_sendflow_write(f, big, 4000, 0, NULL), 0);
		free(big);
		rtmfp_sendflow_free(f);
	}
}

/*
 * Acked messages leave their buffers for later writes: messages of changing
 * sizes, written alone or while another is queued, send exactly the bytes
 * written (no stale bytes from a reused, bigger buffer).
 */
T_CASE(send_reuses_message_buffers)
{
	struct rtmfp_sendflow *f = new_sf();
	struct rtmfp_sendflow_ack_result r;
	struct rtmfp_sendflow_frag fr;
	static const size_t sizes[] = { 3000, 100, 2999, 1, 4000, 3000, 50, 3500 };
	uint8_t msg[2][4000], want[2][4000];
	uint64_t seq;
	size_t prev = 0;

	T_CHECK(f);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *m = msg[i & 1], *w = want[i & 1];

		fill_msg(m, sizes[i], i + 1);
		memcpy(w, m, sizes[i]);
		T_CHECK_EQ_INT(rtmfp_sendflow_write(f, m, sizes[i], 0, NULL), 0);
		memset(m, 0xee, sizes[i]); /* the flow keeps its own copy */
		/* odd rounds: the previous message is still queued; send and
		 * ack it now, after the new one was written */
		if (prev) {
			seq = send1(f, 1, 4000, &fr);
			T_CHECK(seq != 0 && fr.len == prev);
			if (seq && fr.len == prev)
				T_CHECK_MEM(fr.data, want[(i - 1) & 1], prev);
			ack(f, 2, 64, seq, NULL, 0, &r);
		}
		if (i & 1) {
			prev = sizes[i]; /* leave it queued for the next round */
			continue;
		}
		seq = send1(f, 3, 4000, &fr);
		T_CHECK(seq != 0 && fr.len == sizes[i] && fr.fra == RTMFP_WIRE_UD_FRA_WHOLE);
		if (seq && fr.len == sizes[i])
			T_CHECK_MEM(fr.data, w, sizes[i]);
		ack(f, 4, 64, seq, NULL, 0, &r);
		T_CHECK_EQ_INT(rtmfp_sendflow_bytes_queued(f), 0);
		prev = 0;
	}
	rtmfp_sendflow_free(f);
}

T_CASE(send_nak_loss_after_3)
{
	struct rtmfp_sendflow *f = new_sf();
	struct rtmfp_sendflow_ack_result r;
	struct rtmfp_sendflow_frag fr;
	struct rtmfp_wire_seq_range rg;
	uint8_t b[10] = { 0 };
	int i;

	T_CHECK(f);
	for (i = 0; i < 5; i++)
		T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 10, 0, NULL), 0);
	for (i = 1; i <= 5; i++)
		T_CHECK_EQ_INT(send1(f, 10, 100, NULL), i);
	/* seq 1 missing; 2, 3, 4 acked one by one */
	rg.first = 2;
	rg.last = 2;
	ack(f, 20, 64, 0, &rg, 1, &r);
	T_CHECK_EQ_INT(r.frags_lost, 0);
	ack(f, 21, 64, 0, &rg, 1, &r); /* same news: not a NAK */
	T_CHECK_EQ_INT(r.frags_acked, 0);
	T_CHECK_EQ_INT(r.frags_lost, 0);
	rg.last = 3;
	ack(f, 22, 64, 0, &rg, 1, &r);
	T_CHECK_EQ_INT(r.frags_lost, 0);
	/* nothing lost yet, nothing new either */
	T_CHECK_EQ_INT(rtmfp_sendflow_next(f, 22, 100, &fr), 0);
	rg.last = 4;
	ack(f, 23, 64, 0, &rg, 1, &r);
	T_CHECK_EQ_INT(r.frags_lost, 1);
	T_CHECK_EQ_INT(r.bytes_lost, 20);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_in_flight(f), 20); /* seq 5 */
	T_CHECK_EQ_INT(send1(f, 24, 100, &fr), 1);
	T_CHECK(fr.retransmission);
	T_CHECK_EQ_INT(rtmfp_sendflow_retransmissions(f), 1);
	/* the retransmission gives no RTT sample (Karn) */
	ack(f, 30, 64, 4, NULL, 0, &r);
	T_CHECK_EQ_INT(r.frags_acked, 1);
	T_CHECK(!r.has_rtt);
	rtmfp_sendflow_free(f);
}

T_CASE(send_rto_marks_all_lost)
{
	struct rtmfp_sendflow *f = new_sf();
	struct rtmfp_sendflow_ack_result r;
	struct rtmfp_sendflow_frag fr;
	uint8_t b[30] = { 0 };

	T_CHECK(f);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 30, 0, NULL), 0);
	T_CHECK_EQ_INT(send1(f, 0, 10, NULL), 1);
	T_CHECK_EQ_INT(send1(f, 0, 10, NULL), 2);
	T_CHECK_EQ_INT(send1(f, 0, 10, NULL), 3);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_in_flight(f), 60);
	T_CHECK_EQ_INT(rtmfp_sendflow_on_timeout(f), 60);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_in_flight(f), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_on_timeout(f), 0);
	/* a too small budget holds the retransmission back */
	T_CHECK_EQ_INT(rtmfp_sendflow_next(f, 1, 9, &fr), 0);
	T_CHECK_EQ_INT(send1(f, 1, 10, &fr), 1);
	T_CHECK(fr.retransmission && fr.fra == RTMFP_WIRE_UD_FRA_BEGIN);
	T_CHECK_EQ_INT(send1(f, 1, 10, &fr), 2);
	T_CHECK_EQ_INT(send1(f, 1, 10, &fr), 3);
	T_CHECK(fr.fra == RTMFP_WIRE_UD_FRA_END);
	T_CHECK_EQ_INT(rtmfp_sendflow_retransmissions(f), 3);
	ack(f, 2, 64, 3, NULL, 0, &r);
	T_CHECK_EQ_INT(r.frags_acked, 3);
	T_CHECK_EQ_INT(r.bytes_acked, 60);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_queued(f), 0);
	rtmfp_sendflow_free(f);
}

static struct rx *rx_new(size_t max)
{
	struct rx *rx = calloc(1, sizeof(*rx));

	rx->max = max;
	rx->hashes = calloc(max, sizeof(*rx->hashes));
	rx->sizes = calloc(max, sizeof(*rx->sizes));
	return rx;
}

static void rx_free(struct rx *rx)
{
	free(rx->hashes);
	free(rx->sizes);
	free(rx);
}

static struct rtmfp_recvflow *new_rf(struct rx *rx, size_t buf)
{
	struct rtmfp_recvflow_config c = { 0 };
	struct rtmfp_recvflow *f = NULL;

	c.flow_id = 1;
	c.on_message = on_msg;
	c.ctx = rx;
	c.buffer_bytes = buf;
	if (rtmfp_recvflow_new(&f, &c))
		return NULL;
	return f;
}

T_CASE(abandon_and_forward_seq)
{
	struct rtmfp_sendflow *f = new_sf();
	struct rx *rx = rx_new(10);
	struct rtmfp_recvflow *rf = new_rf(rx, 0);
	struct rtmfp_sendflow_frag fr;
	struct rtmfp_sendflow_ack_result r;
	uint8_t a[30], b[5];
	uint64_t id_a = 0;

	T_CHECK(f && rf);
	fill_msg(a, sizeof(a), 1);
	fill_msg(b, sizeof(b), 2);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, a, 30, 100, &id_a), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 5, 0, NULL), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_next_deadline(f), 100);
	/* A's first fragment reaches the receiver, the second is lost */
	T_CHECK_EQ_INT(send1(f, 10, 10, &fr), 1);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, fr.seq, fr.fsn_offset, fr.fra,
					   fr.abandon, fr.final, fr.data,
					   fr.len), 0);
	T_CHECK_EQ_INT(send1(f, 10, 10, &fr), 2);
	/* the deadline passes: the rest of A is never cut; B goes next */
	T_CHECK_EQ_INT(send1(f, 100, 10, &fr), 3);
	T_CHECK(fr.fra == RTMFP_WIRE_UD_FRA_WHOLE && fr.len == 5);
	/* seq 1 and 2 are abandoned, so the forward seq covers them */
	T_CHECK_EQ_INT(fr.fsn_offset, 1);
	T_CHECK_EQ_INT(rtmfp_sendflow_abandon(f, id_a), -ENOENT);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, fr.seq, fr.fsn_offset, fr.fra,
					   fr.abandon, fr.final, fr.data,
					   fr.len), 0);
	/* the partial A was dropped, B delivered */
	T_CHECK_EQ_INT(rx->count, 1);
	T_CHECK(rx->sizes[0] == 5 && rx->hashes[0] == fnv(FNV_INIT, b, 5));
	T_CHECK_EQ_INT(rtmfp_recvflow_cumulative_ack(rf), 3);
	/* seq 2 is lost on RTO and goes again as abn, without data */
	rtmfp_sendflow_on_timeout(f);
	T_CHECK_EQ_INT(send1(f, 200, 10, &fr), 1);
	T_CHECK(fr.abandon && fr.len == 0 && fr.retransmission);
	T_CHECK_EQ_INT(send1(f, 200, 10, &fr), 2);
	T_CHECK(fr.abandon && fr.len == 0);
	T_CHECK_EQ_INT(send1(f, 200, 10, &fr), 3);
	T_CHECK(!fr.abandon && fr.len == 5);
	ack(f, 300, 64, 3, NULL, 0, &r);
	T_CHECK_EQ_INT(r.frags_acked, 3);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_queued(f), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_next_deadline(f), UINT64_MAX);
	rtmfp_sendflow_free(f);
	rtmfp_recvflow_free(rf);
	rx_free(rx);
}

T_CASE(recv_abandon_flag_and_broken_message)
{
	struct rx *rx = rx_new(10);
	struct rtmfp_recvflow *rf = new_rf(rx, 0);
	const uint8_t x[3] = { 1, 2, 3 };

	T_CHECK(rf);
	/* BEGIN(1) abn(2) END(3) WHOLE(4): the message 1..3 is lost */
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 1, 1, RTMFP_WIRE_UD_FRA_BEGIN,
					   false, false, x, 3), 0);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 3, 3, RTMFP_WIRE_UD_FRA_END,
					   false, false, x, 3), 0);
	T_CHECK(rtmfp_recvflow_ack_now(rf)); /* out of order */
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 2, 2, RTMFP_WIRE_UD_FRA_MIDDLE,
					   true, false, NULL, 0), 0);
	T_CHECK_EQ_INT(rx->count, 0);
	T_CHECK_EQ_INT(rtmfp_recvflow_cumulative_ack(rf), 3);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 4, 4, RTMFP_WIRE_UD_FRA_WHOLE,
					   false, false, x, 2), 0);
	T_CHECK_EQ_INT(rx->count, 1);
	T_CHECK_EQ_INT(rx->sizes[0], 2);
	/* protocol errors */
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 0, 0, 0, false, false, x, 1),
		       BFS_EPROTO);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 5, 6, 0, false, false, x, 1),
		       BFS_EPROTO);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 5, 0, 0x40, false, false, x, 1),
		       BFS_EPROTO);
	rtmfp_recvflow_free(rf);
	rx_free(rx);
}

T_CASE(fin_completion)
{
	struct rtmfp_sendflow *f = new_sf();
	struct rx *rx = rx_new(10);
	struct rtmfp_recvflow *rf = new_rf(rx, 0);
	struct rtmfp_sendflow_frag fr;
	struct rtmfp_sendflow_ack_result r;
	struct rtmfp_recvflow_ack ak;
	uint8_t b[4] = { 9, 9, 9, 9 };

	T_CHECK(f && rf);
	/* closed with nothing ever sent: complete at once */
	rtmfp_sendflow_close(f);
	T_CHECK_EQ_INT(rtmfp_sendflow_state(f), RTMFP_SENDFLOW_COMPLETE);
	rtmfp_sendflow_free(f);

	/* closed, and the only message is abandoned before it was cut */
	f = new_sf();
	T_CHECK(f);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 4, 50, NULL), 0);
	rtmfp_sendflow_close(f);
	T_CHECK_EQ_INT(rtmfp_sendflow_state(f), RTMFP_SENDFLOW_CLOSING);
	T_CHECK_EQ_INT(rtmfp_sendflow_next(f, 60, 100, &fr), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_state(f), RTMFP_SENDFLOW_COMPLETE);
	rtmfp_sendflow_free(f);

	/* FIN on the last fragment when closed before it is cut */
	f = new_sf();
	T_CHECK(f);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 4, 0, NULL), 0);
	rtmfp_sendflow_close(f);
	T_CHECK_EQ_INT(rtmfp_sendflow_state(f), RTMFP_SENDFLOW_CLOSING);
	T_CHECK_EQ_INT(send1(f, 1, 100, &fr), 1);
	T_CHECK(fr.final && !fr.abandon);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, fr.seq, fr.fsn_offset, fr.fra,
					   fr.abandon, fr.final, fr.data,
					   fr.len), 0);
	T_CHECK_EQ_INT(rtmfp_recvflow_state(rf), RTMFP_RECVFLOW_COMPLETE);
	T_CHECK(rtmfp_recvflow_ack_now(rf));
	T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 100, NULL, 0, &ak), 0);
	ack(f, 2, ak.buffer_blocks, ak.cumulative_ack, NULL, 0, &r);
	T_CHECK(r.completed);
	T_CHECK_EQ_INT(rtmfp_sendflow_state(f), RTMFP_SENDFLOW_COMPLETE);
	T_CHECK_EQ_INT(rtmfp_sendflow_next(f, 3, 100, &fr), 0);
	rtmfp_sendflow_free(f);
	rtmfp_recvflow_free(rf);

	/* closed after everything was sent: an empty abn+fin fragment */
	rf = new_rf(rx, 0);
	f = new_sf();
	T_CHECK(f && rf);
	rx->count = 0;
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 4, 0, NULL), 0);
	T_CHECK_EQ_INT(send1(f, 1, 100, &fr), 1);
	T_CHECK(!fr.final);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, fr.seq, fr.fsn_offset, fr.fra,
					   fr.abandon, fr.final, fr.data,
					   fr.len), 0);
	rtmfp_sendflow_close(f);
	T_CHECK_EQ_INT(send1(f, 1, 100, &fr), 2);
	T_CHECK(fr.final && fr.abandon && fr.len == 0);
	T_CHECK_EQ_INT(rtmfp_recvflow_state(rf), RTMFP_RECVFLOW_OPEN);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, fr.seq, fr.fsn_offset, fr.fra,
					   fr.abandon, fr.final, fr.data,
					   fr.len), 0);
	T_CHECK_EQ_INT(rtmfp_recvflow_state(rf), RTMFP_RECVFLOW_COMPLETE);
	T_CHECK_EQ_INT(rx->count, 1);
	/* a late duplicate of the first fragment changes nothing */
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 1, 1, 0, false, false, b, 4), 0);
	T_CHECK_EQ_INT(rx->count, 1);
	ack(f, 2, 10, 2, NULL, 0, &r);
	T_CHECK_EQ_INT(rtmfp_sendflow_state(f), RTMFP_SENDFLOW_COMPLETE);
	rtmfp_sendflow_free(f);
	rtmfp_recvflow_free(rf);
	rx_free(rx);
}

T_CASE(window_zero_then_probe)
{
	struct sim s;
	struct rx *rx = rx_new(100);
	struct rtmfp_sendflow_config sc = { 0 };
	uint8_t b[1000];
	int i;

	sim_init(&s, 9, 0, 0, 0);
	sc.flow_id = 1;
	T_CHECK_EQ_INT(rtmfp_sendflow_new(&s.sf, &sc), 0);
	s.rf = new_rf(rx, 4096);
	T_CHECK(s.rf);
	rx->pause_after = 2;
	for (i = 0; i < 20; i++) {
		fill_msg(b, sizeof(b), (uint64_t)i);
		T_CHECK_EQ_INT(rtmfp_sendflow_write(s.sf, b, sizeof(b), 0,
						    NULL), 0);
	}
	for (i = 0; i < 500; i++)
		sim_step(&s);
	/* paused after 2 messages: the window closed, the sender stopped */
	T_CHECK_EQ_INT(rx->count, 2);
	T_CHECK_EQ_INT(rtmfp_recvflow_buffer_blocks(s.rf), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_rx_window(s.sf), 0);
	T_CHECK(!rtmfp_sendflow_has_data(s.sf));
	T_CHECK(rtmfp_recvflow_bytes_buffered(s.rf) <= 2 * 4096);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_in_flight(s.sf), 0);
	T_CHECK(rtmfp_sendflow_next_deadline(s.sf) != UINT64_MAX);
	for (i = 0; i < 5000; i++)
		sim_step(&s);
	T_CHECK(s.probes >= 2);
	T_CHECK_EQ_INT(rx->count, 2);
	/* resume: the receiver acks at once and the rest flows */
	rx->pause_after = 0;
	rtmfp_recvflow_set_paused(s.rf, false);
	T_CHECK(rtmfp_recvflow_ack_now(s.rf));
	sim_send_ack(&s);
	for (i = 0; i < 2000; i++)
		sim_step(&s);
	T_CHECK_EQ_INT(rx->count, 20);
	for (i = 0; i < 20; i++) {
		fill_msg(b, sizeof(b), (uint64_t)i);
		T_CHECK(rx->hashes[i] == fnv(FNV_INIT, b, sizeof(b)));
	}
	T_CHECK(rtmfp_sendflow_rx_window(s.sf) > 0);
	sim_fini(&s);
	rx_free(rx);
}

T_CASE(exception_and_reject)
{
	struct rtmfp_sendflow *f = new_sf();
	struct rx *rx = rx_new(4);
	struct rtmfp_recvflow *rf = new_rf(rx, 0);
	struct rtmfp_sendflow_frag fr;
	struct rtmfp_recvflow_ack ak;
	uint8_t b[4] = { 0 };
	uint64_t code = 0;

	T_CHECK(f && rf);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 4, 0, NULL), 0);
	T_CHECK_EQ_INT(send1(f, 0, 100, &fr), 1);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 2, 2, 0, false, false, b, 4), 0);
	T_CHECK(!rtmfp_recvflow_exception(rf, &code));
	rtmfp_recvflow_reject(rf, 7);
	T_CHECK(rtmfp_recvflow_exception(rf, &code) && code == 7);
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, fr.seq, fr.fsn_offset, fr.fra,
					   false, false, fr.data, fr.len),
		       BFS_ECLOSED);
	T_CHECK(rtmfp_recvflow_ack_now(rf));
	T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 2, NULL, 0, &ak), -ENOSPC);
	T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 100, NULL, 0, &ak), 0);
	T_CHECK_EQ_INT(ak.buffer_blocks, 0);
	T_CHECK_EQ_INT(rx->count, 0);
	rtmfp_sendflow_on_exception(f, code);
	T_CHECK_EQ_INT(rtmfp_sendflow_state(f), RTMFP_SENDFLOW_EXCEPTION);
	T_CHECK_EQ_INT(rtmfp_sendflow_exception_code(f), 7);
	T_CHECK_EQ_INT(rtmfp_sendflow_next(f, 1, 100, &fr), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_bytes_in_flight(f), 0);
	T_CHECK_EQ_INT(rtmfp_sendflow_write(f, b, 4, 0, NULL), BFS_ECLOSED);
	rtmfp_sendflow_free(f);
	rtmfp_recvflow_free(rf);
	rx_free(rx);
}

/* Brute-force model: a bitmap of received sequence numbers. */
T_CASE(ack_ranges_vs_model)
{
	enum { N = 400 };
	uint64_t rng = 77;
	int round;

	for (round = 0; round < 40; round++) {
		struct rx *rx = rx_new(N + 1);
		struct rtmfp_recvflow *rf = new_rf(rx, 0);
		bool have[N + 2] = { false };
		struct rtmfp_wire_seq_range got[N], want[N];
		uint8_t one = 1;
		int k;

		T_CHECK(rf);
		for (k = 0; k < 300; k++) {
			uint64_t seq = 1 + rng_next(&rng) % N, c, s;
			struct rtmfp_recvflow_ack ak;
			size_t nw = 0, i, budget, used;

			have[seq] = true;
			T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, seq, seq, 0,
							   false, false, &one,
							   1), 0);
			for (c = 0; c + 1 <= N && have[c + 1]; c++)
				;
			for (s = c + 2; s <= N; s++) {
				if (!have[s] || have[s - 1])
					continue;
				want[nw].first = s;
				while (s + 1 <= N && have[s + 1])
					s++;
				want[nw++].last = s;
			}
			/* full budget: exactly the model */
			T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 65535, got, N,
							  &ak), 0);
			T_CHECK_EQ_INT(ak.cumulative_ack, c);
			T_CHECK_EQ_INT(ak.nranges, nw);
			T_CHECK(!ak.truncated);
			for (i = 0; i < nw; i++)
				T_CHECK(got[i].first == want[i].first &&
					got[i].last == want[i].last);
			T_CHECK_EQ_INT(rx->count, c);
			/* small budget: a prefix of the model that fits */
			budget = 3 + rng_next(&rng) % 20;
			if (rtmfp_recvflow_ack(rf, budget, got, N, &ak) == 0) {
				uint64_t cur = ak.cumulative_ack;

				used = rtmfp_wire_vlu_size(1) +
				       rtmfp_wire_vlu_size(ak.buffer_blocks) +
				       rtmfp_wire_vlu_size(cur);
				T_CHECK(ak.nranges <= nw);
				T_CHECK(ak.truncated == (ak.nranges < nw));
				for (i = 0; i < ak.nranges; i++) {
					T_CHECK(got[i].first == want[i].first &&
						got[i].last == want[i].last);
					used += rtmfp_wire_vlu_size(
						got[i].first - cur - 2) +
						rtmfp_wire_vlu_size(
						got[i].last - got[i].first);
					cur = got[i].last;
				}
				T_CHECK(used <= budget);
			}
			/* the wire codec accepts the ranges as they are */
			{
				uint8_t pk[4096];
				struct buf_writer w;
				size_t written = 0;

				T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 65535, got,
								  N, &ak), 0);
				buf_writer_init(&w, pk, sizeof(pk));
				T_CHECK_EQ_INT(rtmfp_wire_ack_ranges_build(&w, 1,
					ak.buffer_blocks, ak.cumulative_ack,
					got, ak.nranges, &written), 0);
				T_CHECK_EQ_INT(written, ak.nranges);
			}
		}
		rtmfp_recvflow_free(rf);
		rx_free(rx);
	}
}

T_CASE(recv_ack_now_rules)
{
	struct rx *rx = rx_new(10);
	struct rtmfp_recvflow *rf = new_rf(rx, 0);
	struct rtmfp_recvflow_ack ak;
	const uint8_t x = 1;

	T_CHECK(rf);
	T_CHECK(!rtmfp_recvflow_ack_wanted(rf));
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 1, 1, 0, false, false, &x, 1), 0);
	T_CHECK(rtmfp_recvflow_ack_wanted(rf));
	T_CHECK(!rtmfp_recvflow_ack_now(rf)); /* in order: may wait */
	T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 100, NULL, 0, &ak), 0);
	T_CHECK(!rtmfp_recvflow_ack_wanted(rf));
	T_CHECK_EQ_INT(ak.buffer_blocks, RTMFP_RECVFLOW_DEFAULT_BUFFER_BYTES / 1024);
	/* duplicate */
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 1, 1, 0, false, false, &x, 1), 0);
	T_CHECK(rtmfp_recvflow_ack_now(rf));
	T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 100, NULL, 0, &ak), 0);
	/* gap */
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 3, 3, 0, false, false, &x, 1), 0);
	T_CHECK(rtmfp_recvflow_ack_now(rf));
	T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 100, NULL, 0, &ak), 0);
	T_CHECK(ak.truncated); /* no room for ranges given */
	/* filling the gap merges the ranges: ack now */
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 2, 2, 0, false, false, &x, 1), 0);
	T_CHECK(rtmfp_recvflow_ack_now(rf));
	T_CHECK_EQ_INT(rtmfp_recvflow_cumulative_ack(rf), 3);
	T_CHECK_EQ_INT(rx->count, 3);
	T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 100, NULL, 0, &ak), 0);
	/* a probe */
	rtmfp_recvflow_on_probe(rf);
	T_CHECK(rtmfp_recvflow_ack_now(rf));
	/* beyond the reorder span: dropped, not acked */
	T_CHECK_EQ_INT(rtmfp_recvflow_data(rf, 4 + RTMFP_RECVFLOW_DEFAULT_REORDER_SPAN,
					   0, 0, false, false, &x, 1), 0);
	T_CHECK_EQ_INT(rtmfp_recvflow_ack(rf, 100, NULL, 0, &ak), 0);
	T_CHECK(!ak.truncated);
	rtmfp_recvflow_free(rf);
	rx_free(rx);
}

int main(void)
{
	T_RUN(send_fragments_and_options);
	T_RUN(send_write_limits);
	T_RUN(send_reuses_message_buffers);
	T_RUN(send_nak_loss_after_3);
	T_RUN(send_rto_marks_all_lost);
	T_RUN(abandon_and_forward_seq);
	T_RUN(recv_abandon_flag_and_broken_message);
	T_RUN(fin_completion);
	T_RUN(exception_and_reject);
	T_RUN(ack_ranges_vs_model);
	T_RUN(recv_ack_now_rules);
	T_RUN(window_zero_then_probe);
	T_RUN(link_loss_0);
	T_RUN(link_loss_10_varying_packets);
	T_RUN(link_loss_30);
	return t_done();
}
