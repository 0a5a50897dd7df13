/* Simulated clients: each runs one operation at a time (put, get, cas, del
 * on a few shared keys), signs it as its own client identity, retries with
 * the same req_no (exactly-once rests on that), follows leader hints from
 * rejects, and records invocation and response in the history the
 * linearizability checker reads. In the fault phase a client gives up after
 * SIM_CLIENT_GIVE_UP_MS; the operation then stays pending in the history
 * (it may or may not have taken effect). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/sim/sim_int.h"
#include "crypto/sy_err.h"

/* History timestamps: the number of events processed so far. Events run in
 * (time, seq) order, so this respects real-time order and never ties. */
static uint64_t stamp(const sim_world *w) { return w->st->events; }

static uint64_t think_ms(sim_world *w)
{
    /* spread the workload over the fault phase */
    uint64_t mean = w->o.fault_ms * w->n_clients / (w->o.requests ? w->o.requests : 1);
    if (mean < 2)
        mean = 2;
    return sy_rng_below(&w->wl, 2 * mean);
}

/* A read answered from the replicas' executed state (C&L 5.1.3), not yet
 * fallen back to an ordered one. */
static bool fast_read(const sim_client *c)
{
    return c->op == SY_OP_GET && !c->ordered;
}

static void send_current(sim_world *w, sim_client *c)
{
    uint64_t wait = SIM_CLIENT_TIMEOUT_MS;
    if (w->bft && c->attempts == 0 && !fast_read(c) && c->primary < w->n) {
        /* as the client library (net/client.c bft_targets): a write's first
         * send goes to the believed primary and f backups, rotating by
         * client id; a replica answers only requests it received */
        sim_net_send(w, c->id, c->primary, SY_MSG_CLIENT_REQ, c->env, c->env_len);
        uint32_t start = w->n > 1 ? c->id % (w->n - 1) : 0;
        for (uint32_t k = 0; k < w->f; k++) {
            uint32_t i = (c->primary + 1 + (start + k) % (w->n - 1)) % w->n;
            sim_net_send(w, c->id, i, SY_MSG_CLIENT_REQ, c->env, c->env_len);
        }
        wait = SIM_CLIENT_NARROW_MS;
    } else if (w->bft) {
        /* every replica that has not answered yet */
        for (uint32_t i = 0; i < w->n; i++)
            if (!c->have[i])
                sim_net_send(w, c->id, i, SY_MSG_CLIENT_REQ, c->env, c->env_len);
    } else {
        sim_net_send(w, c->id, c->target, SY_MSG_CLIENT_REQ, c->env, c->env_len);
    }
    c->gen++;
    sim_schedule(w, w->now + wait, EV_CLIENT, c->id, UINT32_MAX, c->gen, NULL, 0);
}

static void next_op_later(sim_world *w, sim_client *c)
{
    c->gen++;
    sim_schedule(w, w->now + think_ms(w), EV_CLIENT, c->id, UINT32_MAX, c->gen, NULL, 0);
}

/* Signs the current operation as request c->req_no (flags included) and
 * records it as submitted, for the validity and durability checks. */
static int encode_current(sim_world *w, sim_client *c)
{
    uint32_t ci = c->id - SY_CLIENT_ID_BASE;
    sy_msg m = { .type = SY_MSG_CLIENT_REQ };
    m.u.req = (sy_client_req){
        .client_id = c->id, .req_no = c->req_no, .op = c->op, .flags = c->flags,
        .key = { (const uint8_t *)c->key, (uint32_t)strlen(c->key) },
    };
    if (c->op == SY_OP_PUT || c->op == SY_OP_CAS)
        m.u.req.val = (sy_bytes){ (const uint8_t *)c->val, (uint32_t)strlen(c->val) };
    if (c->op == SY_OP_CAS && !(c->flags & SY_CAS_EXPECT_ABSENT))
        m.u.req.old = (sy_bytes){ (const uint8_t *)c->old, (uint32_t)strlen(c->old) };
    sy_buf b;
    sy_buf_init(&b);
    int rc = sy_env_encode(SIM_CLUSTER_ID, c->id, &m, &c->signer, &b);
    if (rc) {
        sy_buf_free(&b);
        sim_fail(w, "codec", "client %u could not encode its request: %s", ci, sy_strerror(rc));
        return rc;
    }
    free(c->env);
    c->env = sy_buf_take(&b, &c->env_len);
    sim_sub *sub = sim_sub_of(w, c->id, c->req_no);
    if (sub) {
        sub->submitted = true;
        sub->is_write = c->op != SY_OP_GET;
        sy_hash(c->env, c->env_len, &sub->env_digest);
    }
    return SY_OK;
}

