/* NNG transport: replica mesh, client endpoint, verify workers, event queue,
 * HTTP metrics and health. See net/transport.h for the shape.
 *
 * Invariants:
 *  - nothing here blocks the runtime thread except sy_net_wait itself: peer
 *    sends are non-blocking into bounded buffers, inbound queues are bounded
 *    and overflow is a counted drop (or a "busy" reply for clients);
 *  - a client slot's handle (generation << 32 | index) is valid for exactly
 *    one reply; a late, duplicate or expired reply is refused, so a reused
 *    context never answers a newer request with an older result. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include "net/transport.h"
#include "net/bounded.h"
#include "core/config.h"
#include "core/engine.h"
#include "crypto/sy_err.h"

#define CNT_ADD(x) __atomic_fetch_add(&(x), 1, __ATOMIC_RELAXED)
#define CNT_GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

typedef struct peer {
    sy_net *net;
    uint32_t id;
    nng_socket sock;
    bool open;
    int npipes;                   /* atomic */
    uint64_t tx, tx_drop;         /* atomic */
} peer;

enum { C_IDLE = 0, C_RECV, C_HELD, C_SEND };

typedef struct cslot {
    sy_net *net;
    uint32_t idx;
    uint32_t gen;                 /* guarded by net->cmu */
    int state;                    /* guarded by net->cmu */
    uint64_t since_ms;
    nng_ctx ctx;
    nng_aio *aio;
} cslot;

/* Watchdog for one listener. NNG 1.5.2 (upstream issue #1518, fixed in
 * later releases) stops handing accepted connections to the socket for
 * good once a client disconnects in the middle of connection negotiation:
 * a client process that exits or gives up early, a crashed peer, a port
 * scan. With TLS the negotiation includes the handshake. We measured it on
 * ipc:// and tls+tcp:// listeners (on ipc, dozens of REQ clients that dial,
 * send and close within 0.5 ms break a listener within the first few tens
 * of them); plain tcp:// listeners survived 3,000 such clients and raw
 * connect-and-close, so they are not watched. The listener still
 * completes negotiations but its pipes never reach our socket. So every
 * SY_NET_LST_PROBE_MS we dial our own listener from a throwaway socket;
 * if the probe's pipe comes up but the listening socket gains no pipe, the
 * listener is recreated (counted in synod_net_listener_restarts_total).
 * Runs on the runtime thread from sy_net_wait_batch. */
typedef struct lst_watch {
    bool on;                      /* the listener is watched (ipc or TLS) */
    const char *what;             /* "peer" or "client" */
    const char *addr;
    nng_socket sock;              /* the listening socket */
    bool want_req;                /* probe with REQ (client REP) or PUSH (peer PULL) */
    nng_tls_config *srv;          /* the listener's TLS config; NULL: plain */
    nng_tls_config *probe_cfg;    /* NULL: plain */
    nng_listener lst;
    bool lst_ok;
    uint64_t accepted;            /* atomic: pipes added to sock */
    nng_socket probe;
    bool probing;
    uint64_t probe_pipes;         /* atomic */
    uint64_t base, t_start, t_up, next_ms;
    uint64_t restarts;            /* atomic */
} lst_watch;

#define SY_NET_LST_PROBE_MS 5000u         /* between probes of a listener */
#define SY_NET_LST_ACCEPT_WAIT_MS 1000u   /* probe up, socket still without it */
#define SY_NET_LST_PROBE_GIVEUP_MS 15000u /* beyond NNG's 10 s negotiation timeout */

typedef struct work {
    uint8_t kind;
    nng_msg *msg;
    uint64_t handle;
} work;

struct sy_net {
    sy_net_cfg cfg;               /* pointers below replaced by our copies */
    char **addrs;
    char *client_addr, *metrics_addr, *cluster_id;
    char *tls_cert, *tls_ca;      /* NULL: plain */
    /* Listener TLS configs (NULL without TLS): the peer listener demands a
     * CA-signed certificate from the dialer, the client listener does not. */
    nng_tls_config *tls_peer_srv, *tls_client_srv;
    lst_watch watch[2];           /* [0] peer listener, [1] client listener */
    bool closing;                 /* atomic */
    /* Calls out of the transport into what cfg points at (the metrics and
     * health callbacks, the verifier, the signer) hold cbl for reading;
     * sy_net_close turns them off first, under the write lock, so nothing
     * calls the caller's objects once it returns, even when NNG's part of
     * the close is left behind. */
    pthread_rwlock_t cbl;
    bool callouts_off;

    peer peers[SY_MAX_NODES];
    nng_socket pull;
    bool pull_open;
    nng_aio *pull_aio;

    nng_socket rep;
    bool rep_open;
    cslot *slots;
    uint32_t n_slots;
    pthread_mutex_t cmu;
    uint64_t last_expire_ms;

    /* work queue: frames waiting for verification */
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    work *wq;
    uint32_t wq_head, wq_count, wq_cap;
    bool wq_closed;
    pthread_t *workers;
    uint32_t n_workers;

    /* event queue: what the runtime sees */
    pthread_mutex_t emu;
    pthread_cond_t ecv;
    sy_net_event *eq;
    uint32_t eq_head, eq_count, eq_cap;
    bool woken, eq_closed;

    /* verified-frame digest cache (direct mapped) */
    pthread_mutex_t vmu;
    sy_digest *vcache;
    bool *vvalid;

    nng_http_server *http;

    uint64_t peer_rx, client_rx, queue_drop, client_busy, client_expired, reply_stale;
    uint64_t verify_ok, verify_fail, verify_cached;
};

static int map_nng(int rv)
{
    switch (rv) {
    case 0: return SY_OK;
    case NNG_ENOMEM: return SY_ENOMEM;
    case NNG_EADDRINVAL: case NNG_EINVAL: case NNG_ENOTSUP: return SY_ECONFIG;
    case NNG_ETIMEDOUT: return SY_ETIMEOUT;
    case NNG_ECLOSED: return SY_ECLOSED;
    case NNG_EAGAIN: return SY_EFULL;
    case NNG_ECONNREFUSED: case NNG_EUNREACHABLE: return SY_EUNREACH;
    case NNG_EPERM: return SY_EPERM;
    default: return SY_EIO;
    }
}

static bool is_closing(sy_net *net)
{
    return __atomic_load_n(&net->closing, __ATOMIC_ACQUIRE);
}

/* true: the caller may call out and must callout_exit after */
static bool callout_enter(sy_net *net)
{
    pthread_rwlock_rdlock(&net->cbl);
    if (!net->callouts_off)
        return true;
    pthread_rwlock_unlock(&net->cbl);
    return false;
}

static void callout_exit(sy_net *net)
{
    pthread_rwlock_unlock(&net->cbl);
}

/* ------------------------------------------------------------ event queue */

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Takes ownership of ev on success only. */
static int eq_push(sy_net *net, sy_net_event *ev)
{
    pthread_mutex_lock(&net->emu);
    if (net->eq_closed || net->eq_count == net->eq_cap) {
        pthread_mutex_unlock(&net->emu);
        return SY_EFULL;
    }
    net->eq[(net->eq_head + net->eq_count) % net->eq_cap] = *ev;
    net->eq_count++;
    pthread_mutex_unlock(&net->emu);
    pthread_cond_signal(&net->ecv);   /* after the unlock: see sy_net_wake */
    return SY_OK;
}

