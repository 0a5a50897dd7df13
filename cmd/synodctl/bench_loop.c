/* synodctl bench's event-driven driver (cmd/synodctl/bench_loop.h).
 *
 * Wire: NNG's SP protocol over TCP, as a REQ socket speaks it to the
 * node's REP socket. A connection opens with an 8-byte header each way
 * (0x00 'S' 'P' 0x00, the 16-bit protocol number -- REQ 48, REP 49 --, two
 * zero bytes); then every message is a 64-bit big-endian length and that
 * many bytes: the SP header (REQ: one 32-bit request id with its top bit
 * set; the reply echoes it as the end of its backtrace) and the body, here
 * one signed envelope. A node answers a retransmission of a request on the
 * newest connection it came on (cmd/synod/runtime.c), so unlike a REQ
 * socket this driver can send a request again without throwing away the
 * answer the node is preparing: every valid reply to the current request
 * counts, whichever id it carries. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "cmd/synodctl/bench_loop.h"
#include "core/buf.h"
#include "core/engine.h"
#include "core/envelope.h"
#include "crypto/sy_err.h"
#include "net/client.h"
#include "net/client_wire.h"

#define BL_PROTO_REQ 48u
#define BL_PROTO_REP 49u
#define BL_RECONN_MIN_MS 20u     /* as the library's sockets (net/client.c) */
#define BL_RECONN_MAX_MS 1000u
#define BL_KEY_LEN 16
#define BL_IDLE_WAIT_MS 50       /* longest epoll wait: how soon a stop is seen */
#define BL_WBUF_MAX (4u << 20) /* bytes queued for one connection (conn_send) */
#define BL_CONNECT_MS 2000u     /* a TCP connect, or the node's SP header after
                                   it, that takes longer is given up */
#define BL_READS_MAX 16          /* reads of 64 KiB per readiness event (conn_read) */

typedef struct bl_conn {
    struct bl_client *owner;
    uint32_t node;
    int fd;                  /* -1: down, reconnect at reconnect_at */
    bool up;                 /* headers exchanged */
    bool want_out;           /* EPOLLOUT armed */
    uint8_t *rb, *wb;
    size_t rlen, rcap, wlen, woff, wcap;
    uint32_t next_id;
    uint32_t addr;           /* which of the node's addresses */
    uint32_t backoff_ms;
    uint64_t reconnect_at;   /* ms */
    bool tcp_up;             /* connect() completed */
    uint64_t connect_end;    /* ms: connect(), then the SP header, give up then */
    /* the last request sent here and not answered yet (0: none), and
     * until when it is left to work on it (ask) */
    uint64_t req_no, repost_at, patience;
} bl_conn;

typedef struct bl_client {
    bench_loop *l;
    uint32_t client_id;
    sy_signer signer;
    uint64_t last_req, rng;
    bl_conn *conns;
    uint32_t leader;         /* raft, paxos: SY_NO_NODE until one answered */
    uint64_t foreign;        /* nodes whose last word refused our cluster id (bits) */
    sy_bft_memory bft;       /* pbft */
    /* the request in flight */
    bool busy, read, ordered;
    char key[BL_KEY_LEN + 1];
    uint64_t req_no, t0_us, deadline, attempt_end, resend_at, att, fast_end, start;
    uint32_t target, need;
    bool narrow;
    bool have[SY_MAX_NODES], asked[SY_MAX_NODES], first[SY_MAX_NODES];
    sy_digest got[SY_MAX_NODES];
    uint32_t hint[SY_MAX_NODES];
    sy_buf frame;
} bl_client;

/* A node's client address, resolved once: up to BL_MAX_ADDRS results
 * (localhost may be ::1 and 127.0.0.1), tried in turn while a connection
 * does not come up. */
#define BL_MAX_ADDRS 4
typedef struct bl_addr {
    struct sockaddr_storage sa[BL_MAX_ADDRS];
    socklen_t len[BL_MAX_ADDRS];
    uint32_t count;
} bl_addr;

struct bench_loop {
    const sy_cluster_cfg *cfg;
    bench_loop_opts o;
    sy_directory dir;
    sy_verifier ver;
    sy_env_opts vopts;
    bl_addr *addrs;          /* one per node */
    int epfd;
    pthread_t thr;
    bl_client *cs;
    uint8_t *val;
    uint8_t *tmp;            /* read buffer */
    uint64_t issued, end_us, next_due;
    uint64_t run_start_us, run_end_us;   /* first request started, last ended */
    uint64_t *lat;
    size_t n_lat, cap_lat;
    int last_err;
    /* shared with the caller's thread (__atomic) */
    uint64_t done, errors;
    uint32_t connected;
    int finished, stop;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void)
{
    return now_us() / 1000u;
}

