/* PBFT normal-case operation and checkpoints (OSDI 1999 sec. 4.2, 4.3;
 * TOCS 2002 sec. 2.3).
 *
 * Invariants kept here:
 *  - a backup accepts at most one pre-prepare per (view, seq), only from the
 *    view's primary, only inside the water marks (h, h+L], and only for a
 *    batch whose hash is the digest and whose every request carries a valid
 *    client signature and a request number above the client's last
 *    executed one (sec. 4.2);
 *  - prepared(v,n,d) = that pre-prepare + q-1 matching prepares from
 *    distinct backups; committed-local = prepared + q matching commits;
 *  - batches execute strictly in sequence order, and a ready never
 *    executes past a checkpoint seq, so the host snapshots exactly there;
 *  - the low water mark h only moves to a checkpoint proven by q matching
 *    signed CHECKPOINTs that this replica has executed (sec. 4.3); the log
 *    below h is discarded, so memory is bounded by L slots. */
#include <stdlib.h>
#include <string.h>
#include "bft/pbft/pbft.h"
#include "core/envelope.h"
#include "crypto/sy_err.h"


/* ------------------------------------------------------------ requests */

static const sy_pubkey any_key;
static const sy_pubkey *any_key_of(void *ctx, uint32_t sender)
{
    (void)ctx;
    (void)sender;
    return &any_key;
}

/* Cache of verified request envelopes: the same verified-signature cache as
 * statements, keyed by the hash of the whole frame. */
static uint32_t vslot(const sy_digest *k)
{
    return ((uint32_t)k->b[0] | (uint32_t)k->b[1] << 8 | (uint32_t)k->b[2] << 16) % PBFT_VCACHE;
}

static void mark_verified(pbft *p, const uint8_t *raw, size_t len)
{
    sy_digest k;
    sy_hash(raw, len, &k);
    uint32_t s = vslot(&k);
    p->vcache[s] = k;
    p->vcache_have[s] = true;
}

/* Decodes one signed request; verifies its signature unless these exact
 * bytes were verified before. */
static int decode_request(pbft *p, const uint8_t *raw, size_t len, sy_env *e)
{
    sy_digest k;
    sy_directory anyd = { any_key_of, NULL };
    sy_hash(raw, len, &k);
    uint32_t s = vslot(&k);
    bool cached = p->vcache_have[s] && sy_digest_eq(&p->vcache[s], &k);
    sy_env_opts o = { .cluster_id = p->cfg.cluster_id,
                      .dir = p->cfg.clients ? p->cfg.clients : &anyd,
                      .verifier = (cached || !p->cfg.clients) ? NULL : p->cfg.verifier };
    int rc = sy_env_decode(&o, raw, len, e, NULL);
    if (rc)
        return rc;
    if (e->type != SY_MSG_CLIENT_REQ) {
        sy_env_free(e);
        return SY_EMSGTYPE;
    }
    if (!cached && p->cfg.clients) {
        p->vcache[s] = k;
        p->vcache_have[s] = true;
    }
    return SY_OK;
}

static bool waiting_has(const pbft *p, uint32_t client, uint64_t req_no)
{
    for (uint32_t i = 0; i < p->n_waiting; i++)
        if (p->waiting[i].client == client && p->waiting[i].req_no == req_no)
            return true;
    return false;
}

/* The primary's queue: raw (copied) unless the request is ordered in
 * this view already, queued, or over max_pending (SY_EFULL, a reject). */
static int pending_add(pbft *p, pbft_client *c, const uint8_t *raw, size_t len, uint32_t client,
                       uint64_t req_no)
{
    if (req_no <= c->proposed)
        return SY_OK;   /* already ordered in this view */
    for (uint32_t i = 0; i < p->n_pending; i++)
        if (p->pending[i].client == client && p->pending[i].req_no == req_no)
            return SY_OK;
    if (p->n_pending >= p->cfg.max_pending) {
        sy_reject *r;
        if (p->n_rejects + 1 > p->cap_rejects) {
            size_t nc = p->cap_rejects ? p->cap_rejects * 2 : 16;
            r = realloc(p->rejects, nc * sizeof *r);
            if (!r)
                return SY_ENOMEM;
            p->rejects = r;
            p->cap_rejects = nc;
        }
        p->rejects[p->n_rejects++] = (sy_reject){ client, req_no, SY_EFULL, p->self };
        return SY_EFULL;
    }
    if (p->n_pending == p->cap_pending) {
        uint32_t nc = p->cap_pending ? p->cap_pending * 2 : 64;
        pbft_pending *np = realloc(p->pending, nc * sizeof *np);
        if (!np)
            return SY_ENOMEM;
        p->pending = np;
        p->cap_pending = nc;
    }
    uint8_t *copy = malloc(len);
    if (!copy)
        return SY_ENOMEM;
    memcpy(copy, raw, len);
    if (p->n_pending == 0)
        p->pending_since = p->now;
    p->pending[p->n_pending++] = (pbft_pending){ copy, len, client, req_no };
    return SY_OK;
}

