/* PBFT engine: quorum arithmetic, message codec, normal case, checkpoints,
 * water marks, request validation, read-only path, commit evidence. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/unit/test_pbft_harness.h"

#define ALL(n) ((1u << (n)) - 1u)

/* ------------------------------------------------------------ quorums */

static void test_quorum_is_2f_plus_1_only_when_n_is_3f_plus_1(void **state)
{
    (void)state;
    assert_int_equal(sy_pbft_quorum(4, 1), 3);
    assert_int_equal(sy_pbft_quorum(5, 1), 4);
    assert_int_equal(sy_pbft_quorum(7, 2), 5);
    assert_int_equal(sy_pbft_quorum(7, 1), 5);
    assert_int_equal(sy_pbft_quorum(6, 1), 4);
}

static void test_any_two_quorums_share_a_correct_replica_and_correct_ones_suffice(void **state)
{
    (void)state;
    for (uint32_t n = 1; n <= SY_MAX_NODES; n++)
        for (uint32_t f = 0; 3 * f + 1 <= n; f++) {
            uint32_t q = sy_pbft_quorum(n, f);
            assert_true(2 * q >= n + f + 1);   /* intersection >= f+1 */
            assert_true(q <= n - f);            /* live with f silent */
        }
}

/* ------------------------------------------------------------ codec */

static void roundtrip(const sy_msg *m, sy_msg *out, sy_buf *b)
{
    sy_buf_init(b);
    assert_int_equal(sy_msg_encode_body(m, b), SY_OK);
    assert_int_equal(sy_msg_decode_body(m->type, b->p, b->len, out), SY_OK);
}

static void test_codec_round_trips_nested_view_change_and_new_view(void **state)
{
    (void)state;
    sy_pbft_sig sigs[3] = { { 1, { { 1 } } }, { 2, { { 2 } } }, { 3, { { 3 } } } };
    sy_pbft_pcert pc[2] = {
        { .view = 0, .seq = 5, .digest = { { 9 } }, .pp_sig = { { 7 } }, .n_prepares = 2,
          .prepares = sigs },
        { .view = 1, .seq = 6, .digest = { { 8 } }, .pp_sig = { { 6 } }, .n_prepares = 3,
          .prepares = sigs },
    };
    sy_pbft_view_change vc = { .new_view = 2, .replica = 3,
                               .ckpt = { .seq = 4, .digest = { { 5 } }, .n_sigs = 3,
                                         .sigs = sigs },
                               .n_pcerts = 2, .pcerts = pc, .sig = { { 0xab } } };
    sy_pbft_opp o[1] = { { .seq = 5, .digest = { { 9 } }, .sig = { { 1 } } } };
    sy_msg m = { .type = SY_MSG_PBFT_NEW_VIEW };
    m.u.pbft.nv = (sy_pbft_new_view){ .view = 2, .replica = 2, .n_vcs = 1, .vcs = &vc,
                                      .n_o = 1, .o = o, .sig = { { 0xcd } } };
    sy_msg out;
    sy_buf b;
    roundtrip(&m, &out, &b);
    assert_int_equal(out.u.pbft.nv.n_vcs, 1);
    const sy_pbft_view_change *v2 = &out.u.pbft.nv.vcs[0];
    assert_int_equal(v2->n_pcerts, 2);
    assert_int_equal(v2->pcerts[1].n_prepares, 3);
    assert_int_equal(v2->pcerts[1].prepares[2].replica, 3);
    assert_int_equal(v2->ckpt.seq, 4);
    assert_int_equal(out.u.pbft.nv.o[0].seq, 5);
    sy_digest a, c;
    assert_int_equal(sy_pbft_nv_content(&m.u.pbft.nv, &a), SY_OK);
    assert_int_equal(sy_pbft_nv_content(&out.u.pbft.nv, &c), SY_OK);
    assert_true(sy_digest_eq(&a, &c));   /* content digest survives the wire */
    /* every strict prefix is rejected, and nothing leaks */
    for (size_t cut = 0; cut < b.len; cut++) {
        sy_msg bad;
        assert_int_not_equal(sy_msg_decode_body(m.type, b.p, cut, &bad), SY_OK);
    }
    sy_msg_free(&out);
    sy_buf_free(&b);
}

