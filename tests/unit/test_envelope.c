/* Envelope codec: round trips for every message type, and every way a frame
 * can be wrong is rejected with its own code. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "core/envelope.h"
#include "core/mp.h"
#include "crypto/sy_err.h"

#define N_NODES 4

typedef struct {
    sy_seckey *sk[N_NODES + 1]; /* last one is a client */
    sy_pubkey pk[N_NODES + 1];
    sy_signer signer[N_NODES + 1];
    sy_seckey *outsider;
    sy_signer outsider_signer;
    sy_verifier ver;
    sy_directory dir;
    sy_env_opts opts;
} fixture;

static const sy_pubkey *key_of(void *ctx, uint32_t id)
{
    fixture *f = ctx;
    if (id < N_NODES)
        return &f->pk[id];
    if (id == SY_CLIENT_ID_BASE)
        return &f->pk[N_NODES];
    return NULL;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    for (int i = 0; i <= N_NODES; i++) {
        uint8_t seed[32] = {(uint8_t)(i + 1)};
        assert_int_equal(sy_seckey_from_seed(seed, &f->sk[i]), SY_OK);
        sy_seckey_public(f->sk[i], &f->pk[i]);
        sy_signer_ed25519(&f->signer[i], f->sk[i]);
    }
    uint8_t seed[32] = {99};
    assert_int_equal(sy_seckey_from_seed(seed, &f->outsider), SY_OK);
    sy_signer_ed25519(&f->outsider_signer, f->outsider);
    sy_verifier_ed25519(&f->ver);
    f->dir.key_of = key_of;
    f->dir.ctx = f;
    f->opts.cluster_id = "test-cluster";
    f->opts.dir = &f->dir;
    f->opts.verifier = &f->ver;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i <= N_NODES; i++)
        sy_seckey_free(f->sk[i]);
    sy_seckey_free(f->outsider);
    free(f);
    return 0;
}

static sy_bytes B(const char *s) { return (sy_bytes){(const uint8_t *)s, (uint32_t)strlen(s)}; }

static void encode(fixture *f, uint32_t sender, const sy_msg *m, sy_buf *out)
{
    sy_buf_init(out);
    assert_int_equal(sy_env_encode("test-cluster", sender, m, &f->signer[sender < N_NODES ? sender : N_NODES], out), SY_OK);
}

static int decode(fixture *f, const sy_buf *b, sy_env *e)
{
    const char *why = NULL;
    int rc = sy_env_decode(&f->opts, b->p, b->len, e, &why);
    assert_non_null(why);
    return rc;
}

static sy_msg sample_req(void)
{
    sy_msg m = {.type = SY_MSG_CLIENT_REQ};
    m.u.req = (sy_client_req){.client_id = SY_CLIENT_ID_BASE, .req_no = 7, .op = SY_OP_CAS,
                              .flags = SY_REQ_STALE_OK, .limit = 3,
                              .key = B("k"), .val = B("new"), .old = B("old")};
    return m;
}

static void test_client_request_round_trips_with_signature(void **state)
{
    fixture *f = *state;
    sy_msg m = sample_req();
    sy_buf b;
    sy_env e;
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    assert_int_equal(decode(f, &b, &e), SY_OK);
    assert_int_equal(e.type, SY_MSG_CLIENT_REQ);
    assert_int_equal(e.sender, SY_CLIENT_ID_BASE);
    assert_string_equal(e.cluster_id, "test-cluster");
    assert_int_equal(e.msg.u.req.req_no, 7);
    assert_int_equal(e.msg.u.req.op, SY_OP_CAS);
    assert_int_equal(e.msg.u.req.limit, 3);
    assert_memory_equal(e.msg.u.req.val.p, "new", 3);
    assert_memory_equal(e.msg.u.req.old.p, "old", 3);
    assert_true(sy_ed25519_verify(&f->pk[N_NODES], e.signed_part, e.signed_len, &e.sig));
    sy_env_free(&e);
    sy_buf_free(&b);
}

/* A PBFT client's request carries its manifest's membership digest as an
 * optional ninth field: it round-trips, a request without it (crash-fault
 * clients, clients before 0.19) still decodes, and a ninth field that is
 * not a digest, or a tenth field, is refused. */
