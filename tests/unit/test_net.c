/* Transport tests: two replicas' transports in one process on loopback.
 * Waits are bounded by generous deadlines only to fail instead of hang;
 * nothing asserts on how long anything took. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/supplemental/util/platform.h>
#include "net/transport.h"
#include "tests/unit/run_cases.h"
#include "core/envelope.h"
#include "crypto/sy_err.h"

#define CLUSTER "net-test"
#define WAIT_MS 10000

typedef struct ids {
    sy_seckey *sk[3];     /* nodes 0,1 and client SY_CLIENT_ID_BASE */
    sy_pubkey pk[3];
    sy_signer signer[3];
    sy_verifier ver;
    sy_directory dir;
    sy_env_opts opts;
} ids;

static const sy_pubkey *key_of(void *ctx, uint32_t sender)
{
    ids *k = ctx;
    if (sender < 2)
        return &k->pk[sender];
    if (sender == SY_CLIENT_ID_BASE)
        return &k->pk[2];
    return NULL;
}

static void ids_init(ids *k)
{
    assert_int_equal(sy_crypto_init(), SY_OK);
    for (int i = 0; i < 3; i++) {
        uint8_t seed[SY_SEED_LEN];
        memset(seed, 0x40 + i, sizeof seed);
        assert_int_equal(sy_seckey_from_seed(seed, &k->sk[i]), SY_OK);
        sy_seckey_public(k->sk[i], &k->pk[i]);
        sy_signer_ed25519(&k->signer[i], k->sk[i]);
    }
    sy_verifier_ed25519(&k->ver);
    k->dir.key_of = key_of;
    k->dir.ctx = k;
    memset(&k->opts, 0, sizeof k->opts);
    k->opts.cluster_id = CLUSTER;
    k->opts.dir = &k->dir;
    k->opts.verifier = &k->ver;
}

static void ids_free(ids *k)
{
    for (int i = 0; i < 3; i++)
        sy_seckey_free(k->sk[i]);
}

/* Each test gets its own ports so a listener from the previous test can
 * never be the one answering. */
static int port_base(int test_no)
{
    /* below the ephemeral range (32768+), above the integration tests' 10000..19000 */
    return 20000 + (int)(getpid() % 250) * 50 + test_no * 5;
}

typedef struct pair {
    char addr[2][64];
    const char *addrs[2];
    char client[64], metrics[64];
    sy_net *net[2];
} pair;

static void addrs_init(pair *p, int test_no)
{
    int b = port_base(test_no);
    for (int i = 0; i < 2; i++) {
        snprintf(p->addr[i], sizeof p->addr[i], "tcp://127.0.0.1:%d", b + i);
        p->addrs[i] = p->addr[i];
    }
    snprintf(p->client, sizeof p->client, "tcp://127.0.0.1:%d", b + 2);
    snprintf(p->metrics, sizeof p->metrics, "http://127.0.0.1:%d", b + 3);
}

static void cfg_init(sy_net_cfg *c, pair *p, uint32_t self)
{
    memset(c, 0, sizeof *c);
    c->self = self;
    c->n = 2;
    c->peer_addrs = p->addrs;
    c->cluster_id = CLUSTER;
    c->workers = 2;
}

static void sign_ping(ids *k, uint32_t sender, uint64_t nonce, sy_buf *out)
{
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PING;
    m.u.ping.nonce = nonce;
    m.u.ping.time_ms = 7;
    assert_int_equal(sy_env_encode(CLUSTER, sender, &m, &k->signer[sender], out), SY_OK);
}

/* A client's signed GET of "k" numbered req_no, appended to out. */
static void sign_get(ids *k, uint64_t req_no, sy_buf *out)
{
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_CLIENT_REQ;
    m.u.req.client_id = SY_CLIENT_ID_BASE;
    m.u.req.req_no = req_no;
    m.u.req.op = SY_OP_GET;
    m.u.req.key.p = (const uint8_t *)"k";
    m.u.req.key.len = 1;
    assert_int_equal(sy_env_encode(CLUSTER, SY_CLIENT_ID_BASE, &m, &k->signer[2], out), SY_OK);
}