void sy_net_event_free(sy_net_event *ev)
{
    if (!ev)
        return;
    if (ev->decoded && ev->rc == SY_OK)
        sy_env_free(&ev->env);
    if (ev->priv_)
        nng_msg_free((nng_msg *)ev->priv_);
    memset(ev, 0, sizeof *ev);
}

void sy_net_wake(sy_net *net)
{
    pthread_mutex_lock(&net->emu);
    net->woken = true;
    pthread_mutex_unlock(&net->emu);
    /* Signalled after the unlock: a waiter woken while we still hold the
     * mutex runs only to block on it, and our unlock then wakes it a
     * second time (two futex wakes and context switches for one event;
     * glibc's condition variables do not hand the mutex over). The state
     * changed under the mutex, so the waiter cannot miss it: it checks
     * eq_count and woken under the mutex before it waits. */
    pthread_cond_signal(&net->ecv);
}

static void expire_clients(sy_net *net);
static void listener_watchdog(sy_net *net);

int sy_net_wait_batch(sy_net *net, int timeout_ms, sy_net_event *evs, size_t max, size_t *n)
{
    struct timespec ts;
    int rc = SY_OK;

    *n = 0;
    if (max == 0)
        return SY_EINVAL;
    expire_clients(net);
    listener_watchdog(net);
    if (timeout_ms > 0)
        deadline_after(&ts, timeout_ms);
    pthread_mutex_lock(&net->emu);
    while (net->eq_count == 0 && !net->woken && !net->eq_closed) {
        if (timeout_ms == 0) {
            rc = SY_ETIMEOUT;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&net->ecv, &net->emu);
        } else if (pthread_cond_timedwait(&net->ecv, &net->emu, &ts) == ETIMEDOUT) {
            if (net->eq_count == 0 && !net->woken)
                rc = SY_ETIMEOUT;
            break;
        }
    }
    if (rc == SY_OK) {
        if (net->woken) {
            memset(&evs[0], 0, sizeof evs[0]);
            evs[0].kind = SY_NET_EV_WAKE;
            net->woken = false;
            *n = 1;
        }
        while (*n < max && net->eq_count > 0) {
            evs[(*n)++] = net->eq[net->eq_head];
            net->eq_head = (net->eq_head + 1) % net->eq_cap;
            net->eq_count--;
        }
        if (*n == 0)
            rc = net->eq_closed ? SY_ECLOSED : SY_ETIMEOUT;
    }
    pthread_mutex_unlock(&net->emu);
    return rc;
}

int sy_net_wait(sy_net *net, int timeout_ms, sy_net_event *ev)
{
    size_t n;
    return sy_net_wait_batch(net, timeout_ms, ev, 1, &n);
}

/* ------------------------------------------------------------- client slots */

static uint64_t now_ms(void)
{
    return (uint64_t)nng_clock();
}

static cslot *slot_of(sy_net *net, uint64_t handle, uint32_t *gen)
{
    uint32_t idx = (uint32_t)(handle & 0xffffffffu);
    *gen = (uint32_t)(handle >> 32);
    if (idx >= net->n_slots)
        return NULL;
    return &net->slots[idx];
}

static void slot_arm_recv(cslot *s)
{
    nng_ctx_recv(s->ctx, s->aio);
}

static int submit_work(sy_net *net, uint8_t kind, nng_msg *msg, uint64_t handle);
static int send_on_slot(sy_net *net, uint64_t handle, nng_msg *msg);

static void slot_cb(void *arg)
{
    cslot *s = arg;
    sy_net *net = s->net;
    int rv = nng_aio_result(s->aio);
    int state;

    pthread_mutex_lock(&net->cmu);
    state = s->state;
    pthread_mutex_unlock(&net->cmu);

    if ((state == C_SEND && rv != 0) || (state == C_RECV && rv == 0 && is_closing(net))) {
        nng_msg *m = nng_aio_get_msg(s->aio);
        if (m)
            nng_msg_free(m);
    }
    if (rv == NNG_ECLOSED || is_closing(net)) {
        pthread_mutex_lock(&net->cmu);
        s->state = C_IDLE;
        pthread_mutex_unlock(&net->cmu);
        return;
    }
    if (state == C_RECV && rv == 0) {
        nng_msg *m = nng_aio_get_msg(s->aio);
        uint64_t handle;
        pthread_mutex_lock(&net->cmu);
        s->gen++;
        s->state = C_HELD;
        s->since_ms = now_ms();
        handle = ((uint64_t)s->gen << 32) | s->idx;
        pthread_mutex_unlock(&net->cmu);
        CNT_ADD(net->client_rx);
        if (submit_work(net, SY_NET_EV_CLIENT, m, handle) != SY_OK) {
            CNT_ADD(net->client_busy);
            nng_msg_free(m);
            if (sy_net_reply_error(net, handle, 0, 0, SY_EFULL, SY_NO_NODE) != SY_OK) {
                /* no signer: abandon this request, take the next */
                pthread_mutex_lock(&net->cmu);
                s->gen++;
                s->state = C_RECV;
                pthread_mutex_unlock(&net->cmu);
                slot_arm_recv(s);
            }
        }
        return;
    }
    /* send finished (or failed), or a receive failed: take the next request */
    pthread_mutex_lock(&net->cmu);
    s->state = C_RECV;
    pthread_mutex_unlock(&net->cmu);
    slot_arm_recv(s);
}

/* Takes msg on success. */
static int send_on_slot(sy_net *net, uint64_t handle, nng_msg *msg)
{
    uint32_t gen;
    cslot *s = slot_of(net, handle, &gen);
    if (!s)
        return SY_ENOTFOUND;
    pthread_mutex_lock(&net->cmu);
    if (s->state != C_HELD || s->gen != gen || is_closing(net)) {
        pthread_mutex_unlock(&net->cmu);
        CNT_ADD(net->reply_stale);
        return SY_ENOTFOUND;
    }
    s->state = C_SEND;
    pthread_mutex_unlock(&net->cmu);
    nng_aio_set_msg(s->aio, msg);
    nng_ctx_send(s->ctx, s->aio);
    return SY_OK;
}

int sy_net_reply(sy_net *net, uint64_t handle, const uint8_t *frame, size_t len)
{
    nng_msg *m;
    int rc;
    if (nng_msg_alloc(&m, 0) != 0)
        return SY_ENOMEM;
    if (nng_msg_append(m, frame, len) != 0) {
        nng_msg_free(m);
        return SY_ENOMEM;
    }
    rc = send_on_slot(net, handle, m);
    if (rc)
        nng_msg_free(m);
    return rc;
}

/* Holds cbl for reading (it signs). */
static int reply_error_signed(sy_net *net, uint64_t handle, uint32_t client_id, uint64_t req_no,
                              int status, uint32_t leader)
{
    sy_msg m;
    sy_buf b;
    int rc;
    if (!net->cfg.signer || !net->cluster_id)
        return SY_EINVAL;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_CLIENT_REPLY;
    m.u.reply.client_id = client_id;
    m.u.reply.req_no = req_no;
    m.u.reply.status = (uint8_t)status;
    m.u.reply.leader = leader;
    sy_buf_init(&b);
    rc = sy_env_encode(net->cluster_id, net->cfg.self, &m, net->cfg.signer, &b);
    if (rc == SY_OK)
        rc = sy_net_reply(net, handle, b.p, b.len);
    sy_buf_free(&b);
    return rc;
}

