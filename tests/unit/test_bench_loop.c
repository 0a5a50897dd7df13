/* synodctl bench's event loop (cmd/synodctl/bench_loop.c) against fake
 * nodes: NNG REP sockets in this process answering with signed replies
 * (honest, redirecting, forging, disagreeing), and a raw TCP server that
 * sends hostile bytes. What is asserted is what bench reports: requests
 * done and failed. Deadlines only bound the tests; nothing asserts on
 * time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include "cmd/synodctl/bench_loop.h"
#include "net/bounded.h"
#include "tests/unit/run_cases.h"
#include "core/config.h"
#include "core/envelope.h"
#include "core/engine.h"
#include "crypto/sy_err.h"

#define CLUSTER "bench-loop-test"
#define MAXN 4
#define NCLIENTS 3

enum mode { M_OK, M_NOTLEADER, M_FORGED, M_HOSTILE,
            M_MUTE /* accepts connections and never says a word, as a
                      SIGSTOPped node's kernel does */ };

typedef struct fake {
    uint32_t id;
    nng_socket sock;
    int raw_fd;             /* M_HOSTILE: a plain TCP listener */
    pthread_t thr;
    int mode;
    uint32_t hint;
    char value[32];
    int requests;
    struct world *w;
} fake;

typedef struct world {
    uint32_t n;
    sy_seckey *node_sk[MAXN], *client_sk[NCLIENTS], *stranger_sk;
    sy_signer node_signer[MAXN], stranger_signer;
    sy_cluster_cfg cfg;
    sy_directory dir;
    sy_env_opts opts;
    fake nodes[MAXN];
    pthread_mutex_t mu;
    int stop;
} world;

static sy_seckey *key_from(uint8_t b)
{
    uint8_t seed[SY_SEED_LEN];
    sy_seckey *sk;
    memset(seed, b, sizeof seed);
    assert_int_equal(sy_seckey_from_seed(seed, &sk), SY_OK);
    return sk;
}

static void reply(world *w, fake *f, const sy_client_req *q)
{
    sy_msg m;
    sy_buf b;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_CLIENT_REPLY;
    m.u.reply.client_id = q->client_id;
    m.u.reply.req_no = q->req_no;
    m.u.reply.leader = SY_NO_NODE;
    m.u.reply.index = 7;
    m.u.reply.val = (sy_bytes){ (const uint8_t *)f->value, (uint32_t)strlen(f->value) };
    const sy_signer *s = &w->node_signer[f->id];
    if (f->mode == M_NOTLEADER) {
        m.u.reply.status = SY_ENOTLEADER;
        m.u.reply.leader = f->hint;
        m.u.reply.val.len = 0;
    } else if (f->mode == M_FORGED) {
        s = &w->stranger_signer;
    }
    sy_buf_init(&b);
    assert_int_equal(sy_env_encode(CLUSTER, f->id, &m, s, &b), SY_OK);
    nng_send(f->sock, b.p, b.len, 0);
    sy_buf_free(&b);
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    world *w = f->w;
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        char *buf = NULL;
        size_t len = 0;
        if (nng_recv(f->sock, &buf, &len, NNG_FLAG_ALLOC) != 0)
            continue;
        sy_env env;
        if (sy_env_decode(&w->opts, (uint8_t *)buf, len, &env, NULL) == SY_OK) {
            if (env.type == SY_MSG_CLIENT_REQ) {
                pthread_mutex_lock(&w->mu);
                f->requests++;
                pthread_mutex_unlock(&w->mu);
                reply(w, f, &env.msg.u.req);
            }
            sy_env_free(&env);
        }
        nng_free(buf, len);
    }
    return NULL;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* A node that accepts connections and answers every one with bytes no
 * node sends, one kind per connection, then closes it: a valid REP header
 * followed by (0) a frame of random bytes, (1) a frame whose SP header
 * has no word with its top bit set, (2) a frame of 2^40 bytes announced
 * and 64 sent, (3) a truncated length; (4) a REQ header instead of REP;
 * (5) nothing but a reset. */
/* One connection to a raw fake's listener within 50 ms, counted in
 * f->requests (connections, for these fakes); -1 if none came. */