uint64_t bench_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* A timer at t (ms): the loop looks at the clients no later than that. */
static void arm(bench_loop *l, uint64_t t)
{
    if (t < l->next_due)
        l->next_due = t;
}

static bool grow(uint8_t **b, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    uint8_t *nb = realloc(*b, nc);
    if (!nb)
        return false;
    *b = nb;
    *cap = nc;
    return true;
}

/* ------------------------------------------------------------ connections */

static void conn_down(bl_conn *k)
{
    bench_loop *l = k->owner->l;
    if (k->fd >= 0) {
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, k->fd, NULL);
        close(k->fd);
    }
    if (k->up)
        __atomic_fetch_sub(&l->connected, 1, __ATOMIC_RELAXED);
    else
        k->addr = (k->addr + 1) % l->addrs[k->node].count;
    k->fd = -1;
    k->up = k->want_out = k->tcp_up = false;
    k->req_no = 0;   /* what it held is lost with the connection */
    k->rlen = k->wlen = k->woff = 0;
    k->reconnect_at = now_ms() + k->backoff_ms;
    k->backoff_ms = k->backoff_ms * 2 < BL_RECONN_MAX_MS ? k->backoff_ms * 2 : BL_RECONN_MAX_MS;
    arm(l, k->reconnect_at);
}

static void conn_events(bl_conn *k, bool out)
{
    if (k->want_out == out)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = k };
    epoll_ctl(k->owner->l->epfd, EPOLL_CTL_MOD, k->fd, &ev);
    k->want_out = out;
}

static void conn_flush(bl_conn *k)
{
    while (k->woff < k->wlen) {
        ssize_t w = send(k->fd, k->wb + k->woff, k->wlen - k->woff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_down(k);
            return;
        }
        k->woff += (size_t)w;
    }
    if (k->woff == k->wlen)
        k->woff = k->wlen = 0;
    conn_events(k, k->wlen > 0);
}

static void conn_open(bl_conn *k)
{
    bench_loop *l = k->owner->l;
    static const uint8_t hdr[8] = { 0, 'S', 'P', 0, 0, BL_PROTO_REQ, 0, 0 };
    const bl_addr *a = &l->addrs[k->node];
    k->fd = socket(a->sa[k->addr].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (k->fd < 0) {
        conn_down(k);
        return;
    }
    int one = 1;
    setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(k->fd, (const struct sockaddr *)&a->sa[k->addr], a->len[k->addr]) != 0 &&
        errno != EINPROGRESS) {
        conn_down(k);
        return;
    }
    /* the header goes first, with the requests queued behind it once the
     * connection is made (EPOLLOUT); an address that never answers is
     * given up after BL_CONNECT_MS for the next one */
    k->connect_end = now_ms() + BL_CONNECT_MS;
    arm(l, k->connect_end);
    k->rlen = k->woff = 0;
    memcpy(k->wb, hdr, sizeof hdr);
    k->wlen = sizeof hdr;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = k };
    k->want_out = true;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, k->fd, &ev) != 0)
        conn_down(k);
}

/* Sends the client's current frame over k; down: lost, as a frame a
 * broken connection drops (the attempt timer moves on). */
static void conn_send(bl_conn *k, const sy_buf *frame)
{
    if (k->fd < 0)
        return;
    size_t len = 4 + frame->len;
    /* A node that does not read (paused, hung; or whose header never came
     * back, so nothing is flushed) would have every frame we send it pile
     * up here for the whole run -- every PBFT read goes to every replica.
     * Past BL_WBUF_MAX queued the frame is lost, as on a broken
     * connection; a retransmission goes out once the node reads again. */
    if (k->wlen > k->woff && k->wlen - k->woff + 8 + len > BL_WBUF_MAX)
        return;
    if (k->woff) {   /* what went out already makes room */
        memmove(k->wb, k->wb + k->woff, k->wlen - k->woff);
        k->wlen -= k->woff;
        k->woff = 0;
    }
    if (!grow(&k->wb, &k->wcap, k->wlen + 8 + len))
        return;
    uint8_t *p = k->wb + k->wlen;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    uint32_t id = 0x80000000u | (k->next_id++ & 0x7fffffffu);
    p[8] = (uint8_t)(id >> 24);
    p[9] = (uint8_t)(id >> 16);
    p[10] = (uint8_t)(id >> 8);
    p[11] = (uint8_t)id;
    memcpy(p + 12, frame->p, frame->len);
    k->wlen += 8 + len;
    if (k->up)
        conn_flush(k);
}

/* --------------------------------------------------------------- requests */

static bool client_start(bl_client *c);

