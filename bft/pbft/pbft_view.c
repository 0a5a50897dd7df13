/* PBFT view changes (OSDI 1999 sec. 4.4 and 4.5.2; TOCS 2002 sec. 2.3.5
 * for the timer backoff).
 *
 * Invariant kept here: a request that committed at any correct replica
 * keeps its sequence number in every later view. It holds because a
 * committed request is prepared at a quorum; any quorum of VIEW-CHANGEs
 * intersects it in a correct replica whose certificate is carried into the
 * NEW-VIEW, and O re-proposes, for each seq, the digest of the certificate
 * with the highest view (a higher-view certificate for another digest
 * cannot exist). Backups never trust O: they recompute it from the signed
 * view-changes and reject a NEW-VIEW that differs. */
#include <stdlib.h>
#include <string.h>
#include "bft/pbft/pbft.h"
#include "crypto/sy_err.h"


static void free_stored(pbft_stored *s)
{
    if (!s->have)
        return;
    sy_msg_free(&s->msg);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

/* Keeps a private, self-contained copy of m (encode, then decode). */
static int store_msg(pbft_stored *st, const sy_msg *m)
{
    sy_buf b;
    pbft_stored tmp;
    memset(&tmp, 0, sizeof tmp);
    sy_buf_init(&b);
    int rc = sy_msg_encode_body(m, &b);
    if (rc) {
        sy_buf_free(&b);
        return rc;
    }
    tmp.buf = sy_buf_take(&b, &tmp.len);
    rc = sy_msg_decode_body(m->type, tmp.buf, tmp.len, &tmp.msg);
    if (rc) {
        free(tmp.buf);
        return rc;
    }
    tmp.have = true;
    free_stored(st);
    *st = tmp;
    return SY_OK;
}

/* ------------------------------------------------------------ validation */

bool pbft_ckproof_valid(pbft *p, const sy_pbft_ckproof *c)
{
    if (c->seq == 0)
        return c->n_sigs == 0;
    if (c->seq % p->K)
        return false;
    uint64_t seen = 0;
    uint32_t cnt = 0;
    for (uint32_t i = 0; i < c->n_sigs; i++) {
        uint32_t r = c->sigs[i].replica;
        if (r >= p->n || (seen >> r & 1))
            return false;
        if (!pbft_verify_stmt(p, SY_MSG_PBFT_CHECKPOINT, 0, c->seq, &c->digest, r,
                              &c->sigs[i].sig))
            return false;
        seen |= 1ull << r;
        cnt++;
    }
    if (cnt < p->q)
        return false;
    if (c->seq > p->stable_seen)
        p->stable_seen = c->seq;
    return true;
}

static bool pcert_valid(pbft *p, const sy_pbft_pcert *c)
{
    uint32_t prim = pbft_primary(p, c->view);
    if (!pbft_verify_stmt(p, SY_MSG_PBFT_PRE_PREPARE, c->view, c->seq, &c->digest, prim,
                          &c->pp_sig))
        return false;
    uint64_t seen = 0;
    uint32_t cnt = 0;
    for (uint32_t i = 0; i < c->n_prepares; i++) {
        uint32_t r = c->prepares[i].replica;
        if (r >= p->n || r == prim || (seen >> r & 1))
            return false;
        if (!pbft_verify_stmt(p, SY_MSG_PBFT_PREPARE, c->view, c->seq, &c->digest, r,
                              &c->prepares[i].sig))
            return false;
        seen |= 1ull << r;
        cnt++;
    }
    return cnt + 1 >= p->q;
}

bool pbft_vc_valid(pbft *p, const sy_pbft_view_change *vc)
{
    sy_digest cd;
    if (vc->replica >= p->n || vc->n_pcerts > p->L)
        return false;
    if (sy_pbft_vc_content(vc, &cd))
        return false;
    if (!pbft_verify_stmt(p, SY_MSG_PBFT_VIEW_CHANGE, vc->new_view, 0, &cd, vc->replica,
                          &vc->sig))
        return false;
    if (!pbft_ckproof_valid(p, &vc->ckpt))
        return false;
    uint64_t prev = vc->ckpt.seq;
    for (uint32_t i = 0; i < vc->n_pcerts; i++) {
        const sy_pbft_pcert *c = &vc->pcerts[i];
        /* increasing, inside the sender's window, from an earlier view */
        if (c->seq <= prev || c->seq > vc->ckpt.seq + p->L || c->view >= vc->new_view)
            return false;
        if (!pcert_valid(p, c))
            return false;
        prev = c->seq;
    }
    return true;
}

/* ------------------------------------------------------------ O set */

int pbft_compute_o(pbft *p, uint64_t view, const sy_pbft_view_change *vcs, uint32_t n_vcs,
                   uint64_t *min_s, sy_pbft_opp **o, uint32_t *n_o)
{
    uint64_t lo = 0, hi = 0;
    (void)view;
    for (uint32_t i = 0; i < n_vcs; i++) {
        if (vcs[i].ckpt.seq > lo)
            lo = vcs[i].ckpt.seq;
        for (uint32_t j = 0; j < vcs[i].n_pcerts; j++)
            if (vcs[i].pcerts[j].seq > hi)
                hi = vcs[i].pcerts[j].seq;
    }
    if (hi < lo)
        hi = lo;
    if (hi - lo > p->L)
        return SY_EFIELD;
    *min_s = lo;
    *n_o = (uint32_t)(hi - lo);
    *o = NULL;
    if (!*n_o)
        return SY_OK;
    sy_pbft_opp *v = calloc(*n_o, sizeof *v);
    uint64_t *best = calloc(*n_o, sizeof *best);
    bool *have = calloc(*n_o, sizeof *have);
    if (!v || !best || !have) {
        free(v);
        free(best);
        free(have);
        return SY_ENOMEM;
    }
    for (uint32_t k = 0; k < *n_o; k++)
        v[k].seq = lo + 1 + k;   /* null request unless a certificate says otherwise */
    for (uint32_t i = 0; i < n_vcs; i++)
        for (uint32_t j = 0; j < vcs[i].n_pcerts; j++) {
            const sy_pbft_pcert *c = &vcs[i].pcerts[j];
            if (c->seq <= lo)
                continue;
            uint32_t k = (uint32_t)(c->seq - lo - 1);
            /* highest view wins; equal views cannot disagree between valid
             * certificates, the digest order only makes the choice total */
            if (!have[k] || c->view > best[k] ||
                (c->view == best[k] && memcmp(c->digest.b, v[k].digest.b, SY_DIGEST_LEN) < 0)) {
                have[k] = true;
                best[k] = c->view;
                v[k].digest = c->digest;
            }
        }
    free(best);
    free(have);
    *o = v;
    return SY_OK;
}

/* ------------------------------------------------------------ entering a view */

static void enter_view(pbft *p, uint64_t view, const sy_pbft_view_change *vcs, uint32_t n_vcs,
                       uint64_t min_s, const sy_pbft_opp *o, uint32_t n_o)
{
    /* the checkpoint O starts from (sec. 4.4): adopt it, or fetch it */
    if (min_s > p->h) {
        for (uint32_t i = 0; i < n_vcs; i++)
            if (vcs[i].ckpt.seq == min_s) {
                pbft_stabilize(p, min_s, &vcs[i].ckpt.digest, vcs[i].ckpt.sigs,
                               vcs[i].ckpt.n_sigs);
                break;
            }
    }
    p->view = view;
    p->in_vc = false;
    p->hs_dirty = true;
    for (uint32_t i = 0; i < p->cap_clients; i++)
        p->clients[i].proposed = 0;
    uint64_t top = min_s;
    for (uint32_t k = 0; k < n_o; k++) {
        const sy_pbft_opp *e = &o[k];
        if (e->seq > top)
            top = e->seq;
        pbft_slot *s = pbft_slot_get(p, e->seq);
        if (!s || s->executed)
            continue;
        bool keep = s->have_batch && sy_digest_eq(&s->d, &e->digest);
        if (!keep)   /* in hand only for a null request (or our certificate's) */
            pbft_slot_set_batch(s, NULL, 0, pbft_digest_is_null(&e->digest),
                                &e->digest);
        /* no dissent scan: votes of a view are taken only once it is
         * entered (pbft_on_vote), so none of this one are stored yet */
        s->have_pp = true;
        s->pp_view = view;
        s->d = e->digest;
        s->pp_sig = e->sig;
        s->pp_signed = true;
        s->prepared = s->committed = s->sent_prepare = s->sent_commit = false;
        s->fetch_ms = 0;
    }
    if (top > p->last_pp)
        p->last_pp = top;
    p->next_seq = top + 1;
    if (p->next_seq <= p->executed)
        p->next_seq = p->executed + 1;
    if (pbft_primary(p, view) == p->self)
        pbft_note_vote(p, top);
    for (uint32_t k = 0; k < n_o; k++) {
        pbft_slot *s = pbft_slot_get(p, o[k].seq);
        if (s && !s->executed && s->have_pp && s->pp_view == view) {
            pbft_send_prepare(p, s);
            pbft_progress(p, s);
        }
    }
    p->vc_deadline = 0;
    pbft_requeue_waiting(p);
    pbft_reset_timer(p);
    if (pbft_behind(p)) {
        p->xfer_ms = 0;   /* the new view starts above us: fetch it now */
        pbft_maybe_fetch_state(p);
    }
    for (uint32_t i = 0; i < p->n; i++)
        if (p->vcs[i].have && p->vcs[i].msg.u.pbft.vc.new_view < view)
            free_stored(&p->vcs[i]);
}

/* ------------------------------------------------------------ sending */

static void try_new_view(pbft *p);

static void build_pcerts(pbft *p, sy_pbft_view_change *vc)
{
    uint32_t n = 0;
    for (uint64_t seq = p->h + 1; seq <= p->h + p->L; seq++) {
        pbft_slot *s = &p->slots[seq % p->L];
        if (s->seq == seq && s->have_cert)
            vc->pcerts[n++] = (sy_pbft_pcert){ .view = s->cert_view, .seq = seq,
                                               .digest = s->cert_d, .pp_sig = s->cert_pp_sig,
                                               .n_prepares = s->cert_n,
                                               .prepares = s->cert_prep };
    }
#ifdef SYNOD_TESTING
    if (pbft_behaves(p, SY_PBFT_FAKE_PREPARED) && n < p->L) {
        /* claim a certificate this replica does not have */
        uint64_t seq = p->last_pp + 1;
        if (seq <= p->h + p->L) {
            sy_pbft_pcert *c = &vc->pcerts[n++];
            memset(c, 0, sizeof *c);
            c->view = p->view ? p->view - 1 : 0;
            c->seq = seq;
            c->digest.b[0] = 0xfa;
            sy_rng_next(&p->rng);
            pbft_sign_stmt(p, SY_MSG_PBFT_PRE_PREPARE, c->view, seq, &c->digest, &c->pp_sig);
            c->n_prepares = 0;
        }
    }
#endif
    vc->n_pcerts = n;
}

/* Builds, keeps and sends this replica's VIEW-CHANGE for p->view. */
static void send_own_vc(pbft *p)
{
    sy_msg m = { .type = SY_MSG_PBFT_VIEW_CHANGE };
    sy_pbft_view_change *vc = &m.u.pbft.vc;
    vc->new_view = p->view;
    vc->replica = p->self;
    vc->ckpt = (sy_pbft_ckproof){ .seq = p->h, .digest = p->h_digest, .n_sigs = p->h_nsigs,
                                  .sigs = p->h_sigs };
    if (p->h == 0) {
        vc->ckpt.n_sigs = 0;
        memset(&vc->ckpt.digest, 0, sizeof vc->ckpt.digest);
    }
    vc->pcerts = calloc(p->L + 1, sizeof *vc->pcerts);
    if (!vc->pcerts)
        return;
    build_pcerts(p, vc);
    sy_digest cd;
    if (sy_pbft_vc_content(vc, &cd) == SY_OK) {
        pbft_sign_stmt(p, SY_MSG_PBFT_VIEW_CHANGE, p->view, 0, &cd, &vc->sig);
        if (store_msg(&p->vcs[p->self], &m) == SY_OK)
            pbft_send(p, SY_NO_NODE, &m);
    }
    free(vc->pcerts);
}

/* Sec. 4.5.2: a replica that sent VIEW-CHANGE for v "waits for 2f+1
 * view-change messages for v and then starts its timer"; if it expires
 * before a valid NEW-VIEW it moves to v+1 with twice the timeout. Starting
 * the timer on entering the view instead lets a lone replica (one that lost
 * its peers for a while) run ahead view after view, and the others, always
 * one view behind it, never gather a quorum for the same view (livelock
 * found by the simulator). A VIEW-CHANGE for a higher view counts too: its
 * sender has given up on ours as well, and without it two replicas can wait
 * forever in v next to one that moved alone to v+1 (also found by the
 * simulator). A replica alone in a higher view still waits there until the
 * others come (their timers) or pull it up (the f+1 rule). Called on every
 * tick and whenever a VIEW-CHANGE arrives. */
void pbft_arm_vc_timer(pbft *p)
{
    if (!p->in_vc || p->vc_deadline)
        return;
    uint32_t c = 0;
    for (uint32_t i = 0; i < p->n; i++)
        if (p->vcs[i].have && p->vcs[i].msg.u.pbft.vc.new_view >= p->view)
            c++;
    if (c >= p->q)
        p->vc_deadline = p->now + ((uint64_t)p->cfg.request_timeout_ms << p->vc_backoff);
}

/* planned: a primary's hand-off (pbft_abdicate), not a suspicion */
static void start_view_change(pbft *p, uint64_t new_view, bool planned)
{
    if (new_view <= p->view && (p->in_vc || new_view < p->view))
        return;
    p->view = new_view;
    p->in_vc = true;
    p->view_changes++;
    /* exponential backoff between successive view changes (sec. 4.5.2);
     * the timer runs once a quorum asks for this view (pbft_arm_vc_timer).
     * A hand-off is no sign of a slow network: a rolling restart of the
     * primaries of an idle cluster (nothing executes, nothing resets the
     * backoff) would otherwise leave the next real view change waiting
     * request_timeout << k. */
    if (!planned && p->vc_backoff < PBFT_MAX_BACKOFF_SHIFT)
        p->vc_backoff++;
    p->vc_deadline = 0;
    p->hs_dirty = true;
    free_stored(&p->nv);
    send_own_vc(p);
    pbft_arm_vc_timer(p);
    /* the new primary may already hold enough view-changes */
    try_new_view(p);
}

void pbft_start_view_change(pbft *p, uint64_t new_view)
{
    start_view_change(p, new_view, false);
}

/* Castro & Liskov have no hand-off: a view ends when its primary is
 * suspected, so a primary stopped on purpose costs every client a request
 * timeout (and its backoff). Here a primary that is about to stop sends its
 * own VIEW-CHANGE for the next view, and a replica that receives the
 * VIEW-CHANGE of the primary of the view it is in (or changing to) joins at
 * once (pbft_on_view_change): that primary has given the view up and will
 * send nothing more in it. Safety is the view change's, which any replica
 * may start at any time; a faulty primary gains nothing it did not have by
 * going silent, only the wait is shorter, and only for its own views. */
int pbft_abdicate(pbft *p, uint32_t target)
{
    if (p->in_vc || pbft_primary(p, p->view) != p->self)
        return SY_ENOTLEADER;
    if (target != SY_NO_NODE && target != pbft_primary(p, p->view + 1))
        return SY_EINVAL;   /* the next primary is the next view's */
    start_view_change(p, p->view + 1, true);
    return SY_OK;
}

static void try_new_view(pbft *p)
{
    if (!p->in_vc || pbft_primary(p, p->view) != p->self || p->nv.have)
        return;
    sy_pbft_view_change vcs[SY_MAX_NODES];
    uint32_t n = 0;
    if (!p->vcs[p->self].have || p->vcs[p->self].msg.u.pbft.vc.new_view != p->view)
        return;
    vcs[n++] = p->vcs[p->self].msg.u.pbft.vc;
    for (uint32_t i = 0; i < p->n && n < p->q; i++)
        if (i != p->self && p->vcs[i].have && p->vcs[i].msg.u.pbft.vc.new_view == p->view)
            vcs[n++] = p->vcs[i].msg.u.pbft.vc;
    if (n < p->q)
        return;
    uint64_t min_s = 0;
    sy_pbft_opp *o = NULL;
    uint32_t n_o = 0;
    if (pbft_compute_o(p, p->view, vcs, n, &min_s, &o, &n_o))
        return;
#ifdef SYNOD_TESTING
    if (pbft_behaves(p, SY_PBFT_BAD_NEW_VIEW)) {
        /* a wrong O that breaks safety if accepted: every request prepared
         * in a view-change certificate (so possibly committed at a correct
         * replica) becomes a null request at the same seq, a batch everyone
         * has. Without one, a fake digest, or an invented extra seq. */
        bool dropped = false;
        for (uint32_t k = 0; k < n_o; k++)
            if (!pbft_digest_is_null(&o[k].digest)) {
                memset(&o[k].digest, 0, sizeof o[k].digest);
                dropped = true;
            }
        if (!dropped && n_o) {
            o[0].digest.b[0] ^= 0xee;
        } else if (!dropped) {
            sy_pbft_opp *no = calloc(1, sizeof *no);
            if (no) {
                no->seq = min_s + 1;
                no->digest.b[0] = 0xee;
                o = no;
                n_o = 1;
            }
        }
    }
#endif
    for (uint32_t k = 0; k < n_o; k++)
        pbft_sign_stmt(p, SY_MSG_PBFT_PRE_PREPARE, p->view, o[k].seq, &o[k].digest, &o[k].sig);
    sy_msg m = { .type = SY_MSG_PBFT_NEW_VIEW };
    sy_pbft_new_view *nv = &m.u.pbft.nv;
    nv->view = p->view;
    nv->replica = p->self;
    nv->n_vcs = n;
    nv->vcs = vcs;
    nv->n_o = n_o;
    nv->o = o;
    sy_digest cd;
    if (sy_pbft_nv_content(nv, &cd) == SY_OK) {
        pbft_sign_stmt(p, SY_MSG_PBFT_NEW_VIEW, p->view, 0, &cd, &nv->sig);
        if (store_msg(&p->nv, &m) == SY_OK) {
            pbft_send(p, SY_NO_NODE, &m);
            const sy_pbft_new_view *kept = &p->nv.msg.u.pbft.nv;
            enter_view(p, p->view, kept->vcs, kept->n_vcs, min_s, kept->o, kept->n_o);
        }
    }
    free(o);
}

void pbft_vc_resend(pbft *p)
{
    if (p->vcs[p->self].have && p->vcs[p->self].msg.u.pbft.vc.new_view == p->view) {
        pbft_send(p, SY_NO_NODE, &p->vcs[p->self].msg);
    } else {
        /* restarted in the middle of a view change: say it again (what we
         * prepared before the crash is lost: docs/pbft.md) */
        send_own_vc(p);
    }
    pbft_arm_vc_timer(p);
    try_new_view(p);
}

/* The paper assumes messages are retransmitted until they arrive (sec.
 * 4.5); a NEW-VIEW that was lost leaves a replica in the old view, and one
 * that believes itself the old view's primary has no request timer to pull
 * it out: it pre-prepares in a view nobody runs (sim seed 5290, faults
 * all: old primary in view 1, new primary in view 2 with its window full
 * of slots that cannot prepare, a third replica alone in view 3, the
 * fourth down -- no progress ever). So the primary repeats its NEW-VIEW to
 * a replica it hears from in an older view, at most once per request
 * timeout per replica (a faulty one cannot make it send more). Only the
 * primary can: a NEW-VIEW is accepted from its view's primary alone. */
void pbft_nv_to_laggard(pbft *p, uint32_t from)
{
    if (from >= p->n || p->in_vc || !p->nv.have || p->nv.msg.u.pbft.nv.view != p->view ||
        pbft_primary(p, p->view) != p->self)
        return;
    if (p->nv_resent_ms[from] && p->now - p->nv_resent_ms[from] < p->cfg.request_timeout_ms)
        return;
    p->nv_resent_ms[from] = p->now ? p->now : 1;
    pbft_send(p, from, &p->nv.msg);
}

/* ------------------------------------------------------------ receiving */

int pbft_on_view_change(pbft *p, uint32_t from, const sy_msg *m)
{
    const sy_pbft_view_change *vc = &m->u.pbft.vc;
    if (vc->replica != from)
        return SY_ESENDER;
    if (vc->new_view < p->view)
        return SY_ESTALE;
    if (vc->new_view == p->view && !p->in_vc) {
        /* a laggard still changing to our view: repeat the NEW-VIEW */
        if (p->nv.have && p->nv.msg.u.pbft.nv.view == p->view &&
            pbft_primary(p, p->view) == p->self)
            pbft_send(p, from, &p->nv.msg);
        return SY_OK;
    }
    if (p->vcs[from].have && p->vcs[from].msg.u.pbft.vc.new_view >= vc->new_view)
        return SY_OK;
    if (!pbft_vc_valid(p, vc))
        return SY_ESIG;
    int rc = store_msg(&p->vcs[from], m);
    if (rc)
        return rc;
    /* the primary of our view gave it up (pbft_abdicate, or its own timer):
     * nothing more will come from it in this view */
    if (from == pbft_primary(p, p->view) && vc->new_view > p->view)
        start_view_change(p, p->view + 1, true);
    /* liveness (sec. 4.5.2): f+1 replicas want (or run) a higher view, so
     * at least one correct one does: join the smallest such view */
    pbft_follow_higher_views(p);
    pbft_arm_vc_timer(p);
    try_new_view(p);
    return SY_OK;
}

int pbft_on_new_view(pbft *p, uint32_t from, const sy_msg *m)
{
    const sy_pbft_new_view *nv = &m->u.pbft.nv;
    if (nv->replica != from || from != pbft_primary(p, nv->view))
        return SY_ESENDER;
    if (nv->view < p->view || (nv->view == p->view && !p->in_vc))
        return SY_ESTALE;
    sy_digest cd;
    if (sy_pbft_nv_content(nv, &cd) ||
        !pbft_verify_stmt(p, SY_MSG_PBFT_NEW_VIEW, nv->view, 0, &cd, from, &nv->sig))
        return SY_ESIG;
    if (nv->n_vcs < p->q)
        return SY_EFIELD;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < nv->n_vcs; i++) {
        const sy_pbft_view_change *vc = &nv->vcs[i];
        if (vc->new_view != nv->view || vc->replica >= p->n || (seen >> vc->replica & 1))
            return SY_EFIELD;
        seen |= 1ull << vc->replica;
        if (!pbft_vc_valid(p, vc))
            return SY_ESIG;
    }
    uint64_t min_s = 0;
    sy_pbft_opp *o = NULL;
    uint32_t n_o = 0;
    int rc = pbft_compute_o(p, nv->view, nv->vcs, nv->n_vcs, &min_s, &o, &n_o);
    if (rc)
        return rc;
    bool skip_check = false;
#ifdef SYNOD_TESTING
    skip_check = p->behaviour == SY_PBFT_MUTANT_NV_NO_RECOMPUTE;   /* planted bug */
#endif
    if (!skip_check) {
        /* the primary's O must be exactly the one the view-changes imply */
        bool same = n_o == nv->n_o;
        for (uint32_t k = 0; same && k < n_o; k++)
            same = o[k].seq == nv->o[k].seq && sy_digest_eq(&o[k].digest, &nv->o[k].digest);
        free(o);
        if (!same)
            return SY_EFIELD;
    } else {
        free(o);
    }
    for (uint32_t k = 0; k < nv->n_o; k++)
        if (!pbft_verify_stmt(p, SY_MSG_PBFT_PRE_PREPARE, nv->view, nv->o[k].seq,
                              &nv->o[k].digest, from, &nv->o[k].sig))
            return SY_ESIG;
    if (nv->view > p->view || !p->in_vc) {
        p->view_changes++;
    }
    rc = store_msg(&p->nv, m);
    if (rc)
        return rc;
    const sy_pbft_new_view *kept = &p->nv.msg.u.pbft.nv;
    enter_view(p, kept->view, kept->vcs, kept->n_vcs, min_s, kept->o, kept->n_o);
    return SY_OK;
}