static int accept_counted(fake *f)
{
    struct pollfd pfd = { .fd = f->raw_fd, .events = POLLIN };
    if (poll(&pfd, 1, 50) <= 0)
        return -1;
    int c = accept(f->raw_fd, NULL, NULL);
    if (c < 0)
        return -1;
    pthread_mutex_lock(&f->w->mu);
    f->requests++;
    pthread_mutex_unlock(&f->w->mu);
    return c;
}

/* Accepts every connection, counts it, keeps it open and sends nothing. */
static void *mute_main(void *arg)
{
    fake *f = arg;
    world *w = f->w;
    int held[256];
    int n = 0;
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        int c = accept_counted(f);
        if (c < 0)
            continue;
        if (n < 256)
            held[n++] = c;
        else
            close(c);
    }
    while (n > 0)
        close(held[--n]);
    return NULL;
}

static void *hostile_main(void *arg)
{
    fake *f = arg;
    world *w = f->w;
    static const uint8_t rep_hdr[8] = { 0, 'S', 'P', 0, 0, 49, 0, 0 };
    static const uint8_t req_hdr[8] = { 0, 'S', 'P', 0, 0, 48, 0, 0 };
    uint64_t seed = 0x1234567;
    for (int kind = 0; !__atomic_load_n(&w->stop, __ATOMIC_RELAXED); kind = (kind + 1) % 6) {
        int c = accept_counted(f);
        if (c < 0)
            continue;
        uint8_t buf[256];
        size_t len = 0;
        memcpy(buf, kind == 4 ? req_hdr : rep_hdr, 8);
        len = 8;
        switch (kind) {
        case 0:
            put_be64(buf + len, 100);
            len += 8;
            buf[len] = 0x80;   /* an id, then garbage for an envelope */
            for (int i = 1; i < 100; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                buf[len + (size_t)i] = (uint8_t)(seed >> 56);
            }
            len += 100;
            break;
        case 1:
            put_be64(buf + len, 12);
            len += 8;
            memset(buf + len, 0x01, 12);
            len += 12;
            break;
        case 2:
            put_be64(buf + len, 1ull << 40);
            len += 8;
            memset(buf + len, 0x80, 64);
            len += 64;
            break;
        case 3:
            buf[len++] = 0;
            buf[len++] = 0;
            buf[len++] = 0;
            break;
        case 5:
            len = 0;
            break;
        default:
            break;
        }
        if (len)
            (void)!write(c, buf, len);
        if (kind == 5) {
            struct linger lg = { 1, 0 };   /* RST */
            setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        usleep(20000);
        close(c);
    }
    return NULL;
}

static void world_start(world *w, int protocol, uint32_t n, uint32_t f)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(sy_crypto_init(), SY_OK);
    w->n = n;
    pthread_mutex_init(&w->mu, NULL);
    w->stranger_sk = key_from(0x99);
    sy_signer_ed25519(&w->stranger_signer, w->stranger_sk);
    snprintf(w->cfg.id, sizeof w->cfg.id, "%s", CLUSTER);
    w->cfg.protocol = protocol;
    w->cfg.n = n;
    w->cfg.f = f;
    w->cfg.nodes = calloc(n, sizeof *w->cfg.nodes);
    w->cfg.node_keys = calloc(n, sizeof *w->cfg.node_keys);
    w->cfg.clients = calloc(NCLIENTS, sizeof *w->cfg.clients);
    w->cfg.n_clients = NCLIENTS;
    for (uint32_t i = 0; i < NCLIENTS; i++) {
        w->client_sk[i] = key_from((uint8_t)(0x70 + i));
        w->cfg.clients[i].client_id = SY_CLIENT_ID_BASE + i;
        snprintf(w->cfg.clients[i].name, sizeof w->cfg.clients[i].name, "c%u", i);
        sy_seckey_public(w->client_sk[i], &w->cfg.clients[i].pubkey);
    }
    sy_cluster_directory(&w->cfg, &w->dir);
    w->opts.cluster_id = CLUSTER;
    w->opts.dir = &w->dir;
    w->opts.verifier = NULL;   /* the fakes trust the client: not under test */
    for (uint32_t i = 0; i < n; i++) {
        fake *fk = &w->nodes[i];
        w->node_sk[i] = key_from((uint8_t)(0x10 + i));
        sy_signer_ed25519(&w->node_signer[i], w->node_sk[i]);
        w->cfg.nodes[i].id = i;
        sy_seckey_public(w->node_sk[i], &w->cfg.nodes[i].pubkey);
        w->cfg.node_keys[i] = w->cfg.nodes[i].pubkey;
        fk->id = i;
        fk->w = w;
        fk->mode = M_OK;
        fk->raw_fd = -1;
        snprintf(fk->value, sizeof fk->value, "same");
        nng_listener l;
        int port = 0;
        assert_int_equal(nng_rep0_open(&fk->sock), 0);
        assert_int_equal(nng_socket_set_ms(fk->sock, NNG_OPT_RECVTIMEO, 50), 0);
        assert_int_equal(nng_listen(fk->sock, "tcp://127.0.0.1:0", &l, 0), 0);
        assert_int_equal(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
        snprintf(w->cfg.nodes[i].client, sizeof w->cfg.nodes[i].client, "tcp://127.0.0.1:%d",
                 port);
    }
}

/* A TCP socket bound to a free loopback port (listening if asked); node
 * i's client address names that port. */
static int loopback_socket(world *w, uint32_t i, bool listening)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (listening)
        assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(w->cfg.nodes[i].client, sizeof w->cfg.nodes[i].client, "tcp://127.0.0.1:%d",
             ntohs(sa.sin_port));
    return fd;
}

