/* Multi-Paxos message codec hooks (see core/msg.h, core/msg_paxos.h).
 *
 * Bodies are positional msgpack arrays, like the Raft cases of core/msg.c.
 * The decoder is strict: exact arity and types, entries as [slot, ballot,
 * type, data] with slots consecutive (ACCEPT, CHOSEN) or strictly ascending
 * with a non-zero ballot (PROMISE), counts under SY_MAX_ENTRIES_PER_MSG.
 * Entry arrays are allocated here and freed by sy_msg_paxos_free; entry
 * data is borrowed from the envelope buffer. */
#include <stdlib.h>
#include <string.h>
#include "core/msg.h"
#include "core/mp.h"
#include "crypto/sy_err.h"

const char *sy_msg_paxos_name(int type)
{
    switch (type) {
    case SY_MSG_PAXOS_PREPARE: return "paxos_prepare";
    case SY_MSG_PAXOS_PROMISE: return "paxos_promise";
    case SY_MSG_PAXOS_ACCEPT: return "paxos_accept";
    case SY_MSG_PAXOS_ACCEPTED: return "paxos_accepted";
    case SY_MSG_PAXOS_CHOSEN: return "paxos_chosen";
    case SY_MSG_PAXOS_LEARN: return "paxos_learn";
    case SY_MSG_PAXOS_SNAPSHOT: return "paxos_snapshot";
    case SY_MSG_PAXOS_SNAPSHOT_ACK: return "paxos_snapshot_ack";
    case SY_MSG_PAXOS_TAKEOVER: return "paxos_takeover";
    default: return "unknown";
    }
}

/* ---------------------------------------------------------------- encode */

static void put_bool(msgpack_packer *pk, bool b)
{
    b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static void put_entries(msgpack_packer *pk, const sy_entry *e, uint32_t n)
{
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, e[i].index);
        msgpack_pack_uint64(pk, e[i].term);
        msgpack_pack_uint8(pk, e[i].type);
        sy_mp_put_bin(pk, e[i].data.p, e[i].data.len);
    }
}

int sy_msg_paxos_encode(const sy_msg *m, void *packer)
{
    msgpack_packer *pk = packer;
    const sy_paxos_body *b = &m->u.paxos;
    switch (m->type) {
    case SY_MSG_PAXOS_PREPARE:
        /* `probe` is a trailing field, sent only when set: a PREPARE
         * without it has the format of nodes that predate pre-prepare */
        msgpack_pack_array(pk, b->prepare.probe ? 3 : 2);
        msgpack_pack_uint64(pk, b->prepare.ballot);
        msgpack_pack_uint64(pk, b->prepare.from_slot);
        if (b->prepare.probe)
            put_bool(pk, true);
        return SY_OK;
    case SY_MSG_PAXOS_PROMISE: {
        const sy_paxos_promise *p = &b->promise;
        msgpack_pack_array(pk, p->probe ? 9 : 8);   /* as PREPARE's probe */
        msgpack_pack_uint64(pk, p->ballot);
        put_bool(pk, p->ok);
        msgpack_pack_uint64(pk, p->promised);
        msgpack_pack_uint64(pk, p->commit);
        msgpack_pack_uint64(pk, p->snap_index);
        msgpack_pack_uint64(pk, p->from_slot);
        msgpack_pack_uint64(pk, p->next_slot);
        put_entries(pk, p->entries, p->n_entries);
        if (p->probe)
            put_bool(pk, true);
        return SY_OK;
    }
    case SY_MSG_PAXOS_ACCEPT: {
        const sy_paxos_accept *a = &b->accept;
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, a->ballot);
        msgpack_pack_uint64(pk, a->chosen);
        msgpack_pack_uint64(pk, a->read_ctx);
        put_entries(pk, a->entries, a->n_entries);
        return SY_OK;
    }
    case SY_MSG_PAXOS_ACCEPTED: {
        const sy_paxos_accepted *a = &b->accepted;
        msgpack_pack_array(pk, 7);
        msgpack_pack_uint64(pk, a->ballot);
        put_bool(pk, a->ok);
        msgpack_pack_uint64(pk, a->promised);
        msgpack_pack_uint64(pk, a->first);
        msgpack_pack_uint32(pk, a->count);
        msgpack_pack_uint64(pk, a->commit);
        msgpack_pack_uint64(pk, a->read_ctx);
        return SY_OK;
    }
    case SY_MSG_PAXOS_CHOSEN: {
        const sy_paxos_chosen *c = &b->chosen;
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint64(pk, c->ballot);
        msgpack_pack_uint64(pk, c->commit);
        put_entries(pk, c->entries, c->n_entries);
        return SY_OK;
    }
    case SY_MSG_PAXOS_LEARN:
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint64(pk, b->learn.from_slot);
        return SY_OK;
    case SY_MSG_PAXOS_TAKEOVER:
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint64(pk, b->takeover.ballot);
        return SY_OK;
    case SY_MSG_PAXOS_SNAPSHOT: {
        const sy_paxos_snapshot *s = &b->snap;
        msgpack_pack_array(pk, 6);
        msgpack_pack_uint64(pk, s->ballot);
        msgpack_pack_uint64(pk, s->index);
        msgpack_pack_uint64(pk, s->term);
        msgpack_pack_uint64(pk, s->offset);
        put_bool(pk, s->done);
        sy_mp_put_bin(pk, s->data.p, s->data.len);
        return SY_OK;
    }
    case SY_MSG_PAXOS_SNAPSHOT_ACK: {
        const sy_paxos_snapshot_ack *s = &b->snap_ack;
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, s->index);
        msgpack_pack_uint64(pk, s->next_offset);
        put_bool(pk, s->done);
        msgpack_pack_uint64(pk, s->commit);
        return SY_OK;
    }
    default:
        return SY_EMSGTYPE;
    }
}