int pbft_on_request(pbft *p, const uint8_t *raw, size_t len, const sy_client_req *req,
                    bool from_client)
{
    pbft_client *c = pbft_client_get(p, req->client_id, true);
    if (!c)
        return SY_ENOMEM;
    if (req->req_no < c->executed)
        return SY_ESTALE;   /* older than the client's latest: a replay */
    /* req_no == executed: a retransmission of the client's latest request,
     * whose reply was lost. It is ordered again; the state machine's
     * session replays the cached reply without executing it twice
     * (core/kv.h), which is how every replica answers it identically. */
    if (from_client)
        mark_verified(p, raw, len);   /* the host verified the envelope */
    if (pbft_is_primary(p) && !p->in_vc)
        return pending_add(p, c, raw, len, req->client_id, req->req_no);
    if (!from_client)
        return SY_OK;
    /* Backup (sec. 4.4 liveness): watch the request with the view-change
     * timer. Our clients send a request to the primary and f backups at
     * once (each replica answers on its own endpoint), so the primary
     * already has it: forwarding on first sight would make the primary
     * verify it again. A retransmission -- of a request we are still
     * waiting for, or of one we executed already (the client did not get
     * f+1 replies and now asks replicas it had not asked; ours has no
     * pending answer for it until it is ordered again) -- is the paper's
     * "client broadcast after its timeout": that we pass to the primary.
     * An executed request is not watched: nothing is owed on it, and a
     * timer on it could only start a view change against a primary that
     * did its job. */
    bool done_here = c->executed != 0 && req->req_no == c->executed;
    if (!p->in_vc && (done_here || waiting_has(p, req->client_id, req->req_no))) {
        sy_msg m = { .type = SY_MSG_PBFT_FORWARD };
        m.u.pbft.fwd.req = (sy_bytes){ raw, (uint32_t)len };
        int rc = pbft_send(p, pbft_primary(p, p->view), &m);
        if (rc)
            return rc;
    }
    if (p->clients_partial && c->executed == 0) {
        /* after a state install, until the host's sessions arrive
         * (SY_IN_SESSIONS), we cannot tell an executed request from a new
         * one for this client: do not accuse the primary over it
         * (docs/pbft.md "State transfer") */
    } else if (!done_here && !waiting_has(p, req->client_id, req->req_no)) {
        if (p->n_waiting >= PBFT_MAX_WAITING) {
            p->dropped++;
        } else {
            /* kept whole (budget permitting) for the next view's primary:
             * a request that reaches us during a view change, or that a
             * primary pre-prepared in a view that then failed before it
             * prepared, is otherwise held by no one but the client, whose
             * retransmissions back off (net/client.c) and may keep landing
             * in view changes (pbft_requeue_waiting) */
            uint8_t *copy = NULL;
            if (p->waiting_bytes + len <= PBFT_WAITING_BYTES_MAX && (copy = malloc(len)))
                memcpy(copy, raw, len);
            p->waiting[p->n_waiting] = (pbft_creq){ req->client_id, req->req_no, copy,
                                                    copy ? (uint32_t)len : 0 };
            p->waiting_bytes += copy ? len : 0;
            p->waiting_since[p->n_waiting] = p->now;
            p->n_waiting++;
        }
    }
    if (!p->vc_deadline)
        pbft_reset_timer(p);
    return SY_OK;
}

void pbft_waiting_drop(pbft *p, uint32_t w)
{
    free(p->waiting[w].raw);
    p->waiting_bytes -= p->waiting[w].len;
    p->waiting[w] = p->waiting[p->n_waiting - 1];
    p->waiting_since[w] = p->waiting_since[p->n_waiting - 1];
    p->n_waiting--;
}

/* Castro & Liskov leave a request that no correct primary ordered to the
 * client's retransmission (sec. 4.4: backups forward it to the primary).
 * Ours backs off (net/client.c: 4 s, then twice as long each time, so a
 * large read is not executed again and again), and a retransmission that
 * lands while the replicas change views is only watched: after a lost
 * quorum, views can come and go (each ending in its timer) while the
 * client's next retransmission is still seconds away (cluster_suite.sh,
 * f+1 down then one back: one run in eight failed its 20 s put). So each
 * replica hands what it watches to the primary as it enters a view. The
 * watched list is bounded (PBFT_MAX_WAITING, PBFT_WAITING_BYTES_MAX) and
 * emptied as requests execute, so this is at most one FORWARD per request
 * per view change; the primary verifies a forwarded request as any other. */
void pbft_requeue_waiting(pbft *p)
{
    uint32_t primary = pbft_primary(p, p->view);
    for (uint32_t w = 0; w < p->n_waiting; w++) {
        const pbft_creq *q = &p->waiting[w];
        if (!q->raw)
            continue;
        if (primary == p->self) {
            pbft_client *c = pbft_client_get(p, q->client, true);
            if (c && q->req_no >= c->executed)
                (void)pending_add(p, c, q->raw, q->len, q->client, q->req_no);
        } else {
            sy_msg m = { .type = SY_MSG_PBFT_FORWARD };
            m.u.pbft.fwd.req = (sy_bytes){ q->raw, q->len };
            (void)pbft_send(p, primary, &m);
        }
    }
}

int pbft_on_forward(pbft *p, uint32_t from, const sy_pbft_forward *fw)
{
    sy_env e;
    (void)from;
    if (!pbft_is_primary(p) || p->in_vc)
        return SY_ENOTLEADER;
    int rc = decode_request(p, fw->req.p, fw->req.len, &e);
    if (rc)
        return rc;
    rc = pbft_on_request(p, fw->req.p, fw->req.len, &e.msg.u.req, false);
    sy_env_free(&e);
    return rc;
}

/* ------------------------------------------------------------ batching */