/* Node i becomes a raw TCP server sending hostile bytes (before go). */
static void make_hostile(world *w, uint32_t i)
{
    w->nodes[i].mode = M_HOSTILE;
    w->nodes[i].raw_fd = loopback_socket(w, i, true);
}

static void go(world *w)
{
    for (uint32_t i = 0; i < w->n; i++)
        assert_int_equal(pthread_create(&w->nodes[i].thr, NULL,
                                        w->nodes[i].mode == M_HOSTILE ? hostile_main
                                        : w->nodes[i].mode == M_MUTE  ? mute_main
                                                                      : fake_main,
                                        &w->nodes[i]),
                         0);
}

static void world_stop(world *w)
{
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
    for (uint32_t i = 0; i < w->n; i++) {
        pthread_join(w->nodes[i].thr, NULL);
        /* NNG 1.5.2 can hang in nng_close (net/bounded.h) */
        (void)sy_close_bounded(w->nodes[i].sock, 2000);
        if (w->nodes[i].raw_fd >= 0)
            close(w->nodes[i].raw_fd);
        sy_seckey_free(w->node_sk[i]);
    }
    for (uint32_t i = 0; i < NCLIENTS; i++)
        sy_seckey_free(w->client_sk[i]);
    sy_seckey_free(w->stranger_sk);
    sy_cluster_free(&w->cfg);
    pthread_mutex_destroy(&w->mu);
}

static int requests_of(world *w, uint32_t node)
{
    pthread_mutex_lock(&w->mu);
    int r = w->nodes[node].requests;
    pthread_mutex_unlock(&w->mu);
    return r;
}

typedef struct outcome {
    uint64_t done, errors;
    size_t n_lat;
    int last_err;
} outcome;

/* Runs bench's loop to the end: `requests` puts (reads: read_ratio) from
 * NCLIENTS clients, each with timeout_ms. */
static outcome run(world *w, uint64_t requests, double read_ratio, uint32_t timeout_ms)
{
    bench_loop *l = NULL;
    char why[256] = "";
    bench_loop_opts o = { .clients = NCLIENTS, .requests = requests, .value_size = 10,
                          .read_ratio = read_ratio, .keys = 100, .timeout_ms = timeout_ms };
    outcome r;
    uint32_t up;
    uint64_t *lat = NULL;
    double secs;
    assert_true(bench_loop_usable(&w->cfg));
    assert_int_equal(bench_loop_start(&w->cfg, w->client_sk, &o, &l, why, sizeof why), SY_OK);
    while (!bench_loop_finished(l))
        usleep(10000);
    bench_loop_progress(l, &r.done, &r.errors, &up);
    bench_loop_end(l, &lat, &r.n_lat, &r.last_err, &secs);
    assert_true(secs >= 0);
    free(lat);
    assert_int_equal(r.n_lat, r.done);
    return r;
}