static void pack_req_fields(sy_buf *b, uint32_t fields, const void *digest, size_t dlen)
{
    msgpack_packer pk;
    sy_buf_reset(b);
    sy_mp_writer_init(&pk, b);
    msgpack_pack_array(&pk, fields);
    msgpack_pack_uint32(&pk, SY_CLIENT_ID_BASE);
    msgpack_pack_uint64(&pk, 7);
    msgpack_pack_uint8(&pk, SY_OP_PUT);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 0);
    sy_mp_put_bin(&pk, "k", 1);
    sy_mp_put_bin(&pk, "v", 1);
    sy_mp_put_bin(&pk, "", 0);
    for (uint32_t i = 8; i < fields; i++)
        sy_mp_put_bin(&pk, digest, dlen);
}

static void test_client_request_membership_digest_is_optional(void **state)
{
    fixture *f = *state;
    sy_msg m = sample_req();
    m.u.req.has_membership = true;
    memset(m.u.req.membership.b, 0xa5, SY_DIGEST_LEN);
    sy_buf b;
    sy_env e;
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    assert_int_equal(decode(f, &b, &e), SY_OK);
    assert_true(e.msg.u.req.has_membership);
    assert_true(sy_digest_eq(&e.msg.u.req.membership, &m.u.req.membership));
    assert_memory_equal(e.msg.u.req.old.p, "old", 3);
    sy_env_free(&e);
    sy_buf_free(&b);

    m = sample_req();
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    assert_int_equal(decode(f, &b, &e), SY_OK);
    assert_false(e.msg.u.req.has_membership);
    sy_env_free(&e);
    sy_buf_free(&b);

    uint8_t d[SY_DIGEST_LEN + 1];
    memset(d, 0x5a, sizeof d);
    sy_msg out;
    sy_buf_init(&b);
    pack_req_fields(&b, 9, d, SY_DIGEST_LEN);
    assert_int_equal(sy_msg_decode_body(SY_MSG_CLIENT_REQ, b.p, b.len, &out), SY_OK);
    assert_true(out.u.req.has_membership);
    assert_memory_equal(out.u.req.membership.b, d, SY_DIGEST_LEN);
    sy_msg_free(&out);
    pack_req_fields(&b, 9, d, SY_DIGEST_LEN - 1);
    assert_int_equal(sy_msg_decode_body(SY_MSG_CLIENT_REQ, b.p, b.len, &out), SY_EFIELD);
    pack_req_fields(&b, 9, d, SY_DIGEST_LEN + 1);
    assert_int_not_equal(sy_msg_decode_body(SY_MSG_CLIENT_REQ, b.p, b.len, &out), SY_OK);
    pack_req_fields(&b, 10, d, SY_DIGEST_LEN);
    assert_int_equal(sy_msg_decode_body(SY_MSG_CLIENT_REQ, b.p, b.len, &out), SY_EFIELD);
    pack_req_fields(&b, 7, d, SY_DIGEST_LEN);
    assert_int_not_equal(sy_msg_decode_body(SY_MSG_CLIENT_REQ, b.p, b.len, &out), SY_OK);
    sy_buf_free(&b);
}

/* Counts the signatures made through it. */
typedef struct {
    sy_signer inner;
    int n;
} counting_signer;

static void count_sign(void *ctx, const void *msg, size_t len, sy_sig *out)
{
    counting_signer *c = ctx;
    c->n++;
    c->inner.sign(c->inner.ctx, msg, len, out);
}

