/* The simulated world: event loop, node hosts, failure reports.
 *
 * Each node runs the daemon's host loop against its engine (core/engine.h):
 * step queued inputs, ready(), stage the persistence on the simulated disk
 * and wait for its fsync, then send, apply committed entries, answer reads
 * and rejects, advance(). While a write is in flight a pipelined engine
 * (core/engine.h) keeps taking input, as the daemon did until session 16;
 * any other takes none -- nor does a pipelined one on one seed in four
 * (sim_steps_while_busy), which is the daemon's order since it writes in
 * line: input that arrives during the write is stepped after advance().
 * Either way one write at most is in flight, so a crash can only ever
 * lose that one unsynced write.
 *
 * Determinism: one seed feeds every generator; events are ordered by (time,
 * sequence); nothing reads a real clock or iterates a hash table. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/sim/sim_int.h"
#include "crypto/sy_err.h"
#include "core/config.h"
#include "core/evidence.h"
#include "core/ledger.h"

static const char *const fault_names[SY_SIM_N_FAULTS] = {
    "drop", "dup", "reorder", "partition", "crash", "pause", "skew", "disk", "leader-churn",
    "handoff", "lose", "replace", "outage",
};

const char *sy_sim_fault_name(uint32_t bit)
{
    for (int i = 0; i < SY_SIM_N_FAULTS; i++)
        if (bit == (1u << i))
            return fault_names[i];
    return "?";
}

int sy_sim_parse_faults(const char *list, uint32_t *mask, char *badbuf, size_t badcap)
{
    *mask = 0;
    const char *p = list;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool found = false;
        if (len == 3 && strncmp(p, "all", 3) == 0) {
            *mask |= SY_FAULT_ALL;
            found = true;
        } else if ((len == 4 && strncmp(p, "none", 4) == 0) || len == 0) {
            found = true;
        }
        for (int i = 0; i < SY_SIM_N_FAULTS && !found; i++) {
            if (strlen(fault_names[i]) == len && strncmp(p, fault_names[i], len) == 0) {
                *mask |= 1u << i;
                found = true;
            }
        }
        if (!found) {
            if (badbuf && badcap) {
                size_t n = len < badcap - 1 ? len : badcap - 1;
                memcpy(badbuf, p, n);
                badbuf[n] = 0;
            }
            return SY_EINVAL;
        }
        p = e ? e + 1 : NULL;
    }
    return SY_OK;
}

void sy_sim_opts_default(sy_sim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->protocol = "raft";
    o->nodes = 3;
    o->seed = 1;
    o->requests = 200;
}

static void faults_str(uint32_t mask, char *buf, size_t cap)
{
    buf[0] = 0;
    size_t len = 0;
    bool all = (mask & SY_FAULT_ALL) == SY_FAULT_ALL;
    if (all)
        len = (size_t)snprintf(buf, cap, "all");
    for (int i = 0; i < SY_SIM_N_FAULTS; i++) {
        if ((mask & (1u << i)) && !(all && ((1u << i) & SY_FAULT_ALL)))
            len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s%s",
                                    len ? "," : "", fault_names[i]);
    }
    if (!len)
        snprintf(buf, cap, "none");
}

void sy_sim_replay_line(const sy_sim_opts *o, char *buf, size_t cap)
{
    char fl[96];
    faults_str(o->faults, fl, sizeof fl);
    size_t len = (size_t)snprintf(buf, cap,
                                  "%s --protocol %s --nodes %u --seed %" PRIu64
                                  " --requests %u --faults %s",
                                  o->replay_prefix ? o->replay_prefix : "synod-sim",
                                  o->protocol ? o->protocol : "?", o->nodes, o->seed,
                                  o->requests, fl);
    /* non-default workload/fault-phase options change the run: replay them */
    if (o->clients && o->clients != 5 && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, " --clients %u", o->clients);
    if (o->fault_ms && o->fault_ms != 20000 && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, " --fault-ms %" PRIu64, o->fault_ms);
    if (o->corrupt_pct && o->corrupt_pct != SY_SIM_CORRUPT_PCT && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, " --corrupt %u",
                                o->corrupt_pct == SY_SIM_CORRUPT_OFF ? 0 : o->corrupt_pct);
    if (o->snapshot_every && o->snapshot_every != UINT32_MAX && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, " --snapshot-every %u", o->snapshot_every);
    if (o->compact_keep && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, " --compact-keep %u", o->compact_keep);
    for (uint32_t i = 0; i < o->n_byz && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, " --%s %u:%u",
                                o->byz[i].behaviour >= SY_SIM_MUTANT_BASE ? "mutant"
                                                                          : "byzantine",
                                o->byz[i].node, o->byz[i].behaviour);
    if (o->ed25519 && len < cap)
        snprintf(buf + len, cap - len, " --ed25519");
}

/* ---- event heap ---- */

static bool ev_before(const sim_event *a, const sim_event *b)
{
    return a->t != b->t ? a->t < b->t : a->seq < b->seq;
}

int sim_schedule(sim_world *w, uint64_t t, uint8_t kind, uint32_t a, uint32_t b,
                 uint64_t gen, uint8_t *data, size_t len)
{
    if (w->n_heap == w->cap_heap) {
        size_t nc = w->cap_heap ? w->cap_heap * 2 : 1024;
        sim_event *nh = realloc(w->heap, nc * sizeof *nh);
        if (!nh) {
            free(data);
            sim_fail(w, "simulator", "out of memory growing the event queue");
            return SY_ENOMEM;
        }
        w->heap = nh;
        w->cap_heap = nc;
    }
    sim_event ev = { .t = t < w->now ? w->now : t, .seq = w->seq++, .kind = kind, .a = a,
                     .b = b, .gen = gen, .data = data, .len = len };
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(&ev, &w->heap[p]))
            break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = ev;
    return SY_OK;
}

static bool heap_pop(sim_world *w, sim_event *out)
{
    if (!w->n_heap)
        return false;
    *out = w->heap[0];
    sim_event last = w->heap[--w->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sim_event *best = &last;
        if (l < w->n_heap && ev_before(&w->heap[l], best)) {
            m = l;
            best = &w->heap[l];
        }
        if (r < w->n_heap && ev_before(&w->heap[r], best))
            m = r;
        if (m == i)
            break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->n_heap)
        w->heap[i] = last;
    return true;
}

/* ---- trace and failures ---- */

static const char *kind_name(uint8_t k)
{
    switch (k) {
    case EV_DELIVER: return "deliver";
    case EV_TICK: return "tick";
    case EV_PUMP: return "pump";
    case EV_DISK_DONE: return "fsync-done";
    case EV_SNAP_DONE: return "snapshot-done";
    case EV_CLIENT: return "client";
    case EV_FAULT: return "fault";
    case EV_HEAL: return "heal";
    case EV_RESTART: return "restart";
    case EV_RESUME: return "resume";
    case EV_CALM: return "calm";
    case EV_CHURN: return "leader-churn";
    case EV_HANDOFF: return "handoff";
    case TR_SEND: return "send";
    case TR_DROP: return "drop";
    case TR_DUP: return "dup";
    case TR_COMMIT: return "commit";
    case TR_APPLY: return "apply";
    case TR_REPLY: return "reply";
    case TR_REQ: return "request";
    case TR_CRASH: return "crash";
    case TR_RESTART: return "restarted";
    case TR_PAUSE: return "pause";
    case TR_PARTITION: return "partition";
    case TR_HEAL: return "healed";
    case TR_LOST_WRITE: return "lost-unsynced-write";
    case TR_REJECT_ENV: return "envelope-rejected";
    case TR_CLIENT_DONE: return "client-done";
    case TR_CLIENT_RETRY: return "client-retry";
    case TR_ROLE: return "role";
    case TR_GIVE_UP: return "client-gave-up";
    case TR_SNAPSHOT: return "snapshot";
    case TR_FAIL: return "CHECK-FAILED";
    case TR_LOG_CUT: return "log-cut";
    case TR_CORRUPT: return "disk-corrupted";
    case TR_CORRUPT_FOUND: return "corruption-found";
    case TR_REPLACE: return "disk-replaced";
    case TR_REJOINED: return "rejoined";
    default: return "?";
    }
}

static void trace_fmt(const sim_trace_rec *r, char *buf, size_t cap)
{
    char who[24];
    if (r->a >= SY_CLIENT_ID_BASE)
        snprintf(who, sizeof who, "c%u", r->a - SY_CLIENT_ID_BASE);
    else
        snprintf(who, sizeof who, "n%u", r->a);
    char to[24] = "";
    if (r->b != UINT32_MAX) {
        if (r->b >= SY_CLIENT_ID_BASE)
            snprintf(to, sizeof to, " -> c%u", r->b - SY_CLIENT_ID_BASE);
        else
            snprintf(to, sizeof to, " -> n%u", r->b);
    }
    const char *extra = "";
    char eb[64] = "";
    switch (r->kind) {
    case TR_SEND:
    case TR_DROP:
    case TR_DUP:
        snprintf(eb, sizeof eb, " %s%s", sy_msg_type_name((int)r->x),
                 r->kind == TR_DROP && r->y ? " (partitioned)" : "");
        extra = eb;
        break;
    case TR_ROLE:
        snprintf(eb, sizeof eb, " %s term %" PRIu64, sy_role_name((int)r->x), r->y);
        extra = eb;
        break;
    case TR_REJECT_ENV:
        snprintf(eb, sizeof eb, " %s", sy_errname(r->code));
        extra = eb;
        break;
    case TR_REQ:
        snprintf(eb, sizeof eb, " req %" PRIu64 " op %" PRIu64, r->x, r->y);
        extra = eb;
        break;
    case TR_APPLY:
    case TR_REPLY:
    case TR_CLIENT_DONE:
        snprintf(eb, sizeof eb, " req %" PRIu64 " index %" PRIu64 " %s", r->x, r->y,
                 sy_errname(r->code));
        extra = eb;
        break;
    case TR_COMMIT:
    case TR_SNAPSHOT:
        snprintf(eb, sizeof eb, " index %" PRIu64 " term %" PRIu64, r->x, r->y);
        extra = eb;
        break;
    case TR_CRASH:
    case TR_RESTART:
    case TR_REJOINED:
        snprintf(eb, sizeof eb, " applied %" PRIu64, r->x);
        extra = eb;
        break;
    case TR_REPLACE:
        snprintf(eb, sizeof eb, " (rejoins; the others had applied %" PRIu64 ")", r->x);
        extra = eb;
        break;
    case TR_LOG_CUT:
        snprintf(eb, sizeof eb, " truncate-from %" PRIu64 " compact-to %" PRIu64, r->x, r->y);
        extra = eb;
        break;
    case TR_CORRUPT:
    case TR_CORRUPT_FOUND:
        snprintf(eb, sizeof eb, " in %s%s",
                 r->x == SY_TBL_LOG ? "log" : r->x == SY_TBL_LEDGER ? "ledger" : "meta",
                 r->kind == TR_CORRUPT ? "" : " (node stays down)");
        extra = eb;
        break;
    case TR_CLIENT_RETRY:
    case TR_GIVE_UP:
        snprintf(eb, sizeof eb, " req %" PRIu64 " attempt %" PRIu64, r->x, r->y);
        extra = eb;
        break;
    default:
        snprintf(eb, sizeof eb, " x=%" PRIu64 " y=%" PRIu64 "%s%s", r->x, r->y,
                 r->code ? " " : "", r->code ? sy_errname(r->code) : "");
        extra = eb;
        break;
    }
    snprintf(buf, cap, "t=%" PRIu64 "ms %-18s %s%s%s", r->t, kind_name(r->kind), who, to,
             extra);
}

