/* Client library: see net/client.h.
 *
 * One REQ socket per node, each driven by one aio (send, then receive), so
 * the calling thread can talk to several nodes at once and simply wait on
 * an inbox of replies with a deadline. Nothing from the network is believed
 * before sy_env_decode has verified it against the manifest, and a reply
 * only counts for the request it names (client id and req_no). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include "net/client.h"
#include "net/client_wire.h"
#include "net/bounded.h"
#include "core/buf.h"
#include "core/envelope.h"
#include "core/engine.h"
#include "crypto/keyfile.h"
#include "crypto/sy_err.h"

enum { L_IDLE = 0, L_SEND, L_RECV };

typedef struct cl_link {
    sy_client *c;
    uint32_t id;
    nng_socket sock;
    bool open;
    nng_aio *aio;
    int state;              /* guarded by c->mu */
    int pipes;              /* connected pipes (atomic; NNG pipe callbacks) */
    /* The last post (caller's thread only): which request (0: status or
     * transfer), and until when it is left to work (link_working). */
    uint64_t req_no;
    uint64_t repost_at;     /* monotonic ms */
    uint64_t patience;      /* ms; doubles with each re-post of req_no */
} cl_link;

/* With TLS, closing a link whose handshake is still running breaks that
 * node's listener in NNG 1.5.2 (upstream issue #1518; the node recovers
 * it within seconds, see net/transport.c, but drops its connections). So
 * close waits this long for links that are not up yet to finish
 * connecting. It costs a closing client this much only while a node is
 * down. */
#define SY_CLIENT_TLS_CLOSE_GRACE_MS 300u

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    cl_link *l = arg;
    __atomic_add_fetch(&l->pipes, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1, __ATOMIC_SEQ_CST);
}

typedef struct inmsg {
    uint32_t node;
    nng_msg *msg;
} inmsg;

struct sy_client {
    const sy_cluster_cfg *cfg;
    sy_cluster_cfg *own_cfg;      /* heap; set when sy_client_open loaded it */
    sy_seckey *own_sk;
    sy_signer signer;
    sy_verifier ver;
    sy_directory dir;
    sy_env_opts vopts;
    sy_client_opts opts;
    uint32_t client_id;
    uint64_t last_req;
    uint32_t leader;        /* raft, paxos: believed leader */
    sy_bft_memory bft;      /* pbft: the primary, round trips, suspects */
    char their_id[SY_MAX_CLUSTER_ID + 1];  /* a node's cluster id, when not ours */
    uint64_t foreign;       /* nodes whose last word was such a refusal (bits) */
    cl_link *links;
    uint32_t n;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t idle_cv;       /* a link went L_IDLE */
    inmsg *inbox;
    uint32_t in_head, in_count, in_cap;
};

static uint64_t mono_ms(void)
{
    return (uint64_t)nng_clock();
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A fresh request number: the wall clock in microseconds times 1024 plus
 * 10 random bits, and always above the last one. One identity's requests
 * are executed in req_no order and a repeated (client, req_no) is taken
 * for a retry of the same request (it gets the first one's cached reply),
 * so two processes that share a client key (unsupported: net/client.h)
 * picking the same number in the same microsecond would see one write
 * acknowledged and never applied -- seen with the wall clock alone, about
 * once in 400 writes from three synodctl loops sharing a key. The random
 * bits make that ~1,000 times rarer; synodctl also locks its key file. */
uint64_t sy_client_next_req_no(uint64_t last)
{
    uint64_t n = (wall_us() << 10) | sy_random_below(1024);
    return n > last ? n : last + 1;
}

/* ------------------------------------------------------------------ links */

static void link_cb(void *arg)
{
    cl_link *l = arg;
    sy_client *c = l->c;
    int rv = nng_aio_result(l->aio);
    int st;

    /* One critical section decides the next state: link_post must never
     * see L_IDLE between a completed send and the receive chained to it,
     * or it would reuse the aio while the receive is being started. */
    /* Everything this callback takes from the aio it takes before the
     * link goes idle: from then on link_post may reuse the aio. */
    nng_msg *m = NULL;
    pthread_mutex_lock(&c->mu);
    st = l->state;
    if ((st == L_SEND && rv != 0) || (st == L_RECV && rv == 0))
        m = nng_aio_get_msg(l->aio);
    l->state = (st == L_SEND && rv == 0) ? L_RECV : L_IDLE;
    if (l->state == L_IDLE)
        pthread_cond_broadcast(&c->idle_cv);
    pthread_mutex_unlock(&c->mu);
    if (st == L_SEND) {
        if (rv != 0) {
            if (m)
                nng_msg_free(m);
            return;
        }
        nng_recv_aio(l->sock, l->aio);
        return;
    }
    if (st == L_RECV && rv == 0) {
        pthread_mutex_lock(&c->mu);
        bool queued = c->in_count < c->in_cap;
        if (queued) {
            c->inbox[(c->in_head + c->in_count) % c->in_cap] = (inmsg){ l->id, m };
            c->in_count++;
            m = NULL;
        }
        pthread_mutex_unlock(&c->mu);
        /* after the unlock, so the woken caller does not block on c->mu at
         * once (net/transport.c, sy_net_wake); c outlives this callback:
         * closing the client waits for its aios */
        if (queued)
            pthread_cond_signal(&c->cv);
        if (m)
            nng_msg_free(m);
    }
}

/* How long a post waits for its link to give up the previous request. */
#define SY_CLIENT_POST_WAIT_MS 250u

/* Sends frame, request req_no (0 for status and transfer requests), to
 * node i, abandoning whatever that cl_link was doing (a REQ socket only
 * ever has one request outstanding; a newer one replaces it, and the
 * older one's answer is dropped: see link_working).
 * SY_ETIMEOUT, sending nothing: the link's last operation did not give way
 * before `until` (monotonic ms) -- the caller treats the node as silent
 * rather than wait past its deadline (an unbounded wait here is how a
 * call could outlive it). */
static int link_post(sy_client *c, uint32_t i, const sy_buf *frame, uint64_t req_no,
                     uint64_t until)
{
    cl_link *l = &c->links[i];
    nng_msg *m;
    /* Cancel until the callback reports the link idle. Not cancel, then
     * nng_aio_wait: a receive the callback chains to a completed send just
     * after our cancel is not cancelled, and waiting for it waits for a
     * reply that may never come (a bench thread hung for good that way).
     * Once idle the callback starts nothing more on the aio, so the final
     * wait only lets it return. */
    pthread_mutex_lock(&c->mu);
    while (l->state != L_IDLE) {
        if (mono_ms() >= until) {
            pthread_mutex_unlock(&c->mu);
            return SY_ETIMEOUT;
        }
        pthread_mutex_unlock(&c->mu);
        nng_aio_cancel(l->aio);
        pthread_mutex_lock(&c->mu);
        if (l->state != L_IDLE) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += 1000000;   /* a chained receive may start meanwhile */
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&c->idle_cv, &c->mu, &ts);
        }
    }
    pthread_mutex_unlock(&c->mu);
    nng_aio_wait(l->aio);
    if (nng_msg_alloc(&m, 0) != 0)
        return SY_ENOMEM;
    if (nng_msg_append(m, frame->p, frame->len) != 0) {
        nng_msg_free(m);
        return SY_ENOMEM;
    }
    if (req_no && l->req_no == req_no)
        l->patience *= 2;
    else
        l->patience = SY_CLIENT_REPOST_MS > 4u * (uint64_t)c->opts.attempt_ms
                          ? SY_CLIENT_REPOST_MS
                          : 4u * (uint64_t)c->opts.attempt_ms;
    l->req_no = req_no;
    l->repost_at = mono_ms() + l->patience;
    pthread_mutex_lock(&c->mu);
    l->state = L_SEND;
    pthread_mutex_unlock(&c->mu);
    nng_aio_set_msg(l->aio, m);
    nng_send_aio(l->sock, l->aio);
    return SY_OK;
}