static void test_memo_signs_identical_messages_once(void **state)
{
    fixture *f = *state;
    counting_signer cs = {.inner = f->signer[1]};
    sy_signer s = {.sign = count_sign, .ctx = &cs, .pub = f->signer[1].pub};
    sy_env_memo memo;
    sy_env_memo_init(&memo);
    /* the same append built twice, with entry arrays of its own each */
    sy_entry e1[1] = {{.index = 5, .term = 2, .type = SY_ENTRY_NORMAL, .data = B("batch")}};
    sy_entry e2[1] = {{.index = 5, .term = 2, .type = SY_ENTRY_NORMAL, .data = B("batch")}};
    sy_msg a = {.type = SY_MSG_RAFT_APPEND}, b2 = {.type = SY_MSG_RAFT_APPEND};
    a.u.append = (sy_raft_append){.term = 2, .prev_index = 4, .prev_term = 2, .commit = 3,
                                  .n_entries = 1, .entries = e1};
    b2.u.append = a.u.append;
    b2.u.append.entries = e2;
    sy_buf f1, f2, plain;
    sy_buf_init(&f1);
    sy_buf_init(&f2);
    bool signed_now = false;
    assert_int_equal(sy_env_encode_memo("test-cluster", 1, &a, &s, &memo, &f1, &signed_now), SY_OK);
    assert_true(signed_now);
    assert_int_equal(sy_env_encode_memo("test-cluster", 1, &b2, &s, &memo, &f2, &signed_now), SY_OK);
    assert_false(signed_now);
    assert_int_equal(cs.n, 1);
    /* byte for byte what signing again gives, and it verifies */
    encode(f, 1, &b2, &plain);
    assert_int_equal(f2.len, plain.len);
    assert_memory_equal(f2.p, plain.p, plain.len);
    assert_int_equal(f1.len, f2.len);
    assert_memory_equal(f1.p, f2.p, f2.len);
    sy_env e;
    assert_int_equal(decode(f, &f2, &e), SY_OK);
    sy_env_free(&e);
    /* any difference is signed anew, and verifies too */
    b2.u.append.commit = 4;
    sy_buf_reset(&f2);
    assert_int_equal(sy_env_encode_memo("test-cluster", 1, &b2, &s, &memo, &f2, &signed_now), SY_OK);
    assert_true(signed_now);
    assert_int_equal(cs.n, 2);
    assert_int_equal(decode(f, &f2, &e), SY_OK);
    assert_int_equal(e.msg.u.append.commit, 4);
    sy_env_free(&e);
    sy_buf_free(&f1);
    sy_buf_free(&f2);
    sy_buf_free(&plain);
    sy_env_memo_free(&memo);
}

