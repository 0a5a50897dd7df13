/* Ledger commit evidence: what `synodctl ledger verify` accepts and rejects
 * for each protocol's format. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "core/evidence.h"
#include "core/config.h"
#include "core/msg.h"
#include "core/buf.h"
#include "core/storage.h"
#include "crypto/sy_err.h"

#define N 4
static sy_seckey *sk[N];
static sy_pubkey pk[N];
static sy_verifier ver;

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++) {
        uint8_t seed[32] = {(uint8_t)(40 + i)};
        sy_seckey_from_seed(seed, &sk[i]);
        sy_seckey_public(sk[i], &pk[i]);
    }
    sy_verifier_ed25519(&ver);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++)
        sy_seckey_free(sk[i]);
    return 0;
}

static sy_ledger_block block(void)
{
    sy_ledger_block b;
    memset(&b, 0, sizeof b);
    b.height = 3;
    b.index = 17;
    b.term = 5;
    sy_hash("batch", 5, &b.batch_digest);
    return b;
}

/* raft/paxos attestation by `node` over the block */
static void attest(const char *tag, uint32_t node, const sy_ledger_block *b, uint8_t ev[68])
{
    uint8_t msg[128];
    size_t o = 0;
    memcpy(msg, tag, 4);
    o = 4;
    msg[o++] = 4;
    memcpy(msg + o, "demo", 4);
    o += 4;
    sy_put_u64be(msg + o, b->term);
    o += 8;
    sy_put_u64be(msg + o, b->index);
    o += 8;
    msg[o++] = SY_ENTRY_NORMAL;
    memcpy(msg + o, b->batch_digest.b, 32);
    o += 32;
    sy_put_u32be(ev, node);
    sy_sig sig;
    sy_ed25519_sign(sk[node], msg, o, &sig);
    memcpy(ev + 4, sig.b, 64);
}

static void test_raft_attestation_verifies_and_tampering_fails(void **state)
{
    (void)state;
    sy_evidence_ctx x = {SY_PROTO_RAFT, "demo", pk, 3, 1, &ver};
    sy_ledger_block b = block();
    uint8_t ev[68];
    char why[128];
    attest("SYRC", 1, &b, ev);
    b.evidence = (sy_bytes){ev, 68};
    assert_int_equal(sy_evidence_check(&x, &b, why, sizeof why), SY_OK);
    /* a different index than was signed */
    b.index++;
    assert_int_equal(sy_evidence_check(&x, &b, why, sizeof why), SY_ESIG);
    assert_non_null(strstr(why, "node 1"));
    b.index--;
    /* claims to be another node */
    sy_put_u32be(ev, 2);
    assert_int_equal(sy_evidence_check(&x, &b, why, sizeof why), SY_ESIG);
    /* a paxos-tagged record is not a raft record */
    attest("SYPX", 1, &b, ev);
    assert_int_equal(sy_evidence_check(&x, &b, why, sizeof why), SY_ESIG);
    x.protocol = SY_PROTO_PAXOS;
    assert_int_equal(sy_evidence_check(&x, &b, why, sizeof why), SY_OK);
    /* no evidence at all */
    b.evidence.len = 0;
    assert_int_equal(sy_evidence_check(&x, &b, why, sizeof why), SY_ESIG);
}

static void pbft_cert(const sy_ledger_block *b, const uint32_t *who, uint32_t k, sy_buf *out)
{
    sy_pbft_sig sigs[8];
    for (uint32_t i = 0; i < k; i++) {
        uint8_t stmt[SY_PBFT_STMT_MAX];
        size_t sl = sy_pbft_stmt_bytes("demo", SY_MSG_PBFT_COMMIT, 2, b->index, &b->batch_digest,
                                       who[i], stmt);
        sigs[i].replica = who[i];
        sy_ed25519_sign(sk[who[i]], stmt, sl, &sigs[i].sig);
    }
    sy_buf_init(out);
    assert_int_equal(sy_pbft_evidence_encode(2, b->index, &b->batch_digest, sigs, k, out), SY_OK);
}

static void test_pbft_certificate_needs_a_quorum_of_distinct_replicas(void **state)
{
    (void)state;
    sy_evidence_ctx x = {SY_PROTO_PBFT, "demo", pk, 4, 1, &ver};
    sy_ledger_block b = block();
    char why[128];
    sy_buf c;
    uint32_t three[] = {0, 2, 3}, two[] = {0, 2}, dup[] = {0, 2, 2};
    pbft_cert(&b, three, 3, &c);
    b.evidence = (sy_bytes){c.p, (uint32_t)c.len};
    assert_int_equal(sy_evidence_check(&x, &b, why, sizeof why), SY_OK);
    /* the same certificate does not vouch for another batch */
    sy_ledger_block other = b;
    sy_hash("other", 5, &other.batch_digest);
    assert_int_equal(sy_evidence_check(&x, &other, why, sizeof why), SY_ESIG);
    sy_buf_free(&c);
    pbft_cert(&b, two, 2, &c);
    b.evidence = (sy_bytes){c.p, (uint32_t)c.len};
    assert_int_equal(sy_evidence_check(&x, &b, why, sizeof why), SY_ESIG);
    assert_non_null(strstr(why, "needs 3"));
    sy_buf_free(&c);
    pbft_cert(&b, dup, 3, &c);
    b.evidence = (sy_bytes){c.p, (uint32_t)c.len};
    assert_int_equal(sy_evidence_check(&x, &b, why, sizeof why), SY_ESIG);
    sy_buf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raft_attestation_verifies_and_tampering_fails),
        cmocka_unit_test(test_pbft_certificate_needs_a_quorum_of_distinct_replicas),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
