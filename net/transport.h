/* NNG transport for one replica: the replica mesh, the client endpoint, and
 * the HTTP metrics/health server, all feeding one bounded event queue that
 * the runtime thread waits on.
 *
 *   peers ──PUSH──▶ our PULL (peer address) ─┐
 *   clients ─REQ──▶ our REP contexts (client) ├─▶ verify workers ─▶ event queue ─▶ sy_net_wait()
 *                                            ┘
 *   sy_net_send(to) ─▶ PUSH socket per peer, bounded, non-blocking: a slow or
 *                      dead peer costs dropped messages (counted), never a
 *                      blocked runtime. The protocols tolerate loss.
 *
 * Trust: a frame's claimed sender means nothing until sy_env_decode has
 * verified it. With cfg.verify set, worker threads (not the runtime thread)
 * decode and verify every inbound frame and attach the result to the event;
 * without it events carry raw bytes only. Identical frames seen again (a
 * duplicate delivery, a client retransmission) skip the signature check via
 * a small cache of digests of frames that already verified.
 *
 * Threads: NNG's own threads plus cfg.workers verify threads. Everything in
 * this header is thread-safe except where noted; sy_net_wait is meant for one
 * consumer (the runtime thread). No global state: several nets may live in
 * one process (tests do).
 *
 * Errors are enum sy_err codes. */
#ifndef SY_NET_TRANSPORT_H
#define SY_NET_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/buf.h"
#include "core/envelope.h"
#include "core/msg.h"
#include "crypto/crypto.h"

/* ---- limits and defaults ---- */
#define SY_NET_QUEUE_DEFAULT 8192u       /* events waiting for the runtime */
#define SY_NET_PEER_SENDBUF_DEFAULT 1024u /* frames queued per peer before drops */
#define SY_NET_CLIENT_CTX_DEFAULT 256u   /* outstanding client requests */
#define SY_NET_CLIENT_CTX_MAX 65536u
#define SY_NET_CLIENT_EXPIRE_MS_DEFAULT 30000u /* unanswered request is abandoned */
#define SY_NET_CLOSE_MS 3000u          /* longest wait in sy_net_close for NNG to let go */
#define SY_NET_RECONN_MIN_MS 50u
/* A peer's dialer backs off to this between attempts while the peer is
 * down; a restarted node hears from that peer only once it redials (the
 * mesh dials out to send), so this bounds how long a restarted node waits
 * to learn the leader. 2 s made `status` show a restarted Raft follower
 * without a leader for up to 2 s; one attempt per 500 ms to a dead peer
 * costs nothing worth that. */
#define SY_NET_RECONN_MAX_MS 500u
#define SY_NET_WORKERS_MAX 32u
#define SY_NET_VERIFY_CACHE 4096u        /* digests of recently verified frames */

typedef struct sy_net sy_net;

/* Fills `out` with Prometheus text (append; must be thread-safe: called on
 * an NNG HTTP thread). Return SY_OK, or an error for a 500. */
typedef int (*sy_net_metrics_fn)(void *ctx, sy_buf *out);
/* Health: return true if healthy; else write a one-line reason into
 * why (whylen bytes) -> 503 with that reason. Thread-safe, as above. */
typedef bool (*sy_net_health_fn)(void *ctx, char *why, size_t whylen);

typedef struct sy_net_cfg {
    uint32_t self;                  /* our node id */
    uint32_t n;                     /* nodes 0..n-1 */
    const char *const *peer_addrs;  /* n addresses (tcp://, tls+tcp://, ipc://); [self] is
                                       ours to listen on. Copied. */
    const char *client_addr;        /* REP listen address; NULL = none. Copied. */
    const char *metrics_addr;       /* http://host:port; NULL/"" = none. Copied. */
    /* TLS, for tls+tcp:// addresses (NULL/"" both = plain). Paths to PEM
     * files, read at open time. tls_cert: our certificate (chain) and
     * private key, presented on the peer and client listeners and to the
     * peers we dial; tls_ca: the CA bundle every node's certificate must
     * chain to, checked on both sides of a peer link (mutual TLS), with the
     * certificate's name checked against the host of the address we dial.
     * Clients connect without a certificate. TLS adds confidentiality and
     * keeps non-nodes off the mesh port; who sent a frame is still decided
     * by its Ed25519 signature alone. */
    const char *tls_cert;
    const char *tls_ca;
    /* Verification off the runtime thread (NULL = deliver raw bytes). The
     * opts and everything they point to are borrowed for the net's life and
     * must be safe to use from several threads at once (the manifest's
     * directory and the Ed25519 verifier are). */
    const sy_env_opts *verify;
    /* Our identity, for error replies to undecodable client requests
     * (NULL: such requests get no reply and the client times out). Borrowed;
     * sign() must be thread-safe (Ed25519 is). */
    const sy_signer *signer;
    const char *cluster_id;         /* for error replies; copied */
    uint32_t queue_max;             /* 0 = SY_NET_QUEUE_DEFAULT */
    uint32_t peer_sendbuf;          /* 0 = SY_NET_PEER_SENDBUF_DEFAULT */
    uint32_t client_ctxs;           /* 0 = SY_NET_CLIENT_CTX_DEFAULT */
    uint32_t client_expire_ms;      /* 0 = SY_NET_CLIENT_EXPIRE_MS_DEFAULT */
    uint32_t workers;               /* verify threads; 0 = number of cores */
    sy_net_metrics_fn metrics;      /* NULL: only the transport's own metrics */
    sy_net_health_fn health;        /* NULL: always healthy */
    void *cb_ctx;
    /* Test builds only (SYNOD_TESTING): sy_net_close sleeps this long
     * before closing anything, as a hung NNG close would. */
    uint32_t test_close_stall_ms;
} sy_net_cfg;