static void test_every_message_type_round_trips(void **state)
{
    fixture *f = *state;
    sy_entry ents[2] = {{.index = 11, .term = 3, .type = SY_ENTRY_NORMAL, .data = B("batch")},
                        {.index = 12, .term = 3, .type = SY_ENTRY_NOOP}};
    sy_kv kvs[2] = {{B("a"), B("1")}, {B("b"), B("2")}};
    sy_msg msgs[17];
    memset(msgs, 0, sizeof msgs);
    msgs[0].type = SY_MSG_PING;
    msgs[0].u.ping = (sy_ping){5, 1000};
    msgs[1].type = SY_MSG_PONG;
    msgs[1].u.ping = (sy_ping){5, 1001};
    msgs[2].type = SY_MSG_CLIENT_REPLY;
    msgs[2].u.reply = (sy_client_reply){.client_id = SY_CLIENT_ID_BASE, .req_no = 9, .status = SY_ECASFAIL,
                                        .leader = 2, .index = 44, .val = B("cur"), .n_kvs = 2, .kvs = kvs};
    msgs[3].type = SY_MSG_RAFT_VOTE;
    msgs[3].u.vote = (sy_raft_vote){.term = 4, .last_index = 10, .last_term = 3, .prevote = true};
    msgs[4].type = SY_MSG_RAFT_VOTE_RESP;
    msgs[4].u.vote_resp = (sy_raft_vote_resp){.term = 4, .granted = true};
    msgs[5].type = SY_MSG_RAFT_APPEND;
    msgs[5].u.append = (sy_raft_append){.term = 3, .prev_index = 10, .prev_term = 2, .commit = 9,
                                        .read_ctx = 77, .n_entries = 2, .entries = ents};
    msgs[6].type = SY_MSG_RAFT_APPEND_RESP;
    msgs[6].u.append_resp = (sy_raft_append_resp){.term = 3, .success = false, .conflict_index = 5,
                                                  .conflict_term = 2, .last_index = 8, .read_ctx = 77};
    msgs[7].type = SY_MSG_RAFT_SNAPSHOT;
    msgs[7].u.snap = (sy_raft_snapshot){.term = 3, .last_index = 100, .last_term = 2, .offset = 0,
                                        .done = true, .data = B("snapshot-bytes")};
    msgs[7].u.snap.members.n_voters = 3;
    msgs[7].u.snap.members.voters[2] = 2;
    msgs[7].u.snap.members.n_learners = 1;
    msgs[7].u.snap.members.learners[0] = 3;
    msgs[8].type = SY_MSG_RAFT_SNAPSHOT_RESP;
    msgs[8].u.snap_resp = (sy_raft_snapshot_resp){.term = 3, .last_index = 100, .next_offset = 14, .done = true};
    msgs[9].type = SY_MSG_RAFT_TIMEOUT_NOW;
    msgs[9].u.timeout_now.term = 8;
    msgs[10].type = SY_MSG_STATUS_REQ;
    msgs[10].u.status_req.nonce = 31;
    msgs[11].type = SY_MSG_STATUS_REPLY;
    msgs[11].u.status = (sy_status_reply){.nonce = 31, .node = 1, .protocol = B("raft"), .role = 3,
                                          .term = 4, .leader = 1, .last_index = 9, .commit_index = 8,
                                          .applied_index = 8, .snap_index = 2, .peers_connected = 3,
                                          .evidence = 0, .leader_changes = 2};
    msgs[11].u.status.state_digest.b[0] = 0xab;
    msgs[12].type = SY_MSG_TRANSFER_REQ;
    msgs[12].u.transfer_req = (sy_transfer_req){.nonce = 32, .leader = 1, .term = 9, .target = 2};
    msgs[13].type = SY_MSG_TRANSFER_REQ;
    msgs[13].u.transfer_req = (sy_transfer_req){.nonce = 33, .leader = 0, .term = 4,
                                                .target = UINT32_MAX};
    msgs[14].type = SY_MSG_TRANSFER_REPLY;
    msgs[14].u.transfer = (sy_transfer_reply){.nonce = 33, .node = 1, .status = SY_ENOTLEADER,
                                              .leader = 2};
    /* the status request that asks for the fault fields, and its reply */
    msgs[15].type = SY_MSG_STATUS_REQ;
    msgs[15].u.status_req = (sy_status_req){.nonce = 34, .with_faults = true};
    msgs[16] = msgs[11];
    msgs[16].u.status.has_faults = true;
    msgs[16].u.status.evidence = 2;
    msgs[16].u.status.evidence_from = 3;
    msgs[16].u.status.bad_sigs = 7;
    msgs[16].u.status.bad_sig_from = 3;
    msgs[16].u.status.dissent = 11;
    msgs[16].u.status.dissent_from = 3;
    msgs[16].u.status.dissent_primary = 0;

    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        sy_buf b, b2;
        sy_env e;
        encode(f, 1, &msgs[i], &b);
        assert_int_equal(decode(f, &b, &e), SY_OK);
        assert_int_equal(e.type, msgs[i].type);
        /* re-encoding the decoded struct gives the same body bytes */
        sy_buf_init(&b2);
        assert_int_equal(sy_env_encode("test-cluster", 1, &e.msg, &f->signer[1], &b2), SY_OK);
        assert_int_equal(b.len, b2.len);
        assert_memory_equal(b.p, b2.p, b.len);
        if (msgs[i].type == SY_MSG_STATUS_REQ)
            assert_int_equal(e.msg.u.status_req.with_faults, msgs[i].u.status_req.with_faults);
        if (msgs[i].type == SY_MSG_STATUS_REPLY) {
            const sy_status_reply *x = &msgs[i].u.status, *y = &e.msg.u.status;
            assert_int_equal(y->has_faults, x->has_faults);
            assert_int_equal(y->evidence_from, x->evidence_from);
            assert_int_equal(y->bad_sigs, x->bad_sigs);
            assert_int_equal(y->bad_sig_from, x->bad_sig_from);
            assert_int_equal(y->dissent, x->dissent);
            assert_int_equal(y->dissent_from, x->dissent_from);
            assert_int_equal(y->dissent_primary, x->dissent_primary);
        }
        sy_env_free(&e);
        sy_buf_free(&b);
        sy_buf_free(&b2);
    }
}