/* Whether node i still holds request req_no unanswered (a link goes idle
 * once its answer is in the inbox, or its send or receive failed) and is
 * left to work on it: posting it again now would only throw away the
 * answer it is preparing (SY_CLIENT_REPOST_MS). The caller waits on it
 * instead; its answer counts whenever it comes. */
static bool link_working(sy_client *c, uint32_t i, uint64_t req_no)
{
    cl_link *l = &c->links[i];
    pthread_mutex_lock(&c->mu);
    bool busy = l->state != L_IDLE;
    pthread_mutex_unlock(&c->mu);
    return busy && req_no && l->req_no == req_no && mono_ms() < l->repost_at;
}

/* Waits for the next inbox message until deadline (monotonic ms). */
static bool inbox_wait(sy_client *c, uint64_t deadline, inmsg *out)
{
    bool got = false;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->in_count) {
            *out = c->inbox[c->in_head];
            c->in_head = (c->in_head + 1) % c->in_cap;
            c->in_count--;
            got = true;
            break;
        }
        uint64_t now = mono_ms();
        if (now >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait = deadline - now;
        ts.tv_sec += (time_t)(wait / 1000);
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return got;
}

static void inbox_clear(sy_client *c)
{
    inmsg m;
    while (inbox_wait(c, 0, &m))
        nng_msg_free(m.msg);
}

/* ------------------------------------------------------------ open/close */

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* Non-blocking dial of node i's client address: a node that is down now is
 * retried in the background; the call's deadline bounds the wait. With TLS
 * (the manifest has tls_ca) the node's certificate must chain to that CA
 * and carry the host of the address; we present no certificate of our own,
 * since the cluster knows us by our Ed25519 signature. */
static int dial_node(const sy_cluster_cfg *cfg, uint32_t i, nng_socket s, char *why,
                     size_t whylen)
{
    const char *addr = cfg->nodes[i].client;
    nng_tls_config *tc;
    nng_dialer d;
    char host[SY_MAX_ADDR];
    int rv;
    if (!cfg->tls_ca[0])
        rv = nng_dial(s, addr, NULL, NNG_FLAG_NONBLOCK);
    else if (sy_addr_host(addr, host, sizeof host) != SY_OK)
        rv = NNG_EADDRINVAL;
    else if ((rv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_CLIENT)) == 0) {
        if ((rv = nng_tls_config_ca_file(tc, cfg->tls_ca)) != 0) {
            if (why)
                snprintf(why, whylen, "tls_ca %s in %s: cannot load the CA certificates: %s",
                         cfg->tls_ca, cfg->path, nng_strerror(rv));
            nng_tls_config_free(tc);
            return rv == NNG_ENOMEM ? SY_ENOMEM : SY_ECONFIG;
        }
        nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_REQUIRED);
        if ((rv = nng_tls_config_server_name(tc, host)) == 0 &&
            (rv = nng_dialer_create(&d, s, addr)) == 0) {
            if ((rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tc)) == 0)
                rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
            if (rv)
                nng_dialer_close(d);
        }
        nng_tls_config_free(tc); /* the dialer holds its own reference */
    }
    if (rv) {
        if (why)
            snprintf(why, whylen, "node %u client address %s: %s%s", i, addr, nng_strerror(rv),
                     rv == NNG_ENOTSUP && cfg->tls_ca[0] ? " (no TLS in this NNG build?)" : "");
        return rv == NNG_ENOMEM ? SY_ENOMEM : SY_ECONFIG;
    }
    return SY_OK;
}

int sy_client_open_with(const sy_cluster_cfg *cfg, const sy_seckey *sk, sy_client **out,
                        char *why, size_t whylen)
{
    sy_client *c;
    sy_pubkey pk;
    int rc, rv;

    *out = NULL;
    if (!cfg || !sk)
        return sy_whyf(why, whylen, SY_EINVAL, "sy_client_open_with needs a loaded manifest "
                       "and a client secret key: %s is NULL", !cfg ? "the manifest" : "the key");
    if (cfg->n == 0 || cfg->n > SY_MAX_NODES)
        return sy_whyf(why, whylen, SY_EINVAL, "manifest %s lists %u nodes: a cluster has 1 "
                       "to %u (load it with sy_cluster_load, or use sy_client_open)",
                       cfg->path[0] ? cfg->path : "(not from a file)", cfg->n, SY_MAX_NODES);
    if ((rc = sy_crypto_init()) != SY_OK)
        return sy_whyf(why, whylen, rc, "cannot initialise the crypto library (libsodium): %s",
                       sy_strerror(rc));
    c = calloc(1, sizeof *c);
    if (!c)
        return sy_whyf(why, whylen, SY_ENOMEM, "out of memory opening a client");
    c->cfg = cfg;
    c->n = cfg->n;
    pthread_mutex_init(&c->mu, NULL);
    cond_init_mono(&c->cv);
    cond_init_mono(&c->idle_cv);
    sy_seckey_public(sk, &pk);
    if (sy_cluster_client_by_key(cfg, &pk, &c->client_id) != SY_OK) {
        char b64[SY_KEY_B64_LEN];
        sy_pubkey_to_b64(&pk, b64);
        if (why)
            snprintf(why, whylen,
                     "client key %s is not authorised by %s: add a [client] section with "
                     "this public_key to the manifest, or use a listed client's key",
                     b64, cfg->path[0] ? cfg->path : "the manifest");
        rc = SY_EUNAUTH;
        goto err_free;
    }
    sy_signer_ed25519(&c->signer, sk);
    sy_verifier_ed25519(&c->ver);
    sy_cluster_directory(cfg, &c->dir);
    c->vopts.cluster_id = cfg->id;
    c->vopts.dir = &c->dir;
    c->vopts.verifier = &c->ver;
    c->vopts.batch_ok = true;
    c->opts.attempt_ms = SY_CLIENT_ATTEMPT_MS_DEFAULT;
    c->last_req = sy_client_next_req_no(0);
    /* no leader known: the first call asks the first node it connects to
     * (pick_connected), not node 0, which may be the one that is down */
    c->leader = SY_NO_NODE;
    c->bft.n = cfg->n;
    c->bft.f = cfg->f;
    c->bft.client_id = c->client_id;
    c->bft.primary = SY_NO_NODE;

    c->in_cap = 4 * c->n + 4;
    c->inbox = calloc(c->in_cap, sizeof *c->inbox);
    c->links = calloc(c->n, sizeof *c->links);
    if (!c->inbox || !c->links) {
        rc = sy_whyf(why, whylen, SY_ENOMEM, "out of memory opening a client");
        goto err_free;
    }
    for (uint32_t i = 0; i < c->n; i++) {
        cl_link *l = &c->links[i];
        l->c = c;
        l->id = i;
        if ((rv = nng_req0_open(&l->sock)) != 0)
            goto err_nng;
        l->open = true;
        nng_socket_set_size(l->sock, NNG_OPT_RECVMAXSZ, SY_MAX_ENVELOPE);
        nng_socket_set_ms(l->sock, NNG_OPT_RECONNMINT, 20);
        nng_socket_set_ms(l->sock, NNG_OPT_RECONNMAXT, 1000);
        nng_pipe_notify(l->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, l);
        nng_pipe_notify(l->sock, NNG_PIPE_EV_REM_POST, pipe_cb, l);
        if ((rv = nng_aio_alloc(&l->aio, link_cb, l)) != 0)
            goto err_nng;
        if ((rc = dial_node(cfg, i, l->sock, why, whylen)) != SY_OK)
            goto err_free;
    }
    *out = c;
    return SY_OK;
err_nng:
    if (why)
        snprintf(why, whylen, "cannot open client sockets: %s", nng_strerror(rv));
    rc = rv == NNG_ENOMEM ? SY_ENOMEM : SY_EIO;
err_free:
    sy_client_close(c);
    return rc;
}