static void test_codec_rejects_short_digest_in_prepare(void **state)
{
    (void)state;
    /* [view, seq, digest(bin 31), replica, sig] */
    uint8_t buf[128];
    size_t o = 0;
    buf[o++] = 0x95;
    buf[o++] = 0x00;
    buf[o++] = 0x01;
    buf[o++] = 0xc4;
    buf[o++] = 31;
    memset(buf + o, 1, 31);
    o += 31;
    buf[o++] = 0x01;
    buf[o++] = 0xc4;
    buf[o++] = 64;
    memset(buf + o, 2, 64);
    o += 64;
    sy_msg m;
    assert_int_equal(sy_msg_decode_body(SY_MSG_PBFT_PREPARE, buf, o, &m), SY_EFIELD);
}

static void test_behaviour_names_map_to_codes(void **state)
{
    (void)state;
    const char *names[] = { "silent", "equivocate", "skip-seq", "bad-sig", "replay",
                            "wrong-digest", "fake-prepared", "bad-new-view", "flood", "twins" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        uint32_t code = 0;
        assert_int_equal(sy_pbft_behaviour_from_name(names[i], &code), SY_OK);
        assert_string_equal(sy_pbft_behaviour_name(code), names[i]);
    }
    uint32_t code;
    assert_int_equal(sy_pbft_behaviour_from_name("nonsense", &code), SY_EINVAL);
}

/* ------------------------------------------------------------ normal case */

/* Ten requests through the primary of view 0. Reports how many replicas
 * executed all ten, with commit == applied and still in view 0, and how many
 * times the harness saw two replicas execute different batches at one seq. */
typedef struct { uint32_t replicas_done; uint32_t violations; } commit_outcome;

static commit_outcome commit_requests(uint32_t n, uint32_t f)
{
    commit_outcome o = { 0, 0 };
    harness *h = h_new(n, f, false, 16, NULL);
    for (uint32_t r = 0; r < 10; r++) {
        h_submit(h, r % H_CLIENTS, 1u);   /* to the primary of view 0 */
        h_run(h);
    }
    for (uint32_t i = 0; i < n; i++)
        if (h->nreq[i] == 10 && h_status(h, i).commit_index == h->applied[i] &&
            h_status(h, i).term == 0)
            o.replicas_done++;
    o.violations = h->violations;
    h_free(h);
    return o;
}

static void test_requests_commit_in_the_same_order_at_every_replica_n4(void **state)
{
    (void)state;
    commit_outcome o = commit_requests(4, 1);
    assert_int_equal(o.replicas_done, 4);
    assert_int_equal(o.violations, 0);
}

static void test_requests_commit_with_quorum_4_of_5(void **state)
{
    (void)state;
    commit_outcome o = commit_requests(5, 1);
    assert_int_equal(o.replicas_done, 5);
    assert_int_equal(o.violations, 0);
}

static void test_requests_commit_with_quorum_5_of_7(void **state)
{
    (void)state;
    commit_outcome o = commit_requests(7, 2);
    assert_int_equal(o.replicas_done, 7);
    assert_int_equal(o.violations, 0);
}

