/* libFuzzer target: three crash-fault replicas (Raft here; fuzz_paxos
 * builds this file for Multi-Paxos) in process, with the fuzz input as
 * their whole environment. A crash-fault protocol trusts its peers not to
 * lie, so everything the input can do is something a real network, disk or
 * host can do to correct nodes (BRIEF.md, "What it promises": safe under
 * any asynchrony, loss, reordering and duplication, and across crashes):
 *
 *  - network: every message goes through the real signed envelope codec;
 *    the input delivers any queued message (reordering), drops it (loss),
 *    delivers a copy and keeps it (duplication) or holds it for as long as
 *    it likes (delay, stale messages from old terms or incarnations), or
 *    runs a calm stretch on one side of a partition;
 *  - hosts: each node runs the daemon's host loop as the simulator models
 *    it (tests/sim/sim.c): ready(), persist into the memory backend of
 *    core/storage (written, not yet durable), early messages out at once,
 *    the rest only once the input says the fsync finished, then apply and
 *    advance(); a pipelined engine takes input meanwhile. Applies and lazy
 *    hard states are held unsynced until a later full sync, as the
 *    daemon's held apply leaves them;
 *  - crashes: a node dies at any point, losing exactly what was not
 *    synced, and later restarts from what sy_storage_load_boot reads, as
 *    synod does;
 *  - per-node clocks that move at their own rate and jump;
 *  - signed client requests (new ones and retries) to any node,
 *    linearizable reads, operators' hand-offs (SY_IN_TRANSFER, any
 *    target an admin may name), and local snapshots taken in two halves as
 *    the daemon's snapshot thread does, which with a small compact_keep
 *    make snapshot installs common;
 *  - Paxos: PROMISE, ACCEPT and CHOSEN cut into pages of 2, 3 or 8 entries
 *    (cfg.msg_entries_max) on some inputs, so a candidate asks for the
 *    next page of a long promise, as it does past 4096 slots in synod;
 *  - Raft, on membership inputs: a fourth node, outside the initial
 *    configuration, runs from the start as a new server would (no
 *    campaigns, it takes what a leader sends it), and operators ask the
 *    leader (or any node) to add or remove any of the four
 *    (SY_IN_CONF_CHANGE: one server at a time, learner first, thesis ch.
 *    4). The host keeps the configuration it applied and stores it beside
 *    its local snapshots, so a restart after compaction keeps it (synod's
 *    runtime stores the initial members there: it makes no changes).
 *
 * Checked after every step: no two nodes commit different entries at one
 * index, a node applies indices in order with no gap, what it commits is in
 * its durable log and holds only requests clients signed and submitted,
 * nodes that applied the same index hold the same state (snapshot installs
 * included) and never roll back to an older snapshot, a read is served at
 * an index covering every write applied anywhere before it was asked, at
 * most one leader per term (Paxos: per ballot, and only the ballot's
 * owner), every ready is one storage accepts, a node restarts from its own
 * disk, and no step returns SY_EFATAL. With membership changes also: a
 * leader appends a config entry only while every config entry before it in
 * its log is committed, each committed configuration differs from the one
 * before by one voter at most, and a compaction names the configuration
 * the host applied at its index. A removed node may campaign again (it
 * may not know it was removed); what that could break, agreement and one
 * leader per term, is checked as for any node. Any of these, a crash or a
 * sanitizer report is a finding. The checks were seen to catch both
 * engines' planted mutants (raft.h, paxos.h) within minutes.
 *
 * Inputs with the lie bit also let a peer replay a queued message with
 * bytes flipped and signed again by its sender, through the real decoder:
 * what a buggy-but-honest peer could send. A crash-fault engine may do
 * anything safe-looking or not with a lie, so once one was stepped in the
 * checks above stop counting (a node that trips one is stopped instead, as
 * the daemon stops on SY_EFATAL); only crashes and sanitizer reports remain
 * findings.
 *
 * Input: two bytes of cluster configuration (prevote, check_quorum, the lie
 * bit, compact_keep, max_inflight, batch_max, batch_bytes_max, max_pending,
 * snapshot size; Paxos: the page size; Raft: membership), then up to
 * MAX_OPS steps, each u8 op | u8 node and flags | the op's own bytes; then
 * every node restarts and a calm stretch lets the run settle under the
 * same checks. */
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/engine.h"
#include "core/envelope.h"
#include "core/ready.h"
#include "core/storage.h"
#include "crypto/crypto.h"
#include "crypto/sy_err.h"
#include "fuzz_input.h"

#ifdef FUZZ_PAXOS
#include "cft/paxos/paxos.h"
#define ENGINE sy_paxos_ops
#define TARGET "fuzz_paxos"
#else
#include "cft/raft/raft.h"
#define ENGINE sy_raft_ops
#define TARGET "fuzz_raft"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N 3u                /* the initial voters, nodes 0..N-1 */
#define NMAX 4u             /* Raft membership inputs: node 3 too */
#define CLIENTS 4u
#define CLUSTER "fuzz-cft"
#define MAX_OPS 2000
#define MAX_REQ 2048u      /* requests per client: more than MAX_OPS */
#define QMAX 512u          /* messages in flight; past it the oldest is lost */
#define LEADS_MAX 4096u
#define BLOB_HDR (8u + SY_DIGEST_LEN)   /* snapshot: index u64 LE | state */
#define STATE_KEY "fz_state"

/* ---- identities (read-only after setup, shared by every input) ---- */

static sy_simsig *ss;
static sy_signer sg[NMAX + CLIENTS];   /* nodes 0..NMAX-1, then clients */
static sy_pubkey pk[NMAX + CLIENTS];
static sy_verifier ver;

static const sy_pubkey *node_key(void *ctx, uint32_t id)
{
    (void)ctx;
    return id < NMAX ? &pk[id] : NULL;
}

static const sy_pubkey *client_key(void *ctx, uint32_t id)
{
    (void)ctx;
    if (id < SY_CLIENT_ID_BASE || id >= SY_CLIENT_ID_BASE + CLIENTS)
        return NULL;
    return &pk[NMAX + id - SY_CLIENT_ID_BASE];
}

static const sy_directory nodes_dir = { node_key, NULL };
static const sy_directory clients_dir = { client_key, NULL };
static const sy_env_opts node_opts = { .cluster_id = CLUSTER, .dir = &nodes_dir,
                                       .verifier = &ver };
static const sy_env_opts client_opts = { .cluster_id = CLUSTER, .dir = &clients_dir,
                                         .verifier = &ver };

