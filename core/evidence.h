/* Checks the commit evidence stored with each ledger block against the
 * cluster manifest's node keys, one format per protocol:
 *   raft:  u32 BE node | sig over "SYRC" | u8 len | cluster | u64 term |
 *          u64 index | u8 type | H(data)                 (docs/raft.md)
 *   paxos: u32 BE node | sig over "SYPX" | u8 len | cluster | u64 ballot |
 *          u64 slot | u8 type | H(data)                  (docs/paxos.md)
 *   pbft:  [view, seq, digest, [[replica, sig]...]]: a quorum of distinct
 *          replicas' COMMIT statements for (view, seq = index, digest =
 *          H(batch))                                     (docs/pbft.md)
 * Use sy_evidence_check as the sy_ledger_evidence_cb with a filled
 * sy_evidence_ctx. Empty evidence is rejected: every node built by synod
 * signs (only engine unit tests run without a signer). */
#ifndef SY_EVIDENCE_H
#define SY_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>
#include "core/ledger.h"
#include "crypto/crypto.h"
#include "core/msg.h"
#include "core/engine.h"

typedef struct sy_evidence_ctx {
    int protocol;                 /* enum sy_protocol (core/config.h) */
    const char *cluster_id;
    const sy_pubkey *node_keys;   /* n keys, borrowed */
    uint32_t n, f;
    const sy_verifier *verifier;
} sy_evidence_ctx;

int sy_evidence_check(void *ctx, const sy_ledger_block *b, char *why, size_t whylen);

/* The crash-fault engines' commit record: node `self` attests that it
 * committed the entry (term/ballot, index, type, data) in `cluster_id`.
 * tag is "SYRC" (Raft) or "SYPX" (Paxos). Writes SY_ATTEST_LEN bytes (u32
 * BE node | signature) to out. Used to sign (engines) and, through
 * sy_attestation_msg, to verify (sy_evidence_check). */
#define SY_ATTEST_LEN (4u + SY_SIG_LEN)
#define SY_ATTEST_MSG_MAX (4u + 1u + SY_MAX_CLUSTER_ID + 8u + 8u + 1u + SY_DIGEST_LEN)
size_t sy_attestation_msg(const char *tag, const char *cluster_id, uint64_t term,
                          uint64_t index, uint8_t type, const sy_digest *data_digest,
                          uint8_t out[SY_ATTEST_MSG_MAX]);
void sy_attestation_sign(const char *tag, const char *cluster_id, uint32_t self,
                         const sy_signer *signer, const sy_entry *e,
                         uint8_t out[SY_ATTEST_LEN]);

/* The two halves of sy_attestation_sign, for a host that takes the
 * entry's facts when it applies and signs later (sy_committed.attest):
 * sy_attestation_msg of c's entry under c->attest (0 when c->attest is
 * NULL), and the record of a message so made. */
size_t sy_committed_attest_msg(const sy_committed *c, const char *cluster_id,
                               uint8_t out[SY_ATTEST_MSG_MAX]);
void sy_attestation_seal(uint32_t self, const sy_signer *signer, const uint8_t *msg, size_t n,
                         uint8_t out[SY_ATTEST_LEN]);

#endif