static bool take(bench_loop *l)
{
    if (__atomic_load_n(&l->stop, __ATOMIC_RELAXED))
        return false;
    if (l->o.requests) {
        if (l->issued >= l->o.requests)
            return false;
        l->issued++;
        return true;
    }
    return now_us() < l->end_us;
}

static bool record(bench_loop *l, uint64_t us)
{
    if (l->n_lat == l->cap_lat) {
        size_t nc = l->cap_lat ? 2 * l->cap_lat : 65536;
        uint64_t *nl = realloc(l->lat, nc * sizeof *nl);
        if (!nl)
            return false;
        l->lat = nl;
        l->cap_lat = nc;
    }
    l->lat[l->n_lat++] = us;
    return true;
}

static void count_failed(bench_loop *l, int rc)
{
    l->last_err = rc;
    __atomic_fetch_add(&l->errors, 1, __ATOMIC_RELAXED);
}

/* c's next request, while there is one to take: one that cannot even be
 * encoded fails at once and the next is tried here, in a loop -- through
 * finish, a run of such failures recursed once per request. */
static void client_next(bl_client *c)
{
    while (take(c->l) && !client_start(c))
        ;
}

static void finish(bl_client *c, int rc)
{
    bench_loop *l = c->l;
    c->busy = false;
    if (rc == SY_OK && !record(l, now_us() - c->t0_us))
        rc = SY_ENOMEM;
    if (rc == SY_OK)
        __atomic_fetch_add(&l->done, 1, __ATOMIC_RELAXED);
    else
        count_failed(l, rc);
    client_next(c);
}

static bool conn_up(const bl_client *c, uint32_t i)
{
    return c->conns[i].up;
}

static int encode(bl_client *c)
{
    bench_loop *l = c->l;
    sy_msg m;
    uint8_t flags = (c->read && l->o.stale ? SY_REQ_STALE_OK : 0) |
                    (c->ordered ? SY_REQ_ORDERED : 0);
    c->last_req = c->req_no = sy_client_next_req_no(c->last_req);
    sy_client_req_init(&m, l->cfg, c->client_id, c->req_no,
                       c->read ? SY_OP_GET : SY_OP_PUT, flags);
    sy_client_req *q = &m.u.req;
    q->key = (sy_bytes){ (const uint8_t *)c->key, BL_KEY_LEN };
    if (!c->read)
        q->val = (sy_bytes){ l->val, (uint32_t)l->o.value_size };
    sy_buf_reset(&c->frame);
    return sy_env_encode(l->cfg->id, c->client_id, &m, &c->signer, &c->frame);
}

/* Sends the current request to node i -- unless i holds it unanswered
 * and is left to work on it, as the library's link_working (net/client.c)
 * leaves it: a node answers only the newest copy of a request and keeps a
 * client slot for every older one until it expires, so a copy sent every
 * attempt to a node busy with it (a view change, a slow disk) would use
 * up its slots. After SY_CLIENT_REPOST_MS (or four attempts), twice as
 * long each time, it is sent again: a node re-proposes a write it lost
 * with its leadership, and a PBFT backup relays a retransmission to the
 * primary, only when it gets one. */
static void ask(bl_client *c, uint32_t i)
{
    bl_conn *k = &c->conns[i];
    uint64_t now = now_ms();
    if (k->fd >= 0 && k->req_no == c->req_no && now < k->repost_at)
        return;
    if (k->req_no == c->req_no)
        k->patience *= 2;
    else
        k->patience = SY_CLIENT_REPOST_MS > 4u * SY_CLIENT_ATTEMPT_MS_DEFAULT
                          ? SY_CLIENT_REPOST_MS
                          : 4u * SY_CLIENT_ATTEMPT_MS_DEFAULT;
    k->req_no = c->req_no;
    k->repost_at = now + k->patience;
    conn_send(k, &c->frame);
}

/* raft, paxos: ask the target, as net/client.c's run_cft does */
static void cft_ask(bl_client *c)
{
    uint64_t now = now_ms();
    ask(c, c->target);
    uint64_t len = conn_up(c, c->target) ? c->att : min_u64(c->att, SY_CLIENT_DOWN_GRACE_MS);
    c->attempt_end = now + len;
    arm(c->l, c->attempt_end);
}

