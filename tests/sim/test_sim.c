/* The simulator and its checks, driven by a deliberately simple engine: a
 * fixed-leader sequencer (node 0 orders every request, replicates it, and
 * commits once a majority has it durably). A correct sequencer must pass
 * every check under every fault; broken variants (split brain, stale
 * follower reads) must be caught by the check that names their bug; and a
 * seed must replay exactly. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/sim/sim.h"
#include "tests/sim/linz.h"
#include "core/msg.h"
#include "core/engine.h"
#include "crypto/sy_err.h"

/* ---------------- the fake engine ---------------- */

/* mutant codes (>= SY_SIM_MUTANT_BASE): the checks must catch them */
enum { FK_CORRECT = 0, FK_SPLIT_BRAIN = SY_SIM_MUTANT_BASE, FK_STALE_READS };
#define FK_LEADER 0u
#define FK_MAX_SEND 32u

typedef struct {
    uint8_t *data;
    uint32_t len;
} fk_ent;

typedef struct {
    uint32_t self, n;
    int mode;
    fk_ent *log;              /* log[i] holds index first + i */
    size_t nlog, cap;
    uint64_t first;           /* boot snapshot index + 1 */
    uint64_t stable;          /* durable through (after advance) */
    uint64_t handed;          /* entries handed to the host through */
    uint64_t commit, emitted; /* committed; reported to host through */
    uint64_t match[SY_SIM_MAX_NODES], next[SY_SIM_MAX_NODES];
    uint64_t now, hb_due;
    bool dirty_send;
    /* effects of the current ready, freed at advance */
    sy_outmsg *msgs;
    size_t nmsgs, capmsgs;
    sy_entry *views;          /* rd.entries + append payloads */
    size_t nviews, capviews;
    sy_committed *comm;
    size_t ncomm, capcomm;
    sy_read_state reads[256];
    size_t nreads;
    sy_reject rejects[256];
    size_t nrejects;
    uint8_t hs[8];
    bool hs_dirty;
    uint64_t ready_last;
    size_t pending_views;     /* views referenced by msgs of this ready */
} fake;

static uint64_t last_index(const fake *f) { return f->first - 1 + f->nlog; }

static bool fk_append(fake *f, const uint8_t *p, uint32_t len)
{
    if (f->nlog == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 64;
        fk_ent *nl = realloc(f->log, nc * sizeof *nl);
        if (!nl)
            return false;
        f->log = nl;
        f->cap = nc;
    }
    uint8_t *d = malloc(len ? len : 1);
    if (!d)
        return false;
    memcpy(d, p, len);
    f->log[f->nlog++] = (fk_ent){ d, len };
    return true;
}

static sy_entry *view_alloc(fake *f, size_t n)
{
    if (f->nviews + n > f->capviews) {
        /* views are referenced by pointer until advance: never realloc
         * mid-ready, so size generously up front */
        return NULL;
    }
    sy_entry *v = &f->views[f->nviews];
    f->nviews += n;
    return v;
}

static sy_entry fk_entry(const fake *f, uint64_t index)
{
    const fk_ent *e = &f->log[index - f->first];
    return (sy_entry){ .index = index, .term = 1, .type = SY_ENTRY_NORMAL,
                       .data = { e->data, e->len } };
}

static sy_outmsg *msg_alloc(fake *f)
{
    if (f->nmsgs == f->capmsgs) {
        size_t nc = f->capmsgs ? f->capmsgs * 2 : 16;
        sy_outmsg *nm = realloc(f->msgs, nc * sizeof *nm);
        if (!nm)
            return NULL;
        f->msgs = nm;
        f->capmsgs = nc;
    }
    sy_outmsg *m = &f->msgs[f->nmsgs++];
    memset(m, 0, sizeof *m);
    return m;
}

static bool is_leader(const fake *f) { return f->mode == FK_SPLIT_BRAIN || f->self == FK_LEADER; }

static void set_commit(fake *f, uint64_t c)
{
    if (c > f->commit) {
        f->commit = c;
        memcpy(f->hs, &c, 8);
        f->hs_dirty = true;
    }
}