int sy_net_reply_error(sy_net *net, uint64_t handle, uint32_t client_id, uint64_t req_no,
                       int status, uint32_t leader)
{
    if (!callout_enter(net))
        return SY_ECLOSED;
    int rc = reply_error_signed(net, handle, client_id, req_no, status, leader);
    callout_exit(net);
    return rc;
}

/* Runtime thread, at most once a second: requests the runtime never
 * answered (dropped by the engine, say) give their context back so the
 * endpoint cannot be exhausted. The client has long since retried. */
static void expire_clients(sy_net *net)
{
    uint64_t now = now_ms();
    uint32_t expire = net->cfg.client_expire_ms;
    if (!net->n_slots || now < net->last_expire_ms + 1000)
        return;
    net->last_expire_ms = now;
    for (uint32_t i = 0; i < net->n_slots; i++) {
        cslot *s = &net->slots[i];
        bool rearm = false;
        pthread_mutex_lock(&net->cmu);
        if (s->state == C_HELD && now >= s->since_ms + expire && !is_closing(net)) {
            s->gen++;
            s->state = C_RECV;
            rearm = true;
        }
        pthread_mutex_unlock(&net->cmu);
        if (rearm) {
            CNT_ADD(net->client_expired);
            slot_arm_recv(s);
        }
    }
}

/* ------------------------------------------------------------ verification */

static bool vcache_lookup(sy_net *net, const sy_digest *d, bool insert)
{
    uint32_t i;
    bool hit;
    memcpy(&i, d->b, sizeof i);
    i %= SY_NET_VERIFY_CACHE;
    pthread_mutex_lock(&net->vmu);
    hit = net->vvalid[i] && sy_digest_eq(&net->vcache[i], d);
    if (insert) {
        net->vcache[i] = *d;
        net->vvalid[i] = true;
    }
    pthread_mutex_unlock(&net->vmu);
    return hit;
}

static void verify_event(sy_net *net, sy_net_event *ev)
{
    sy_env_opts o = *net->cfg.verify;
    sy_digest d;
    bool cached;

    /* The whole frame is hashed, signature included, so a hit means these
     * exact bytes already passed the full check against the same
     * directory: verifying again could only give the same answer. */
    sy_hash(ev->data, ev->len, &d);
    cached = vcache_lookup(net, &d, false);
    if (cached)
        o.verifier = NULL;
    ev->decoded = true;
    ev->rc = sy_env_decode(&o, ev->data, ev->len, &ev->env, &ev->why);
    if (ev->rc == SY_OK) {
        if (cached) {
            CNT_ADD(net->verify_cached);
        } else {
            CNT_ADD(net->verify_ok);
            vcache_lookup(net, &d, true);
        }
    } else {
        CNT_ADD(net->verify_fail);
    }
}

/* Builds the event for msg (taken) and queues it; on a full queue the
 * frame is dropped (peer) or answered "busy" (client). */
static void deliver(sy_net *net, uint8_t kind, nng_msg *msg, uint64_t handle)
{
    sy_net_event ev;
    if (!callout_enter(net)) {   /* closing: nobody will read it */
        nng_msg_free(msg);
        return;
    }
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.priv_ = msg;
    ev.data = nng_msg_body(msg);
    ev.len = nng_msg_len(msg);
    ev.handle = handle;
    if (net->cfg.verify)
        verify_event(net, &ev);
    if (eq_push(net, &ev) == SY_OK) {
        callout_exit(net);
        return;
    }
    if (kind == SY_NET_EV_CLIENT) {
        uint32_t cid = 0;
        uint64_t rno = 0;
        if (ev.decoded && ev.rc == SY_OK && ev.env.type == SY_MSG_CLIENT_REQ) {
            cid = ev.env.msg.u.req.client_id;
            rno = ev.env.msg.u.req.req_no;
        }
        CNT_ADD(net->client_busy);
        if (reply_error_signed(net, handle, cid, rno, SY_EFULL, SY_NO_NODE) != SY_OK) {
            uint32_t gen;
            cslot *s = slot_of(net, handle, &gen);
            bool rearm = false;
            pthread_mutex_lock(&net->cmu);
            if (s && s->state == C_HELD && s->gen == gen && !is_closing(net)) {
                s->gen++;
                s->state = C_RECV;
                rearm = true;
            }
            pthread_mutex_unlock(&net->cmu);
            if (rearm)
                slot_arm_recv(s);
        }
    } else {
        CNT_ADD(net->queue_drop);
    }
    callout_exit(net);
    sy_net_event_free(&ev);
}

/* Takes msg on success. Without verification the frame goes straight to
 * the event queue (still counted and bounded). */
static int submit_work(sy_net *net, uint8_t kind, nng_msg *msg, uint64_t handle)
{
    if (!net->n_workers) {
        deliver(net, kind, msg, handle);
        return SY_OK;
    }
    pthread_mutex_lock(&net->wmu);
    if (net->wq_closed || net->wq_count == net->wq_cap) {
        pthread_mutex_unlock(&net->wmu);
        return SY_EFULL;
    }
    work *w = &net->wq[(net->wq_head + net->wq_count) % net->wq_cap];
    w->kind = kind;
    w->msg = msg;
    w->handle = handle;
    net->wq_count++;
    pthread_mutex_unlock(&net->wmu);
    pthread_cond_signal(&net->wcv);   /* after the unlock: see sy_net_wake */
    return SY_OK;
}

static void *worker_main(void *arg)
{
    sy_net *net = arg;
    for (;;) {
        work w;
        pthread_mutex_lock(&net->wmu);
        while (net->wq_count == 0 && !net->wq_closed)
            pthread_cond_wait(&net->wcv, &net->wmu);
        if (net->wq_count == 0) {
            pthread_mutex_unlock(&net->wmu);
            return NULL;
        }
        w = net->wq[net->wq_head];
        net->wq_head = (net->wq_head + 1) % net->wq_cap;
        net->wq_count--;
        pthread_mutex_unlock(&net->wmu);
        deliver(net, w.kind, w.msg, w.handle);
    }
}

/* ------------------------------------------------------------------- mesh */

static void pull_cb(void *arg)
{
    sy_net *net = arg;
    int rv = nng_aio_result(net->pull_aio);
    if (rv == NNG_ECLOSED || is_closing(net)) {
        if (rv == 0)
            nng_msg_free(nng_aio_get_msg(net->pull_aio));
        return;
    }
    if (rv == 0) {
        nng_msg *m = nng_aio_get_msg(net->pull_aio);
        CNT_ADD(net->peer_rx);
        if (submit_work(net, SY_NET_EV_PEER, m, 0) != SY_OK) {
            CNT_ADD(net->queue_drop);
            nng_msg_free(m);
        }
    }
    nng_recv_aio(net->pull, net->pull_aio);
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    peer *pe = arg;
    (void)p;
    if (ev == NNG_PIPE_EV_ADD_POST)
        __atomic_fetch_add(&pe->npipes, 1, __ATOMIC_RELAXED);
    else if (ev == NNG_PIPE_EV_REM_POST)
        __atomic_fetch_sub(&pe->npipes, 1, __ATOMIC_RELAXED);
}

