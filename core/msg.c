/* Body codec for every message type. Bodies are positional msgpack arrays;
 * the decoder is strict (exact arity and types, limits, no trailing bytes)
 * and borrows bytes from the buffer it is given. */
#include <stdlib.h>
#include <string.h>
#include "core/msg.h"
#include "core/mp.h"
#include "crypto/sy_err.h"

const char *sy_msg_type_name(int type)
{
    switch (type) {
    case SY_MSG_PING: return "ping";
    case SY_MSG_PONG: return "pong";
    case SY_MSG_CLIENT_REQ: return "client_req";
    case SY_MSG_CLIENT_REPLY: return "client_reply";
    case SY_MSG_STATUS_REQ: return "status_req";
    case SY_MSG_STATUS_REPLY: return "status_reply";
    case SY_MSG_TRANSFER_REQ: return "transfer_req";
    case SY_MSG_TRANSFER_REPLY: return "transfer_reply";
    case SY_MSG_RAFT_VOTE: return "raft_vote";
    case SY_MSG_RAFT_VOTE_RESP: return "raft_vote_resp";
    case SY_MSG_RAFT_APPEND: return "raft_append";
    case SY_MSG_RAFT_APPEND_RESP: return "raft_append_resp";
    case SY_MSG_RAFT_SNAPSHOT: return "raft_snapshot";
    case SY_MSG_RAFT_SNAPSHOT_RESP: return "raft_snapshot_resp";
    case SY_MSG_RAFT_TIMEOUT_NOW: return "raft_timeout_now";
    default:
        if (type >= SY_MSG_PAXOS_FIRST && type <= SY_MSG_PAXOS_LAST)
            return sy_msg_paxos_name(type);
        if (type >= SY_MSG_PBFT_FIRST && type <= SY_MSG_PBFT_LAST)
            return sy_msg_pbft_name(type);
        return "unknown";
    }
}

/* ---------------------------------------------------------------- encode */

static void put_bytes(msgpack_packer *pk, sy_bytes b) { sy_mp_put_bin(pk, b.p, b.len); }

static void put_members(msgpack_packer *pk, const sy_members *m)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_array(pk, m->n_voters);
    for (uint32_t i = 0; i < m->n_voters; i++)
        msgpack_pack_uint32(pk, m->voters[i]);
    msgpack_pack_array(pk, m->n_learners);
    for (uint32_t i = 0; i < m->n_learners; i++)
        msgpack_pack_uint32(pk, m->learners[i]);
}

static void put_entry(msgpack_packer *pk, const sy_entry *e)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, e->index);
    msgpack_pack_uint64(pk, e->term);
    msgpack_pack_uint8(pk, e->type);
    put_bytes(pk, e->data);
}

