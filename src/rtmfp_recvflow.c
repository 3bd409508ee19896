/*
 * rtmfp_recvflow.c - the receiving side of one RTMFP flow (see
 * rtmfp_recvflow.h, RFC 7016 §3.6.3).
 *
 * Two cursors over the sequence numbers, dlv - 1 <= cum: every seq below
 * dlv has been processed (its bytes handed to reassembly or skipped); every
 * seq up to cum was received or abandoned (what the cumulative ack says).
 * Sequence numbers from dlv on that could not be processed at once sit in a
 * ring of slots indexed from dlv (at most max_reorder_span of them).  What
 * was received above cum is also kept as a sorted array of ranges, so an
 * ack costs the ranges it reports, not the width of the window.  The in-order, unpaused case skips the
 * ring: a fragment equal to dlv is processed straight from the caller's
 * bytes, and a whole message is delivered without a copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/err.h"
#include "buddyfs/rtmfp_recvflow.h"

enum {
	SL_PRESENT = 1 << 0,   /* received (or abandoned, below) */
	SL_ABANDONED = 1 << 1, /* abn, or skipped by the forward seq number */
};

struct slot {
	uint8_t *data;         /* copy of the payload, NULL if none */
	uint32_t len;
	uint8_t fra;
	uint8_t flags;
};

struct rtmfp_recvflow {
	uint64_t flow_id;
	uint8_t *metadata;
	size_t metadata_len;
	bool has_return_flow;
	uint64_t return_flow_id;
	size_t buf_cap, max_msg;
	uint64_t span;
	rtmfp_recvflow_message_fn on_message;
	void *ctx;

	enum rtmfp_recvflow_state state;
	uint64_t exception_code;
	bool paused;
	bool delivering;

	uint64_t cum, dlv;
	uint64_t final_seq;    /* 0 until a fin arrived */
	/* received runs above cum: sorted, disjoint, not adjacent, first >= cum + 2 */
	struct rtmfp_wire_seq_range *rng;
	size_t nrng, rng_cap;

	struct slot *ring;
	size_t ring_cap;       /* power of two, 0 before the first use */
	size_t ring_head;      /* slot of seq dlv */
	size_t buffered;       /* bytes in slots */

	uint8_t *asm_buf;
	size_t asm_len, asm_cap;
	bool asm_active;

	bool ack_wanted, ack_now;
	uint64_t prev_rwnd;    /* blocks advertised in the last ack */
	uint64_t delivered;
};

int rtmfp_recvflow_new(struct rtmfp_recvflow **out,
		       const struct rtmfp_recvflow_config *cfg)
{
	struct rtmfp_recvflow *f;

	*out = NULL;
	if (!cfg || (cfg->metadata_len && !cfg->metadata))
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
	f->buf_cap = cfg->buffer_bytes ? cfg->buffer_bytes :
		     RTMFP_RECVFLOW_DEFAULT_BUFFER_BYTES;
	f->max_msg = cfg->max_message_bytes ? cfg->max_message_bytes :
		     RTMFP_RECVFLOW_DEFAULT_MAX_MESSAGE_BYTES;
	f->span = cfg->max_reorder_span ? cfg->max_reorder_span :
		  RTMFP_RECVFLOW_DEFAULT_REORDER_SPAN;
	f->on_message = cfg->on_message;
	f->ctx = cfg->ctx;
	f->state = RTMFP_RECVFLOW_OPEN;
	f->dlv = 1;
	f->prev_rwnd = UINT64_MAX;
	*out = f;
	return 0;
}

static void drop_buffers(struct rtmfp_recvflow *f)
{
	size_t i;

	for (i = 0; i < f->ring_cap; i++) {
		free(f->ring[i].data);
		memset(&f->ring[i], 0, sizeof(f->ring[i]));
	}
	f->buffered = 0;
	f->asm_len = 0;
	f->asm_active = false;
	if (!f->delivering) {
		free(f->asm_buf);
		f->asm_buf = NULL;
		f->asm_cap = 0;
	}
}

void rtmfp_recvflow_free(struct rtmfp_recvflow *f)
{
	if (!f)
		return;
	f->delivering = false;
	drop_buffers(f);
	free(f->ring);
	free(f->rng);
	free(f->metadata);
	free(f);
}

/* ---- the slot ring ---- */

static struct slot *slot_at(const struct rtmfp_recvflow *f, uint64_t seq)
{
	return &f->ring[(f->ring_head + (size_t)(seq - f->dlv)) &
			(f->ring_cap - 1)];
}

