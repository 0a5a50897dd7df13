/* Test-only Byzantine behaviours and their names (docs/pbft.md
 * "Byzantine behaviours"). The behaviours themselves are compiled in only
 * with SYNOD_TESTING; in a normal build cfg.test_behaviour is ignored and
 * pbft_behaves() is constant false. Most behaviours live beside the code
 * they pervert (pbft_normal.c, pbft_view.c); the ones that add traffic of
 * their own run here on every heartbeat.
 *
 * Invariant: a behaviour only changes what this replica says, never what a
 * correct replica accepts; the two mutants are the exception on purpose. */
#include <string.h>
#include "bft/pbft/pbft.h"
#include "crypto/sy_err.h"

static const struct {
    const char *name;
    uint32_t code;
} names[] = {
    { "honest", SY_PBFT_HONEST },
    { "silent", SY_PBFT_SILENT },
    { "equivocate", SY_PBFT_EQUIVOCATE },
    { "skip-seq", SY_PBFT_SKIP_SEQ },
    { "bad-sig", SY_PBFT_BAD_SIG },
    { "replay", SY_PBFT_REPLAY },
    { "wrong-digest", SY_PBFT_WRONG_DIGEST },
    { "fake-prepared", SY_PBFT_FAKE_PREPARED },
    { "bad-new-view", SY_PBFT_BAD_NEW_VIEW },
    { "flood", SY_PBFT_FLOOD },
    { "twins", SY_PBFT_TWINS },
    { "bad-state", SY_PBFT_BAD_STATE },
    { "mutant-accept-wrong-digest", SY_PBFT_MUTANT_ACCEPT_WRONG_DIGEST },
    { "mutant-nv-no-recompute", SY_PBFT_MUTANT_NV_NO_RECOMPUTE },
    { "mutant-blame-agreeing", SY_PBFT_MUTANT_BLAME_AGREEING },
};

int sy_pbft_behaviour_from_name(const char *name, uint32_t *out)
{
    if (!name || !out)
        return SY_EINVAL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].name, name) == 0) {
            *out = names[i].code;
            return SY_OK;
        }
    return SY_EINVAL;
}

const char *sy_pbft_behaviour_name(uint32_t code)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == code)
            return names[i].name;
    return "unknown";
}

#ifdef SYNOD_TESTING
#define PBFT_FLOOD_PER_TICK 32u
#define PBFT_BAD_NV_ODDS 8u   /* 1 in this many heartbeats */

static void send_vote(pbft *p, uint8_t type, uint64_t view, uint64_t seq, const sy_digest *d)
{
    sy_msg m = { .type = type };
    sy_pbft_stmt *st = &m.u.pbft.stmt;
    *st = (sy_pbft_stmt){ .view = view, .seq = seq, .digest = *d, .replica = p->self };
    pbft_sign_stmt(p, type, view, seq, d, &st->sig);
    pbft_send(p, SY_NO_NODE, &m);
}

void pbft_byz_tick(pbft *p)
{
    if (p->behaviour == SY_PBFT_REPLAY && p->view > 0) {
        /* votes of the previous view for the open slots: stale by now */
        for (uint64_t seq = p->executed + 1; seq <= p->executed + 4; seq++) {
            sy_digest d;
            memset(&d, 0, sizeof d);
            d.b[0] = (uint8_t)seq;
            send_vote(p, SY_MSG_PBFT_PREPARE, p->view - 1, seq, &d);
            send_vote(p, SY_MSG_PBFT_COMMIT, p->view - 1, seq, &d);
        }
    }
    if (p->behaviour == SY_PBFT_BAD_NEW_VIEW && !p->in_vc && p->executed > 0 &&
        pbft_primary(p, p->view + 1) == p->self &&
        sy_rng_below(&p->rng, PBFT_BAD_NV_ODDS) == 0) {
        /* next in line to lead: ask for the view early, while the others
         * are mid-flight (some executed a request, some not yet), so that
         * the wrong O in our NEW-VIEW (pbft_view.c) meets replicas it can
         * mislead. One timeout at a correct replica now suffices (f+1). */
        pbft_start_view_change(p, p->view + 1);
    }
    if (p->behaviour == SY_PBFT_FLOOD) {
        /* well-formed, validly signed, useless: random slots and digests,
         * requests for state and batches nobody has */
        for (uint32_t i = 0; i < PBFT_FLOOD_PER_TICK; i++) {
            sy_digest d;
            for (size_t j = 0; j < SY_DIGEST_LEN; j += 8) {
                uint64_t r = sy_rng_next(&p->rng);
                memcpy(d.b + j, &r, 8);
            }
            uint64_t seq = p->h + 1 + sy_rng_below(&p->rng, p->L * 4);
            uint8_t kind = (uint8_t)sy_rng_below(&p->rng, 4);
            if (kind < 2) {
                send_vote(p, kind ? SY_MSG_PBFT_COMMIT : SY_MSG_PBFT_PREPARE,
                          p->view + sy_rng_below(&p->rng, 3), seq, &d);
            } else if (kind == 2) {
                sy_msg m = { .type = SY_MSG_PBFT_FETCH };
                m.u.pbft.batch.digest = d;
                pbft_send(p, SY_NO_NODE, &m);
            } else {
                sy_msg m = { .type = SY_MSG_PBFT_CHECKPOINT };
                m.u.pbft.stmt = (sy_pbft_stmt){ .seq = seq * p->K, .digest = d,
                                                .replica = p->self };
                pbft_sign_stmt(p, SY_MSG_PBFT_CHECKPOINT, 0, seq * p->K, &d,
                               &m.u.pbft.stmt.sig);
                pbft_send(p, SY_NO_NODE, &m);
            }
        }
    }
}
#endif