/* The manifest loader says SY_ECONFIG for every file it could not use;
 * the key loader tells a missing file (SY_ENOTFOUND) and an unreadable one
 * (SY_EPERM) apart. The same for the manifest here, so that a caller can
 * treat the two files alike; anything else stays rc. */
static int manifest_open_code(const char *path, int rc)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return rc;
    }
    if (errno == ENOENT || errno == ENOTDIR)
        return SY_ENOTFOUND;
    if (errno == EACCES || errno == EPERM)
        return SY_EPERM;
    return rc;
}

int sy_client_open(const char *cluster_path, const char *key_path, sy_client **out,
                   char *why, size_t whylen)
{
    sy_cluster_cfg *cfg;
    sy_seckey *sk = NULL;
    sy_client *c = NULL;
    int rc;

    *out = NULL;
    cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return SY_ENOMEM;
    rc = sy_cluster_load(cluster_path, cfg, why, whylen);
    if (rc == SY_ECONFIG)
        rc = manifest_open_code(cluster_path, rc);
    if (rc)
        goto err_free_cfg;
    rc = sy_keyfile_load_secret(key_path, &sk, why, whylen);
    if (rc)
        goto err_free_cfg;
    rc = sy_client_open_with(cfg, sk, &c, why, whylen);
    if (rc)
        goto err_free_key;
    /* the client takes both */
    c->own_cfg = cfg;
    c->own_sk = sk;
    *out = c;
    return SY_OK;
err_free_key:
    sy_seckey_free(sk);
err_free_cfg:
    sy_cluster_free(cfg);
    free(cfg);
    return rc;
}

/* NNG 1.5.2 can block for good in nng_close on a REQ socket even with every
 * aio stopped first (upstream issue #648): caught with gdb in a chaos run,
 * synod-chaos's main thread in nng_close after its workload had finished.
 * So the sockets close on a helper thread that the caller waits for at most
 * SY_CLIENT_CLOSE_MS; past that the caller returns and the helper frees the
 * client if NNG ever lets it go (its memory stays reachable from the helper
 * meanwhile). */
#define SY_CLIENT_CLOSE_MS 2000u

/* sy_run_bounded's cleanup (arg: the sy_client) */
static void client_free(void *arg)
{
    sy_client *c = arg;
    for (uint32_t i = 0; c->links && i < c->n; i++)
        if (c->links[i].aio)
            nng_aio_free(c->links[i].aio);
    if (c->inbox)
        inbox_clear(c);
    free(c->inbox);
    free(c->links);
    if (c->own_cfg) {
        sy_cluster_free(c->own_cfg);
        free(c->own_cfg);
    }
    sy_seckey_free(c->own_sk);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->idle_cv);
    free(c);
}

static void client_close_sockets(void *arg)
{
    sy_client *c = arg;
    for (uint32_t i = 0; c->links && i < c->n; i++)
        if (c->links[i].open)
            nng_close(c->links[i].sock);
}

void sy_client_close(sy_client *c)
{
    if (!c)
        return;
    if (c->cfg && c->cfg->tls_ca[0] && c->links) {
        for (uint32_t waited = 0; waited < SY_CLIENT_TLS_CLOSE_GRACE_MS; waited += 5) {
            bool all_up = true;
            for (uint32_t i = 0; i < c->n; i++)
                if (c->links[i].open && __atomic_load_n(&c->links[i].pipes, __ATOMIC_SEQ_CST) <= 0)
                    all_up = false;
            if (all_up)
                break;
            nng_msleep(5);
        }
    }
    /* Stop the aios first: nng_aio_stop waits for a running callback and
     * makes any re-arm it attempts fail, so nothing is outstanding on a
     * socket when it closes. Closing first could hang in nng_close (seen
     * with a send still waiting for a pipe to a dead node). */
    for (uint32_t i = 0; c->links && i < c->n; i++)
        if (c->links[i].aio)
            nng_aio_stop(c->links[i].aio);
    /* closed on a helper thread, waited for at most SY_CLIENT_CLOSE_MS
     * (NNG 1.5.2 can hang in nng_close; net/bounded.h) */
    (void)sy_run_bounded(client_close_sockets, client_free, c, SY_CLIENT_CLOSE_MS);
}

void sy_client_set_opts(sy_client *c, const sy_client_opts *o)
{
    c->opts = *o;
    if (!c->opts.attempt_ms)
        c->opts.attempt_ms = SY_CLIENT_ATTEMPT_MS_DEFAULT;
    /* below a round trip on a LAN every healthy call would end its first
     * attempt and ask a second node too */
    if (c->opts.attempt_ms < SY_CLIENT_ATTEMPT_MS_MIN)
        c->opts.attempt_ms = SY_CLIENT_ATTEMPT_MS_MIN;
}

uint32_t sy_client_id(const sy_client *c)
{
    return c->client_id;
}

bool sy_client_node_connected(const sy_client *c, uint32_t node)
{
    return node < c->n && c->links[node].open &&
           __atomic_load_n(&c->links[node].pipes, __ATOMIC_SEQ_CST) > 0;
}

uint32_t sy_client_connected(const sy_client *c)
{
    uint32_t up = 0;
    for (uint32_t i = 0; i < c->n; i++)
        up += sy_client_node_connected(c, i);
    return up;
}

const sy_cluster_cfg *sy_client_cluster(const sy_client *c)
{
    return c->cfg;
}

/* --------------------------------------------------------------- results */

static uint8_t *dup_bytes(sy_bytes b)
{
    uint8_t *p = malloc(b.len ? b.len : 1);
    if (p && b.len)
        memcpy(p, b.p, b.len);
    return p;
}

void sy_client_kvs_free(sy_client_kv *kvs, size_t n)
{
    for (size_t i = 0; kvs && i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].val);
    }
    free(kvs);
}

void sy_client_result_free(sy_client_result *res)
{
    if (!res)
        return;
    free(res->val);
    sy_client_kvs_free(res->kvs, res->n_kvs);
    memset(res, 0, sizeof *res);
}

static int result_fill(const sy_client_reply *r, uint32_t node, sy_client_result *res)
{
    memset(res, 0, sizeof *res);
    res->status = r->status;
    res->index = r->index;
    res->node = node;
    if (r->val.len || r->status == SY_OK || r->status == SY_ECASFAIL) {
        if (!(res->val = dup_bytes(r->val)))
            return SY_ENOMEM;
        res->val_len = r->val.len;
    }
    if (r->n_kvs) {
        res->kvs = calloc(r->n_kvs, sizeof *res->kvs);
        if (!res->kvs)
            goto err_free;
        for (uint32_t i = 0; i < r->n_kvs; i++) {
            sy_client_kv *kv = &res->kvs[i];
            res->n_kvs = i + 1;
            kv->key = dup_bytes(r->kvs[i].key);
            kv->val = dup_bytes(r->kvs[i].val);
            if (!kv->key || !kv->val)
                goto err_free;
            kv->key_len = r->kvs[i].key.len;
            kv->val_len = r->kvs[i].val.len;
        }
    }
    return SY_OK;
err_free:
    sy_client_result_free(res);
    return SY_ENOMEM;
}

