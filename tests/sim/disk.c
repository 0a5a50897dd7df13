/* Disk fault, corruption: a torn or rotten sector flips one byte of one
 * stored value of a crashed node -- a log entry, a ledger block or a meta
 * value (hard state, snapshot, applied index, state digest, ledger tip...).
 *
 * What must hold (storage.h: every such value is checksummed and verified
 * on read): the corruption is detected, never served. The node either
 * refuses to start (sy_storage_load_boot reads the hard state, snapshot,
 * applied index and every log entry), or, for a value the boot path does
 * not read (ledger blocks, the state digest, the ledger tip), the first
 * read of it fails with SY_ECORRUPT and the node stops, as the daemon stops
 * on a storage error. A value overwritten or deleted before anything read
 * it did no harm. At the end of the run, a read of every corrupted value
 * still stored must be refused.
 *
 * A node that detected a corruption stays down for the rest of the run:
 * operators rebuild such a replica, which for Raft and Paxos is only safe
 * with the procedure in docs/operations.md, so it is not modelled. It
 * counts toward the f faulty nodes, so a node is corrupted only while the
 * nodes lost that way stay within the fault budget. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/sim/sim_int.h"
#include "core/config.h"
#include "core/evidence.h"
#include "crypto/sy_err.h"

uint32_t sim_disk_lost_nodes(const sim_world *w)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < w->n; i++)
        k += w->nodes[i].dead || w->nodes[i].corrupt || w->nodes[i].lost || w->nodes[i].replaced;
    return k;
}

static size_t count_keys(sy_txn *t, int tbl)
{
    size_t n = 0;
    sy_bytes k, v;
    int rc = sy_txn_seek(t, tbl, NULL, 0, false, &k, &v);
    while (rc == SY_OK) {
        n++;
        rc = sy_txn_seek(t, tbl, k.p, k.len, true, &k, &v);
    }
    return n;
}

/* The idx-th key of tbl (in order) and its value's length. */
static bool nth_key(sy_txn *t, int tbl, size_t idx, sy_bytes *key, size_t *vlen)
{
    sy_bytes k, v;
    int rc = sy_txn_seek(t, tbl, NULL, 0, false, &k, &v);
    for (size_t i = 0; rc == SY_OK && i < idx; i++)
        rc = sy_txn_seek(t, tbl, k.p, k.len, true, &k, &v);
    if (rc)
        return false;
    *key = k;
    *vlen = v.len;
    return true;
}

static void describe(sim_node *nd)
{
    const uint8_t *k = nd->corrupt_key;
    if (nd->corrupt_tbl == SY_TBL_META)
        snprintf(nd->corrupt_what, sizeof nd->corrupt_what, "meta value '%.*s'",
                 (int)nd->corrupt_kl, (const char *)k);
    else
        snprintf(nd->corrupt_what, sizeof nd->corrupt_what, "%s %" PRIu64,
                 nd->corrupt_tbl == SY_TBL_LOG ? "log entry" : "ledger block",
                 nd->corrupt_kl == 8 ? sy_get_u64be(k) : 0);
}