static void leader_commit(fake *f)
{
    if (f->mode == FK_SPLIT_BRAIN) {
        set_commit(f, f->stable);
        return;
    }
    for (uint64_t c = last_index(f); c > f->commit; c--) {
        uint32_t votes = f->stable >= c;
        for (uint32_t i = 0; i < f->n; i++)
            if (i != f->self && f->match[i] >= c)
                votes++;
        if (votes * 2 > f->n) {
            set_commit(f, c);
            return;
        }
    }
}

static int fk_create(const sy_engine_cfg *cfg, const sy_engine_boot *boot, void **out)
{
    fake *f = calloc(1, sizeof *f);
    if (!f)
        return SY_ENOMEM;
    f->self = cfg->self;
    f->n = cfg->n;
    f->mode = (int)cfg->test_behaviour;
    f->first = boot->snap_index + 1;
    f->capviews = 1u << 16;
    f->views = calloc(f->capviews, sizeof *f->views);
    if (!f->views) {
        free(f);
        return SY_ENOMEM;
    }
    for (size_t i = 0; i < boot->n_entries; i++) {
        if (boot->entries[i].index != last_index(f) + 1 ||
            !fk_append(f, boot->entries[i].data.p, boot->entries[i].data.len)) {
            free(f->views);
            free(f);
            return SY_ECORRUPT;
        }
    }
    f->stable = f->handed = last_index(f);
    uint64_t c = 0;
    if (boot->hardstate.len == 8)
        memcpy(&c, boot->hardstate.p, 8);
    f->commit = c > boot->applied ? c : boot->applied;
    if (f->commit > f->stable)
        f->commit = f->stable;
    f->emitted = boot->applied;
    for (uint32_t i = 0; i < f->n; i++)
        f->next[i] = last_index(f) + 1;
    f->dirty_send = true;
    *out = f;
    return SY_OK;
}

static void fk_destroy(void *e)
{
    fake *f = e;
    for (size_t i = 0; i < f->nlog; i++)
        free(f->log[i].data);
    free(f->log);
    free(f->msgs);
    free(f->views);
    free(f->comm);
    free(f);
}

static void send_appends(fake *f)
{
    for (uint32_t i = 0; i < f->n; i++) {
        if (i == f->self)
            continue;
        sy_outmsg *m = msg_alloc(f);
        if (!m)
            return;
        m->to = i;
        m->msg.type = SY_MSG_RAFT_APPEND;
        sy_raft_append *a = &m->msg.u.append;
        uint64_t from = f->next[i] < f->first ? f->first : f->next[i];
        /* entries of this ready are durable before the host sends */
        uint64_t upto = f->ready_last;
        if (upto >= from + FK_MAX_SEND)
            upto = from + FK_MAX_SEND - 1;
        a->term = 1;
        a->prev_index = from - 1;
        a->prev_term = from > 1 ? 1 : 0;
        a->commit = f->commit;
        if (upto >= from) {
            sy_entry *v = view_alloc(f, upto - from + 1);
            if (!v)
                continue;
            for (uint64_t x = from; x <= upto; x++)
                v[x - from] = fk_entry(f, x);
            a->entries = v;
            a->n_entries = (uint32_t)(upto - from + 1);
        }
    }
}