static void test_commit_survives_f_silent_backups_but_not_more(void **state)
{
    (void)state;
    harness *h = h_new(5, 1, false, 16, NULL);
    h->down[4] = true;               /* n - f = 4 = quorum: still live */
    h_submit(h, 0, 1u);
    h_run(h);
    assert_int_equal(h->nreq[0], 1);
    assert_int_equal(h->nreq[3], 1);
    h->down[3] = true;               /* 3 < quorum: nothing commits */
    h_submit(h, 0, 1u);
    h_run(h);
    assert_int_equal(h->nreq[0], 1);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void tweak_batch(uint32_t node, sy_engine_cfg *c)
{
    (void)node;
    c->batch_max = 4;
    c->batch_delay_ms = 10;
}

static uint32_t pp_seen;   /* PRE-PREPAREs node 0 sent to node 1 */

static bool count_pp(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    if (from == 0 && to == 1 && m->type == SY_MSG_PBFT_PRE_PREPARE)
        pp_seen++;
    return true;
}

static void test_primary_batches_up_to_batch_max_after_the_delay(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, tweak_batch);
    /* two backups down: nothing executes, so proposals stay in progress */
    h->down[2] = h->down[3] = true;
    h->filter = count_pp;
    pp_seen = 0;
    /* idle primary: the first request is proposed at once, no delay */
    h_submit(h, 0, 1u);
    h_run(h);
    assert_int_equal(pp_seen, 1);
    /* busy: a full batch (4) goes at once, the fifth waits for the delay */
    for (uint32_t r = 1; r < 6; r++)
        h_submit(h, r % H_CLIENTS, 1u);
    h_run(h);
    assert_int_equal(pp_seen, 2);
    h_tick(h, 5);
    assert_int_equal(pp_seen, 2);
    h_tick(h, 5);
    assert_int_equal(pp_seen, 3);
    h_free(h);
}

/* A damaged hard state naming a low water mark near 2^64 (h + L would
 * wrap; found by fuzz_boot as a hang) is refused as corrupt at boot. */
static void test_boot_refuses_sequence_numbers_near_the_top(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, NULL);
    uint8_t hs[1 + 8 + 1 + 8 + 8 + 8 + SY_DIGEST_LEN + 1 + 2];
    memset(hs, 0, sizeof hs);
    hs[0] = PBFT_HS_VERSION;
    hs[1] = 161;                        /* view */
    for (int i = 0; i < 8; i++)         /* h = 2^64 - 9, little endian */
        hs[1 + 8 + 1 + 8 + 8 + i] = i == 0 ? 0xf7 : 0xff;
    sy_engine_boot boot = { .hardstate = { hs, sizeof hs } };
    void *e = NULL;
    assert_int_not_equal(h->ops->create(&h->cfg[1], &boot, &e), SY_OK);
    assert_null(e);
    /* the same hard state with h = 8 boots */
    memset(hs + 1 + 8 + 1 + 8 + 8, 0, 8);
    hs[1 + 8 + 1 + 8 + 8] = 8;
    assert_int_equal(h->ops->create(&h->cfg[1], &boot, &e), SY_OK);
    h->ops->destroy(e);
    h_free(h);
}

/* With the backups back, everything queued executes in order. */
static void test_idle_primary_proposes_at_once_and_all_execute(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, tweak_batch);
    h_submit(h, 0, 1u);
    h_run(h);   /* no time passes: only the idle rule can have proposed it */
    assert_int_equal(h->applied[1], 1);
    assert_int_equal(h->nreq[1], 1);
    for (uint32_t r = 1; r < 6; r++)
        h_submit(h, r % H_CLIENTS, 1u);
    h_run_for(h, 50, 5);
    assert_int_equal(h->nreq[1], 6);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_commit_evidence_is_a_quorum_of_verifiable_commit_signatures(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    h_submit(h, 0, 1u);
    /* capture node 2's committed entry with its evidence */
    bool seen = false;
    for (int round = 0; round < 50 && !seen; round++) {
        sy_ready rd;
        h->ops->ready(h->e[2], &rd);
        for (size_t i = 0; i < rd.n_committed; i++) {
            uint64_t view, seq;
            sy_digest d, dd;
            sy_pbft_sig *sigs;
            uint32_t ns;
            assert_int_equal(sy_pbft_evidence_decode(rd.committed[i].evidence.p,
                                                     rd.committed[i].evidence.len, &view,
                                                     &seq, &d, &sigs, &ns), SY_OK);
            sy_hash(rd.committed[i].entry.data.p, rd.committed[i].entry.data.len, &dd);
            assert_true(sy_digest_eq(&d, &dd));
            assert_int_equal(seq, rd.committed[i].entry.index);
            assert_true(ns >= 3);
            for (uint32_t k = 0; k < ns; k++) {
                uint8_t stmt[SY_PBFT_STMT_MAX];
                size_t len = sy_pbft_stmt_bytes(H_CLUSTER, SY_MSG_PBFT_COMMIT, view, seq, &d,
                                                sigs[k].replica, stmt);
                assert_true(sy_verify(&h->ver, &h->pk[sigs[k].replica], stmt, len,
                                      &sigs[k].sig));
            }
            free(sigs);
            seen = true;
        }
        h->ops->advance(h->e[2], h->now);
        /* let everyone else run one round */
        for (uint32_t i = 0; i < 4; i++)
            if (i != 2)
                h_process(h, i);
        h_deliver_queued(h, UINT32_MAX);
    }
    assert_true(seen);
    h_free(h);
}