void sim_disk_maybe_corrupt(sim_world *w, sim_node *nd)
{
    uint32_t pct = w->o.corrupt_pct ? w->o.corrupt_pct : SY_SIM_CORRUPT_PCT;
    if (!(w->o.faults & SY_FAULT_DISK) || w->calm || pct == SY_SIM_CORRUPT_OFF ||
        nd->host >= w->n || nd->byz || nd->corrupt || nd->dead ||
        sim_disk_lost_nodes(w) + 1 > w->budget || sy_rng_below(&w->rng, 100) >= pct)
        return;
    static const int tbls[3] = { SY_TBL_LOG, SY_TBL_LEDGER, SY_TBL_META };
    uint32_t what = w->o.corrupt_what ? w->o.corrupt_what
                                      : SY_CORRUPT_LOG | SY_CORRUPT_LEDGER | SY_CORRUPT_META;
    sy_txn t;
    if (sy_txn_begin(nd->st, false, &t))
        return;
    size_t counts[3], kinds = 0;
    for (int c = 0; c < 3; c++) {
        counts[c] = what & (1u << c) ? count_keys(&t, tbls[c]) : 0;
        kinds += counts[c] > 0;
    }
    if (!kinds) {
        sy_txn_abort(&t);
        return;
    }
    /* a kind at random among those present, then a value of that kind */
    uint64_t pick = sy_rng_below(&w->rng, kinds);
    int c = 0;
    while (counts[c] == 0 || pick-- > 0)
        c++;
    sy_bytes key;
    size_t vlen = 0;
    if (!nth_key(&t, tbls[c], (size_t)sy_rng_below(&w->rng, counts[c]), &key, &vlen) ||
        vlen == 0 || key.len > sizeof nd->corrupt_key) {
        sy_txn_abort(&t);
        return;
    }
    nd->corrupt_tbl = tbls[c];
    nd->corrupt_kl = key.len;
    memcpy(nd->corrupt_key, key.p, key.len);
    sy_txn_abort(&t);
    size_t off = (size_t)sy_rng_below(&w->rng, vlen);
    if (sy_storage_mem_corrupt(nd->st, nd->corrupt_tbl, nd->corrupt_key, nd->corrupt_kl, off))
        return;
    /* keep the corrupted bytes: at the end, the same bytes still stored
     * means nothing overwrote them, so a read must refuse them */
    sy_bytes v;
    if (sy_txn_begin(nd->st, false, &t))
        return;
    if (sy_txn_get(&t, nd->corrupt_tbl, nd->corrupt_key, nd->corrupt_kl, &v) == SY_OK &&
        (nd->corrupt_val = malloc(v.len ? v.len : 1))) {
        memcpy(nd->corrupt_val, v.p, v.len);
        nd->corrupt_vl = v.len;
    }
    sy_txn_abort(&t);
    if (!nd->corrupt_val)
        return;  /* out of memory: the value is corrupt but untracked; the
                    checksums still guard it, only the accounting is lost */
    nd->corrupt = true;
    describe(nd);
    w->st->corruptions++;
    sim_trace(w, TR_CORRUPT, nd->id, UINT32_MAX, (uint64_t)nd->corrupt_tbl, off, 0);
    if (w->o.verbose)
        fprintf(w->o.out, "  n%u: corrupted byte %zu of its %s\n", nd->id, off,
                nd->corrupt_what);
}

/* True if msg names what: "log entry 1" is not named by "log entry 17". */
static bool names_value(const char *msg, const char *what)
{
    size_t wl = strlen(what);
    for (const char *p = strstr(msg, what); p; p = strstr(p + 1, what))
        if (p[wl] < '0' || p[wl] > '9')
            return true;
    return false;
}

static void forget(sim_node *nd)
{
    nd->corrupt = false;
    free(nd->corrupt_val);
    nd->corrupt_val = NULL;
    nd->corrupt_vl = 0;
}

static bool detected(sim_world *w, sim_node *nd, const char *when, uint64_t *counter)
{
    const char *msg = sy_storage_errmsg(nd->st);
    if (!names_value(msg, nd->corrupt_what)) {
        sim_fail(w, "corruption-detected", "n%u %s: %s; but the value corrupted is its %s", nd->id,
                 when, msg, nd->corrupt_what);
        return true;
    }
    (*counter)++;
    if (!w->st->corrupt_note[0])
        snprintf(w->st->corrupt_note, sizeof w->st->corrupt_note, "n%u %s: %s", nd->id, when,
                 msg);
    if (w->o.verbose)
        fprintf(w->o.out, "  n%u %s: %s\n", nd->id, when, msg);
    sim_trace(w, TR_CORRUPT_FOUND, nd->id, UINT32_MAX, (uint64_t)nd->corrupt_tbl, 0,
              SY_ECORRUPT);
    forget(nd);
    nd->dead = true;
    if (nd->up)
        sim_node_halt(w, nd);
    return true;
}