/* Waits for the next non-wake event. */
static int next_event(sy_net *net, sy_net_event *ev)
{
    for (;;) {
        int rc = sy_net_wait(net, WAIT_MS, ev);
        if (rc != SY_OK || ev->kind != SY_NET_EV_WAKE)
            return rc;
    }
}

static void test_peers_exchange_raw_frames(void **state)
{
    pair p;
    sy_net_cfg c;
    char why[256] = "";
    sy_net_event ev;
    addrs_init(&p, 0);
    for (uint32_t i = 0; i < 2; i++) {
        cfg_init(&c, &p, i);
        assert_int_equal(sy_net_open(&c, &p.net[i], why, sizeof why), SY_OK);
    }
    assert_int_equal(sy_net_send(p.net[0], 1, (const uint8_t *)"hello one", 9), SY_OK);
    assert_int_equal(sy_net_send(p.net[1], 0, (const uint8_t *)"hello zero", 10), SY_OK);

    assert_int_equal(next_event(p.net[1], &ev), SY_OK);
    assert_int_equal(ev.kind, SY_NET_EV_PEER);
    assert_int_equal(ev.len, 9);
    assert_memory_equal(ev.data, "hello one", 9);
    assert_false(ev.decoded);
    sy_net_event_free(&ev);

    assert_int_equal(next_event(p.net[0], &ev), SY_OK);
    assert_int_equal(ev.len, 10);
    assert_memory_equal(ev.data, "hello zero", 10);
    sy_net_event_free(&ev);

    /* nothing else arrives */
    assert_int_equal(sy_net_wait(p.net[0], 0, &ev), SY_ETIMEOUT);
    assert_int_equal(sy_net_send(p.net[0], 2, (const uint8_t *)"x", 1), SY_EINVAL);
    sy_net_close(p.net[0]);
    sy_net_close(p.net[1]);
}

static void test_inbound_frames_arrive_verified_or_rejected(void **state)
{
    ids k;
    pair p;
    sy_net_cfg c;
    char why[256] = "";
    sy_net_event ev;
    sy_buf good, forged;

    ids_init(&k);
    addrs_init(&p, 1);
    for (uint32_t i = 0; i < 2; i++) {
        cfg_init(&c, &p, i);
        c.verify = &k.opts;
        assert_int_equal(sy_net_open(&c, &p.net[i], why, sizeof why), SY_OK);
    }
    sy_buf_init(&good);
    sy_buf_init(&forged);
    sign_ping(&k, 0, 41, &good);
    /* node 1 signs a ping and node 0 claims it: the sender field differs
     * from the signer, which only the signature check can notice */
    sign_ping(&k, 1, 42, &forged);
    sy_buf bad;
    sy_buf_init(&bad);
    {
        sy_msg m;
        memset(&m, 0, sizeof m);
        m.type = SY_MSG_PING;
        m.u.ping.nonce = 43;
        assert_int_equal(sy_env_encode(CLUSTER, 0, &m, &k.signer[1], &bad), SY_OK);
    }

    assert_int_equal(sy_net_send(p.net[0], 1, good.p, good.len), SY_OK);
    assert_int_equal(next_event(p.net[1], &ev), SY_OK);
    assert_true(ev.decoded);
    assert_int_equal(ev.rc, SY_OK);
    assert_int_equal(ev.env.sender, 0);
    assert_int_equal(ev.env.msg.type, SY_MSG_PING);
    assert_int_equal(ev.env.msg.u.ping.nonce, 41);
    sy_net_event_free(&ev);

    assert_int_equal(sy_net_send(p.net[0], 1, bad.p, bad.len), SY_OK);
    assert_int_equal(next_event(p.net[1], &ev), SY_OK);
    assert_true(ev.decoded);
    assert_int_equal(ev.rc, SY_ESIG);
    assert_int_equal(ev.len, bad.len);
    sy_net_event_free(&ev);

    /* garbage reaches the receiver as raw bytes; decode rejects it */
    static const uint8_t junk[] = { 0xc1, 0xff, 0x00, 0x13, 0x37 };
    assert_int_equal(sy_net_send(p.net[0], 1, junk, sizeof junk), SY_OK);
    assert_int_equal(next_event(p.net[1], &ev), SY_OK);
    assert_int_equal(ev.kind, SY_NET_EV_PEER);
    assert_int_equal(ev.len, sizeof junk);
    assert_memory_equal(ev.data, junk, sizeof junk);
    assert_true(ev.decoded);
    assert_int_not_equal(ev.rc, SY_OK);
    assert_non_null(ev.why);
    sy_net_event_free(&ev);

    /* the same good bytes again skip the signature check but still decode */
    assert_int_equal(sy_net_send(p.net[0], 1, good.p, good.len), SY_OK);
    assert_int_equal(next_event(p.net[1], &ev), SY_OK);
    assert_int_equal(ev.rc, SY_OK);
    assert_int_equal(ev.env.msg.u.ping.nonce, 41);
    sy_net_event_free(&ev);
    sy_net_stats st;
    sy_net_get_stats(p.net[1], &st);
    assert_int_equal(st.verify_cached, 1);
    assert_int_equal(st.verify_ok, 1);
    assert_int_equal(st.verify_fail, 2);

    sy_buf_free(&good);
    sy_buf_free(&forged);
    sy_buf_free(&bad);
    sy_net_close(p.net[0]);
    sy_net_close(p.net[1]);
    ids_free(&k);
}