void sim_trace(sim_world *w, uint8_t kind, uint32_t a, uint32_t b, uint64_t x, uint64_t y,
               int code)
{
    sim_trace_rec *r = &w->trace[w->n_trace++ % SIM_TRACE];
    *r = (sim_trace_rec){ .t = w->now, .kind = kind, .a = a, .b = b, .x = x, .y = y,
                          .code = code };
    if (w->o.verbose) {
        char line[200];
        trace_fmt(r, line, sizeof line);
        fprintf(w->o.out, "  %s\n", line);
    }
}

void sim_fail(sim_world *w, const char *check, const char *fmt, ...)
{
    w->stop = true;
    if (w->st->failed)
        return;
    w->st->failed = true;
    snprintf(w->st->check, sizeof w->st->check, "%s", check);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->st->why, sizeof w->st->why, fmt, ap);
    va_end(ap);
    sim_trace(w, TR_FAIL, 0, UINT32_MAX, 0, 0, 0);
}

static void report_failure(sim_world *w)
{
    FILE *out = w->o.out;
    char line[512], fl[96];
    faults_str(w->o.faults, fl, sizeof fl);
    fprintf(out, "synod-sim: FAILED check %s: %s\n", w->st->check, w->st->why);
    fprintf(out, "  protocol %s, nodes %u, seed %" PRIu64 ", faults %s, at t=%" PRIu64 "ms\n",
            w->o.protocol, w->n, w->o.seed, fl, w->now);
    sy_sim_replay_line(&w->o, line, sizeof line);
    fprintf(out, "  replay: %s --verbose\n", line);
    uint64_t shown = w->n_trace < SIM_TRACE_SHOWN ? w->n_trace : SIM_TRACE_SHOWN;
    fprintf(out, "  last %" PRIu64 " events of the trace:\n", shown);
    for (uint64_t i = w->n_trace - shown; i < w->n_trace; i++) {
        trace_fmt(&w->trace[i % SIM_TRACE], line, sizeof line);
        fprintf(out, "    %s\n", line);
    }
    for (uint32_t i = 0; i < w->n_hosts; i++) {
        const sim_node *nd = &w->nodes[i];
        sy_engine_status es = { 0 };
        if (nd->up && nd->eng)
            w->o.ops->status(nd->eng, &es);
        fprintf(out, "  n%u%s: %s%s%s role %s term %" PRIu64 " commit %" PRIu64 " applied %" PRIu64
                     "\n", nd->id, i >= w->n ? " (twin)" : "", nd->up ? "up" : "down", nd->paused ? " paused" : "",
                nd->dead ? " (corrupt disk)" : nd->corrupt ? " (corrupt disk, undetected)"
                : nd->lost ? " (lost for good)" : "",
                sy_role_name(es.role), es.term, es.commit_index, nd->applied);
    }
}

/* ---- clocks ---- */

static uint64_t local_of(const sim_node *nd, uint64_t g)
{
    int64_t d = (int64_t)g * nd->drift_ppm / 1000000;
    return nd->clk_off + g + (uint64_t)d;
}

uint64_t sim_local_now(const sim_world *w, const sim_node *nd)
{
    return local_of(nd, w->now);
}

/* Earliest global time at which the node's clock reads >= local. */
static uint64_t global_of(const sim_node *nd, uint64_t local)
{
    if (local <= nd->clk_off)
        return 0;
    uint64_t g = (uint64_t)((double)(local - nd->clk_off) * 1e6 / (1e6 + nd->drift_ppm));
    while (g > 0 && local_of(nd, g - 1) >= local)
        g--;
    while (local_of(nd, g) < local)
        g++;
    return g;
}

/* ---- node host ---- */

static void schedule_tick(sim_world *w, sim_node *nd)
{
    uint64_t dl = w->o.ops->next_deadline(nd->eng);
    if (!dl)
        return;
    uint64_t g = global_of(nd, dl);
    if (g <= w->now)
        g = w->now + 1;
    if (nd->tick_gen && nd->tick_at == g)
        return;
    nd->tick_at = g;
    sim_schedule(w, g, EV_TICK, nd->host, UINT32_MAX, ++nd->tick_gen, NULL, 0);
}

/* The reply's leader hint: the engine's for a reject (a transfer's
 * target, say), else who the node believes leads -- as the daemon's
 * reply_error and reply_frame do. */
#define SIM_HINT_STATUS (UINT32_MAX - 1)   /* not a node id, not SY_NO_NODE */
static void send_reply_hint(sim_world *w, sim_node *nd, uint32_t client, uint64_t req_no,
                            int status, uint64_t index, const uint8_t *val, size_t vlen,
                            uint32_t hint)
{
    sy_engine_status es = { .leader = SY_NO_NODE };
    if (hint == SIM_HINT_STATUS && nd->eng)
        w->o.ops->status(nd->eng, &es);
    sy_msg m = { .type = SY_MSG_CLIENT_REPLY };
    m.u.reply = (sy_client_reply){ .client_id = client, .req_no = req_no,
                                   .status = (uint8_t)status,
                                   .leader = hint == SIM_HINT_STATUS ? es.leader : hint,
                                   .index = index, .val = { val, (uint32_t)vlen } };
    sy_buf_reset(&w->scratch);
    int rc = sy_env_encode(SIM_CLUSTER_ID, nd->id, &m, &nd->signer, &w->scratch);
    if (rc) {
        sim_fail(w, "codec", "n%u could not encode a client reply: %s", nd->id, sy_strerror(rc));
        return;
    }
    sim_trace(w, TR_REPLY, nd->id, client, req_no, index, status);
    sim_net_send(w, nd->id, client, SY_MSG_CLIENT_REPLY, w->scratch.p, w->scratch.len);
}

static void send_reply(sim_world *w, sim_node *nd, uint32_t client, uint64_t req_no, int status,
                       uint64_t index, const uint8_t *val, size_t vlen)
{
    send_reply_hint(w, nd, client, req_no, status, index, val, vlen, SIM_HINT_STATUS);
}

static bool take_pend_req(sim_node *nd, uint32_t client, uint64_t req_no)
{
    for (size_t i = 0; i < nd->n_preq; i++) {
        if (nd->preq[i].client == client && nd->preq[i].req_no == req_no) {
            nd->preq[i] = nd->preq[--nd->n_preq];
            return true;
        }
    }
    return false;
}

static void add_pend_req(sim_node *nd, uint32_t client, uint64_t req_no, uint64_t now)
{
    for (size_t i = 0; i < nd->n_preq; i++)
        if (nd->preq[i].client == client && nd->preq[i].req_no == req_no)
            return;
    if (nd->n_preq == nd->cap_preq) {
        size_t nc = nd->cap_preq ? nd->cap_preq * 2 : 16;
        sim_pend_req *np = realloc(nd->preq, nc * sizeof *np);
        if (!np)
            return;  /* the client will time out and retry */
        nd->preq = np;
        nd->cap_preq = nc;
    }
    nd->preq[nd->n_preq++] = (sim_pend_req){ client, req_no, now };
}

static void reply_from(sim_world *w, sim_node *nd, const sy_client_reply *rp)
{
    send_reply(w, nd, rp->client_id, rp->req_no, rp->status, rp->index, rp->val.p, rp->val.len);
}

static void serve_reads(sim_world *w, sim_node *nd)
{
    for (size_t i = 0; i < nd->n_preads;) {
        sim_pend_read *r = &nd->preads[i];
        if (!r->have_index || r->index > nd->applied) {
            i++;
            continue;
        }
        sy_client_req q = { .client_id = r->client, .req_no = r->req_no, .op = SY_OP_GET,
                            .key = { r->key, r->klen } };
        sy_kv_results res;
        int rc = sy_kv_read(&nd->kvm, &q, &res);
        if (rc == SY_OK && res.n == 1)
            reply_from(w, nd, &res.replies[0]);
        else if (sim_disk_detected(w, nd, rc, "stopped serving a read"))
            return;  /* nd is down: its pending reads are gone */
        else
            sim_fail(w, "storage", "n%u could not serve a read: %s", nd->id, sy_strerror(rc));
        if (rc == SY_OK)
            sy_kv_results_free(&res);
        *r = nd->preads[--nd->n_preads];
    }
}

/* engine.h: a node only reports commits of entries it has persisted, so a
 * committed index must be in this node's durable log (or below its
 * compaction point). The bytes may differ: an engine may keep its own
 * framing in the log (Paxos stores the accepting ballot and the origin). */
static void check_commit_durable(sim_world *w, sim_node *nd, const sy_entry *e)
{
    sy_txn t;
    if (sy_txn_begin(nd->st, false, &t))
        return;
    sy_entry se;
    int rc = sy_txn_entry(&t, e->index, &se);
    if (rc == SY_ENOTFOUND)
        sim_fail(w, "durable-commit", "n%u committed index %" PRIu64 " which is not in its "
                 "durable log", nd->id, e->index);
    else if (rc == SY_ECORRUPT) /* every log entry was read at boot: never corrupt now */
        sim_fail(w, "storage", "n%u committed index %" PRIu64 " but its log says: %s", nd->id,
                 e->index, sy_storage_errmsg(nd->st));
    sy_txn_abort(&t);
}

/* Checks on one committed entry, once its application is durable: commit
 * order, agreement, validity of every request in it, exactly-once; then
 * replies to the clients whose requests this node received. */