/* pbft: the first send of an attempt at need matching replies */
static void bft_begin(bl_client *c, uint32_t need)
{
    bench_loop *l = c->l;
    bool up[SY_MAX_NODES];
    uint32_t n = l->cfg->n;
    uint64_t now = now_ms();
    for (uint32_t i = 0; i < n; i++)
        up[i] = conn_up(c, i);
    c->need = need;
    memset(c->have, 0, sizeof c->have);
    c->narrow = sy_bft_targets(&c->bft, need, up, now, c->asked);
    memcpy(c->first, c->asked, sizeof c->first);
    for (uint32_t i = 0; i < n; i++)
        if (c->asked[i])
            ask(c, i);
    c->start = now;
    c->att = SY_CLIENT_ATTEMPT_MS_DEFAULT;
    c->attempt_end = now + (c->narrow ? sy_bft_narrow_wait(&c->bft, SY_CLIENT_ATTEMPT_MS_DEFAULT)
                                      : SY_CLIENT_ATTEMPT_MS_DEFAULT);
    arm(l, c->attempt_end);
}

/* Starts a request on c. false: it could not be encoded (counted as
 * failed; c stays idle). */
static bool client_start(bl_client *c)
{
    bench_loop *l = c->l;
    c->read = (double)(bench_xorshift(&c->rng) % 1000000) / 1e6 < l->o.read_ratio;
    snprintf(c->key, sizeof c->key, "k%015u", (unsigned)(bench_xorshift(&c->rng) % l->o.keys));
    c->ordered = false;
    int rc = encode(c);
    if (rc != SY_OK) {
        count_failed(l, rc);
        return false;
    }
    c->busy = true;
    c->t0_us = now_us();
    c->deadline = c->t0_us / 1000u + l->o.timeout_ms;
    arm(l, c->deadline);
    c->resend_at = 0;
    if (l->cfg->protocol == SY_PROTO_PBFT) {
        uint32_t n = l->cfg->n, f = l->cfg->f;
        if (c->read && !l->o.stale) {
            /* the read-only optimisation: a quorum of matching replies
             * (net/client.c, sy_client_exec), an ordered read without one */
            c->fast_end = min_u64(c->deadline, now_ms() + 2u * SY_CLIENT_ATTEMPT_MS_DEFAULT);
            arm(l, c->fast_end);
            bft_begin(c, (n + f + 1 + 1) / 2);
        } else {
            c->fast_end = 0;
            bft_begin(c, f + 1);
        }
        return true;
    }
    if (c->leader >= l->cfg->n) {
        c->leader = 0;
        for (uint32_t i = 0; i < l->cfg->n; i++)
            if (conn_up(c, i)) {
                c->leader = i;
                break;
            }
    }
    c->target = c->leader;
    c->att = SY_CLIENT_ATTEMPT_MS_DEFAULT;
    cft_ask(c);
    return true;
}

/* pbft: the read's quorum did not come; ask again as an ordered read under
 * a new request number */
static void bft_ordered(bl_client *c)
{
    c->ordered = true;
    c->fast_end = 0;
    int rc = encode(c);
    if (rc != SY_OK) {
        finish(c, rc);
        return;
    }
    bft_begin(c, c->l->cfg->f + 1);
}

static int verdict(int status)
{
    return status == SY_OK || status == SY_ENOTFOUND ? SY_OK : status;
}

/* f+1 nodes refused us for another cluster id: the manifest is the wrong
 * one (net/client.c, foreign_quorum) */
static bool foreign_quorum(const bl_client *c)
{
    uint32_t n = c->l->cfg->n, need = c->l->cfg->f + 1 < n ? c->l->cfg->f + 1 : n;
    return (uint32_t)__builtin_popcountll(c->foreign) >= need;
}

static void cft_reply(bl_client *c, uint32_t node, const sy_client_reply *r)
{
    uint32_t n = c->l->cfg->n;
    /* one node of another cluster id (misconfigured) is no verdict: as a
     * silent one; f+1 of them are */
    if (r->status == SY_ECLUSTER && r->client_id == 0 && !foreign_quorum(c)) {
        if (node == c->target) {
            c->target = (c->target + 1) % n;
            cft_ask(c);
        }
        return;
    }
    if (sy_client_retryable(r->status)) {
        /* a node we gave up on may still answer; its redirects are stale */
        if (node != c->target)
            return;
        if (r->status == SY_ENOTLEADER && r->leader < n && r->leader != c->target) {
            c->target = r->leader;
            c->resend_at = now_ms();
        } else {
            /* no useful hint (election under way) or busy: pause, then ask
             * the next node so one stuck node cannot hold us */
            if (r->status == SY_ENOTLEADER)
                c->target = (c->target + 1) % n;
            c->resend_at = now_ms() + SY_CLIENT_BACKOFF_MS;
        }
        arm(c->l, c->resend_at);
        return;
    }
    c->leader = node;
    finish(c, verdict(r->status));
}