/* Batch-signed replies (core/envelope.h): a node signs every reply it has
 * ready at once with one signature, so the threads of one process -- an
 * application server's workers, synodctl bench's clients -- often receive
 * frames under the same signature. The library remembers the batch
 * signatures it verified, process-wide: a hit is for the very same
 * (node key, signed bytes, signature) triple, named by their BLAKE2b-256,
 * so it proves what a fresh verify would. Direct-mapped, fixed size, no
 * allocation; a miss just verifies. */
#define VCACHE_SLOTS 256u
static struct {
    pthread_mutex_t mu;
    sy_digest slot[VCACHE_SLOTS];
    bool used[VCACHE_SLOTS];
} vcache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool verify_reply(const sy_verifier *v, const sy_pubkey *pk, const sy_env *env)
{
    size_t ml;
    const uint8_t *m = sy_env_sig_msg(env, &ml);
    if (!env->batched)
        return sy_verify(v, pk, m, ml, &env->sig);
    sy_hasher h;
    sy_digest key;
    sy_hash_init(&h);
    sy_hash_update(&h, pk->b, SY_PUBKEY_LEN);
    sy_hash_update(&h, m, ml);
    sy_hash_update(&h, env->sig.b, SY_SIG_LEN);
    sy_hash_final(&h, &key);
    unsigned i = (unsigned)(key.b[0] | key.b[1] << 8) % VCACHE_SLOTS;
    pthread_mutex_lock(&vcache.mu);
    bool hit = vcache.used[i] && sy_digest_eq(&vcache.slot[i], &key);
    pthread_mutex_unlock(&vcache.mu);
    if (hit)
        return true;
    if (!sy_verify(v, pk, m, ml, &env->sig))
        return false;
    pthread_mutex_lock(&vcache.mu);
    vcache.slot[i] = key;
    vcache.used[i] = true;
    pthread_mutex_unlock(&vcache.mu);
    return true;
}

/* A node whose cluster id is not our manifest's refuses every frame we
 * send (SY_ECLUSTER) in a reply enveloped for its own id, which a decode
 * with ours drops: the caller would learn nothing until its deadline.
 * Accepted as exactly that refusal (ids 0, status SY_ECLUSTER), from the
 * node whose link it came over, signed by the key our manifest lists for
 * it (net/client_wire.h). SY_OK: *env holds the refusal (free with
 * sy_env_free). */
int sy_client_check_foreign_refusal(const sy_env_opts *o, const uint8_t *frame, size_t len,
                                    uint32_t node, char id[SY_MAX_CLUSTER_ID + 1],
                                    sy_env *env)
{
    sy_env_opts parse = *o;
    parse.verifier = NULL;
    if (sy_env_decode(&parse, frame, len, env, NULL) != SY_ECLUSTER)
        return SY_EFIELD;   /* nothing to free: a failed decode owns nothing */
    snprintf(id, SY_MAX_CLUSTER_ID + 1, "%s", env->cluster_id);
    sy_env_opts theirs = *o;
    theirs.cluster_id = id;
    if (sy_env_decode(&theirs, frame, len, env, NULL) != SY_OK)
        return SY_ESIG;
    const sy_client_reply *r = &env->msg.u.reply;
    if (env->sender != node || env->type != SY_MSG_CLIENT_REPLY || r->client_id != 0 ||
        r->req_no != 0 || r->status != SY_ECLUSTER) {
        sy_env_free(env);
        return SY_EFIELD;
    }
    return SY_OK;
}

/* The same over a link; the node's id is kept for sy_client_their_cluster. */
static int decode_foreign_refusal(sy_client *c, const inmsg *im, sy_env *env)
{
    char id[SY_MAX_CLUSTER_ID + 1];
    int rc = sy_client_check_foreign_refusal(&c->vopts, nng_msg_body(im->msg),
                                             nng_msg_len(im->msg), im->node, id, env);
    if (rc != SY_OK)
        return rc;
    memcpy(c->their_id, id, sizeof id);
    c->foreign |= 1ull << im->node;
    return SY_OK;
}

/* f+1 nodes refused us for another cluster id: so at least one correct
 * node did (PBFT), and no quorum will answer (crash faults). One node
 * saying so is a misconfigured node, not a wrong manifest. */
static bool foreign_quorum(const sy_client *c)
{
    uint32_t need = c->cfg->f + 1 < c->n ? c->cfg->f + 1 : c->n;
    return (uint32_t)__builtin_popcountll(c->foreign) >= need;
}

bool sy_client_their_cluster(const sy_client *c, char id[SY_MAX_CLUSTER_ID + 1])
{
    if (!foreign_quorum(c))
        return false;
    memcpy(id, c->their_id, SY_MAX_CLUSTER_ID + 1);
    return true;
}

int sy_client_check_reply(const sy_env_opts *o, const uint8_t *frame, size_t len,
                          uint32_t node, uint32_t client_id, uint64_t req_no, sy_env *env)
{
    /* Parse first, verify last: late answers to an earlier request (a BFT
     * client returns at f+1 matching replies; the rest arrive afterwards)
     * are dropped without paying for their signatures. Nothing is trusted
     * before the signature checks out. */
    sy_env_opts parse = *o;
    parse.verifier = NULL;
    int rc = sy_env_decode(&parse, frame, len, env, NULL);
    if (rc)
        return rc;
    /* A node speaks for itself only: a frame signed by another member but
     * delivered over this node's connection is not counted as this node's. */
    if (env->sender != node || env->type != SY_MSG_CLIENT_REPLY)
        goto err_free;
    const sy_client_reply *r = &env->msg.u.reply;
    bool mine = r->client_id == client_id && r->req_no == req_no;
    /* A node that could not even decode our request answers with ids 0:
     * still a signed statement about the request we just sent it. */
    bool undecodable = r->client_id == 0 && r->req_no == 0 && r->status != SY_OK;
    if (!mine && !undecodable)
        goto err_free;
    const sy_pubkey *pk = o->dir->key_of(o->dir->ctx, env->sender);
    if (!pk || !verify_reply(o->verifier, pk, env)) {
        sy_env_free(env);
        return SY_ESIG;
    }
    return SY_OK;
err_free:
    sy_env_free(env);
    return SY_EFIELD;
}

/* Decodes and checks one inbound reply for request req_no. SY_OK: *env is
 * valid (caller frees) and answers this request. */
static int check_reply(sy_client *c, const inmsg *im, uint64_t req_no, sy_env *env)
{
    int rc = sy_client_check_reply(&c->vopts, nng_msg_body(im->msg), nng_msg_len(im->msg),
                                   im->node, c->client_id, req_no, env);
    if (rc == SY_ECLUSTER)
        return decode_foreign_refusal(c, im, env);
    if (rc == SY_OK)
        c->foreign &= ~(1ull << im->node);   /* it speaks our cluster id now */
    return rc;
}

bool sy_client_retryable(int status)
{
    return status == SY_ENOTLEADER || status == SY_EFULL || status == SY_ETIMEOUT ||
           status == SY_ECLOSED;
}


static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* No leader known yet (a fresh client): the first node we hold a
 * connection to, waiting briefly for the dials to complete; node 0 if none
 * connects within the grace time. */
static uint32_t pick_connected(sy_client *c)
{
    uint64_t end = mono_ms() + SY_CLIENT_DOWN_GRACE_MS;
    do {
        for (uint32_t i = 0; i < c->n; i++)
            if (__atomic_load_n(&c->links[i].pipes, __ATOMIC_SEQ_CST) > 0)
                return i;
        nng_msleep(2);
    } while (mono_ms() < end);
    return 0;
}

/* How long to wait on node i before trying another, in an attempt of
 * length att. */