static int fk_step(void *e, const sy_input *in)
{
    fake *f = e;
    f->now = in->now_ms;
    switch (in->kind) {
    case SY_IN_TICK:
        if (f->now >= f->hb_due) {
            f->hb_due = f->now + 50;
            f->dirty_send = true;
        }
        return SY_OK;
    case SY_IN_REQUEST:
        if (!is_leader(f)) {
            if (f->nrejects < 256)
                f->rejects[f->nrejects++] = (sy_reject){ in->u.request.req->client_id,
                                                         in->u.request.req->req_no,
                                                         SY_ENOTLEADER, FK_LEADER };
            return SY_OK;
        }
        {
            sy_bytes raw = { in->u.request.raw, (uint32_t)in->u.request.raw_len };
            uint8_t *batch;
            size_t blen;
            if (sy_batch_encode(&raw, 1, &batch, &blen))
                return SY_ENOMEM;
            bool ok = fk_append(f, batch, (uint32_t)blen);
            free(batch);
            return ok ? SY_OK : SY_ENOMEM;
        }
    case SY_IN_READ:
        if (f->nreads >= 256)
            return SY_EFULL;
        if (is_leader(f) || f->mode == FK_STALE_READS)
            f->reads[f->nreads++] = (sy_read_state){ in->u.read.read_id, f->commit, SY_OK };
        else
            f->reads[f->nreads++] = (sy_read_state){ in->u.read.read_id, 0, SY_ENOTLEADER };
        return SY_OK;
    case SY_IN_MSG: {
        const sy_msg *m = in->u.msg.msg;
        uint32_t from = in->u.msg.from;
        if (m->type == SY_MSG_RAFT_APPEND && !is_leader(f)) {
            const sy_raft_append *a = &m->u.append;
            sy_outmsg *o = msg_alloc(f);
            if (!o)
                return SY_ENOMEM;
            o->to = from;
            o->msg.type = SY_MSG_RAFT_APPEND_RESP;
            sy_raft_append_resp *r = &o->msg.u.append_resp;
            r->term = 1;
            if (a->prev_index > last_index(f)) {
                r->success = false;
                r->last_index = last_index(f);
                return SY_OK;
            }
            for (uint32_t i = 0; i < a->n_entries; i++) {
                const sy_entry *x = &a->entries[i];
                if (x->index <= last_index(f))
                    continue;  /* one leader, one term: what we have matches */
                if (x->index != last_index(f) + 1 || !fk_append(f, x->data.p, x->data.len))
                    break;
            }
            r->success = true;
            r->match_index = a->prev_index + a->n_entries;
            if (r->match_index > last_index(f))
                r->match_index = last_index(f);
            r->last_index = last_index(f);
            uint64_t c = a->commit < r->match_index ? a->commit : r->match_index;
            set_commit(f, c);
        } else if (m->type == SY_MSG_RAFT_APPEND_RESP && is_leader(f) && from < f->n) {
            const sy_raft_append_resp *r = &m->u.append_resp;
            if (r->success) {
                if (r->match_index > f->match[from])
                    f->match[from] = r->match_index;
                f->next[from] = f->match[from] + 1;
            } else {
                f->next[from] = r->last_index + 1;
                f->dirty_send = true;
            }
            if (f->next[from] <= f->handed)
                f->dirty_send = true;
            leader_commit(f);
        }
        return SY_OK;
    }
    default:
        return SY_OK;
    }
}

static void fk_ready(void *e, sy_ready *rd)
{
    fake *f = e;
    memset(rd, 0, sizeof *rd);
    if (f->hs_dirty) {
        rd->hardstate_dirty = true;
        rd->hardstate = (sy_bytes){ f->hs, 8 };
    }
    if (last_index(f) > f->handed) {
        uint64_t from = f->handed + 1;
        sy_entry *v = view_alloc(f, last_index(f) - f->handed);
        if (v) {
            for (uint64_t x = from; x <= last_index(f); x++)
                v[x - from] = fk_entry(f, x);
            rd->entries = v;
            rd->n_entries = last_index(f) - f->handed;
        }
        f->ready_last = last_index(f);
        f->dirty_send = true;
    } else {
        f->ready_last = f->handed;
    }
    if (is_leader(f) && f->mode != FK_SPLIT_BRAIN && f->dirty_send) {
        send_appends(f);
        f->dirty_send = false;
    }
    /* commits only of entries durable before this ready */
    uint64_t c = f->commit < f->stable ? f->commit : f->stable;
    if (c > f->emitted) {
        size_t k = c - f->emitted;
        sy_committed *nc = realloc(f->comm, k * sizeof *nc);
        if (nc) {
            f->comm = nc;
            for (size_t i = 0; i < k; i++)
                f->comm[i] = (sy_committed){ .entry = fk_entry(f, f->emitted + 1 + i) };
            rd->committed = f->comm;
            rd->n_committed = k;
            f->ncomm = k;
        }
    }
    rd->msgs = f->msgs;
    rd->n_msgs = f->nmsgs;
    rd->reads = f->reads;
    rd->n_reads = f->nreads;
    rd->rejects = f->rejects;
    rd->n_rejects = f->nrejects;
}

