/* Raft log storage in memory, and the membership it implies.
 *
 * Invariant: ents[] holds a contiguous run log_start..last; the entry before
 * it (prev_index, prev_term) is known, either a compacted entry or the last
 * snapshot (thesis 5.1). Committed entries are never truncated (3.5, Log
 * Matching + Leader Completeness); a truncation below commit is a broken
 * invariant and reported as SY_EFATAL. The configuration in effect is the
 * latest config entry in the log, applied when appended, not when committed
 * (4.1); truncating such an entry reverts to the one before it. Entry data
 * freed by truncation or compaction may still be referenced by effects
 * already queued, so it is freed at the next advance(). */
#include <stdlib.h>
#include <string.h>
#include "cft/raft/raft.h"
#include "crypto/sy_err.h"

void raft_defer_free(raft *r, void *p)
{
    if (sy_outbox_defer_free(&r->out, p))
        r->dropped++;   /* a leak rather than a pointer left dangling in an effect */
}

bool raft_term_of(const raft *r, uint64_t idx, uint64_t *term)
{
    if (idx == 0) {
        *term = 0;
        return true;
    }
    if (idx == r->prev_index) {
        *term = r->prev_term;
        return true;
    }
    if (idx < r->log_start || idx > raft_last_index(r))
        return false;
    *term = r->ents[idx - r->log_start].term;
    return true;
}

uint64_t raft_last_term(const raft *r)
{
    return r->n_ents ? r->ents[r->n_ents - 1].term : r->prev_term;
}

bool raft_is_voter(const raft *r, uint32_t id)
{
    for (uint32_t i = 0; i < r->conf.n_voters; i++)
        if (r->conf.voters[i] == id)
            return true;
    return false;
}

bool raft_is_learner(const raft *r, uint32_t id)
{
    for (uint32_t i = 0; i < r->conf.n_learners; i++)
        if (r->conf.learners[i] == id)
            return true;
    return false;
}

uint32_t raft_quorum(const raft *r)
{
    return r->conf.n_voters / 2 + 1;
}

void raft_conf_apply(raft *r, const sy_members *m, uint64_t index)
{
    r->conf = *m;
    r->conf_index = index;
    for (uint32_t id = 0; id < SY_MAX_NODES; id++) {
        bool want = id != r->cfg.self && (raft_is_voter(r, id) || raft_is_learner(r, id));
        if (want && !r->prs[id].member) {
            r->prs[id].member = true;
            raft_pr_reset(r, id);
        } else if (!want) {
            r->prs[id].member = false;
        }
    }
}

static bool entry_conf(const sy_entry *e, sy_members *out)
{
    return e->type == SY_ENTRY_CONFIG && sy_members_decode(e->data.p, e->data.len, out) == SY_OK;
}

/* Configuration in effect at idx (latest config entry <= idx). */
void raft_conf_at(raft *r, uint64_t idx, sy_members *out)
{
    uint64_t last = raft_last_index(r);
    if (idx > last)
        idx = last;
    for (uint64_t i = idx; i >= r->log_start && i > 0; i--)
        if (entry_conf(raft_entry(r, i), out))
            return;
    *out = r->base_conf;
}

void raft_conf_recompute(raft *r)
{
    for (uint64_t i = raft_last_index(r); i >= r->log_start && i > 0; i--) {
        sy_members m;
        if (entry_conf(raft_entry(r, i), &m)) {
            if (i != r->conf_index || memcmp(&m, &r->conf, sizeof m) != 0)
                raft_conf_apply(r, &m, i);
            return;
        }
    }
    if (r->conf_index != 0 || memcmp(&r->base_conf, &r->conf, sizeof r->conf) != 0)
        raft_conf_apply(r, &r->base_conf, 0);
}

int raft_log_append_owned(raft *r, uint64_t term, uint8_t type, uint8_t *data,
                          uint32_t len, uint32_t nreq)
{
    size_t old_cap = r->cap_ents;
    if (sy_grow((void **)&r->ents, &r->cap_ents, r->n_ents + 1, sizeof(sy_entry)))
        return SY_ENOMEM;
    if (r->cap_ents != old_cap) {
        uint32_t *np = realloc(r->nreq, r->cap_ents * sizeof(uint32_t));
        if (!np) {
            r->cap_ents = old_cap;   /* ents is merely larger than recorded */
            return SY_ENOMEM;
        }
        r->nreq = np;
    }
    sy_entry *e = &r->ents[r->n_ents];
    e->index = raft_last_index(r) + 1;
    e->term = term;
    e->type = type;
    e->data.p = data;
    e->data.len = len;
    r->nreq[r->n_ents] = nreq;
    r->n_ents++;
    sy_members m;
    if (entry_conf(e, &m))
        raft_conf_apply(r, &m, e->index);
    return SY_OK;
}

int raft_log_append(raft *r, uint64_t term, uint8_t type, const uint8_t *data,
                    uint32_t len, uint32_t nreq)
{
    uint8_t *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy)
            return SY_ENOMEM;
        memcpy(copy, data, len);
    }
    int rc = raft_log_append_owned(r, term, type, copy, len, nreq);
    if (rc)
        free(copy);
    return rc;
}

int raft_log_truncate(raft *r, uint64_t from)
{
    uint64_t last = raft_last_index(r);
    if (from > last)
        return SY_OK;
    if (from <= r->commit || from < r->log_start)
        return SY_EFATAL;   /* would lose a committed entry */
    bool had_conf = r->conf_index >= from;
    for (uint64_t i = from; i <= last; i++)
        raft_defer_free(r, (void *)raft_entry(r, i)->data.p);
    r->n_ents = from - r->log_start;
    if (from < r->unstable_from) {
        if (r->trunc_from == 0 || from < r->trunc_from)
            r->trunc_from = from;
        r->unstable_from = from;
    }
    if (had_conf)
        raft_conf_recompute(r);
    return SY_OK;
}

/* Drops entries <= upto (upto <= commit). */
int raft_log_compact(raft *r, uint64_t upto)
{
    if (upto <= r->prev_index)
        return SY_OK;
    if (upto > r->commit || upto > raft_last_index(r))
        return SY_EINVAL;
    sy_members base;
    raft_conf_at(r, upto, &base);
    uint64_t t = 0;
    raft_term_of(r, upto, &t);
    size_t drop = upto - r->log_start + 1;
    for (size_t i = 0; i < drop; i++)
        raft_defer_free(r, (void *)r->ents[i].data.p);
    memmove(r->ents, r->ents + drop, (r->n_ents - drop) * sizeof(sy_entry));
    memmove(r->nreq, r->nreq + drop, (r->n_ents - drop) * sizeof(uint32_t));
    r->n_ents -= drop;
    r->log_start = upto + 1;
    r->prev_index = upto;
    r->prev_term = t;
    r->base_conf = base;
    if (r->conf_index <= upto && r->conf_index != 0)
        r->conf_index = 0;   /* now carried by base_conf */
    if (upto > r->compact_to)
        r->compact_to = upto;
    return SY_OK;
}