static void setup(void)
{
    if (ss)
        return;
    if (sy_crypto_init() || sy_simsig_new(NMAX + CLIENTS, &ss))
        abort();
    for (uint32_t i = 0; i < NMAX + CLIENTS; i++) {
        /* nodes 0..N-1 and the clients keep the seeds they had before
         * node N existed */
        uint32_t k = i < N ? i : i < NMAX ? 0x40 + i : i - (NMAX - N);
        uint8_t seed[SY_SEED_LEN] = { (uint8_t)(k + 1), 0xc7 };
        if (sy_simsig_add(ss, seed, &sg[i]))
            abort();
        pk[i] = sg[i].pub;
    }
    sy_verifier_simsig(&ver, ss);
}

/* ---- the world of one input ---- */

typedef struct {
    uint32_t from, to;
    uint8_t *buf;
    size_t len;
} fz_msg;

typedef struct {
    fz_msg *v;
    size_t n, cap;
} fz_msgs;

typedef struct {
    uint32_t id;
    sy_storage *st;            /* its disk: survives crashes */
    void *eng;                 /* NULL while down */
    sy_engine_cfg cfg;
    uint64_t now;              /* its clock */
    uint32_t incarnation;
    bool dead;                 /* stopped for good (lie mode only) */
    bool halt;                 /* stop it at the end of this step */
    /* the ready whose write is in flight (busy) */
    bool busy, full_sync_due;
    sy_ready_owned own;
    fz_msgs frames;            /* its messages that wait for the fsync */
    /* the state machine: a hash chain over applied entries */
    uint64_t applied, applied_term;
    sy_digest state;
    uint64_t last_snap;
    sy_members conf;           /* the configuration in effect at applied */
    /* a local snapshot under way (the daemon's snapshot thread) */
    bool snap_busy;
    uint64_t snap_at, snap_term;
    sy_digest snap_state;
    sy_members snap_conf;
    uint64_t told_snap;        /* last local snapshot the engine was told of */
    sy_members told_conf;      /* ... and the members stored with it */
    uint64_t read_id;
    struct {
        uint64_t id, floor;    /* floor: highest index applied anywhere
                                * when the read was asked */
    } *reads;
    size_t n_reads, cap_reads;
} fz_node;

typedef struct {
    fz_node nd[NMAX];
    uint32_t n;                /* nodes that run: N, or NMAX with membership */
    bool members_on;           /* Raft: node N and SY_IN_CONF_CHANGE ops */
    fz_msgs q;                 /* the network */
    bool lies_on, lied;
    uint32_t pad;              /* snapshot blob bytes past the header */
    uint64_t max_applied;      /* by any node: writes done for clients */
    uint64_t req_no[CLIENTS];
    sy_digest *req_dg[CLIENTS];  /* digest of each signed request, by req_no */
    uint8_t *last_raw[CLIENTS];
    size_t last_len[CLIENTS];
    /* what was committed and the state after it, by index */
    sy_digest *commit_dg, *state_dg;
    bool *commit_known, *state_known;
    size_t cap;
    struct {
        uint64_t term;
        uint32_t node;
    } leads[LEADS_MAX];
    size_t n_leads;
    sy_buf scratch;
} world;

/* A broken invariant. Before any lie it is a finding; after one, the node
 * involved (if any) is stopped as synod stops on SY_EFATAL, and the run
 * goes on looking for crashes only. */
__attribute__((format(printf, 3, 4)))
static void finding(world *w, fz_node *nd, const char *fmt, ...)
{
    if (w->lied) {
        if (nd)
            nd->halt = true;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, TARGET ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static void msgs_push(fz_msgs *l, uint32_t from, uint32_t to, const uint8_t *p, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v)
            abort();
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, p, len);
    l->v[l->n++] = (fz_msg){ from, to, copy, len };
}

static void msgs_remove(fz_msgs *l, size_t k)
{
    free(l->v[k].buf);
    memmove(l->v + k, l->v + k + 1, (l->n - k - 1) * sizeof *l->v);
    l->n--;
}