enum sy_net_event_kind {
    SY_NET_EV_PEER = 1,   /* frame from the replica mesh */
    SY_NET_EV_CLIENT,     /* client request; answer with sy_net_reply(handle) */
    SY_NET_EV_WAKE,       /* sy_net_wake() was called */
};

typedef struct sy_net_event {
    uint8_t kind;
    const uint8_t *data;  /* the frame as received; owned by the event */
    size_t len;
    uint64_t handle;      /* SY_NET_EV_CLIENT: reply handle, else 0 */
    /* Only with cfg.verify: */
    bool decoded;         /* decode was attempted */
    int rc;               /* SY_OK: env is valid; else why the frame failed */
    const char *why;      /* static one-line reason */
    sy_env env;           /* valid iff decoded && rc == SY_OK; borrows data */
    void *priv_;          /* internal */
} sy_net_event;

/* Transport counters (monotonic). */
typedef struct sy_net_stats {
    uint64_t peer_rx, client_rx;
    uint64_t peer_tx[SY_MAX_NODES], peer_tx_drop[SY_MAX_NODES]; /* per destination */
    uint64_t queue_drop;          /* inbound events dropped: queue full */
    uint64_t client_busy;         /* client requests refused: queue full */
    uint64_t client_expired;      /* requests abandoned unanswered */
    uint64_t reply_stale;         /* replies to handles no longer valid */
    uint64_t verify_ok, verify_fail, verify_cached;
    /* [0] peer, [1] client listener recreated by the watchdog for NNG
     * 1.5.2's listener bug (ipc and TLS listeners; transport.c) */
    uint64_t listener_restarts[2];
    uint32_t peers_connected;     /* outbound links currently up */
    bool peer_up[SY_MAX_NODES];
} sy_net_stats;

/* Starts listening and dialing. On failure nothing is left running and
 * why gets one line naming the address. *out is owned by the caller
 * (sy_net_close). */
int sy_net_open(const sy_net_cfg *cfg, sy_net **out, char *why, size_t whylen);
/* Stops everything and frees. Pending events are freed. NULL is fine.
 * Returns SY_OK when all is closed and freed, or SY_ETIMEOUT when NNG did
 * not let go within SY_NET_CLOSE_MS (an NNG hang; transport.c): the
 * closing then goes on on a thread of its own, which frees net if it ever
 * finishes, and the process must not call nng_fini (it would wait for
 * it). Either way the caller must not touch net again, and from the
 * moment it returns net calls nothing cfg points at (callbacks, verifier,
 * signer): the caller may free them. Metrics and health requests during
 * the close get 503 "node stopping". */
int sy_net_close(sy_net *net);

/* Sends a frame to peer `to` (copied). Never blocks: SY_EFULL if the peer's
 * buffer is full (frame dropped, counted), SY_EINVAL for a bad id. Sending
 * to self loops the frame back into our own queue. */
int sy_net_send(sy_net *net, uint32_t to, const uint8_t *frame, size_t len);

/* Waits up to timeout_ms (0 = poll, <0 = forever) for one event. SY_OK with
 * *ev filled (free with sy_net_event_free), SY_ETIMEOUT, or SY_ECLOSED. */
int sy_net_wait(sy_net *net, int timeout_ms, sy_net_event *ev);
/* Batch variant: waits like sy_net_wait for the first event, then takes up
 * to max events that are already queued without waiting again. *n is the
 * count (0 only with SY_ETIMEOUT). */
int sy_net_wait_batch(sy_net *net, int timeout_ms, sy_net_event *evs, size_t max,
                      size_t *n);
/* Frees an event's frame and decoded message. Safe on a zeroed event. */
void sy_net_event_free(sy_net_event *ev);
/* Makes the current or next sy_net_wait return an SY_NET_EV_WAKE event
 * (coalesced). Safe from any thread, not from a signal handler. */
void sy_net_wake(sy_net *net);

/* Answers the client request behind handle with frame (copied). Any
 * thread, any time later; SY_ENOTFOUND if the handle expired or was already
 * answered (counted as stale). */
int sy_net_reply(sy_net *net, uint64_t handle, const uint8_t *frame, size_t len);
/* Answers with a SY_MSG_CLIENT_REPLY signed by cfg.signer carrying status
 * (client_id/req_no 0 if unknown) and the leader hint. SY_EINVAL without a
 * signer. */
int sy_net_reply_error(sy_net *net, uint64_t handle, uint32_t client_id, uint64_t req_no,
                       int status, uint32_t leader);

void sy_net_get_stats(sy_net *net, sy_net_stats *out);
uint32_t sy_net_peers_connected(sy_net *net);
/* Appends the transport's own metrics in Prometheus text. */
void sy_net_metrics_text(sy_net *net, sy_buf *out);
#endif