/* A transfer names a node that can exist, or none; a reply's status is
 * one of ours. */
static void test_transfer_messages_refuse_impossible_fields(void **state)
{
    fixture *f = *state;
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_TRANSFER_REQ;
    m.u.transfer_req = (sy_transfer_req){.nonce = 1, .leader = 0, .term = 1,
                                         .target = SY_MAX_NODES};
    sy_buf b;
    sy_env e;
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    assert_int_equal(decode(f, &b, &e), SY_EFIELD);
    sy_buf_free(&b);
    m.u.transfer_req = (sy_transfer_req){.nonce = 1, .leader = SY_MAX_NODES, .term = 1,
                                         .target = 0};
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    assert_int_equal(decode(f, &b, &e), SY_EFIELD);
    sy_buf_free(&b);
    m.type = SY_MSG_TRANSFER_REPLY;
    m.u.transfer = (sy_transfer_reply){.nonce = 1, .node = 0, .status = SY_ERR_COUNT};
    encode(f, 1, &m, &b);
    assert_int_equal(decode(f, &b, &e), SY_EFIELD);
    sy_buf_free(&b);
    assert_string_equal(sy_msg_type_name(SY_MSG_TRANSFER_REQ), "transfer_req");
}

static void test_any_flipped_bit_is_rejected(void **state)
{
    fixture *f = *state;
    sy_msg m = sample_req();
    sy_buf b;
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    /* every bit of the frame: header, body and signature */
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            sy_env e;
            b.p[i] ^= (uint8_t)(1u << bit);
            int rc = decode(f, &b, &e);
            assert_int_not_equal(rc, SY_OK);
            b.p[i] ^= (uint8_t)(1u << bit);
        }
    }
    sy_buf_free(&b);
}

static void test_signature_tamper_gives_bad_sig(void **state)
{
    fixture *f = *state;
    sy_msg m = sample_req();
    sy_buf b;
    sy_env e;
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    b.p[b.len - 1] ^= 1; /* last byte is inside the signature */
    assert_int_equal(decode(f, &b, &e), SY_ESIG);
    b.p[b.len - 1] ^= 1;
    b.p[b.len - 70] ^= 0x01; /* inside the signed part: last byte of body */
    assert_int_equal(decode(f, &b, &e), SY_ESIG);
    sy_buf_free(&b);
}

static void test_non_member_signer_is_rejected(void **state)
{
    fixture *f = *state;
    sy_msg m = {.type = SY_MSG_PING};
    sy_buf b;
    sy_env e;
    /* sender id that is not in the directory */
    sy_buf_init(&b);
    assert_int_equal(sy_env_encode("test-cluster", 17, &m, &f->outsider_signer, &b), SY_OK);
    assert_int_equal(decode(f, &b, &e), SY_ESENDER);
    sy_buf_free(&b);
    /* outsider claiming to be member 2: signature cannot verify */
    sy_buf_init(&b);
    assert_int_equal(sy_env_encode("test-cluster", 2, &m, &f->outsider_signer, &b), SY_OK);
    assert_int_equal(decode(f, &b, &e), SY_ESIG);
    sy_buf_free(&b);
}

static void test_message_replayed_into_other_cluster_is_rejected(void **state)
{
    fixture *f = *state;
    sy_msg m = {.type = SY_MSG_PING};
    sy_buf b;
    sy_env e;
    sy_buf_init(&b);
    assert_int_equal(sy_env_encode("other-cluster", 1, &m, &f->signer[1], &b), SY_OK);
    assert_int_equal(decode(f, &b, &e), SY_ECLUSTER);
    sy_buf_free(&b);
}

static void test_request_signed_by_other_client_is_rejected(void **state)
{
    fixture *f = *state;
    sy_msg m = sample_req();
    sy_buf b;
    sy_env e;
    /* node 1 signs a request that names client SY_CLIENT_ID_BASE */
    encode(f, 1, &m, &b);
    assert_int_equal(decode(f, &b, &e), SY_EFIELD);
    sy_buf_free(&b);
}