static void check_and_reply(sim_world *w, sim_node *nd, const sy_committed *c,
                            const sy_kv_results *res)
{
    const sy_entry *e = &c->entry;
    if (e->index != nd->applied + 1 && !nd->byz) {
        sim_fail(w, "commit-order", "n%u committed index %" PRIu64 " after applying %" PRIu64,
                 nd->id, e->index, nd->applied);
        return;
    }
    sim_trace(w, TR_COMMIT, nd->id, UINT32_MAX, e->index, e->term, 0);
    if (!nd->byz) {
        sim_check_commit(w, nd, e);
        check_commit_durable(w, nd, e);
    }
    if (w->stop)
        return;
    if (e->type == SY_ENTRY_NORMAL && !nd->byz) {
        sy_bytes *reqs = NULL;
        uint32_t nreq = 0;
        int rc = sy_batch_decode(e->data.p, e->data.len, &reqs, &nreq);
        if (rc) {
            sim_fail(w, "validity", "n%u committed index %" PRIu64 " whose batch does not "
                     "decode: %s", nd->id, e->index, sy_strerror(rc));
            return;
        }
        for (uint32_t i = 0; i < nreq && !w->stop; i++) {
            sy_env env;
            const char *why = NULL;
            w->st->chk_validity++;
            rc = sy_env_decode(&w->envo, reqs[i].p, reqs[i].len, &env, &why);
            if (rc) {
                sim_fail(w, "validity", "n%u committed index %" PRIu64 " holding a request "
                         "that fails verification: %s", nd->id, e->index, why ? why : "?");
                break;
            }
            const sy_client_req *rq = &env.msg.u.req;
            sy_digest dg;
            sy_hash(reqs[i].p, reqs[i].len, &dg);
            sim_sub *sub = env.type == SY_MSG_CLIENT_REQ && env.sender >= SY_CLIENT_ID_BASE &&
                                   rq->client_id == env.sender
                               ? sim_sub_of(w, rq->client_id, rq->req_no)
                               : NULL;
            if (!sub || !sub->submitted || !sy_digest_eq(&dg, &sub->env_digest))
                sim_fail(w, "validity", "n%u committed index %" PRIu64 " holding a request "
                         "no client submitted (sender %u type %u)", nd->id, e->index,
                         env.sender, env.type);
            sy_env_free(&env);
        }
        free(reqs);
    }
    /* a reply whose index is this entry's took effect here; a retry of an
     * applied request gets the cached reply, which names the first index */
    for (size_t j = 0; j < res->n && !w->stop; j++) {
        const sy_client_reply *rp = &res->replies[j];
        sim_sub *sub = sim_sub_of(w, rp->client_id, rp->req_no);
        if (!sub)
            continue;
        bool effective = rp->index == e->index && rp->status != SY_ESTALE;
        if (effective && !nd->byz) {
            w->st->chk_exactly_once++;
            if (sub->applied_index && sub->applied_index != e->index) {
                sim_fail(w, "exactly-once", "n%u applied client %u request %" PRIu64
                         " at index %" PRIu64 ", but it already took effect at index %" PRIu64,
                         nd->id, rp->client_id - SY_CLIENT_ID_BASE, rp->req_no, e->index,
                         sub->applied_index);
                break;
            }
            sub->applied_index = e->index;
        }
        sim_trace(w, TR_APPLY, nd->id, rp->client_id, rp->req_no, e->index, rp->status);
        if (rp->status != SY_ESTALE && take_pend_req(nd, rp->client_id, rp->req_no))
            reply_from(w, nd, rp);
    }
    nd->applied = e->index;
    nd->applied_term = e->term;
}

/* As the daemon (cmd/synod/runtime.c, answer_from_session): a request
 * this node applied already is answered from its session table at once,
 * the cached reply (which names the index it took effect at), or
 * SY_ESTALE for an older req_no -- Castro & Liskov 4.1: "if the request
 * has already been processed, the replicas simply re-send the reply".
 * Without it a PBFT client whose first replies were lost waited for a
 * Byzantine primary to order the request again, which it need not do,
 * and backups do not watch a request they executed. */
static bool answer_from_session(sim_world *w, sim_node *nd, uint32_t client, uint64_t req_no)
{
    sy_kv_results cached;
    memset(&cached, 0, sizeof cached);
    int src = sy_kv_session_reply(&nd->kvm, client, req_no, &cached);
    bool done = false;
    /* the daemon reads committed LMDB state: an apply it still holds is
     * not there yet (the re-check below answers it later) */
    if (src == SY_OK && cached.n == 1 && cached.replies[0].index > nd->visible_applied) {
        sy_kv_results_free(&cached);
        return false;
    }
    if (src == SY_OK && cached.n == 1) {
        reply_from(w, nd, &cached.replies[0]);
        done = true;
    } else if (src == SY_ESTALE) {
        send_reply(w, nd, client, req_no, SY_ESTALE, 0, NULL, 0);
        done = true;
    }
    sy_kv_results_free(&cached);
    if (done)
        w->st->session_replies++;
    return done;
}

/* As the daemon's expire_waiters (cmd/synod/runtime.c): a request still
 * pending after 1 s may have been executed without this node answering
 * it -- it arrived while its apply was held (not yet readable), or a
 * state install executed it: the session table says. */
#define SIM_PENDING_RECHECK_MS 1000u
static void recheck_pending(sim_world *w, sim_node *nd)
{
    if (!nd->eng)
        return;
    for (size_t i = 0; i < nd->n_preq;) {
        sim_pend_req *p = &nd->preq[i];
        if (w->now - p->since > SIM_PENDING_RECHECK_MS &&
            answer_from_session(w, nd, p->client, p->req_no)) {
            nd->preq[i] = nd->preq[--nd->n_preq];
            continue;
        }
        i++;
    }
}

static void handle_input(sim_world *w, sim_node *nd, const sim_input *in)
{
    const sy_engine_ops *ops = w->o.ops;
    sy_input si = { .now_ms = sim_local_now(w, nd) };
    if (!in->data) {
        si.kind = SY_IN_TICK;
    } else {
        sy_env env;
        const char *why = NULL;
        int rc = sy_env_decode(&w->envo, in->data, in->len, &env, &why);
        if (rc) {
            w->st->msgs_rejected++;
            sim_trace(w, TR_REJECT_ENV, in->from, nd->id, 0, 0, rc);
            return;
        }
        if (env.sender >= SY_CLIENT_ID_BASE) {
            const sy_client_req *rq = &env.msg.u.req;
            if (env.type != SY_MSG_CLIENT_REQ || rq->client_id != env.sender) {
                sy_env_free(&env);
                return;
            }
            sim_trace(w, TR_REQ, env.sender, nd->id, rq->req_no, rq->op, 0);
            if (rq->op == SY_OP_GET && !(rq->flags & (SY_REQ_STALE_OK | SY_REQ_ORDERED)) &&
                rq->key.len <= sizeof nd->preads[0].key) {
                if (nd->n_preads == nd->cap_preads) {
                    size_t nc = nd->cap_preads ? nd->cap_preads * 2 : 16;
                    sim_pend_read *np = realloc(nd->preads, nc * sizeof *np);
                    if (!np) {
                        sy_env_free(&env);
                        return;
                    }
                    nd->preads = np;
                    nd->cap_preads = nc;
                }
                sim_pend_read *r = &nd->preads[nd->n_preads++];
                memset(r, 0, sizeof *r);
                r->read_id = ++nd->next_read_id;
                r->client = rq->client_id;
                r->req_no = rq->req_no;
                r->klen = rq->key.len;
                memcpy(r->key, rq->key.p, rq->key.len);
                si.kind = SY_IN_READ;
                si.u.read.read_id = r->read_id;
            } else {
                if (answer_from_session(w, nd, rq->client_id, rq->req_no)) {
                    sy_env_free(&env);
                    return;
                }
                add_pend_req(nd, rq->client_id, rq->req_no, w->now);
                si.kind = SY_IN_REQUEST;
                si.u.request.req = rq;
                si.u.request.raw = in->data;
                si.u.request.raw_len = in->len;
            }
        } else {
            si.kind = SY_IN_MSG;
            si.u.msg.from = env.sender;
            si.u.msg.msg = &env.msg;
            si.u.msg.raw = in->data;
            si.u.msg.raw_len = in->len;
        }
        rc = ops->step(nd->eng, &si);
        sy_env_free(&env);
        if (rc == SY_EFATAL)
            sim_fail(w, "engine-fatal", "n%u engine reported an impossible state on input "
                     "from %u", nd->id, in->from);
        return;
    }
    if (ops->step(nd->eng, &si) == SY_EFATAL)
        sim_fail(w, "engine-fatal", "n%u engine reported an impossible state on a tick",
                 nd->id);
}

/* ---- handoff (opt-in fault) ---- */

#define SIM_HANDOFF_PCT 30u
#define SIM_HANDOFF_DELAY_MAX_MS 2000u

/* nd has just become leader or primary: maybe ask it to hand over later */
static void handoff_on_leader(sim_world *w, sim_node *nd)
{
    if (!(w->o.faults & SY_FAULT_HANDOFF) || w->calm || nd->host >= w->n ||
        sy_rng_below(&w->rng, 100) >= SIM_HANDOFF_PCT)
        return;
    sim_schedule(w, w->now + sy_rng_range(&w->rng, 1, SIM_HANDOFF_DELAY_MAX_MS), EV_HANDOFF,
                 nd->host, UINT32_MAX, nd->incarnation, NULL, 0);
}

/* Whether a node steps input while its write is in flight: pipelined
 * engines may take it (sy_engine_ops.pipelined), and do on three seeds in
 * four; on the fourth they wait as the daemon does now (it writes in line
 * on its event loop), so both orders are explored. */
static bool sim_steps_while_busy(const sim_world *w)
{
    return w->o.ops->pipelined && w->o.seed % 4 != 3;
}

/* EV_HANDOFF: the operator's transfer, as synod steps it on SIGTERM (the
 * node goes on running here; crashes come from the crash fault) */
static void handoff(sim_world *w, sim_node *nd, uint64_t gen)
{
    if (w->calm || w->stop || !nd->up || !nd->eng || nd->incarnation != gen)
        return;
    if (nd->paused || (nd->busy && !sim_steps_while_busy(w))) {
        /* stopped; or a plain engine with a write in flight takes no input */
        sim_schedule(w, w->now + 10, EV_HANDOFF, nd->host, UINT32_MAX, gen, NULL, 0);
        return;
    }
    sy_engine_status es = { 0 };
    w->o.ops->status(nd->eng, &es);
    if (es.role != SY_ROLE_LEADER && es.role != SY_ROLE_PRIMARY)
        return;
    sy_input si = { .kind = SY_IN_TRANSFER, .now_ms = sim_local_now(w, nd) };
    si.u.transfer.target = SY_NO_NODE;
    int rc = w->o.ops->step(nd->eng, &si);
    if (rc == SY_EFATAL) {
        sim_fail(w, "engine-fatal", "n%u engine failed on a leadership transfer", nd->id);
        return;
    }
    if (rc == SY_OK) {
        w->st->handoffs++;
        if (!nd->handoff_at)
            nd->handoff_at = w->now;
    }
    if (nd->busy)
        nd->stepped_busy = true;
    else
        sim_node_pump(w, nd);
}