int sy_net_send(sy_net *net, uint32_t to, const uint8_t *frame, size_t len)
{
    nng_msg *m;
    int rv;
    if (to >= net->cfg.n || len > SY_MAX_ENVELOPE)
        return SY_EINVAL;
    if (nng_msg_alloc(&m, 0) != 0)
        return SY_ENOMEM;
    if (nng_msg_append(m, frame, len) != 0) {
        nng_msg_free(m);
        return SY_ENOMEM;
    }
    peer *pe = &net->peers[to];
    if (to == net->cfg.self) {
        CNT_ADD(pe->tx);
        if (submit_work(net, SY_NET_EV_PEER, m, 0) != SY_OK) {
            CNT_ADD(pe->tx_drop);
            nng_msg_free(m);
            return SY_EFULL;
        }
        return SY_OK;
    }
    rv = nng_sendmsg(pe->sock, m, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        nng_msg_free(m);
        CNT_ADD(pe->tx_drop);
        return rv == NNG_EAGAIN ? SY_EFULL : map_nng(rv);
    }
    CNT_ADD(pe->tx);
    return SY_OK;
}

/* ------------------------------------------------------------------- http */

static void http_reply(nng_aio *aio, uint16_t status, const char *ctype, const void *body,
                       size_t len)
{
    nng_http_res *res;
    int rv = nng_http_res_alloc(&res);
    if (rv) {
        nng_aio_finish(aio, rv);
        return;
    }
    nng_http_res_set_status(res, status);
    nng_http_res_set_header(res, "Content-Type", ctype);
    if ((rv = nng_http_res_copy_data(res, body, len)) != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static void http_metrics(nng_aio *aio)
{
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    sy_net *net = nng_http_handler_get_data(h);
    sy_buf b;
    int rc = SY_OK;
    sy_buf_init(&b);
    if (!callout_enter(net)) {
        const char *t = "node stopping\n";
        http_reply(aio, 503, "text/plain", t, strlen(t));
        return;
    }
    if (net->cfg.metrics)
        rc = net->cfg.metrics(net->cfg.cb_ctx, &b);
    callout_exit(net);
    sy_net_metrics_text(net, &b);
    if (rc == SY_OK && b.err == SY_OK) {
        http_reply(aio, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    } else {
        const char *t = "metrics unavailable\n";
        http_reply(aio, 500, "text/plain", t, strlen(t));
    }
    sy_buf_free(&b);
}

static void http_health(nng_aio *aio)
{
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    sy_net *net = nng_http_handler_get_data(h);
    char why[256] = "";
    bool ok = false;
    if (!callout_enter(net)) {
        snprintf(why, sizeof why, "node stopping");
    } else {
        ok = !net->cfg.health || net->cfg.health(net->cfg.cb_ctx, why, sizeof why - 1);
        callout_exit(net);
    }
    if (ok) {
        http_reply(aio, 200, "text/plain", "ok\n", 3);
    } else {
        size_t l = strnlen(why, sizeof why - 2);
        why[l++] = '\n';
        http_reply(aio, 503, "text/plain", why, l);
    }
}


/* What an operator should check when a listen fails. */
static const char *listen_hint(int rv)
{
    switch (rv) {
    case NNG_EADDRINUSE: return " (another process, or another node of this machine, has it)";
    case NNG_EADDRINVAL:
        return " (not an address of this host, or a host name that does not resolve)";
    case NNG_EPERM: return " (a port below 1024 needs privileges)";
    default: return "";
    }
}

static int http_start(sy_net *net, char *why, size_t whylen)
{
    nng_url *url;
    nng_http_handler *h;
    int rv;
    const char *paths[2] = { "/metrics", "/health" };
    void (*cbs[2])(nng_aio *) = { http_metrics, http_health };

    if ((rv = nng_url_parse(&url, net->metrics_addr)) != 0) {
        sy_whyf(why, whylen, 0, "metrics address %s: %s", net->metrics_addr, nng_strerror(rv));
        return SY_ECONFIG;
    }
    rv = nng_http_server_hold(&net->http, url);
    nng_url_free(url);
    if (rv) {
        sy_whyf(why, whylen, 0, "metrics address %s: %s", net->metrics_addr, nng_strerror(rv));
        return map_nng(rv);
    }
    for (int i = 0; i < 2; i++) {
        if ((rv = nng_http_handler_alloc(&h, paths[i], cbs[i])) != 0)
            goto err;
        nng_http_handler_set_data(h, net, NULL);
        if ((rv = nng_http_server_add_handler(net->http, h)) != 0) {
            nng_http_handler_free(h);
            goto err;
        }
    }
    if ((rv = nng_http_server_start(net->http)) != 0)
        goto err;
    return SY_OK;
err:
    sy_whyf(why, whylen, 0, "cannot listen on the metrics address %s: %s%s", net->metrics_addr,
            nng_strerror(rv), listen_hint(rv));
    nng_http_server_release(net->http);
    net->http = NULL;
    return rv == NNG_EADDRINUSE ? SY_EIO : map_nng(rv);
}

/* ---------------------------------------------------------------- metrics */

void sy_net_get_stats(sy_net *net, sy_net_stats *out)
{
    memset(out, 0, sizeof *out);
    out->peer_rx = CNT_GET(net->peer_rx);
    out->client_rx = CNT_GET(net->client_rx);
    out->queue_drop = CNT_GET(net->queue_drop);
    out->client_busy = CNT_GET(net->client_busy);
    out->client_expired = CNT_GET(net->client_expired);
    out->reply_stale = CNT_GET(net->reply_stale);
    out->verify_ok = CNT_GET(net->verify_ok);
    out->verify_fail = CNT_GET(net->verify_fail);
    out->verify_cached = CNT_GET(net->verify_cached);
    out->listener_restarts[0] = CNT_GET(net->watch[0].restarts);
    out->listener_restarts[1] = CNT_GET(net->watch[1].restarts);
    for (uint32_t i = 0; i < net->cfg.n; i++) {
        out->peer_tx[i] = CNT_GET(net->peers[i].tx);
        out->peer_tx_drop[i] = CNT_GET(net->peers[i].tx_drop);
        if (i != net->cfg.self && __atomic_load_n(&net->peers[i].npipes, __ATOMIC_RELAXED) > 0) {
            out->peer_up[i] = true;
            out->peers_connected++;
        }
    }
}

uint32_t sy_net_peers_connected(sy_net *net)
{
    sy_net_stats st;
    sy_net_get_stats(net, &st);
    return st.peers_connected;
}

void sy_net_metrics_text(sy_net *net, sy_buf *b)
{
    sy_net_stats st;
    uint32_t depth;
    sy_net_get_stats(net, &st);
    pthread_mutex_lock(&net->emu);
    depth = net->eq_count;
    pthread_mutex_unlock(&net->emu);

    sy_buf_printf(b, "# HELP synod_net_peers_connected Outbound peer links currently up.\n"
               "# TYPE synod_net_peers_connected gauge\n"
               "synod_net_peers_connected %u\n", st.peers_connected);
    sy_buf_printf(b, "# HELP synod_net_peer_up 1 while the outbound link to the peer is up\n"
               "# TYPE synod_net_peer_up gauge\n");
    for (uint32_t i = 0; i < net->cfg.n; i++)
        if (i != net->cfg.self)
            sy_buf_printf(b, "synod_net_peer_up{peer=\"%u\"} %d\n", i, st.peer_up[i] ? 1 : 0);
    sy_buf_printf(b, "# HELP synod_net_peer_sent_total Frames handed to the peer's send buffer.\n"
               "# TYPE synod_net_peer_sent_total counter\n");
    for (uint32_t i = 0; i < net->cfg.n; i++)
        /* the engines send nothing to themselves: no series for self
         * unless something did */
        if (i != net->cfg.self || st.peer_tx[i])
            sy_buf_printf(b, "synod_net_peer_sent_total{peer=\"%u\"} %llu\n", i,
                    (unsigned long long)st.peer_tx[i]);
    sy_buf_printf(b, "# HELP synod_net_peer_dropped_total Frames dropped because the peer's send buffer was full.\n"
               "# TYPE synod_net_peer_dropped_total counter\n");
    for (uint32_t i = 0; i < net->cfg.n; i++)
        if (i != net->cfg.self || st.peer_tx_drop[i])
            sy_buf_printf(b, "synod_net_peer_dropped_total{peer=\"%u\"} %llu\n", i,
                    (unsigned long long)st.peer_tx_drop[i]);
    sy_buf_printf(b, "# HELP synod_net_received_total Frames received, before verification.\n"
               "# TYPE synod_net_received_total counter\n"
               "synod_net_received_total{from=\"peer\"} %llu\n"
               "synod_net_received_total{from=\"client\"} %llu\n",
            (unsigned long long)st.peer_rx, (unsigned long long)st.client_rx);
    sy_buf_printf(b, "# HELP synod_net_queue_depth Frames waiting for the event loop.\n"
               "# TYPE synod_net_queue_depth gauge\nsynod_net_queue_depth %u\n", depth);
    /* client slots (REP contexts): waiting for a request, holding one the
     * node has not answered yet, or sending an answer. All of them held or
     * sending means new requests wait in NNG: the node is saturated, or
     * clients are not reading their answers. */
    uint32_t by_state[4] = {0};
    pthread_mutex_lock(&net->cmu);
    for (uint32_t i = 0; i < net->n_slots; i++)
        by_state[net->slots[i].state & 3]++;
    pthread_mutex_unlock(&net->cmu);
    sy_buf_printf(b, "# HELP synod_net_client_slots Client request slots by state (of %u).\n"
               "# TYPE synod_net_client_slots gauge\n"
               "synod_net_client_slots{state=\"waiting\"} %u\n"
               "synod_net_client_slots{state=\"held\"} %u\n"
               "synod_net_client_slots{state=\"sending\"} %u\n",
            net->n_slots, by_state[C_RECV] + by_state[C_IDLE], by_state[C_HELD], by_state[C_SEND]);
    sy_buf_printf(b, "# HELP synod_net_queue_dropped_total Inbound peer frames dropped: event queue full.\n"
               "# TYPE synod_net_queue_dropped_total counter\n"
               "synod_net_queue_dropped_total %llu\n", (unsigned long long)st.queue_drop);
    sy_buf_printf(b, "# HELP synod_net_client_busy_total Client requests answered busy: event queue full.\n"
               "# TYPE synod_net_client_busy_total counter\nsynod_net_client_busy_total %llu\n",
            (unsigned long long)st.client_busy);
    sy_buf_printf(b, "# HELP synod_net_client_expired_total Client slots freed unanswered after the "
               "request deadline.\n"
               "# TYPE synod_net_client_expired_total counter\nsynod_net_client_expired_total %llu\n",
            (unsigned long long)st.client_expired);
    sy_buf_printf(b, "# HELP synod_net_reply_stale_total Replies dropped: their client slot had "
               "expired or moved on.\n"
               "# TYPE synod_net_reply_stale_total counter\nsynod_net_reply_stale_total %llu\n",
            (unsigned long long)st.reply_stale);
    if (net->watch[0].on || net->watch[1].on) {
        sy_buf_printf(b, "# HELP synod_net_listener_restarts_total ipc and TLS listeners recreated "
                   "after they stopped accepting (NNG 1.5.2 issue 1518).\n"
                   "# TYPE synod_net_listener_restarts_total counter\n");
        for (int i = 0; i < 2; i++)
            if (net->watch[i].on)
                sy_buf_printf(b, "synod_net_listener_restarts_total{listener=\"%s\"} %llu\n",
                        net->watch[i].what,
                        (unsigned long long)CNT_GET(net->watch[i].restarts));
    }
    sy_buf_printf(b, "# HELP synod_net_verify_total Envelope checks: signature verified, known frame "
               "(cached), refused.\n"
               "# TYPE synod_net_verify_total counter\n"
               "synod_net_verify_total{result=\"ok\"} %llu\n"
               "synod_net_verify_total{result=\"cached\"} %llu\n"
               "synod_net_verify_total{result=\"rejected\"} %llu\n",
            (unsigned long long)st.verify_ok, (unsigned long long)st.verify_cached,
            (unsigned long long)st.verify_fail);
}

/* ------------------------------------------------------------ open / close */

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ------------------------------------------------------------------ TLS */

/* Builds a TLS config. Server side: our certificate and key, and with
 * require_peer also the CA and a demand for the dialer's certificate.
 * Client side: the CA, a required and name-checked server certificate
 * (server_name), and our certificate if we have one. On failure why names
 * the file. */
static int tls_make(const sy_net *net, bool server, bool require_peer, const char *server_name,
                    nng_tls_config **out, char *why, size_t whylen)
{
    nng_tls_config *tc;
    int rv;
    *out = NULL;
    if ((rv = nng_tls_config_alloc(&tc, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT))) {
        sy_whyf(why, whylen, 0, "cannot use TLS: %s%s", nng_strerror(rv),
                rv == NNG_ENOTSUP ? " (this NNG build has no TLS engine)" : "");
        return rv == NNG_ENOMEM ? SY_ENOMEM : SY_ECONFIG;
    }
    if (net->tls_cert && (server || require_peer) &&
        (rv = nng_tls_config_cert_key_file(tc, net->tls_cert, NULL)) != 0) {
        sy_whyf(why, whylen, 0, "tls_cert %s: cannot load the certificate and private key: %s",
                net->tls_cert, nng_strerror(rv));
        goto err_free;
    }
    if (!server || require_peer) {
        if ((rv = nng_tls_config_ca_file(tc, net->tls_ca)) != 0) {
            sy_whyf(why, whylen, 0, "tls_ca %s: cannot load the CA certificates: %s",
                    net->tls_ca, nng_strerror(rv));
            goto err_free;
        }
        nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_REQUIRED);
    } else {
        nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_NONE);
    }
    if (server_name && (rv = nng_tls_config_server_name(tc, server_name)) != 0) {
        sy_whyf(why, whylen, 0, "TLS server name %s: %s", server_name, nng_strerror(rv));
        goto err_free;
    }
    *out = tc;
    return SY_OK;
err_free:
    nng_tls_config_free(tc);
    return rv == NNG_ENOMEM ? SY_ENOMEM : SY_ECONFIG;
}

/* Listens on addr; with tc (a TLS server config, borrowed: the listener
 * takes its own hold) through an explicit listener so the config can be
 * set before it starts. */
static int listen_on(nng_socket s, const char *what, const char *addr, nng_tls_config *tc,
                     nng_listener *out, char *why, size_t whylen)
{
    int rv;
    if (!tc) {
        rv = nng_listen(s, addr, out, 0);
    } else {
        nng_listener l;
        if ((rv = nng_listener_create(&l, s, addr)) == 0) {
            if ((rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tc)) == 0)
                rv = nng_listener_start(l, 0);
            if (rv)
                nng_listener_close(l);
            else if (out)
                *out = l;
        }
    }
    if (rv) {
        sy_whyf(why, whylen, 0, "cannot listen on the %s address %s: %s%s", what, addr,
                nng_strerror(rv), listen_hint(rv));
        return rv == NNG_EADDRINUSE ? SY_EIO : map_nng(rv);
    }
    return SY_OK;
}