static void bft_reply(bl_client *c, uint32_t node, const sy_client_reply *r)
{
    uint32_t n = c->l->cfg->n;
    if (sy_client_retryable(r->status))
        return;   /* not an answer; asked again at the next round */
    sy_client_reply_digest(r, &c->got[node]);
    c->have[node] = true;
    c->hint[node] = r->leader;
    uint32_t match = 0;
    for (uint32_t i = 0; i < n; i++)
        if (c->have[i] && sy_digest_eq(&c->got[i], &c->got[node]))
            match++;
    if (match >= c->need) {
        bool widened = false;
        for (uint32_t i = 0; i < n; i++)
            widened |= c->asked[i] && !c->first[i];
        sy_bft_learn(&c->bft, c->need, c->have, c->first, c->got, c->hint, node, widened,
                     c->start, now_ms());
        finish(c, verdict(r->status));
        return;
    }
    /* no group of matching replies can reach need any more */
    bool up[SY_MAX_NODES];
    for (uint32_t i = 0; i < n; i++)
        up[i] = conn_up(c, i);
    if (!sy_bft_can_reach(&c->bft, c->need, c->have, c->got, up)) {
        if (c->fast_end)
            bft_ordered(c);
        else
            finish(c, SY_ETIMEOUT);
    }
}

static void on_frame(bl_conn *k, const uint8_t *body, size_t len)
{
    bl_client *c = k->owner;
    sy_env env;
    char id[SY_MAX_CLUSTER_ID + 1];
    if (!c->busy)
        return;
    int rc = sy_client_check_reply(&c->l->vopts, body, len, k->node, c->client_id, c->req_no,
                                   &env);
    /* A node of another cluster id refuses every request in a reply
     * enveloped for its own id, which the check above drops: taken as the
     * library takes it (net/client.c, check_reply), so that with the wrong
     * manifest each request fails at once, not at its deadline (--timeout
     * times --requests over --clients). */
    if (rc == SY_ECLUSTER &&
        sy_client_check_foreign_refusal(&c->l->vopts, body, len, k->node, id, &env) == SY_OK)
        c->foreign |= 1ull << k->node;
    else if (rc == SY_OK)
        c->foreign &= ~(1ull << k->node);   /* it speaks our cluster id now */
    else
        return;
    k->req_no = 0;   /* it answered: no longer working on the request */
    if (c->l->cfg->protocol == SY_PROTO_PBFT)
        bft_reply(c, k->node, &env.msg.u.reply);
    else
        cft_reply(c, k->node, &env.msg.u.reply);
    sy_env_free(&env);
}

/* Handles every whole message in k's buffer. false: k went down. */
static bool conn_parse(bl_conn *k)
{
    bench_loop *l = k->owner->l;
    size_t off = 0;
    if (!k->up) {
        if (k->rlen < 8)
            return true;
        const uint8_t *h = k->rb;
        if (h[0] != 0 || h[1] != 'S' || h[2] != 'P' || h[3] != 0 ||
            ((unsigned)h[4] << 8 | h[5]) != BL_PROTO_REP) {
            conn_down(k);   /* not a synod client endpoint */
            return false;
        }
        k->up = true;
        k->backoff_ms = BL_RECONN_MIN_MS;
        __atomic_fetch_add(&l->connected, 1, __ATOMIC_RELAXED);
        off = 8;
        conn_flush(k);   /* what queued behind our header */
        if (k->fd < 0)
            return false;
    }
    while (k->rlen - off >= 8) {
        uint64_t len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | k->rb[off + i];
        if (len > (uint64_t)SY_MAX_ENVELOPE + 64u) {
            conn_down(k);
            return false;
        }
        if (k->rlen - off - 8 < len)
            break;
        const uint8_t *p = k->rb + off + 8;
        size_t h = 0;
        /* the backtrace: 32-bit words up to the one with its top bit set */
        while (h + 4 <= len && !(p[h] & 0x80))
            h += 4;
        if (h + 4 <= len)
            on_frame(k, p + h + 4, (size_t)len - h - 4);
        if (k->fd < 0)
            return false;   /* a send in on_frame broke this connection */
        off += 8 + (size_t)len;
    }
    memmove(k->rb, k->rb + off, k->rlen - off);
    k->rlen -= off;
    return true;
}

/* Reads what k has and handles every whole message in it. Each read is
 * handled before the next, and one readiness event gets BL_READS_MAX reads
 * at most (epoll is level-triggered: the rest is reported again): a node
 * sending faster than we read -- a flood of junk frames, say -- would
 * otherwise grow rb without bound (hundreds of MB in seconds on loopback)
 * and hold the loop, every other client's timers with it. rb stays within
 * one message and one read. */