/* ------------------------------------------------------------------ tests */

static void test_writes_complete_against_an_honest_leader(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1);
    go(&w);
    outcome r = run(&w, 30, 0.0, 5000);
    assert_int_equal(r.done, 30);
    assert_int_equal(r.errors, 0);
    /* every request went to one node: the first connected, which answered */
    int total = requests_of(&w, 0) + requests_of(&w, 1) + requests_of(&w, 2);
    assert_int_equal(total, 30);
    world_stop(&w);
}

static void test_a_redirect_is_followed_and_remembered(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1);
    for (uint32_t i = 0; i < 2; i++) {
        w.nodes[i].mode = M_NOTLEADER;
        w.nodes[i].hint = 2;
    }
    go(&w);
    outcome r = run(&w, 30, 0.5, 5000);
    assert_int_equal(r.done, 30);
    assert_int_equal(r.errors, 0);
    assert_int_equal(requests_of(&w, 2), 30);
    /* once per client at most: the hint is remembered */
    assert_true(requests_of(&w, 0) + requests_of(&w, 1) <= NCLIENTS);
    world_stop(&w);
}

static void test_forged_replies_never_count(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1);
    for (uint32_t i = 0; i < 3; i++)
        w.nodes[i].mode = M_FORGED;
    go(&w);
    outcome r = run(&w, 3, 0.0, 300);
    assert_int_equal(r.done, 0);
    assert_int_equal(r.errors, 3);
    assert_int_equal(r.last_err, SY_ETIMEOUT);
    world_stop(&w);
}

static void test_bft_result_needs_f_plus_one_matching_replies(void **state)
{
    (void)state;
    world w;
    /* every replica answers something else: no f+1 agree */
    world_start(&w, SY_PROTO_PBFT, 4, 1);
    for (uint32_t i = 0; i < 4; i++)
        snprintf(w.nodes[i].value, sizeof w.nodes[i].value, "value-%u", i);
    go(&w);
    outcome r = run(&w, 3, 0.0, 300);
    assert_int_equal(r.done, 0);
    assert_int_equal(r.errors, 3);
    world_stop(&w);
    /* two of four agree (f+1 = 2): writes complete; reads need a quorum
     * of three and fall back to ordered reads, which need two */
    world_start(&w, SY_PROTO_PBFT, 4, 1);
    snprintf(w.nodes[3].value, sizeof w.nodes[3].value, "other");
    snprintf(w.nodes[2].value, sizeof w.nodes[2].value, "another");
    go(&w);
    r = run(&w, 20, 0.5, 10000);
    assert_int_equal(r.done, 20);
    assert_int_equal(r.errors, 0);
    world_stop(&w);
}

/* Node i is down: its address is a port nobody listens on. */
static void make_down(world *w, uint32_t i)
{
    close(loopback_socket(w, i, false));
}

/* PBFT reads with a replica down and the live ones answering differently:
 * no read quorum can form, so each falls back to an ordered read at once
 * rather than at the end of its fast path (2 s, past these reads' 1.5 s
 * deadline). */
static void test_bft_reads_fall_back_at_once_with_a_replica_down(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_PBFT, 4, 1);
    snprintf(w.nodes[2].value, sizeof w.nodes[2].value, "other");
    make_down(&w, 3);
    go(&w);
    outcome r = run(&w, 9, 1.0, 1500);
    assert_int_equal(r.done, 9);
    assert_int_equal(r.errors, 0);
    world_stop(&w);
}