int sy_msg_encode_body(const sy_msg *m, sy_buf *out)
{
    msgpack_packer pk;
    sy_mp_writer_init(&pk, out);
    switch (m->type) {
    case SY_MSG_PING:
    case SY_MSG_PONG:
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, m->u.ping.nonce);
        msgpack_pack_uint64(&pk, m->u.ping.time_ms);
        break;
    case SY_MSG_STATUS_REQ:
        msgpack_pack_array(&pk, m->u.status_req.with_faults ? 2 : 1);
        msgpack_pack_uint64(&pk, m->u.status_req.nonce);
        if (m->u.status_req.with_faults)
            msgpack_pack_uint8(&pk, 1);
        break;
    case SY_MSG_TRANSFER_REQ:
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint64(&pk, m->u.transfer_req.nonce);
        msgpack_pack_uint32(&pk, m->u.transfer_req.leader);
        msgpack_pack_uint64(&pk, m->u.transfer_req.term);
        msgpack_pack_uint32(&pk, m->u.transfer_req.target);
        break;
    case SY_MSG_TRANSFER_REPLY:
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint64(&pk, m->u.transfer.nonce);
        msgpack_pack_uint32(&pk, m->u.transfer.node);
        msgpack_pack_uint8(&pk, m->u.transfer.status);
        msgpack_pack_uint32(&pk, m->u.transfer.leader);
        break;
    case SY_MSG_STATUS_REPLY: {
        const sy_status_reply *s = &m->u.status;
        msgpack_pack_array(&pk, s->has_faults ? 21 : 15);
        msgpack_pack_uint64(&pk, s->nonce);
        msgpack_pack_uint32(&pk, s->node);
        sy_mp_put_str(&pk, (const char *)s->protocol.p, s->protocol.len);
        msgpack_pack_uint8(&pk, s->role);
        msgpack_pack_uint64(&pk, s->term);
        msgpack_pack_uint32(&pk, s->leader);
        msgpack_pack_uint64(&pk, s->last_index);
        msgpack_pack_uint64(&pk, s->commit_index);
        msgpack_pack_uint64(&pk, s->applied_index);
        msgpack_pack_uint64(&pk, s->snap_index);
        msgpack_pack_uint32(&pk, s->peers_connected);
        msgpack_pack_uint64(&pk, s->evidence);
        msgpack_pack_uint64(&pk, s->leader_changes);
        sy_mp_put_bin(&pk, s->state_digest.b, SY_DIGEST_LEN);
        sy_mp_put_bin(&pk, s->ledger_head.b, SY_DIGEST_LEN);
        if (s->has_faults) {
            msgpack_pack_uint32(&pk, s->evidence_from);
            msgpack_pack_uint64(&pk, s->bad_sigs);
            msgpack_pack_uint32(&pk, s->bad_sig_from);
            msgpack_pack_uint64(&pk, s->dissent);
            msgpack_pack_uint32(&pk, s->dissent_from);
            msgpack_pack_uint32(&pk, s->dissent_primary);
        }
        break;
    }
    case SY_MSG_CLIENT_REQ: {
        const sy_client_req *q = &m->u.req;
        msgpack_pack_array(&pk, q->has_membership ? 9 : 8);
        msgpack_pack_uint32(&pk, q->client_id);
        msgpack_pack_uint64(&pk, q->req_no);
        msgpack_pack_uint8(&pk, q->op);
        msgpack_pack_uint8(&pk, q->flags);
        msgpack_pack_uint32(&pk, q->limit);
        put_bytes(&pk, q->key);
        put_bytes(&pk, q->val);
        put_bytes(&pk, q->old);
        if (q->has_membership)
            sy_mp_put_bin(&pk, q->membership.b, SY_DIGEST_LEN);
        break;
    }
    case SY_MSG_CLIENT_REPLY: {
        const sy_client_reply *r = &m->u.reply;
        msgpack_pack_array(&pk, 7);
        msgpack_pack_uint32(&pk, r->client_id);
        msgpack_pack_uint64(&pk, r->req_no);
        msgpack_pack_uint8(&pk, r->status);
        msgpack_pack_uint32(&pk, r->leader);
        msgpack_pack_uint64(&pk, r->index);
        put_bytes(&pk, r->val);
        msgpack_pack_array(&pk, r->n_kvs);
        for (uint32_t i = 0; i < r->n_kvs; i++) {
            msgpack_pack_array(&pk, 2);
            put_bytes(&pk, r->kvs[i].key);
            put_bytes(&pk, r->kvs[i].val);
        }
        break;
    }
    case SY_MSG_RAFT_VOTE:
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint64(&pk, m->u.vote.term);
        msgpack_pack_uint64(&pk, m->u.vote.last_index);
        msgpack_pack_uint64(&pk, m->u.vote.last_term);
        m->u.vote.prevote ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        m->u.vote.transfer ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        break;
    case SY_MSG_RAFT_VOTE_RESP:
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, m->u.vote_resp.term);
        m->u.vote_resp.granted ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        m->u.vote_resp.prevote ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        break;
    case SY_MSG_RAFT_APPEND: {
        const sy_raft_append *a = &m->u.append;
        msgpack_pack_array(&pk, 6);
        msgpack_pack_uint64(&pk, a->term);
        msgpack_pack_uint64(&pk, a->prev_index);
        msgpack_pack_uint64(&pk, a->prev_term);
        msgpack_pack_uint64(&pk, a->commit);
        msgpack_pack_uint64(&pk, a->read_ctx);
        msgpack_pack_array(&pk, a->n_entries);
        for (uint32_t i = 0; i < a->n_entries; i++)
            put_entry(&pk, &a->entries[i]);
        break;
    }
    case SY_MSG_RAFT_APPEND_RESP: {
        const sy_raft_append_resp *a = &m->u.append_resp;
        msgpack_pack_array(&pk, 7);
        msgpack_pack_uint64(&pk, a->term);
        a->success ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        msgpack_pack_uint64(&pk, a->match_index);
        msgpack_pack_uint64(&pk, a->conflict_index);
        msgpack_pack_uint64(&pk, a->conflict_term);
        msgpack_pack_uint64(&pk, a->last_index);
        msgpack_pack_uint64(&pk, a->read_ctx);
        break;
    }
    case SY_MSG_RAFT_SNAPSHOT: {
        const sy_raft_snapshot *s = &m->u.snap;
        msgpack_pack_array(&pk, 7);
        msgpack_pack_uint64(&pk, s->term);
        msgpack_pack_uint64(&pk, s->last_index);
        msgpack_pack_uint64(&pk, s->last_term);
        put_members(&pk, &s->members);
        msgpack_pack_uint64(&pk, s->offset);
        s->done ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        put_bytes(&pk, s->data);
        break;
    }
    case SY_MSG_RAFT_SNAPSHOT_RESP: {
        const sy_raft_snapshot_resp *s = &m->u.snap_resp;
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint64(&pk, s->term);
        msgpack_pack_uint64(&pk, s->last_index);
        msgpack_pack_uint64(&pk, s->next_offset);
        s->done ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        break;
    }
    case SY_MSG_RAFT_TIMEOUT_NOW:
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint64(&pk, m->u.timeout_now.term);
        break;
    default: {
        int rc = SY_EMSGTYPE;
        if (m->type >= SY_MSG_PAXOS_FIRST && m->type <= SY_MSG_PAXOS_LAST)
            rc = sy_msg_paxos_encode(m, &pk);
        else if (m->type >= SY_MSG_PBFT_FIRST && m->type <= SY_MSG_PBFT_LAST)
            rc = sy_msg_pbft_encode(m, &pk);
        if (rc)
            return rc;
        break;
    }
    }
    return out->err;
}

