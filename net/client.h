/* synod client library: put / get / del / cas / scan / status against a
 * cluster, in one header. Reference and examples: docs/client.md.
 *
 *     sy_client *c;
 *     char why[256];
 *     if (sy_client_open("demo/cluster.ini", "demo/keys/client-0.key", &c,
 *                        why, sizeof why) != SY_OK) { puts(why); ... }
 *     sy_client_put(c, "k", 1, "v", 1, 5000);
 *     uint8_t *v; size_t vl;
 *     if (sy_client_get(c, "k", 1, &v, &vl, 5000) == SY_OK) { ...; free(v); }
 *     sy_client_close(c);
 *
 * Every request is an Ed25519-signed envelope from this client's identity
 * (its key must be listed in the manifest: SY_EUNAUTH from sy_client_open
 * otherwise; and in the nodes' copy of it: a node refuses a request from a
 * client id it does not list with a signed SY_EUNAUTH, one whose signature
 * fails against the key it lists for that id with SY_ESIG, and a call ends
 * with that status), numbered
 * with a strictly increasing req_no taken from the wall clock (microseconds
 * times 1,024 plus 10 random bits), so a restarted client never reuses a
 * number. A retry of the
 * same call reuses its req_no: the cluster executes it at most once.
 *
 * Every reply is verified before it is believed: the signature, that its
 * sender is a node of the manifest and the node we asked, and that it
 * answers this client's current request.
 *
 * Crash-fault clusters (raft, paxos): the request goes to the believed
 * leader; a "not leader" reply's hint is followed; a node that stays silent
 * for attempt_ms is replaced by the next one, each further silent attempt
 * at the same request twice as long (up to 1 s, or attempt_ms if longer);
 * until the deadline. A node that has the request and has not answered
 * yet is waited on, not sent it again (which would throw its answer away),
 * until it has held it for max(1 s, 4 attempt_ms), then twice as long
 * each time; its answer counts whenever it comes.
 * Byzantine clusters (pbft): a write goes to the primary and f backups (a
 * replica can only answer a request it received on its own endpoint), to
 * every replica when the primary is unknown or too few replicas look
 * healthy; a result is accepted once f+1 replicas sent matching signed
 * replies (same status, value, results and log index); after attempt_ms
 * without that, every replica that has not answered gets the request (the
 * paper's broadcast; those still holding it, as above, are waited on), and
 * again after each further attempt, growing as above; the silent ones are
 * avoided for a few seconds.
 * Reads go to every replica (the read-only optimisation needs a quorum).
 *
 * Timeouts: every call takes timeout_ms, a deadline for the whole call
 * including retries; on expiry it returns SY_ETIMEOUT (no leader, no quorum
 * or nothing reachable in time: the write may or may not have happened).
 *
 * Threads: a sy_client is for one thread at a time. Use one per thread
 * (with different client keys: each client identity's requests are
 * executed in req_no order). Results are malloc'ed and owned by the caller. */
#ifndef SY_NET_CLIENT_H
#define SY_NET_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/config.h"
#include "crypto/crypto.h"
#include "crypto/sy_err.h"   /* the result codes every call returns */

#define SY_CLIENT_ATTEMPT_MS_DEFAULT 1000u
#define SY_CLIENT_ATTEMPT_MS_MIN 10u      /* a shorter attempt_ms is taken as this */
#define SY_CLIENT_BACKOFF_MS 50u          /* pause when no leader is known */

typedef struct sy_client sy_client;

typedef struct sy_client_opts {
    uint32_t attempt_ms;  /* silence before trying another node (0 = default;
                             at least SY_CLIENT_ATTEMPT_MS_MIN); a node still
                             working on the request is not sent it again
                             for at least 1 s, and its answer counts */
    bool stale_reads;     /* allow gets/scans to be answered from possibly
                             stale state (flag SY_REQ_STALE_OK) */
} sy_client_opts;

typedef struct sy_client_kv {
    uint8_t *key;
    size_t key_len;
    uint8_t *val;
    size_t val_len;
} sy_client_kv;

typedef struct sy_client_result {
    int status;           /* as decided by the cluster: SY_OK, SY_ENOTFOUND,
                             SY_ECASFAIL, SY_ETOOBIG, ... */
    uint64_t index;       /* log position that decided it */
    uint32_t node;        /* the node that answered (first of a quorum) */
    uint8_t *val;         /* get: value; failed cas: current value */
    size_t val_len;
    sy_client_kv *kvs;    /* scan results, in key order */
    size_t n_kvs;
} sy_client_result;