static void fk_advance(void *e, uint64_t now_ms)
{
    fake *f = e;
    f->now = now_ms;
    f->handed = f->stable = f->ready_last;
    f->emitted += f->ncomm;
    f->ncomm = 0;
    f->nmsgs = f->nreads = f->nrejects = f->nviews = 0;
    f->hs_dirty = false;
    if (is_leader(f))
        leader_commit(f);
}

static void fk_status(void *e, sy_engine_status *st)
{
    fake *f = e;
    memset(st, 0, sizeof *st);
    st->role = is_leader(f) ? SY_ROLE_LEADER : SY_ROLE_FOLLOWER;
    st->term = 1;
    st->leader = f->mode == FK_SPLIT_BRAIN ? f->self : FK_LEADER;
    st->last_index = last_index(f);
    st->commit_index = f->commit;
}

static uint64_t fk_deadline(void *e)
{
    fake *f = e;
    return f->hb_due ? f->hb_due : 1;
}

static const sy_engine_ops fake_ops = {
    .name = "fake", .create = fk_create, .destroy = fk_destroy, .step = fk_step,
    .ready = fk_ready, .advance = fk_advance, .status = fk_status,
    .next_deadline = fk_deadline,
};

/* ---------------- tests ---------------- */

static FILE *sink;

static void opts_for(sy_sim_opts *o, uint64_t seed, uint32_t faults, int mode)
{
    sy_sim_opts_default(o);
    o->protocol = "fake";
    o->ops = &fake_ops;
    o->nodes = 3;
    o->seed = seed;
    o->requests = 120;
    o->faults = faults;
    o->fault_ms = 5000;
    o->out = sink;
    o->snapshot_every = UINT32_MAX;   /* the fake cannot send snapshots */
    /* a fixed-leader sequencer cannot outlive node 0 refusing to start for
     * good after a detected disk corruption; the real engines are tested
     * with corruption below */
    o->corrupt_pct = SY_SIM_CORRUPT_OFF;
    for (uint32_t i = 0; i < 3 && mode; i++)
        o->byz[o->n_byz++] = (sy_sim_byz){ i, (uint32_t)mode };
}

static int setup(void **s)
{
    (void)s;
    sink = tmpfile();
    return sink ? 0 : -1;
}

static int teardown(void **s)
{
    (void)s;
    fclose(sink);
    return 0;
}

static void test_correct_engine_passes_every_check_without_faults(void **s)
{
    (void)s;
    sy_sim_opts o;
    sy_sim_stats st;
    opts_for(&o, 1, 0, FK_CORRECT);
    assert_int_equal(sy_sim_run(&o, &st), SY_OK);
    assert_false(st.failed);
    assert_true(st.liveness_ok);
    assert_int_equal(st.ops_ok, 120);
    assert_int_equal(st.ops_gave_up, 0);
    assert_int_equal(st.linz_verdict, SY_LINZ_OK);
    assert_int_equal(st.linz_ops, 120);
    assert_true(st.chk_agreement > 0);
    assert_true(st.chk_durability > 0);
    assert_true(st.chk_convergence > 0);
}

static void test_correct_engine_passes_under_network_faults(void **s)
{
    (void)s;
    uint32_t faults = SY_FAULT_DROP | SY_FAULT_DUP | SY_FAULT_REORDER | SY_FAULT_PARTITION |
                      SY_FAULT_SKEW | SY_FAULT_PAUSE;
    uint64_t dropped = 0, partitions = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        sy_sim_opts o;
        sy_sim_stats st;
        opts_for(&o, seed, faults, FK_CORRECT);
        assert_int_equal(sy_sim_run(&o, &st), SY_OK);
        if (st.failed)
            fail_msg("seed %llu: %s: %s", (unsigned long long)seed, st.check, st.why);
        assert_int_equal(st.linz_verdict, SY_LINZ_OK);
        dropped += st.msgs_dropped;
        partitions += st.partitions;
    }
    assert_true(dropped > 0);
    assert_true(partitions > 0);
}

static void test_correct_engine_passes_under_crashes_and_disk_faults(void **s)
{
    (void)s;
    uint64_t crashes = 0, lost = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        sy_sim_opts o;
        sy_sim_stats st;
        opts_for(&o, seed, SY_FAULT_ALL, FK_CORRECT);
        assert_int_equal(sy_sim_run(&o, &st), SY_OK);
        if (st.failed)
            fail_msg("seed %llu: %s: %s", (unsigned long long)seed, st.check, st.why);
        crashes += st.crashes;
        lost += st.disk_lost;
    }
    assert_true(crashes > 0);
    assert_true(lost > 0);
}