/* ---------------------------------------------------------------- decode */

static int get_u64(sy_mp_reader *r, uint64_t *v) { return sy_mp_uint(r, UINT64_MAX, v); }

enum entries_order { ORDER_CONSECUTIVE, ORDER_ASCENDING };

/* Allocates *out (n > 0) even on a later error, so the caller's free path
 * releases it. */
static int get_entries(sy_mp_reader *r, enum entries_order order, sy_entry **out, uint32_t *nout)
{
    uint32_t n = 0;
    if (sy_mp_array(r, &n))
        return r->err;
    if (n > SY_MAX_ENTRIES_PER_MSG)
        return r->err = SY_ETOOBIG;
    if (n == 0)
        return SY_OK;
    sy_entry *e = calloc(n, sizeof *e);
    if (!e)
        return r->err = SY_ENOMEM;
    *out = e;
    *nout = n;
    for (uint32_t i = 0; i < n && !r->err; i++) {
        sy_mp_array_exact(r, 4);
        get_u64(r, &e[i].index);
        get_u64(r, &e[i].term);
        sy_mp_u8(r, &e[i].type);
        sy_mp_bin(r, SY_MAX_ENVELOPE, &e[i].data.p, &e[i].data.len);
        if (r->err)
            break;
        if (e[i].type > SY_ENTRY_CONFIG || e[i].index == 0 || e[i].term == 0)
            r->err = SY_EFIELD;
        else if (i > 0 && order == ORDER_CONSECUTIVE && e[i].index != e[i - 1].index + 1)
            r->err = SY_EFIELD;
        else if (i > 0 && order == ORDER_ASCENDING && e[i].index <= e[i - 1].index)
            r->err = SY_EFIELD;
    }
    return r->err;
}