/* One node's status (synodctl status). */
typedef struct sy_client_node_status {
    int rc;               /* SY_OK; SY_EUNREACH: no valid answer in time; SY_ECLUSTER:
                             it answers for another cluster id (sy_client_their_cluster) */
    uint32_t node;
    char protocol[16];
    uint8_t role;         /* enum sy_role */
    uint64_t term;
    uint32_t leader;
    uint64_t last_index, commit_index, applied_index, snap_index;
    uint32_t peers_connected;
    uint64_t evidence, leader_changes;
    sy_digest state_digest, ledger_head;
    /* whom the node names as faulty (PBFT; core/engine.h sy_engine_status):
     * the replica behind its latest evidence, behind its latest statement
     * that did not verify, and the voter and primary behind its latest vote
     * against an accepted pre-prepare; SY_NO_NODE for none */
    uint32_t evidence_from;
    uint64_t bad_sigs;
    uint32_t bad_sig_from;
    uint64_t dissent;
    uint32_t dissent_from, dissent_primary;
} sy_client_node_status;

/* Loads the manifest and the client's secret key file and finds the
 * client's id by its public key. On failure *out is NULL and why (when
 * non-NULL) has one line naming the file and the problem. Either file:
 * SY_ENOTFOUND missing, SY_EPERM not readable; the manifest SY_ECONFIG
 * otherwise (malformed or invalid, including a tls_ca that cannot be
 * loaded); the key SY_ECORRUPT otherwise (malformed) or SY_EPERM
 * (readable by others); SY_EUNAUTH if the key is not in the manifest;
 * SY_ENOMEM, SY_EIO. */
int sy_client_open(const char *cluster_path, const char *key_path, sy_client **out,
                   char *why, size_t whylen);
/* Same with already-loaded structs; both are borrowed and must outlive the
 * client. Failures as above, with why; SY_EINVAL for a NULL cfg or sk or a
 * manifest without nodes. */
int sy_client_open_with(const sy_cluster_cfg *cfg, const sy_seckey *sk, sy_client **out,
                        char *why, size_t whylen);
/* Closes the client and frees it. Returns within about 2 s even when NNG
 * 1.5.2 hangs closing a socket (upstream issue #648): the sockets then
 * close, and the client is freed, on a helper thread if ever. */
void sy_client_close(sy_client *c);
void sy_client_set_opts(sy_client *c, const sy_client_opts *o);
uint32_t sy_client_id(const sy_client *c);
const sy_cluster_cfg *sy_client_cluster(const sy_client *c);
/* Nodes this client has a connection to right now (dialing goes on in the
 * background): tells "unreachable" from "no quorum" without a round trip. */
uint32_t sy_client_connected(const sy_client *c);
/* The same for node `node`. */
bool sy_client_node_connected(const sy_client *c, uint32_t node);
/* Whether f+1 nodes (each with the key the manifest lists for it) refused
 * calls because they belong to another cluster id than the manifest's: the
 * manifest is the wrong one. id gets that id. Calls end with status
 * SY_ECLUSTER then; a single such node is skipped like a silent one. Read it
 * on the thread that makes the calls. */
bool sy_client_their_cluster(const sy_client *c, char id[SY_MAX_CLUSTER_ID + 1]);

/* Generic call: op is enum sy_op_type; key/val/old/limit/flags as in
 * sy_client_req (core/msg.h). Returns SY_OK once the cluster decided
 * (res->status says how), SY_ETIMEOUT, SY_ENOMEM, or, without sending
 * anything, for a request that can never be valid: SY_ETOOBIG (a key or
 * a scan's `to` bound over SY_MAX_KEY, a value over SY_MAX_VALUE),
 * SY_EINVAL (an empty key for put / get / del / cas -- a scan's `from`
 * may be empty --, timeout_ms <= 0, an unknown op). res must be freed
 * with sy_client_result_free after SY_OK. */
int sy_client_exec(sy_client *c, uint8_t op, uint8_t flags, const void *key, size_t key_len,
                   const void *val, size_t val_len, const void *old, size_t old_len,
                   uint32_t limit, int timeout_ms, sy_client_result *res);
void sy_client_result_free(sy_client_result *res);
void sy_client_kvs_free(sy_client_kv *kvs, size_t n);

/* Convenience forms: return the cluster's status directly (SY_OK,
 * SY_ENOTFOUND, SY_ECASFAIL, ...) or the call's failure (SY_ETIMEOUT...;
 * SY_EINVAL / SY_ETOOBIG as sy_client_exec, e.g. for an empty key). */