static void test_same_seed_replays_identically(void **s)
{
    (void)s;
    sy_sim_opts o;
    sy_sim_stats a, b, c;
    opts_for(&o, 42, SY_FAULT_ALL, FK_CORRECT);
    assert_int_equal(sy_sim_run(&o, &a), SY_OK);
    assert_int_equal(sy_sim_run(&o, &b), SY_OK);
    assert_int_equal(a.events, b.events);
    assert_int_equal(a.msgs_sent, b.msgs_sent);
    assert_int_equal(a.crashes, b.crashes);
    assert_int_equal(a.sim_ms, b.sim_ms);
    assert_int_equal(a.max_commit, b.max_commit);
    o.seed = 43;
    assert_int_equal(sy_sim_run(&o, &c), SY_OK);
    assert_true(a.events != c.events || a.msgs_sent != c.msgs_sent);
}

static void test_split_brain_is_caught_by_agreement(void **s)
{
    (void)s;
    sy_sim_opts o;
    sy_sim_stats st;
    opts_for(&o, 7, 0, FK_SPLIT_BRAIN);
    rewind(sink);
    assert_int_equal(sy_sim_run(&o, &st), SY_OK);
    assert_true(st.failed);
    assert_string_equal(st.check, "agreement");
    /* the report names the replay command and shows the trace */
    char buf[8192];
    fflush(sink);
    rewind(sink);
    size_t n = fread(buf, 1, sizeof buf - 1, sink);
    buf[n] = 0;
    assert_non_null(strstr(buf, "FAILED check agreement"));
    assert_non_null(strstr(buf, "replay: synod-sim --protocol fake --nodes 3 --seed 7"));
    assert_non_null(strstr(buf, "--mutant 0:100"));
    assert_non_null(strstr(buf, "events of the trace:"));
}

static void test_stale_follower_reads_are_caught_by_linearizability(void **s)
{
    (void)s;
    int caught = 0;
    /* seeds 16, 24, 33, 41 of 1..60 catch it since replies may leave
     * before the fsync (early replies); 1..10 did before */
    for (uint64_t seed = 1; seed <= 60 && !caught; seed++) {
        sy_sim_opts o;
        sy_sim_stats st;
        opts_for(&o, seed, SY_FAULT_REORDER | SY_FAULT_PARTITION, FK_STALE_READS);
        o.requests = 200;
        assert_int_equal(sy_sim_run(&o, &st), SY_OK);
        if (st.failed) {
            assert_string_equal(st.check, "linearizability");
            caught++;
        }
    }
    assert_true(caught > 0);
}

static void test_ed25519_signatures_work_end_to_end(void **s)
{
    (void)s;
    sy_sim_opts o;
    sy_sim_stats st;
    opts_for(&o, 3, SY_FAULT_DROP, FK_CORRECT);
    o.requests = 30;
    o.ed25519 = true;
    assert_int_equal(sy_sim_run(&o, &st), SY_OK);
    assert_false(st.failed);
    assert_int_equal(st.ops_ok, 30);
}

static void test_fault_lists_parse_and_reject_unknown_names(void **s)
{
    (void)s;
    uint32_t m;
    char bad[32];
    assert_int_equal(sy_sim_parse_faults("all", &m, bad, sizeof bad), SY_OK);
    assert_int_equal(m, SY_FAULT_ALL);
    assert_int_equal(sy_sim_parse_faults("drop,crash", &m, bad, sizeof bad), SY_OK);
    assert_int_equal(m, SY_FAULT_DROP | SY_FAULT_CRASH);
    assert_int_equal(sy_sim_parse_faults("none", &m, bad, sizeof bad), SY_OK);
    assert_int_equal(m, 0);
    assert_int_equal(sy_sim_parse_faults("drop,meteor,dup", &m, bad, sizeof bad), SY_EINVAL);
    assert_string_equal(bad, "meteor");
}

/* An opt-in fault: spec parses to expect, the fault's bit is not in
 * "all", and it prints under its name. */