/* Prometheus's text format, line by line: a scrape with one broken line
 * (a family cut off mid-label, say) is refused whole. */
static void assert_prometheus_text(const char *t)
{
    regex_t sample, comment;
    assert_int_equal(regcomp(&sample, "^[a-z_:][a-z0-9_:]*(\\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\\})? "
                                      "[-+0-9.eE]+$", REG_EXTENDED | REG_NOSUB), 0);
    assert_int_equal(regcomp(&comment, "^# (HELP|TYPE) [a-z_:][a-z0-9_:]* .+$",
                             REG_EXTENDED | REG_NOSUB), 0);
    size_t len = strlen(t);
    assert_true(len > 0);
    assert_int_equal(t[len - 1], '\n');
    for (const char *p = t; *p;) {
        const char *nl = strchr(p, '\n');
        char line[1024];
        size_t n = (size_t)(nl - p);
        assert_true(n < sizeof line);
        memcpy(line, p, n);
        line[n] = 0;
        if (regexec(line[0] == '#' ? &comment : &sample, line, 0, NULL, 0) != 0)
            fail_msg("not a Prometheus text line: '%s'", line);
        p = nl + 1;
    }
    regfree(&sample);
    regfree(&comment);
}

static void test_full_queue_drops_instead_of_blocking(void **state)
{
    pair p;
    sy_net_cfg c;
    char why[256] = "";
    sy_net_event ev;
    sy_net_stats st;
    const int sent = 50;
    addrs_init(&p, 2);
    for (uint32_t i = 0; i < 2; i++) {
        cfg_init(&c, &p, i);
        c.queue_max = 4;
        c.workers = 0;
        assert_int_equal(sy_net_open(&c, &p.net[i], why, sizeof why), SY_OK);
    }
    for (int i = 0; i < sent; i++) {
        uint8_t b[4] = { (uint8_t)i, 1, 2, 3 };
        assert_int_equal(sy_net_send(p.net[0], 1, b, sizeof b), SY_OK);
    }
    /* the receiver does not drain; every frame still gets accounted for */
    for (int tries = 0; tries < WAIT_MS / 10; tries++) {
        sy_net_get_stats(p.net[1], &st);
        if (st.peer_rx == (uint64_t)sent)
            break;
        usleep(10000);
    }
    sy_net_get_stats(p.net[1], &st);
    assert_int_equal(st.peer_rx, sent);
    assert_int_equal(st.queue_drop, sent - 4);
    int got = 0;
    while (sy_net_wait(p.net[1], 0, &ev) == SY_OK) {
        if (ev.kind == SY_NET_EV_PEER) {
            assert_int_equal(ev.data[0], got); /* the oldest frames are kept, in order */
            got++;
        }
        sy_net_event_free(&ev);
    }
    assert_int_equal(got, 4);

    sy_buf b;
    sy_buf_init(&b);
    sy_net_metrics_text(p.net[1], &b);
    assert_int_equal(sy_buf_append(&b, "", 1), SY_OK);
    assert_non_null(strstr((char *)b.p, "synod_net_queue_dropped_total 46\n"));
    /* every family whole, the last one too */
    assert_non_null(strstr((char *)b.p, "synod_net_verify_total{result=\"rejected\"} "));
    assert_prometheus_text((char *)b.p);
    sy_buf_free(&b);
    sy_net_close(p.net[0]);
    sy_net_close(p.net[1]);
}