/* Non-blocking dial: a peer that is down now (or whose handshake fails) is
 * retried in the background with backoff. With TLS the dialer gets a
 * client config naming the host of addr, so the peer's certificate must
 * carry that name. */
static int dial_peer(sy_net *net, nng_socket s, const char *addr, char *why, size_t whylen)
{
    char host[SY_MAX_ADDR];
    nng_tls_config *tc = NULL;
    nng_dialer d;
    int rv, rc;
    if (!net->tls_ca) {
        rv = nng_dial(s, addr, NULL, NNG_FLAG_NONBLOCK);
        goto out;
    }
    if (sy_addr_host(addr, host, sizeof host) != SY_OK) {
        rv = NNG_EADDRINVAL;
        goto out;
    }
    if ((rc = tls_make(net, false, true, host, &tc, why, whylen)) != SY_OK)
        return rc;
    if ((rv = nng_dialer_create(&d, s, addr)) == 0) {
        if ((rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tc)) == 0)
            rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
        if (rv)
            nng_dialer_close(d);
    }
    nng_tls_config_free(tc); /* the dialer holds its own reference */
out:
    if (rv) {
        sy_whyf(why, whylen, 0, "cannot dial peer %s: %s", addr, nng_strerror(rv));
        return map_nng(rv);
    }
    return SY_OK;
}

