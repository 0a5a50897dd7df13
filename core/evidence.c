#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/evidence.h"
#include "core/config.h"
#include "core/msg.h"
#include "core/storage.h"
#include "crypto/sy_err.h"

static int bad(char *why, size_t whylen, const char *msg)
{
    snprintf(why, whylen, "%s", msg);
    return SY_ESIG;
}

size_t sy_attestation_msg(const char *tag, const char *cluster_id, uint64_t term,
                          uint64_t index, uint8_t type, const sy_digest *data_digest,
                          uint8_t out[SY_ATTEST_MSG_MAX])
{
    size_t cl = strnlen(cluster_id, SY_MAX_CLUSTER_ID), o = 0;
    memcpy(out, tag, 4);
    o = 4;
    out[o++] = (uint8_t)cl;
    memcpy(out + o, cluster_id, cl);
    o += cl;
    sy_put_u64be(out + o, term);
    o += 8;
    sy_put_u64be(out + o, index);
    o += 8;
    out[o++] = type;
    memcpy(out + o, data_digest->b, SY_DIGEST_LEN);
    return o + SY_DIGEST_LEN;
}

void sy_attestation_seal(uint32_t self, const sy_signer *signer, const uint8_t *msg, size_t n,
                         uint8_t out[SY_ATTEST_LEN])
{
    sy_sig sig;
    sy_put_u32be(out, self);
    sy_sign(signer, msg, n, &sig);
    memcpy(out + 4, sig.b, SY_SIG_LEN);
}

size_t sy_committed_attest_msg(const sy_committed *c, const char *cluster_id,
                               uint8_t out[SY_ATTEST_MSG_MAX])
{
    if (!c->attest)
        return 0;
    const sy_entry *e = &c->entry;
    sy_digest d;
    sy_hash(e->data.p, e->data.len, &d);
    return sy_attestation_msg(c->attest, cluster_id, e->term, e->index, e->type, &d, out);
}

bool sy_committed_attest(const sy_committed *c, const char *cluster_id, uint32_t self,
                         const sy_signer *signer, uint8_t out[SY_ATTEST_LEN])
{
    uint8_t msg[SY_ATTEST_MSG_MAX];
    size_t n = sy_committed_attest_msg(c, cluster_id, msg);
    if (!n)
        return false;
    sy_attestation_seal(self, signer, msg, n, out);
    return true;
}

/* Raft and Paxos: one node's signed commit record. */
static int check_attestation(const sy_evidence_ctx *x, const char *tag, const sy_ledger_block *b,
                             char *why, size_t whylen)
{
    if (b->evidence.len != 4 + SY_SIG_LEN)
        return bad(why, whylen, "commit evidence has the wrong length");
    uint32_t node = sy_get_u32be(b->evidence.p);
    if (node >= x->n)
        return bad(why, whylen, "commit evidence names a node not in the manifest");
    uint8_t msg[SY_ATTEST_MSG_MAX];
    /* only client batches make ledger blocks, so the entry type is NORMAL */
    size_t o = sy_attestation_msg(tag, x->cluster_id, b->term, b->index, SY_ENTRY_NORMAL,
                                  &b->batch_digest, msg);
    sy_sig sig;
    memcpy(sig.b, b->evidence.p + 4, SY_SIG_LEN);
    if (!sy_verify(x->verifier, &x->node_keys[node], msg, o, &sig)) {
        snprintf(why, whylen, "node %u's commit signature does not verify", node);
        return SY_ESIG;
    }
    return SY_OK;
}

static int check_pbft(const sy_evidence_ctx *x, const sy_ledger_block *b, char *why,
                      size_t whylen)
{
    uint64_t view = 0, seq = 0;
    sy_digest d;
    sy_pbft_sig *sigs = NULL;
    uint32_t n = 0;
    if (sy_pbft_evidence_decode(b->evidence.p, b->evidence.len, &view, &seq, &d, &sigs, &n))
        return bad(why, whylen, "commit certificate does not decode");
    int rc = SY_OK;
    if (seq != b->index) {
        rc = bad(why, whylen, "commit certificate is for another sequence number");
        goto out;
    }
    if (!sy_digest_eq(&d, &b->batch_digest)) {
        rc = bad(why, whylen, "commit certificate is for another batch");
        goto out;
    }
    uint32_t quorum = (x->n + x->f + 2) / 2; /* ceil((n+f+1)/2), docs/pbft.md */
    uint64_t seen = 0;
    uint32_t good = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t r = sigs[i].replica;
        if (r >= x->n || r >= 64 || (seen >> r & 1))
            continue;
        uint8_t stmt[SY_PBFT_STMT_MAX];
        size_t sl = sy_pbft_stmt_bytes(x->cluster_id, SY_MSG_PBFT_COMMIT, view, seq, &d, r, stmt);
        if (sy_verify(x->verifier, &x->node_keys[r], stmt, sl, &sigs[i].sig)) {
            seen |= 1ull << r;
            good++;
        }
    }
    if (good < quorum) {
        snprintf(why, whylen, "commit certificate has %u valid COMMIT signatures, needs %u",
                 good, quorum);
        rc = SY_ESIG;
    }
out:
    free(sigs);
    return rc;
}

int sy_evidence_check(void *ctx, const sy_ledger_block *b, char *why, size_t whylen)
{
    const sy_evidence_ctx *x = ctx;
    if (b->evidence.len == 0)
        return bad(why, whylen, "block carries no commit evidence");
    switch (x->protocol) {
    case SY_PROTO_RAFT: return check_attestation(x, "SYRC", b, why, whylen);
    case SY_PROTO_PAXOS: return check_attestation(x, "SYPX", b, why, whylen);
    case SY_PROTO_PBFT: return check_pbft(x, b, why, whylen);
    default: return bad(why, whylen, "unknown protocol");
    }
}