/* A send to a peer that is not there fills that peer's bounded buffer,
 * then drops; the call never blocks. */
static void test_send_to_dead_peer_drops_when_buffer_full(void **state)
{
    pair p;
    sy_net_cfg c;
    char why[256] = "";
    sy_net_stats st;
    addrs_init(&p, 3);
    cfg_init(&c, &p, 0);
    c.peer_sendbuf = 8;
    assert_int_equal(sy_net_open(&c, &p.net[0], why, sizeof why), SY_OK);
    int full = 0;
    for (int i = 0; i < 100; i++)
        if (sy_net_send(p.net[0], 1, (const uint8_t *)"x", 1) == SY_EFULL)
            full++;
    assert_true(full >= 100 - 8 - 1);
    sy_net_get_stats(p.net[0], &st);
    assert_int_equal(st.peer_tx_drop[1], (uint64_t)full);
    assert_int_equal(st.peers_connected, 0);
    assert_false(st.peer_up[1]);
    sy_net_close(p.net[0]);
}

static void test_wake_interrupts_wait(void **state)
{
    pair p;
    sy_net_cfg c;
    char why[256] = "";
    sy_net_event ev;
    addrs_init(&p, 4);
    cfg_init(&c, &p, 0);
    c.n = 1;
    assert_int_equal(sy_net_open(&c, &p.net[0], why, sizeof why), SY_OK);
    sy_net_wake(p.net[0]);
    assert_int_equal(sy_net_wait(p.net[0], -1, &ev), SY_OK);
    assert_int_equal(ev.kind, SY_NET_EV_WAKE);
    assert_int_equal(sy_net_wait(p.net[0], 0, &ev), SY_ETIMEOUT);
    /* sending to self loops back */
    assert_int_equal(sy_net_send(p.net[0], 0, (const uint8_t *)"me", 2), SY_OK);
    assert_int_equal(next_event(p.net[0], &ev), SY_OK);
    assert_int_equal(ev.kind, SY_NET_EV_PEER);
    assert_memory_equal(ev.data, "me", 2);
    sy_net_event_free(&ev);
    sy_net_close(p.net[0]);
}

/* ---------------------------------------------------------- HTTP metrics */

static int metrics_cb(void *ctx, sy_buf *out)
{
    const char *t = "synod_test_metric{node=\"0\"} 1234\n";
    (void)ctx;
    return sy_buf_append(out, t, strlen(t));
}

static bool health_cb(void *ctx, char *why, size_t whylen)
{
    bool *healthy = ctx;
    if (!*healthy)
        snprintf(why, whylen, "no leader for 5s");
    return *healthy;
}

/* Plain TCP GET: the response as text (caller frees). */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = calloc(1, cap + 1);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = 0;
    return buf;
}

static void test_http_serves_metrics_and_health(void **state)
{
    pair p;
    sy_net_cfg c;
    char why[256] = "";
    bool healthy = true;
    addrs_init(&p, 5);
    cfg_init(&c, &p, 0);
    c.metrics_addr = p.metrics;
    c.metrics = metrics_cb;
    c.health = health_cb;
    c.cb_ctx = &healthy;
    assert_int_equal(sy_net_open(&c, &p.net[0], why, sizeof why), SY_OK);
    int port = port_base(5) + 3;

    char *r = http_get(port, "/metrics");
    assert_non_null(r);
    assert_non_null(strstr(r, "200"));
    assert_non_null(strstr(r, "synod_test_metric{node=\"0\"} 1234\n"));
    assert_non_null(strstr(r, "synod_net_peers_connected"));
    free(r);

    r = http_get(port, "/health");
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "\r\n\r\nok\n"));
    free(r);

    healthy = false;
    r = http_get(port, "/health");
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 503"));
    assert_non_null(strstr(r, "no leader for 5s"));
    free(r);

    r = http_get(port, "/nope");
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 404"));
    free(r);
    sy_net_close(p.net[0]);
}

/* ------------------------------------------------------- client endpoint */