/* ---------------------------------------------------------------- decode */

static int get_bytes(sy_mp_reader *r, uint32_t max, sy_bytes *b)
{
    return sy_mp_bin(r, max, &b->p, &b->len);
}

static int get_u64(sy_mp_reader *r, uint64_t *v) { return sy_mp_uint(r, UINT64_MAX, v); }

static int get_members(sy_mp_reader *r, sy_members *m)
{
    memset(m, 0, sizeof *m);
    sy_mp_array_exact(r, 2);
    if (sy_mp_array(r, &m->n_voters))
        return r->err;
    if (m->n_voters > SY_MAX_NODES)
        return r->err = SY_EFIELD;
    for (uint32_t i = 0; i < m->n_voters; i++)
        sy_mp_u32(r, &m->voters[i]);
    if (sy_mp_array(r, &m->n_learners))
        return r->err;
    if (m->n_learners > SY_MAX_NODES)
        return r->err = SY_EFIELD;
    for (uint32_t i = 0; i < m->n_learners; i++)
        sy_mp_u32(r, &m->learners[i]);
    return r->err;
}

static int get_entry(sy_mp_reader *r, sy_entry *e)
{
    sy_mp_array_exact(r, 4);
    get_u64(r, &e->index);
    get_u64(r, &e->term);
    sy_mp_u8(r, &e->type);
    get_bytes(r, SY_MAX_ENVELOPE, &e->data);
    if (!r->err && e->type > SY_ENTRY_CONFIG)
        r->err = SY_EFIELD;
    return r->err;
}