static void start_op(sim_world *w, sim_client *c)
{
    uint32_t ci = c->id - SY_CLIENT_ID_BASE;
    w->issued++;
    c->req_no++;
    c->attempts = 0;
    c->redirect = false;
    memset(c->have, 0, sizeof c->have);
    c->started_at = w->now;
    c->flags = 0;
    c->ordered = false;
    uint32_t k = (uint32_t)sy_rng_below(&w->wl, w->o.keys);
    snprintf(c->key, sizeof c->key, "k%u", k);
    snprintf(c->val, sizeof c->val, "c%ur%llu", ci, (unsigned long long)c->req_no);
    c->old[0] = 0;
    uint32_t r = (uint32_t)sy_rng_below(&w->wl, 100);
    if (r < 35) {
        c->op = SY_OP_PUT;
    } else if (r < 65) {
        c->op = SY_OP_GET;
    } else if (r < 85) {
        c->op = SY_OP_CAS;
        if (!w->last_val[k][0] || sy_rng_below(&w->wl, 5) == 0)
            c->flags = SY_CAS_EXPECT_ABSENT;
        else
            snprintf(c->old, sizeof c->old, "%s", w->last_val[k]);
    } else {
        c->op = SY_OP_DEL;
    }
    if (encode_current(w, c))
        return;
    bool put_val = c->op == SY_OP_PUT || c->op == SY_OP_CAS;
    bool has_old = c->op == SY_OP_CAS && !(c->flags & SY_CAS_EXPECT_ABSENT);
    int rc = sy_linz_invoke(w->hist, ci, stamp(w), c->op, c->flags, c->key, strlen(c->key),
                        put_val ? c->val : NULL, put_val ? strlen(c->val) : 0,
                        has_old ? c->old : NULL, has_old ? strlen(c->old) : 0, &c->hist_id);
    if (rc) {
        sim_fail(w, "simulator", "history: %s", sy_strerror(rc));
        return;
    }
    c->outstanding = true;
    send_current(w, c);
}

/* As the client library (net/client.c sy_client_exec): a read that cannot
 * gather q matching unordered replies -- replicas answered from different
 * executed states, or not in time -- is sent again as an ordered request
 * (SY_REQ_ORDERED) under a new request number and needs f+1 matching
 * replies, like a write (Castro & Liskov 5.1.3: "If the client cannot
 * collect 2f+1 such replies, it retransmits the request as a regular
 * read-write request"). Without it a read waits for ever whenever fewer
 * than q replicas reachable by clients share one state, e.g. a correct
 * replica left alone in a higher view (docs/pbft.md, Known limitations)
 * next to a lagging Byzantine one. */
static void read_fallback(sim_world *w, sim_client *c)
{
    c->ordered = true;
    c->flags |= SY_REQ_ORDERED;
    c->req_no++;
    c->attempts = 0;
    memset(c->have, 0, sizeof c->have);
    w->st->ops_retries++;
    sim_trace(w, TR_CLIENT_RETRY, c->id, c->target, c->req_no, c->attempts, 0);
    if (encode_current(w, c))
        return;
    send_current(w, c);
}

void sim_client_start(sim_world *w)
{
    for (uint32_t i = 0; i < w->n_clients; i++) {
        sim_client *c = &w->clients[i];
        c->target = (uint32_t)sy_rng_below(&w->wl, w->n);
        c->primary = SY_NO_NODE;   /* BFT: the first request goes to all */
        c->gen = 1;
        sim_schedule(w, sy_rng_below(&w->wl, 50), EV_CLIENT, c->id, UINT32_MAX, c->gen, NULL, 0);
    }
}

void sim_client_event(sim_world *w, sim_client *c, uint64_t gen)
{
    if (gen != c->gen)
        return;   /* superseded timer */
    if (!c->outstanding) {
        if (w->issued < w->o.requests)
            start_op(w, c);
        return;
    }
    c->attempts++;
    if (!w->calm && w->now >= c->started_at + SIM_CLIENT_GIVE_UP_MS) {
        /* give up: the op stays pending in the history forever */
        w->st->ops_gave_up++;
        sim_trace(w, TR_GIVE_UP, c->id, UINT32_MAX, c->req_no, 0, 0);
        c->outstanding = false;
        next_op_later(w, c);
        return;
    }
    if (w->bft && fast_read(c)) {
        read_fallback(w, c);
        return;
    }
    if (w->bft) {
        /* a new round: an ordered request keeps the replies it has (as
         * net/client.c run_bft does: a reply to req_no is final, and the
         * replicas that executed it answer a retransmission only if the
         * primary orders it again); asked again are everyone */
    } else if (!c->redirect) { /* a timeout: try the next node */
        c->target = (c->target + 1) % w->n;
    }
    c->redirect = false;
    w->st->ops_retries++;
    sim_trace(w, TR_CLIENT_RETRY, c->id, c->target, c->req_no, c->attempts, 0);
    send_current(w, c);
}

