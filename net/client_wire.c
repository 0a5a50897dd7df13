/* Client rules shared by the client library and synodctl bench's
 * event loop (net/client_wire.h). */
#include <string.h>
#include "net/client_wire.h"
#include "core/config.h"

void sy_client_req_init(sy_msg *m, const sy_cluster_cfg *cfg, uint32_t client_id,
                        uint64_t req_no, uint8_t op, uint8_t flags)
{
    bool bft = cfg->protocol == SY_PROTO_PBFT;
    memset(m, 0, sizeof *m);
    m->type = SY_MSG_CLIENT_REQ;
    sy_client_req *q = &m->u.req;
    q->client_id = client_id;
    q->req_no = req_no;
    q->op = op;
    q->flags = (uint8_t)(flags & ~(SY_REQ_CLIENT_CFT | SY_REQ_CLIENT_BFT));
    q->flags |= bft ? SY_REQ_CLIENT_BFT : SY_REQ_CLIENT_CFT;
    q->has_membership = bft;
    if (bft)
        q->membership = cfg->membership;
}

/* Castro & Liskov (sec. 4.1) send a request to the primary alone and
 * broadcast on the client's timeout. A replica here answers only requests
 * it received itself (its reply travels back on the client's own
 * connection), so a first send that can complete reaches the primary plus
 * need-1 backups: with every one of them correct and up, exactly the need
 * matching replies come back. The backups rotate by client id so no one
 * replica carries every client. Everyone gets it when we do not know the
 * primary, when too few replicas are connected and unsuspected, or when
 * need is a read quorum (the read-only optimisation wants replies from
 * most replicas anyway). When a narrow send times out (sy_bft_narrow_wait)
 * it goes to all that did not answer: the paper's broadcast, which also
 * starts every correct backup's view-change timer against a primary that
 * ignores the request. */
bool sy_bft_targets(const sy_bft_memory *m, uint32_t need, const bool *up, uint64_t now,
                    bool *to)
{
    uint32_t p = m->primary, picked = 0, n = m->n;
    memset(to, 0, n * sizeof *to);
#define USABLE(i) (up[i] && m->suspect_until[i] <= now)
    if (need <= m->f + 1 && p < n && USABLE(p)) {
        to[p] = true;
        picked = 1;
        uint32_t start = n > 1 ? m->client_id % (n - 1) : 0;   /* f = 0, n = 1 */
        for (uint32_t k = 0; k < n - 1 && picked < need; k++) {
            uint32_t i = (p + 1 + (start + k) % (n - 1)) % n;
            if (USABLE(i)) {
                to[i] = true;
                picked++;
            }
        }
    }
#undef USABLE
    if (picked >= need)
        return true;
    for (uint32_t i = 0; i < n; i++)
        to[i] = true;
    return false;
}

/* A few of the usual round trips, not attempt_ms, so a client whose
 * primary is stale (after a view change the replicas we asked each just
 * watch the request: backups relay only retransmissions) loses little. */
uint64_t sy_bft_narrow_wait(const sy_bft_memory *m, uint32_t attempt_ms)
{
    uint64_t w = 4u * (uint64_t)m->narrow_rtt;
    w = w < SY_BFT_NARROW_MIN_MS ? SY_BFT_NARROW_MIN_MS : w;
    return w < attempt_ms ? w : attempt_ms;
}

/* The primary, once f+1 replies name the same replica (one of them
 * correct: one faulty replica cannot steer our narrow sends); which
 * replicas to avoid for a while -- one first asked that has not answered
 * although the send had to widen, or one that answered an ordered request
 * (where correct replicas never differ) with something else; and the
 * round trip of a send that did not widen. */
void sy_bft_learn(sy_bft_memory *m, uint32_t need, const bool *have, const bool *first,
                  const sy_digest *got, const uint32_t *hint, uint32_t accepted, bool widened,
                  uint64_t start, uint64_t now)
{
    if (!widened) {
        uint32_t rtt = (uint32_t)(now - start);
        m->narrow_rtt = m->narrow_rtt ? (7u * m->narrow_rtt + rtt) / 8u : rtt;
    }
    for (uint32_t i = 0; i < m->n; i++) {
        if (widened && first[i] && !have[i])
            m->suspect_until[i] = now + SY_BFT_SUSPECT_MS;
        if (!have[i])
            continue;
        if (need <= m->f + 1 && !sy_digest_eq(&got[i], &got[accepted]))
            m->suspect_until[i] = now + SY_BFT_SUSPECT_MS;
        uint32_t same = 0;
        for (uint32_t j = 0; j < m->n; j++)
            if (have[j] && hint[j] == hint[i])
                same++;
        if (same >= m->f + 1)
            m->primary = hint[i];   /* SY_NO_NODE: view change, send to all */
    }
}

bool sy_bft_can_reach(const sy_bft_memory *m, uint32_t need, const bool *have,
                      const sy_digest *got, const bool *up)
{
    uint32_t open = 0, best = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        if (!have[i]) {
            open += need <= m->f + 1 || up[i];
            continue;
        }
        uint32_t same = 0;
        for (uint32_t j = 0; j < m->n; j++)
            if (have[j] && sy_digest_eq(&got[i], &got[j]))
                same++;
        best = same > best ? same : best;
    }
    return best + open >= need;
}