/* Make room for seq (seq - dlv < span, checked by the caller). */
static int ring_reserve(struct rtmfp_recvflow *f, uint64_t seq)
{
	size_t need = (size_t)(seq - f->dlv) + 1, cap, i;
	struct slot *r;

	if (need <= f->ring_cap)
		return 0;
	cap = f->ring_cap ? f->ring_cap : 64;
	while (cap < need)
		cap *= 2;
	r = calloc(cap, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (i = 0; i < f->ring_cap; i++)
		r[i] = f->ring[(f->ring_head + i) & (f->ring_cap - 1)];
	free(f->ring);
	f->ring = r;
	f->ring_cap = cap;
	f->ring_head = 0;
	return 0;
}

static bool present(const struct rtmfp_recvflow *f, uint64_t seq)
{
	if (seq <= f->cum)
		return true;
	if (seq - f->dlv >= f->ring_cap)
		return false;
	return slot_at(f, seq)->flags & SL_PRESENT;
}

/* First range whose first seq is above @seq (binary search). */
static size_t range_after(const struct rtmfp_recvflow *f, uint64_t seq)
{
	size_t lo = 0, hi = f->nrng;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->rng[mid].first > seq)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* A fresh seq above cum + 1 joined the received set. */
static int range_add(struct rtmfp_recvflow *f, uint64_t seq)
{
	size_t i = range_after(f, seq);
	bool left = i > 0 && f->rng[i - 1].last + 1 == seq;
	bool right = i < f->nrng && f->rng[i].first == seq + 1;

	if (left && right) {
		f->rng[i - 1].last = f->rng[i].last;
		memmove(&f->rng[i], &f->rng[i + 1],
			(f->nrng - i - 1) * sizeof(f->rng[0]));
		f->nrng--;
	} else if (left) {
		f->rng[i - 1].last = seq;
	} else if (right) {
		f->rng[i].first = seq;
	} else {
		if (f->nrng == f->rng_cap) {
			size_t cap = f->rng_cap ? f->rng_cap * 2 : 16;
			struct rtmfp_wire_seq_range *r;

			r = realloc(f->rng, cap * sizeof(*r));
			if (!r)
				return -ENOMEM;
			f->rng = r;
			f->rng_cap = cap;
		}
		memmove(&f->rng[i + 1], &f->rng[i],
			(f->nrng - i) * sizeof(f->rng[0]));
		f->rng[i].first = f->rng[i].last = seq;
		f->nrng++;
	}
	return 0;
}

static void advance_cum(struct rtmfp_recvflow *f)
{
	size_t n = 0;

	while (f->cum + 1 - f->dlv < f->ring_cap &&
	       (slot_at(f, f->cum + 1)->flags & SL_PRESENT))
		f->cum++;
	while (n < f->nrng && f->rng[n].last <= f->cum)
		n++;
	if (n) {
		memmove(&f->rng[0], &f->rng[n],
			(f->nrng - n) * sizeof(f->rng[0]));
		f->nrng -= n;
	}
}

/* ---- reassembly and delivery ---- */

static void deliver(struct rtmfp_recvflow *f, const uint8_t *data, size_t len)
{
	f->delivered++;
	if (f->on_message) {
		f->delivering = true;
		f->on_message(f->ctx, f, data, len);
		f->delivering = false;
		if (f->state != RTMFP_RECVFLOW_OPEN && !f->asm_active) {
			free(f->asm_buf);
			f->asm_buf = NULL;
			f->asm_cap = 0;
		}
	}
}

static int append(struct rtmfp_recvflow *f, const uint8_t *data, size_t len)
{
	if (len > f->max_msg - f->asm_len)
		return BFS_ETOOBIG;
	if (f->asm_len + len > f->asm_cap) {
		size_t cap = f->asm_cap ? f->asm_cap : 4096;
		uint8_t *b;

		while (cap < f->asm_len + len)
			cap = cap > f->max_msg / 2 ? f->max_msg : cap * 2;
		b = realloc(f->asm_buf, cap);
		if (!b)
			return -ENOMEM;
		f->asm_buf = b;
		f->asm_cap = cap;
	}
	if (len)
		memcpy(f->asm_buf + f->asm_len, data, len);
	f->asm_len += len;
	return 0;
}

/* Process seq dlv (the next in order): reassemble, maybe deliver. */
static int process(struct rtmfp_recvflow *f, uint8_t fra, bool abandoned,
		   const uint8_t *data, size_t len)
{
	int err = 0;

	if (abandoned) {
		f->asm_active = false;
		f->asm_len = 0;
		return 0;
	}
	switch (fra) {
	case RTMFP_WIRE_UD_FRA_WHOLE:
		f->asm_active = false;
		f->asm_len = 0;
		deliver(f, data, len);
		break;
	case RTMFP_WIRE_UD_FRA_BEGIN:
		f->asm_len = 0;
		f->asm_active = true;
		err = append(f, data, len);
		break;
	case RTMFP_WIRE_UD_FRA_MIDDLE:
		if (f->asm_active)
			err = append(f, data, len);
		break;
	default: /* END */
		if (!f->asm_active)
			break;
		err = append(f, data, len);
		if (!err) {
			f->asm_active = false;
			deliver(f, f->asm_buf, f->asm_len);
			f->asm_len = 0;
		}
		break;
	}
	if (err) {
		f->asm_active = false;
		f->asm_len = 0;
	}
	return err;
}

static uint64_t blocks_now(const struct rtmfp_recvflow *f)
{
	size_t avail = f->buffered >= f->buf_cap ? 0 : f->buf_cap - f->buffered;
	uint64_t b = ((uint64_t)avail + RTMFP_RECVFLOW_BLOCK_BYTES - 1) /
		     RTMFP_RECVFLOW_BLOCK_BYTES;

	if (f->state == RTMFP_RECVFLOW_REJECTED)
		return 0;
	/* Unpaused, a hole may be what fills the buffer: never advertise 0
	 * then, or the sender could not send the fragment that drains it. */
	if (!b && !f->paused)
		b = 1;
	return b;
}

static void maybe_window_ack(struct rtmfp_recvflow *f)
{
	if (f->prev_rwnd < 2 && blocks_now(f) > f->prev_rwnd)
		f->ack_wanted = f->ack_now = true;
}

static void check_complete(struct rtmfp_recvflow *f)
{
	if (f->state == RTMFP_RECVFLOW_OPEN && f->final_seq &&
	    f->dlv > f->final_seq) {
		f->state = RTMFP_RECVFLOW_COMPLETE;
		f->ack_wanted = f->ack_now = true;
		drop_buffers(f);
	}
}

/* Process what is in order and not held back. */
static int drain(struct rtmfp_recvflow *f)
{
	int err = 0;

	while (!err && !f->paused && f->state == RTMFP_RECVFLOW_OPEN &&
	       f->dlv <= f->cum) {
		struct slot *sl = slot_at(f, f->dlv);
		struct slot s = *sl;

		memset(sl, 0, sizeof(*sl));
		f->buffered -= s.len;
		f->ring_head = (f->ring_head + 1) & (f->ring_cap - 1);
		f->dlv++;
		err = process(f, s.fra, s.flags & SL_ABANDONED, s.data, s.len);
		free(s.data);
	}
	if (err) /* a message cannot be completed: never deliver a gap */
		rtmfp_recvflow_reject(f, 0);
	check_complete(f);
	return err;
}

/* Record seq above cum in its slot (data copied unless abandoned). */
static int record(struct rtmfp_recvflow *f, uint64_t seq, uint8_t fra,
		  bool abandoned, const uint8_t *data, size_t len)
{
	uint8_t *copy = NULL;
	struct slot *sl;
	int err = ring_reserve(f, seq);

	if (err)
		return err;
	if (!abandoned && len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, len);
	}
	if (seq > f->cum + 1 && range_add(f, seq) < 0) {
		free(copy);
		return -ENOMEM;
	}
	sl = slot_at(f, seq);
	sl->fra = fra;
	sl->flags = SL_PRESENT | (abandoned ? SL_ABANDONED : 0);
	sl->data = copy;
	sl->len = copy ? (uint32_t)len : 0;
	f->buffered += sl->len;
	return 0;
}