/* The daemon's LMDB commit: everything the node wrote becomes durable. */
static void full_sync(sim_world *w, sim_node *nd)
{
    sy_storage_mem_sync_all(nd->st);
    nd->last_full_sync = w->now;
    nd->visible_applied = nd->applied;
}

void sim_node_fsynced(sim_world *w, sim_node *nd)
{
    if (nd->full_sync_due || w->now - nd->last_full_sync >= SIM_HOLD_MS)
        full_sync(w, nd);
    else
        sy_storage_mem_sync(nd->st);
    nd->txn_pending = false;
    nd->full_sync_due = false;
}

/* The second half of a snapshot, as the daemon's snapshot thread ends it:
 * the blob captured at snap_at is stored (its own durable transaction) and
 * the engine told. */
static void snapshot_done(sim_world *w, sim_node *nd)
{
    uint8_t *blob = nd->snap_blob;
    size_t len = nd->snap_len;
    uint64_t at = nd->snap_at, term = nd->snap_term;
    nd->snap_blob = NULL;
    nd->snap_busy = false;
    sy_members m = { .n_voters = w->n };
    for (uint32_t i = 0; i < w->n; i++)
        m.voters[i] = i;
    sy_txn t;
    int rc;
    if ((rc = sy_txn_begin(nd->st, true, &t)) == SY_OK) {
        rc = strcmp(w->o.ops->name, "pbft") == 0
                 ? sy_txn_checkpoint_snapshot(&t, at, term, &m, (sy_bytes){ blob, (uint32_t)len })
                 : sy_txn_local_snapshot(&t, at, term, &m, (sy_bytes){ blob, (uint32_t)len });
        rc = rc ? (sy_txn_abort(&t), rc) : sy_txn_commit(&t);
    }
    if (rc == SY_ESTALE) {
        /* an install (PBFT: or a later stable checkpoint) committed
         * meanwhile: the daemon drops it too */
        free(blob);
        if (at > nd->last_snap)
            nd->last_snap = at;
        w->st->snapshots_dropped++;
        return;
    }
    if (rc) {
        free(blob);
        if (!sim_disk_detected(w, nd, rc, "stopped storing a snapshot"))
            sim_fail(w, "storage", "n%u could not store a snapshot: %s (%s)", nd->id,
                     sy_strerror(rc), sy_storage_errmsg(nd->st));
        return;
    }
    /* the daemon's snapshot write is one durable transaction of its own */
    full_sync(w, nd);
    sy_input si = { .kind = SY_IN_SNAPSHOT, .now_ms = sim_local_now(w, nd) };
    si.u.snapshot.index = at;
    si.u.snapshot.term = term;
    si.u.snapshot.data = (sy_bytes){ blob, (uint32_t)len };
    rc = w->o.ops->step(nd->eng, &si);
    free(blob);
    if (rc == SY_EFATAL)
        sim_fail(w, "engine-fatal", "n%u engine failed on a host snapshot", nd->id);
    if (at > nd->last_snap)
        nd->last_snap = at;
    w->st->snapshots++;
    sim_trace(w, TR_SNAPSHOT, nd->id, UINT32_MAX, at, term, 0);
}

/* As the daemon: the state at `applied` is captured now (the daemon opens
 * a read transaction after committing what it held), the rest happens on
 * its snapshot thread, which the simulator models as a delay of 0-300 ms
 * for odd seeds (even seeds: at once, as the daemon did before session 8).
 * One at a time: a PBFT checkpoint due while one is under way first waits
 * for it (finish); a Raft or Paxos snapshot is simply not taken then. */
static void take_snapshot(sim_world *w, sim_node *nd)
{
    if (nd->snap_busy)
        snapshot_done(w, nd);
    if (!nd->up || w->stop)
        return;
    uint8_t *blob = NULL;
    size_t len = 0;
    full_sync(w, nd);   /* the daemon commits what it held first */
    int rc = sy_kv_snapshot(&nd->kvm, &blob, &len);
    if (rc) {
        if (!sim_disk_detected(w, nd, rc, "stopped taking a snapshot"))
            sim_fail(w, "storage", "n%u could not take a snapshot: %s", nd->id,
                     sy_strerror(rc));
        return;
    }
    nd->snap_busy = true;
    nd->snap_at = nd->applied;
    nd->snap_term = nd->applied_term;
    nd->snap_blob = blob;
    nd->snap_len = len;
    uint64_t delay = w->o.seed % 2 ? sy_rng_below(&w->rng, 301) : 0;
    if (!delay) {
        snapshot_done(w, nd);
        return;
    }
    sim_schedule(w, w->now + delay, EV_SNAP_DONE, nd->host, UINT32_MAX, nd->incarnation, NULL, 0);
}

/* As the daemon (cmd/synod/runtime.c step_sessions): after an install the
 * engine learns the installed state's client sessions. */
static void step_sessions(sim_world *w, sim_node *nd, uint64_t index)
{
    sy_session_rec *recs;
    size_t n;
    uint64_t applied;
    int rc = sy_kv_sessions(&nd->kvm, &recs, &n, &applied);
    if (rc) {
        if (!sim_disk_detected(w, nd, rc, "stopped reading its sessions"))
            sim_fail(w, "storage", "n%u could not read its client sessions: %s", nd->id,
                     sy_strerror(rc));
        return;
    }
    sy_input si = { .kind = SY_IN_SESSIONS, .now_ms = sim_local_now(w, nd) };
    si.u.sessions.index = index;
    si.u.sessions.recs = recs;
    si.u.sessions.n = n;
    rc = w->o.ops->step(nd->eng, &si);
    free(recs);
    if (rc == SY_EFATAL)
        sim_fail(w, "engine-fatal", "n%u engine failed on the installed sessions", nd->id);
}

static void maybe_snapshot(sim_world *w, sim_node *nd)
{
    uint32_t every = w->o.snapshot_every ? w->o.snapshot_every : SIM_SNAPSHOT_EVERY;
    if (every == UINT32_MAX || nd->applied < nd->last_snap + every || nd->snap_busy)
        return;
    take_snapshot(w, nd);
}

static void free_results(sim_node *nd)
{
    for (size_t i = 0; i < nd->n_res; i++)
        sy_kv_results_free(&nd->res[i]);
    free(nd->res);
    nd->res = NULL;
    nd->n_res = 0;
}

/* As the daemon (cmd/synod/runtime.c, early_replies): clients whose
 * requests are in committed entries durable before this write get their
 * replies as soon as the results are computed, before the write's fsync;
 * a crash in between must lose no acknowledged write. */
static void early_replies(sim_world *w, sim_node *nd)
{
    const sy_ready *rd = &nd->own.rd;
    if (rd->snapshot_install || !nd->res)
        return;
    uint64_t upto = UINT64_MAX;
    if (rd->n_entries)
        upto = rd->entries[0].index - 1;
    if (rd->truncate_from && rd->truncate_from - 1 < upto)
        upto = rd->truncate_from - 1;
    for (size_t i = 0; i < rd->n_committed && !w->stop; i++) {
        if (rd->committed[i].entry.index > upto)
            break;
        const sy_kv_results *res = &nd->res[i];
        for (size_t j = 0; j < res->n && !w->stop; j++) {
            const sy_client_reply *rp = &res->replies[j];
            if (rp->status != SY_ESTALE && take_pend_req(nd, rp->client_id, rp->req_no))
                reply_from(w, nd, rp);
        }
    }
}

/* Applies one committed entry, and then, as the daemon does (after its
 * answers, cmd/synod/runtime.c), signs the commit record the engine asks
 * for (core/engine.h) into the block just written, in the same
 * transaction. */
static int sim_apply(sim_node *nd, sy_txn *t, const sy_committed *c, sy_kv_results *res)
{
    int rc = sy_kv_apply(&nd->kvm, t, c, res);
    uint8_t ev[SY_ATTEST_LEN];
    if (rc || !res->block || !sy_committed_attest(c, SIM_CLUSTER_ID, nd->id, &nd->signer, ev))
        return rc;
    return sy_ledger_set_evidence(t, res->height, (sy_bytes){ev, sizeof ev});
}

/* Step 1 of the host loop, as the daemon does it: persist the ready and
 * apply its committed entries. The writes are made now and become durable
 * when the simulated fsync completes -- except, as with the daemon's
 * write-ahead log (docs/storage.md), the applies: `wal` puts them in a
 * transaction of their own that stays unsynced until the node's next full
 * sync (snapshot, snapshot install, compaction, checkpoint, or SIM_HOLD_MS
 * later), so a crash in between keeps the log and hard state and loses the
 * applied state, which the restart re-applies from the log. Without `wal`
 * (snapshot install, compaction, checkpoint: the daemon commits LMDB for
 * those) everything is one transaction. */
static int persist_and_apply(sim_world *w, sim_node *nd, bool wal)
{
    (void)w;
    const sy_ready *rd = &nd->own.rd;
    if (rd->n_committed && !(nd->res = calloc(rd->n_committed, sizeof *nd->res)))
        return SY_ENOMEM;
    nd->n_res = rd->n_committed;
    sy_txn t;
    int rc = sy_txn_begin(nd->st, true, &t);
    if (rc)
        return rc;
    if ((rc = sy_txn_persist_ready(&t, rd)))
        goto err_abort;
    if (rd->snapshot_install &&
        (rc = sy_kv_restore(&nd->kvm, &t, rd->snap_data.p, rd->snap_data.len)))
        goto err_abort;
    /* With a snapshot install, the entries committed past it are applied
     * once the install is checked (finish): the checks read the state the
     * blob installed. The daemon applies them in the same transaction;
     * both become durable together here too (full sync). */
    if (rd->snapshot_install)
        return sy_txn_commit(&t);
    if (wal && rd->n_committed) {
        if ((rc = sy_txn_commit(&t)) || (rc = sy_txn_begin(nd->st, true, &t)))
            return rc;
    }
    for (size_t i = 0; i < rd->n_committed; i++)
        if ((rc = sim_apply(nd, &t, &rd->committed[i], &nd->res[i])))
            goto err_abort;
    if (wal && rd->n_committed)
        sy_storage_mem_defer_next(nd->st);
    return sy_txn_commit(&t);
err_abort:
    sy_txn_abort(&t);
    return rc;
}


static void free_frames(sim_node *nd)
{
    for (size_t i = 0; i < nd->n_frames; i++) {
        free(nd->frames[i].data);
        free(nd->frames[i].said);
    }
    nd->n_frames = 0;
}