/* The sequence number the primary assigns next (none below h + 1). */
static uint64_t next_to_assign(const pbft *p)
{
    return p->next_seq <= p->h ? p->h + 1 : p->next_seq;
}

/* Window full (see pbft_try_batch): proposing waits for execution or a
 * stable checkpoint, not for time. */
static bool window_full(const pbft *p)
{
    uint64_t next = next_to_assign(p);
    return next > p->h + p->L || next - p->executed > (uint64_t)p->cfg.max_inflight + 1;
}

/* Nothing ordered and not yet executed: a request that arrives now would
 * wait batch_delay_ms for company it is not going to get. The paper
 * batches only while instances are in progress (Castro & Liskov, TOCS
 * 2002, 5.1.4: requests are buffered while the number in progress is at
 * the window); batch_delay_ms is our addition for requests that trickle in
 * while one is. Proposing at once when idle, interleaved runs: one client
 * 155-161 -> 188-193 ops/s, 16 and 64 clients within the noise
 * (docs/benchmarks.md, session 6). */
static bool pipeline_idle(const pbft *p)
{
    return next_to_assign(p) - 1 <= p->executed;
}

uint64_t pbft_batch_deadline(const pbft *p)
{
    /* no timer while the window is full: the host would wake at once, again
     * and again, until an execution opens it (a busy loop) */
    if (!p->n_pending || p->in_vc || !pbft_is_primary(p) || window_full(p))
        return 0;
    return p->pending_since + p->cfg.batch_delay_ms;
}

#ifdef SYNOD_TESTING
/* one statement to one replica: only the Byzantine behaviours need it */
static void send_stmt(pbft *p, uint8_t type, uint64_t view, uint64_t seq, const sy_digest *d,
                      const uint8_t *batch, size_t blen, uint32_t to)
{
    sy_msg m = { .type = type };
    sy_pbft_stmt *s = &m.u.pbft.stmt;
    s->view = view;
    s->seq = seq;
    s->digest = *d;
    s->replica = p->self;
    if (type == SY_MSG_PBFT_PRE_PREPARE)
        s->batch = (sy_bytes){ batch, (uint32_t)blen };
    pbft_sign_stmt(p, type, view, seq, d, &s->sig);
    pbft_send(p, to, &m);
}
#endif

/* Primary: order a new batch at next_seq (sec. 4.2). */
static void propose(pbft *p, uint8_t *batch, size_t blen, uint32_t n_reqs)
{
    uint64_t seq = p->next_seq++;
#ifdef SYNOD_TESTING
    if (pbft_behaves(p, SY_PBFT_SKIP_SEQ)) {
        /* every third batch skips a number, every fifth reuses the last */
        if (seq % 3 == 0)
            seq = ++p->next_seq - 1;
        else if (seq % 5 == 0 && seq > p->h + 1)
            seq = seq - 1;
    }
#endif
    pbft_slot *s = pbft_slot_get(p, seq);
    /* Never over a committed slot, nor over a pre-prepare of a later view:
     * a restarted replica that still believes it leads an old view has
     * taken committed entries by state transfer above its checkpoint and
     * would overwrite them, to execute nothing there until the next
     * checkpoint (the PBFT demo's restarted primary stopped at one). An
     * executed slot is committed too. */
    if (!s || s->committed ||
        (s->have_pp && (s->pp_view > p->view ||
                        (s->pp_view == p->view && !pbft_behaves(p, SY_PBFT_SKIP_SEQ))))) {
        free(batch);
        return;
    }
    sy_digest d;
    sy_hash(batch, blen, &d);
    pbft_slot_set_batch(s, batch, blen, true, &d);
    s->have_pp = true;
    s->pp_view = p->view;
    s->prepared = s->committed = s->sent_prepare = s->sent_commit = false;
    s->d = d;
    pbft_sign_stmt(p, SY_MSG_PBFT_PRE_PREPARE, p->view, seq, &s->d, &s->pp_sig);
    s->pp_signed = true;
    if (seq > p->last_pp)
        p->last_pp = seq;
    pbft_note_vote(p, seq);
    p->hs_dirty = true;   /* the batch, durable before the PRE-PREPARE goes out */
    (void)n_reqs;
#ifdef SYNOD_TESTING
    if (pbft_behaves(p, SY_PBFT_EQUIVOCATE)) {
        /* the other half of the backups gets an empty batch for seq */
        static const uint8_t empty[1] = { 0x90 };
        sy_digest d2;
        sy_hash(empty, 1, &d2);
        for (uint32_t i = 0; i < p->n; i++) {
            if (i == p->self)
                continue;
            if (i % 2)
                send_stmt(p, SY_MSG_PBFT_PRE_PREPARE, p->view, seq, &s->d, s->batch,
                          s->batch_len, i);
            else
                send_stmt(p, SY_MSG_PBFT_PRE_PREPARE, p->view, seq, &d2, empty, 1, i);
        }
        return;
    }
#endif
    sy_msg m = { .type = SY_MSG_PBFT_PRE_PREPARE };
    m.u.pbft.stmt = (sy_pbft_stmt){ .view = p->view, .seq = seq, .digest = s->d,
                                    .replica = p->self, .sig = s->pp_sig,
                                    .batch = { s->batch, (uint32_t)s->batch_len } };
    pbft_send(p, SY_NO_NODE, &m);
    pbft_progress(p, s);
}

