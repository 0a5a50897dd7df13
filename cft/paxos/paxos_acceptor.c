/* Acceptor and learner side: PREPARE, ACCEPT, CHOSEN, LEARN, SNAPSHOT.
 *
 * Invariants (Paxos Made Simple 2.2 P1a/P2, PMMC 3 "Acceptors"):
 *  - an acceptor answers PREPARE(b) with a promise only if b >= promised,
 *    and then never accepts a ballot below b; the promise carries every
 *    value it accepted at or above the proposer's first unknown slot, each
 *    with the ballot it was accepted at;
 *  - it accepts ACCEPT(b) only if b >= promised (adopting b), and the value
 *    is in its log (persisted with the reply, core/engine.h) before the
 *    ACCEPTED leaves;
 *  - a learner marks slot s chosen (commit) only if every slot below is
 *    chosen and either the leader of ballot b announced s chosen and this
 *    node accepted s in b (the leader proposes one value per slot per
 *    ballot), or the value came in a CHOSEN/PROMISE from a node that had it
 *    chosen. Chosen slots are never rewritten. */
#include <stdlib.h>
#include <string.h>
#include "cft/paxos/paxos.h"
#include "crypto/sy_err.h"

/* ---------------------------------------------------------- phase 1 */

/* A pre-prepare (px_campaign): would we promise m->ballot? Not while a
 * leader is alive as far as we know: we lead, or the leader we follow was
 * heard from within the minimum election timeout. Nothing changes here,
 * not even the highest ballot seen. */
static int answer_probe(paxos *p, uint32_t from, const sy_paxos_prepare *m)
{
    bool leader_alive = p->role == PX_LEADER ||
                        (p->leader != SY_NO_NODE &&
                         p->now < p->last_contact + p->cfg.election_min_ms);
    sy_msg *r = px_send(p, from, SY_MSG_PAXOS_PROMISE);
    if (!r)
        return SY_ENOMEM;
    sy_paxos_promise *pr = &r->u.paxos.promise;
    pr->ballot = m->ballot;
    pr->probe = true;
    pr->ok = m->ballot > p->promised && !leader_alive && !p->rejoining;
    pr->promised = p->promised;
    pr->commit = p->commit;
    pr->snap_index = p->log_start - 1;
    pr->from_slot = m->from_slot;
    return SY_OK;
}

int px_recv_prepare(paxos *p, uint32_t from, const sy_paxos_prepare *m)
{
    if (m->probe)
        return answer_probe(p, from, m);
    px_see_ballot(p, m->ballot);
    sy_msg *r = px_send(p, from, SY_MSG_PAXOS_PROMISE);
    if (!r)
        return SY_ENOMEM;
    sy_paxos_promise *pr = &r->u.paxos.promise;
    pr->ballot = m->ballot;
    pr->from_slot = m->from_slot;
    /* rejoining (px_rejoin_check): no promise, and none of its placeholder
     * state reported as if it were what it accepted */
    if (m->ballot < p->promised || p->rejoining) {
        pr->ok = false;
        pr->promised = p->promised;
        pr->commit = p->commit;
        pr->snap_index = p->log_start - 1;
        return SY_OK;
    }
    if (m->ballot > p->promised) {
        if (p->role != PX_FOLLOWER)
            px_become_follower(p, SY_NO_NODE);
        p->leader = SY_NO_NODE;
        p->probing = false;   /* another candidate is further along: let it */
        px_promise(p, m->ballot);
    }
    /* Give the proposer time to finish phase 1 before competing. */
    px_reset_election(p, false);
    pr->ok = true;
    pr->promised = p->promised;
    pr->commit = p->commit;
    pr->snap_index = p->log_start - 1;   /* compaction point: slots below are gone */

    /* Report accepted values from from_slot on, skipping placeholders, in
     * pages bounded like any message (next_slot says where to go on). */
    uint64_t lo = m->from_slot < p->log_start ? p->log_start : m->from_slot;
    uint64_t last = px_last(p);
    if (lo > last || p->n_ents == 0)
        return SY_OK;
    uint64_t n = 0, bytes = 0, s;
    for (s = lo; s <= last; s++) {
        const sy_entry *e = px_ent(p, s);
        if (e->term == 0)
            continue;
        if (n == p->cfg.msg_entries_max || (n > 0 && bytes + e->data.len > SY_PAXOS_MSG_BYTES))
            break;
        n++;
        bytes += e->data.len;
    }
    if (s <= last)
        pr->next_slot = s;
    if (n == 0)
        return SY_OK;
    sy_entry *arr = malloc(n * sizeof *arr);
    if (!arr)
        return SY_ENOMEM;
    if (px_defer_free(p, arr)) {
        free(arr);
        return SY_ENOMEM;
    }
    uint64_t k = 0;
    for (uint64_t t = lo; t < s; t++)
        if (px_ent(p, t)->term != 0)
            arr[k++] = *px_ent(p, t);
    pr->entries = arr;
    pr->n_entries = (uint32_t)k;
    return SY_OK;
}