/* The PBFT statements a message carries in its sender's name: a
 * PRE-PREPARE, PREPARE or COMMIT, or the pre-prepares of a NEW-VIEW.
 * *out owned by the caller (NULL when none). */
static uint32_t statements_of(const sy_msg *m, sim_said **out)
{
    *out = NULL;
    if (m->type >= SY_MSG_PBFT_PRE_PREPARE && m->type <= SY_MSG_PBFT_COMMIT) {
        const sy_pbft_stmt *st = &m->u.pbft.stmt;
        if (!(*out = malloc(sizeof **out)))
            return 0;
        (*out)[0] = (sim_said){ m->type, st->view, st->seq, st->digest };
        return 1;
    }
    if (m->type == SY_MSG_PBFT_NEW_VIEW && m->u.pbft.nv.n_o) {
        const sy_pbft_new_view *nv = &m->u.pbft.nv;
        if (!(*out = calloc(nv->n_o, sizeof **out)))
            return 0;
        for (uint32_t k = 0; k < nv->n_o; k++)
            (*out)[k] = (sim_said){ SY_MSG_PBFT_PRE_PREPARE, nv->view, nv->o[k].seq,
                                    nv->o[k].digest };
        return nv->n_o;
    }
    return 0;
}

/* no-equivocation: a correct replica never sends statements for two
 * digests at one (phase, view, seq) -- across its crashes too (PBFT's
 * restart guard and its log of own statements, docs/pbft.md). The table
 * is direct-mapped: a pair pushed out of it is no longer compared. */
static void check_said(sim_world *w, sim_node *nd, const sim_said *s, uint32_t n)
{
    if (nd->byz || !nd->said)
        return;
    for (uint32_t i = 0; i < n && !w->stop; i++) {
        uint64_t hsh = (s[i].view * 0x9e3779b97f4a7c15ull) ^ (s[i].seq * 0xc2b2ae3d27d4eb4full) ^
                       s[i].type;
        sim_said *e = &nd->said[(hsh ^ hsh >> 29) % SIM_SAID_SLOTS];
        if (e->type == s[i].type && e->view == s[i].view && e->seq == s[i].seq &&
            !sy_digest_eq(&e->d, &s[i].d)) {
            char a[17], b[17];
            sy_digest_hex(&e->d, 8, a);
            sy_digest_hex(&s[i].d, 8, b);
            sim_fail(w, "no-equivocation", "n%u sent %s (view %" PRIu64 ", seq %" PRIu64
                     ") for digest %s and for %s", nd->id, sy_msg_type_name(s[i].type),
                     s[i].view, s[i].seq, a, b);
            return;
        }
        *e = s[i];
        w->st->chk_said++;
    }
}

/* A node id that may be accused: a Byzantine node, a mutant, an identity
 * with a twin, or a node whose disk was corrupted (undetected corruption
 * can make a node say what it did not say before). */
static bool may_be_accused(const sim_world *w, uint32_t id)
{
    if (id >= w->n)
        return false;
    const sim_node *nd = &w->nodes[id];
    return nd->byz || nd->mutant || nd->corrupt || nd->dead || w->twin_of[id] != UINT32_MAX;
}

/* no-false-accusation: what a correct replica's engine names as faulty --
 * the replica behind evidence (two conflicting statements it signed), behind
 * a statement that does not verify, or the pair behind a vote against the
 * pre-prepare it accepted (the voter or that view's primary) -- is a faulty
 * node. Checked after every input, for every replica the engine's
 * per-replica counts (sy_accused) say it named since the last. */
static void check_accusations(sim_world *w, sim_node *nd)
{
    if (nd->byz || nd->corrupt || nd->dead || !nd->eng)
        return;
    w->st->chk_accused++;
    sy_engine_status es = { 0 };
    w->o.ops->status(nd->eng, &es);
    /* the status counters only say whether anything was named; whom, the
     * per-replica counts say -- every replica named since the last input,
     * not only the latest (one input, a pre-prepare finding several
     * dissenting votes stored, may name several). The dissent of a
     * correct voter is right only when the primary of its view lies; one
     * input's dissent is all in one slot, so one view, whose primary the
     * status names. */
    bool moved = es.evidence != nd->seen_evidence || es.bad_sigs != nd->seen_bad_sigs ||
                 es.dissent != nd->seen_dissent;
    if (moved && w->o.ops->accused && !w->stop) {
        sy_accused a;
        w->o.ops->accused(nd->eng, &a);
        for (uint32_t i = 0; i < w->n && !w->stop; i++) {
            if (a.evidence[i] > nd->seen_accused.evidence[i] && !may_be_accused(w, i))
                sim_fail(w, "no-false-accusation", "n%u recorded evidence against correct node "
                         "n%u", nd->id, i);
            else if (a.bad_sigs[i] > nd->seen_accused.bad_sigs[i] && !may_be_accused(w, i))
                sim_fail(w, "no-false-accusation", "n%u found a statement of correct node n%u "
                         "that does not verify", nd->id, i);
            else if (a.dissent[i] > nd->seen_accused.dissent[i] && !may_be_accused(w, i) &&
                     !may_be_accused(w, es.dissent_primary))
                sim_fail(w, "no-false-accusation", "n%u saw correct node n%u vote against the "
                         "pre-prepare of correct primary n%u", nd->id, i, es.dissent_primary);
        }
        nd->seen_accused = a;
    }
    nd->seen_evidence = es.evidence;
    nd->seen_bad_sigs = es.bad_sigs;
    nd->seen_dissent = es.dissent;
}

static void send_frame(sim_world *w, sim_node *nd, uint32_t to, uint8_t type,
                       const uint8_t *data, size_t len)
{
    sim_trace(w, TR_SEND, nd->id, to, type, 0, 0);
    sim_net_send(w, nd->id, to, type, data, len);
}

/* Encodes the engine's messages as soon as the ready is taken: the early
 * ones leave at once (before the write is durable, so a crash in between
 * is exercised), the rest are kept as frames until the write is durable. */
static void take_msgs(sim_world *w, sim_node *nd, const sy_ready *rd)
{
    for (size_t i = 0; i < rd->n_msgs && !w->stop; i++) {
        const sy_outmsg *om = &rd->msgs[i];
        sim_said *said = NULL;
        uint32_t n_said = nd->said ? statements_of(&om->msg, &said) : 0;
        if (om->to >= w->n || om->to == nd->id) {
            sim_fail(w, "engine", "n%u sent a message to invalid node %u", nd->id, om->to);
            break;
        }
        sy_buf_reset(&w->scratch);
        int rc = sy_env_encode(SIM_CLUSTER_ID, nd->id, &om->msg, &nd->signer, &w->scratch);
        if (rc) {
            sim_fail(w, "codec", "n%u produced a %s message the codec refuses: %s", nd->id,
                     sy_msg_type_name(om->msg.type), sy_strerror(rc));
            break;
        }
        if (om->early) {
            check_said(w, nd, said, n_said);
            free(said);
            send_frame(w, nd, om->to, om->msg.type, w->scratch.p, w->scratch.len);
            continue;
        }
        if (nd->n_frames == nd->cap_frames) {
            size_t nc = nd->cap_frames ? nd->cap_frames * 2 : 16;
            sim_frame *nf = realloc(nd->frames, nc * sizeof *nf);
            if (!nf) {
                sim_fail(w, "memory", "n%u: out of memory keeping frames", nd->id);
                free(said);
                break;
            }
            nd->frames = nf;
            nd->cap_frames = nc;
        }
        uint8_t *copy = malloc(w->scratch.len);
        if (!copy) {
            sim_fail(w, "memory", "n%u: out of memory keeping frames", nd->id);
            free(said);
            break;
        }
        memcpy(copy, w->scratch.p, w->scratch.len);
        nd->frames[nd->n_frames++] = (sim_frame){ om->to, om->msg.type, copy, w->scratch.len,
                                                  said, n_said };
    }
}