static int decode(uint8_t type, sy_mp_reader *r, sy_msg *m)
{
    switch (type) {
    case SY_MSG_PING:
    case SY_MSG_PONG:
        sy_mp_array_exact(r, 2);
        get_u64(r, &m->u.ping.nonce);
        get_u64(r, &m->u.ping.time_ms);
        break;
    case SY_MSG_STATUS_REQ: {
        uint32_t fields = 0;
        if (sy_mp_array_either(r, 1, 2, &fields))
            break;
        get_u64(r, &m->u.status_req.nonce);
        if (fields == 2) {
            uint8_t wf = 0;
            sy_mp_u8(r, &wf);
            if (!r->err && wf != 1)
                r->err = SY_EFIELD;
            m->u.status_req.with_faults = true;
        }
        break;
    }
    case SY_MSG_TRANSFER_REQ:
        sy_mp_array_exact(r, 4);
        get_u64(r, &m->u.transfer_req.nonce);
        sy_mp_u32(r, &m->u.transfer_req.leader);
        get_u64(r, &m->u.transfer_req.term);
        sy_mp_u32(r, &m->u.transfer_req.target);
        if (!r->err && (m->u.transfer_req.leader >= SY_MAX_NODES ||
                        (m->u.transfer_req.target >= SY_MAX_NODES &&
                         m->u.transfer_req.target != UINT32_MAX)))   /* SY_NO_NODE */
            r->err = SY_EFIELD;
        break;
    case SY_MSG_TRANSFER_REPLY:
        sy_mp_array_exact(r, 4);
        get_u64(r, &m->u.transfer.nonce);
        sy_mp_u32(r, &m->u.transfer.node);
        sy_mp_u8(r, &m->u.transfer.status);
        sy_mp_u32(r, &m->u.transfer.leader);
        if (!r->err && m->u.transfer.status >= SY_ERR_COUNT)
            r->err = SY_EFIELD;
        break;
    case SY_MSG_STATUS_REPLY: {
        sy_status_reply *s = &m->u.status;
        const char *proto = NULL;
        const uint8_t *d1 = NULL, *d2 = NULL;
        uint32_t l1 = 0, l2 = 0, fields = 0;
        if (sy_mp_array_either(r, 15, 21, &fields))
            break;
        get_u64(r, &s->nonce);
        sy_mp_u32(r, &s->node);
        if (!sy_mp_str(r, 16, &proto, &s->protocol.len))
            s->protocol.p = (const uint8_t *)proto;
        sy_mp_u8(r, &s->role);
        get_u64(r, &s->term);
        sy_mp_u32(r, &s->leader);
        get_u64(r, &s->last_index);
        get_u64(r, &s->commit_index);
        get_u64(r, &s->applied_index);
        get_u64(r, &s->snap_index);
        sy_mp_u32(r, &s->peers_connected);
        get_u64(r, &s->evidence);
        get_u64(r, &s->leader_changes);
        sy_mp_bin(r, SY_DIGEST_LEN, &d1, &l1);
        sy_mp_bin(r, SY_DIGEST_LEN, &d2, &l2);
        if (!r->err && (l1 != SY_DIGEST_LEN || l2 != SY_DIGEST_LEN))
            r->err = SY_EFIELD;
        if (!r->err) {
            memcpy(s->state_digest.b, d1, SY_DIGEST_LEN);
            memcpy(s->ledger_head.b, d2, SY_DIGEST_LEN);
        }
        if (fields == 21) {
            s->has_faults = true;
            sy_mp_u32(r, &s->evidence_from);
            get_u64(r, &s->bad_sigs);
            sy_mp_u32(r, &s->bad_sig_from);
            get_u64(r, &s->dissent);
            sy_mp_u32(r, &s->dissent_from);
            sy_mp_u32(r, &s->dissent_primary);
            /* node ids, or none */
            const uint32_t ids[4] = { s->evidence_from, s->bad_sig_from, s->dissent_from,
                                      s->dissent_primary };
            for (int k = 0; k < 4 && !r->err; k++)
                if (ids[k] >= SY_MAX_NODES && ids[k] != UINT32_MAX)   /* SY_NO_NODE */
                    r->err = SY_EFIELD;
        }
        break;
    }
    case SY_MSG_CLIENT_REQ: {
        sy_client_req *q = &m->u.req;
        uint32_t fields = 0;
        if (sy_mp_array_either(r, 8, 9, &fields))
            break;
        sy_mp_u32(r, &q->client_id);
        get_u64(r, &q->req_no);
        sy_mp_u8(r, &q->op);
        sy_mp_u8(r, &q->flags);
        sy_mp_u32(r, &q->limit);
        get_bytes(r, SY_MAX_KEY, &q->key);
        get_bytes(r, SY_MAX_VALUE, &q->val);
        get_bytes(r, SY_MAX_VALUE, &q->old);
        if (fields == 9) {
            const uint8_t *d = NULL;
            uint32_t dl = 0;
            sy_mp_bin(r, SY_DIGEST_LEN, &d, &dl);
            if (!r->err && dl != SY_DIGEST_LEN)
                r->err = SY_EFIELD;
            if (!r->err) {
                memcpy(q->membership.b, d, SY_DIGEST_LEN);
                q->has_membership = true;
            }
        }
        if (!r->err && (q->op > SY_OP_SCAN || q->req_no == 0 ||
                        q->client_id < SY_CLIENT_ID_BASE))
            r->err = SY_EFIELD;
        break;
    }
    case SY_MSG_CLIENT_REPLY: {
        sy_client_reply *c = &m->u.reply;
        uint32_t n = 0;
        sy_mp_array_exact(r, 7);
        sy_mp_u32(r, &c->client_id);
        get_u64(r, &c->req_no);
        sy_mp_u8(r, &c->status);
        sy_mp_u32(r, &c->leader);
        get_u64(r, &c->index);
        get_bytes(r, SY_MAX_VALUE, &c->val);
        if (sy_mp_array(r, &n))
            break;
        if (n > SY_MAX_SCAN) {
            r->err = SY_ETOOBIG;
            break;
        }
        if (n) {
            c->kvs = calloc(n, sizeof *c->kvs);
            if (!c->kvs) {
                r->err = SY_ENOMEM;
                break;
            }
        }
        c->n_kvs = n;
        for (uint32_t i = 0; i < n && !r->err; i++) {
            sy_mp_array_exact(r, 2);
            get_bytes(r, SY_MAX_KEY, &c->kvs[i].key);
            get_bytes(r, SY_MAX_VALUE, &c->kvs[i].val);
        }
        if (!r->err && c->status >= SY_ERR_COUNT)
            r->err = SY_EFIELD;
        break;
    }
    case SY_MSG_RAFT_VOTE:
        sy_mp_array_exact(r, 5);
        get_u64(r, &m->u.vote.term);
        get_u64(r, &m->u.vote.last_index);
        get_u64(r, &m->u.vote.last_term);
        sy_mp_bool(r, &m->u.vote.prevote);
        sy_mp_bool(r, &m->u.vote.transfer);
        break;
    case SY_MSG_RAFT_VOTE_RESP:
        sy_mp_array_exact(r, 3);
        get_u64(r, &m->u.vote_resp.term);
        sy_mp_bool(r, &m->u.vote_resp.granted);
        sy_mp_bool(r, &m->u.vote_resp.prevote);
        break;
    case SY_MSG_RAFT_APPEND: {
        sy_raft_append *a = &m->u.append;
        uint32_t n = 0;
        sy_mp_array_exact(r, 6);
        get_u64(r, &a->term);
        get_u64(r, &a->prev_index);
        get_u64(r, &a->prev_term);
        get_u64(r, &a->commit);
        get_u64(r, &a->read_ctx);
        if (sy_mp_array(r, &n))
            break;
        if (n > SY_MAX_ENTRIES_PER_MSG) {
            r->err = SY_ETOOBIG;
            break;
        }
        if (n) {
            a->entries = calloc(n, sizeof *a->entries);
            if (!a->entries) {
                r->err = SY_ENOMEM;
                break;
            }
        }
        a->n_entries = n;
        for (uint32_t i = 0; i < n && !r->err; i++) {
            get_entry(r, &a->entries[i]);
            /* entries must be consecutive after prev_index */
            if (!r->err && a->entries[i].index != a->prev_index + 1 + i)
                r->err = SY_EFIELD;
        }
        break;
    }
    case SY_MSG_RAFT_APPEND_RESP: {
        sy_raft_append_resp *a = &m->u.append_resp;
        sy_mp_array_exact(r, 7);
        get_u64(r, &a->term);
        sy_mp_bool(r, &a->success);
        get_u64(r, &a->match_index);
        get_u64(r, &a->conflict_index);
        get_u64(r, &a->conflict_term);
        get_u64(r, &a->last_index);
        get_u64(r, &a->read_ctx);
        break;
    }
    case SY_MSG_RAFT_SNAPSHOT: {
        sy_raft_snapshot *s = &m->u.snap;
        sy_mp_array_exact(r, 7);
        get_u64(r, &s->term);
        get_u64(r, &s->last_index);
        get_u64(r, &s->last_term);
        get_members(r, &s->members);
        get_u64(r, &s->offset);
        sy_mp_bool(r, &s->done);
        get_bytes(r, SY_MAX_ENVELOPE, &s->data);
        break;
    }
    case SY_MSG_RAFT_SNAPSHOT_RESP: {
        sy_raft_snapshot_resp *s = &m->u.snap_resp;
        sy_mp_array_exact(r, 4);
        get_u64(r, &s->term);
        get_u64(r, &s->last_index);
        get_u64(r, &s->next_offset);
        sy_mp_bool(r, &s->done);
        break;
    }
    case SY_MSG_RAFT_TIMEOUT_NOW:
        sy_mp_array_exact(r, 1);
        get_u64(r, &m->u.timeout_now.term);
        break;
    default: {
        int rc = SY_EMSGTYPE;
        if (type >= SY_MSG_PAXOS_FIRST && type <= SY_MSG_PAXOS_LAST)
            rc = sy_msg_paxos_decode(m, r);
        else if (type >= SY_MSG_PBFT_FIRST && type <= SY_MSG_PBFT_LAST)
            rc = sy_msg_pbft_decode(m, r);
        if (rc)
            return r->err ? r->err : rc;
        break;
    }
    }
    if (r->err)
        return r->err;
    return sy_mp_done(r);
}