static uint64_t attempt_len(sy_client *c, uint32_t i, uint64_t att)
{
    int up = __atomic_load_n(&c->links[i].pipes, __ATOMIC_SEQ_CST);
    return up > 0 ? att : (att < SY_CLIENT_DOWN_GRACE_MS ? att : SY_CLIENT_DOWN_GRACE_MS);
}

/* The attempt after one that ended in silence: twice as long, up to the
 * default attempt (or attempt_ms if longer). A short attempt_ms buys a
 * quick first move to another node; a request that keeps the cluster busy
 * longer than that (a large scan) then costs a few more round trips, not
 * one every attempt_ms until the deadline. */
uint64_t sy_client_attempt_next(uint32_t attempt_ms, uint64_t att)
{
    uint64_t cap = attempt_ms > SY_CLIENT_ATTEMPT_MS_DEFAULT ? attempt_ms
                                                             : SY_CLIENT_ATTEMPT_MS_DEFAULT;
    return 2 * att < cap ? 2 * att : cap;
}

/* Asks node `target` for request req_no -- unless it is still working on
 * it (link_working), when we only wait on it again -- and sets
 * *attempt_end. A link that does not give way (link_post) counts as a
 * silent node: its attempt ends at once and the next node is tried. */
static int cft_ask(sy_client *c, uint32_t target, const sy_buf *frame, uint64_t req_no,
                   uint64_t deadline, uint64_t att, uint64_t *attempt_end)
{
    int rc = SY_OK;
    if (!link_working(c, target, req_no)) {
        rc = link_post(c, target, frame, req_no,
                       min_u64(deadline, mono_ms() + SY_CLIENT_POST_WAIT_MS));
        if (rc != SY_OK && rc != SY_ETIMEOUT)
            return rc;
    }
    *attempt_end = mono_ms() + (rc == SY_OK ? attempt_len(c, target, att) : 0);
    return SY_OK;
}

static int run_cft(sy_client *c, const sy_buf *frame, uint64_t req_no, uint64_t deadline,
                   sy_client_result *res)
{
    uint32_t target = c->leader < c->n ? c->leader : pick_connected(c);
    uint64_t att = c->opts.attempt_ms;
    uint64_t attempt_end;
    uint64_t resend_at = 0;      /* backoff before re-posting (0 = none) */
    int rc;

    if ((rc = cft_ask(c, target, frame, req_no, deadline, att, &attempt_end)) != SY_OK)
        return rc;
    for (;;) {
        inmsg im;
        uint64_t now = mono_ms();
        if (now >= deadline)
            return SY_ETIMEOUT;
        if (resend_at && now >= resend_at) {
            resend_at = 0;
            if ((rc = cft_ask(c, target, frame, req_no, deadline, att, &attempt_end)) != SY_OK)
                return rc;
        }
        uint64_t until = min_u64(deadline, resend_at ? resend_at : attempt_end);
        if (!inbox_wait(c, until, &im)) {
            if (!resend_at && mono_ms() >= attempt_end) {
                /* silent node: try the next one with the same req_no; the
                 * silent one's answer still counts if it comes */
                target = (target + 1) % c->n;
                att = sy_client_attempt_next(c->opts.attempt_ms, att);
                if ((rc = cft_ask(c, target, frame, req_no, deadline, att, &attempt_end)) != SY_OK)
                    return rc;
            }
            continue;
        }
        sy_env env;
        if (check_reply(c, &im, req_no, &env) != SY_OK) {
            nng_msg_free(im.msg);
            continue;
        }
        const sy_client_reply *r = &env.msg.u.reply;
        /* One node of another cluster id (misconfigured) is no verdict: ask
         * the next, as for a silent one; f+1 of them are (foreign_quorum). */
        if (r->status == SY_ECLUSTER && r->client_id == 0 && !foreign_quorum(c)) {
            sy_env_free(&env);
            nng_msg_free(im.msg);
            if (im.node == target) {
                target = (target + 1) % c->n;
                if ((rc = cft_ask(c, target, frame, req_no, deadline, att, &attempt_end)) != SY_OK)
                    return rc;
            }
            continue;
        }
        /* A node we gave up on may still answer: its verdict on this very
         * request is as good as the current target's. Its redirects are
         * not: we have moved on already. */
        if (sy_client_retryable(r->status) && im.node != target) {
            sy_env_free(&env);
            nng_msg_free(im.msg);
            continue;
        }
        if (sy_client_retryable(r->status)) {
            if (r->status == SY_ENOTLEADER && r->leader < c->n && r->leader != target) {
                /* a leader we gave up on and that still works on the
                 * request is waited on, not asked again (cft_ask) */
                target = r->leader;
                resend_at = mono_ms();
            } else {
                /* no useful hint (election under way) or busy: pause, then
                 * ask the next node so one stuck node cannot hold us */
                if (r->status == SY_ENOTLEADER)
                    target = (target + 1) % c->n;
                resend_at = mono_ms() + SY_CLIENT_BACKOFF_MS;
            }
            sy_env_free(&env);
            nng_msg_free(im.msg);
            continue;
        }
        rc = result_fill(r, im.node, res);
        c->leader = im.node;
        sy_env_free(&env);
        nng_msg_free(im.msg);
        return rc;
    }
}

/* Which replicas a PBFT write goes to first: sy_bft_targets with the
 * replicas we hold a connection to. */
static bool bft_targets(sy_client *c, uint32_t need, bool *to)
{
    bool up[SY_MAX_NODES];
    for (uint32_t i = 0; i < c->n; i++)
        up[i] = __atomic_load_n(&c->links[i].pipes, __ATOMIC_SEQ_CST) > 0;
    return sy_bft_targets(&c->bft, need, up, mono_ms(), to);
}

