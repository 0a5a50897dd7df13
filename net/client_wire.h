/* The parts of a client call that do not depend on how frames travel,
 * shared by the client library (net/client.c, blocking calls over NNG
 * REQ sockets) and synodctl bench's event loop (cmd/synodctl/bench_loop.c,
 * the same frames over its own TCP connections). Not part of the client
 * API (net/client.h); internal to synod's own binaries. */
#ifndef SY_NET_CLIENT_WIRE_H
#define SY_NET_CLIENT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/envelope.h"
#include "core/msg.h"

/* A node we hold no connection to gets this long before we try the next
 * one, instead of the full attempt time: a fresh client process (synodctl)
 * would otherwise wait attempt_ms on every call while a node is down. The
 * grace covers the first dial on loopback or a LAN. */
#define SY_CLIENT_DOWN_GRACE_MS 150u

/* A node that holds our request unanswered is not sent it again before
 * this long (or four attempts, if longer), then twice as long after each
 * re-post of the same request. A REQ socket has one request in flight, so
 * a re-post cancels the first: its answer, however close, is thrown away,
 * and a read starts over (reads are executed again, writes answered from
 * the session); a node answers only the newest copy and holds a client
 * slot for each older one until it expires (30 s). Re-posting every attempt_ms kept a healthy leader serving
 * 1 MiB scans that took longer than that from ever being heard (hundreds
 * of re-executions, then SY_ETIMEOUT). The re-post is still needed, late:
 * a node re-proposes a write it lost with its leadership, and a PBFT
 * backup forwards a retransmission to the primary, only when sent it
 * again. */
#define SY_CLIENT_REPOST_MS 1000u

/* A fresh request number above `last`: the wall clock in microseconds
 * times 1024 plus 10 random bits (net/client.c says why). */
uint64_t sy_client_next_req_no(uint64_t last);

/* Starts *m as request req_no of client client_id (zeroing the rest:
 * key, values and limit are the caller's): op, and flags with the flag
 * that names the kind of cluster the manifest cfg describes
 * (SY_REQ_CLIENT_CFT or SY_REQ_CLIENT_BFT, replacing any the caller set),
 * so that a node of the other kind refuses the request (SY_ECONFIG)
 * before the client trusts its reply the wrong way; for pbft also the
 * manifest's membership digest, so that a replica with another n, f or
 * node keys refuses it (SY_EMEMBERSHIP) before the client counts its
 * matching replies the wrong way. */
struct sy_cluster_cfg;
void sy_client_req_init(sy_msg *m, const struct sy_cluster_cfg *cfg, uint32_t client_id,
                        uint64_t req_no, uint8_t op, uint8_t flags);

/* Whether a reply status means "not decided here, ask again" (not the
 * leader, busy, timed out or closing) rather than the cluster's verdict. */
bool sy_client_retryable(int status);

/* Checks one frame that arrived from node `node` in answer to request
 * req_no of client client_id: it must decode under o (o->verifier is not
 * used for that: the signature is checked last, so late replies to earlier
 * requests cost no verification), be a CLIENT_REPLY sent by `node`
 * itself, answer this request (or be the node's refusal of a request it
 * could not decode: ids 0 and a failure status), and carry a valid
 * signature by the key o->dir lists for `node`, checked with o->verifier;
 * a batch signature verified before in this process (the same key, bytes
 * and signature) is not verified again. SY_OK: *env is valid and the
 * caller frees it. SY_ECLUSTER: the frame is enveloped for another
 * cluster id (nothing in *env); SY_EFIELD: not an answer to this request;
 * SY_ESIG: the signature does not check out; another decode error. */
int sy_client_check_reply(const sy_env_opts *o, const uint8_t *frame, size_t len,
                          uint32_t node, uint32_t client_id, uint64_t req_no, sy_env *env);

/* A frame sy_client_check_reply found enveloped for another cluster id
 * (SY_ECLUSTER): accepted as node `node`'s refusal of ours -- ids 0,
 * status SY_ECLUSTER, sent by `node` and signed by the key o->dir lists
 * for it -- decoded under the node's own id, which goes to id. SY_OK:
 * *env holds the refusal and the caller frees it; otherwise nothing. */
int sy_client_check_foreign_refusal(const sy_env_opts *o, const uint8_t *frame, size_t len,
                                    uint32_t node, char id[SY_MAX_CLUSTER_ID + 1],
                                    sy_env *env);

/* The attempt after one that ended in silence: twice as long as att, up
 * to the default attempt (or attempt_ms if longer). */
uint64_t sy_client_attempt_next(uint32_t attempt_ms, uint64_t att);

/* ---- PBFT: whom a request goes to, and what replies teach (Castro &
 * Liskov sec. 4.1; net/client.h says how a call proceeds) */

/* A replica that let an attempt pass without answering, or answered
 * something the accepted result contradicts, is left out of narrow sends
 * for this long. */
#define SY_BFT_SUSPECT_MS 5000u
#define SY_BFT_NARROW_MIN_MS 50u

/* What one client identity learns across its calls. Zero it, then set n,
 * f, client_id and primary = SY_NO_NODE. Times are monotonic ms. */
typedef struct sy_bft_memory {
    uint32_t n, f, client_id;
    uint32_t primary;                       /* SY_NO_NODE: unknown */
    uint32_t narrow_rtt;                    /* mean round trip of narrow sends */
    uint64_t suspect_until[SY_MAX_NODES];   /* left out of narrow sends until */
} sy_bft_memory;

/* Which replicas a request that needs `need` matching replies goes to
 * first (to[i]); up[i]: we hold a connection to replica i. Returns true
 * for a narrow send (the primary and need-1 backups), false when it goes
 * to every replica. */
bool sy_bft_targets(const sy_bft_memory *m, uint32_t need, const bool *up, uint64_t now,
                    bool *to);

/* How long a narrow send waits before it goes to everyone. */
uint64_t sy_bft_narrow_wait(const sy_bft_memory *m, uint32_t attempt_ms);

/* Learns from an accepted result: need matching replies, replica
 * `accepted` among them; have/got/hint: who answered, the digest of its
 * reply (sy_client_reply_digest) and the primary it named; first: whom
 * the first send went to; widened: the request went to more since; start:
 * when it was first sent. */
void sy_bft_learn(sy_bft_memory *m, uint32_t need, const bool *have, const bool *first,
                  const sy_digest *got, const uint32_t *hint, uint32_t accepted, bool widened,
                  uint64_t start, uint64_t now);

/* Whether `need` matching replies can still come: have/got as in
 * sy_bft_learn; up[i]: we hold a connection to replica i. For a read's
 * quorum (need > f+1) a replica we hold no connection to counts as one
 * that will not answer: giving up there only means the ordered read
 * (net/client.c, sy_client_exec), and with a replica down and the others
 * at different executed indexes the fast path otherwise waits out its
 * whole 2 x attempt_ms. An ordered request (need f+1) counts every
 * replica that has not answered: giving up there fails the call, and a
 * connection may come back. */
bool sy_bft_can_reach(const sy_bft_memory *m, uint32_t need, const bool *have,
                      const sy_digest *got, const bool *up);

#endif