static void test_client_request_answered_once_by_handle(void **state)
{
    ids k;
    pair p;
    sy_net_cfg c;
    char why[256] = "";
    sy_net_event ev;
    nng_socket req;
    sy_buf frame;
    ids_init(&k);
    addrs_init(&p, 6);
    cfg_init(&c, &p, 0);
    c.n = 1;
    c.client_addr = p.client;
    c.verify = &k.opts;
    c.signer = &k.signer[0];
    c.client_ctxs = 4;
    assert_int_equal(sy_net_open(&c, &p.net[0], why, sizeof why), SY_OK);

    assert_int_equal(nng_req0_open(&req), 0);
    assert_int_equal(nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, WAIT_MS), 0);
    assert_int_equal(nng_dial(req, p.client, NULL, NNG_FLAG_NONBLOCK), 0);

    /* a signed request arrives decoded, and the reply goes back */
    sy_buf_init(&frame);
    sign_get(&k, 9, &frame);
    assert_int_equal(nng_send(req, frame.p, frame.len, 0), 0);
    assert_int_equal(next_event(p.net[0], &ev), SY_OK);
    assert_int_equal(ev.kind, SY_NET_EV_CLIENT);
    assert_int_equal(ev.rc, SY_OK);
    assert_int_equal(ev.env.msg.u.req.req_no, 9);
    uint64_t h = ev.handle;
    sy_net_event_free(&ev);
    /* the metrics show the request held until it is answered */
    sy_buf mt;
    sy_buf_init(&mt);
    sy_net_metrics_text(p.net[0], &mt);
    sy_buf_append(&mt, "", 1);
    assert_non_null(strstr((const char *)mt.p, "synod_net_client_slots{state=\"held\"} 1\n"));
    assert_non_null(strstr((const char *)mt.p, "synod_net_client_slots{state=\"waiting\"} 3\n"));
    sy_buf_free(&mt);
    assert_int_equal(sy_net_reply(p.net[0], h, (const uint8_t *)"answer", 6), SY_OK);
    assert_int_equal(sy_net_reply(p.net[0], h, (const uint8_t *)"again", 5), SY_ENOTFOUND);
    char *rbuf = NULL;
    size_t rlen = 0;
    assert_int_equal(nng_recv(req, &rbuf, &rlen, NNG_FLAG_ALLOC), 0);
    assert_int_equal(rlen, 6);
    assert_memory_equal(rbuf, "answer", 6);
    nng_free(rbuf, rlen);

    /* garbage gets a signed error reply from the node */
    assert_int_equal(nng_send(req, "garbage", 7, 0), 0);
    assert_int_equal(next_event(p.net[0], &ev), SY_OK);
    assert_int_equal(ev.kind, SY_NET_EV_CLIENT);
    assert_int_not_equal(ev.rc, SY_OK);
    assert_int_equal(sy_net_reply_error(p.net[0], ev.handle, 0, 0, ev.rc, 0), SY_OK);
    int why_rc = ev.rc;
    sy_net_event_free(&ev);
    assert_int_equal(nng_recv(req, &rbuf, &rlen, NNG_FLAG_ALLOC), 0);
    sy_env env;
    assert_int_equal(sy_env_decode(&k.opts, (uint8_t *)rbuf, rlen, &env, NULL), SY_OK);
    assert_int_equal(env.sender, 0);
    assert_int_equal(env.msg.type, SY_MSG_CLIENT_REPLY);
    assert_int_equal(env.msg.u.reply.status, why_rc);
    assert_int_equal(env.msg.u.reply.req_no, 0);
    sy_env_free(&env);
    nng_free(rbuf, rlen);

    sy_buf_free(&frame);
    nng_close(req);
    sy_net_close(p.net[0]);
    ids_free(&k);
}

static void test_open_fails_clearly_on_busy_address(void **state)
{
    pair p;
    sy_net_cfg c;
    char why[256] = "";
    sy_net *second = NULL;
    addrs_init(&p, 7);
    cfg_init(&c, &p, 0);
    assert_int_equal(sy_net_open(&c, &p.net[0], why, sizeof why), SY_OK);
    assert_int_not_equal(sy_net_open(&c, &second, why, sizeof why), SY_OK);
    assert_null(second);
    assert_non_null(strstr(why, p.addr[0]));
    /* it names which of the node's addresses (peer, client, metrics) */
    assert_non_null(strstr(why, "cannot listen on the peer address"));
    sy_net_close(p.net[0]);
}