static void watch_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    if (ev == NNG_PIPE_EV_ADD_POST)
        __atomic_fetch_add((uint64_t *)arg, 1, __ATOMIC_RELAXED);
}

/* Whether NNG 1.5.2's listener bug reaches a listener on addr (above). */
static bool watch_wanted(const char *addr, const nng_tls_config *srv)
{
    return srv || strncmp(addr, "ipc://", 6) == 0;
}

/* Arms the watchdog for a listener that listen_on just started; a no-op
 * for a listener that does not need one. */
static int watch_init(sy_net *net, lst_watch *w, const char *what, nng_socket sock,
                      const char *addr, nng_tls_config *srv, bool want_req, bool with_cert)
{
    int rv;
    if (!watch_wanted(addr, srv))
        return SY_OK;
    w->what = what;
    w->addr = addr;
    w->sock = sock;
    w->want_req = want_req;
    w->lst_ok = true;
    w->next_ms = now_ms() + SY_NET_LST_PROBE_MS;
    if ((rv = nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, watch_pipe_cb, &w->accepted)) != 0)
        return map_nng(rv);
    w->srv = srv;
    w->on = true;
    if (!srv)
        return SY_OK;
    /* The probe only checks that our own listener hands over pipes, so it
     * needs no verification; it presents our certificate where the
     * listener demands one. */
    if ((rv = nng_tls_config_alloc(&w->probe_cfg, NNG_TLS_MODE_CLIENT)) != 0)
        return map_nng(rv);
    nng_tls_config_auth_mode(w->probe_cfg, NNG_TLS_AUTH_MODE_NONE);
    if (with_cert && (rv = nng_tls_config_cert_key_file(w->probe_cfg, net->tls_cert, NULL)))
        return SY_ECONFIG;
    return SY_OK;
}

static void watch_probe_close(lst_watch *w)
{
    if (w->probing)
        nng_close(w->probe);
    w->probing = false;
}

static void watch_probe_open(lst_watch *w, uint64_t now)
{
    nng_dialer d;
    int rv = w->want_req ? nng_req0_open(&w->probe) : nng_push0_open(&w->probe);
    if (rv)
        return;
    w->probing = true;
    __atomic_store_n(&w->probe_pipes, 0, __ATOMIC_RELAXED);
    if (nng_pipe_notify(w->probe, NNG_PIPE_EV_ADD_POST, watch_pipe_cb, &w->probe_pipes) ||
        nng_dialer_create(&d, w->probe, w->addr) ||
        (w->probe_cfg && nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, w->probe_cfg)) ||
        nng_dialer_start(d, NNG_FLAG_NONBLOCK)) {
        watch_probe_close(w);
        return;
    }
    w->base = __atomic_load_n(&w->accepted, __ATOMIC_RELAXED);
    w->t_start = now;
    w->t_up = 0;
}

static void watch_step(lst_watch *w, uint64_t now)
{
    if (!w->on)
        return;
    if (!w->lst_ok) {
        /* recreate a listener found dead (retried until it binds) */
        w->lst_ok = listen_on(w->sock, w->what, w->addr, w->srv, &w->lst, NULL, 0) == SY_OK;
        if (w->lst_ok)
            __atomic_fetch_add(&w->restarts, 1, __ATOMIC_RELAXED);
        w->next_ms = now + (w->lst_ok ? SY_NET_LST_ACCEPT_WAIT_MS : SY_NET_RECONN_MAX_MS);
        return;
    }
    if (!w->probing) {
        if (now < w->next_ms)
            return;
        watch_probe_open(w, now);
        if (!w->probing)
            w->next_ms = now + SY_NET_LST_PROBE_MS; /* could not open one: later */
        return;
    }
    bool healthy = __atomic_load_n(&w->accepted, __ATOMIC_RELAXED) != w->base;
    if (!w->t_up && !healthy) {
        if (__atomic_load_n(&w->probe_pipes, __ATOMIC_RELAXED) > 0)
            w->t_up = now;
        else if (now - w->t_start >= SY_NET_LST_PROBE_GIVEUP_MS)
            healthy = true; /* the probe never connected: no evidence either way */
        if (!healthy)
            return;
    }
    if (!healthy && now - w->t_up < SY_NET_LST_ACCEPT_WAIT_MS)
        return;
    /* The probe's pipe is up (so its negotiation is over and closing it
     * cannot trip the bug itself). */
    watch_probe_close(w);
    w->next_ms = now + SY_NET_LST_PROBE_MS;
    if (!healthy) {
        /* Closing the listener also closes the pipes it made; their
         * dialers reconnect to the new one. */
        nng_listener_close(w->lst);
        w->lst_ok = false;
        w->next_ms = now;
    }
}

static void listener_watchdog(sy_net *net)
{
    if (!net->watch[0].on && !net->watch[1].on)
        return;
    uint64_t now = now_ms();
    for (int i = 0; i < 2; i++)
        watch_step(&net->watch[i], now);
}

static void watch_free(lst_watch *w)
{
    watch_probe_close(w);
    if (w->probe_cfg)
        nng_tls_config_free(w->probe_cfg);
    w->probe_cfg = NULL;
}