static void test_a_node_sending_garbage_is_survived(void **state)
{
    (void)state;
    world w;
    /* node 0 (tried first when it is the first connected) speaks garbage
     * on every connection; the others are honest */
    world_start(&w, SY_PROTO_RAFT, 3, 1);
    make_hostile(&w, 0);
    go(&w);
    outcome r = run(&w, 12, 0.0, 10000);
    assert_int_equal(r.done, 12);
    assert_int_equal(r.errors, 0);
    /* every client connected to it (and was refused): the fake takes one
     * connection at a time, 20 ms each, so on a loaded machine the run can
     * end first, with the rest still in its listen backlog */
    for (int i = 0; i < 500 && requests_of(&w, 0) < NCLIENTS; i++)
        usleep(10000);
    assert_true(requests_of(&w, 0) >= NCLIENTS);
    world_stop(&w);
    /* every node hostile: nothing completes, nothing crashes */
    world_start(&w, SY_PROTO_PBFT, 4, 1);
    for (uint32_t i = 0; i < 4; i++)
        make_hostile(&w, i);
    go(&w);
    r = run(&w, 3, 0.0, 500);
    assert_int_equal(r.done, 0);
    assert_int_equal(r.errors, 3);
    world_stop(&w);
}

/* A node whose kernel accepts connections but which never sends its
 * SP header (stopped with SIGSTOP, or wedged) is given up after
 * BL_CONNECT_MS and dialled again, as a connect that hangs is -- not held
 * until TCP's own timeout, minutes later -- while the others serve. */
static void test_a_node_that_never_greets_is_dialled_again(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1);
    w.nodes[0].mode = M_MUTE;
    w.nodes[0].raw_fd = loopback_socket(&w, 0, true);
    go(&w);
    bench_loop *l = NULL;
    char why[256] = "";
    bench_loop_opts o = { .clients = NCLIENTS, .duration_s = 60, .value_size = 10,
                          .read_ratio = 0.0, .keys = 100, .timeout_ms = 5000 };
    assert_int_equal(bench_loop_start(&w.cfg, w.client_sk, &o, &l, why, sizeof why), SY_OK);
    /* every client dials it once at the start; more than that is a redial */
    for (int i = 0; i < 1500 && requests_of(&w, 0) < 2 * NCLIENTS; i++)
        usleep(10000);
    uint64_t done, errors;
    uint32_t up;
    bench_loop_progress(l, &done, &errors, &up);
    bench_loop_stop(l);
    uint64_t *lat = NULL;
    size_t n_lat;
    int last_err;
    double secs;
    bench_loop_end(l, &lat, &n_lat, &last_err, &secs);
    free(lat);
    assert_true(requests_of(&w, 0) >= 2 * NCLIENTS);
    assert_true(done > 0);          /* the two that answer served meanwhile */
    assert_int_equal(errors, 0);
    assert_true(up <= 2 * NCLIENTS); /* never counted as connected to the mute one */
    world_stop(&w);
}

static void test_only_tcp_addresses_are_driven(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1);
    assert_true(bench_loop_usable(&w.cfg));
    snprintf(w.cfg.nodes[1].client, sizeof w.cfg.nodes[1].client, "ipc:///tmp/x.ipc");
    assert_false(bench_loop_usable(&w.cfg));
    snprintf(w.cfg.nodes[1].client, sizeof w.cfg.nodes[1].client, "tls+tcp://127.0.0.1:1");
    assert_false(bench_loop_usable(&w.cfg));
    snprintf(w.cfg.nodes[1].client, sizeof w.cfg.nodes[1].client, "tcp://[::1]:7000");
    assert_true(bench_loop_usable(&w.cfg));
    go(&w);
    world_stop(&w);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_complete_against_an_honest_leader),
        cmocka_unit_test(test_a_redirect_is_followed_and_remembered),
        cmocka_unit_test(test_forged_replies_never_count),
        cmocka_unit_test(test_bft_result_needs_f_plus_one_matching_replies),
        cmocka_unit_test(test_bft_reads_fall_back_at_once_with_a_replica_down),
        cmocka_unit_test(test_a_node_sending_garbage_is_survived),
        cmocka_unit_test(test_a_node_that_never_greets_is_dialled_again),
        cmocka_unit_test(test_only_tcp_addresses_are_driven),
    };
    return sy_run_cases("test_bench_loop", tests, sizeof tests / sizeof tests[0], argc, argv);
}