static void finish(sim_world *w, sim_node *nd)
{
    const sy_engine_ops *ops = w->o.ops;
    sy_ready *rd = &nd->own.rd;
    if (nd->txn_pending)
        sim_node_fsynced(w, nd);
    nd->busy = false;
    if (rd->snapshot_install) {
        uint64_t in_blob = 0;
        if (sy_kv_applied(&nd->kvm, &in_blob) == SY_OK && in_blob != rd->snap_index) {
            sim_fail(w, "snapshot", "n%u installed a snapshot labelled index %" PRIu64
                     " whose state is at index %" PRIu64, nd->id, rd->snap_index, in_blob);
            return;
        }
        nd->applied = rd->snap_index;
        nd->applied_term = rd->snap_term;
        nd->last_snap = rd->snap_index;
        w->st->installs++;
        sim_trace(w, TR_SNAPSHOT, nd->id, UINT32_MAX, rd->snap_index, rd->snap_term, 0);
        sim_check_applied(w, nd, nd->applied);
        if (!nd->up)  /* it found its disk corrupt and stopped */
            return;
        if (rd->n_committed && nd->res) {
            sy_txn t;
            int rc = sy_txn_begin(nd->st, true, &t);
            for (size_t i = 0; rc == SY_OK && i < rd->n_committed; i++)
                rc = sim_apply(nd, &t, &rd->committed[i], &nd->res[i]);
            rc = rc ? (sy_txn_abort(&t), rc) : sy_txn_commit(&t);
            if (rc) {
                if (!sim_disk_detected(w, nd, rc, "stopped"))
                    sim_fail(w, "storage", "n%u storage write failed: %s (%s)", nd->id,
                             sy_strerror(rc), sy_storage_errmsg(nd->st));
                return;
            }
            full_sync(w, nd);
        }
    }
    /* durable: now the messages that depend on it may leave */
    for (size_t i = 0; i < nd->n_frames && !w->stop; i++) {
        check_said(w, nd, nd->frames[i].said, nd->frames[i].n_said);
        send_frame(w, nd, nd->frames[i].to, nd->frames[i].type, nd->frames[i].data,
                   nd->frames[i].len);
    }
    free_frames(nd);
    uint64_t before = nd->applied;
    for (size_t i = 0; i < rd->n_committed && !w->stop; i++) {
        if (nd->res && nd->res[i].skipped)
            continue;
        check_and_reply(w, nd, &rd->committed[i], &nd->res[i]);
    }
    free_results(nd);
    if (nd->applied != before && !w->stop)
        sim_check_applied(w, nd, nd->applied);
    if (!nd->up)
        return;
    for (size_t i = 0; i < rd->n_reads && !w->stop; i++) {
        const sy_read_state *rs = &rd->reads[i];
        for (size_t j = 0; j < nd->n_preads; j++) {
            sim_pend_read *r = &nd->preads[j];
            if (r->read_id != rs->read_id)
                continue;
            if (rs->status != SY_OK) {
                send_reply(w, nd, r->client, r->req_no, rs->status, 0, NULL, 0);
                *r = nd->preads[--nd->n_preads];
            } else {
                r->index = rs->index;
                r->have_index = true;
            }
            break;
        }
    }
    for (size_t i = 0; i < rd->n_rejects && !w->stop; i++) {
        const sy_reject *rj = &rd->rejects[i];
        if (take_pend_req(nd, rj->client_id, rj->req_no))
            send_reply_hint(w, nd, rj->client_id, rj->req_no, rj->status, 0, NULL, 0,
                            rj->leader);
    }
    if (w->stop)
        return;
    if (rd->checkpoint_index)
        nd->ckpt_pending = rd->checkpoint_index;
    bool installed = rd->snapshot_install;
    uint64_t installed_at = rd->snap_index;
    ops->advance(nd->eng, sim_local_now(w, nd));
    sy_ready_owned_free(&nd->own);
    if (installed)
        step_sessions(w, nd, installed_at);
    serve_reads(w, nd);
    if (!nd->up)
        return;
    /* as the daemon: PBFT checkpoints want a snapshot of exactly the
     * checkpointed state, taken when applied reaches it */
    bool ckpt = false;
    if (nd->ckpt_pending && nd->applied == nd->ckpt_pending) {
        nd->ckpt_pending = 0;
        take_snapshot(w, nd);
        ckpt = true;
    } else if (!nd->ckpt_pending && strcmp(ops->name, "pbft") != 0) {
        maybe_snapshot(w, nd);
    }
    if (!nd->up)
        return;

    sy_engine_status es;
    ops->status(nd->eng, &es);
    /* as the daemon: the mark goes once the engine says it caught up
     * (after advance, so what it caught up to is durable) */
    if (nd->rejoin_mark && !es.rejoining)
        nd->rejoin_mark = false;
    if (nd->replaced && !nd->rejoin_mark && nd->applied >= nd->replace_target) {
        nd->replaced = false;
        w->st->rejoined++;
        sim_trace(w, TR_REJOINED, nd->id, UINT32_MAX, nd->applied, 0, 0);
    }
    if (nd->handoff_at && es.leader != SY_NO_NODE && es.leader != nd->id &&
        (es.role == SY_ROLE_FOLLOWER || es.role == SY_ROLE_BACKUP)) {
        /* what synod waits for before it stops (runtime.c handoff_done) */
        w->st->handoffs_done++;
        w->st->handoff_ms += w->now - nd->handoff_at;
        nd->handoff_at = 0;
    } else if (nd->handoff_at && (es.role == SY_ROLE_LEADER || es.role == SY_ROLE_PRIMARY) &&
               w->now >= nd->handoff_at + 10u * SIM_HANDOFF_DELAY_MAX_MS) {
        nd->handoff_at = 0;   /* gave up (Paxos, Raft) and leads on */
    }
    if (es.role != nd->last_role) {
        nd->last_role = es.role;
        sim_trace(w, TR_ROLE, nd->id, UINT32_MAX, es.role, es.term, 0);
        if (es.role == SY_ROLE_LEADER)
            sim_churn_on_leader(w, nd);
        if (es.role == SY_ROLE_LEADER || es.role == SY_ROLE_PRIMARY)
            handoff_on_leader(w, nd);
    }
    if (es.leader_changes > nd->leader_changes)
        nd->leader_changes = es.leader_changes;
    schedule_tick(w, nd);
    if ((nd->in_n || ckpt || nd->stepped_busy) && !nd->pump_queued) {
        nd->stepped_busy = false;
        nd->pump_queued = true;
        sim_schedule(w, w->now, EV_PUMP, nd->host, UINT32_MAX, nd->incarnation, NULL, 0);
    }
}

void sim_node_pump(sim_world *w, sim_node *nd)
{
    const sy_engine_ops *ops = w->o.ops;
    if (!nd->up || nd->paused || w->stop || (nd->busy && !sim_steps_while_busy(w)))
        return;
    /* as the daemon's loop: the batch of input, then a tick -- after
     * every batch, due or not (an engine must take a tick at any time) */
    uint64_t dl = ops->next_deadline(nd->eng);
    bool stepped = false;
    while (nd->in_n && !w->stop) {
        sim_input in = nd->inbox[nd->in_head];
        nd->in_head = (nd->in_head + 1) % SIM_INBOX_MAX;
        nd->in_n--;
        handle_input(w, nd, &in);
        free(in.data);
        stepped = true;
        if (w->bft)
            check_accusations(w, nd);
    }
    if (!w->stop && (stepped || (dl && dl <= sim_local_now(w, nd)))) {
        sim_input tick = { .from = nd->id };
        handle_input(w, nd, &tick);
        if (w->bft)
            check_accusations(w, nd);
    }
    if (nd->busy) {   /* pipelined: stepped; the ready waits for advance */
        nd->stepped_busy = true;
        return;
    }
    if (w->stop)
        return;
    sy_ready erd;
    memset(&erd, 0, sizeof erd);
    ops->ready(nd->eng, &erd);
    /* as the daemon (runtime.c process_ready, ready_empty): a ready with
     * nothing to persist, send, apply, answer or checkpoint is not
     * advanced -- an engine must not need an advance() it never asked for */
    if (!sy_ready_persists(&erd) && !erd.n_msgs && !erd.n_committed && !erd.n_reads &&
        !erd.n_rejects && !erd.checkpoint_index) {
        schedule_tick(w, nd);
        return;
    }
    if (sy_ready_copy(&erd, &nd->own) != SY_OK) {
        sim_fail(w, "memory", "n%u: out of memory copying a ready", nd->id);
        return;
    }
    take_msgs(w, nd, &erd);
    const sy_ready *rd = &nd->own.rd;
    bool need_txn = sy_ready_persists(rd) || rd->n_committed;
    if (w->stop)
        return;
    if (!need_txn) {
        finish(w, nd);
        return;
    }
    if (rd->truncate_from || rd->compact_to)
        sim_trace(w, TR_LOG_CUT, nd->id, UINT32_MAX, rd->truncate_from, rd->compact_to, 0);
    bool wal = !rd->snapshot_install && !rd->compact_to && !rd->checkpoint_index;
    int rc = persist_and_apply(w, nd, wal);
    if (rc) {
        /* the daemon stops on a storage error; a detected corruption too */
        if (!sim_disk_detected(w, nd, rc, "stopped"))
            sim_fail(w, "storage", "n%u storage write failed: %s (%s)", nd->id,
                     sy_strerror(rc), sy_storage_errmsg(nd->st));
        free_results(nd);
        return;
    }
    early_replies(w, nd);
    /* As the daemon's held apply (cmd/synod/runtime.c, job_write): a
     * write that only applies committed entries (and at most a lazy hard
     * state) is left unsynced until the next synced write; a crash before
     * that loses it and the restart re-applies from the log. No fsync to
     * wait for: finished at once. */
    bool durable = sy_ready_must_sync(rd);
    if (!durable) {
        w->st->held_writes++;
        finish(w, nd);
        return;
    }
    nd->txn_pending = true;
    nd->full_sync_due = !wal;
    w->st->disk_writes++;
    nd->busy = true;
    uint64_t lat = sy_rng_below(&w->rng, 2);
    if ((w->o.faults & SY_FAULT_DISK) && !w->calm) {
        lat = sy_rng_range(&w->rng, 1, 15);
        if (sy_rng_below(&w->rng, 20) == 0)
            lat += sy_rng_range(&w->rng, 50, 200);  /* a slow fsync */
    }
    sim_schedule(w, w->now + lat, EV_DISK_DONE, nd->host, UINT32_MAX, nd->incarnation, NULL, 0);
}

void sim_node_input(sim_world *w, sim_node *nd, uint32_t from, uint8_t *data, size_t len)
{
    if (!nd->up) {
        free(data);
        return;
    }
    if (nd->in_n >= SIM_INBOX_MAX) {
        w->st->msgs_dropped++;
        free(data);
        return;
    }
    nd->inbox[(nd->in_head + nd->in_n) % SIM_INBOX_MAX] = (sim_input){ from, data, len };
    nd->in_n++;
    if (!nd->pump_queued) {
        nd->pump_queued = true;
        sim_schedule(w, w->now, EV_PUMP, nd->host, UINT32_MAX, nd->incarnation, NULL, 0);
    }
}

/* A process death: the engine and every volatile thing go; the disk keeps
 * what was synced. */
static void node_down(sim_world *w, sim_node *nd)
{
    if (sy_storage_mem_crash(nd->st)) {
        w->st->disk_lost++;
        sim_trace(w, TR_LOST_WRITE, nd->id, UINT32_MAX, 0, 0, 0);
    }
    nd->txn_pending = false;
    nd->full_sync_due = false;
    free_results(nd);
    w->o.ops->destroy(nd->eng);
    nd->eng = NULL;
    while (nd->in_n) {
        free(nd->inbox[nd->in_head].data);
        nd->in_head = (nd->in_head + 1) % SIM_INBOX_MAX;
        nd->in_n--;
    }
    nd->in_head = 0;
    nd->n_preq = nd->n_preads = 0;
    nd->ckpt_pending = 0;
    free(nd->snap_blob);   /* the snapshot thread's work dies with the process */
    nd->snap_blob = NULL;
    nd->snap_busy = false;
    nd->up = nd->busy = nd->paused = nd->pump_queued = nd->stepped_busy = false;
    nd->incarnation++;
    nd->last_role = SY_ROLE_FOLLOWER;
    nd->handoff_at = 0;
    sy_ready_owned_free(&nd->own);
    free_frames(nd);
}

void sim_node_crash(sim_world *w, sim_node *nd)
{
    if (!nd->up)
        return;
    node_down(w, nd);
    w->st->crashes++;
    sim_trace(w, TR_CRASH, nd->id, UINT32_MAX, nd->applied, 0, 0);
    /* a sector torn by the crash, or rotten meanwhile: the restart must see it */
    sim_disk_maybe_corrupt(w, nd);
}