/* ---------------------------------------------------------- phase 2 */

void px_advance_commit_follower(paxos *p, uint64_t ballot)
{
    uint64_t last = px_last(p);
    while (p->commit < p->known_chosen && p->commit < last &&
           px_ent(p, p->commit + 1)->term == ballot)
        p->commit++;
}

static int reply_accepted(paxos *p, uint32_t to, uint64_t ballot, bool ok, uint64_t first,
                          uint32_t count, uint64_t read_ctx)
{
    sy_msg *r = px_send(p, to, SY_MSG_PAXOS_ACCEPTED);
    if (!r)
        return SY_ENOMEM;
    sy_paxos_accepted *a = &r->u.paxos.accepted;
    a->ballot = ballot;
    a->ok = ok;
    a->promised = p->promised;
    a->first = count ? first : 0;
    a->count = count;
    a->commit = p->commit;
    a->read_ctx = read_ctx;
    return SY_OK;
}

int px_recv_accept(paxos *p, uint32_t from, const sy_paxos_accept *m)
{
    px_see_ballot(p, m->ballot);
    if (px_ballot_node(m->ballot) != from)
        return SY_EINVAL;     /* only a ballot's owner proposes in it */
    for (uint32_t i = 0; i < m->n_entries; i++)
        if (!px_val_ok(&m->entries[i]))
            return SY_EINVAL;
    if (m->ballot < p->promised)
        return reply_accepted(p, from, m->ballot, false, 0, 0, m->read_ctx);
    if (m->ballot > p->promised || p->role != PX_FOLLOWER) {
        if (p->role != PX_FOLLOWER)
            px_become_follower(p, from);
        px_promise(p, m->ballot);
    }
    if (p->leader != from) {
        p->leader = from;
        p->leader_changes++;
    }
    p->probing = false;
    p->last_contact = p->now;
    px_reset_election(p, false);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const sy_entry *e = &m->entries[i];
        if (e->index <= p->commit || e->index < p->log_start)
            continue;   /* already chosen here: its value is the proposal's */
        int rc = px_log_put(p, e->index, m->ballot, e->type, e->data.p, e->data.len, false);
        if (rc)
            return rc;
    }
    if (m->chosen > p->known_chosen)
        p->known_chosen = m->chosen;
    if (p->rejoining && m->chosen > p->rejoin_commit)
        p->rejoin_commit = m->chosen;   /* the leader's own chosen prefix */
    px_advance_commit_follower(p, m->ballot);
    uint64_t first = m->n_entries ? m->entries[0].index : 0;
    return reply_accepted(p, from, m->ballot, true, first, m->n_entries, m->read_ctx);
}

/* ---------------------------------------------------------- learning */

static bool same_value(const sy_entry *a, const sy_entry *b)
{
    return a->type == b->type && a->data.len == b->data.len &&
           (a->data.len == 0 || memcmp(a->data.p, b->data.p, a->data.len) == 0);
}