int sy_msg_paxos_decode(sy_msg *m, void *reader)
{
    sy_mp_reader *r = reader;
    sy_paxos_body *b = &m->u.paxos;
    switch (m->type) {
    case SY_MSG_PAXOS_PREPARE:
    {
        uint32_t n = 0;
        if (!sy_mp_array(r, &n) && n != 2 && n != 3)
            r->err = SY_EFIELD;
        get_u64(r, &b->prepare.ballot);
        get_u64(r, &b->prepare.from_slot);
        if (n == 3) {
            sy_mp_bool(r, &b->prepare.probe);
            if (!r->err && !b->prepare.probe)
                r->err = SY_EFIELD;   /* sent only when set: one encoding */
        }
        if (!r->err && (b->prepare.ballot == 0 || b->prepare.from_slot == 0))
            r->err = SY_EFIELD;
        break;
    }
    case SY_MSG_PAXOS_PROMISE: {
        sy_paxos_promise *p = &b->promise;
        uint32_t n = 0;
        if (!sy_mp_array(r, &n) && n != 8 && n != 9)
            r->err = SY_EFIELD;
        get_u64(r, &p->ballot);
        sy_mp_bool(r, &p->ok);
        get_u64(r, &p->promised);
        get_u64(r, &p->commit);
        get_u64(r, &p->snap_index);
        get_u64(r, &p->from_slot);
        get_u64(r, &p->next_slot);
        if (r->err)
            break;
        if (get_entries(r, ORDER_ASCENDING, &p->entries, &p->n_entries))
            break;
        if (n == 9) {
            sy_mp_bool(r, &p->probe);
            if (!r->err && !p->probe)
                r->err = SY_EFIELD;
            if (r->err)
                break;
        }
        if (p->ballot == 0 || p->from_slot == 0 || (p->probe && p->n_entries) ||
            (p->next_slot != 0 && p->next_slot <= p->from_slot) ||
            (p->n_entries && p->entries[0].index < p->from_slot) ||
            (p->n_entries && p->next_slot && p->entries[p->n_entries - 1].index >= p->next_slot))
            r->err = SY_EFIELD;
        break;
    }
    case SY_MSG_PAXOS_ACCEPT: {
        sy_paxos_accept *a = &b->accept;
        sy_mp_array_exact(r, 4);
        get_u64(r, &a->ballot);
        get_u64(r, &a->chosen);
        get_u64(r, &a->read_ctx);
        if (r->err)
            break;
        if (get_entries(r, ORDER_CONSECUTIVE, &a->entries, &a->n_entries))
            break;
        if (a->ballot == 0)
            r->err = SY_EFIELD;
        for (uint32_t i = 0; i < a->n_entries && !r->err; i++)
            if (a->entries[i].term != a->ballot)
                r->err = SY_EFIELD;
        break;
    }
    case SY_MSG_PAXOS_ACCEPTED: {
        sy_paxos_accepted *a = &b->accepted;
        sy_mp_array_exact(r, 7);
        get_u64(r, &a->ballot);
        sy_mp_bool(r, &a->ok);
        get_u64(r, &a->promised);
        get_u64(r, &a->first);
        sy_mp_u32(r, &a->count);
        get_u64(r, &a->commit);
        get_u64(r, &a->read_ctx);
        if (!r->err && (a->count > SY_MAX_ENTRIES_PER_MSG ||
                        (a->count && a->first == 0) || a->first > UINT64_MAX - a->count))
            r->err = SY_EFIELD;
        break;
    }
    case SY_MSG_PAXOS_CHOSEN: {
        sy_paxos_chosen *c = &b->chosen;
        sy_mp_array_exact(r, 3);
        get_u64(r, &c->ballot);
        get_u64(r, &c->commit);
        if (r->err)
            break;
        if (get_entries(r, ORDER_CONSECUTIVE, &c->entries, &c->n_entries))
            break;
        if (c->n_entries && c->entries[c->n_entries - 1].index > c->commit)
            r->err = SY_EFIELD;
        break;
    }
    case SY_MSG_PAXOS_LEARN:
        sy_mp_array_exact(r, 1);
        get_u64(r, &b->learn.from_slot);
        if (!r->err && b->learn.from_slot == 0)
            r->err = SY_EFIELD;
        break;
    case SY_MSG_PAXOS_TAKEOVER:
        sy_mp_array_exact(r, 1);
        get_u64(r, &b->takeover.ballot);
        if (!r->err && b->takeover.ballot == 0)
            r->err = SY_EFIELD;
        break;
    case SY_MSG_PAXOS_SNAPSHOT: {
        sy_paxos_snapshot *s = &b->snap;
        sy_mp_array_exact(r, 6);
        get_u64(r, &s->ballot);
        get_u64(r, &s->index);
        get_u64(r, &s->term);
        get_u64(r, &s->offset);
        sy_mp_bool(r, &s->done);
        sy_mp_bin(r, SY_PAXOS_MSG_BYTES, &s->data.p, &s->data.len);
        if (!r->err && (s->index == 0 || s->offset > UINT64_MAX - s->data.len))
            r->err = SY_EFIELD;
        break;
    }
    case SY_MSG_PAXOS_SNAPSHOT_ACK: {
        sy_paxos_snapshot_ack *s = &b->snap_ack;
        sy_mp_array_exact(r, 4);
        get_u64(r, &s->index);
        get_u64(r, &s->next_offset);
        sy_mp_bool(r, &s->done);
        get_u64(r, &s->commit);
        break;
    }
    default:
        return SY_EMSGTYPE;
    }
    return r->err;
}

void sy_msg_paxos_free(sy_msg *m)
{
    sy_paxos_body *b = &m->u.paxos;
    switch (m->type) {
    case SY_MSG_PAXOS_PROMISE:
        free(b->promise.entries);
        b->promise.entries = NULL;
        b->promise.n_entries = 0;
        break;
    case SY_MSG_PAXOS_ACCEPT:
        free(b->accept.entries);
        b->accept.entries = NULL;
        b->accept.n_entries = 0;
        break;
    case SY_MSG_PAXOS_CHOSEN:
        free(b->chosen.entries);
        b->chosen.entries = NULL;
        b->chosen.n_entries = 0;
        break;
    default:
        break;
    }
}