static void assert_opt_in_fault(const char *spec, uint32_t expect, uint32_t bit, const char *name)
{
    uint32_t m;
    char bad[32];
    assert_int_equal(sy_sim_parse_faults(spec, &m, bad, sizeof bad), SY_OK);
    assert_int_equal(m, expect);
    assert_int_equal(SY_FAULT_ALL & bit, 0);
    assert_string_equal(sy_sim_fault_name(bit), name);
}

static void test_leader_churn_is_opt_in_and_kept_in_the_replay_line(void **s)
{
    (void)s;
    uint32_t m = SY_FAULT_ALL | SY_FAULT_CHURN;
    char line[512];
    assert_opt_in_fault("all,leader-churn", m, SY_FAULT_CHURN, "leader-churn");
    sy_sim_opts o;
    sy_sim_opts_default(&o);
    o.faults = m;
    sy_sim_replay_line(&o, line, sizeof line);
    assert_non_null(strstr(line, "--faults all,leader-churn"));
    o.faults = SY_FAULT_CRASH | SY_FAULT_CHURN;
    sy_sim_replay_line(&o, line, sizeof line);
    assert_non_null(strstr(line, "--faults crash,leader-churn"));
}

static void test_replay_line_reproduces_options(void **s)
{
    (void)s;
    sy_sim_opts o;
    sy_sim_opts_default(&o);
    o.protocol = "raft";
    o.nodes = 5;
    o.seed = 99;
    o.requests = 300;
    o.faults = SY_FAULT_DROP | SY_FAULT_PARTITION;
    char line[256];
    sy_sim_replay_line(&o, line, sizeof line);
    assert_string_equal(line, "synod-sim --protocol raft --nodes 5 --seed 99 --requests 300 "
                              "--faults drop,partition");
    o.snapshot_every = 8;
    o.compact_keep = 2;
    sy_sim_replay_line(&o, line, sizeof line);
    assert_string_equal(line, "synod-sim --protocol raft --nodes 5 --seed 99 --requests 300 "
                              "--faults drop,partition --snapshot-every 8 --compact-keep 2");
}

/* ---------------- disk corruption, with the real engines ---------------- */

/* Runs o; a run whose checks failed fails the test, naming the run. */
static void run_passing(const sy_sim_opts *o, sy_sim_stats *st)
{
    assert_int_equal(sy_sim_run(o, st), SY_OK);
    if (st->failed)
        fail_msg("%s seed %llu: %s: %s", o->protocol, (unsigned long long)o->seed, st->check,
                 st->why);
}

static void engine_opts(sy_sim_opts *o, const char *protocol, uint64_t seed)
{
    sy_sim_opts_default(o);
    o->protocol = protocol;
    o->ops = sy_engine_lookup(protocol);
    o->nodes = strcmp(protocol, "pbft") == 0 ? 4 : 3;
    o->seed = seed;
    o->requests = 80;
    o->fault_ms = 8000;
    o->out = sink;
}

/* The handoff fault (opt-in) makes leaders of every engine hand over, the
 * runs still pass every check, and the hand-offs are quick: the node that
 * handed over follows its successor, on average (simulated time), well
 * before a follower's election timeout (300 ms here; Raft, Paxos) or a
 * backup's request timer (1 s; PBFT) would have replaced it. */
static void test_handoff_fault_hands_leadership_on_quickly_in_every_engine(void **s)
{
    (void)s;
    char line[512];
    assert_opt_in_fault("all,handoff", SY_FAULT_ALL | SY_FAULT_HANDOFF, SY_FAULT_HANDOFF,
                        "handoff");
    const char *const protos[] = { "raft", "paxos", "pbft" };
    const uint64_t limit_ms[] = { 300, 300, 1000 };
    for (size_t k = 0; k < 3; k++) {
        uint64_t handoffs = 0, done = 0, ms = 0;
        for (uint64_t seed = 1; seed <= 10; seed++) {
            sy_sim_opts o;
            sy_sim_stats st;
            engine_opts(&o, protos[k], seed);
            assert_non_null(o.ops);
            o.faults = SY_FAULT_HANDOFF;
            o.requests = 400;   /* long enough for hand-offs to finish */
            if (seed == 1) {
                sy_sim_replay_line(&o, line, sizeof line);
                assert_non_null(strstr(line, "--faults handoff"));
            }
            run_passing(&o, &st);
            assert_true(st.liveness_ok);
            handoffs += st.handoffs;
            done += st.handoffs_done;
            ms += st.handoff_ms;
        }
        if (!done || ms / done >= limit_ms[k])
            fail_msg("%s: %llu hand-offs, %llu done, %llu ms in all", protos[k],
                     (unsigned long long)handoffs, (unsigned long long)done,
                     (unsigned long long)ms);
    }
}