static int run_bft(sy_client *c, const sy_buf *frame, uint64_t req_no, uint64_t deadline,
                   uint32_t need, sy_client_result *res)
{
    sy_digest got[SY_MAX_NODES];
    bool have[SY_MAX_NODES], asked[SY_MAX_NODES], first[SY_MAX_NODES];
    uint32_t hint[SY_MAX_NODES];
    uint64_t attempt_end, start = mono_ms();
    uint64_t att = c->opts.attempt_ms;
    int rc;

    memset(have, 0, sizeof have);
    bool narrow = bft_targets(c, need, asked);
    memcpy(first, asked, sizeof first);
    /* a link that does not give way (link_post): that replica is not
     * reached this time, as if the frame were lost */
#define BFT_POST(i)                                                                  \
    do {                                                                             \
        rc = link_post(c, (i), frame, req_no,                                        \
                       min_u64(deadline, mono_ms() + SY_CLIENT_POST_WAIT_MS));       \
        if (rc != SY_OK && rc != SY_ETIMEOUT)                                        \
            return rc;                                                               \
    } while (0)
    for (uint32_t i = 0; i < c->n; i++)
        if (asked[i])
            BFT_POST(i);
    attempt_end = start + (narrow ? sy_bft_narrow_wait(&c->bft, c->opts.attempt_ms)
                                  : c->opts.attempt_ms);
    for (;;) {
        inmsg im;
        if (mono_ms() >= deadline)
            return SY_ETIMEOUT;
        if (!inbox_wait(c, min_u64(deadline, attempt_end), &im)) {
            uint64_t now = mono_ms();
            if (now >= attempt_end) {
                /* retransmit to every replica that has not answered, but
                 * for those still working on it (link_working: a re-post
                 * would discard the answer they are preparing); those we
                 * asked a full attempt ago and that stayed silent are
                 * suspect for a while */
                for (uint32_t i = 0; i < c->n; i++) {
                    if (have[i])
                        continue;
                    if (asked[i] && !narrow)
                        c->bft.suspect_until[i] = now + SY_BFT_SUSPECT_MS;
                    asked[i] = true;
                    if (!link_working(c, i, req_no))
                        BFT_POST(i);
                }
                attempt_end = now + att;
                att = sy_client_attempt_next(c->opts.attempt_ms, att);
                narrow = false;
            }
            continue;
        }
        sy_env env;
        if (check_reply(c, &im, req_no, &env) != SY_OK) {
            nng_msg_free(im.msg);
            continue;
        }
        const sy_client_reply *r = &env.msg.u.reply;
        if (sy_client_retryable(r->status)) {
            /* not an answer; this replica is asked again at the next round */
            sy_env_free(&env);
            nng_msg_free(im.msg);
            continue;
        }
        sy_client_reply_digest(r, &got[im.node]);
        have[im.node] = true;
        hint[im.node] = r->leader;
        uint32_t match = 0;
        for (uint32_t i = 0; i < c->n; i++)
            if (have[i] && sy_digest_eq(&got[i], &got[im.node]))
                match++;
        if (match >= need) {
            bool widened = false;   /* someone not asked first was asked since */
            for (uint32_t i = 0; i < c->n; i++)
                widened |= asked[i] && !first[i];
            sy_bft_learn(&c->bft, need, have, first, got, hint, im.node, widened, start,
                         mono_ms());
            rc = result_fill(r, im.node, res);
            sy_env_free(&env);
            nng_msg_free(im.msg);
            return rc;
        }
        sy_env_free(&env);
        nng_msg_free(im.msg);
        /* Give up early once no group of matching replies can still reach
         * `need` (replicas answered unordered reads at different executed
         * indexes): the caller falls back to an ordered read at once
         * instead of waiting out its fast-path deadline. */
        bool up[SY_MAX_NODES];
        for (uint32_t i = 0; i < c->n; i++)
            up[i] = __atomic_load_n(&c->links[i].pipes, __ATOMIC_SEQ_CST) > 0;
        if (!sy_bft_can_reach(&c->bft, need, have, got, up))
            return SY_ETIMEOUT;
    }
}

#undef BFT_POST

int sy_client_exec(sy_client *c, uint8_t op, uint8_t flags, const void *key, size_t key_len,
                   const void *val, size_t val_len, const void *old, size_t old_len,
                   uint32_t limit, int timeout_ms, sy_client_result *res)
{
    sy_msg m;
    sy_buf frame;
    int rc;

    memset(res, 0, sizeof *res);
    /* what the state machine would refuse (core/kv.c, exec_req) is refused
     * here, before it is signed, sent and logged */
    if (key_len > SY_MAX_KEY || val_len > SY_MAX_VALUE || old_len > SY_MAX_VALUE ||
        (op == SY_OP_SCAN && val_len > SY_MAX_KEY))
        return SY_ETOOBIG;
    bool needs_key = op == SY_OP_PUT || op == SY_OP_GET || op == SY_OP_DEL || op == SY_OP_CAS;
    if (timeout_ms <= 0 || op > SY_OP_SCAN || (needs_key && key_len == 0))
        return SY_EINVAL;
    /* strictly increasing even if the wall clock steps back */
    c->last_req = sy_client_next_req_no(c->last_req);
    sy_client_req_init(&m, c->cfg, c->client_id, c->last_req, op, flags);
    sy_client_req *q = &m.u.req;
    if (c->opts.stale_reads && (op == SY_OP_GET || op == SY_OP_SCAN))
        q->flags |= SY_REQ_STALE_OK;
    q->limit = limit;
    q->key = (sy_bytes){ key, (uint32_t)key_len };
    q->val = (sy_bytes){ val, (uint32_t)val_len };
    q->old = (sy_bytes){ old, (uint32_t)old_len };
    sy_buf_init(&frame);
    rc = sy_env_encode(c->cfg->id, c->client_id, &m, &c->signer, &frame);
    if (rc)
        goto err_free_frame;
    inbox_clear(c);
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    if (c->cfg->protocol == SY_PROTO_PBFT) {
        bool read = (op == SY_OP_GET || op == SY_OP_SCAN) && !(q->flags & SY_REQ_STALE_OK);
        if (!read) {
            /* ordered: f+1 matching replies include a correct replica's */
            rc = run_bft(c, &frame, q->req_no, deadline, c->cfg->f + 1, res);
        } else {
            /* Read-only optimisation (Castro & Liskov 5.1.3): replicas answer
             * from their executed state without ordering; only a quorum of
             * matching replies is linearizable (it intersects every commit
             * quorum in a correct replica). Without one in time -- replicas
             * mid-execution disagree -- fall back to an ordered read. */
            uint32_t n = c->cfg->n, f = c->cfg->f;
            uint32_t quorum = (n + f + 1 + 1) / 2;
            uint64_t fast = mono_ms() + 2u * c->opts.attempt_ms;
            rc = run_bft(c, &frame, q->req_no, fast < deadline ? fast : deadline, quorum, res);
            if (rc == SY_ETIMEOUT && mono_ms() < deadline) {
                sy_client_result_free(res);
                memset(res, 0, sizeof *res);
                q->flags |= SY_REQ_ORDERED;
                q->req_no = ++c->last_req;
                sy_buf_reset(&frame);
                rc = sy_env_encode(c->cfg->id, c->client_id, &m, &c->signer, &frame);
                if (rc)
                    goto err_free_frame;
                inbox_clear(c);
                rc = run_bft(c, &frame, q->req_no, deadline, f + 1, res);
            }
        }
    } else
        rc = run_cft(c, &frame, q->req_no, deadline, res);
err_free_frame:
    sy_buf_free(&frame);
    return rc;
}

/* ----------------------------------------------------------- convenience */

int sy_client_put(sy_client *c, const void *key, size_t key_len, const void *val,
                  size_t val_len, int timeout_ms)
{
    sy_client_result r;
    int rc = sy_client_exec(c, SY_OP_PUT, 0, key, key_len, val, val_len, NULL, 0, 0,
                            timeout_ms, &r);
    if (rc)
        return rc;
    rc = r.status;
    sy_client_result_free(&r);
    return rc;
}

int sy_client_get(sy_client *c, const void *key, size_t key_len, uint8_t **val,
                  size_t *val_len, int timeout_ms)
{
    sy_client_result r;
    *val = NULL;
    *val_len = 0;
    int rc = sy_client_exec(c, SY_OP_GET, 0, key, key_len, NULL, 0, NULL, 0, 0, timeout_ms, &r);
    if (rc)
        return rc;
    rc = r.status;
    if (rc == SY_OK) {
        *val = r.val;
        *val_len = r.val_len;
        r.val = NULL;
    }
    sy_client_result_free(&r);
    return rc;
}

int sy_client_del(sy_client *c, const void *key, size_t key_len, int timeout_ms)
{
    sy_client_result r;
    int rc = sy_client_exec(c, SY_OP_DEL, 0, key, key_len, NULL, 0, NULL, 0, 0, timeout_ms, &r);
    if (rc)
        return rc;
    rc = r.status;
    sy_client_result_free(&r);
    return rc;
}

int sy_client_cas(sy_client *c, const void *key, size_t key_len, const void *old,
                  size_t old_len, const void *new_val, size_t new_len, int timeout_ms,
                  uint8_t **cur, size_t *cur_len)
{
    sy_client_result r;
    if (cur)
        *cur = NULL;
    if (cur_len)
        *cur_len = 0;
    int rc = sy_client_exec(c, SY_OP_CAS, old ? 0 : SY_CAS_EXPECT_ABSENT, key, key_len,
                            new_val, new_len, old, old ? old_len : 0, 0, timeout_ms, &r);
    if (rc)
        return rc;
    rc = r.status;
    if (rc == SY_ECASFAIL && cur_len)
        *cur_len = r.val_len;
    if (rc == SY_ECASFAIL && cur) {
        *cur = r.val;
        r.val = NULL;
    }
    sy_client_result_free(&r);
    return rc;
}

