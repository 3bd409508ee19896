/*
 * rtmfp_sendflow.c - the sending side of one RTMFP flow (see rtmfp_sendflow.h,
 * RFC 7016 §3.6.2).
 *
 * Layout: messages sit in a doubly linked queue, one allocation each (header
 * and bytes); acked messages' allocations are kept for later writes (at
 * most one send buffer's worth, one when the queue is empty), so a stream
 * of large messages does not map and fault in fresh memory every time.
 * Messages are cut into fragments in order, lazily, when the session
 * commits a chunk, so a fragment fits the budget of the packet it
 * first went into; a fragment keeps its bytes (seq -> message, offset,
 * length) for every retransmission.  Fragment records live in a ring indexed
 * by sequence number from base_seq (the lowest not yet acked) to next_seq.
 * In-flight fragments are also linked, by sequence number, in transmission
 * order, so the negative-ack pass walks only what was sent before the newest
 * fragment an ack covers.  Acked fragments point past the acked run they
 * start (path-compressed, as in union-find), so the ranges an ack repeats
 * cost nothing the second time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/err.h"
#include "buddyfs/rtmfp_sendflow.h"

enum {
	FR_IN_FLIGHT = 1 << 0,
	FR_ACKED = 1 << 1,
	FR_RETX = 1 << 2,      /* sent more than once: no RTT sample (Karn) */
	FR_ABANDONED = 1 << 3,
	FR_FINAL = 1 << 4,
	FR_SENT_ABN = 1 << 5,  /* the copy in flight carried abn, no data */
};

struct msg {
	struct msg *prev, *next;
	uint64_t id;
	uint64_t deadline_ns;
	uint64_t first_seq;    /* seq of its first fragment, valid if nfrags */
	size_t cap;            /* bytes allocated for data[] */
	size_t len;
	size_t cut;            /* bytes cut into fragments so far */
	size_t nfrags;         /* fragments cut */
	size_t frags_open;     /* fragments cut and not yet acked */
	bool cut_done;
	bool abandoned;
	uint8_t data[];
};

struct frag {
	struct msg *msg;       /* NULL once acked, and for the empty FIN */
	uint64_t tx_order;     /* of the latest transmission */
	uint64_t tx_first;     /* of the first transmission */
	uint64_t tx_prev, tx_next; /* seq links of the in-flight list, 0 none */
	uint64_t skip;         /* once acked: no unacked seq in [seq, skip) */
	uint64_t sent_ns;
	size_t off;
	uint32_t len;
	uint32_t wire_bytes;
	uint8_t fra;
	uint8_t naks;
	uint8_t flags;
};

struct rtmfp_sendflow {
	uint64_t flow_id;
	uint8_t *metadata;
	size_t metadata_len;
	bool has_return_flow;
	uint64_t return_flow_id;
	size_t buf_cap, max_msgs, max_msg_bytes;

	enum rtmfp_sendflow_state state;
	uint64_t exception_code;
	bool close_requested;
	bool wants_options;
	uint64_t final_seq;

	struct msg *head, *tail;   /* message queue */
	struct msg *cut_msg;       /* first message not completely cut */
	struct msg *spare;         /* freed messages kept for writes (->next) */
	size_t spare_bytes;        /* their capacity, at most buf_cap */
	size_t nmsgs;
	size_t queued_bytes;       /* lengths of live, not abandoned messages */
	uint64_t next_msg_id;
	size_t n_deadlines;

	struct frag *ring;
	size_t ring_cap;           /* power of two */
	size_t ring_head;
	size_t count;              /* fragments base_seq .. next_seq - 1 */
	uint64_t base_seq;

	uint64_t tx_head, tx_tail; /* in-flight list, oldest transmission first */
	uint64_t tx_counter;
	size_t in_flight_wire;
	size_t in_flight_data;

	size_t pending_rtx;        /* cut, not in flight, not acked */
	uint64_t rtx_hint;         /* no pending fragment below this seq */

	uint64_t rx_window;
	bool probing;
	uint64_t probe_at, probe_interval;

	bool writer_waiting, writable_ready;
	size_t waiting_len;
	uint64_t retransmissions;
};

static uint64_t next_seq(const struct rtmfp_sendflow *f)
{
	return f->base_seq + f->count;
}