int sy_msg_decode_body(uint8_t type, const uint8_t *buf, size_t len, sy_msg *out)
{
    sy_mp_reader r;
    memset(out, 0, sizeof *out);
    out->type = type;
    sy_mp_reader_init(&r, buf, len);
    int rc = decode(type, &r, out);
    if (rc)
        sy_msg_free(out);
    return rc;
}

void sy_msg_free(sy_msg *m)
{
    if (!m)
        return;
    switch (m->type) {
    case SY_MSG_CLIENT_REPLY:
        free(m->u.reply.kvs);
        m->u.reply.kvs = NULL;
        m->u.reply.n_kvs = 0;
        break;
    case SY_MSG_RAFT_APPEND:
        free(m->u.append.entries);
        m->u.append.entries = NULL;
        m->u.append.n_entries = 0;
        break;
    default:
        if (m->type >= SY_MSG_PAXOS_FIRST && m->type <= SY_MSG_PAXOS_LAST)
            sy_msg_paxos_free(m);
        else if (m->type >= SY_MSG_PBFT_FIRST && m->type <= SY_MSG_PBFT_LAST)
            sy_msg_pbft_free(m);
        break;
    }
}

/* ---------------------------------------------------------------- batches */

int sy_batch_encode(const sy_bytes *reqs, uint32_t n, uint8_t **out, size_t *out_len)
{
    sy_buf b;
    msgpack_packer pk;
    if (n > SY_MAX_BATCH)
        return SY_ETOOBIG;
    sy_buf_init(&b);
    sy_mp_writer_init(&pk, &b);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        put_bytes(&pk, reqs[i]);
    if (b.err) {
        int rc = b.err;
        sy_buf_free(&b);
        return rc;
    }
    *out = sy_buf_take(&b, out_len);
    return SY_OK;
}