void sim_node_replace(sim_world *w, sim_node *nd)
{
    if (nd->up) {
        node_down(w, nd);
        w->st->crashes++;
        sim_trace(w, TR_CRASH, nd->id, UINT32_MAX, nd->applied, 0, 0);
    }
    /* the old disk goes, an undetected corruption on it too */
    sy_storage_close(nd->st);
    nd->st = NULL;
    free(nd->corrupt_val);
    nd->corrupt_val = NULL;
    nd->corrupt = nd->dead = false;
    sy_storage_mem_opts mo = { .manual_sync = true };
    if (sy_storage_mem_new(&mo, &nd->st) || sy_kv_init(&nd->kvm, nd->st, &w->envo, 0)) {
        sim_fail(w, "simulator", "out of memory for n%u's new disk", nd->id);
        return;
    }
    nd->applied = nd->applied_term = nd->last_snap = nd->visible_applied = 0;
    uint64_t target = 0;
    for (uint32_t i = 0; i < w->n; i++)
        if (&w->nodes[i] != nd && w->nodes[i].applied > target)
            target = w->nodes[i].applied;
    nd->rejoin_mark = nd->replaced = true;
    nd->replace_target = target;
    w->st->replaced++;
    sim_trace(w, TR_REPLACE, nd->id, UINT32_MAX, target, 0, 0);
}

void sim_node_halt(sim_world *w, sim_node *nd)
{
    if (nd->up)
        node_down(w, nd);
}

void sim_node_restart(sim_world *w, sim_node *nd)
{
    if (nd->up || nd->dead || nd->lost)
        return;
    sy_storage_boot sb;
    int rc = sy_storage_load_boot(nd->st, &sb);
    if (rc) {
        if (sim_disk_detected(w, nd, rc, "refused to start"))
            return;
        sim_fail(w, "storage", "n%u could not read its disk at restart: %s (%s)", nd->id,
                 sy_strerror(rc), sy_storage_errmsg(nd->st));
        return;
    }
    const sy_engine_boot *boot = &sb.boot;
    nd->applied = nd->visible_applied = boot->applied;
    nd->applied_term = boot->snap_term;
    for (size_t i = 0; i < boot->n_entries; i++)
        if (boot->entries[i].index == nd->applied)
            nd->applied_term = sy_engine_committed_term(w->o.ops, &boot->entries[i]);
    nd->last_snap = boot->snap_index;
    sy_engine_cfg cfg = {
        .self = nd->id, .n = w->n, .f = w->f,
        .heartbeat_ms = 50, .election_min_ms = 300, .election_max_ms = 600,
        .request_timeout_ms = 1000, .batch_delay_ms = 1,
        .batch_max = 64, .batch_bytes_max = 1u << 20, .max_inflight = SY_DEF_MAX_INFLIGHT,
        .max_pending = 1000, .snapshot_threshold = SIM_SNAPSHOT_EVERY,
        .compact_keep = w->o.compact_keep,
        .checkpoint_interval = 16, .watermark_window = 64,
        .prevote = true, .check_quorum = true, .rejoin = nd->rejoin_mark,
        .node_keys = w->node_keys, .signer = &nd->signer, .verifier = &w->verifier,
        .clients = &w->dir,
    };
    snprintf(cfg.cluster_id, sizeof cfg.cluster_id, "%s", SIM_CLUSTER_ID);
    uint64_t x = w->o.seed ^ (0x1000193ull * (nd->id + 1)) ^ (nd->incarnation << 40);
    cfg.rng_seed = sy_rng_splitmix(&x);
    for (uint32_t i = 0; i < w->o.n_byz; i++)
        if (w->o.byz[i].node == nd->id && w->o.byz[i].behaviour != SY_SIM_TWINS)
            cfg.test_behaviour = w->o.byz[i].behaviour;
    if (strcmp(w->o.ops->name, "pbft") == 0)
        cfg.max_inflight = SY_DEF_PBFT_MAX_INFLIGHT;   /* the daemon's default window */
    /* PBFT state transfer: snapshots here are a few KB, so small chunks
     * make most transfers many-chunk ones (an odd size too); every third
     * seed keeps the default, where one chunk holds the whole blob */
    static const uint32_t chunk_sizes[3] = { 97, 512, 0 };
    cfg.state_chunk_bytes = chunk_sizes[w->o.seed % 3];
    /* Paxos: PROMISE, ACCEPT and CHOSEN in pages of 2 or 5 entries for half
     * the seeds, so a candidate's follow-up PREPARE for the next page of a
     * long promise runs here too (with the default 4096 never) */
    static const uint32_t page_sizes[4] = { 0, 2, 5, 0 };
    cfg.msg_entries_max = page_sizes[(w->o.seed / 3) % 4];
    rc = w->o.ops->create(&cfg, boot, &nd->eng);
    nd->seen_evidence = nd->seen_bad_sigs = nd->seen_dissent = 0;   /* a new engine counts from 0 */
    memset(&nd->seen_accused, 0, sizeof nd->seen_accused);
    uint64_t lo = boot->n_entries ? boot->entries[0].index : 0;
    uint64_t hi = boot->n_entries ? boot->entries[boot->n_entries - 1].index : 0;
    sy_storage_boot_free(&sb);
    if (rc) {
        sim_fail(w, "engine-restart", "n%u engine refused to start from its disk: %s (boot: "
                 "snapshot %" PRIu64 ", entries %" PRIu64 "..%" PRIu64 ", applied %" PRIu64 ")",
                 nd->id, sy_strerror(rc), nd->last_snap, lo, hi, nd->applied);
        nd->eng = NULL;
        return;
    }
    nd->up = true;
    nd->busy = nd->paused = false;
    if (nd->incarnation) {
        w->st->restarts++;
        sim_trace(w, TR_RESTART, nd->id, UINT32_MAX, nd->applied, 0, 0);
    }
    nd->tick_at = 0;
    schedule_tick(w, nd);
}

/* ---- identities ---- */

static const sy_pubkey *dir_key_of(void *ctx, uint32_t sender)
{
    sim_world *w = ctx;
    if (sender < w->n)
        return &w->node_keys[sender];
    if (sender >= SY_CLIENT_ID_BASE && sender - SY_CLIENT_ID_BASE < w->n_clients)
        return &w->client_keys[sender - SY_CLIENT_ID_BASE];
    return NULL;
}

static int make_identity(sim_world *w, uint32_t id, sy_signer *signer, sy_seckey **sk,
                         sy_pubkey *pub)
{
    uint8_t seed[SY_SEED_LEN];
    uint64_t x = w->o.seed * 0x9e3779b97f4a7c15ull + id;
    for (int i = 0; i < SY_SEED_LEN; i += 8) {
        uint64_t v = sy_rng_splitmix(&x);
        memcpy(seed + i, &v, 8);
    }
    int rc;
    if (w->o.ed25519) {
        rc = sy_seckey_from_seed(seed, sk);
        if (rc)
            return rc;
        sy_signer_ed25519(signer, *sk);
    } else {
        rc = sy_simsig_add(w->simsig, seed, signer);
        if (rc)
            return rc;
    }
    *pub = signer->pub;
    return SY_OK;
}

static bool all_caught_up(const sim_world *w)
{
    uint64_t a = 0;
    for (uint32_t i = 0; i < w->n; i++)
        if (!sim_node_excluded(&w->nodes[i]) && w->nodes[i].applied > a)
            a = w->nodes[i].applied;
    for (uint32_t i = 0; i < w->n; i++) {
        const sim_node *nd = &w->nodes[i];
        if (sim_node_excluded(nd))
            continue;
        /* busy: a write in flight may apply what a client already has a
         * reply for (early replies) */
        if (!nd->up || nd->paused || nd->busy || nd->applied != a ||
            nd->applied < w->st->max_commit)
            return false;
    }
    return true;
}

static void dispatch(sim_world *w, sim_event *ev)
{
    sim_node *nd = ev->a < w->n_hosts ? &w->nodes[ev->a] : NULL;
    switch (ev->kind) {
    case EV_DELIVER:
        if (sim_is_client(ev->b)) {
            uint32_t ci = ev->b - SY_CLIENT_ID_BASE;
            if (ci < w->n_clients)
                sim_client_deliver(w, &w->clients[ci], ev->data, ev->len);
        } else if (ev->b < w->n_hosts) {
            w->st->msgs_delivered++;
            sim_node_input(w, &w->nodes[ev->b], ev->a, ev->data, ev->len);
            ev->data = NULL;
        }
        break;
    case EV_TICK:
        if (nd && nd->up && ev->gen == nd->tick_gen) {
            nd->tick_at = 0;
            recheck_pending(w, nd);
            sim_node_pump(w, nd);
        }
        break;
    case EV_PUMP:
        if (nd && nd->up && ev->gen == nd->incarnation) {
            nd->pump_queued = false;
            sim_node_pump(w, nd);
        }
        break;
    case EV_DISK_DONE:
        if (nd && nd->up && nd->busy && ev->gen == nd->incarnation) {
            if (nd->paused) /* the fsync finished but the process is stopped */
                sim_schedule(w, w->now + 10, EV_DISK_DONE, ev->a, UINT32_MAX, ev->gen, NULL, 0);
            else if (sim_crash_after_fsync(w, nd))
                break;
            else
                finish(w, nd);
        }
        break;
    case EV_SNAP_DONE:
        if (nd && nd->up && nd->snap_busy && ev->gen == nd->incarnation) {
            if (nd->paused) {   /* the process is stopped: its thread too */
                sim_schedule(w, w->now + 10, EV_SNAP_DONE, ev->a, UINT32_MAX, ev->gen, NULL, 0);
            } else if (nd->busy && !sim_steps_while_busy(w)) {
                /* the loop takes the snapshot thread's word between writes */
                sim_schedule(w, w->now + 1, EV_SNAP_DONE, ev->a, UINT32_MAX, ev->gen, NULL, 0);
            } else {
                w->st->snapshots_late++;
                snapshot_done(w, nd);
            }
        }
        break;
    case EV_CLIENT: {
        uint32_t ci = ev->a - SY_CLIENT_ID_BASE;
        if (ci < w->n_clients)
            sim_client_event(w, &w->clients[ci], ev->gen);
        break;
    }
    case EV_FAULT:
        sim_net_fault(w);
        break;
    case EV_HEAL:
        sim_net_heal(w, ev->gen);
        break;
    case EV_RESTART:
        if (nd && !nd->up && ev->gen == nd->incarnation)
            sim_node_restart(w, nd);
        break;
    case EV_RESUME:
        if (nd && nd->up && nd->paused && ev->gen == nd->incarnation) {
            nd->paused = false;
            sim_node_pump(w, nd);
        }
        break;
    case EV_CALM:
        sim_net_calm(w);
        break;
    case EV_CHURN:
        sim_net_churn(w, ev->a, ev->gen);
        break;
    case EV_HANDOFF:
        if (nd)
            handoff(w, nd, ev->gen);
        break;
    default:
        break;
    }
}