static void test_truncated_frames_are_rejected(void **state)
{
    fixture *f = *state;
    sy_msg m = sample_req();
    sy_buf b;
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    for (size_t n = 0; n < b.len; n++) {
        sy_env e;
        const char *why = NULL;
        int rc = sy_env_decode(&f->opts, b.p, n, &e, &why);
        assert_int_not_equal(rc, SY_OK);
        assert_non_null(why);
    }
    sy_buf_free(&b);
}

static void test_trailing_bytes_are_rejected(void **state)
{
    fixture *f = *state;
    sy_msg m = sample_req();
    sy_buf b;
    sy_env e;
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    sy_buf_append(&b, "\x00", 1);
    assert_int_equal(decode(f, &b, &e), SY_ETRAILING);
    sy_buf_free(&b);
}

static void test_oversized_frame_is_rejected_before_parsing(void **state)
{
    fixture *f = *state;
    sy_msg m = sample_req();
    sy_buf b;
    sy_env e;
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    sy_env_opts o = f->opts;
    o.max_size = b.len - 1;
    const char *why = NULL;
    assert_int_equal(sy_env_decode(&o, b.p, b.len, &e, &why), SY_ETOOBIG);
    assert_non_null(strstr(why, "size"));
    sy_buf_free(&b);
}

static void test_oversized_value_is_rejected(void **state)
{
    fixture *f = *state;
    sy_msg m = sample_req();
    uint8_t *big = calloc(1, SY_MAX_VALUE + 1);
    m.u.req.val = (sy_bytes){big, SY_MAX_VALUE + 1};
    sy_buf b;
    sy_env e;
    encode(f, SY_CLIENT_ID_BASE, &m, &b);
    assert_int_equal(decode(f, &b, &e), SY_ETOOBIG);
    sy_buf_free(&b);
    free(big);
}

static void test_unknown_type_and_version_are_rejected(void **state)
{
    fixture *f = *state;
    /* hand-built frame: inner [2, "test-cluster", 10, 1, bin ""] */
    uint8_t inner[64];
    size_t n = 0;
    inner[n++] = 0x95;
    inner[n++] = 0x02; /* version 2 */
    inner[n++] = 0xa0 | 12;
    memcpy(inner + n, "test-cluster", 12);
    n += 12;
    inner[n++] = 10;
    inner[n++] = 1;
    inner[n++] = 0xc4;
    inner[n++] = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            inner[1] = 0x01;       /* right version */
            inner[2 + 13] = 63;    /* type 63: unknown */
        }
        sy_sig sig;
        sy_ed25519_sign(f->sk[1], inner, n, &sig);
        uint8_t frame[160];
        size_t fl = 0;
        frame[fl++] = 0x92;
        frame[fl++] = 0xc4;
        frame[fl++] = (uint8_t)n;
        memcpy(frame + fl, inner, n);
        fl += n;
        frame[fl++] = 0xc4;
        frame[fl++] = 64;
        memcpy(frame + fl, sig.b, 64);
        fl += 64;
        sy_env e;
        const char *why;
        int rc = sy_env_decode(&f->opts, frame, fl, &e, &why);
        assert_int_equal(rc, pass == 0 ? SY_EVERSION : SY_EMSGTYPE);
    }
}

static void test_huge_array_header_does_not_allocate(void **state)
{
    (void)state;
    /* append body claiming 2^32-1 entries in eleven bytes: the count is
     * checked against the bytes left before anything is allocated */
    uint8_t body[] = {0x96, 1, 0, 0, 0, 0, 0xdd, 0xff, 0xff, 0xff, 0xff};
    sy_msg out;
    assert_int_equal(sy_msg_decode_body(SY_MSG_RAFT_APPEND, body, sizeof body, &out), SY_ETRUNC);
}