void pbft_try_batch(pbft *p)
{
    while (pbft_is_primary(p) && !p->in_vc && p->n_pending) {
        if (p->next_seq <= p->h)
            p->next_seq = p->h + 1;
        if (window_full(p))
            return;   /* wait for an execution or a stable checkpoint */
        if (p->n_pending < p->cfg.batch_max && !pipeline_idle(p) &&
            p->now < p->pending_since + p->cfg.batch_delay_ms)
            return;
        sy_bytes reqs[SY_MAX_BATCH];
        uint32_t take = 0, used = 0;
        size_t bytes = 0;
        for (; used < p->n_pending && take < p->cfg.batch_max; used++) {
            pbft_pending *pe = &p->pending[used];
            pbft_client *c = pbft_client_get(p, pe->client, true);
            if (p->cfg.batch_bytes_max && take && bytes + pe->len > p->cfg.batch_bytes_max)
                break;
            if (!c || pe->req_no < c->executed || pe->req_no <= c->proposed)
                continue;   /* superseded, or ordered meanwhile */
            if (pe->req_no > c->proposed)
                c->proposed = pe->req_no;
            reqs[take++] = (sy_bytes){ pe->raw, (uint32_t)pe->len };
            bytes += pe->len;
        }
        uint8_t *batch = NULL;
        size_t blen = 0;
        int rc = take ? sy_batch_encode(reqs, take, &batch, &blen) : SY_OK;
        for (uint32_t i = 0; i < used; i++)
            free(p->pending[i].raw);
        memmove(p->pending, p->pending + used, (p->n_pending - used) * sizeof *p->pending);
        p->n_pending -= used;
        p->pending_since = p->now;
        if (rc || !take)
            continue;
        propose(p, batch, blen, take);
    }
}

/* ------------------------------------------------------------ pre-prepare */

bool pbft_batch_valid(pbft *p, const uint8_t *batch, size_t len)
{
    sy_bytes *reqs = NULL;
    uint32_t n = 0;
    bool ok = true;
    if (sy_batch_decode(batch, len, &reqs, &n))
        return false;
    for (uint32_t i = 0; i < n && ok; i++) {
        sy_env e;
        if (decode_request(p, reqs[i].p, reqs[i].len, &e)) {
            ok = false;
            break;
        }
        const sy_client_req *q = &e.msg.u.req;
        pbft_client *c = pbft_client_get(p, q->client_id, false);
        if (c && q->req_no < c->executed)
            ok = false;   /* == executed: a retransmission, answered from the session */
        /* one request per client per batch: a repeat is a replay */
        for (uint32_t j = 0; j < i && ok; j++)
            if (reqs[j].len == reqs[i].len && memcmp(reqs[j].p, reqs[i].p, reqs[i].len) == 0)
                ok = false;
        sy_env_free(&e);
    }
    free(reqs);
    return ok;
}

static bool guarded(const pbft *p, uint64_t view, uint64_t seq)
{
    /* after a restart: never vote again where a lost vote may exist --
     * unless the log gave back what it signed there (pbft.c, boot_own):
     * then its votes at seq are for that pre-prepare's digest only */
    if (!(view == p->guard_view && seq <= p->guard_hi && p->guard_hi))
        return false;
    const pbft_slot *s = &p->slots[seq % p->L];
    return !(s->seq == seq && s->restored && s->have_pp && s->pp_view == view);
}

static void wrong(pbft *p, sy_digest *d)
{
    if (pbft_behaves(p, SY_PBFT_WRONG_DIGEST))
        d->b[SY_DIGEST_LEN - 1] ^= 0x01;
}

void pbft_send_prepare(pbft *p, pbft_slot *s)
{
    if (s->sent_prepare || pbft_primary(p, s->pp_view) == p->self ||
        guarded(p, s->pp_view, s->seq))
        return;
    sy_digest d = s->d;
    wrong(p, &d);
    sy_msg m = { .type = SY_MSG_PBFT_PREPARE };
    sy_pbft_stmt *st = &m.u.pbft.stmt;
    *st = (sy_pbft_stmt){ .view = s->pp_view, .seq = s->seq, .digest = d, .replica = p->self };
    pbft_sign_stmt(p, SY_MSG_PBFT_PREPARE, s->pp_view, s->seq, &d, &st->sig);
    s->prep[p->self] = (pbft_vote){ true, s->pp_view, d, st->sig };
    s->sent_prepare = true;
    pbft_note_vote(p, s->seq);
    p->hs_dirty = true;   /* the batch, durable before the PREPARE goes out */
    pbft_send(p, SY_NO_NODE, &m);
}