static struct frag *frag_at(const struct rtmfp_sendflow *f, uint64_t seq)
{
	return &f->ring[(f->ring_head + (size_t)(seq - f->base_seq)) &
			(f->ring_cap - 1)];
}

static bool has_seq(const struct rtmfp_sendflow *f, uint64_t seq)
{
	return seq >= f->base_seq && seq < next_seq(f);
}

int rtmfp_sendflow_new(struct rtmfp_sendflow **out,
		       const struct rtmfp_sendflow_config *cfg)
{
	struct rtmfp_sendflow *f;

	*out = NULL;
	if (!cfg || cfg->metadata_len > RTMFP_SENDFLOW_MAX_METADATA_BYTES ||
	    (cfg->metadata_len && !cfg->metadata))
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (cfg->metadata_len) {
		f->metadata = malloc(cfg->metadata_len);
		if (!f->metadata) {
			free(f);
			return -ENOMEM;
		}
		memcpy(f->metadata, cfg->metadata, cfg->metadata_len);
	}
	f->metadata_len = cfg->metadata_len;
	f->flow_id = cfg->flow_id;
	f->has_return_flow = cfg->has_return_flow;
	f->return_flow_id = cfg->return_flow_id;
	f->buf_cap = cfg->send_buffer_bytes ? cfg->send_buffer_bytes :
		     RTMFP_SENDFLOW_DEFAULT_BUFFER_BYTES;
	f->max_msgs = cfg->max_messages ? cfg->max_messages :
		      RTMFP_SENDFLOW_DEFAULT_MAX_MESSAGES;
	f->max_msg_bytes = cfg->max_message_bytes ? cfg->max_message_bytes :
			   RTMFP_SENDFLOW_DEFAULT_MAX_MESSAGE_BYTES;
	f->state = RTMFP_SENDFLOW_OPEN;
	f->wants_options = true;
	f->base_seq = 1;
	f->rtx_hint = 1;
	f->next_msg_id = 1;
	f->rx_window = RTMFP_SENDFLOW_INITIAL_RX_WINDOW_BYTES;
	*out = f;
	return 0;
}

static void drop_all(struct rtmfp_sendflow *f)
{
	struct msg *m = f->head, *next;

	for (; m; m = next) {
		next = m->next;
		free(m);
	}
	while (f->spare) {
		m = f->spare;
		f->spare = m->next;
		free(m);
	}
	f->spare_bytes = 0;
	f->head = f->tail = f->cut_msg = NULL;
	f->nmsgs = 0;
	f->queued_bytes = 0;
	f->n_deadlines = 0;
	f->base_seq += f->count;
	f->count = 0;
	f->ring_head = 0;
	f->tx_head = f->tx_tail = 0;
	f->in_flight_wire = f->in_flight_data = 0;
	f->pending_rtx = 0;
	f->rtx_hint = f->base_seq;
	f->probing = false;
}

void rtmfp_sendflow_free(struct rtmfp_sendflow *f)
{
	if (!f)
		return;
	drop_all(f);
	free(f->ring);
	free(f->metadata);
	free(f);
}

/* ---- the message queue ---- */

static bool has_room(const struct rtmfp_sendflow *f, size_t len)
{
	if (f->nmsgs >= f->max_msgs)
		return false;
	return f->queued_bytes == 0 ||
	       (f->queued_bytes <= f->buf_cap &&
		len <= f->buf_cap - f->queued_bytes);
}

static void note_room(struct rtmfp_sendflow *f)
{
	if (f->writer_waiting &&
	    (f->state != RTMFP_SENDFLOW_OPEN || has_room(f, f->waiting_len))) {
		f->writer_waiting = false;
		f->writable_ready = true;
	}
}

static void unlink_msg(struct rtmfp_sendflow *f, struct msg *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		f->head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		f->tail = m->prev;
	if (f->cut_msg == m)
		f->cut_msg = m->next;
	if (!m->abandoned)
		f->queued_bytes -= m->len;
	if (m->deadline_ns)
		f->n_deadlines--;
	f->nmsgs--;
	/* Keep buffers for the next writes while messages stream: they reuse
	 * memory already mapped instead of faulting in fresh pages for every
	 * message (at most one send buffer's worth; an empty queue keeps
	 * one, the newest). */
	if (f->state == RTMFP_SENDFLOW_OPEN && m->cap <= f->buf_cap - f->spare_bytes) {
		m->next = f->spare;
		f->spare = m;
		f->spare_bytes += m->cap;
	} else {
		free(m);
	}
	while (f->nmsgs == 0 && f->spare && f->spare->next) {
		m = f->spare->next;
		f->spare->next = m->next;
		f->spare_bytes -= m->cap;
		free(m);
	}
}