int rtmfp_recvflow_data(struct rtmfp_recvflow *f, uint64_t seq,
			uint64_t fsn_offset, uint8_t fra, bool abandon,
			bool final, const uint8_t *data, size_t len)
{
	uint64_t fsn, s;
	size_t ranges_before = f->nrng;
	bool fresh;
	int err;

	if (seq == 0 || fsn_offset > seq ||
	    (fra & ~RTMFP_WIRE_UD_FLAG_FRA_MASK) || len > UINT32_MAX)
		return BFS_EPROTO;
	f->ack_wanted = true;
	if (f->state == RTMFP_RECVFLOW_REJECTED) {
		f->ack_now = true;
		return BFS_ECLOSED;
	}
	if ((final && f->final_seq && seq != f->final_seq) ||
	    (f->final_seq && seq > f->final_seq))
		return BFS_EPROTO;
	fsn = seq - fsn_offset;
	fresh = !present(f, seq);

	/* the flow's part of "ack now" (§3.6.3.4) */
	if (!fresh || abandon || f->nrng || f->prev_rwnd < 2)
		f->ack_now = true;
	if (f->state != RTMFP_RECVFLOW_OPEN || !fresh)
		return 0;
	if (seq - f->dlv >= f->span) {
		f->ack_now = true;
		return 0; /* beyond the reorder span: as if lost */
	}
	if (final && !f->final_seq) {
		f->final_seq = seq;
		f->ack_now = true;
	}

	if (seq == f->dlv && seq == f->cum + 1 && !f->paused) {
		/* in order: no copy */
		f->cum++;
		f->dlv++;
		if (f->ring_cap)
			f->ring_head = (f->ring_head + 1) & (f->ring_cap - 1);
		err = process(f, fra, abandon, data, len);
		if (err) {
			rtmfp_recvflow_reject(f, 0);
			return err;
		}
	} else {
		if (!abandon && len > 2 * f->buf_cap - f->buffered) {
			f->ack_now = true;
			return 0; /* over the hard cap: drop, unacked */
		}
		err = record(f, seq, fra, abandon, data, len);
		if (err)
			return err;
	}
	/* the forward sequence number abandons what has not arrived */
	for (s = f->cum + 1; s <= fsn; s++) {
		if (present(f, s))
			continue;
		err = record(f, s, RTMFP_WIRE_UD_FRA_WHOLE, true, NULL, 0);
		if (err)
			return err;
	}
	advance_cum(f);
	if (f->nrng != ranges_before)
		f->ack_now = true;
	err = drain(f);
	maybe_window_ack(f);
	return err;
}