int pbft_on_pre_prepare(pbft *p, uint32_t from, const sy_pbft_stmt *st)
{
    if (st->replica != from || from != pbft_primary(p, st->view))
        return SY_ESENDER;
    if (st->view > p->view &&
        pbft_verify_stmt(p, SY_MSG_PBFT_PRE_PREPARE, st->view, st->seq, &st->digest, from,
                         &st->sig))
        pbft_note_peer_view(p, from, st->view);
    if (st->view != p->view || p->in_vc)
        return SY_ESTALE;
    pbft_slot *s = pbft_slot_get(p, st->seq);
    if (!s)
        return SY_ESTALE;   /* outside the water marks */
    if (!pbft_verify_stmt(p, SY_MSG_PBFT_PRE_PREPARE, st->view, st->seq, &st->digest, from,
                          &st->sig))
        return SY_ESIG;
    if (s->have_pp && s->pp_view == st->view) {
        if (!sy_digest_eq(&s->d, &st->digest)) {
            /* two signed pre-prepares for one (v, n): equivocation */
            pbft_record_evidence(p, SY_MSG_PBFT_PRE_PREPARE, from, st->view, st->seq, &s->d,
                                 &st->digest);
            return SY_EREPLAY;
        }
        return SY_OK;
    }
    if (s->executed)
        return SY_OK;
    bool null_req = pbft_digest_is_null(&st->digest) && st->batch.len == 0;
    if (!null_req) {
        sy_digest d;
        sy_hash(st->batch.p, st->batch.len, &d);
        if (!sy_digest_eq(&d, &st->digest) || !pbft_batch_valid(p, st->batch.p, st->batch.len))
            return SY_EFIELD;
    }
    uint8_t *copy = NULL;
    if (st->batch.len) {
        copy = malloc(st->batch.len);
        if (!copy)
            return SY_ENOMEM;
        memcpy(copy, st->batch.p, st->batch.len);
    }
    pbft_slot_set_batch(s, copy, st->batch.len, true, &st->digest);
    s->have_pp = true;
    s->pp_view = st->view;
    s->d = st->digest;
    s->pp_sig = st->sig;
    s->pp_signed = true;
    s->prepared = s->committed = s->sent_prepare = s->sent_commit = false;
    if (st->seq > p->last_pp)
        p->last_pp = st->seq;
    pbft_dissent_scan(p, s);
    pbft_send_prepare(p, s);
    pbft_progress(p, s);
    return SY_OK;
}

/* ------------------------------------------------------------ prepare / commit */

/* Dissent: a verified vote for (v, n) whose digest is not the one of the
 * pre-prepare this replica accepted for (v, n). The paper has nothing to
 * say about such a vote -- it simply never counts towards a certificate
 * (sec. 4.2: prepares must match the pre-prepare) -- and it proves nothing
 * on its own: a correct backup votes for what the primary sent it, so an
 * equivocating primary makes correct replicas dissent. Either the voter or
 * the primary of v is faulty. Counted, naming both, so that an operator
 * can find a replica that votes for wrong digests, whose votes otherwise
 * only fail to count (docs/pbft.md, "A Byzantine replica in a real
 * cluster"). Each stored vote is counted once: by pbft_on_vote when the
 * pre-prepare was there first, by pbft_dissent_scan when it came after. */
static void note_dissent(pbft *p, const pbft_slot *s, uint32_t r, const pbft_vote *v)
{
    bool agrees = sy_digest_eq(&v->d, &s->d);
#ifdef SYNOD_TESTING
    if (p->behaviour == SY_PBFT_MUTANT_BLAME_AGREEING)
        agrees = !agrees;   /* planted bug: blames the replicas that agree */
#endif
    if (r == p->self || !v->have || v->view != s->pp_view || agrees)
        return;
    p->dissent++;
    p->dissent_from = r;
    p->accused.dissent[r]++;   /* r < p->n <= SY_MAX_NODES */
    p->dissent_primary = pbft_primary(p, s->pp_view);
}

void pbft_dissent_scan(pbft *p, const pbft_slot *s)
{
    if (!s->have_pp)
        return;
    for (uint32_t r = 0; r < p->n; r++) {
        note_dissent(p, s, r, &s->prep[r]);
        note_dissent(p, s, r, &s->com[r]);
    }
}

int pbft_on_vote(pbft *p, uint8_t type, uint32_t from, const sy_pbft_stmt *st)
{
    if (st->replica != from)
        return SY_ESENDER;
    if (st->view > p->view && pbft_verify_stmt(p, type, st->view, st->seq, &st->digest, from,
                                               &st->sig))
        pbft_note_peer_view(p, from, st->view);
    if (st->view != p->view || p->in_vc)
        return SY_ESTALE;
    if (type == SY_MSG_PBFT_PREPARE && from == pbft_primary(p, st->view))
        return SY_ESENDER;   /* the primary's pre-prepare is its prepare */
    pbft_slot *s = pbft_slot_get(p, st->seq);
    if (!s)
        return SY_ESTALE;
    pbft_vote *v = type == SY_MSG_PBFT_PREPARE ? &s->prep[from] : &s->com[from];
    if (v->have && v->view > st->view)
        return SY_ESTALE;
    if (v->have && v->view == st->view && sy_digest_eq(&v->d, &st->digest))
        return SY_OK;   /* duplicate: no second verification */
    /* Past the quorum: a vote that matches a phase this slot has already
     * completed in this view adds nothing (the certificate is formed from
     * verified votes), so its statement is neither verified nor kept -- a
     * third of the statement checks at n=4. One that conflicts is still
     * verified below: it may be evidence. (The envelope around it was
     * verified by the host, so `from` did send it.) */
    bool done = type == SY_MSG_PBFT_PREPARE ? s->prepared : s->committed;
    if (done && s->have_pp && st->view == s->pp_view && sy_digest_eq(&st->digest, &s->d)) {
        if (type == SY_MSG_PBFT_COMMIT && st->seq > p->hi_seen)
            p->hi_seen = st->seq;
        return SY_OK;
    }
    if (!pbft_verify_stmt(p, type, st->view, st->seq, &st->digest, from, &st->sig))
        return SY_ESIG;
    if (v->have && v->view == st->view) {
        pbft_record_evidence(p, type, from, st->view, st->seq, &v->d, &st->digest);
        return SY_EREPLAY;
    }
    *v = (pbft_vote){ true, st->view, st->digest, st->sig };
    if (s->have_pp)
        note_dissent(p, s, from, v);
    if (type == SY_MSG_PBFT_COMMIT && st->seq > p->hi_seen)
        p->hi_seen = st->seq;
    if (s->executed)
        return SY_OK;
    pbft_progress(p, s);
    return SY_OK;
}