static void test_batch_round_trip_and_limits(void **state)
{
    (void)state;
    sy_bytes reqs[3] = {B("one"), B("two"), B("three")};
    uint8_t *enc;
    size_t len;
    assert_int_equal(sy_batch_encode(reqs, 3, &enc, &len), SY_OK);
    sy_bytes *out;
    uint32_t n;
    assert_int_equal(sy_batch_decode(enc, len, &out, &n), SY_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(out[2].p, "three", 5);
    free(out);
    assert_int_equal(sy_batch_decode(enc, len - 1, &out, &n), SY_ETRUNC);
    free(enc);
    assert_int_equal(sy_batch_encode(reqs, SY_MAX_BATCH + 1, &enc, &len), SY_ETOOBIG);
}

/* ---- batch-signed client replies ---- */
typedef struct {
    sy_buf frame[1100];
    size_t n;
} frames;

static void collect(void *ctx, size_t i, const uint8_t *frame, size_t len)
{
    frames *fr = ctx;
    assert_int_equal(i, fr->n);
    sy_buf_init(&fr->frame[fr->n]);
    sy_buf_append(&fr->frame[fr->n], frame, len);
    fr->n++;
}

static void frames_free(frames *fr)
{
    for (size_t i = 0; i < fr->n; i++)
        sy_buf_free(&fr->frame[i]);
    fr->n = 0;
}

static sy_msg reply_no(uint64_t k)
{
    sy_msg m = {.type = SY_MSG_CLIENT_REPLY};
    m.u.reply = (sy_client_reply){.client_id = SY_CLIENT_ID_BASE, .req_no = k, .status = SY_OK,
                                  .index = 100 + k, .leader = 1, .val = B("value")};
    return m;
}

static void seal_n(fixture *f, size_t n, frames *fr, size_t *nsigs)
{
    sy_env_batch b;
    sy_env_batch_init(&b);
    for (size_t k = 0; k < n; k++) {
        sy_msg m = reply_no(k);
        assert_int_equal(sy_env_batch_add(&b, "test-cluster", 1, &m), SY_OK);
    }
    fr->n = 0;
    assert_int_equal(sy_env_batch_seal(&b, &f->signer[1], collect, fr, nsigs), SY_OK);
    assert_int_equal(fr->n, n);
    sy_env_batch_free(&b);
}

static void test_batch_signed_replies_verify_one_by_one(void **state)
{
    fixture *f = *state;
    static frames fr;
    size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 64, 100, 1024, 1027};
    f->opts.batch_ok = true;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s], nsigs = 0;
        seal_n(f, n, &fr, &nsigs);
        assert_int_equal(nsigs, (n + SY_ENV_BATCH_MAX - 1) / SY_ENV_BATCH_MAX);
        for (size_t k = 0; k < n; k++) {
            sy_env e;
            assert_int_equal(decode(f, &fr.frame[k], &e), SY_OK);
            assert_int_equal(e.type, SY_MSG_CLIENT_REPLY);
            assert_int_equal(e.sender, 1);
            assert_int_equal(e.msg.u.reply.req_no, k);
            assert_int_equal(e.msg.u.reply.index, 100 + k);
            /* one reply alone in its chunk is an ordinary signed frame */
            bool alone = n % SY_ENV_BATCH_MAX == 1 && k == n - 1;
            assert_int_equal(e.batched, !alone);
            size_t ml;
            const uint8_t *sm = sy_env_sig_msg(&e, &ml);
            assert_true(sy_ed25519_verify(&f->pk[1], sm, ml, &e.sig));
            sy_env_free(&e);
        }
        frames_free(&fr);
    }
    f->opts.batch_ok = false;
}

static void test_batch_signed_frames_are_refused_where_not_allowed(void **state)
{
    fixture *f = *state;
    static frames fr;
    sy_env e;
    seal_n(f, 3, &fr, NULL);
    f->opts.batch_ok = false; /* a node's own decoder */
    for (size_t k = 0; k < 3; k++)
        assert_int_equal(decode(f, &fr.frame[k], &e), SY_EFIELD);
    frames_free(&fr);
    /* only replies can be batched */
    sy_env_batch b;
    sy_env_batch_init(&b);
    sy_msg req = sample_req();
    assert_int_equal(sy_env_batch_add(&b, "test-cluster", 1, &req), SY_EINVAL);
    sy_env_batch_free(&b);
}