void sim_client_deliver(sim_world *w, sim_client *c, const uint8_t *data, size_t len)
{
    sy_env env;
    const char *why = NULL;
    int rc = sy_env_decode(&w->envo, data, len, &env, &why);
    if (rc) {
        w->st->msgs_rejected++;
        sim_trace(w, TR_REJECT_ENV, c->id, UINT32_MAX, 0, 0, rc);
        return;
    }
    const sy_client_reply *rp = &env.msg.u.reply;
    if (env.type != SY_MSG_CLIENT_REPLY || env.sender >= w->n || rp->client_id != c->id ||
        !c->outstanding || rp->req_no != c->req_no) {
        sy_env_free(&env);
        return;   /* late duplicate or a reply to an op already finished */
    }
    int st = rp->status;
    bool definite = st == SY_OK || st == SY_ENOTFOUND || st == SY_ECASFAIL;
    if (w->bft) {
        /* accept on f+1 matching replies (reads: a quorum q), so at least
         * one correct replica vouches for the result */
        if (!definite && st != SY_ESTALE) {
            sy_env_free(&env);
            return;   /* not an answer; asked again at the next attempt */
        }
        /* the library's rule: status, log index, value and results
         * (core/msg.h); a fast read's reply names the applied index it was
         * read at, so q of them must come from one state */
        sy_client_reply_digest(rp, &c->got[env.sender]);
        c->have[env.sender] = true;
        c->hint[env.sender] = rp->leader;
        uint32_t need = fast_read(c) ? (w->n + w->f + 2) / 2 : w->f + 1;
        uint32_t match = 0;
        for (uint32_t i = 0; i < w->n; i++)
            if (c->have[i] && sy_digest_eq(&c->got[i], &c->got[env.sender]))
                match++;
        if (match < need) {
            sy_env_free(&env);
            if (fast_read(c)) {
                /* no group of matching replies can still reach q: fall
                 * back at once, as the library does */
                uint32_t answered = 0, best = 0;
                for (uint32_t i = 0; i < w->n; i++) {
                    if (!c->have[i])
                        continue;
                    answered++;
                    uint32_t m = 0;
                    for (uint32_t j = 0; j < w->n; j++)
                        m += c->have[j] && sy_digest_eq(&c->got[i], &c->got[j]);
                    if (m > best)
                        best = m;
                }
                if (best + (w->n - answered) < need)
                    read_fallback(w, c);
            }
            return;
        }
        /* the primary is believed when f+1 replies name the same replica */
        for (uint32_t i = 0; i < w->n; i++) {
            uint32_t same = 0;
            for (uint32_t j = 0; c->have[i] && j < w->n; j++)
                same += c->have[j] && c->hint[j] == c->hint[i];
            if (same >= w->f + 1)
                c->primary = c->hint[i];
        }
    }
    if (!definite) {
        if (st == SY_ESTALE) {
            sim_fail(w, "exactly-once", "client %u request %llu answered as stale: a newer "
                     "request of this client was applied first", c->id - SY_CLIENT_ID_BASE,
                     (unsigned long long)c->req_no);
            sy_env_free(&env);
            return;
        }
        /* redirect or overload: follow the hint soon, else try the next node */
        w->st->ops_redirects++;
        uint32_t hint = rp->leader;
        uint64_t delay;
        if (hint < w->n && hint != c->target) {
            c->target = hint;
            delay = sy_rng_range(&w->wl, 1, 5);
        } else {
            c->target = (c->target + 1) % w->n;
            delay = sy_rng_range(&w->wl, 20, 100);
        }
        c->redirect = true;
        c->gen++;
        sim_schedule(w, w->now + delay, EV_CLIENT, c->id, UINT32_MAX, c->gen, NULL, 0);
        sy_env_free(&env);
        return;
    }
    uint32_t k = (uint32_t)atoi(c->key + 1);
    rc = sy_linz_return(w->hist, c->hist_id, stamp(w), st, rp->val.p, rp->val.len);
    if (rc) {
        sim_fail(w, "simulator", "history: %s", sy_strerror(rc));
        sy_env_free(&env);
        return;
    }
    if (k < 8) {
        if (c->op == SY_OP_GET && st == SY_OK && rp->val.len < sizeof w->last_val[k]) {
            memcpy(w->last_val[k], rp->val.p, rp->val.len);
            w->last_val[k][rp->val.len] = 0;
        } else if ((c->op == SY_OP_PUT || c->op == SY_OP_CAS) && st == SY_OK) {
            snprintf(w->last_val[k], sizeof w->last_val[k], "%s", c->val);
        } else if (c->op == SY_OP_DEL) {
            w->last_val[k][0] = 0;
        }
    }
    sim_sub *sub = sim_sub_of(w, c->id, c->req_no);
    if (sub)
        sub->acked = true;
    w->st->ops_ok++;
    c->done++;
    c->outstanding = false;
    sim_trace(w, TR_CLIENT_DONE, c->id, env.sender, c->req_no, rp->index, st);
    sy_env_free(&env);
    next_op_later(w, c);
}

bool sim_clients_done(const sim_world *w)
{
    if (w->issued < w->o.requests)
        return false;
    for (uint32_t i = 0; i < w->n_clients; i++)
        if (w->clients[i].outstanding)
            return false;
    return true;
}