static bool vote_matches(const pbft *p, const pbft_vote *v, uint64_t view, const sy_digest *d)
{
    if (!v->have || v->view != view)
        return false;
#ifdef SYNOD_TESTING
    if (p->behaviour == SY_PBFT_MUTANT_ACCEPT_WRONG_DIGEST)
        return true;   /* planted bug: digest not compared */
#else
    (void)p;
#endif
    return sy_digest_eq(&v->d, d);
}

void pbft_progress(pbft *p, pbft_slot *s)
{
    if (!s->have_pp || s->executed)
        return;
    uint32_t prim = pbft_primary(p, s->pp_view);
    if (!s->prepared) {
        uint32_t cnt = 0;
        for (uint32_t r = 0; r < p->n; r++)
            if (r != prim && vote_matches(p, &s->prep[r], s->pp_view, &s->d))
                cnt++;
        if (cnt + 1 < p->q)
            return;   /* the certificate of an earlier view stays intact */
        cnt = 0;
        for (uint32_t r = 0; r < p->n; r++)
            if (r != prim && vote_matches(p, &s->prep[r], s->pp_view, &s->d))
                s->cert_prep[cnt++] = (sy_pbft_sig){ r, s->prep[r].sig };
        /* prepared (sec. 4.2): keep the certificate for view changes */
        s->prepared = true;
        s->have_cert = true;
        s->cert_view = s->pp_view;
        s->cert_d = s->d;
        free(s->cbatch);   /* the earlier certificate's batch: superseded */
        s->cbatch = NULL;
        s->cbatch_len = 0;
        s->cert_pp_sig = s->pp_sig;
        s->cert_n = cnt;
        p->hs_dirty = true;   /* durable before the COMMIT goes out */
    }
    if (!s->sent_commit && !guarded(p, s->pp_view, s->seq)) {
        sy_digest d = s->d;
        wrong(p, &d);
        sy_msg m = { .type = SY_MSG_PBFT_COMMIT };
        sy_pbft_stmt *st = &m.u.pbft.stmt;
        *st = (sy_pbft_stmt){ .view = s->pp_view, .seq = s->seq, .digest = d,
                              .replica = p->self };
        pbft_sign_stmt(p, SY_MSG_PBFT_COMMIT, s->pp_view, s->seq, &d, &st->sig);
        s->com[p->self] = (pbft_vote){ true, s->pp_view, d, st->sig };
        s->sent_commit = true;
        pbft_note_vote(p, s->seq);
        /* its record logs the COMMIT before it goes out (own statements,
         * pbft.c); mostly dirty already: the certificate formed just now */
        p->hs_dirty = true;
        pbft_send(p, SY_NO_NODE, &m);
    }
    if (!s->committed) {
        uint32_t cnt = 0;
        for (uint32_t r = 0; r < p->n; r++)
            if (vote_matches(p, &s->com[r], s->pp_view, &s->d))
                s->ccert[cnt++] = (sy_pbft_sig){ r, s->com[r].sig };
        if (cnt < p->q)
            return;
        s->committed = true;
        s->ccert_view = s->pp_view;
        s->ccert_n = cnt;
    }
    pbft_execute(p);
}

/* ------------------------------------------------------------ execution */