/* Clients that dial and quit again before the connection's negotiation is
 * over: a client process killed or giving up early, a port scan. NNG 1.5.2
 * (upstream issue #1518) stops such a listener from handing over any
 * connection again, on ipc:// as with TLS; the transport's watchdog must
 * notice and recreate it, so a client that comes later is answered and a
 * peer that connects later is heard. */
static void churn(const char *addr, bool req, int count, unsigned *seed)
{
    for (int i = 0; i < count; i++) {
        nng_socket s;
        assert_int_equal(req ? nng_req0_open(&s) : nng_push0_open(&s), 0);
        nng_dial(s, addr, NULL, NNG_FLAG_NONBLOCK);
        usleep((useconds_t)(rand_r(seed) % 500));
        nng_close(s);
    }
}

static void test_ipc_listeners_recover_from_clients_quitting_mid_negotiation(void **state)
{
    ids k;
    char peer_addr[96], client_addr[96], why[256] = "";
    const char *addrs[1] = { peer_addr };
    sy_net_cfg c;
    sy_net *net;
    sy_net_event ev;
    sy_net_stats st;
    unsigned seed = 7;
    (void)state;
    ids_init(&k);
    snprintf(peer_addr, sizeof peer_addr, "ipc:///tmp/synod-test-net-%d-peer", (int)getpid());
    snprintf(client_addr, sizeof client_addr, "ipc:///tmp/synod-test-net-%d-client", (int)getpid());
    memset(&c, 0, sizeof c);
    c.self = 0;
    c.n = 1;
    c.peer_addrs = addrs;
    c.cluster_id = CLUSTER;
    c.workers = 2;
    c.client_addr = client_addr;
    c.verify = &k.opts;
    c.signer = &k.signer[0];
    c.client_ctxs = 4;
    assert_int_equal(sy_net_open(&c, &net, why, sizeof why), SY_OK);

    /* Quitters until the watchdog has had to recreate both listeners (on an
     * NNG without the bug, until the rounds run out: then nothing was
     * broken and the checks below show it still serves). */
    bool buggy = strcmp(nng_version(), "1.5.2") == 0;
    /* up to 40 rounds: the fault needs a quitter to land mid-negotiation,
     * and on a loaded machine 20 rounds once missed the client listener
     * (the loop ends as soon as both were hit) */
    for (int round = 0; round < 40; round++) {
        sy_net_get_stats(net, &st);
        if (st.listener_restarts[0] && st.listener_restarts[1])
            break;
        churn(client_addr, true, 50, &seed);
        churn(peer_addr, false, 50, &seed);
        /* the watchdog runs inside sy_net_wait; a probe takes up to
         * SY_NET_LST_PROBE_MS + SY_NET_LST_ACCEPT_WAIT_MS */
        nng_time until = nng_clock() + 7000;
        while (nng_clock() < until) {
            if (sy_net_wait(net, 200, &ev) == SY_OK)
                sy_net_event_free(&ev);
        }
    }
    sy_net_get_stats(net, &st);
    print_message("NNG %s: listener restarts peer %llu client %llu\n", nng_version(),
                  (unsigned long long)st.listener_restarts[0],
                  (unsigned long long)st.listener_restarts[1]);
    if (buggy) {
        /* the fault was injected, and the watchdog saw it */
        assert_true(st.listener_restarts[0] >= 1);
        assert_true(st.listener_restarts[1] >= 1);
    }

    /* A client that comes now is answered and a peer that connects now is
     * heard. This thread keeps calling sy_net_wait throughout (the
     * watchdog runs there, as on a node's event loop), so nothing here
     * blocks in NNG. */
    nng_socket req, push;
    sy_buf frame, ping;
    assert_int_equal(nng_req0_open(&req), 0);
    assert_int_equal(nng_dial(req, client_addr, NULL, NNG_FLAG_NONBLOCK), 0);
    assert_int_equal(nng_push0_open(&push), 0);
    assert_int_equal(nng_dial(push, peer_addr, NULL, NNG_FLAG_NONBLOCK), 0);
    sy_buf_init(&frame);
    sy_buf_init(&ping);
    sign_get(&k, 11, &frame);
    sign_ping(&k, 1, 99, &ping);
    bool req_sent = false, ping_sent = false, asked = false, heard = false, answered = false;
    nng_time give_up = nng_clock() + 60000;
    while (!(answered && heard) && nng_clock() < give_up) {
        if (!req_sent)
            req_sent = nng_send(req, frame.p, frame.len, NNG_FLAG_NONBLOCK) == 0;
        if (!ping_sent)
            ping_sent = nng_send(push, ping.p, ping.len, NNG_FLAG_NONBLOCK) == 0;
        if (sy_net_wait(net, 100, &ev) == SY_OK) {
            if (ev.kind == SY_NET_EV_CLIENT && ev.rc == SY_OK && ev.env.msg.u.req.req_no == 11) {
                assert_int_equal(sy_net_reply(net, ev.handle, (const uint8_t *)"answer", 6), SY_OK);
                asked = true;
            }
            if (ev.kind == SY_NET_EV_PEER && ev.rc == SY_OK && ev.env.msg.type == SY_MSG_PING)
                heard = true;
            sy_net_event_free(&ev);
        }
        char *rbuf = NULL;
        size_t rlen = 0;
        if (asked && nng_recv(req, &rbuf, &rlen, NNG_FLAG_ALLOC | NNG_FLAG_NONBLOCK) == 0) {
            answered = rlen == 6 && memcmp(rbuf, "answer", 6) == 0;
            nng_free(rbuf, rlen);
        }
    }
    assert_true(answered);
    assert_true(heard);
    nng_close(req);
    nng_close(push);
    sy_buf_free(&ping);
    sy_buf_free(&frame);
    sy_net_close(net);
    ids_free(&k);
}

