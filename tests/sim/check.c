/* Safety and liveness checks over a simulated run (docs/simulator.md):
 *  agreement    no two nodes commit different entries at the same index
 *  validity     every committed request was signed and submitted by a client
 *  exactly-once no request takes effect at two different log positions
 *  convergence  nodes that applied the same index hold the same state
 *  durability   every acknowledged write is applied on every node at the end
 *  linearizability of the client-observed history
 * Liveness is checked by the run loop (sim.c). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "tests/sim/sim_int.h"
#include "crypto/sy_err.h"

#define LINZ_MAX_STEPS 5000000ull

int sim_check_init(sim_world *w)
{
    if (sy_linz_new(&w->hist))
        return SY_ENOMEM;
    /* an op uses one request number; a BFT read that falls back to an
     * ordered one uses two */
    w->subs_per_client = 2 * (uint64_t)w->o.requests + 2;
    w->subs = calloc((size_t)w->n_clients * w->subs_per_client, sizeof *w->subs);
    return w->subs ? SY_OK : SY_ENOMEM;
}

void sim_check_free(sim_world *w)
{
    sy_linz_free(w->hist);
    free(w->subs);
    free(w->commit_digest);
    free(w->state_digest);
    free(w->commit_known);
    free(w->state_known);
    free(w->ledger_head);
}

sim_sub *sim_sub_of(sim_world *w, uint32_t client, uint64_t req_no)
{
    if (client < SY_CLIENT_ID_BASE)
        return NULL;
    uint64_t ci = client - SY_CLIENT_ID_BASE;
    if (ci >= w->n_clients || req_no == 0 || req_no >= w->subs_per_client)
        return NULL;
    return &w->subs[ci * w->subs_per_client + req_no];
}

static bool grow(sim_world *w, uint64_t index)
{
    if (index < w->cap_commit)
        return true;
    size_t nc = w->cap_commit ? w->cap_commit : 1024;
    while (nc <= index)
        nc *= 2;
    sy_digest *cd = realloc(w->commit_digest, nc * sizeof *cd);
    if (cd)
        w->commit_digest = cd;
    sy_digest *sd = realloc(w->state_digest, nc * sizeof *sd);
    if (sd)
        w->state_digest = sd;
    sim_ledger_head *ldg = realloc(w->ledger_head, nc * sizeof *ldg);
    if (ldg)
        w->ledger_head = ldg;
    bool *ck = realloc(w->commit_known, nc * sizeof *ck);
    if (ck)
        w->commit_known = ck;
    bool *sk = realloc(w->state_known, nc * sizeof *sk);
    if (sk)
        w->state_known = sk;
    if (!cd || !sd || !ldg || !ck || !sk) {
        sim_fail(w, "simulator", "out of memory in the commit table");
        return false;
    }
    memset(w->commit_known + w->cap_commit, 0, (nc - w->cap_commit) * sizeof *ck);
    memset(w->state_known + w->cap_commit, 0, (nc - w->cap_commit) * sizeof *sk);
    w->cap_commit = nc;
    return true;
}

/* The state digest, and a digest of the ledger head: its height and the
 * content of its tip block (log position, batch and results digests). The
 * block hash itself is not compared: it covers commit evidence, which for
 * Raft is each node's own signature and so differs between honest nodes. */
int sim_node_digest(sim_node *nd, sy_digest *state, sim_ledger_head *ledger)
{
    uint64_t height = 0;
    sy_digest tip;
    int rc = sy_kv_digest(&nd->kvm, state);
    if (rc)
        return rc;
    sy_txn t;
    if ((rc = sy_txn_begin(nd->st, false, &t)))
        return rc;
    sy_hasher h;
    sy_hash_init(&h);
    memset(ledger, 0, sizeof *ledger);
    rc = sy_ledger_tip(&t, &height, &tip);
    ledger->height = height;
    if (rc == SY_OK && height) {
        sy_ledger_block b;
        rc = sy_ledger_get(&t, height, &b);
        if (rc == SY_OK) {
            sy_hash_update(&h, &b.index, sizeof b.index);
            sy_hash_update(&h, &b.term, sizeof b.term);
            sy_hash_update(&h, b.batch_digest.b, sizeof b.batch_digest.b);
            sy_hash_update(&h, b.results_digest.b, sizeof b.results_digest.b);
            ledger->has_content = true;
        } else if (rc == SY_ENOTFOUND) {
            rc = SY_OK;   /* the chain restarted after a snapshot's tip */
        }
    }
    sy_txn_abort(&t);
    if (rc)
        return rc;
    sy_hash_final(&h, &ledger->content);
    return SY_OK;
}

void sim_check_commit(sim_world *w, sim_node *nd, const sy_entry *e)
{
    if (!grow(w, e->index))
        return;
    sy_digest d;
    sy_entry_digest(e, &d);
    w->st->chk_agreement++;
    if (!w->commit_known[e->index]) {
        w->commit_known[e->index] = true;
        w->commit_digest[e->index] = d;
    } else if (!sy_digest_eq(&d, &w->commit_digest[e->index])) {
        char a[17], b[17];
        sy_digest_hex(&d, 8, a);
        sy_digest_hex(&w->commit_digest[e->index], 8, b);
        sim_fail(w, "agreement", "n%u committed entry %s (term %" PRIu64 ") at index %" PRIu64
                 " where another node committed %s", nd->id, a, e->term, e->index, b);
        return;
    }
    if (e->index > w->st->max_commit)
        w->st->max_commit = e->index;
}