/* Runs crash,partition plus an opt-in fault that ends with nodes lost for
 * good (lose, outage) on raft n=5, paxos n=3 and pbft n=4, seeds 1-4:
 * every check passes, f nodes are lost, and the replay line names the
 * fault; each run has want_outages quorums lost. */
static void run_losing_fault(uint32_t fault, const char *name, uint64_t want_outages)
{
    char line[512];
    const char *const protos[] = { "raft", "paxos", "pbft" };
    const uint32_t nodes[] = { 5, 3, 4 }, f[] = { 2, 1, 1 };
    for (size_t k = 0; k < 3; k++) {
        for (uint64_t seed = 1; seed <= 4; seed++) {
            sy_sim_opts o;
            sy_sim_stats st;
            engine_opts(&o, protos[k], seed);
            o.nodes = nodes[k];
            o.faults = SY_FAULT_CRASH | SY_FAULT_PARTITION | fault;
            if (seed == 1) {
                sy_sim_replay_line(&o, line, sizeof line);
                assert_non_null(strstr(line, name));
            }
            run_passing(&o, &st);
            assert_int_equal(st.lost_nodes, f[k]);
            assert_int_equal(st.outages, want_outages);
            assert_true(st.liveness_ok);
        }
    }
}

/* lose: as the faults end, f correct nodes -- the leader or primary
 * first -- stop for good; the others must converge and serve without
 * them (the end-of-run checks leave the lost ones out). */
static void test_lose_fault_stops_f_nodes_for_good_and_the_rest_go_on(void **s)
{
    (void)s;
    assert_opt_in_fault("crash,lose", SY_FAULT_CRASH | SY_FAULT_LOSE, SY_FAULT_LOSE, "lose");
    run_losing_fault(SY_FAULT_LOSE, "lose", 0);
}

/* outage: as the faults end, f+1 correct nodes are down at once -- f for
 * good, one back 1-8 s later -- and the n-f left must serve every request
 * that waited out the lost quorum. */
static void test_outage_fault_loses_the_quorum_then_the_rest_serve(void **s)
{
    (void)s;
    assert_opt_in_fault("crash,outage", SY_FAULT_CRASH | SY_FAULT_OUTAGE, SY_FAULT_OUTAGE,
                        "outage");
    run_losing_fault(SY_FAULT_OUTAGE, "outage", 1);
}

/* replace: disks die and nodes come back on empty ones with cfg.rejoin
 * (synod --rejoin); they must rejoin and catch up, and every check holds.
 * PBFT has no rejoin: the simulator refuses the fault there. */
static void test_replace_fault_rejoins_replaced_nodes(void **s)
{
    (void)s;
    assert_opt_in_fault("crash,replace", SY_FAULT_CRASH | SY_FAULT_REPLACE, SY_FAULT_REPLACE,
                        "replace");
    const char *const protos[] = { "raft", "paxos" };
    for (size_t k = 0; k < 2; k++) {
        uint64_t replaced = 0, rejoined = 0;
        for (uint64_t seed = 1; seed <= 6; seed++) {
            sy_sim_opts o;
            sy_sim_stats st;
            engine_opts(&o, protos[k], seed);
            o.faults = SY_FAULT_ALL | SY_FAULT_REPLACE;
            run_passing(&o, &st);
            assert_true(st.liveness_ok);
            replaced += st.replaced;
            rejoined += st.rejoined;
        }
        assert_true(replaced > 0);
        assert_true(rejoined > 0);
    }
}

