/* Cluster manifest (cluster.ini) and node file (node-<i>.ini).
 *
 * The manifest is the one description of a cluster every node and client
 * shares: protocol, fault bound, timing, and every member's public key and
 * addresses. The node file is per host: which node this is, where its secret
 * key and data live. Reference: docs/configuration.md.
 *
 * Both are INI, parsed with libinih. Loading validates everything it can
 * (types, ranges, fault bound, duplicates, address syntax, unknown keys) and
 * stops at the first problem with SY_ECONFIG (or the key file's code for
 * key-file problems) and a one-line reason naming the file, the line or
 * section, and the fix where there is one.
 *
 * Ownership: a loaded sy_cluster_cfg owns its arrays; release it with
 * sy_cluster_free (safe on a zeroed or failed-load struct). Nothing here
 * keeps global state. */
#ifndef SY_CONFIG_H
#define SY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/msg.h"
#include "core/engine.h"
#include "core/envelope.h"
#include "crypto/crypto.h"

enum sy_protocol {
    SY_PROTO_NONE = 0,
    SY_PROTO_RAFT,
    SY_PROTO_PAXOS,
    SY_PROTO_PBFT,
};

#define SY_MAX_ADDR 256         /* bytes of an address, with NUL */
#define SY_MAX_CLIENT_NAME 64   /* characters of a client name */
#define SY_MAX_CLIENTS 4096u    /* [client] sections in a manifest */
#define SY_CFG_MAX_PATH 4096    /* bytes of a path, with NUL */
#define SY_CFG_MAX_FILE (1024u * 1024u) /* bytes of an INI file */
#define SY_CFG_MAX_PEM (1024u * 1024u)  /* bytes of a TLS certificate/key file */

/* Defaults for optional [cluster] keys (docs/configuration.md). */
#define SY_DEF_HEARTBEAT_MS 50u
#define SY_DEF_ELECTION_MIN_MS 300u
#define SY_DEF_ELECTION_MAX_MS 600u
#define SY_DEF_REQUEST_TIMEOUT_MS 2000u
#define SY_DEF_BATCH_DELAY_MS 1u
#define SY_DEF_BATCH_MAX 512u
#define SY_DEF_BATCH_BYTES_MAX (4u * 1024u * 1024u)
/* Raft/Paxos: appends (accepts) in flight per peer. Entries proposed while
 * the window is full ride in the next append, so a small window means
 * fewer, larger appends: fewer follower syncs and acks per request. n=3 on
 * 2 cores, 64 clients, four interleaved runs: 5,926 ops/s at 64, 6,212 at
 * 4 (raft); paxos 5,955 -> 6,231 (docs/benchmarks.md). An append still
 * carries up to batch_bytes_max, so the window does not cap throughput on
 * a long link: 4 x 4 MiB per round trip. */
#define SY_DEF_MAX_INFLIGHT 4u
#define SY_DEF_COMMIT_INTERVAL_MS 250u
/* PBFT: sequence numbers the primary runs at once beyond the next one to
 * execute (Castro & Liskov's sliding window over batches). Each one costs
 * every replica ~10 signature checks, 4 signatures and ~1.5 synced writes
 * whatever its size, so when replicas share few cores a small window makes
 * batches larger: n=4 on 2 cores, 64 clients: 1,084 ops/s at 64, 1,275 at
 * 2, 1,334 at 1 (session 3); session 14, interleaved, 1 against 2: 64
 * clients +3% to +15% in five pairs of six, 16 clients +14% to +17% in
 * three of three, one client within the noise (docs/benchmarks.md). 1
 * still runs two numbers at once: one ordered while the one before it is
 * executed; a batch holds up to batch_max requests, so a long link is
 * not starved by it. */
#define SY_DEF_PBFT_MAX_INFLIGHT 1u
#define SY_DEF_MAX_PENDING 10000u
#define SY_DEF_SNAPSHOT_THRESHOLD 10000u
#define SY_DEF_CHECKPOINT_INTERVAL 128u
#define SY_DEF_WATERMARK_WINDOW 256u