static bool heads_agree(sim_ledger_head *known, const sim_ledger_head *h)
{
    if (known->height != h->height)
        return false;
    if (known->has_content && h->has_content)
        return sy_digest_eq(&known->content, &h->content);
    if (h->has_content) {
        known->has_content = true;
        known->content = h->content;
    }
    return true;
}

void sim_check_applied(sim_world *w, sim_node *nd, uint64_t index)
{
    if (nd->byz || !grow(w, index))
        return;
    sy_digest d;
    sim_ledger_head ld;
    int rc = sim_node_digest(nd, &d, &ld);
    if (rc) {
        /* reading the digest or the ledger tip found the corruption that
         * was injected there: the node stops (the caller sees it down) */
        if (sim_disk_detected(w, nd, rc, "stopped"))
            return;
        sim_fail(w, "storage", "n%u could not read its state digest: %s (%s)", nd->id,
                 sy_strerror(rc), sy_storage_errmsg(nd->st));
        return;
    }
    w->st->chk_convergence++;
    if (!w->state_known[index]) {
        w->state_known[index] = true;
        w->state_digest[index] = d;
        w->ledger_head[index] = ld;
    } else if (!sy_digest_eq(&w->state_digest[index], &d)) {
        sim_fail(w, "convergence", "n%u state after applying index %" PRIu64
                 " differs from another node's at the same index", nd->id, index);
    } else if (!heads_agree(&w->ledger_head[index], &ld)) {
        sim_fail(w, "convergence", "n%u ledger head after applying index %" PRIu64
                 " differs from another node's at the same index", nd->id, index);
    }
    if (index > w->st->max_commit)
        w->st->max_commit = index;
}

void sim_check_final(sim_world *w)
{
    /* durability: acknowledged writes survived every crash, on every node */
    for (uint32_t c = 0; c < w->n_clients && !w->stop; c++) {
        for (uint64_t r = 1; r < w->subs_per_client && !w->stop; r++) {
            const sim_sub *s = &w->subs[c * w->subs_per_client + r];
            if (!s->acked || !s->is_write)
                continue;
            w->st->chk_durability++;
            if (!s->applied_index) {
                sim_fail(w, "durability", "client %u request %" PRIu64 " was acknowledged but "
                         "never took effect on any node", c, r);
                break;
            }
            /* BFT: f+1 matching replies guarantee one correct replica only */
            uint32_t have = 0;
            for (uint32_t i = 0; i < w->n; i++)
                have += !sim_node_excluded(&w->nodes[i]) &&
                        w->nodes[i].applied >= s->applied_index;
            if (w->bft && have == 0) {
                sim_fail(w, "durability", "client %u request %" PRIu64 " (index %" PRIu64
                         ") was acknowledged but no correct replica holds it at the end", c,
                         r, s->applied_index);
                break;
            }
            for (uint32_t i = 0; i < w->n && !w->bft; i++) {
                if (!sim_node_excluded(&w->nodes[i]) &&
                    w->nodes[i].applied < s->applied_index) {
                    sim_fail(w, "durability", "client %u request %" PRIu64 " (index %" PRIu64
                             ") was acknowledged but n%u ended at index %" PRIu64, c, r,
                             s->applied_index, i, w->nodes[i].applied);
                    break;
                }
            }
        }
    }
    if (w->stop)
        return;
    /* convergence at the end: same index, same digest */
    sy_digest d0, di;
    sim_ledger_head l0, li;
    uint32_t ref = 0;
    while (ref < w->n && sim_node_excluded(&w->nodes[ref]))
        ref++;
    if (ref == w->n || sim_node_digest(&w->nodes[ref], &d0, &l0))
        return;
    for (uint32_t i = ref + 1; i < w->n; i++) {
        if (!sim_node_excluded(&w->nodes[i]) &&
            w->nodes[i].applied == w->nodes[ref].applied &&
            (sim_node_digest(&w->nodes[i], &di, &li) || !sy_digest_eq(&d0, &di) ||
             !heads_agree(&l0, &li))) {
            sim_fail(w, "convergence", "n%u and n%u ended at index %" PRIu64 " with different "
                     "states", ref, i, w->nodes[i].applied);
            return;
        }
    }
    sy_linz_result lr;
    w->st->linz_ops = sy_linz_count(w->hist);
    if (sy_linz_check(w->hist, LINZ_MAX_STEPS, &lr)) {
        sim_fail(w, "simulator", "out of memory checking linearizability");
        return;
    }
    w->st->linz_verdict = lr.verdict;
    if (lr.verdict == SY_LINZ_VIOLATION) {
        char op[200];
        sy_linz_describe(w->hist, lr.bad_op, op, sizeof op);
        sim_fail(w, "linearizability", "history on key %s (%zu ops) has no valid order; "
                 "stuck at %s", lr.key, lr.key_ops, op);
    }
}