static int open_peer(sy_net *net, uint32_t i, char *why, size_t whylen)
{
    peer *pe = &net->peers[i];
    int rv;
    if ((rv = nng_push0_open(&pe->sock)) != 0)
        goto err;
    pe->open = true;
    if ((rv = nng_socket_set_int(pe->sock, NNG_OPT_SENDBUF, (int)net->cfg.peer_sendbuf)) ||
        (rv = nng_socket_set_ms(pe->sock, NNG_OPT_RECONNMINT, SY_NET_RECONN_MIN_MS)) ||
        (rv = nng_socket_set_ms(pe->sock, NNG_OPT_RECONNMAXT, SY_NET_RECONN_MAX_MS)) ||
        (rv = nng_pipe_notify(pe->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, pe)) ||
        (rv = nng_pipe_notify(pe->sock, NNG_PIPE_EV_REM_POST, pipe_cb, pe)))
        goto err;
    /* Sends queue (boundedly) while the link is down. */
    return dial_peer(net, pe->sock, net->addrs[i], why, whylen);
err:
    sy_whyf(why, whylen, 0, "cannot dial peer %s: %s", net->addrs[i], nng_strerror(rv));
    return map_nng(rv);
}

static int open_client(sy_net *net, char *why, size_t whylen)
{
    int rv, rc;
    if ((rv = nng_rep0_open(&net->rep)) != 0) {
        sy_whyf(why, whylen, 0, "client endpoint %s: %s", net->client_addr, nng_strerror(rv));
        return map_nng(rv);
    }
    net->rep_open = true;
    nng_socket_set_size(net->rep, NNG_OPT_RECVMAXSZ, SY_MAX_ENVELOPE);
    net->slots = calloc(net->cfg.client_ctxs, sizeof *net->slots);
    if (!net->slots)
        return SY_ENOMEM;
    for (uint32_t i = 0; i < net->cfg.client_ctxs; i++) {
        cslot *s = &net->slots[i];
        s->net = net;
        s->idx = i;
        if ((rv = nng_ctx_open(&s->ctx, net->rep)) != 0 ||
            (rv = nng_aio_alloc(&s->aio, slot_cb, s)) != 0) {
            sy_whyf(why, whylen, 0, "client endpoint %s: %s", net->client_addr, nng_strerror(rv));
            return map_nng(rv);
        }
        net->n_slots = i + 1;
    }
    if ((rc = listen_on(net->rep, "client", net->client_addr, net->tls_client_srv,
                        &net->watch[1].lst, why, whylen)) != SY_OK)
        return rc;
    if ((rc = watch_init(net, &net->watch[1], "client", net->rep, net->client_addr,
                         net->tls_client_srv, true, false)) != SY_OK) {
        sy_whyf(why, whylen, 0, "client endpoint %s: %s", net->client_addr, sy_strerror(rc));
        return rc;
    }
    for (uint32_t i = 0; i < net->n_slots; i++) {
        net->slots[i].state = C_RECV;
        slot_arm_recv(&net->slots[i]);
    }
    return SY_OK;
}

int sy_net_open(const sy_net_cfg *cfg, sy_net **out, char *why, size_t whylen)
{
    sy_net *net;
    int rc, rv;

    *out = NULL;
    if (!cfg || cfg->n == 0 || cfg->n > SY_MAX_NODES || cfg->self >= cfg->n || !cfg->peer_addrs)
        return SY_EINVAL;
    if (cfg->client_ctxs > SY_NET_CLIENT_CTX_MAX)
        return SY_EINVAL;
    net = calloc(1, sizeof *net);
    if (!net)
        return SY_ENOMEM;
    net->cfg = *cfg;
    if (!net->cfg.queue_max)
        net->cfg.queue_max = SY_NET_QUEUE_DEFAULT;
    if (!net->cfg.peer_sendbuf)
        net->cfg.peer_sendbuf = SY_NET_PEER_SENDBUF_DEFAULT;
    if (!net->cfg.client_ctxs)
        net->cfg.client_ctxs = SY_NET_CLIENT_CTX_DEFAULT;
    if (!net->cfg.client_expire_ms)
        net->cfg.client_expire_ms = SY_NET_CLIENT_EXPIRE_MS_DEFAULT;
    uint32_t want_workers = 0;
    if (cfg->verify) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        want_workers = cfg->workers ? cfg->workers : (cores > 0 ? (uint32_t)cores : 1);
        if (want_workers > SY_NET_WORKERS_MAX)
            want_workers = SY_NET_WORKERS_MAX;
    }
    pthread_mutex_init(&net->cmu, NULL);
    pthread_mutex_init(&net->wmu, NULL);
    pthread_mutex_init(&net->emu, NULL);
    pthread_mutex_init(&net->vmu, NULL);
    pthread_rwlock_init(&net->cbl, NULL);
    cond_init_mono(&net->ecv);
    pthread_cond_init(&net->wcv, NULL);
    net->last_expire_ms = now_ms();

    rc = SY_ENOMEM;
    net->addrs = calloc(cfg->n, sizeof *net->addrs);
    net->eq = calloc(net->cfg.queue_max, sizeof *net->eq);
    net->eq_cap = net->cfg.queue_max;
    net->wq = calloc(net->cfg.queue_max, sizeof *net->wq);
    net->wq_cap = net->cfg.queue_max;
    net->vcache = calloc(SY_NET_VERIFY_CACHE, sizeof *net->vcache);
    net->vvalid = calloc(SY_NET_VERIFY_CACHE, sizeof *net->vvalid);
    net->workers = calloc(want_workers ? want_workers : 1, sizeof *net->workers);
    if (!net->addrs || !net->eq || !net->wq || !net->vcache || !net->vvalid || !net->workers)
        goto err_close;
    for (uint32_t i = 0; i < cfg->n; i++) {
        if (!cfg->peer_addrs[i] || !(net->addrs[i] = strdup(cfg->peer_addrs[i])))
            goto err_close;
        net->peers[i].net = net;
        net->peers[i].id = i;
    }
    net->client_addr = cfg->client_addr && *cfg->client_addr ? dupstr(cfg->client_addr) : NULL;
    net->metrics_addr = cfg->metrics_addr && *cfg->metrics_addr ? dupstr(cfg->metrics_addr) : NULL;
    net->cluster_id = dupstr(cfg->cluster_id);
    if (cfg->tls_cert && *cfg->tls_cert && cfg->tls_ca && *cfg->tls_ca) {
        if (!(net->tls_cert = strdup(cfg->tls_cert)) || !(net->tls_ca = strdup(cfg->tls_ca)))
            goto err_close;
        if ((rc = tls_make(net, true, true, NULL, &net->tls_peer_srv, why, whylen)) != SY_OK ||
            (rc = tls_make(net, true, false, NULL, &net->tls_client_srv, why, whylen)) != SY_OK)
            goto err_close;
    } else if ((cfg->tls_cert && *cfg->tls_cert) || (cfg->tls_ca && *cfg->tls_ca)) {
        sy_whyf(why, whylen, 0, "TLS needs both %s and %s", "tls_cert", "tls_ca");
        rc = SY_ECONFIG;
        goto err_close;
    }
    net->cfg.tls_cert = net->tls_cert;
    net->cfg.tls_ca = net->tls_ca;
    net->cfg.peer_addrs = NULL;
    net->cfg.client_addr = net->client_addr;
    net->cfg.metrics_addr = net->metrics_addr;
    net->cfg.cluster_id = net->cluster_id;

    for (uint32_t i = 0; i < want_workers; i++) {
        if (pthread_create(&net->workers[i], NULL, worker_main, net) != 0) {
            rc = SY_ENOMEM;
            goto err_close;
        }
        net->n_workers = i + 1;
    }

    /* inbound mesh */
    if ((rv = nng_pull0_open(&net->pull)) != 0) {
        rc = map_nng(rv);
        goto err_close;
    }
    net->pull_open = true;
    nng_socket_set_size(net->pull, NNG_OPT_RECVMAXSZ, SY_MAX_ENVELOPE);
    if ((rv = nng_aio_alloc(&net->pull_aio, pull_cb, net)) != 0) {
        rc = map_nng(rv);
        goto err_close;
    }
    if ((rc = listen_on(net->pull, "peer", net->addrs[cfg->self], net->tls_peer_srv,
                        &net->watch[0].lst, why, whylen)) != SY_OK)
        goto err_close;
    if ((rc = watch_init(net, &net->watch[0], "peer", net->pull, net->addrs[cfg->self],
                         net->tls_peer_srv, false, true)) != SY_OK) {
        sy_whyf(why, whylen, 0, "peer endpoint %s: %s", net->addrs[cfg->self], sy_strerror(rc));
        goto err_close;
    }
    nng_recv_aio(net->pull, net->pull_aio);

    for (uint32_t i = 0; i < cfg->n; i++)
        if (i != cfg->self && (rc = open_peer(net, i, why, whylen)) != SY_OK)
            goto err_close;
    if (net->client_addr && (rc = open_client(net, why, whylen)) != SY_OK)
        goto err_close;
    if (net->metrics_addr && (rc = http_start(net, why, whylen)) != SY_OK)
        goto err_close;
    *out = net;
    return SY_OK;