int rtmfp_sendflow_write(struct rtmfp_sendflow *f, const void *data,
			 size_t len, uint64_t deadline_ns, uint64_t *msg_id)
{
	struct msg *m;
	size_t cap;

	if (f->state != RTMFP_SENDFLOW_OPEN || f->close_requested)
		return BFS_ECLOSED;
	if (len > f->max_msg_bytes)
		return -EMSGSIZE;
	if (f->nmsgs >= f->max_msgs) {
		f->writer_waiting = true;
		f->waiting_len = len;
		return -ENOBUFS;
	}
	if (!has_room(f, len)) {
		f->writer_waiting = true;
		f->waiting_len = len;
		return -EAGAIN;
	}
	if (f->spare && f->spare->cap >= len) {
		m = f->spare;
		f->spare = m->next;
		f->spare_bytes -= m->cap;
		cap = m->cap;
	} else {
		m = malloc(sizeof(*m) + len);
		if (!m)
			return -ENOMEM;
		cap = len;
	}
	memset(m, 0, sizeof(*m));
	m->cap = cap;
	if (len)
		memcpy(m->data, data, len);
	m->len = len;
	m->id = f->next_msg_id++;
	m->deadline_ns = deadline_ns;
	m->prev = f->tail;
	if (f->tail)
		f->tail->next = m;
	else
		f->head = m;
	f->tail = m;
	if (!f->cut_msg)
		f->cut_msg = m;
	f->nmsgs++;
	f->queued_bytes += len;
	if (deadline_ns)
		f->n_deadlines++;
	if (msg_id)
		*msg_id = m->id;
	return 0;
}

static void check_complete(struct rtmfp_sendflow *f);

static void abandon_msg(struct rtmfp_sendflow *f, struct msg *m)
{
	uint64_t s;

	if (m->abandoned)
		return;
	if (m->nfrags == 0) {
		/* Nothing cut: no sequence number was spent on it. */
		unlink_msg(f, m);
		check_complete(f);
		note_room(f);
		return;
	}
	m->abandoned = true;
	f->queued_bytes -= m->len;
	if (m->deadline_ns) {
		m->deadline_ns = 0;
		f->n_deadlines--;
	}
	if (f->cut_msg == m)
		f->cut_msg = m->next;
	m->cut_done = true;
	for (s = m->first_seq; s < m->first_seq + m->nfrags; s++) {
		struct frag *fr;

		if (!has_seq(f, s))
			continue;
		fr = frag_at(f, s);
		if (!(fr->flags & FR_ACKED))
			fr->flags |= FR_ABANDONED;
	}
	if (m->first_seq < f->rtx_hint)
		f->rtx_hint = m->first_seq > f->base_seq ? m->first_seq :
							  f->base_seq;
	note_room(f);
}

int rtmfp_sendflow_abandon(struct rtmfp_sendflow *f, uint64_t msg_id)
{
	struct msg *m;

	for (m = f->head; m; m = m->next) {
		if (m->id == msg_id && !m->abandoned) {
			abandon_msg(f, m);
			return 0;
		}
	}
	return -ENOENT;
}

static void check_deadlines(struct rtmfp_sendflow *f, uint64_t now)
{
	struct msg *m, *next;

	if (!f->n_deadlines)
		return;
	for (m = f->head; m; m = next) {
		next = m->next;
		if (m->deadline_ns && now >= m->deadline_ns)
			abandon_msg(f, m);
	}
}

static void check_complete(struct rtmfp_sendflow *f)
{
	if (f->state == RTMFP_SENDFLOW_CLOSING && f->count == 0 &&
	    !f->cut_msg && (f->final_seq || f->base_seq == 1)) {
		f->state = RTMFP_SENDFLOW_COMPLETE;
		drop_all(f);
		note_room(f);
	}
}

void rtmfp_sendflow_close(struct rtmfp_sendflow *f)
{
	if (f->state != RTMFP_SENDFLOW_OPEN)
		return;
	f->close_requested = true;
	f->state = RTMFP_SENDFLOW_CLOSING;
	check_complete(f);
	note_room(f);
}