int sy_batch_decode(const uint8_t *buf, size_t len, sy_bytes **reqs, uint32_t *n)
{
    sy_mp_reader r;
    uint32_t cnt = 0;
    sy_bytes *v = NULL;
    sy_mp_reader_init(&r, buf, len);
    if (sy_mp_array(&r, &cnt))
        return r.err;
    if (cnt > SY_MAX_BATCH)
        return SY_ETOOBIG;
    if (cnt) {
        v = calloc(cnt, sizeof *v);
        if (!v)
            return SY_ENOMEM;
    }
    for (uint32_t i = 0; i < cnt && !r.err; i++)
        get_bytes(&r, SY_MAX_ENVELOPE, &v[i]);
    if (sy_mp_done(&r)) {
        free(v);
        return r.err;
    }
    *reqs = v;
    *n = cnt;
    return SY_OK;
}

int sy_members_encode(const sy_members *m, uint8_t **out, size_t *out_len)
{
    sy_buf b;
    msgpack_packer pk;
    if (m->n_voters > SY_MAX_NODES || m->n_learners > SY_MAX_NODES)
        return SY_EINVAL;
    sy_buf_init(&b);
    sy_mp_writer_init(&pk, &b);
    put_members(&pk, m);
    if (b.err) {
        int rc = b.err;
        sy_buf_free(&b);
        return rc;
    }
    *out = sy_buf_take(&b, out_len);
    return SY_OK;
}