/* ------------------------------------------------------------ validation */

/* Feeds node 1 a pre-prepare from node 0 for `batch`, signed by node 0. */
static int feed_pre_prepare(harness *h, uint64_t seq, const uint8_t *batch, size_t len)
{
    sy_msg m = { .type = SY_MSG_PBFT_PRE_PREPARE };
    sy_pbft_stmt *st = &m.u.pbft.stmt;
    st->view = 0;
    st->seq = seq;
    sy_hash(batch, len, &st->digest);
    st->replica = 0;
    st->batch = (sy_bytes){ batch, (uint32_t)len };
    uint8_t sb[SY_PBFT_STMT_MAX];
    size_t sl = sy_pbft_stmt_bytes(H_CLUSTER, m.type, 0, seq, &st->digest, 0, sb);
    sy_sign(&h->sg[0], sb, sl, &st->sig);
    sy_input in = { .kind = SY_IN_MSG, .now_ms = h->now };
    in.u.msg.from = 0;
    in.u.msg.msg = &m;
    return h->ops->step(h->e[1], &in);
}

static void test_backup_rejects_batch_with_forged_client_signature(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    uint8_t *raw;
    size_t len;
    h_make_request(h, 0, &raw, &len);
    raw[len - 1] ^= 1;   /* break the client's signature */
    sy_bytes one = { raw, (uint32_t)len };
    uint8_t *batch;
    size_t blen;
    assert_int_equal(sy_batch_encode(&one, 1, &batch, &blen), SY_OK);
    assert_int_not_equal(feed_pre_prepare(h, 1, batch, blen), SY_OK);
    sy_ready rd;
    h->ops->ready(h->e[1], &rd);
    assert_int_equal(rd.n_msgs, 0);   /* no prepare for it */
    h->ops->advance(h->e[1], h->now);
    assert_int_equal(h_status(h, 1).dropped, 1);
    free(batch);
    free(raw);
    h_free(h);
}

static void test_backup_rejects_batch_replaying_an_older_request(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    uint8_t *raw;
    size_t len;
    h_make_request(h, 0, &raw, &len);
    h_submit_raw(h, raw, len, 1u);
    h_run(h);
    h_submit(h, 0, 1u);   /* the client's next request executes too */
    h_run(h);
    assert_int_equal(h->nreq[1], 2);
    sy_bytes one = { raw, (uint32_t)len };
    uint8_t *batch;
    size_t blen;
    assert_int_equal(sy_batch_encode(&one, 1, &batch, &blen), SY_OK);
    assert_int_equal(feed_pre_prepare(h, 3, batch, blen), SY_EFIELD);
    free(batch);
    free(raw);
    h_free(h);
}

static void test_retransmitted_latest_request_is_ordered_again_for_its_reply(void **state)
{
    (void)state;
    /* the replies were lost: the client retransmits to everyone; the
     * request is ordered again so every replica's session replays the
     * same cached reply (the state machine never executes it twice) */
    harness *h = h_new(4, 1, false, 16, NULL);
    uint8_t *raw;
    size_t len;
    h_make_request(h, 0, &raw, &len);
    h_submit_raw(h, raw, len, 1u);
    h_run(h);
    assert_int_equal(h->applied[2], 1);
    h_submit_raw(h, raw, len, 0xf);
    h_run(h);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h->applied[i], 2);
    /* and only once per retransmission burst */
    h_submit_raw(h, raw, len, 0xf);
    h_submit_raw(h, raw, len, 0xf);
    h_run(h);
    assert_true(h->applied[0] <= 4);
    assert_int_equal(h->violations, 0);
    free(raw);
    h_free(h);
}