static void test_corrupted_log_entry_is_detected_on_restart(void **s)
{
    (void)s;
    /* every crash that the budget allows corrupts a log entry: the node must
     * refuse to start, naming the entry, and the others keep serving */
    uint64_t found = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        sy_sim_opts o;
        sy_sim_stats st;
        engine_opts(&o, "raft", seed);
        assert_non_null(o.ops);
        o.faults = SY_FAULT_CRASH | SY_FAULT_DISK;
        o.corrupt_pct = 100;
        o.corrupt_what = SY_CORRUPT_LOG;
        run_passing(&o, &st);
        assert_true(st.liveness_ok);
        assert_int_equal(st.corrupt_at_boot, st.corruptions);
        if (!st.corruptions)
            continue;
        unsigned node;
        unsigned long long index;
        char tail[64];
        if (sscanf(st.corrupt_note, "n%u refused to start: log entry %llu %63[^\n]", &node,
                   &index, tail) != 3)
            fail_msg("seed %llu: note '%s'", (unsigned long long)seed, st.corrupt_note);
        assert_true(index >= 1);
        assert_string_equal(tail, "failed its checksum");
        found += st.corruptions;
    }
    assert_true(found > 0);
}

static void test_runs_with_disk_corruption_pass_every_check(void **s)
{
    (void)s;
    static const char *const protocols[] = { "raft", "paxos", "pbft" };
    for (size_t p = 0; p < sizeof protocols / sizeof protocols[0]; p++) {
        uint64_t injected = 0, detected = 0, healed = 0, blocks = 0;
        for (uint64_t seed = 1; seed <= 4; seed++) {
            sy_sim_opts o;
            sy_sim_stats st;
            engine_opts(&o, protocols[p], seed);
            if (!o.ops)
                fail_msg("engine %s is not built", protocols[p]);
            o.faults = SY_FAULT_ALL;
            o.corrupt_pct = 100;
            run_passing(&o, &st);
            assert_true(st.liveness_ok);
            injected += st.corruptions;
            detected += st.corrupt_at_boot + st.corrupt_at_run + st.corrupt_at_end;
            healed += st.corrupt_healed;
            blocks += st.chk_ledger_blocks;
        }
        /* each corruption was refused by a read, or overwritten unread */
        assert_true(injected > 0);
        assert_int_equal(detected + healed, injected);
        assert_true(detected > 0);
        assert_true(blocks > 0);  /* the live nodes' ledgers verified */
    }
}

static void test_corruption_stays_within_the_fault_budget(void **s)
{
    (void)s;
    /* one node of three may be lost for good; a second would stop the
     * cluster, so it is never corrupted */
    for (uint64_t seed = 1; seed <= 3; seed++) {
        sy_sim_opts o;
        sy_sim_stats st;
        engine_opts(&o, "raft", seed);
        o.faults = SY_FAULT_CRASH | SY_FAULT_DISK;
        o.corrupt_pct = 100;
        assert_int_equal(sy_sim_run(&o, &st), SY_OK);
        assert_false(st.failed);
        assert_true(st.corruptions <= 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_correct_engine_passes_every_check_without_faults),
        cmocka_unit_test(test_correct_engine_passes_under_network_faults),
        cmocka_unit_test(test_correct_engine_passes_under_crashes_and_disk_faults),
        cmocka_unit_test(test_leader_churn_is_opt_in_and_kept_in_the_replay_line),
        cmocka_unit_test(test_same_seed_replays_identically),
        cmocka_unit_test(test_split_brain_is_caught_by_agreement),
        cmocka_unit_test(test_stale_follower_reads_are_caught_by_linearizability),
        cmocka_unit_test(test_ed25519_signatures_work_end_to_end),
        cmocka_unit_test(test_fault_lists_parse_and_reject_unknown_names),
        cmocka_unit_test(test_replay_line_reproduces_options),
        cmocka_unit_test(test_handoff_fault_hands_leadership_on_quickly_in_every_engine),
        cmocka_unit_test(test_lose_fault_stops_f_nodes_for_good_and_the_rest_go_on),
        cmocka_unit_test(test_outage_fault_loses_the_quorum_then_the_rest_serve),
        cmocka_unit_test(test_replace_fault_rejoins_replaced_nodes),
        cmocka_unit_test(test_corrupted_log_entry_is_detected_on_restart),
        cmocka_unit_test(test_runs_with_disk_corruption_pass_every_check),
        cmocka_unit_test(test_corruption_stays_within_the_fault_budget),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