static void conn_read(bl_conn *k)
{
    bench_loop *l = k->owner->l;
    for (int n = 0; n < BL_READS_MAX; n++) {
        ssize_t r = recv(k->fd, l->tmp, 65536, 0);
        if (r == 0) {
            conn_down(k);
            return;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_down(k);
            return;
        }
        if (!grow(&k->rb, &k->rcap, k->rlen + (size_t)r)) {
            conn_down(k);
            return;
        }
        memcpy(k->rb + k->rlen, l->tmp, (size_t)r);
        k->rlen += (size_t)r;
        if (!conn_parse(k) || r < 65536)
            return;
    }
}

/* One epoll event for k (a connection closed earlier in the same batch
 * has fd -1 and is skipped: connections reopen only in timers). */
static void conn_event(bl_conn *k, uint32_t events)
{
    if (k->fd < 0)
        return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_read(k);
    /* connected: our header, and what queued behind it */
    if (k->fd >= 0 && (events & EPOLLOUT)) {
        /* a node that accepts but never sends its header -- stopped
         * (SIGSTOP), wedged, or a host gone between the two -- is given
         * up like a connect that hangs, and dialled again; without this
         * the connection would wait for TCP's own timeout (minutes) */
        if (!k->tcp_up && !k->up) {
            k->connect_end = now_ms() + BL_CONNECT_MS;
            arm(k->owner->l, k->connect_end);
        }
        k->tcp_up = true;
        conn_flush(k);
    }
}

/* ------------------------------------------------------------------ timers */

static void client_timers(bl_client *c, uint64_t now)
{
    bench_loop *l = c->l;
    uint32_t n = l->cfg->n;
    if (now >= c->deadline) {
        finish(c, SY_ETIMEOUT);
        return;
    }
    arm(l, c->deadline);
    if (l->cfg->protocol == SY_PROTO_PBFT) {
        if (c->fast_end && now >= c->fast_end) {
            bft_ordered(c);
            return;
        }
        if (c->fast_end)
            arm(l, c->fast_end);
        if (now >= c->attempt_end) {
            /* retransmit to every replica that has not answered; those
             * asked a full attempt ago that stayed silent are suspect */
            for (uint32_t i = 0; i < n; i++) {
                if (c->have[i])
                    continue;
                if (c->asked[i] && !c->narrow)
                    c->bft.suspect_until[i] = now + SY_BFT_SUSPECT_MS;
                c->asked[i] = true;
                ask(c, i);
            }
            c->attempt_end = now + c->att;
            c->att = sy_client_attempt_next(SY_CLIENT_ATTEMPT_MS_DEFAULT, c->att);
            c->narrow = false;
        }
        arm(l, c->attempt_end);
        return;
    }
    if (c->resend_at) {
        if (now >= c->resend_at) {
            c->resend_at = 0;
            cft_ask(c);
        } else {
            arm(l, c->resend_at);
        }
        return;
    }
    if (now >= c->attempt_end) {
        /* silent node: the next one, same request number; the silent
         * one's answer still counts if it comes */
        c->target = (c->target + 1) % n;
        c->att = sy_client_attempt_next(SY_CLIENT_ATTEMPT_MS_DEFAULT, c->att);
        cft_ask(c);
        return;
    }
    arm(l, c->attempt_end);
}

static void timers(bench_loop *l)
{
    uint64_t now = now_ms();
    l->next_due = UINT64_MAX;
    for (uint32_t i = 0; i < l->o.clients; i++) {
        bl_client *c = &l->cs[i];
        for (uint32_t j = 0; j < l->cfg->n; j++) {
            bl_conn *k = &c->conns[j];
            if (k->fd >= 0 && !k->up) {
                if (now >= k->connect_end)
                    conn_down(k);   /* the next address, after the backoff */
                else
                    arm(l, k->connect_end);
            } else if (k->fd < 0) {
                if (now >= k->reconnect_at)
                    conn_open(k);
                else
                    arm(l, k->reconnect_at);
            }
        }
        if (c->busy)
            client_timers(c, now);
    }
}

static bool any_busy(const bench_loop *l)
{
    for (uint32_t i = 0; i < l->o.clients; i++)
        if (l->cs[i].busy)
            return true;
    return false;
}

/* Whether every client holds connections to n - f nodes, as many as the
 * cluster needs to answer. */
static bool enough_up(const bench_loop *l)
{
    uint32_t n = l->cfg->n, need = n - l->cfg->f;
    for (uint32_t i = 0; i < l->o.clients; i++) {
        uint32_t up = 0;
        for (uint32_t j = 0; j < n; j++)
            up += l->cs[i].conns[j].up;
        if (up < need)
            return false;
    }
    return true;
}