void rtmfp_sendflow_on_exception(struct rtmfp_sendflow *f, uint64_t code)
{
	if (f->state == RTMFP_SENDFLOW_EXCEPTION ||
	    f->state == RTMFP_SENDFLOW_COMPLETE)
		return;
	f->state = RTMFP_SENDFLOW_EXCEPTION;
	f->exception_code = code;
	drop_all(f);
	note_room(f);
}

/* ---- choosing what to send ---- */

static bool sending(const struct rtmfp_sendflow *f)
{
	return f->state == RTMFP_SENDFLOW_OPEN ||
	       f->state == RTMFP_SENDFLOW_CLOSING;
}

static bool needs_fin_frag(const struct rtmfp_sendflow *f)
{
	return f->close_requested && !f->final_seq && !f->cut_msg &&
	       f->base_seq + f->count > 1;
}

/* forward sequence number: all below it acked or abandoned (§3.6.2) */
static uint64_t forward_seq(const struct rtmfp_sendflow *f)
{
	uint64_t s;

	for (s = f->base_seq; s < next_seq(f); s++) {
		const struct frag *fr = frag_at(f, s);

		if (!(fr->flags & (FR_ACKED | FR_ABANDONED)))
			break;
	}
	return s - 1;
}

static void fill(const struct rtmfp_sendflow *f,
		 struct rtmfp_sendflow_frag *out, uint64_t seq, uint8_t fra,
		 bool abandon, bool final, const uint8_t *data, size_t len,
		 bool retx)
{
	uint64_t fsn = forward_seq(f);

	if (fsn > seq)
		fsn = seq;
	memset(out, 0, sizeof(*out));
	out->seq = seq;
	out->fsn_offset = seq - fsn;
	out->fra = fra;
	out->abandon = abandon;
	out->final = final;
	out->options = f->wants_options;
	out->retransmission = retx;
	out->data = len ? data : NULL;
	out->len = len;
}

/* The lowest fragment waiting for retransmission, or NULL. */
static struct frag *first_pending(struct rtmfp_sendflow *f, uint64_t *seq)
{
	uint64_t s;

	if (!f->pending_rtx)
		return NULL;
	if (f->rtx_hint < f->base_seq)
		f->rtx_hint = f->base_seq;
	for (s = f->rtx_hint; s < next_seq(f); s++) {
		struct frag *fr = frag_at(f, s);

		if (!(fr->flags & (FR_IN_FLIGHT | FR_ACKED))) {
			f->rtx_hint = s;
			*seq = s;
			return fr;
		}
	}
	f->rtx_hint = s;
	return NULL;
}

static uint8_t fra_of(bool first, bool last)
{
	if (first && last)
		return RTMFP_WIRE_UD_FRA_WHOLE;
	if (first)
		return RTMFP_WIRE_UD_FRA_BEGIN;
	if (last)
		return RTMFP_WIRE_UD_FRA_END;
	return RTMFP_WIRE_UD_FRA_MIDDLE;
}

int rtmfp_sendflow_next(struct rtmfp_sendflow *f, uint64_t now,
			size_t max_data_bytes, struct rtmfp_sendflow_frag *out)
{
	struct frag *fr;
	struct msg *m;
	uint64_t seq;

	if (!sending(f))
		return 0;
	check_deadlines(f, now);
	if (f->in_flight_data >= f->rx_window)
		return 0;

	fr = first_pending(f, &seq);
	if (fr) {
		bool abn = fr->flags & FR_ABANDONED;

		if (!abn && fr->len > max_data_bytes)
			return 0;
		fill(f, out, seq, fr->fra, abn, fr->flags & FR_FINAL,
		     abn ? NULL : fr->msg->data + fr->off, abn ? 0 : fr->len,
		     true);
		return 1;
	}

	if (f->count >= RTMFP_SENDFLOW_MAX_FRAGS)
		return 0;
	m = f->cut_msg;
	if (m) {
		size_t rest = m->len - m->cut, take = rest;
		bool last;

		if (take > max_data_bytes)
			take = max_data_bytes;
		if (take > UINT32_MAX)
			take = UINT32_MAX;
		if (rest && !take)
			return 0;
		last = take == rest;
		fill(f, out, next_seq(f), fra_of(m->cut == 0, last), false,
		     last && !m->next && f->close_requested,
		     m->data + m->cut, take, false);
		return 1;
	}
	if (needs_fin_frag(f)) {
		fill(f, out, next_seq(f), RTMFP_WIRE_UD_FRA_WHOLE, true, true,
		     NULL, 0, false);
		return 1;
	}
	return 0;
}