static void test_backup_forwards_a_request_it_executed_and_does_not_watch_it(void **state)
{
    (void)state;
    /* a client sends to the primary and f backups; replica 3 executes the
     * request without having been asked. When the client, short of f+1
     * replies, asks replica 3 too, that replica passes it to the primary
     * (so it is ordered again and replica 3 has an answer to give) and
     * does not start its view-change timer on it: nothing is owed. */
    harness *h = h_new(4, 1, false, 16, NULL);
    uint8_t *raw;
    size_t len;
    h_make_request(h, 0, &raw, &len);
    h_submit_raw(h, raw, len, 0x3u);
    h_run(h);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h->applied[i], 1);
    h_submit_raw(h, raw, len, 0x8u);
    h_run(h);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h->applied[i], 2);
    h_run_for(h, 4 * 500, 50);   /* four request timeouts */
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h_status(h, i).term, 0);
    assert_int_equal(h->violations, 0);
    free(raw);
    h_free(h);
}

static void test_pre_prepare_whose_digest_does_not_match_batch_is_dropped(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    sy_msg m = { .type = SY_MSG_PBFT_PRE_PREPARE };
    sy_pbft_stmt *st = &m.u.pbft.stmt;
    static const uint8_t empty[1] = { 0x90 };
    st->seq = 1;
    st->digest.b[0] = 1;   /* not sy_hash(empty) */
    st->batch = (sy_bytes){ empty, 1 };
    uint8_t sb[SY_PBFT_STMT_MAX];
    size_t sl = sy_pbft_stmt_bytes(H_CLUSTER, m.type, 0, 1, &st->digest, 0, sb);
    sy_sign(&h->sg[0], sb, sl, &st->sig);
    sy_input in = { .kind = SY_IN_MSG, .now_ms = h->now };
    in.u.msg.from = 0;
    in.u.msg.msg = &m;
    assert_int_equal(h->ops->step(h->e[1], &in), SY_EFIELD);
    h_free(h);
}

static void test_messages_outside_the_water_marks_are_dropped_and_counted(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, NULL);   /* K = 4, L = 8 */
    sy_msg m = { .type = SY_MSG_PBFT_PREPARE };
    m.u.pbft.stmt = (sy_pbft_stmt){ .view = 0, .seq = 9, .replica = 2 };
    uint8_t sb[SY_PBFT_STMT_MAX];
    size_t sl = sy_pbft_stmt_bytes(H_CLUSTER, m.type, 0, 9, &m.u.pbft.stmt.digest, 2, sb);
    sy_sign(&h->sg[2], sb, sl, &m.u.pbft.stmt.sig);
    sy_input in = { .kind = SY_IN_MSG, .now_ms = h->now };
    in.u.msg.from = 2;
    in.u.msg.msg = &m;
    assert_int_equal(h->ops->step(h->e[1], &in), SY_ESTALE);
    assert_int_equal(h_status(h, 1).dropped, 1);
    h_free(h);
}

