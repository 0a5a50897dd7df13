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

#include <stdbool.h>
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
 * committed the entry (term/ballot, index, type, data) in `cluster_id`,
 * as u32 BE node | signature over sy_attestation_msg (SY_ATTEST_LEN
 * bytes). tag is "SYRC" (Raft) or "SYPX" (Paxos). The engines ask for it
 * (sy_committed.attest) and the host signs it; sy_evidence_check verifies
 * it through sy_attestation_msg. */
#define SY_ATTEST_LEN (4u + SY_SIG_LEN)
#define SY_ATTEST_MSG_MAX (4u + 1u + SY_MAX_CLUSTER_ID + 8u + 8u + 1u + SY_DIGEST_LEN)
size_t sy_attestation_msg(const char *tag, const char *cluster_id, uint64_t term,
                          uint64_t index, uint8_t type, const sy_digest *data_digest,
                          uint8_t out[SY_ATTEST_MSG_MAX]);

/* The record c asks for, signed now: false (nothing written) when
 * c->attest is NULL. The simulator and the engine tests sign this way. */
bool sy_committed_attest(const sy_committed *c, const char *cluster_id, uint32_t self,
                         const sy_signer *signer, uint8_t out[SY_ATTEST_LEN]);

/* Its two halves, for a host that takes the entry's facts when it applies
 * and signs later (the daemon, cmd/synod/runtime.c): the message of c's
 * record (0 when c->attest is NULL), and the record of a message so made. */
size_t sy_committed_attest_msg(const sy_committed *c, const char *cluster_id,
                               uint8_t out[SY_ATTEST_MSG_MAX]);
void sy_attestation_seal(uint32_t self, const sy_signer *signer, const uint8_t *msg, size_t n,
                         uint8_t out[SY_ATTEST_LEN]);

#endif