int px_recv_chosen(paxos *p, uint32_t from, const sy_paxos_chosen *m)
{
    px_see_ballot(p, m->ballot);
    if (m->ballot == p->promised && p->leader == from) {
        p->last_contact = p->now;
        px_reset_election(p, false);
    }
    for (uint32_t i = 0; i < m->n_entries; i++)
        if (!px_val_ok(&m->entries[i]))
            return SY_EINVAL;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const sy_entry *e = &m->entries[i];
        if (e->index <= p->commit) {
            /* Two different chosen values for one slot: safety is already
             * lost somewhere; stop rather than apply a diverging ledger. */
            if (e->index >= p->log_start && !same_value(px_ent(p, e->index), e))
                return SY_EFATAL;
            continue;
        }
        if (e->index != p->commit + 1)
            break;
        int rc = px_log_put(p, e->index, e->term, e->type, e->data.p, e->data.len, false);
        if (rc)
            return rc;
        p->commit++;
    }
    if (p->role == PX_FOLLOWER)
        px_advance_commit_follower(p, p->promised);
    return reply_accepted(p, from, m->ballot, m->ballot >= p->promised, 0, 0, 0);
}

int px_send_snap_chunk(paxos *p, uint32_t to, uint64_t offset)
{
    if (offset > p->snap_len)
        offset = 0;
    uint64_t len = p->snap_len - offset;
    if (len > PX_SNAP_CHUNK)
        len = PX_SNAP_CHUNK;
    sy_msg *m = px_send(p, to, SY_MSG_PAXOS_SNAPSHOT);
    if (!m)
        return SY_ENOMEM;
    sy_paxos_snapshot *s = &m->u.paxos.snap;
    s->ballot = p->promised;
    s->index = p->snap_index;
    s->term = p->snap_term;
    s->offset = offset;
    s->done = offset + len == p->snap_len;
    s->data.p = p->snap_data ? p->snap_data + offset : NULL;
    s->data.len = (uint32_t)len;
    p->peers[to].snap_index = p->snap_index;
    p->peers[to].snap_offset = offset;
    return SY_OK;
}

int px_send_catchup(paxos *p, uint32_t to, uint64_t from_slot)
{
    if (to >= p->cfg.n || to == p->cfg.self || from_slot > p->commit)
        return SY_OK;
    px_peer *pr = &p->peers[to];
    if (from_slot < p->log_start) {
        if (p->snap_index == 0)
            return SY_OK;
        return px_send_snap_chunk(p, to, 0);
    }
    sy_entry *arr;
    uint32_t n;
    int rc = px_slice(p, from_slot, p->commit, &arr, &n);
    if (rc || n == 0)
        return rc;
    sy_msg *m = px_send(p, to, SY_MSG_PAXOS_CHOSEN);
    if (!m)
        return SY_ENOMEM;
    m->u.paxos.chosen.ballot = p->promised;
    m->u.paxos.chosen.commit = p->commit;
    m->u.paxos.chosen.entries = arr;
    m->u.paxos.chosen.n_entries = n;
    pr->chosen_sent = arr[n - 1].index;
    return SY_OK;
}

int px_recv_learn(paxos *p, uint32_t from, const sy_paxos_learn *m)
{
    return px_send_catchup(p, from, m->from_slot);
}

static int snap_ack(paxos *p, uint32_t to, uint64_t idx, uint64_t next, bool done)
{
    sy_msg *m = px_send(p, to, SY_MSG_PAXOS_SNAPSHOT_ACK);
    if (!m)
        return SY_ENOMEM;
    m->u.paxos.snap_ack.index = idx;
    m->u.paxos.snap_ack.next_offset = next;
    m->u.paxos.snap_ack.done = done;
    m->u.paxos.snap_ack.commit = p->commit;
    return SY_OK;
}

/* Drops slots <= upto from memory (they are chosen and in a snapshot). */
static void drop_upto(paxos *p, uint64_t upto)
{
    if (upto < p->log_start)
        return;
    uint64_t k = upto - p->log_start + 1;
    if (k > p->n_ents)
        k = p->n_ents;
    for (uint64_t i = 0; i < k; i++)
        px_defer_free(p, (void *)p->ents[i].data.p);
    if (k && k < p->n_ents) {
        memmove(p->ents, p->ents + k, (p->n_ents - k) * sizeof *p->ents);
        memmove(p->meta, p->meta + k, (p->n_ents - k) * sizeof *p->meta);
    }
    p->n_ents -= k;
    p->log_start = upto + 1;
}