static void test_batch_proof_tampering_is_rejected(void **state)
{
    fixture *f = *state;
    static frames fr;
    sy_env e;
    f->opts.batch_ok = true;
    seal_n(f, 5, &fr, NULL);
    /* every bit of a frame: its reply, the signature and the proof */
    sy_buf *b = &fr.frame[2];
    for (size_t i = 0; i < b->len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b->p[i] ^= (uint8_t)(1u << bit);
            assert_int_not_equal(decode(f, b, &e), SY_OK);
            b->p[i] ^= (uint8_t)(1u << bit);
        }
    }
    assert_int_equal(decode(f, b, &e), SY_OK);
    sy_env_free(&e);
    /* the batch signature does not pass as the signature of one frame:
     * re-frame frame 0's signed part and signature as a single frame */
    assert_int_equal(decode(f, &fr.frame[0], &e), SY_OK);
    sy_buf single;
    sy_buf_init(&single);
    msgpack_packer pk;
    sy_mp_writer_init(&pk, &single);
    msgpack_pack_array(&pk, 2);
    sy_mp_put_bin(&pk, e.signed_part, e.signed_len);
    sy_mp_put_bin(&pk, e.sig.b, SY_SIG_LEN);
    sy_env_free(&e);
    assert_int_equal(decode(f, &single, &e), SY_ESIG);
    sy_buf_free(&single);
    f->opts.batch_ok = false;
    frames_free(&fr);
}

static void test_members_round_trip(void **state)
{
    (void)state;
    sy_members m = {.n_voters = 3, .voters = {0, 1, 2}, .n_learners = 1, .learners = {5}};
    uint8_t *enc;
    size_t len;
    assert_int_equal(sy_members_encode(&m, &enc, &len), SY_OK);
    sy_members back;
    assert_int_equal(sy_members_decode(enc, len, &back), SY_OK);
    assert_int_equal(back.n_voters, 3);
    assert_int_equal(back.voters[2], 2);
    assert_int_equal(back.learners[0], 5);
    free(enc);
}

static void test_simsig_cannot_forge_other_identity(void **state)
{
    (void)state;
    sy_simsig *reg;
    sy_signer a, b;
    sy_verifier v;
    uint8_t sa[32] = {1}, sb[32] = {2};
    assert_int_equal(sy_simsig_new(4, &reg), SY_OK);
    assert_int_equal(sy_simsig_add(reg, sa, &a), SY_OK);
    assert_int_equal(sy_simsig_add(reg, sb, &b), SY_OK);
    sy_verifier_simsig(&v, reg);
    sy_sig sig;
    sy_sign(&a, "hello", 5, &sig);
    assert_true(sy_verify(&v, &a.pub, "hello", 5, &sig));
    assert_false(sy_verify(&v, &b.pub, "hello", 5, &sig));
    assert_false(sy_verify(&v, &a.pub, "hellp", 5, &sig));
    sy_simsig_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_request_round_trips_with_signature),
        cmocka_unit_test(test_every_message_type_round_trips),
        cmocka_unit_test(test_memo_signs_identical_messages_once),
        cmocka_unit_test(test_transfer_messages_refuse_impossible_fields),
        cmocka_unit_test(test_any_flipped_bit_is_rejected),
        cmocka_unit_test(test_signature_tamper_gives_bad_sig),
        cmocka_unit_test(test_non_member_signer_is_rejected),
        cmocka_unit_test(test_message_replayed_into_other_cluster_is_rejected),
        cmocka_unit_test(test_request_signed_by_other_client_is_rejected),
        cmocka_unit_test(test_truncated_frames_are_rejected),
        cmocka_unit_test(test_trailing_bytes_are_rejected),
        cmocka_unit_test(test_oversized_frame_is_rejected_before_parsing),
        cmocka_unit_test(test_oversized_value_is_rejected),
        cmocka_unit_test(test_unknown_type_and_version_are_rejected),
        cmocka_unit_test(test_huge_array_header_does_not_allocate),
        cmocka_unit_test(test_batch_round_trip_and_limits),
        cmocka_unit_test(test_batch_signed_replies_verify_one_by_one),
        cmocka_unit_test(test_batch_signed_frames_are_refused_where_not_allowed),
        cmocka_unit_test(test_batch_proof_tampering_is_rejected),
        cmocka_unit_test(test_members_round_trip),
        cmocka_unit_test(test_client_request_membership_digest_is_optional),
        cmocka_unit_test(test_simsig_cannot_forge_other_identity),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