err_close:
    (void)sy_net_close(net);
    return rc;
}

/* Closing NNG objects can block for good in NNG 1.5.2: nng_http_server_stop
 * on a connection whose read never completes (NNG issue 1598; seen once
 * after a metrics scrape timed out under load), nng_close on a socket with
 * an operation it never finishes (upstream #648; caught by gdb in the
 * client). A node that hangs in close never exits after SIGTERM, so every
 * NNG teardown step runs on a helper thread and sy_net_close waits for it
 * at most SY_NET_CLOSE_MS. Past that the helper is left behind: it owns
 * net and frees it if it ever finishes, and sy_net_close's SY_ETIMEOUT
 * tells the process not to call nng_fini under it. */

/* The NNG part of closing (sy_run_bounded's work; arg: the sy_net): after
 * it no NNG thread touches net. */
static void net_close_nng(void *arg)
{
    sy_net *net = arg;
    if (net->http) {
        nng_http_server_stop(net->http);
        nng_http_server_release(net->http);
    }
    /* Every client slot's and the pull socket's aio is stopped first:
     * that cancels what is pending on it, waits for its callback (which
     * sees `closing` and does not re-arm) and refuses new operations on it
     * (a verify worker's reply may still try). Closing the REP socket with
     * a context operation still pending hung for good once (nng_close in
     * sy_net_close, all NNG threads idle: a node that never exited after
     * SIGTERM in test_slow_snapshot under ThreadSanitizer). */
    for (int i = 0; i < 2; i++)
        watch_free(&net->watch[i]);
    for (uint32_t i = 0; i < net->n_slots; i++)
        if (net->slots[i].aio)
            nng_aio_stop(net->slots[i].aio);
    if (net->pull_aio)
        nng_aio_stop(net->pull_aio);
#ifdef SYNOD_TESTING
    /* where NNG 1.5.2 once hung for good (upstream #648) */
    if (net->cfg.test_close_stall_ms)
        nng_msleep(net->cfg.test_close_stall_ms);
#endif
    if (net->rep_open)
        nng_close(net->rep);
    if (net->pull_open)
        nng_close(net->pull);
    for (uint32_t i = 0; i < SY_MAX_NODES; i++)
        if (net->peers[i].open)
            nng_close(net->peers[i].sock);
    for (uint32_t i = 0; i < net->n_slots; i++)
        if (net->slots[i].aio) {
            nng_aio_stop(net->slots[i].aio);
            nng_aio_free(net->slots[i].aio);
        }
    if (net->pull_aio) {
        nng_aio_stop(net->pull_aio);
        nng_aio_free(net->pull_aio);
    }
    /* verify workers may be in nng_ctx_send for a reply: stopped aios
     * fail at once, so they finish their item and see wq_closed */
    pthread_mutex_lock(&net->wmu);
    net->wq_closed = true;
    pthread_cond_broadcast(&net->wcv);
    pthread_mutex_unlock(&net->wmu);
    for (uint32_t i = 0; i < net->n_workers && net->workers; i++)
        pthread_join(net->workers[i], NULL);
}

/* Everything after the NNG part, plain memory (sy_run_bounded's cleanup). */
static void net_free(void *arg)
{
    sy_net *net = arg;
    /* workers drained the work queue into the event queue; free the rest */
    while (net->wq && net->wq_count) {
        nng_msg_free(net->wq[net->wq_head].msg);
        net->wq_head = (net->wq_head + 1) % net->wq_cap;
        net->wq_count--;
    }
    pthread_mutex_lock(&net->emu);
    net->eq_closed = true;
    pthread_cond_broadcast(&net->ecv);
    pthread_mutex_unlock(&net->emu);
    while (net->eq && net->eq_count) {
        sy_net_event_free(&net->eq[net->eq_head]);
        net->eq_head = (net->eq_head + 1) % net->eq_cap;
        net->eq_count--;
    }
    for (uint32_t i = 0; net->addrs && i < net->cfg.n; i++)
        free(net->addrs[i]);
    free(net->addrs);
    free(net->client_addr);
    free(net->metrics_addr);
    free(net->cluster_id);
    if (net->tls_peer_srv)
        nng_tls_config_free(net->tls_peer_srv);
    if (net->tls_client_srv)
        nng_tls_config_free(net->tls_client_srv);
    free(net->tls_cert);
    free(net->tls_ca);
    free(net->slots);
    free(net->eq);
    free(net->wq);
    free(net->vcache);
    free(net->vvalid);
    free(net->workers);
    pthread_mutex_destroy(&net->cmu);
    pthread_mutex_destroy(&net->wmu);
    pthread_mutex_destroy(&net->emu);
    pthread_mutex_destroy(&net->vmu);
    pthread_rwlock_destroy(&net->cbl);
    pthread_cond_destroy(&net->ecv);
    pthread_cond_destroy(&net->wcv);
    free(net);
}

int sy_net_close(sy_net *net)
{
    if (!net)
        return SY_OK;
    __atomic_store_n(&net->closing, true, __ATOMIC_RELEASE);
    /* waits only for callouts under way (a verification, a metrics scrape) */
    pthread_rwlock_wrlock(&net->cbl);
    net->callouts_off = true;
    pthread_rwlock_unlock(&net->cbl);
    return sy_run_bounded(net_close_nng, net_free, net, SY_NET_CLOSE_MS) ? SY_OK
                                                                              : SY_ETIMEOUT;
}