/* Installs the assembled snapshot. Accepted values above it stay: they are
 * this acceptor's promises to past proposers and must survive; the ready
 * re-emits them because storage may drop the log on install. */
static void install(paxos *p)
{
    uint64_t idx = p->in_snap_index;
    size_t len = 0;
    uint8_t *data = sy_buf_take(&p->in_snap, &len);
    drop_upto(p, idx);
    if (p->n_ents == 0)
        p->log_start = idx + 1;
    px_defer_free(p, p->snap_data);
    p->snap_data = data;
    p->snap_len = (uint32_t)len;
    p->snap_index = idx;
    p->snap_term = p->in_snap_term;
    p->snap_install = true;
    p->commit = idx;
    p->reported = idx;
    p->unstable_from = idx + 1;
    if (p->next_slot <= idx)
        p->next_slot = idx + 1;
    p->in_snap_index = 0;
    if (p->role == PX_FOLLOWER)
        px_advance_commit_follower(p, p->promised);
}

int px_recv_snapshot(paxos *p, uint32_t from, const sy_paxos_snapshot *m)
{
    px_see_ballot(p, m->ballot);
    if (m->ballot == p->promised && p->leader == from) {
        p->last_contact = p->now;
        px_reset_election(p, false);
    }
    if (m->index <= p->commit)
        return snap_ack(p, from, m->index, 0, true);
    if (m->offset == 0) {
        sy_buf_reset(&p->in_snap);
        p->in_snap_index = m->index;
        p->in_snap_term = m->term;
    } else if (p->in_snap_index != m->index || m->offset != p->in_snap.len) {
        uint64_t want = p->in_snap_index == m->index ? p->in_snap.len : 0;
        return snap_ack(p, from, m->index, want, false);
    }
    if (m->data.len && sy_buf_append(&p->in_snap, m->data.p, m->data.len))
        return SY_ENOMEM;
    if (p->in_snap.len > UINT32_MAX)
        return SY_ETOOBIG;
    if (!m->done)
        return snap_ack(p, from, m->index, p->in_snap.len, false);
    install(p);
    return snap_ack(p, from, p->snap_index, p->snap_len, true);
}

int px_recv_snapshot_ack(paxos *p, uint32_t from, const sy_paxos_snapshot_ack *m)
{
    px_peer *pr = &p->peers[from];
    pr->commit = m->commit;   /* the latest report wins: px_recv_accepted */
    if (!m->done) {
        if (pr->snap_index == m->index && m->index == p->snap_index)
            return px_send_snap_chunk(p, from, m->next_offset);
        return SY_OK;
    }
    pr->snap_index = 0;
    if (pr->commit < p->commit)
        return px_send_catchup(p, from, pr->commit + 1);
    return SY_OK;
}

int px_on_snapshot(paxos *p, uint64_t index, uint64_t term, sy_bytes data)
{
    if (index <= p->snap_index)
        return SY_OK;
    if (index > p->commit)
        return SY_EINVAL;   /* the host can only snapshot what it applied */
    uint8_t *copy = NULL;
    if (data.len) {
        copy = malloc(data.len);
        if (!copy)
            return SY_ENOMEM;
        memcpy(copy, data.p, data.len);
    }
    px_defer_free(p, p->snap_data);
    p->snap_data = copy;
    p->snap_len = data.len;
    uint64_t keep = p->cfg.compact_keep ? p->cfg.compact_keep : PX_COMPACT_KEEP;
    uint64_t upto = index > keep ? index - keep : 0;
    if (upto >= p->log_start) {
        drop_upto(p, upto);
        p->compact_to = upto;
    }
    p->snap_index = index;
    p->snap_term = term;
    p->snap_meta = true;
    return SY_OK;
}