static void world_free(sim_world *w)
{
    for (uint32_t i = 0; i < w->n_hosts; i++) {
        sim_node *nd = &w->nodes[i];
        if (nd->eng)
            w->o.ops->destroy(nd->eng);
        while (nd->in_n) {
            free(nd->inbox[nd->in_head].data);
            nd->in_head = (nd->in_head + 1) % SIM_INBOX_MAX;
            nd->in_n--;
        }
        free(nd->inbox);
        free(nd->preq);
        free(nd->preads);
        free_results(nd);
        sy_ready_owned_free(&nd->own);
        free_frames(nd);
        free(nd->frames);
        free(nd->said);
        free(nd->corrupt_val);
        free(nd->snap_blob);   /* a snapshot still being taken at the end */
        if (nd->st)
            sy_storage_close(nd->st);
        sy_seckey_free(nd->sk);
    }
    for (uint32_t i = 0; i < w->n_clients; i++) {
        free(w->clients[i].env);
        sy_seckey_free(w->clients[i].sk);
    }
    for (size_t i = 0; i < w->n_heap; i++)
        free(w->heap[i].data);
    free(w->heap);
    sim_check_free(w);
    sy_simsig_free(w->simsig);
    sy_buf_free(&w->scratch);
    free(w);
}

int sy_sim_run(const sy_sim_opts *o, sy_sim_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!o->ops || o->nodes < 1 || o->nodes > SY_SIM_MAX_NODES || o->requests < 1 ||
        o->clients > SY_SIM_MAX_CLIENTS || o->n_byz > SY_SIM_MAX_BYZ || o->keys > 8)
        return SY_EINVAL;
    if (sy_crypto_init())
        return SY_EFATAL;
    sim_world *w = calloc(1, sizeof *w);
    if (!w)
        return SY_ENOMEM;
    w->o = *o;
    if (!w->o.out)
        w->o.out = stderr;
    if (!w->o.protocol)
        w->o.protocol = o->ops->name;
    if (!w->o.clients)
        w->o.clients = 5;
    if (!w->o.keys)
        w->o.keys = 5;
    if (!w->o.fault_ms)
        w->o.fault_ms = 20000;
    if (!w->o.liveness_ms)
        w->o.liveness_ms = 60000;
    if (!w->o.max_sim_ms)
        w->o.max_sim_ms = w->o.fault_ms + w->o.liveness_ms + 10000;
    w->st = st;
    w->n = o->nodes;
    bool bft = strcmp(w->o.protocol, "pbft") == 0;
    w->bft = bft;
    w->f = o->f ? o->f : (bft ? (w->n - 1) / 3 : (w->n - 1) / 2);
    /* Byzantine nodes use up the fault budget first (mutants do not: they
     * are correct-looking nodes, crashed and partitioned like the rest) */
    uint32_t n_bad = 0;
    for (uint32_t k = 0; k < o->n_byz; k++)
        n_bad += o->byz[k].behaviour != 0 && o->byz[k].behaviour < SY_SIM_MUTANT_BASE;
    w->budget = o->fault_budget ? o->fault_budget : (n_bad < w->f ? w->f - n_bad : 0);
    w->n_clients = w->o.clients;
    sy_rng_seed(&w->rng, o->seed);
    sy_rng_seed(&w->wl, o->seed ^ 0x5eed5eed5eed5eedull);
    sy_buf_init(&w->scratch);

    int rc = SY_ENOMEM;
    if (!o->ed25519) {
        if ((rc = sy_simsig_new(w->n + w->n_clients, &w->simsig)))
            goto out_free;
        sy_verifier_simsig(&w->verifier, w->simsig);
    } else {
        sy_verifier_ed25519(&w->verifier);
    }
    w->dir = (sy_directory){ .key_of = dir_key_of, .ctx = w };
    w->envo = (sy_env_opts){ .cluster_id = SIM_CLUSTER_ID, .dir = &w->dir,
                             .verifier = &w->verifier };
    for (uint32_t i = 0; i < w->n; i++) {
        sim_node *nd = &w->nodes[i];
        nd->id = i;
        nd->host = i;
        for (uint32_t k = 0; k < o->n_byz; k++)
            nd->byz |= o->byz[k].node == i && o->byz[k].behaviour != 0 &&
                       o->byz[k].behaviour < SY_SIM_MUTANT_BASE;
        for (uint32_t k = 0; k < o->n_byz; k++)
            nd->mutant |= o->byz[k].node == i && o->byz[k].behaviour >= SY_SIM_MUTANT_BASE;
        if ((rc = make_identity(w, i, &nd->signer, &nd->sk, &w->node_keys[i])))
            goto out_free;
        rc = SY_ENOMEM;
        nd->inbox = calloc(SIM_INBOX_MAX, sizeof *nd->inbox);
        if (!nd->inbox)
            goto out_free;
        if (strcmp(o->ops->name, "pbft") == 0 && !nd->byz &&
            !(nd->said = calloc(SIM_SAID_SLOTS, sizeof *nd->said)))
            goto out_free;
        sy_storage_mem_opts mo = { .manual_sync = true };
        if ((rc = sy_storage_mem_new(&mo, &nd->st)))
            goto out_free;
        /* kv copies the options; the directory (w->dir) lives as long as w */
        if ((rc = sy_kv_init(&nd->kvm, nd->st, &w->envo, 0)))
            goto out_free;
        rc = SY_ENOMEM;
        nd->last_role = SY_ROLE_FOLLOWER;
    }
    for (uint32_t i = 0; i < w->n_clients; i++) {
        sim_client *c = &w->clients[i];
        c->id = SY_CLIENT_ID_BASE + i;
        if ((rc = make_identity(w, c->id, &c->signer, &c->sk, &w->client_keys[i])))
            goto out_free;
    }
    if ((rc = sim_check_init(w)))
        goto out_free;
    if (o->faults & SY_FAULT_SKEW) {
        for (uint32_t i = 0; i < w->n; i++) {
            w->nodes[i].clk_off = sy_rng_below(&w->rng, 100000);
            w->nodes[i].drift_ppm = (int32_t)sy_rng_range(&w->rng, 0, 40000) - 20000;
        }
        st->skewed_nodes = w->n;
    }
    w->n_hosts = w->n;
    for (uint32_t i = 0; i < SY_SIM_MAX_NODES; i++)
        w->twin_of[i] = UINT32_MAX;
    for (uint32_t k = 0; k < o->n_byz; k++) {
        uint32_t id = o->byz[k].node;
        if (o->byz[k].behaviour != SY_SIM_TWINS || id >= w->n || w->twin_of[id] != UINT32_MAX)
            continue;
        sim_node *tw = &w->nodes[w->n_hosts];
        tw->id = id;
        tw->host = w->n_hosts;
        tw->byz = true;
        tw->signer = w->nodes[id].signer;   /* same identity, same key */
        tw->last_role = SY_ROLE_FOLLOWER;
        rc = SY_ENOMEM;
        tw->inbox = calloc(SIM_INBOX_MAX, sizeof *tw->inbox);
        if (!tw->inbox)
            goto out_free;
        sy_storage_mem_opts mo = { .manual_sync = true };
        if ((rc = sy_storage_mem_new(&mo, &tw->st)) || (rc = sy_kv_init(&tw->kvm, tw->st, &w->envo, 0)))
            goto out_free;
        w->twin_of[id] = w->n_hosts++;
        for (uint32_t j = 0; j < w->n; j++)
            w->twin_side[j] = j != id && sy_rng_below(&w->rng, 2);
    }
    for (uint32_t i = 0; i < w->n_hosts && !w->stop; i++)
        sim_node_restart(w, &w->nodes[i]);
    sim_client_start(w);
    if (o->faults & (SY_FAULT_PARTITION | SY_FAULT_CRASH | SY_FAULT_PAUSE | SY_FAULT_DISK))
        sim_schedule(w, sy_rng_range(&w->rng, 100, 800), EV_FAULT, 0, UINT32_MAX, 0, NULL, 0);
    sim_schedule(w, w->o.fault_ms, EV_CALM, 0, UINT32_MAX, 0, NULL, 0);

    sim_event ev;
    while (!w->stop && heap_pop(w, &ev)) {
        w->now = ev.t;
        st->events++;
        if (w->now > w->o.max_sim_ms || st->events > SIM_MAX_EVENTS) {
            free(ev.data);
            sim_fail(w, "liveness", "run did not finish by t=%" PRIu64 "ms (%" PRIu64
                     " events)", w->now, st->events);
            break;
        }
        if (w->o.verbose && ev.kind != EV_DELIVER && ev.kind != EV_PUMP)
            sim_trace(w, ev.kind, ev.a, ev.b, ev.gen, 0, 0);
        dispatch(w, &ev);
        free(ev.data);
        if (w->stop)
            break;
        if (w->calm) {
            if (sim_clients_done(w)) {
                if (all_caught_up(w))
                    break;
                /* BFT: a correct replica may lag with nothing left to order
                 * (a client only needs f+1 of them); give it a grace period */
                if (!w->done_at)
                    w->done_at = w->now;
                if (w->bft && w->now >= w->done_at + SIM_BFT_GRACE_MS)
                    break;
            }
            if (w->now > w->calm_at + w->o.liveness_ms) {
                uint32_t busy = 0, lag = UINT32_MAX;
                for (uint32_t i = 0; i < w->n_clients; i++)
                    busy += w->clients[i].outstanding;
                for (uint32_t i = 0; i < w->n && lag == UINT32_MAX; i++)
                    if (!sim_node_excluded(&w->nodes[i]) &&
                        w->nodes[i].applied < st->max_commit)
                        lag = i;
                if (busy || w->issued < w->o.requests)
                    sim_fail(w, "liveness", "%u client requests still pending (%u of %u "
                             "issued) %" PRIu64 "ms after faults stopped", busy, w->issued,
                             w->o.requests, w->o.liveness_ms);
                else
                    sim_fail(w, "liveness", "n%u still at index %" PRIu64 " of %" PRIu64
                             " %" PRIu64 "ms after faults stopped",
                             lag == UINT32_MAX ? 0 : lag,
                             lag == UINT32_MAX ? 0 : w->nodes[lag].applied, st->max_commit,
                             w->o.liveness_ms);
                break;
            }
        }
    }
    st->sim_ms = w->now;
    if (!w->stop)
        st->liveness_ok = true;
    for (uint32_t i = 0; i < w->n; i++)
        if (w->nodes[i].leader_changes > st->leader_changes)
            st->leader_changes = w->nodes[i].leader_changes;
    if (!st->failed)
        sim_disk_check_final(w);
    if (!st->failed)
        sim_check_final(w);
    if (!st->failed)
        sim_disk_check_ledgers(w);
    if (st->failed)
        report_failure(w);
    rc = SY_OK;
out_free:
    world_free(w);
    return rc;
}