void pbft_note_batch_executed(pbft *p, const uint8_t *batch, size_t len)
{
    sy_bytes *reqs = NULL;
    uint32_t n = 0;
    sy_directory anyd = { any_key_of, NULL };
    sy_env_opts o = { .cluster_id = p->cfg.cluster_id, .dir = &anyd, .verifier = NULL };
    if (sy_batch_decode(batch, len, &reqs, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        sy_env e;
        if (sy_env_decode(&o, reqs[i].p, reqs[i].len, &e, NULL))
            continue;
        if (e.type == SY_MSG_CLIENT_REQ) {
            const sy_client_req *q = &e.msg.u.req;
            pbft_client *c = pbft_client_get(p, q->client_id, true);
            if (c && q->req_no > c->executed)
                c->executed = q->req_no;
            if (c && c->proposed <= q->req_no)
                c->proposed = 0;   /* done: a later retransmission may be ordered again */
            for (uint32_t w = 0; w < p->n_waiting; w++) {
                if (p->waiting[w].client == q->client_id && p->waiting[w].req_no <= q->req_no) {
                    pbft_waiting_drop(p, w);
                    w--;
                }
            }
        }
        sy_env_free(&e);
    }
    free(reqs);
}

int pbft_execute(pbft *p)
{
    bool progressed = false;
    while (!p->ckpt_index && !p->install) {
        pbft_slot *s = pbft_slot_get(p, p->executed + 1);
        if (!s || !s->committed || !s->have_batch || s->executed)
            break;
        sy_buf ev;
        sy_buf_init(&ev);
        int rc = sy_pbft_evidence_encode(s->ccert_view, s->seq, &s->d, s->ccert, s->ccert_n, &ev);
        size_t evlen = 0;
        uint8_t *evp = rc ? NULL : pbft_keep(p, sy_buf_take(&ev, &evlen));
        sy_buf_free(&ev);
        if (!evp)
            return SY_ENOMEM;
        sy_bytes evb = { evp, (uint32_t)evlen };
        bool null_req = s->batch_len == 0;
        /* term 0: replicas may commit one (seq, digest) in different views,
         * and the entry must be the same everywhere; the view this replica
         * committed in is in the evidence */
        rc = pbft_commit_entry(p, s->seq, 0, null_req ? SY_ENTRY_NOOP : SY_ENTRY_NORMAL,
                               s->batch, s->batch_len, &evb);
        if (rc)
            return rc;
        if (!null_req)
            pbft_note_batch_executed(p, s->batch, s->batch_len);
        s->executed = true;
        p->executed = s->seq;
        p->hs_dirty = true;   /* its commit certificate, durable with the entry */
        progressed = true;
        if (p->executed % p->K == 0)
            p->ckpt_index = p->executed;   /* host: snapshot here (SY_IN_SNAPSHOT) */
    }
    if (progressed) {
        p->progress_ms = p->now;
        if (!p->in_vc) {
            p->vc_backoff = 0;
            p->vc_deadline = 0;
            pbft_reset_timer(p);
        }
    }
    return SY_OK;
}

/* ------------------------------------------------------------ checkpoints */

static pbft_ckpt *ck_get(pbft *p, uint64_t seq)
{
    if (seq <= p->h || seq % p->K || seq > p->h + (uint64_t)(p->nck - 1) * p->K)
        return NULL;
    pbft_ckpt *c = &p->cks[(seq / p->K) % p->nck];
    if (c->seq != seq) {
        free(c->snap);
        bool *hv = c->have;
        sy_digest *d = c->d;
        sy_sig *sg = c->sig;
        memset(hv, 0, p->n * sizeof *hv);
        memset(c, 0, sizeof *c);
        c->have = hv;
        c->d = d;
        c->sig = sg;
        c->seq = seq;
    }
    return c;
}

static void check_stable(pbft *p, pbft_ckpt *c)
{
    for (uint32_t i = 0; i < p->n; i++) {
        if (!c->have[i])
            continue;
        sy_pbft_sig sigs[SY_MAX_NODES];
        uint32_t cnt = 0;
        for (uint32_t r = 0; r < p->n; r++)
            if (c->have[r] && sy_digest_eq(&c->d[r], &c->d[i]))
                sigs[cnt++] = (sy_pbft_sig){ r, c->sig[r] };
        if (cnt >= p->q) {
            sy_digest d = c->d[i];
            pbft_stabilize(p, c->seq, &d, sigs, cnt);
            return;
        }
    }
}

static void send_checkpoint(pbft *p, pbft_ckpt *c, uint32_t to)
{
    sy_msg m = { .type = SY_MSG_PBFT_CHECKPOINT };
    sy_pbft_stmt *st = &m.u.pbft.stmt;
    *st = (sy_pbft_stmt){ .view = 0, .seq = c->seq, .digest = c->mine, .replica = p->self,
                          .sig = c->sig[p->self] };
    pbft_send(p, to, &m);
}

int pbft_on_snapshot(pbft *p, uint64_t index, const uint8_t *data, size_t len,
                     const sy_digest *digest)
{
    if (index > p->executed)
        return SY_EINVAL;
    if (index == p->h && data && !p->h_snap) {
        /* the checkpoint went stable on others' votes before our host's
         * snapshot arrived: keep the blob if it is the certified state */
        sy_digest d;
        if (digest)
            d = *digest;
        if ((digest || pbft_snap_digest(p, data, len, &d) == SY_OK) &&
            sy_digest_eq(&d, &p->h_digest) && len) {
            uint8_t *copy = malloc(len);
            if (!copy)
                return SY_ENOMEM;
            memcpy(copy, data, len);
            pbft_set_h_snap(p, copy, len);
        }
        return SY_OK;
    }
    pbft_ckpt *c = ck_get(p, index);
    if (!c)
        return SY_OK;   /* not a checkpoint above h: nothing to certify */
    if (data) {
        uint8_t *copy = len ? malloc(len) : NULL;
        if (len && !copy)
            return SY_ENOMEM;
        if (copy)
            memcpy(copy, data, len);
        free(c->snap);
        c->snap = copy;
        c->snap_len = len;
    }
    if (!c->mine_have) {
        if (digest) {
            c->mine = *digest;
        } else {
            /* checkpoint digest = digest of the snapshot (docs/pbft.md) */
            int rc = pbft_snap_digest(p, data, len, &c->mine);
            if (rc)
                return rc;
        }
        c->mine_have = true;
    }
    if (!c->mine_sent) {
        pbft_sign_stmt(p, SY_MSG_PBFT_CHECKPOINT, 0, index, &c->mine, &c->sig[p->self]);
        c->d[p->self] = c->mine;
        c->have[p->self] = true;
        c->mine_sent = true;
        if (index > p->hi_ck[p->self])
            p->hi_ck[p->self] = index;
        send_checkpoint(p, c, SY_NO_NODE);
    }
    check_stable(p, c);
    return SY_OK;
}

int pbft_on_checkpoint(pbft *p, uint32_t from, const sy_pbft_stmt *st)
{
    if (st->replica != from || st->view != 0 || st->seq == 0 || st->seq % p->K)
        return SY_EFIELD;
    if (st->seq <= p->h)
        return SY_OK;   /* old news */
    pbft_ckpt *c = ck_get(p, st->seq);
    if (c && c->have[from] && sy_digest_eq(&c->d[from], &st->digest))
        return SY_OK;
    if (!pbft_verify_stmt(p, SY_MSG_PBFT_CHECKPOINT, 0, st->seq, &st->digest, from, &st->sig))
        return SY_ESIG;
    if (st->seq > p->hi_ck[from])
        p->hi_ck[from] = st->seq;
    if (!c)
        return SY_OK;   /* beyond our window: only tells us we lag */
    if (c->have[from]) {
        pbft_record_evidence(p, SY_MSG_PBFT_CHECKPOINT, from, 0, st->seq, &c->d[from],
                             &st->digest);
        return SY_EREPLAY;
    }
    c->have[from] = true;
    c->d[from] = st->digest;
    c->sig[from] = st->sig;
    check_stable(p, c);
    return SY_OK;
}

/* A checkpoint proven by q signatures becomes the low water mark once this
 * replica has executed it (sec. 4.3); a replica behind it fetches state. */
void pbft_stabilize(pbft *p, uint64_t seq, const sy_digest *d, const sy_pbft_sig *sigs,
                    uint32_t nsigs)
{
    if (seq <= p->h || p->executed < seq)
        return;
    pbft_ckpt *c = ck_get(p, seq);
    pbft_keep_h_snap(p);   /* while someone still fetches it */
    p->h = seq;
    p->h_digest = *d;
    p->h_nsigs = nsigs < p->n ? nsigs : p->n;
    memcpy(p->h_sigs, sigs, p->h_nsigs * sizeof *sigs);
    pbft_set_h_snap(p, NULL, 0);
    if (c && c->snap && c->mine_have && sy_digest_eq(&c->mine, d)) {
        pbft_set_h_snap(p, c->snap, c->snap_len);
        c->snap = NULL;
    }
    if (p->xin.seq && p->xin.seq <= seq)
        pbft_xin_clear(p);   /* reached it (or past it) another way */
    for (uint64_t i = 0; i < p->L; i++)
        if (p->slots[i].seq && p->slots[i].seq <= seq)
            pbft_slot_clear(p, &p->slots[i]);
    for (uint32_t i = 0; i < p->nck; i++)
        if (p->cks[i].seq && p->cks[i].seq <= seq) {
            free(p->cks[i].snap);
            p->cks[i].snap = NULL;
            p->cks[i].seq = 0;
            memset(p->cks[i].have, 0, p->n * sizeof *p->cks[i].have);
            p->cks[i].mine_have = p->cks[i].mine_sent = false;
        }
    if (p->next_seq <= seq)
        p->next_seq = seq + 1;
    if (p->last_pp < seq)
        p->last_pp = seq;
    p->compact_to = seq;
    p->hs_dirty = true;
}

/* ------------------------------------------------------------ retransmission */

#define PBFT_RETRANSMIT_MAX 64u

/* Heartbeat: when nothing executed since the last one, repeat this
 * replica's own statements for the slots still open, and its unstable
 * checkpoints (the paper's retransmission, sec. 5.2, simplified). */
void pbft_retransmit(pbft *p)
{
    if (p->in_vc) {
        pbft_vc_resend(p);
        return;
    }
    if (p->executed == p->exec_at_hb) {
        uint32_t sent = 0;
        uint64_t top = p->last_pp < p->h + p->L ? p->last_pp : p->h + p->L;
        for (uint64_t seq = p->executed + 1; seq <= top && sent < PBFT_RETRANSMIT_MAX; seq++) {
            pbft_slot *s = pbft_slot_get(p, seq);
            if (!s || !s->have_pp || s->pp_view != p->view)
                continue;
            if (pbft_primary(p, p->view) == p->self) {
                sy_msg m = { .type = SY_MSG_PBFT_PRE_PREPARE };
                m.u.pbft.stmt = (sy_pbft_stmt){ .view = p->view, .seq = seq, .digest = s->d,
                                                .replica = p->self, .sig = s->pp_sig,
                                                .batch = { s->batch, (uint32_t)s->batch_len } };
                pbft_send(p, SY_NO_NODE, &m);
            }
            if (s->sent_prepare) {
                sy_msg m = { .type = SY_MSG_PBFT_PREPARE };
                const pbft_vote *v = &s->prep[p->self];
                m.u.pbft.stmt = (sy_pbft_stmt){ .view = v->view, .seq = seq, .digest = v->d,
                                                .replica = p->self, .sig = v->sig };
                pbft_send(p, SY_NO_NODE, &m);
            }
            if (s->sent_commit) {
                sy_msg m = { .type = SY_MSG_PBFT_COMMIT };
                const pbft_vote *v = &s->com[p->self];
                m.u.pbft.stmt = (sy_pbft_stmt){ .view = v->view, .seq = seq, .digest = v->d,
                                                .replica = p->self, .sig = v->sig };
                pbft_send(p, SY_NO_NODE, &m);
            }
            sent++;
        }
        for (uint32_t i = 0; i < p->nck; i++)
            if (p->cks[i].seq > p->h && p->cks[i].mine_sent)
                send_checkpoint(p, &p->cks[i], SY_NO_NODE);
    }
    p->exec_at_hb = p->executed;
}