int sy_client_put(sy_client *c, const void *key, size_t key_len, const void *val,
                  size_t val_len, int timeout_ms);
/* *val (malloc'ed, caller frees) on SY_OK. */
int sy_client_get(sy_client *c, const void *key, size_t key_len, uint8_t **val,
                  size_t *val_len, int timeout_ms);
int sy_client_del(sy_client *c, const void *key, size_t key_len, int timeout_ms);
/* Sets key to new_val if its value is old (old == NULL: if the key is
 * absent). On SY_ECASFAIL *cur (if cur non-NULL; malloc'ed, free it) holds
 * the current value and *cur_len (if non-NULL) its length, 0 when the key
 * is absent or its value is empty: the reply does not tell those two apart
 * (a get does). With old == NULL a failure means the key exists. */
int sy_client_cas(sy_client *c, const void *key, size_t key_len, const void *old,
                  size_t old_len, const void *new_val, size_t new_len, int timeout_ms,
                  uint8_t **cur, size_t *cur_len);
/* Keys in [from, to) (to_len == 0: to the end), in key order, at most
 * limit (0 or more than SY_MAX_SCAN: SY_MAX_SCAN). *kvs owned by the
 * caller (sy_client_kvs_free). A node answers at most SY_MAX_SCAN_BYTES
 * (4 MiB) of keys and values per request; a larger result is read in
 * several requests (pages), each linearizable on its own, not as one
 * snapshot, and all of it is held in memory (1,000 values of 1 MiB are
 * 1 GiB): sy_client_scan_page bounds that. timeout_ms covers all pages. */
int sy_client_scan(sy_client *c, const void *from, size_t from_len, const void *to,
                   size_t to_len, uint32_t limit, sy_client_kv **kvs, size_t *n,
                   int timeout_ms);
/* One request of a scan: as sy_client_scan, but only what one reply holds
 * (a linearizable read), and *more says whether keys in [from, to) may
 * follow the last one returned: the page stopped at limit, or came within
 * one largest key-value pair of the 4 MiB cap and may have been cut there.
 * To go on, scan from sy_client_key_after(last key). */
int sy_client_scan_page(sy_client *c, const void *from, size_t from_len, const void *to,
                        size_t to_len, uint32_t limit, sy_client_kv **kvs, size_t *n,
                        bool *more, int timeout_ms);
/* The smallest key that sorts after key (byte order) into out, which
 * holds SY_MAX_KEY bytes; returns its length, or 0 when none does (key is
 * SY_MAX_KEY bytes of 0xff). */
size_t sy_client_key_after(const void *key, size_t key_len, uint8_t *out);

/* Asks every node for its status at once; out has cfg->n entries. Nodes
 * that do not answer with a valid signed status in time get
 * rc = SY_EUNREACH. Returns SY_OK (even if every node is unreachable);
 * SY_EINVAL, asking nothing (every entry SY_EUNREACH), for timeout_ms <= 0,
 * as every call does. */
int sy_client_status_all(sy_client *c, int timeout_ms, sy_client_node_status *out);

/* Moves leadership: asks the node that leads (Raft, Multi-Paxos) or is
 * primary (PBFT) to hand it to `target` (SY_NO_NODE: its choice; PBFT:
 * only the next view's primary), then waits until another node leads in
 * a newer term. The request names the leader and its term, so the node
 * ignores it in any later term (a replayed copy moves nothing); it is
 * sent once: a lost answer is waited out, not repeated.
 * The client's key must be marked `admin = true` in the manifest.
 * SY_OK: *from led, *to leads now (*from == *to: target led already; with
 * a target, *to may still differ if another node won the election).
 * SY_EUNAUTH: the key is not admin here (checked before anything is
 * sent); SY_EPERM: the leader refused the key (not admin, or not listed,
 * in its copy of the manifest); SY_EINVAL: no such target, or one the
 * leader cannot hand to (PBFT: not the next primary); SY_EUNREACH: the
 * leader has no peer to hand over to (none answered it recently);
 * SY_EMSGTYPE: the leader does not know transfer requests (older synod);
 * SY_ETIMEOUT: no leader found, or no other node took over before
 * timeout_ms. SY_EINVAL also for timeout_ms <= 0 (nothing is sent). from
 * and to may be NULL. */
int sy_client_transfer(sy_client *c, uint32_t target, int timeout_ms, uint32_t *from,
                       uint32_t *to);

#endif