size_t sy_client_key_after(const void *key, size_t key_len, uint8_t *out)
{
    if (key_len < SY_MAX_KEY) {   /* key || 0x00: nothing sorts between */
        memcpy(out, key, key_len);
        out[key_len] = 0;
        return key_len + 1;
    }
    /* A key of the longest length has no longer extension: the next key is
     * the shortest one above it, its last byte below 0xff raised by one and
     * what follows dropped. */
    size_t n = key_len;
    const uint8_t *k = key;
    while (n && k[n - 1] == 0xff)
        n--;
    if (!n)
        return 0;
    memcpy(out, k, n);
    out[n - 1]++;
    return n;
}

int sy_client_scan_page(sy_client *c, const void *from, size_t from_len, const void *to,
                        size_t to_len, uint32_t limit, sy_client_kv **kvs, size_t *n,
                        bool *more, int timeout_ms)
{
    sy_client_result r;
    *kvs = NULL;
    *n = 0;
    *more = false;
    if (limit == 0 || limit > SY_MAX_SCAN)
        limit = SY_MAX_SCAN;
    int rc = sy_client_exec(c, SY_OP_SCAN, 0, from, from_len, to, to_len, NULL, 0, limit,
                            timeout_ms, &r);
    if (rc)
        return rc;
    rc = r.status;
    if (rc == SY_OK) {
        /* The node stops a page at `limit` keys or before the pair that
         * would take its keys and values past SY_MAX_SCAN_BYTES (core/kv.c)
         * and does not say which: a page that came within one largest pair
         * of the cap may have been cut there. */
        uint64_t bytes = 0;
        for (size_t i = 0; i < r.n_kvs; i++)
            bytes += r.kvs[i].key_len + r.kvs[i].val_len;
        *more = r.n_kvs == limit || bytes + SY_MAX_KEY + SY_MAX_VALUE > SY_MAX_SCAN_BYTES;
        *kvs = r.kvs;
        *n = r.n_kvs;
        r.kvs = NULL;
        r.n_kvs = 0;
    }
    sy_client_result_free(&r);
    return rc;
}

int sy_client_scan(sy_client *c, const void *from, size_t from_len, const void *to,
                   size_t to_len, uint32_t limit, sy_client_kv **kvs, size_t *n,
                   int timeout_ms)
{
    *kvs = NULL;
    *n = 0;
    if (limit == 0 || limit > SY_MAX_SCAN)
        limit = SY_MAX_SCAN;
    if (timeout_ms <= 0)
        return SY_EINVAL;
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    sy_client_kv *all = NULL;
    size_t got = 0;
    uint8_t next[SY_MAX_KEY];
    const void *pf = from;
    size_t pfl = from_len;
    for (;;) {
        sy_client_kv *page;
        size_t pn;
        bool more;
        uint64_t now = mono_ms();
        if (got && now >= deadline) {
            sy_client_kvs_free(all, got);
            return SY_ETIMEOUT;
        }
        int rc = sy_client_scan_page(c, pf, pfl, to, to_len, limit - (uint32_t)got, &page, &pn,
                                     &more, (int)(deadline > now ? deadline - now : 1));
        if (rc) {
            sy_client_kvs_free(all, got);
            return rc;
        }
        if (!got) {
            all = page;
            got = pn;
        } else if (pn) {
            sy_client_kv *grown = realloc(all, (got + pn) * sizeof *all);
            if (!grown) {
                sy_client_kvs_free(page, pn);
                sy_client_kvs_free(all, got);
                return SY_ENOMEM;
            }
            all = grown;
            memcpy(all + got, page, pn * sizeof *page);
            got += pn;
            free(page);   /* its keys and values now belong to all */
        } else {
            free(page);
        }
        if (!more || !pn || got >= limit)
            break;
        /* cut at the byte cap: go on after the last key we have */
        pfl = sy_client_key_after(all[got - 1].key, all[got - 1].key_len, next);
        if (!pfl)
            break;
        pf = next;
    }
    *kvs = all;
    *n = got;
    return SY_OK;
}

/* ---------------------------------------------------------------- status */

int sy_client_status_all(sy_client *c, int timeout_ms, sy_client_node_status *out)
{
    sy_msg m;
    sy_buf frame, plain;
    uint32_t answered = 0;
    int rc;

    for (uint32_t i = 0; i < c->n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].rc = SY_EUNREACH;
        out[i].node = i;
        out[i].leader = SY_NO_NODE;
        out[i].evidence_from = out[i].bad_sig_from = SY_NO_NODE;
        out[i].dissent_from = out[i].dissent_primary = SY_NO_NODE;
    }
    if (timeout_ms <= 0)
        return SY_EINVAL;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_STATUS_REQ;
    m.u.status_req.nonce = wall_us() ^ ((uint64_t)c->client_id << 40);
    /* Asked for the fault fields. A node before 0.20 refuses a request
     * with them as malformed (a signed CLIENT_REPLY for client 0, request
     * 0); such a node is asked again, once, without them -- so status and
     * transfer work across a rolling upgrade (docs/operations.md, 6). */
    m.u.status_req.with_faults = true;
    sy_buf_init(&frame);
    sy_buf_init(&plain);
    bool asked_plain[SY_MAX_NODES] = { false };
    if ((rc = sy_env_encode(c->cfg->id, c->client_id, &m, &c->signer, &frame)) != SY_OK)
        goto err_free_frame;
    m.u.status_req.with_faults = false;
    if ((rc = sy_env_encode(c->cfg->id, c->client_id, &m, &c->signer, &plain)) != SY_OK)
        goto err_free_frame;
    inbox_clear(c);
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    for (uint32_t i = 0; i < c->n; i++) {
        /* a node whose link does not give way goes unasked (unreachable) */
        rc = link_post(c, i, &frame, 0, min_u64(deadline, mono_ms() + SY_CLIENT_POST_WAIT_MS));
        if (rc != SY_OK && rc != SY_ETIMEOUT)
            goto err_free_frame;
    }
    rc = SY_OK;
    while (answered < c->n) {
        inmsg im;
        sy_env env;
        if (!inbox_wait(c, deadline, &im))
            break;
        rc = sy_env_decode(&c->vopts, nng_msg_body(im.msg), nng_msg_len(im.msg), &env, NULL);
        if (rc == SY_ECLUSTER && decode_foreign_refusal(c, &im, &env) == SY_OK) {
            if (out[im.node].rc == SY_EUNREACH) {
                out[im.node].rc = SY_ECLUSTER;   /* it answered: not ours */
                answered++;
            }
            sy_env_free(&env);
        }
        if (rc == SY_OK && env.type == SY_MSG_CLIENT_REPLY && env.sender == im.node &&
            env.msg.u.reply.client_id == 0 && env.msg.u.reply.req_no == 0 &&
            env.msg.u.reply.status == SY_EFIELD && im.node < SY_MAX_NODES &&
            !asked_plain[im.node] && out[im.node].rc == SY_EUNREACH) {
            asked_plain[im.node] = true;
            link_post(c, im.node, &plain, 0, min_u64(deadline, mono_ms() + SY_CLIENT_POST_WAIT_MS));
        }
        if (rc == SY_OK) {
            const sy_status_reply *s = &env.msg.u.status;
            if (env.type == SY_MSG_STATUS_REPLY && env.sender == im.node &&
                s->node == im.node && s->nonce == m.u.status_req.nonce &&
                out[im.node].rc == SY_EUNREACH) {
                sy_client_node_status *o = &out[im.node];
                o->rc = SY_OK;
                size_t pl = s->protocol.len < sizeof o->protocol - 1 ? s->protocol.len
                                                                      : sizeof o->protocol - 1;
                memcpy(o->protocol, s->protocol.p, pl);
                o->protocol[pl] = 0;
                o->role = s->role;
                o->term = s->term;
                o->leader = s->leader;
                o->last_index = s->last_index;
                o->commit_index = s->commit_index;
                o->applied_index = s->applied_index;
                o->snap_index = s->snap_index;
                o->peers_connected = s->peers_connected;
                o->evidence = s->evidence;
                o->leader_changes = s->leader_changes;
                o->state_digest = s->state_digest;
                o->ledger_head = s->ledger_head;
                if (s->has_faults) {
                    o->evidence_from = s->evidence_from;
                    o->bad_sigs = s->bad_sigs;
                    o->bad_sig_from = s->bad_sig_from;
                    o->dissent = s->dissent;
                    o->dissent_from = s->dissent_from;
                    o->dissent_primary = s->dissent_primary;
                }
                answered++;
            }
            sy_env_free(&env);
        }
        nng_msg_free(im.msg);
    }
    rc = SY_OK;