bool sim_disk_detected(sim_world *w, sim_node *nd, int rc, const char *when)
{
    if (rc != SY_ECORRUPT || !nd->corrupt)
        return false;
    return detected(w, nd, when, nd->up ? &w->st->corrupt_at_run : &w->st->corrupt_at_boot);
}

/* Reads the corrupted value through the layer that owns its format. */
static int typed_read(sim_node *nd, sy_txn *t)
{
    uint64_t k = nd->corrupt_kl == 8 ? sy_get_u64be(nd->corrupt_key) : 0;
    if (nd->corrupt_tbl == SY_TBL_LOG) {
        sy_entry e;
        return sy_txn_entry(t, k, &e);
    }
    if (nd->corrupt_tbl == SY_TBL_LEDGER) {
        sy_ledger_block b;
        return sy_ledger_get(t, k, &b);
    }
    char name[sizeof nd->corrupt_key + 1];
    memcpy(name, nd->corrupt_key, nd->corrupt_kl);
    name[nd->corrupt_kl] = 0;
    sy_bytes v;
    return sy_txn_meta_get(t, name, &v);
}

void sim_disk_check_final(sim_world *w)
{
    for (uint32_t i = 0; i < w->n && !w->stop; i++) {
        sim_node *nd = &w->nodes[i];
        if (!nd->corrupt)
            continue;
        sy_txn t;
        int rc = sy_txn_begin(nd->st, false, &t);
        if (rc) {
            sim_fail(w, "storage", "n%u could not read its disk: %s", nd->id, sy_strerror(rc));
            return;
        }
        sy_bytes v;
        rc = sy_txn_get(&t, nd->corrupt_tbl, nd->corrupt_key, nd->corrupt_kl, &v);
        if (rc == SY_ENOTFOUND ||
            (rc == SY_OK && (v.len != nd->corrupt_vl ||
                             memcmp(v.p, nd->corrupt_val, nd->corrupt_vl) != 0))) {
            sy_txn_abort(&t);
            w->st->corrupt_healed++;
            forget(nd);
            continue;
        }
        if (rc == SY_OK)
            rc = typed_read(nd, &t);
        sy_txn_abort(&t);
        if (rc == SY_ECORRUPT) {
            detected(w, nd, "refused its corrupted value at the end of the run",
                     &w->st->corrupt_at_end);
        } else if (rc == SY_OK) {
            sim_fail(w, "corruption-detected", "n%u read its corrupted %s without an error",
                     nd->id, nd->corrupt_what);
        } else {
            sim_fail(w, "corruption-detected", "n%u reading its corrupted %s: %s (%s), want "
                     "SY_ECORRUPT", nd->id, nd->corrupt_what, sy_errname(rc),
                     sy_storage_errmsg(nd->st));
        }
    }
}

void sim_disk_check_ledgers(sim_world *w)
{
    if (!(w->o.faults & SY_FAULT_DISK))
        return;
    /* commit evidence too, for the engines whose format evidence.h knows */
    int proto = SY_PROTO_NONE;
    bool known = sy_protocol_parse(w->o.protocol, &proto) == SY_OK && proto != SY_PROTO_NONE;
    sy_evidence_ctx ec = { .protocol = proto, .cluster_id = SIM_CLUSTER_ID,
                           .node_keys = w->node_keys, .n = w->n, .f = w->f,
                           .verifier = &w->verifier };
    for (uint32_t i = 0; i < w->n && !w->stop; i++) {
        sim_node *nd = &w->nodes[i];
        if (sim_node_excluded(nd) || !nd->up)
            continue;
        uint64_t height = 0;
        char why[SY_LEDGER_WHY] = "";
        int rc = sy_ledger_verify(nd->st, &w->envo, known ? sy_evidence_check : NULL, &ec,
                                  &height, why, sizeof why);
        if (rc) {
            sim_fail(w, "ledger-verify", "n%u ledger does not verify: %s (%s)", nd->id,
                     why[0] ? why : "?", sy_errname(rc));
            return;
        }
        w->st->chk_ledger_blocks += height;
    }
}