void rtmfp_recvflow_on_probe(struct rtmfp_recvflow *f)
{
	f->ack_wanted = f->ack_now = true;
}

void rtmfp_recvflow_set_paused(struct rtmfp_recvflow *f, bool paused)
{
	f->paused = paused;
	if (!paused && !f->delivering) {
		drain(f);
		maybe_window_ack(f);
	}
}

void rtmfp_recvflow_reject(struct rtmfp_recvflow *f, uint64_t code)
{
	if (f->state == RTMFP_RECVFLOW_REJECTED)
		return;
	f->state = RTMFP_RECVFLOW_REJECTED;
	f->exception_code = code;
	f->ack_wanted = f->ack_now = true;
	drop_buffers(f);
}

bool rtmfp_recvflow_exception(const struct rtmfp_recvflow *f, uint64_t *code)
{
	if (f->state != RTMFP_RECVFLOW_REJECTED)
		return false;
	*code = f->exception_code;
	return true;
}

bool rtmfp_recvflow_ack_wanted(const struct rtmfp_recvflow *f)
{
	return f->ack_wanted;
}

bool rtmfp_recvflow_ack_now(const struct rtmfp_recvflow *f)
{
	return f->ack_now;
}

int rtmfp_recvflow_ack(struct rtmfp_recvflow *f, size_t max_bytes,
		       struct rtmfp_wire_seq_range *ranges, size_t max_ranges,
		       struct rtmfp_recvflow_ack *out)
{
	uint64_t blocks = blocks_now(f), cursor;
	size_t used, i;

	used = rtmfp_wire_vlu_size(f->flow_id) + rtmfp_wire_vlu_size(blocks) + rtmfp_wire_vlu_size(f->cum);
	if (used > max_bytes)
		return -ENOSPC;
	memset(out, 0, sizeof(*out));
	out->buffer_blocks = blocks;
	out->cumulative_ack = f->cum;
	cursor = f->cum;
	for (i = 0; i < f->nrng; i++) {
		const struct rtmfp_wire_seq_range *g = &f->rng[i];
		size_t cost = rtmfp_wire_vlu_size(g->first - cursor - 2) +
			      rtmfp_wire_vlu_size(g->last - g->first);

		if (out->nranges == max_ranges || cost > max_bytes - used) {
			out->truncated = true;
			break;
		}
		ranges[out->nranges++] = *g;
		used += cost;
		cursor = g->last;
	}
	f->ack_wanted = f->ack_now = false;
	f->prev_rwnd = blocks;
	return 0;
}

/* ---- getters ---- */

uint64_t rtmfp_recvflow_id(const struct rtmfp_recvflow *f)
{
	return f->flow_id;
}

enum rtmfp_recvflow_state rtmfp_recvflow_state(const struct rtmfp_recvflow *f)
{
	return f->state;
}

const uint8_t *rtmfp_recvflow_metadata(const struct rtmfp_recvflow *f,
				       size_t *len)
{
	*len = f->metadata_len;
	return f->metadata;
}

bool rtmfp_recvflow_return_flow(const struct rtmfp_recvflow *f,
				uint64_t *flow_id)
{
	if (f->has_return_flow)
		*flow_id = f->return_flow_id;
	return f->has_return_flow;
}

uint64_t rtmfp_recvflow_cumulative_ack(const struct rtmfp_recvflow *f)
{
	return f->cum;
}

size_t rtmfp_recvflow_bytes_buffered(const struct rtmfp_recvflow *f)
{
	return f->buffered;
}

uint64_t rtmfp_recvflow_buffer_blocks(const struct rtmfp_recvflow *f)
{
	return blocks_now(f);
}

uint64_t rtmfp_recvflow_messages_delivered(const struct rtmfp_recvflow *f)
{
	return f->delivered;
}