#ifdef SYNOD_TESTING
/* A close that NNG never finishes (the stall stands in for NNG 1.5.2's
 * hang in nng_close) does not hold the caller: sy_net_close gives up and
 * says so, and the close finishes on its own thread later: its addresses
 * come free, and ASan's leak check sees that it freed everything. */
static void test_close_gives_up_on_a_hung_nng_and_finishes_later(void **state)
{
    pair p;
    sy_net_cfg c;
    char why[256] = "";
    addrs_init(&p, 8);
    cfg_init(&c, &p, 0);
    c.client_addr = p.client;
    c.metrics_addr = p.metrics;
    c.test_close_stall_ms = SY_NET_CLOSE_MS + 2000;
    assert_int_equal(sy_net_open(&c, &p.net[0], why, sizeof why), SY_OK);
    nng_time t0 = nng_clock();
    assert_int_equal(sy_net_close(p.net[0]), SY_ETIMEOUT);
    /* while the abandoned close stalls, its client address is still taken */
    c.test_close_stall_ms = 0;
    assert_int_not_equal(sy_net_open(&c, &p.net[1], why, sizeof why), SY_OK);
    /* then it runs to its end: a new net opens on the same addresses */
    int rc = SY_EINVAL;
    while (nng_clock() < t0 + 60000 &&
           (rc = sy_net_open(&c, &p.net[1], why, sizeof why)) != SY_OK)
        nng_msleep(100);
    assert_int_equal(rc, SY_OK);
    assert_int_equal(sy_net_close(p.net[1]), SY_OK);
    nng_msleep(200);   /* the abandoned helper's last frees, after it let go */
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peers_exchange_raw_frames),
        cmocka_unit_test(test_inbound_frames_arrive_verified_or_rejected),
        cmocka_unit_test(test_full_queue_drops_instead_of_blocking),
        cmocka_unit_test(test_send_to_dead_peer_drops_when_buffer_full),
        cmocka_unit_test(test_wake_interrupts_wait),
        cmocka_unit_test(test_http_serves_metrics_and_health),
        cmocka_unit_test(test_client_request_answered_once_by_handle),
        cmocka_unit_test(test_open_fails_clearly_on_busy_address),
        cmocka_unit_test(test_ipc_listeners_recover_from_clients_quitting_mid_negotiation),
#ifdef SYNOD_TESTING
        cmocka_unit_test(test_close_gives_up_on_a_hung_nng_and_finishes_later),
#endif
    };
    return sy_run_cases("test_net", tests, sizeof tests / sizeof tests[0], argc, argv);
}