static void test_views_and_sequence_numbers_past_the_index_bound_are_refused(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, NULL);
    sy_engine_status before = h_status(h, 1);
    sy_input in = { .kind = SY_IN_MSG, .now_ms = h->now };
    in.u.msg.from = 2;
    /* a validly signed VIEW-CHANGE to view 2^64-1, a COMMIT at view 2^62+1,
     * a STATE_REQ and a STATE naming sequence numbers near 2^64: each
     * refused as out of range before anything reads it */
    sy_msg vc = { .type = SY_MSG_PBFT_VIEW_CHANGE };
    vc.u.pbft.vc = (sy_pbft_view_change){ .new_view = UINT64_MAX, .replica = 2 };
    sy_msg cm = { .type = SY_MSG_PBFT_COMMIT };
    cm.u.pbft.stmt = (sy_pbft_stmt){ .view = SY_INDEX_MAX + 1, .seq = 1, .replica = 2 };
    uint8_t sb[SY_PBFT_STMT_MAX];
    size_t sl = sy_pbft_stmt_bytes(H_CLUSTER, cm.type, cm.u.pbft.stmt.view, 1,
                                   &cm.u.pbft.stmt.digest, 2, sb);
    sy_sign(&h->sg[2], sb, sl, &cm.u.pbft.stmt.sig);
    sy_msg rq = { .type = SY_MSG_PBFT_STATE_REQ };
    rq.u.pbft.state_req = (sy_pbft_state_req){ .have = 0, .seq = UINT64_MAX - 1, .chunk = 0 };
    sy_msg stt = { .type = SY_MSG_PBFT_STATE };
    stt.u.pbft.state.ckpt.seq = UINT64_MAX;
    const sy_msg *ms[] = { &vc, &cm, &rq, &stt };
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
        in.u.msg.msg = ms[i];
        assert_int_equal(h->ops->step(h->e[1], &in), SY_EFIELD);
    }
    sy_engine_status after = h_status(h, 1);
    assert_int_equal(after.term, before.term);
    assert_int_equal(after.role, before.role);
    assert_int_equal(after.dropped, before.dropped + 4);
    /* and the cluster still orders requests */
    h_submit(h, 0, 0xfu);
    h_run(h);
    assert_int_equal(h->applied[1], 1);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_prepare_with_bad_statement_signature_is_not_counted(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    sy_msg m = { .type = SY_MSG_PBFT_PREPARE };
    m.u.pbft.stmt = (sy_pbft_stmt){ .view = 0, .seq = 1, .replica = 2 };
    uint8_t sb[SY_PBFT_STMT_MAX];
    size_t sl = sy_pbft_stmt_bytes(H_CLUSTER, m.type, 0, 1, &m.u.pbft.stmt.digest, 3, sb);
    sy_sign(&h->sg[3], sb, sl, &m.u.pbft.stmt.sig);   /* node 3's signature, node 2's name */
    sy_input in = { .kind = SY_IN_MSG, .now_ms = h->now };
    in.u.msg.from = 2;
    in.u.msg.msg = &m;
    assert_int_equal(h->ops->step(h->e[1], &in), SY_ESIG);
    h_free(h);
}

static void test_read_is_answered_at_the_executed_index(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    h_submit(h, 0, 1u);
    h_run(h);
    sy_input in = { .kind = SY_IN_READ, .now_ms = h->now };
    in.u.read.read_id = 77;
    h_step(h, 2, &in);
    sy_ready rd;
    h->ops->ready(h->e[2], &rd);
    assert_int_equal(rd.n_reads, 1);
    assert_int_equal(rd.reads[0].read_id, 77);
    assert_int_equal(rd.reads[0].index, 1);
    assert_int_equal(rd.reads[0].status, SY_OK);
    h->ops->advance(h->e[2], h->now);
    h_free(h);
}

/* ------------------------------------------------------------ checkpoints */

static void tweak_one_per_batch(uint32_t node, sy_engine_cfg *c)
{
    (void)node;
    c->batch_max = 1;
}

static void test_checkpoint_goes_stable_and_log_is_truncated(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_one_per_batch);
    for (uint32_t r = 0; r < 10; r++) {
        h_submit(h, r % H_CLIENTS, 1u);
        h_run(h);
    }
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(h->applied[i], 10);
        assert_int_equal(h_status(h, i).snap_index, 8);   /* checkpoints at 4, 8 */
        assert_int_equal(h->compacted[i], 8);
    }
    h_free(h);
}

static uint64_t bytes_written(const harness *h, uint32_t node)
{
    return h->disk[node].hs_bytes + h->disk[node].rec_bytes;
}

/* What a replica writes per request does not grow with the sequence
 * numbers in its window: the certificates of the window live in one engine
 * record per number, and a ready rewrites the ones that changed (a hard
 * state holding the whole window made request 61 write ~6x what request 1
 * did). Records at or below the stable checkpoint are dropped, and a
 * restart from the records alone rejoins. */