err_free_frame:
    sy_buf_free(&frame);
    sy_buf_free(&plain);
    return rc;
}

/* The node that leads, as the answering nodes see it: one that says it
 * leads (or is primary) and that f+1 answering nodes, itself included, name
 * as leader (so one faulty PBFT replica cannot pass for the primary); the
 * one in the newest term if several; SY_NO_NODE if none. */
static uint32_t current_leader(const sy_client_node_status *st, uint32_t n, uint32_t f,
                               uint64_t *term)
{
    uint32_t best = SY_NO_NODE;
    for (uint32_t i = 0; i < n; i++) {
        if (st[i].rc != SY_OK || (st[i].role != SY_ROLE_LEADER && st[i].role != SY_ROLE_PRIMARY))
            continue;
        uint32_t named = 0;
        for (uint32_t k = 0; k < n; k++)
            if (st[k].rc == SY_OK && st[k].leader == i)
                named++;
        if (named < f + 1)
            continue;
        if (best == SY_NO_NODE || st[i].term > st[best].term)
            best = i;
    }
    if (best != SY_NO_NODE && term)
        *term = st[best].term;
    return best;
}

/* One TRANSFER_REQ to node l, which leads in `term`; its reply's status
 * (SY_ETIMEOUT: none before deadline). A node too old to know the message
 * answers with an error reply (SY_EMSGTYPE). */
static int ask_transfer(sy_client *c, uint32_t l, uint64_t term, uint32_t target,
                        uint64_t deadline)
{
    sy_msg m;
    sy_buf frame;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_TRANSFER_REQ;
    m.u.transfer_req = (sy_transfer_req){ .nonce = wall_us() ^ ((uint64_t)c->client_id << 40),
                                          .leader = l, .term = term, .target = target };
    sy_buf_init(&frame);
    int rc = sy_env_encode(c->cfg->id, c->client_id, &m, &c->signer, &frame);
    if (rc == SY_OK) {
        inbox_clear(c);
        rc = link_post(c, l, &frame, 0, deadline);
    }
    sy_buf_free(&frame);
    if (rc)
        return rc;
    for (;;) {
        inmsg im;
        sy_env env;
        /* inbox_wait returns what is queued even past the deadline: a
         * stream of other answers must not keep us here */
        if (mono_ms() >= deadline || !inbox_wait(c, deadline, &im))
            return SY_ETIMEOUT;
        rc = sy_env_decode(&c->vopts, nng_msg_body(im.msg), nng_msg_len(im.msg), &env, NULL);
        nng_msg_free(im.msg);
        if (rc != SY_OK)
            continue;
        int status = -1;
        if (env.sender == im.node && im.node == l) {
            const sy_transfer_reply *t = &env.msg.u.transfer;
            const sy_client_reply *e = &env.msg.u.reply;
            if (env.type == SY_MSG_TRANSFER_REPLY && t->node == l &&
                t->nonce == m.u.transfer_req.nonce)
                status = t->status;
            else if (env.type == SY_MSG_CLIENT_REPLY && e->client_id == 0 && e->req_no == 0 &&
                     e->status != SY_OK)
                status = e->status;   /* refused before it was read (or not understood) */
        }
        sy_env_free(&env);
        if (status >= 0)
            return status;
    }
}

int sy_client_transfer(sy_client *c, uint32_t target, int timeout_ms, uint32_t *from,
                       uint32_t *to)
{
    const sy_client_entry *me = sy_cluster_client(c->cfg, c->client_id);
    if (!me || !me->admin)
        return SY_EUNAUTH;
    if ((target != SY_NO_NODE && target >= c->n) || timeout_ms <= 0)
        return SY_EINVAL;
    sy_client_node_status *st = calloc(c->n, sizeof *st);
    if (!st)
        return SY_ENOMEM;
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    uint32_t old = SY_NO_NODE;
    uint64_t old_term = 0;
    int rc = SY_ETIMEOUT;
    /* Find the leader and ask it, once: a request that went unanswered may
     * still have started the hand-off, so from then on we only watch. A
     * leader that lost office before our request reached it refuses it
     * (SY_ENOTLEADER, or SY_ESTALE: its term moved on): look again. */
    for (uint64_t now = mono_ms(); now < deadline; now = mono_ms()) {
        uint64_t left = deadline - now;
        if ((rc = sy_client_status_all(c, (int)(left < 1000 ? left : 1000), st)) != SY_OK)
            goto out;
        uint64_t term = 0;
        uint32_t l = current_leader(st, c->n, c->cfg->f, &term);
        if (l == SY_NO_NODE) {
            rc = SY_ETIMEOUT;
            nng_msleep(100);
            continue;
        }
        if (l == target) {
            old = l;
            rc = SY_OK;
            goto done;
        }
        now = mono_ms();
        if (now >= deadline)
            break;
        /* half of what is left (at least a second) for the answer; after
         * that the hand-off may have started without our hearing of it */
        uint64_t wait = (deadline - now) / 2 > 1000 ? (deadline - now) / 2 : 1000;
        rc = ask_transfer(c, l, term, target, now + wait < deadline ? now + wait : deadline);
        if (rc == SY_ENOTLEADER || rc == SY_ESTALE) {
            nng_msleep(100);
            continue;
        }
        if (rc == SY_EUNAUTH)
            rc = SY_EPERM;   /* our manifest says admin; the node's does not */
        if (rc != SY_OK && rc != SY_ETIMEOUT)
            goto out;
        old = l;
        old_term = term;
        break;
    }
    if (old == SY_NO_NODE) {
        rc = SY_ETIMEOUT;
        goto out;
    }
    /* the hand-off started (or may have): wait for another node to lead in
     * a newer term */
    rc = SY_ETIMEOUT;
    for (uint64_t now = mono_ms(); now < deadline; now = mono_ms()) {
        uint64_t left = deadline - now;
        if (sy_client_status_all(c, (int)(left < 1000 ? left : 1000), st) != SY_OK)
            break;
        uint64_t term = 0;
        uint32_t l = current_leader(st, c->n, c->cfg->f, &term);
        if (l != SY_NO_NODE && l != old && term > old_term) {
            if (to)
                *to = l;
            if (from)
                *from = old;
            rc = SY_OK;
            goto out;
        }
        nng_msleep(50);
    }
    goto out;
done:
    if (from)
        *from = old;
    if (to)
        *to = old;
out:
    free(st);
    return rc;
}