typedef struct sy_node_entry {
    uint32_t id;
    sy_pubkey pubkey;
    char peer[SY_MAX_ADDR];     /* replica mesh: tcp://, tls+tcp:// or ipc:// */
    char client[SY_MAX_ADDR];   /* client endpoint, same schemes */
    char metrics[SY_MAX_ADDR];  /* http://host:port, "" if not configured */
} sy_node_entry;

typedef struct sy_client_entry {
    char name[SY_MAX_CLIENT_NAME + 1];
    uint32_t client_id;         /* SY_CLIENT_ID_BASE + index in file order */
    sy_pubkey pubkey;
    bool admin;                 /* may ask for leadership transfers (default no) */
} sy_client_entry;

typedef struct sy_cluster_cfg {
    char path[SY_CFG_MAX_PATH];       /* the manifest file it was loaded from */
    char id[SY_MAX_CLUSTER_ID + 1];
    int protocol;                     /* enum sy_protocol */
    uint32_t f, n;
    uint32_t heartbeat_ms, election_min_ms, election_max_ms;
    uint32_t request_timeout_ms, batch_delay_ms;
    uint32_t batch_max, batch_bytes_max, max_inflight, max_pending;
    uint64_t snapshot_threshold;
    uint32_t checkpoint_interval, watermark_window;
    uint32_t state_chunk_bytes;       /* PBFT state transfer chunk */
    bool prevote, check_quorum;
    /* PEM CA bundle that signed every node's TLS certificate, resolved
     * against the manifest's directory; "" = no TLS. Set exactly when every
     * peer and client address is tls+tcp:// (the loader refuses a mix). */
    char tls_ca[SY_CFG_MAX_PATH];
    sy_node_entry *nodes;             /* n entries; nodes[i].id == i */
    sy_pubkey *node_keys;             /* n entries; node_keys[i] == nodes[i].pubkey */
    sy_client_entry *clients;         /* n_clients entries, in file order */
    size_t n_clients;
    /* What a client's trust in replies rests on, hashed (sy_cluster_cfg_membership):
     * cluster id, protocol, n, f and the node keys in id order -- not
     * addresses, timings or clients, which may differ between a client's
     * copy of the manifest and the nodes'. Set by sy_cluster_load. */
    sy_digest membership;
    /* sy_cluster_directory() over this struct, set by sy_cluster_load; it
     * points back at the struct, so a loaded cfg must not be copied or
     * moved (pass pointers). */
    sy_directory directory;
} sy_cluster_cfg;

typedef struct sy_node_cfg {
    char path[SY_CFG_MAX_PATH];       /* the node file */
    uint32_t id;
    char secret_key[SY_CFG_MAX_PATH]; /* resolved against the node file's dir */
    char data_dir[SY_CFG_MAX_PATH];
    char cluster[SY_CFG_MAX_PATH];
    int log_level;                    /* enum sy_log_level (core/log.h) */
    /* PEM file with this node's TLS certificate (chain) and private key,
     * resolved against the node file's dir; "" = no TLS. Required exactly
     * when the manifest has tls_ca. */
    char tls_cert[SY_CFG_MAX_PATH];
    /* How long the daemon may keep applied writes in one LMDB
     * transaction before committing it (held apply, cmd/synod/runtime.c). */
    uint32_t commit_interval_ms;
    sy_seckey *seckey;                /* loaded and checked; owned (sy_node_free) */
} sy_node_cfg;

/* "raft", "paxos", "pbft"; "unknown" otherwise. */
const char *sy_protocol_name(int protocol);
/* Parses a protocol name. SY_ECONFIG if not one of the three. */
int sy_protocol_parse(const char *name, int *out);
/* Largest f the protocol tolerates with n nodes (n >= 3f+1 or 2f+1). */
uint32_t sy_protocol_max_f(int protocol, uint32_t n);
/* Smallest n the protocol needs for f faults. */
uint32_t sy_protocol_min_n(int protocol, uint32_t f);