int sy_members_decode(const uint8_t *buf, size_t len, sy_members *out)
{
    sy_mp_reader r;
    sy_mp_reader_init(&r, buf, len);
    if (get_members(&r, out))
        return r.err;
    return sy_mp_done(&r);
}

void sy_entry_digest(const sy_entry *e, sy_digest *out)
{
    sy_hasher h;
    uint8_t hdr[17];
    memcpy(hdr, &e->index, 8);
    memcpy(hdr + 8, &e->term, 8);
    hdr[16] = e->type;
    sy_hash_init(&h);
    sy_hash_update(&h, hdr, sizeof hdr);
    sy_hash_update(&h, e->data.p, e->data.len);
    sy_hash_final(&h, out);
}

void sy_client_reply_digest(const sy_client_reply *r, sy_digest *out)
{
    sy_hasher h;
    uint8_t hdr[9];
    uint32_t l;
    hdr[0] = r->status;
    memcpy(hdr + 1, &r->index, 8);
    sy_hash_init(&h);
    sy_hash_update(&h, hdr, sizeof hdr);
    l = r->val.len;
    sy_hash_update(&h, &l, sizeof l);
    sy_hash_update(&h, r->val.p, r->val.len);
    sy_hash_update(&h, &r->n_kvs, sizeof r->n_kvs);
    for (uint32_t i = 0; i < r->n_kvs; i++) {
        l = r->kvs[i].key.len;
        sy_hash_update(&h, &l, sizeof l);
        sy_hash_update(&h, r->kvs[i].key.p, l);
        l = r->kvs[i].val.len;
        sy_hash_update(&h, &l, sizeof l);
        sy_hash_update(&h, r->kvs[i].val.p, l);
    }
    sy_hash_final(&h, out);
}