static void *loop_main(void *arg)
{
    bench_loop *l = arg;
    struct epoll_event evs[256];
    timers(l);   /* opens every connection */
    /* Connecting takes a moment: up to a second for the connections to
     * come up before the first request, as the library's clients are
     * dialing from when they are opened -- but only as many as the
     * cluster needs (enough_up): waiting for every one, a bench with a
     * node down or paused (its kernel accepts, it never sends its header)
     * spent a whole second idle in its measured time, a quarter of the
     * ops/s of a 300-request run. A node that is down then gets the
     * library's grace (SY_CLIENT_DOWN_GRACE_MS) in each attempt. */
    uint64_t wait_end = now_ms() + 1000;
    while (!__atomic_load_n(&l->stop, __ATOMIC_RELAXED) && now_ms() < wait_end &&
           !enough_up(l)) {
        int ne = epoll_wait(l->epfd, evs, 256, 10);
        for (int e = 0; e < ne; e++)
            conn_event(evs[e].data.ptr, evs[e].events);
        if (now_ms() >= l->next_due)
            timers(l);
    }
    l->run_start_us = now_us();
    l->end_us = l->run_start_us + (uint64_t)(l->o.duration_s * 1e6);
    for (uint32_t i = 0; i < l->o.clients; i++)
        client_next(&l->cs[i]);
    while (!__atomic_load_n(&l->stop, __ATOMIC_RELAXED) && any_busy(l)) {
        uint64_t now = now_ms();
        int wait = 0;
        if (l->next_due > now)
            wait = (int)min_u64(l->next_due - now, BL_IDLE_WAIT_MS);
        int ne = epoll_wait(l->epfd, evs, 256, wait);
        for (int e = 0; e < ne; e++) {
            conn_event(evs[e].data.ptr, evs[e].events);
        }
        if (now_ms() >= l->next_due)
            timers(l);
    }
    l->run_end_us = now_us();
    __atomic_store_n(&l->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* ------------------------------------------------------------------- API */

/* host and port of tcp://host:port or tcp://[v6]:port */
static bool split_tcp(const char *addr, char *host, size_t hl, char *port, size_t pl)
{
    if (strncmp(addr, "tcp://", 6) != 0)
        return false;
    const char *h = addr + 6, *colon;
    size_t len;
    if (*h == '[') {
        const char *e = strchr(h, ']');
        if (!e || e[1] != ':')
            return false;
        h++;
        len = (size_t)(e - h);
        colon = e + 1;
    } else {
        colon = strrchr(h, ':');
        if (!colon)
            return false;
        len = (size_t)(colon - h);
    }
    if (len >= hl || strlen(colon + 1) >= pl || !colon[1])
        return false;
    memcpy(host, h, len);
    host[len] = 0;
    snprintf(port, pl, "%s", colon + 1);
    return true;
}

bool bench_loop_usable(const sy_cluster_cfg *cfg)
{
    char h[SY_MAX_ADDR], p[16];
    for (uint32_t i = 0; i < cfg->n; i++)
        if (!split_tcp(cfg->nodes[i].client, h, sizeof h, p, sizeof p))
            return false;
    return true;
}

static void loop_free(bench_loop *l)
{
    if (l->cs) {
        for (uint32_t i = 0; i < l->o.clients; i++) {
            bl_client *c = &l->cs[i];
            for (uint32_t j = 0; c->conns && j < l->cfg->n; j++) {
                if (c->conns[j].fd >= 0)
                    close(c->conns[j].fd);
                free(c->conns[j].rb);
                free(c->conns[j].wb);
            }
            free(c->conns);
            sy_buf_free(&c->frame);
        }
        free(l->cs);
    }
    if (l->epfd >= 0)
        close(l->epfd);
    free(l->addrs);
    free(l->val);
    free(l->tmp);
    free(l->lat);
    free(l);
}

int bench_loop_start(const sy_cluster_cfg *cfg, sy_seckey *const *keys,
                     const bench_loop_opts *o, bench_loop **out, char *why, size_t whylen)
{
    bench_loop *l = calloc(1, sizeof *l);
    int rc = SY_ENOMEM;
    *out = NULL;
    if (!l)
        return sy_whyf(why, whylen, SY_ENOMEM, "bench: out of memory");
    l->cfg = cfg;
    l->o = *o;
    if (!l->o.keys)
        l->o.keys = 1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->addrs = calloc(cfg->n, sizeof *l->addrs);
    l->cs = calloc(o->clients, sizeof *l->cs);
    l->val = malloc(o->value_size ? o->value_size : 1);
    l->tmp = malloc(65536);
    if (l->epfd < 0 || !l->addrs || !l->cs || !l->val || !l->tmp) {
        sy_whyf(why, whylen, SY_ENOMEM, "bench: out of memory");
        goto fail;
    }
    sy_cluster_directory(cfg, &l->dir);
    sy_verifier_ed25519(&l->ver);
    l->vopts.cluster_id = cfg->id;
    l->vopts.dir = &l->dir;
    l->vopts.verifier = &l->ver;
    l->vopts.batch_ok = true;
    uint64_t vr = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < o->value_size; i++)
        l->val[i] = (uint8_t)('a' + bench_xorshift(&vr) % 26);
    for (uint32_t i = 0; i < cfg->n; i++) {
        char host[SY_MAX_ADDR], port[16];
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
        if (!split_tcp(cfg->nodes[i].client, host, sizeof host, port, sizeof port) ||
            getaddrinfo(host, port, &hints, &ai) != 0 || !ai) {
            sy_whyf(why, whylen, SY_EIO, "bench: cannot resolve node %u client address %s", i,
                    cfg->nodes[i].client);
            rc = SY_EIO;
            goto fail;
        }
        for (struct addrinfo *p = ai; p && l->addrs[i].count < BL_MAX_ADDRS; p = p->ai_next) {
            if (p->ai_addrlen > sizeof l->addrs[i].sa[0])
                continue;
            memcpy(&l->addrs[i].sa[l->addrs[i].count], p->ai_addr, p->ai_addrlen);
            l->addrs[i].len[l->addrs[i].count++] = p->ai_addrlen;
        }
        freeaddrinfo(ai);
        if (!l->addrs[i].count) {
            sy_whyf(why, whylen, SY_EIO, "bench: cannot resolve node %u client address %s",
                    i, cfg->nodes[i].client);
            rc = SY_EIO;
            goto fail;
        }
    }
    for (uint32_t i = 0; i < o->clients; i++) {
        bl_client *c = &l->cs[i];
        sy_pubkey pk;
        c->l = l;
        sy_buf_init(&c->frame);
        sy_seckey_public(keys[i], &pk);
        if (sy_cluster_client_by_key(cfg, &pk, &c->client_id) != SY_OK) {
            sy_whyf(why, whylen, SY_EUNAUTH, "bench: client key %u is not in %s", i, cfg->path);
            rc = SY_EUNAUTH;
            goto fail;
        }
        sy_signer_ed25519(&c->signer, keys[i]);
        c->last_req = sy_client_next_req_no(0);
        c->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(i + 1) * 0xbf58476d1ce4e5b9ull);
        c->leader = SY_NO_NODE;
        c->bft.n = cfg->n;
        c->bft.f = cfg->f;
        c->bft.client_id = c->client_id;
        c->bft.primary = SY_NO_NODE;
        c->conns = calloc(cfg->n, sizeof *c->conns);
        if (!c->conns) {
            sy_whyf(why, whylen, SY_ENOMEM, "bench: out of memory");
            goto fail;
        }
        /* every fd -1 before anything can fail: loop_free closes those >= 0
         * (calloc's 0 would be stdin) */
        for (uint32_t j = 0; j < cfg->n; j++)
            c->conns[j].fd = -1;
        for (uint32_t j = 0; j < cfg->n; j++) {
            bl_conn *k = &c->conns[j];
            k->owner = c;
            k->node = j;
            k->backoff_ms = BL_RECONN_MIN_MS;
            if (!grow(&k->wb, &k->wcap, 4096)) {
                sy_whyf(why, whylen, SY_ENOMEM, "bench: out of memory");
                goto fail;
            }
        }
    }
    if (pthread_create(&l->thr, NULL, loop_main, l) != 0) {
        sy_whyf(why, whylen, SY_ENOMEM, "bench: cannot start its thread");
        goto fail;
    }
    *out = l;
    return SY_OK;
fail:
    loop_free(l);
    return rc;
}

void bench_loop_progress(const bench_loop *l, uint64_t *done, uint64_t *errors,
                         uint32_t *connected)
{
    *done = __atomic_load_n(&l->done, __ATOMIC_RELAXED);
    *errors = __atomic_load_n(&l->errors, __ATOMIC_RELAXED);
    *connected = __atomic_load_n(&l->connected, __ATOMIC_RELAXED);
}

bool bench_loop_finished(const bench_loop *l)
{
    return __atomic_load_n(&l->finished, __ATOMIC_ACQUIRE) != 0;
}

void bench_loop_stop(bench_loop *l)
{
    __atomic_store_n(&l->stop, 1, __ATOMIC_RELAXED);
}

void bench_loop_end(bench_loop *l, uint64_t **lat_us, size_t *n_lat, int *last_err,
                    double *secs)
{
    pthread_join(l->thr, NULL);
    *secs = (double)(l->run_end_us - l->run_start_us) / 1e6;
    *lat_us = l->lat;
    *n_lat = l->n_lat;
    *last_err = l->last_err;
    l->lat = NULL;
    loop_free(l);
}