static int ring_grow(struct rtmfp_sendflow *f)
{
	size_t cap = f->ring_cap ? f->ring_cap * 2 : 8, i; /* most flows carry a few messages */
	struct frag *r;

	r = malloc(cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (i = 0; i < f->count; i++)
		r[i] = f->ring[(f->ring_head + i) & (f->ring_cap - 1)];
	free(f->ring);
	f->ring = r;
	f->ring_cap = cap;
	f->ring_head = 0;
	return 0;
}

static void tx_unlink(struct rtmfp_sendflow *f, struct frag *fr)
{
	if (fr->tx_prev)
		frag_at(f, fr->tx_prev)->tx_next = fr->tx_next;
	else
		f->tx_head = fr->tx_next;
	if (fr->tx_next)
		frag_at(f, fr->tx_next)->tx_prev = fr->tx_prev;
	else
		f->tx_tail = fr->tx_prev;
	fr->tx_prev = fr->tx_next = 0;
}

/* Take a fragment out of flight: lost, or acked (not here). */
static void out_of_flight(struct rtmfp_sendflow *f, struct frag *fr)
{
	tx_unlink(f, fr);
	fr->flags &= (uint8_t)~FR_IN_FLIGHT;
	f->in_flight_wire -= fr->wire_bytes;
	f->in_flight_data -= (fr->flags & FR_SENT_ABN) ? 0 : fr->len;
}

static void mark_lost(struct rtmfp_sendflow *f, uint64_t seq, struct frag *fr)
{
	out_of_flight(f, fr);
	f->pending_rtx++;
	if (seq < f->rtx_hint)
		f->rtx_hint = seq;
}

void rtmfp_sendflow_commit(struct rtmfp_sendflow *f,
			   const struct rtmfp_sendflow_frag *frag,
			   uint64_t now, size_t wire_bytes)
{
	struct frag *fr;
	uint64_t seq = frag->seq;

	if (!sending(f))
		return;
	if (seq == next_seq(f)) {
		struct msg *m = f->cut_msg;

		if (f->count == f->ring_cap && ring_grow(f) < 0)
			return; /* as if the chunk was lost: it is never acked */
		f->count++;
		fr = frag_at(f, seq);
		memset(fr, 0, sizeof(*fr));
		fr->fra = frag->fra;
		if (m) {
			fr->msg = m;
			fr->off = m->cut;
			fr->len = (uint32_t)frag->len;
			if (!m->nfrags)
				m->first_seq = seq;
			m->nfrags++;
			m->frags_open++;
			m->cut += frag->len;
			if (m->cut == m->len) {
				m->cut_done = true;
				f->cut_msg = m->next;
			}
		} else {
			fr->flags |= FR_ABANDONED;
		}
		if (frag->final) {
			fr->flags |= FR_FINAL;
			f->final_seq = seq;
		}
	} else {
		if (!has_seq(f, seq))
			return;
		fr = frag_at(f, seq);
		if (fr->flags & (FR_IN_FLIGHT | FR_ACKED))
			return;
		f->pending_rtx--;
		fr->flags |= FR_RETX;
		f->retransmissions++;
	}
	fr->flags |= FR_IN_FLIGHT;
	if (frag->abandon)
		fr->flags |= FR_SENT_ABN;
	else
		fr->flags &= (uint8_t)~FR_SENT_ABN;
	fr->sent_ns = now;
	fr->wire_bytes = wire_bytes > UINT32_MAX ? UINT32_MAX :
						   (uint32_t)wire_bytes;
	fr->naks = 0;
	fr->tx_order = ++f->tx_counter;
	if (!(fr->flags & FR_RETX))
		fr->tx_first = fr->tx_order;
	fr->tx_prev = f->tx_tail;
	fr->tx_next = 0;
	if (f->tx_tail)
		frag_at(f, f->tx_tail)->tx_next = seq;
	else
		f->tx_head = seq;
	f->tx_tail = seq;
	f->in_flight_wire += fr->wire_bytes;
	f->in_flight_data += frag->abandon ? 0 : fr->len;
}

/* ---- acknowledgements ---- */

static void ack_one(struct rtmfp_sendflow *f, uint64_t now, uint64_t seq,
		    struct rtmfp_sendflow_ack_result *r)
{
	struct frag *fr = frag_at(f, seq);
	struct msg *m;

	if (fr->flags & FR_ACKED)
		return;
	if (fr->flags & FR_IN_FLIGHT) {
		out_of_flight(f, fr);
		r->bytes_acked += fr->wire_bytes;
		/* Which copy arrived is unknown for a retransmitted fragment:
		 * only its first transmission surely came after the fragments
		 * this ack will count a negative ack for. */
		if (fr->tx_first > r->priv_max_tx)
			r->priv_max_tx = fr->tx_first;
		if (!(fr->flags & FR_RETX) &&
		    (!r->has_rtt || now - fr->sent_ns < r->rtt_ns)) {
			r->has_rtt = true;
			r->rtt_ns = now >= fr->sent_ns ? now - fr->sent_ns : 0;
		}
	} else {
		f->pending_rtx--;
	}
	fr->flags |= FR_ACKED;
	fr->skip = seq + 1;
	r->frags_acked++;
	m = fr->msg;
	fr->msg = NULL;
	if (m && --m->frags_open == 0 && m->cut_done)
		unlink_msg(f, m);
}

/* The first seq >= @seq not acked yet (next_seq if none). */
static uint64_t next_unacked(struct rtmfp_sendflow *f, uint64_t seq)
{
	uint64_t end = next_seq(f), s = seq, to = seq;

	while (to < end && (frag_at(f, to)->flags & FR_ACKED))
		to = frag_at(f, to)->skip;
	while (s < to && s < end) { /* compress the path */
		struct frag *fr = frag_at(f, s);

		s = fr->skip;
		fr->skip = to;
	}
	return to;
}

static void ack_span(struct rtmfp_sendflow *f, uint64_t now, uint64_t first,
		     uint64_t last, struct rtmfp_sendflow_ack_result *r)
{
	uint64_t s;

	if (first < f->base_seq)
		first = f->base_seq;
	if (f->count == 0 || last < first)
		return;
	if (last > next_seq(f) - 1)
		last = next_seq(f) - 1;
	for (s = next_unacked(f, first); s <= last; s = next_unacked(f, s + 1))
		ack_one(f, now, s, r);
}

int rtmfp_sendflow_ack_begin(struct rtmfp_sendflow *f, uint64_t now,
			     uint64_t buffer_blocks, uint64_t cumulative_ack,
			     struct rtmfp_sendflow_ack_result *r)
{
	memset(r, 0, sizeof(*r));
	if (!sending(f))
		return 0;
	f->wants_options = false;
	f->rx_window = buffer_blocks > UINT64_MAX / 1024 ? UINT64_MAX :
			buffer_blocks * 1024;
	if (f->rx_window == 0) {
		if (!f->probing) {
			f->probing = true;
			f->probe_interval = RTMFP_SENDFLOW_PROBE_INITIAL_NS;
			f->probe_at = now + f->probe_interval;
		}
	} else {
		f->probing = false;
	}
	ack_span(f, now, 1, cumulative_ack, r);
	return cumulative_ack >= next_seq(f) ? BFS_EPROTO : 0;
}

int rtmfp_sendflow_ack_range(struct rtmfp_sendflow *f, uint64_t now,
			     uint64_t first, uint64_t last,
			     struct rtmfp_sendflow_ack_result *r)
{
	if (!sending(f))
		return 0;
	if (first > last)
		return BFS_EPROTO;
	ack_span(f, now, first, last, r);
	return last >= next_seq(f) ? BFS_EPROTO : 0;
}

void rtmfp_sendflow_ack_end(struct rtmfp_sendflow *f, uint64_t now,
			    struct rtmfp_sendflow_ack_result *r)
{
	uint64_t s, nexts;

	(void)now;
	if (!sending(f))
		return;
	/* §3.6.2: every fragment sent before one this ack covers gets a NAK */
	for (s = f->tx_head; s; s = nexts) {
		struct frag *fr = frag_at(f, s);

		nexts = fr->tx_next;
		if (fr->tx_order >= r->priv_max_tx)
			break;
		if (++fr->naks >= RTMFP_SENDFLOW_NAKS_FOR_LOSS) {
			r->bytes_lost += fr->wire_bytes;
			r->frags_lost++;
			mark_lost(f, s, fr);
		}
	}
	while (f->count && (frag_at(f, f->base_seq)->flags & FR_ACKED)) {
		f->ring_head = (f->ring_head + 1) & (f->ring_cap - 1);
		f->base_seq++;
		f->count--;
	}
	if (f->rtx_hint < f->base_seq)
		f->rtx_hint = f->base_seq;
	if (f->state == RTMFP_SENDFLOW_CLOSING) {
		check_complete(f);
		r->completed = f->state == RTMFP_SENDFLOW_COMPLETE;
	}
	note_room(f);
}

size_t rtmfp_sendflow_on_timeout(struct rtmfp_sendflow *f)
{
	size_t lost = f->in_flight_wire;

	while (f->tx_head)
		mark_lost(f, f->tx_head, frag_at(f, f->tx_head));
	return lost;
}

size_t rtmfp_sendflow_probe_retransmit(struct rtmfp_sendflow *f)
{
	size_t bytes;

	if (!f->tx_head)
		return 0;
	bytes = frag_at(f, f->tx_head)->wire_bytes;
	mark_lost(f, f->tx_head, frag_at(f, f->tx_head));
	return bytes;
}

/* ---- probes, deadlines, writability ---- */

static bool data_waiting(const struct rtmfp_sendflow *f)
{
	return f->pending_rtx || f->cut_msg || needs_fin_frag(f);
}

bool rtmfp_sendflow_probe_due(struct rtmfp_sendflow *f, uint64_t now,
			      uint64_t erto_ns)
{
	uint64_t next;

	if (!sending(f) || !f->probing || !data_waiting(f) || now < f->probe_at)
		return false;
	next = f->probe_interval + f->probe_interval / 1000 * 414;
	if (next < erto_ns)
		next = erto_ns;
	if (next > RTMFP_SENDFLOW_PROBE_MAX_NS)
		next = RTMFP_SENDFLOW_PROBE_MAX_NS;
	f->probe_interval = next;
	f->probe_at = now + next;
	return true;
}

uint64_t rtmfp_sendflow_next_deadline(const struct rtmfp_sendflow *f)
{
	uint64_t t = UINT64_MAX;
	const struct msg *m;

	if (!sending(f))
		return t;
	if (f->probing && data_waiting(f))
		t = f->probe_at;
	if (f->n_deadlines) {
		for (m = f->head; m; m = m->next) {
			if (m->deadline_ns && m->deadline_ns < t)
				t = m->deadline_ns;
		}
	}
	return t;
}

bool rtmfp_sendflow_take_writable(struct rtmfp_sendflow *f)
{
	bool r = f->writable_ready;

	f->writable_ready = false;
	return r;
}

/* ---- getters ---- */

uint64_t rtmfp_sendflow_id(const struct rtmfp_sendflow *f)
{
	return f->flow_id;
}

enum rtmfp_sendflow_state rtmfp_sendflow_state(const struct rtmfp_sendflow *f)
{
	return f->state;
}

uint64_t rtmfp_sendflow_exception_code(const struct rtmfp_sendflow *f)
{
	return f->exception_code;
}

bool rtmfp_sendflow_wants_options(const struct rtmfp_sendflow *f)
{
	return f->wants_options;
}

const uint8_t *rtmfp_sendflow_metadata(const struct rtmfp_sendflow *f,
				       size_t *len)
{
	*len = f->metadata_len;
	return f->metadata;
}

bool rtmfp_sendflow_return_flow(const struct rtmfp_sendflow *f,
				uint64_t *flow_id)
{
	if (f->has_return_flow)
		*flow_id = f->return_flow_id;
	return f->has_return_flow;
}

size_t rtmfp_sendflow_bytes_in_flight(const struct rtmfp_sendflow *f)
{
	return f->in_flight_wire;
}

size_t rtmfp_sendflow_bytes_queued(const struct rtmfp_sendflow *f)
{
	return f->queued_bytes;
}

uint64_t rtmfp_sendflow_rx_window(const struct rtmfp_sendflow *f)
{
	return f->rx_window;
}

bool rtmfp_sendflow_has_data(const struct rtmfp_sendflow *f)
{
	return sending(f) && data_waiting(f) &&
	       f->in_flight_data < f->rx_window;
}

uint64_t rtmfp_sendflow_retransmissions(const struct rtmfp_sendflow *f)
{
	return f->retransmissions;
}