static void msgs_free(fz_msgs *l)
{
    for (size_t k = 0; k < l->n; k++)
        free(l->v[k].buf);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* The network takes a frame; a full one loses its oldest. */
static void net_send(world *w, uint32_t from, uint32_t to, const uint8_t *p, size_t len)
{
    if (w->q.n >= QMAX)
        msgs_remove(&w->q, 0);
    msgs_push(&w->q, from, to, p, len);
}

static void grow(world *w, uint64_t index)
{
    if (index < w->cap)
        return;
    size_t nc = w->cap ? w->cap : 256;
    while (nc <= index)
        nc *= 2;
    w->commit_dg = realloc(w->commit_dg, nc * sizeof *w->commit_dg);
    w->state_dg = realloc(w->state_dg, nc * sizeof *w->state_dg);
    w->commit_known = realloc(w->commit_known, nc * sizeof *w->commit_known);
    w->state_known = realloc(w->state_known, nc * sizeof *w->state_known);
    if (!w->commit_dg || !w->state_dg || !w->commit_known || !w->state_known)
        abort();
    memset(w->commit_known + w->cap, 0, (nc - w->cap) * sizeof *w->commit_known);
    memset(w->state_known + w->cap, 0, (nc - w->cap) * sizeof *w->state_known);
    w->cap = nc;
}

/* Indices stay far below this in any run of MAX_OPS steps; one beyond it
 * is itself a finding (and would make the tables above huge). */
#define INDEX_SANE (1u << 24)

static void check_state(world *w, fz_node *nd, uint64_t index, const sy_digest *state)
{
    if (index == 0)
        return;
    if (index >= INDEX_SANE) {
        finding(w, nd, "n%u applied index %llu", nd->id, (unsigned long long)index);
        return;
    }
    grow(w, index);
    if (index > w->max_applied)
        w->max_applied = index;
    if (!w->state_known[index]) {
        w->state_known[index] = true;
        w->state_dg[index] = *state;
    } else if (!sy_digest_eq(&w->state_dg[index], state)) {
        finding(w, nd, "convergence: n%u state after index %llu differs from another node's",
                nd->id, (unsigned long long)index);
    }
}

/* ---- membership (Raft thesis ch. 4; nodes 0..N-1 start as voters) ---- */

static void members_initial(sy_members *m)
{
    memset(m, 0, sizeof *m);
    m->n_voters = N;
    for (uint32_t i = 0; i < N; i++)
        m->voters[i] = i;
}

static bool in_list(const uint32_t *v, uint32_t n, uint32_t id)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

/* Voters in one configuration and not the other, both ways. */
static uint32_t voters_changed(const sy_members *a, const sy_members *b)
{
    uint32_t d = 0;
    for (uint32_t i = 0; i < a->n_voters; i++)
        d += !in_list(b->voters, b->n_voters, a->voters[i]);
    for (uint32_t i = 0; i < b->n_voters; i++)
        d += !in_list(a->voters, a->n_voters, b->voters[i]);
    return d;
}

/* "v0,1,2 l3" for a finding's message */
static const char *members_str(const sy_members *m, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "v");
    for (uint32_t i = 0; i < m->n_voters && i < SY_MAX_NODES && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%u", i ? "," : "", m->voters[i]);
    if (o < cap)
        o += (size_t)snprintf(buf + o, cap - o, " l");
    for (uint32_t i = 0; i < m->n_learners && i < SY_MAX_NODES && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%u", i ? "," : "", m->learners[i]);
    return buf;
}

static bool members_same(const sy_members *a, const sy_members *b)
{
    if (a->n_voters != b->n_voters || a->n_learners != b->n_learners ||
        voters_changed(a, b))
        return false;
    for (uint32_t i = 0; i < a->n_learners; i++)
        if (!in_list(b->learners, b->n_learners, a->learners[i]))
            return false;
    return true;
}

/* The config entries of a leader's new entries (rd, about to be written):
 * each one only once every config entry before it in the leader's log is
 * committed (thesis 4.1: one change at a time, which with single-server
 * changes keeps any two majorities overlapping). The commit index is read
 * now, at least what it was at the append: no false alarm. */
static void check_conf_appends(world *w, fz_node *nd, const sy_ready *rd)
{
    size_t k = 0;
    while (k < rd->n_entries && rd->entries[k].type != SY_ENTRY_CONFIG)
        k++;
    if (k == rd->n_entries)
        return;
    sy_engine_status st;
    ENGINE.status(nd->eng, &st);
    if (st.role != SY_ROLE_LEADER)
        return;
    uint64_t prev = 0;   /* the config entry before, above the commit index */
    sy_txn t;
    if (sy_txn_begin(nd->st, false, &t) == SY_OK) {
        for (uint64_t i = rd->entries[0].index - 1; i > st.commit_index && !prev; i--) {
            sy_entry e;
            if (sy_txn_entry(&t, i, &e) != SY_OK)
                break;
            if (e.type == SY_ENTRY_CONFIG)
                prev = i;
        }
        sy_txn_abort(&t);
    }
    for (; k < rd->n_entries; k++) {
        const sy_entry *e = &rd->entries[k];
        if (e->type != SY_ENTRY_CONFIG)
            continue;
        if (prev && e->term == st.term)
            finding(w, nd, "membership: leader n%u appends a config entry at index %llu "
                    "while the one at %llu is uncommitted (commit %llu)", nd->id,
                    (unsigned long long)e->index, (unsigned long long)prev,
                    (unsigned long long)st.commit_index);
        if (e->index > st.commit_index)
            prev = e->index;
    }
}

/* ---- hosts ---- */

static void node_step(world *w, fz_node *nd, sy_input *in)
{
    if (!nd->eng || nd->halt)
        return;
    in->now_ms = nd->now;
    if (ENGINE.step(nd->eng, in) == SY_EFATAL)
        finding(w, nd, "engine-fatal: n%u found its state impossible (input kind %u)", nd->id,
                in->kind);
}

static void blob_make(const world *w, uint64_t index, const sy_digest *state, uint8_t *out)
{
    memcpy(out, &index, 8);
    memcpy(out + 8, state->b, SY_DIGEST_LEN);
    for (uint32_t k = 0; k < w->pad; k++)
        out[BLOB_HDR + k] = (uint8_t)(index * 31 + k);
}

static uint64_t applied_term_of(const sy_engine_boot *b)
{
    uint64_t t = b->snap_term;
    for (size_t i = 0; i < b->n_entries; i++)
        if (b->entries[i].index == b->applied)
            t = b->entries[i].term;
    return t;
}

/* As synod starts: read the durable state, create the engine from it. */
static void node_start(world *w, fz_node *nd)
{
    sy_storage_boot sb;
    int rc = sy_storage_load_boot(nd->st, &sb);
    if (rc) {
        finding(w, nd, "storage: n%u cannot read its own disk: %s (%s)", nd->id,
                sy_strerror(rc), sy_storage_errmsg(nd->st));
        nd->dead = true;
        return;
    }
    nd->applied = sb.boot.applied;
    nd->applied_term = applied_term_of(&sb.boot);
    nd->last_snap = sb.boot.snap_index;
    if (sb.boot.snap_members.n_voters)
        nd->conf = sb.boot.snap_members;
    else
        members_initial(&nd->conf);
    for (size_t i = 0; i < sb.boot.n_entries; i++) {
        const sy_entry *e = &sb.boot.entries[i];
        sy_members m;
        if (e->index > sb.boot.snap_index && e->index <= sb.boot.applied &&
            e->type == SY_ENTRY_CONFIG && sy_members_decode(e->data.p, e->data.len, &m) == SY_OK)
            nd->conf = m;
    }
    memset(&nd->state, 0, sizeof nd->state);
    sy_txn t;
    sy_bytes v;
    if (sy_txn_begin(nd->st, false, &t) == SY_OK) {
        if (sy_txn_meta_get(&t, STATE_KEY, &v) == SY_OK && v.len == SY_DIGEST_LEN)
            memcpy(nd->state.b, v.p, SY_DIGEST_LEN);
        sy_txn_abort(&t);
    }
    uint64_t x = 0x5eed0000ull ^ (nd->id + 1) * 0x9e3779b97f4a7c15ull ^
                 (uint64_t)nd->incarnation << 40;
    nd->cfg.rng_seed = sy_rng_splitmix(&x);
    rc = ENGINE.create(&nd->cfg, &sb.boot, &nd->eng);
    sy_storage_boot_free(&sb);
    if (rc) {
        nd->eng = NULL;
        finding(w, nd, "engine-restart: n%u refused to start from its own disk: %s", nd->id,
                sy_strerror(rc));
        nd->dead = true;
        return;
    }
    nd->incarnation++;
    /* what it kept of its state machine is what the others applied */
    check_state(w, nd, nd->applied, &nd->state);
}

/* A process death: the engine and everything volatile go, the disk keeps
 * what was synced. */
static void node_down(fz_node *nd)
{
    if (!nd->eng)
        return;
    sy_storage_mem_crash(nd->st);
    ENGINE.destroy(nd->eng);
    nd->eng = NULL;
    nd->busy = nd->full_sync_due = nd->snap_busy = nd->halt = false;
    nd->told_snap = 0;
    sy_ready_owned_free(&nd->own);
    msgs_free(&nd->frames);
    nd->n_reads = 0;   /* its clients' reads die with it */
}

/* Checks on one committed entry (tests/sim/sim.c check_and_reply):
 * order, agreement, durability, validity; then applies it. */
static void apply_one(world *w, fz_node *nd, const sy_entry *e)
{
    if (e->index != nd->applied + 1)
        finding(w, nd, "commit-order: n%u committed index %llu after applying %llu", nd->id,
                (unsigned long long)e->index, (unsigned long long)nd->applied);
    if (e->index >= INDEX_SANE) {
        finding(w, nd, "n%u committed index %llu", nd->id, (unsigned long long)e->index);
        return;
    }
    sy_digest d;
    sy_entry_digest(e, &d);
    grow(w, e->index);
    if (!w->commit_known[e->index]) {
        w->commit_known[e->index] = true;
        w->commit_dg[e->index] = d;
    } else if (!sy_digest_eq(&d, &w->commit_dg[e->index])) {
        finding(w, nd, "agreement: n%u committed a different entry (term %llu type %u) at "
                "index %llu than another node", nd->id, (unsigned long long)e->term, e->type,
                (unsigned long long)e->index);
    }
    /* engine.h: only entries this node persisted are reported committed */
    sy_txn t;
    if (sy_txn_begin(nd->st, false, &t) == SY_OK) {
        sy_entry se;
        if (sy_txn_entry(&t, e->index, &se) == SY_ENOTFOUND)
            finding(w, nd, "durable-commit: n%u committed index %llu, not in its log", nd->id,
                    (unsigned long long)e->index);
        sy_txn_abort(&t);
    }
    if (e->type == SY_ENTRY_NORMAL) {
        sy_bytes *reqs = NULL;
        uint32_t n = 0;
        if (sy_batch_decode(e->data.p, e->data.len, &reqs, &n) != SY_OK) {
            finding(w, nd, "validity: n%u committed index %llu whose batch does not decode",
                    nd->id, (unsigned long long)e->index);
            n = 0;
        }
        for (uint32_t i = 0; i < n; i++) {
            sy_env env;
            bool ok = false;
            if (sy_env_decode(&client_opts, reqs[i].p, reqs[i].len, &env, NULL) == SY_OK) {
                uint32_t c = env.sender - SY_CLIENT_ID_BASE;
                uint64_t no = env.msg.u.req.req_no;
                sy_digest rd;
                sy_hash(reqs[i].p, reqs[i].len, &rd);
                ok = env.type == SY_MSG_CLIENT_REQ && env.msg.u.req.client_id == env.sender &&
                     no >= 1 && no <= w->req_no[c] && sy_digest_eq(&rd, &w->req_dg[c][no]);
                sy_env_free(&env);
            }
            if (!ok)
                finding(w, nd, "validity: n%u committed index %llu holding a request no "
                        "client submitted", nd->id, (unsigned long long)e->index);
        }
        free(reqs);
    } else if (e->type == SY_ENTRY_CONFIG) {
        /* single-server changes (thesis 4.1): each committed configuration
         * differs from the one before by one voter at most */
        sy_members m;
        if (sy_members_decode(e->data.p, e->data.len, &m) != SY_OK || !m.n_voters) {
            finding(w, nd, "validity: n%u committed a config entry at index %llu that does "
                    "not decode", nd->id, (unsigned long long)e->index);
        } else {
            if (voters_changed(&nd->conf, &m) > 1)
                finding(w, nd, "membership: n%u committed at index %llu a configuration "
                        "that changes %u voters at once", nd->id,
                        (unsigned long long)e->index, voters_changed(&nd->conf, &m));
            nd->conf = m;
        }
    }
    sy_hasher h;
    sy_hash_init(&h);
    sy_hash_update(&h, nd->state.b, SY_DIGEST_LEN);
    sy_hash_update(&h, d.b, SY_DIGEST_LEN);
    sy_hash_final(&h, &nd->state);
    nd->applied = e->index;
    nd->applied_term = e->term;
    check_state(w, nd, nd->applied, &nd->state);
}

/* A linearizable read (docs/paxos.md, "Linearizable reads"; Raft thesis
 * 6.4): the index it is served at covers every write applied anywhere
 * before it was asked. */
static void read_asked(world *w, fz_node *nd)
{
    if (!nd->eng || nd->halt)
        return;
    if (nd->n_reads == nd->cap_reads) {
        nd->cap_reads = nd->cap_reads ? 2 * nd->cap_reads : 16;
        nd->reads = realloc(nd->reads, nd->cap_reads * sizeof *nd->reads);
        if (!nd->reads)
            abort();
    }
    nd->reads[nd->n_reads].id = ++nd->read_id;
    nd->reads[nd->n_reads].floor = w->max_applied;
    nd->n_reads++;
    sy_input in = { .kind = SY_IN_READ };
    in.u.read.read_id = nd->read_id;
    node_step(w, nd, &in);
}

static void read_answered(world *w, fz_node *nd, const sy_read_state *rs)
{
    for (size_t k = 0; k < nd->n_reads; k++) {
        if (nd->reads[k].id != rs->read_id)
            continue;
        if (rs->status == SY_OK && rs->index < nd->reads[k].floor)
            finding(w, nd, "linearizability: n%u serves read %llu at index %llu, but index "
                    "%llu was applied before it was asked", nd->id,
                    (unsigned long long)rs->read_id, (unsigned long long)rs->index,
                    (unsigned long long)nd->reads[k].floor);
        nd->reads[k] = nd->reads[--nd->n_reads];
        return;
    }
    finding(w, nd, "n%u answers read %llu, which nobody asked it", nd->id,
            (unsigned long long)rs->read_id);
}

/* The state machine's half of a write: applied index and state, in a
 * transaction of its own that stays unsynced until the next full sync
 * (the daemon's held apply; sy_storage_mem_defer_next). */
static void store_applied(world *w, fz_node *nd, bool defer)
{
    sy_txn t;
    int rc = sy_txn_begin(nd->st, true, &t);
    if (rc == SY_OK) {
        if ((rc = sy_txn_set_applied(&t, nd->applied)) == SY_OK)
            rc = sy_txn_meta_put(&t, STATE_KEY, nd->state.b, SY_DIGEST_LEN);
        if (rc == SY_OK && defer)
            sy_storage_mem_defer_next(nd->st);
        rc = rc ? (sy_txn_abort(&t), rc) : sy_txn_commit(&t);
    }
    if (rc)
        finding(w, nd, "storage: n%u could not store its applied state: %s", nd->id,
                sy_strerror(rc));
}

/* Step 3 of the host loop, once the write is durable: the held messages
 * leave, committed entries are applied, the engine is told. */
static void finish(world *w, fz_node *nd)
{
    const sy_ready *rd = &nd->own.rd;
    nd->busy = false;
    bool wal = !rd->snapshot_install && !rd->compact_to;
    if (rd->snapshot_install) {
        /* the daemon restores the blob over its state machine: one behind
         * what it applied would take back applied (and answered) writes */
        if (rd->snap_index < nd->applied)
            finding(w, nd, "snapshot: n%u installs index %llu below its applied %llu", nd->id,
                    (unsigned long long)rd->snap_index, (unsigned long long)nd->applied);
        nd->applied = rd->snap_index;
        nd->applied_term = rd->snap_term;
        nd->conf = rd->snap_members;
        memcpy(nd->state.b, rd->snap_data.p + 8, SY_DIGEST_LEN);
        if (rd->snap_index > nd->last_snap)
            nd->last_snap = rd->snap_index;
        check_state(w, nd, nd->applied, &nd->state);
    }
    for (size_t i = 0; i < nd->frames.n; i++)
        net_send(w, nd->id, nd->frames.v[i].to, nd->frames.v[i].buf, nd->frames.v[i].len);
    msgs_free(&nd->frames);
    for (size_t i = 0; i < rd->n_committed && !nd->halt; i++)
        apply_one(w, nd, &rd->committed[i].entry);
    if (nd->halt)
        return;
    if (rd->n_committed) {
        store_applied(w, nd, wal);
        if (!wal)
            sy_storage_mem_sync_all(nd->st);
    }
    for (size_t i = 0; i < rd->n_reads; i++)
        read_answered(w, nd, &rd->reads[i]);
    bool installed = rd->snapshot_install;
    uint64_t at = rd->snap_index;
    ENGINE.advance(nd->eng, nd->now);
    sy_ready_owned_free(&nd->own);
    if (installed) {
        /* as synod (runtime.c step_sessions): a no-op for these engines */
        sy_input in = { .kind = SY_IN_SESSIONS };
        in.u.sessions.index = at;
        node_step(w, nd, &in);
    }
}

/* Steps 1 and 2 of the host loop: take a ready, write it (not yet
 * durable), send what may go before the fsync. */
static void pump(world *w, fz_node *nd)
{
    if (!nd->eng || nd->busy || nd->halt)
        return;
    sy_ready erd;
    memset(&erd, 0, sizeof erd);
    ENGINE.ready(nd->eng, &erd);
    if (sy_ready_copy(&erd, &nd->own) != SY_OK)
        abort();
    for (size_t i = 0; i < erd.n_msgs; i++) {
        const sy_outmsg *om = &erd.msgs[i];
        if (om->to >= w->n || om->to == nd->id) {
            finding(w, nd, "n%u sent a message to node %u", nd->id, om->to);
            continue;
        }
        sy_buf_reset(&w->scratch);
        int rc = sy_env_encode(CLUSTER, nd->id, &om->msg, &sg[nd->id], &w->scratch);
        if (rc) {
            finding(w, nd, "codec: n%u produced a %s message the codec refuses: %s", nd->id,
                    sy_msg_type_name(om->msg.type), sy_strerror(rc));
            continue;
        }
        if (om->early)
            net_send(w, nd->id, om->to, w->scratch.p, w->scratch.len);
        else
            msgs_push(&nd->frames, nd->id, om->to, w->scratch.p, w->scratch.len);
    }
    if (nd->halt)
        return;
    const sy_ready *rd = &nd->own.rd;
    check_conf_appends(w, nd, rd);
    /* a compaction names the members of the configuration at its index:
     * what the host stored beside the snapshot from what it applied */
    if (!rd->snapshot_install && rd->snap_index && rd->snap_index == nd->told_snap &&
        !members_same(&rd->snap_members, &nd->told_conf)) {
        char a[256], b[256];
        finding(w, nd, "membership: n%u's snapshot at %llu names members %s, the "
                "configuration it applied there is %s", nd->id,
                (unsigned long long)rd->snap_index, members_str(&rd->snap_members, a, sizeof a),
                members_str(&nd->told_conf, b, sizeof b));
    }
    if (nd->halt)
        return;
    if (rd->snapshot_install &&
        (rd->snap_data.len != BLOB_HDR + w->pad || memcmp(rd->snap_data.p, &rd->snap_index, 8))) {
        finding(w, nd, "snapshot: n%u installs a blob of %u bytes labelled index %llu that "
                "no host made there", nd->id, rd->snap_data.len,
                (unsigned long long)rd->snap_index);
        return;
    }
    bool need_txn = rd->hardstate_dirty || rd->truncate_from || rd->n_entries ||
                    rd->snapshot_install || rd->compact_to;
    if (need_txn) {
        sy_txn t;
        int rc = sy_txn_begin(nd->st, true, &t);
        if (rc == SY_OK) {
            rc = sy_txn_persist_ready(&t, rd);
            /* an install: the state machine becomes the blob, in the same
             * transaction */
            if (rc == SY_OK && rd->snapshot_install &&
                (rc = sy_txn_set_applied(&t, rd->snap_index)) == SY_OK)
                rc = sy_txn_meta_put(&t, STATE_KEY, rd->snap_data.p + 8, SY_DIGEST_LEN);
            rc = rc ? (sy_txn_abort(&t), rc) : sy_txn_commit(&t);
        }
        if (rc) {
            finding(w, nd, "storage: n%u handed out a ready storage refuses: %s (%s)", nd->id,
                    sy_strerror(rc), sy_storage_errmsg(nd->st));
            return;
        }
    }
    bool durable = (rd->hardstate_dirty && !rd->hardstate_lazy) || rd->truncate_from ||
                   rd->n_entries || rd->snapshot_install || rd->compact_to;
    if (!durable) {
        /* nothing that must be synced first: finished at once */
        finish(w, nd);
        return;
    }
    nd->busy = true;
    nd->full_sync_due = rd->snapshot_install || rd->compact_to;
}

/* The write in flight is durable. full: the daemon's LMDB commit, which
 * also makes the held applies durable. */
static void fsync_done(world *w, fz_node *nd, bool full)
{
    if (!nd->eng || !nd->busy || nd->halt)
        return;
    if (full || nd->full_sync_due)
        sy_storage_mem_sync_all(nd->st);
    else
        sy_storage_mem_sync(nd->st);
    nd->full_sync_due = false;
    finish(w, nd);
}

/* The first half of a local snapshot: synod commits what it held and
 * captures the state at the applied index. */
static void snap_begin(fz_node *nd)
{
    if (!nd->eng || nd->busy || nd->snap_busy || nd->halt || nd->applied <= nd->last_snap)
        return;
    sy_storage_mem_sync_all(nd->st);
    nd->snap_busy = true;
    nd->snap_at = nd->applied;
    nd->snap_term = nd->applied_term;
    nd->snap_state = nd->state;
    nd->snap_conf = nd->conf;
}

/* The second half: the blob is stored (a durable transaction of its own)
 * and the engine told, unless an install got further meanwhile. */
static void snap_done(world *w, fz_node *nd)
{
    if (!nd->eng || !nd->snap_busy || nd->halt)
        return;
    nd->snap_busy = false;
    uint8_t *blob = malloc(BLOB_HDR + w->pad);
    if (!blob)
        abort();
    blob_make(w, nd->snap_at, &nd->snap_state, blob);
    sy_txn t;
    int rc = sy_txn_begin(nd->st, true, &t);
    if (rc == SY_OK) {
        rc = sy_txn_local_snapshot(&t, nd->snap_at, nd->snap_term, &nd->snap_conf,
                                   (sy_bytes){ blob, BLOB_HDR + w->pad });
        rc = rc ? (sy_txn_abort(&t), rc) : sy_txn_commit(&t);
    }
    if (rc == SY_ESTALE) {
        free(blob);
        return;
    }
    if (rc) {
        finding(w, nd, "storage: n%u could not store its snapshot at %llu: %s (%s)", nd->id,
                (unsigned long long)nd->snap_at, sy_strerror(rc), sy_storage_errmsg(nd->st));
        free(blob);
        return;
    }
    sy_storage_mem_sync_all(nd->st);
    sy_input in = { .kind = SY_IN_SNAPSHOT };
    in.u.snapshot.index = nd->snap_at;
    in.u.snapshot.term = nd->snap_term;
    in.u.snapshot.data = (sy_bytes){ blob, BLOB_HDR + w->pad };
    nd->told_snap = nd->snap_at;
    nd->told_conf = nd->snap_conf;
    node_step(w, nd, &in);
    free(blob);
    if (nd->snap_at > nd->last_snap)
        nd->last_snap = nd->snap_at;
}

/* ---- network ---- */

/* The network hands queued message k to its addressee (a down node's is
 * lost), through the real decoder; keep: a duplicate stays queued. */
static void deliver(world *w, size_t k, bool keep)
{
    fz_msg m = w->q.v[k];
    fz_node *nd = &w->nd[m.to];
    if (nd->eng && !nd->halt) {
        sy_env env;
        const char *why = NULL;
        int rc = sy_env_decode(&node_opts, m.buf, m.len, &env, &why);
        if (rc) {
            finding(w, NULL, "codec: n%u's message to n%u does not decode: %s", m.from, m.to,
                    why ? why : sy_strerror(rc));
        } else {
            if (env.sender != m.from)
                finding(w, NULL, "codec: n%u's message decodes as from %u", m.from, env.sender);
            sy_input in = { .kind = SY_IN_MSG };
            in.u.msg.from = env.sender;
            in.u.msg.msg = &env.msg;
            in.u.msg.raw = m.buf;
            in.u.msg.raw_len = m.len;
            node_step(w, nd, &in);
            sy_env_free(&env);
        }
    }
    if (!keep)
        msgs_remove(&w->q, k);
}

/* A buggy-but-honest peer: queued message k with up to 8 body bytes
 * changed (and maybe another type), signed again by its sender, through
 * the real decoder to any node but the sender. */
static void lie(world *w, input *in)
{
    size_t k = take16(in);
    uint32_t to = take8(in);
    uint8_t t = take8(in);
    unsigned flips = take8(in) % 9u;
    if (!w->q.n)
        return;
    fz_msg m = w->q.v[k % w->q.n];
    to = (m.from + 1 + to % (w->n - 1)) % w->n;
    sy_env env;
    if (sy_env_decode(&node_opts, m.buf, m.len, &env, NULL) != SY_OK)
        return;
    sy_buf body, frame;
    sy_buf_init(&body);
    sy_buf_init(&frame);
    if (sy_msg_encode_body(&env.msg, &body) != SY_OK || !body.len)
        goto out_env;
    uint8_t *orig = malloc(body.len);
    if (!orig)
        abort();
    memcpy(orig, body.p, body.len);
    for (unsigned i = 0; i < flips; i++) {
        uint16_t at = take16(in);
        body.p[at % body.len] ^= take8(in);
    }
    /* t < 0x80 keeps the type; otherwise it picks one */
    uint8_t type = t < 0x80 ? env.type : (uint8_t)(t % SY_MSG_TYPE_MAX);
    bool same = type == env.type && !memcmp(orig, body.p, body.len);
    free(orig);
    sy_msg lm;
    if (sy_msg_decode_body(type, body.p, body.len, &lm) != SY_OK)
        goto out_env;
    if (sy_env_encode(CLUSTER, m.from, &lm, &sg[m.from], &frame) == SY_OK) {
        sy_env le;
        if (sy_env_decode(&node_opts, frame.p, frame.len, &le, NULL) == SY_OK) {
            /* an unchanged message is a duplicate, not a lie */
            if (!same)
                w->lied = true;
            sy_input si = { .kind = SY_IN_MSG };
            si.u.msg.from = le.sender;
            si.u.msg.msg = &le.msg;
            si.u.msg.raw = frame.p;
            si.u.msg.raw_len = frame.len;
            node_step(w, &w->nd[to], &si);
            sy_env_free(&le);
        }
    }
    sy_msg_free(&lm);
out_env:
    sy_buf_free(&frame);
    sy_buf_free(&body);
    sy_env_free(&env);
}

/* ---- clients ---- */

/* Client c's next signed PUT (or, retry, its last one again) to node i,
 * through the real decoder as synod's client endpoint takes it. */
static void client_request(world *w, uint32_t c, fz_node *nd, bool retry)
{
    if (!retry || !w->last_raw[c]) {
        if (w->req_no[c] >= MAX_REQ)
            return;
        uint64_t no = ++w->req_no[c];
        char key[8], val[24];
        snprintf(key, sizeof key, "k%u", c);
        snprintf(val, sizeof val, "v%llu", (unsigned long long)no);
        sy_msg m = { .type = SY_MSG_CLIENT_REQ };
        m.u.req = (sy_client_req){ .client_id = SY_CLIENT_ID_BASE + c, .req_no = no,
                                   .op = SY_OP_PUT,
                                   .key = { (const uint8_t *)key, (uint32_t)strlen(key) },
                                   .val = { (const uint8_t *)val, (uint32_t)strlen(val) } };
        sy_buf b;
        sy_buf_init(&b);
        if (sy_env_encode(CLUSTER, SY_CLIENT_ID_BASE + c, &m, &sg[NMAX + c], &b))
            abort();
        free(w->last_raw[c]);
        w->last_raw[c] = sy_buf_take(&b, &w->last_len[c]);
        sy_hash(w->last_raw[c], w->last_len[c], &w->req_dg[c][no]);
    }
    if (!nd->eng)
        return;
    sy_env env;
    if (sy_env_decode(&client_opts, w->last_raw[c], w->last_len[c], &env, NULL))
        abort();
    sy_input in = { .kind = SY_IN_REQUEST };
    in.u.request.req = &env.msg.u.req;
    in.u.request.raw = w->last_raw[c];
    in.u.request.raw_len = w->last_len[c];
    node_step(w, nd, &in);
    sy_env_free(&env);
}

/* ---- checks across nodes ---- */

/* Whether nd runs and says it leads; *st gets its status. */
static bool leads(const fz_node *nd, sy_engine_status *st)
{
    if (!nd->eng || nd->halt)
        return false;
    ENGINE.status(nd->eng, st);
    return st->role == SY_ROLE_LEADER;
}

static void check_leaders(world *w)
{
    for (uint32_t i = 0; i < w->n; i++) {
        fz_node *nd = &w->nd[i];
        sy_engine_status st;
        if (!leads(nd, &st))
            continue;
#ifdef FUZZ_PAXOS
        if (px_ballot_node(st.term) != i)
            finding(w, nd, "election: n%u leads in ballot %llu, which is n%u's", i,
                    (unsigned long long)st.term, px_ballot_node(st.term));
#endif
        size_t k = 0;
        while (k < w->n_leads && w->leads[k].term != st.term)
            k++;
        if (k < w->n_leads) {
            if (w->leads[k].node != i)
                finding(w, nd, "election: n%u and n%u both led in term %llu", w->leads[k].node,
                        i, (unsigned long long)st.term);
        } else if (w->n_leads < LEADS_MAX) {
            w->leads[w->n_leads].term = st.term;
            w->leads[w->n_leads].node = i;
            w->n_leads++;
        }
    }
}

/* The node that leads in the highest term now, else dflt. */
static fz_node *leader_or(world *w, fz_node *dflt)
{
    fz_node *l = dflt;
    uint64_t best = 0;
    for (uint32_t i = 0; i < w->n; i++) {
        fz_node *nd = &w->nd[i];
        sy_engine_status st;
        if (leads(nd, &st) && st.term >= best) {
            best = st.term;
            l = nd;
        }
    }
    return l;
}

/* Nodes a finding stopped (lie mode) stay down: the daemon stops on
 * SY_EFATAL and does not come back by itself. */
static void reap(world *w)
{
    for (uint32_t i = 0; i < w->n; i++)
        if (w->nd[i].halt) {
            node_down(&w->nd[i]);
            w->nd[i].dead = true;
        }
}

static uint32_t all_nodes(const world *w)
{
    return (1u << w->n) - 1;
}

static void tick(world *w, fz_node *nd)
{
    sy_input in = { .kind = SY_IN_TICK };
    node_step(w, nd, &in);
}

/* Every node takes a ready and syncs it, and the network delivers what it
 * holds between the nodes in mask, in order, until quiet (bounded): a calm
 * stretch of the run, or of one side of a partition. The other messages
 * wait, or (drop) are lost. */
static void calm(world *w, int rounds, uint32_t mask, bool drop)
{
    for (int r = 0; r < rounds; r++) {
        for (uint32_t i = 0; i < w->n; i++) {
            pump(w, &w->nd[i]);
            fsync_done(w, &w->nd[i], false);
            pump(w, &w->nd[i]);
        }
        /* delivering only steps engines: nothing joins the queue here */
        bool any = false;
        for (size_t k = 0; k < w->q.n;) {
            const fz_msg *m = &w->q.v[k];
            if ((mask >> m->from & 1u) && (mask >> m->to & 1u)) {
                deliver(w, k, false);
                any = true;
            } else if (drop) {
                msgs_remove(&w->q, k);
            } else {
                k++;
            }
        }
        check_leaders(w);
        reap(w);
        if (!any)
            break;
    }
}

static const uint32_t keep_choice[4] = { 1, 2, 4, 0 };        /* 0: the default */
static const uint32_t inflight_choice[4] = { 1, 2, 8, 64 };
static const uint32_t batch_choice[4] = { 1, 3, 16, 512 };
static const uint32_t pad_choice[4] = { 0, 200, 1500, 5000 };
static const uint32_t page_choice[4] = { 0, 2, 3, 8 };          /* 0: the default */

static void world_init(world *w, input *in)
{
    uint8_t c0 = take8(in), c1 = take8(in);
    memset(w, 0, sizeof *w);
    w->lies_on = (c0 & 4u) && (c1 & 0x80u);
    w->pad = pad_choice[c1 >> 4 & 3u];
#ifdef FUZZ_PAXOS
    w->n = N;
#else
    w->members_on = c0 & 0x80u;
    w->n = w->members_on ? NMAX : N;
#endif
    sy_buf_init(&w->scratch);
    for (uint32_t c = 0; c < CLIENTS; c++) {
        w->req_dg[c] = calloc(MAX_REQ + 1, sizeof *w->req_dg[c]);
        if (!w->req_dg[c])
            abort();
    }
    for (uint32_t i = 0; i < w->n; i++) {
        fz_node *nd = &w->nd[i];
        nd->id = i;
        sy_storage_mem_opts so = { .manual_sync = true };
        if (sy_storage_mem_new(&so, &nd->st))
            abort();
        sy_engine_cfg *g = &nd->cfg;
        g->self = i;
        g->n = N;
        g->f = 1;
        strcpy(g->cluster_id, CLUSTER);
        g->heartbeat_ms = 20;
        g->election_min_ms = 100;
        g->election_max_ms = 200;
        g->request_timeout_ms = 500;
        g->batch_max = batch_choice[c1 & 3u];
        /* 1024, the least synod accepts, cuts a Raft snapshot into chunks */
        g->batch_bytes_max = c1 & 4u ? 1024u : 1u << 20;
        g->max_inflight = inflight_choice[c0 >> 5 & 3u];
        g->max_pending = c1 & 8u ? 4u : 1000u;
        g->compact_keep = keep_choice[c0 >> 3 & 3u];
        /* Paxos: PROMISE, ACCEPT and CHOSEN pages of a few entries, so
         * short runs page too (Raft ignores it) */
        g->msg_entries_max = page_choice[(c0 >> 7) | (c1 >> 5 & 2u)];
        g->prevote = c0 & 1u;
        g->check_quorum = c0 & 2u;
        g->node_keys = pk;
        g->signer = &sg[i];
        g->verifier = &ver;
        g->clients = &clients_dir;
        nd->now = 1000 + 7 * i;
        node_start(w, nd);
    }
}

static void world_free(world *w)
{
    for (uint32_t i = 0; i < w->n; i++) {
        fz_node *nd = &w->nd[i];
        if (nd->eng)
            ENGINE.destroy(nd->eng);
        sy_ready_owned_free(&nd->own);
        msgs_free(&nd->frames);
        free(nd->reads);
        sy_storage_close(nd->st);
    }
    msgs_free(&w->q);
    for (uint32_t c = 0; c < CLIENTS; c++) {
        free(w->req_dg[c]);
        free(w->last_raw[c]);
    }
    free(w->commit_dg);
    free(w->state_dg);
    free(w->commit_known);
    free(w->state_known);
    sy_buf_free(&w->scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    input in = { data, size };
    world *w = malloc(sizeof *w);
    if (!w)
        abort();
    world_init(w, &in);
    for (int ops = 0; in.n && ops < MAX_OPS; ops++) {
        uint8_t op = take8(&in);
        uint8_t a = take8(&in);
        fz_node *nd = &w->nd[a % w->n];
        switch (op % (w->members_on ? 17 : 16)) {
        case 0: case 1: /* a client asks a node (bit 7: retries its last) */
            client_request(w, a >> 2 & 3u, nd, a & 0x80u);
            break;
        case 2: { /* a node's clock moves (and jumps, now and then) */
            uint8_t b = take8(&in);
            if (b < 0xe0) {
                nd->now += b;
            } else if (b < 0xf0) {
                /* to the engine's next deadline, as synod's wait ends */
                uint64_t dl = nd->eng ? ENGINE.next_deadline(nd->eng) : 0;
                if (dl > nd->now)
                    nd->now = dl;
            } else {
                nd->now += (uint64_t)(b - 0xef) * 10000u;
            }
            tick(w, nd);
            break;
        }
        case 3: /* every clock moves by the same amount */
            for (uint32_t i = 0; i < w->n; i++) {
                w->nd[i].now += (a >> 2) + 1u;
                tick(w, &w->nd[i]);
            }
            break;
        case 4: /* a host takes a ready and writes it */
            pump(w, nd);
            break;
        case 5: /* its write is durable (bit 7: a full commit) */
            fsync_done(w, nd, a & 0x80u);
            break;
        case 6: case 7: { /* the network delivers any message */
            size_t k = take16(&in);
            if (w->q.n)
                deliver(w, k % w->q.n, false);
            break;
        }
        case 8: /* ... the oldest few, in order */
            for (unsigned k = 0; k <= a % 8u && w->q.n; k++)
                deliver(w, 0, false);
            break;
        case 9: { /* ... loses one, or delivers a copy and keeps it */
            size_t k = take16(&in);
            if (!w->q.n)
                break;
            if (a & 0x80u)
                deliver(w, k % w->q.n, true);
            else
                msgs_remove(&w->q, k % w->q.n);
            break;
        }
        case 10: /* a node crashes (bit 7), or a down one restarts */
            if (nd->eng && (a & 0x80u))
                node_down(nd);
            else if (!nd->eng && !nd->dead)
                node_start(w, nd);
            break;
        case 11: /* a linearizable read */
            read_asked(w, nd);
            break;
        case 12: { /* an operator asks for a hand-off: to the engine's pick,
                    * a node, or whatever id an admin typed */
            uint8_t b = take8(&in);
            sy_input t = { .kind = SY_IN_TRANSFER };
            t.u.transfer.target = b < 0x40 ? SY_NO_NODE : b < 0xf0 ? b % w->n : b;
            node_step(w, nd, &t);
            break;
        }
        case 13: /* a local snapshot starts, or the one under way ends */
            if (nd->snap_busy)
                snap_done(w, nd);
            else
                snap_begin(nd);
            break;
        case 14: /* a peer lies (lie inputs only); else a calm stretch */
            if (w->lies_on)
                lie(w, &in);
            else
                calm(w, 1 + a % 4, all_nodes(w), false);
            break;
        case 15: { /* a calm stretch on one side of a partition (bits 3-5,
                    * and 7 for node 3; none: no partition), the rest held
                    * or lost (bit 6) */
            uint32_t side = ((a >> 3 & 7u) | (a >> 4 & 8u)) & all_nodes(w);
            calm(w, 1 + a % 8, side ? side : all_nodes(w), a & 0x40u);
            break;
        }
        case 16: { /* membership inputs: an operator asks the leader (bit
                    * 6: this node, whatever it is) to add (bit 7) or remove
                    * a node, or whatever id an admin typed */
            uint8_t b = take8(&in);
            sy_input c = { .kind = SY_IN_CONF_CHANGE };
            c.u.conf.node = b < 0xf0 ? b % NMAX : b;
            c.u.conf.add = a & 0x80u;
            node_step(w, a & 0x40u ? nd : leader_or(w, nd), &c);
            break;
        }
        }
        check_leaders(w);
        reap(w);
    }
    /* the nodes come back and the network calms down: whatever the run
     * left behind must still commit consistently */
    for (uint32_t i = 0; i < w->n; i++)
        if (!w->nd[i].eng && !w->nd[i].dead)
            node_start(w, &w->nd[i]);
    for (int r = 0; r < 15; r++) {
        for (uint32_t i = 0; i < w->n; i++) {
            w->nd[i].now += 40;
            tick(w, &w->nd[i]);
        }
        calm(w, 10, all_nodes(w), false);
    }
    world_free(w);
    free(w);
    return 0;
}