/* Loads and validates a manifest into *cfg (overwritten; free with
 * sy_cluster_free, also after a failure). */
int sy_cluster_load(const char *path, sy_cluster_cfg *cfg, char *why, size_t whylen);
void sy_cluster_free(sy_cluster_cfg *cfg);
/* The digest sy_cluster_load stores in cfg->membership. */
void sy_cluster_cfg_membership(const sy_cluster_cfg *cfg, sy_digest *out);

/* Loads a node file, the manifest it names (into *cluster), and this node's
 * secret key, checking that the key file is private (mode 0600) and that its
 * public key is the manifest's key for this node id. On failure nothing is
 * left to free (calling sy_node_free / sy_cluster_free anyway is safe). On
 * success the caller frees both. */
int sy_node_load(const char *path, sy_node_cfg *ncfg, sy_cluster_cfg *cluster,
                 char *why, size_t whylen);
void sy_node_free(sy_node_cfg *ncfg);

/* Fills the cluster-wide fields of an engine config: self, n, f, cluster_id,
 * timing, limits, prevote, check_quorum, node_keys and clients (both
 * borrowed from cfg, so cfg must outlive the engine). signer, verifier, rng_seed and
 * test_behaviour are left as they were: those belong to the host. */
void sy_cluster_engine_cfg(const sy_cluster_cfg *cfg, uint32_t self, sy_engine_cfg *out);

/* A directory (core/envelope.h) answering with the manifest's keys: node ids
 * 0..n-1 and client ids SY_CLIENT_ID_BASE + index. Borrows cfg. */
void sy_cluster_directory(const sy_cluster_cfg *cfg, sy_directory *out);

/* Client id of the client with this public key; SY_ENOTFOUND if none. */
int sy_cluster_client_by_key(const sy_cluster_cfg *cfg, const sy_pubkey *pk,
                             uint32_t *client_id);
/* Client entry by id, or NULL. */
const sy_client_entry *sy_cluster_client(const sy_cluster_cfg *cfg, uint32_t client_id);
/* May node `self`, leading in `term`, act on transfer request q signed by
 * `sender` (synodctl transfer)? SY_OK; SY_EUNAUTH: the sender is not a
 * client marked admin; SY_ESTALE: q is for another node or another term
 * (stale, or a replayed copy: one captured frame must not move leadership
 * again). */
int sy_cluster_transfer_allowed(const sy_cluster_cfg *cfg, uint32_t sender, uint32_t self,
                                uint64_t term, const sy_transfer_req *q);
/* The nonces of the transfer requests a node acted on in its current term
 * (the last SY_TRANSFER_SEEN): within one term a hand-off that did not take
 * leaves the leader leading on, and a replayed copy must not start another.
 * Zero-initialise. */
#define SY_TRANSFER_SEEN 8u
typedef struct {
    uint64_t term;
    uint64_t nonce[SY_TRANSFER_SEEN];
    uint32_t n;
} sy_transfer_seen;
/* SY_OK (nonce remembered for term) or SY_EREPLAY: acted on already. */
int sy_transfer_seen_check(sy_transfer_seen *s, uint64_t term, uint64_t nonce);
/* Node id with this public key; SY_ENOTFOUND if none. */
int sy_cluster_node_by_key(const sy_cluster_cfg *cfg, const sy_pubkey *pk, uint32_t *node_id);

/* Checks an address: want_http selects http://host:port, otherwise
 * tcp://host:port, tls+tcp://host:port or ipc://path. On failure writes the
 * problem (no file or key context) to why. */
int sy_addr_check(const char *addr, bool want_http, char *why, size_t whylen);

/* True for a tls+tcp:// address. */
bool sy_addr_is_tls(const char *addr);
/* The host part of a tcp://, tls+tcp:// or http:// address, without
 * IPv6 brackets, into out (cap bytes): what a TLS client checks the
 * server's certificate against. SY_EINVAL for an ipc:// or malformed
 * address, SY_ETOOBIG if it does not fit. */
int sy_addr_host(const char *addr, char *out, size_t cap);

#endif