static void test_a_ready_writes_only_the_sequence_numbers_that_changed(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 64, tweak_one_per_batch);
    uint64_t at[71] = {0};
    for (uint32_t r = 1; r <= 70; r++) {
        h_submit(h, r % H_CLIENTS, 1u);
        h_run(h);
        at[r] = bytes_written(h, 1);
    }
    /* requests 21..30 and 51..60: 20-30 and 50-60 numbers above h = 0 */
    uint64_t b1 = at[30] - at[20], b2 = at[60] - at[50];
    assert_true(b1 > 0);
    assert_true(b2 <= b1 + b1 / 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(h->applied[i], 70);
        assert_int_equal(h_status(h, i).snap_index, 64);
        assert_true(h->disk[i].hs_len < 512);
        /* one record (the commit certificate) per executed number above h */
        assert_int_equal(h->disk[i].n_recs, 6);
        assert_int_equal(h->disk[i].recs[0].key, 65);
    }
    assert_int_equal(h_restart(h, 1), SY_OK);
    for (uint32_t r = 71; r <= 80; r++) {
        h_submit(h, r % H_CLIENTS, 1u);
        h_run(h);
    }
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h->applied[i], 80);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_memory_stays_bounded_under_endless_load(void **state)
{
    (void)state;
    /* L = 8 slots: 200 sequence numbers only pass if checkpoints keep
     * moving the window, i.e. the log below them is discarded */
    harness *h = h_new(4, 1, false, 4, tweak_one_per_batch);
    for (uint32_t r = 0; r < 200; r++) {
        h_submit(h, r % H_CLIENTS, 1u);
        h_run(h);
    }
    assert_int_equal(h->applied[3], 200);
    assert_int_equal(h_status(h, 3).snap_index, 200);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_primary_stops_at_the_high_water_mark_until_a_checkpoint(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_one_per_batch);
    /* no checkpoint can go stable while replicas 1..3 are unreachable */
    h->down[1] = h->down[2] = h->down[3] = true;
    for (uint32_t r = 0; r < 12; r++)
        h_submit(h, r % H_CLIENTS, 1u);
    h_run(h);
    assert_int_equal(h_status(h, 0).last_index, 8);   /* h + L */
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quorum_is_2f_plus_1_only_when_n_is_3f_plus_1),
        cmocka_unit_test(test_any_two_quorums_share_a_correct_replica_and_correct_ones_suffice),
        cmocka_unit_test(test_codec_round_trips_nested_view_change_and_new_view),
        cmocka_unit_test(test_codec_rejects_short_digest_in_prepare),
        cmocka_unit_test(test_behaviour_names_map_to_codes),
        cmocka_unit_test(test_requests_commit_in_the_same_order_at_every_replica_n4),
        cmocka_unit_test(test_requests_commit_with_quorum_4_of_5),
        cmocka_unit_test(test_requests_commit_with_quorum_5_of_7),
        cmocka_unit_test(test_commit_survives_f_silent_backups_but_not_more),
        cmocka_unit_test(test_primary_batches_up_to_batch_max_after_the_delay),
        cmocka_unit_test(test_idle_primary_proposes_at_once_and_all_execute),
        cmocka_unit_test(test_boot_refuses_sequence_numbers_near_the_top),
        cmocka_unit_test(test_commit_evidence_is_a_quorum_of_verifiable_commit_signatures),
        cmocka_unit_test(test_backup_rejects_batch_with_forged_client_signature),
        cmocka_unit_test(test_backup_rejects_batch_replaying_an_older_request),
        cmocka_unit_test(test_retransmitted_latest_request_is_ordered_again_for_its_reply),
        cmocka_unit_test(test_backup_forwards_a_request_it_executed_and_does_not_watch_it),
        cmocka_unit_test(test_pre_prepare_whose_digest_does_not_match_batch_is_dropped),
        cmocka_unit_test(test_messages_outside_the_water_marks_are_dropped_and_counted),
        cmocka_unit_test(test_prepare_with_bad_statement_signature_is_not_counted),
        cmocka_unit_test(test_views_and_sequence_numbers_past_the_index_bound_are_refused),
        cmocka_unit_test(test_read_is_answered_at_the_executed_index),
        cmocka_unit_test(test_checkpoint_goes_stable_and_log_is_truncated),
        cmocka_unit_test(test_a_ready_writes_only_the_sequence_numbers_that_changed),
        cmocka_unit_test(test_memory_stays_bounded_under_endless_load),
        cmocka_unit_test(test_primary_stops_at_the_high_water_mark_until_a_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
