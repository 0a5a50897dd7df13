/* Client library tests against fake nodes: REP sockets in this process that
 * answer with signed replies scripted per test (honest, redirecting, silent,
 * forging, lying). Deadlines only bound the tests; nothing asserts on time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include "net/bounded.h"
#include "tests/unit/run_cases.h"
#include "net/client.h"
#include "net/transport.h"
#include "core/config.h"
#include "core/envelope.h"
#include "core/engine.h"
#include "crypto/sy_err.h"

#define CLUSTER "client-test"
#define MAXN 4

enum mode {
    M_OK,          /* status OK, value = node's value */
    M_NOTLEADER,   /* redirect to hint */
    M_SILENT,      /* never answers */
    M_FORGED,      /* answers as this node but signed with another key */
    M_WRONG_REQ,   /* honest signature, but for another req_no */
    M_CASFAIL,     /* status ECASFAIL with current value */
    M_NOTFOUND,
    M_BATCH,       /* honest, batch-signed with two other clients' replies */
    M_BATCH_FORGED,/* batch-signed by another key */
    M_SELF_PRIMARY,/* honest, but names itself primary in every reply */
    M_FOREIGN,     /* of another cluster id: refuses every frame (SY_ECLUSTER),
                      signed for its own id with its manifest key */
    M_OTHER_KIND,  /* a node of the other kind of cluster than the
                      manifest's (PBFT for a crash-fault client, or the
                      reverse): refuses a request flagged for the kind it is
                      not (SY_ECONFIG), as a node's runtime does */
    M_REFUSE_KEY,  /* its manifest lacks our client: refuses every frame
                      (SY_EUNAUTH, ids 0), as a node's runtime does */
    M_OLD_STATUS,  /* a node before 0.20: refuses a status request that asks
                      for the fault fields as malformed (SY_EFIELD, ids 0),
                      answers one without them */
    M_OTHER_MEMBERSHIP, /* a PBFT replica whose manifest gives another n,
                      f or node keys: refuses a request whose membership
                      digest is not its own (SY_EMEMBERSHIP), as a node's
                      runtime does */
};

typedef struct fake {
    uint32_t id;
    nng_socket sock;
    pthread_t thr;
    int mode;
    uint32_t hint;
    char value[32];
    int requests;           /* client requests received */
    uint64_t last_req_no;
    uint8_t last_flags;
    bool last_has_membership;
    sy_digest last_membership;
    int slow_ms;            /* works this long on a client request first */
    struct world *w;
} fake;

typedef struct world {
    uint32_t n;
    sy_seckey *node_sk[MAXN];
    sy_seckey *client_sk, *stranger_sk;
    sy_signer node_signer[MAXN], stranger_signer;
    sy_cluster_cfg cfg;
    sy_directory dir;
    sy_verifier ver;
    sy_env_opts opts;
    fake nodes[MAXN];
    uint32_t primary;       /* leader hint in honest replies (SY_NO_NODE) */
    uint32_t unreachable;   /* nodes whose address nobody listens on (bits;
                               set before open_client: take_down) */
    /* status: with lead_set every node names `lead` in term `term`; a
     * transfer request answered SY_OK moves it to the next node, term+1 */
    bool lead_set;
    uint32_t lead;
    uint64_t term;
    int transfer_status;    /* what the fakes answer a transfer request */
    int transfers;          /* transfer requests received */
    sy_transfer_req last_transfer;
    pthread_mutex_t mu;
    int stop;               /* __atomic: set by the test's thread */
} world;

static sy_seckey *key_from(uint8_t b)
{
    uint8_t seed[SY_SEED_LEN];
    sy_seckey *sk;
    memset(seed, b, sizeof seed);
    assert_int_equal(sy_seckey_from_seed(seed, &sk), SY_OK);
    return sk;
}

typedef struct { sy_buf *out; size_t want; } pick;

static void pick_frame(void *ctx, size_t i, const uint8_t *frame, size_t len)
{
    pick *p = ctx;
    if (i == p->want)
        sy_buf_append(p->out, frame, len);
}

/* Our reply as the middle one of three under one batch signature. */
static void send_batched(fake *f, const sy_msg *m, const sy_signer *s)
{
    sy_env_batch bt;
    sy_buf b;
    sy_env_batch_init(&bt);
    sy_buf_init(&b);
    for (int k = 0; k < 3; k++) {
        sy_msg o = *m;
        if (k != 1) {
            o.u.reply.client_id = SY_CLIENT_ID_BASE + 5 + (uint32_t)k;
            o.u.reply.val = (sy_bytes){ (const uint8_t *)"other", 5 };
        }
        assert_int_equal(sy_env_batch_add(&bt, CLUSTER, f->id, &o), SY_OK);
    }
    pick p = {&b, 1};
    assert_int_equal(sy_env_batch_seal(&bt, s, pick_frame, &p, NULL), SY_OK);
    nng_send(f->sock, b.p, b.len, 0);
    sy_buf_free(&b);
    sy_env_batch_free(&bt);
}

static void reply(world *w, fake *f, const sy_client_req *q)
{
    sy_msg m;
    sy_buf b;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_CLIENT_REPLY;
    m.u.reply.client_id = q->client_id;
    m.u.reply.req_no = q->req_no;
    pthread_mutex_lock(&w->mu);
    m.u.reply.leader = w->primary;
    pthread_mutex_unlock(&w->mu);
    m.u.reply.index = 7;
    m.u.reply.val = (sy_bytes){ (const uint8_t *)f->value, (uint32_t)strlen(f->value) };
    const sy_signer *s = &w->node_signer[f->id];
    switch (f->mode) {
    case M_NOTLEADER:
        m.u.reply.status = SY_ENOTLEADER;
        m.u.reply.leader = f->hint;
        m.u.reply.index = 0;
        m.u.reply.val.len = 0;
        break;
    case M_FORGED:
        s = &w->stranger_signer;
        break;
    case M_WRONG_REQ:
        m.u.reply.req_no = q->req_no + 1;
        break;
    case M_CASFAIL:
        m.u.reply.status = SY_ECASFAIL;
        break;
    case M_NOTFOUND:
        m.u.reply.status = SY_ENOTFOUND;
        m.u.reply.val.len = 0;
        break;
    case M_BATCH:
        send_batched(f, &m, s);
        return;
    case M_BATCH_FORGED:
        send_batched(f, &m, &w->stranger_signer);
        return;
    case M_SELF_PRIMARY:
        m.u.reply.leader = f->id;
        break;
    case M_OLD_STATUS:
        if (q->client_id == 0)
            m.u.reply.status = SY_EFIELD;
        break;
    case M_OTHER_KIND:
        if (q->flags & (w->cfg.protocol == SY_PROTO_PBFT ? SY_REQ_CLIENT_BFT : SY_REQ_CLIENT_CFT)) {
            m.u.reply.status = SY_ECONFIG;
            m.u.reply.index = 0;
            m.u.reply.val.len = 0;
        }
        break;
    case M_OTHER_MEMBERSHIP: {
        sy_digest theirs = w->cfg.membership;
        theirs.b[0] ^= 1;
        if (q->has_membership && !sy_digest_eq(&q->membership, &theirs)) {
            m.u.reply.status = SY_EMEMBERSHIP;
            m.u.reply.index = 0;
            m.u.reply.val.len = 0;
        }
        break;
    }
    case M_REFUSE_KEY:
        m.u.reply.client_id = 0;
        m.u.reply.req_no = 0;
        m.u.reply.status = SY_EUNAUTH;
        m.u.reply.index = 0;
        m.u.reply.val.len = 0;
        break;
    case M_FOREIGN:
        /* what a node's transport answers a frame for another cluster id */
        m.u.reply.client_id = 0;
        m.u.reply.req_no = 0;
        m.u.reply.status = SY_ECLUSTER;
        m.u.reply.index = 0;
        m.u.reply.val.len = 0;
        sy_buf_init(&b);
        assert_int_equal(sy_env_encode("their-cluster", f->id, &m, s, &b), SY_OK);
        nng_send(f->sock, b.p, b.len, 0);
        sy_buf_free(&b);
        return;
    default:
        break;
    }
    sy_buf_init(&b);
    assert_int_equal(sy_env_encode(CLUSTER, f->id, &m, s, &b), SY_OK);
    nng_send(f->sock, b.p, b.len, 0);
    sy_buf_free(&b);
}

static void status_reply(world *w, fake *f, uint64_t nonce, bool with_faults)
{
    sy_msg m;
    sy_buf b;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_STATUS_REPLY;
    m.u.status.nonce = nonce;
    m.u.status.node = f->id;
    m.u.status.protocol = (sy_bytes){ (const uint8_t *)"raft", 4 };
    m.u.status.role = SY_ROLE_LEADER;
    m.u.status.term = 3;
    m.u.status.leader = f->id;
    pthread_mutex_lock(&w->mu);
    if (w->lead_set) {
        m.u.status.role = w->lead == f->id ? SY_ROLE_LEADER : SY_ROLE_FOLLOWER;
        m.u.status.term = w->term;
        m.u.status.leader = w->lead;
    }
    pthread_mutex_unlock(&w->mu);
    m.u.status.commit_index = 42;
    if (with_faults) {   /* names node 2 for bad signatures, nobody else */
        m.u.status.has_faults = true;
        m.u.status.evidence_from = SY_NO_NODE;
        m.u.status.bad_sigs = 5;
        m.u.status.bad_sig_from = 2;
        m.u.status.dissent_from = m.u.status.dissent_primary = SY_NO_NODE;
    }
    sy_buf_init(&b);
    assert_int_equal(sy_env_encode(CLUSTER, f->id, &m, &w->node_signer[f->id], &b), SY_OK);
    nng_send(f->sock, b.p, b.len, 0);
    sy_buf_free(&b);
}

static void transfer_reply(world *w, fake *f, const sy_transfer_req *q)
{
    sy_msg m;
    sy_buf b;
    memset(&m, 0, sizeof m);
    pthread_mutex_lock(&w->mu);
    w->transfers++;
    w->last_transfer = *q;
    m.type = SY_MSG_TRANSFER_REPLY;
    m.u.transfer = (sy_transfer_reply){ .nonce = q->nonce, .node = f->id,
                                        .status = (uint8_t)w->transfer_status,
                                        .leader = w->lead };
    if (w->transfer_status == SY_OK) {
        w->lead = (w->lead + 1) % w->n;
        w->term++;
    }
    pthread_mutex_unlock(&w->mu);
    sy_buf_init(&b);
    assert_int_equal(sy_env_encode(CLUSTER, f->id, &m, &w->node_signer[f->id], &b), SY_OK);
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
            pthread_mutex_lock(&w->mu);
            int mode = f->mode, slow = f->slow_ms;
            if (env.type == SY_MSG_CLIENT_REQ) {
                f->requests++;
                f->last_req_no = env.msg.u.req.req_no;
                f->last_flags = env.msg.u.req.flags;
                f->last_has_membership = env.msg.u.req.has_membership;
                f->last_membership = env.msg.u.req.membership;
            }
            pthread_mutex_unlock(&w->mu);
            /* one request at a time, like a node busy executing a scan:
             * what the client sends meanwhile waits in the socket */
            if (slow && env.type == SY_MSG_CLIENT_REQ)
                usleep((useconds_t)slow * 1000u);
            if (mode == M_REFUSE_KEY) {
                sy_client_req none;
                memset(&none, 0, sizeof none);
                reply(w, f, &none);
            } else if (mode == M_OLD_STATUS && env.type == SY_MSG_STATUS_REQ &&
                       env.msg.u.status_req.with_faults) {
                sy_client_req none;   /* as a 0.19 runtime answers a malformed frame */
                memset(&none, 0, sizeof none);
                reply(w, f, &none);
            } else if (mode != M_SILENT) {
                if (env.type == SY_MSG_CLIENT_REQ)
                    reply(w, f, &env.msg.u.req);
                else if (env.type == SY_MSG_STATUS_REQ)
                    status_reply(w, f, env.msg.u.status_req.nonce,
                                 env.msg.u.status_req.with_faults);
                else if (env.type == SY_MSG_TRANSFER_REQ)
                    transfer_reply(w, f, &env.msg.u.transfer_req);
            }
            sy_env_free(&env);
        }
        nng_free(buf, len);
    }
    return NULL;
}

static void world_start(world *w, int protocol, uint32_t n, uint32_t f, int test_no)
{
    const char *tmp = getenv("SYNOD_TMP");
    memset(w, 0, sizeof *w);
    assert_int_equal(sy_crypto_init(), SY_OK);
    if (!tmp || !*tmp)
        tmp = "/tmp";
    mkdir(tmp, 0755); /* ctest's scratch dir may not exist yet */
    w->n = n;
    w->primary = SY_NO_NODE;
    pthread_mutex_init(&w->mu, NULL);
    w->client_sk = key_from(0x77);
    w->stranger_sk = key_from(0x99);
    sy_signer_ed25519(&w->stranger_signer, w->stranger_sk);
    snprintf(w->cfg.id, sizeof w->cfg.id, "%s", CLUSTER);
    w->cfg.protocol = protocol;
    w->cfg.n = n;
    w->cfg.f = f;
    w->cfg.nodes = calloc(n, sizeof *w->cfg.nodes);
    w->cfg.node_keys = calloc(n, sizeof *w->cfg.node_keys);
    w->cfg.clients = calloc(1, sizeof *w->cfg.clients);
    w->cfg.n_clients = 1;
    w->cfg.clients[0].client_id = SY_CLIENT_ID_BASE;
    snprintf(w->cfg.clients[0].name, sizeof w->cfg.clients[0].name, "app");
    sy_seckey_public(w->client_sk, &w->cfg.clients[0].pubkey);
    sy_cluster_directory(&w->cfg, &w->dir);
    sy_verifier_ed25519(&w->ver);
    w->opts.cluster_id = CLUSTER;
    w->opts.dir = &w->dir;
    w->opts.verifier = &w->ver;
    for (uint32_t i = 0; i < n; i++) {
        fake *fk = &w->nodes[i];
        w->node_sk[i] = key_from((uint8_t)(0x10 + i));
        sy_signer_ed25519(&w->node_signer[i], w->node_sk[i]);
        w->cfg.nodes[i].id = i;
        sy_seckey_public(w->node_sk[i], &w->cfg.nodes[i].pubkey);
        w->cfg.node_keys[i] = w->cfg.nodes[i].pubkey;
        sy_cluster_cfg_membership(&w->cfg, &w->cfg.membership);   /* as sy_cluster_load */
        snprintf(w->cfg.nodes[i].client, sizeof w->cfg.nodes[i].client,
                 "ipc://%s/client-%d-%d-%u.ipc", tmp, (int)getpid(), test_no, i);
        fk->id = i;
        fk->w = w;
        fk->mode = M_OK;
        snprintf(fk->value, sizeof fk->value, "value-from-%u", i);
        assert_int_equal(nng_rep0_open(&fk->sock), 0);
        assert_int_equal(nng_socket_set_ms(fk->sock, NNG_OPT_RECVTIMEO, 50), 0);
        assert_int_equal(nng_listen(fk->sock, w->cfg.nodes[i].client, NULL, 0), 0);
        assert_int_equal(pthread_create(&fk->thr, NULL, fake_main, fk), 0);
    }
}

static void world_stop(world *w)
{
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
    for (uint32_t i = 0; i < w->n; i++) {
        pthread_join(w->nodes[i].thr, NULL);
        /* NNG 1.5.2 can hang in nng_close (net/bounded.h) */
        (void)sy_close_bounded(w->nodes[i].sock, 2000);
        sy_seckey_free(w->node_sk[i]);
    }
    sy_seckey_free(w->client_sk);
    sy_seckey_free(w->stranger_sk);
    sy_cluster_free(&w->cfg);
    pthread_mutex_destroy(&w->mu);
}

static void set_mode(world *w, uint32_t node, int mode, uint32_t hint)
{
    pthread_mutex_lock(&w->mu);
    w->nodes[node].mode = mode;
    w->nodes[node].hint = hint;
    pthread_mutex_unlock(&w->mu);
}

static void set_slow(world *w, uint32_t node, int ms)
{
    pthread_mutex_lock(&w->mu);
    w->nodes[node].slow_ms = ms;
    pthread_mutex_unlock(&w->mu);
}

static int requests_of(world *w, uint32_t node, uint64_t *last_req_no)
{
    pthread_mutex_lock(&w->mu);
    int r = w->nodes[node].requests;
    if (last_req_no)
        *last_req_no = w->nodes[node].last_req_no;
    pthread_mutex_unlock(&w->mu);
    return r;
}

static sy_client *open_client(world *w, uint32_t attempt_ms)
{
    sy_client *c = NULL;
    char why[256] = "";
    assert_int_equal(sy_client_open_with(&w->cfg, w->client_sk, &c, why, sizeof why), SY_OK);
    sy_client_opts o = { .attempt_ms = attempt_ms, .stale_reads = false };
    sy_client_set_opts(c, &o);
    assert_int_equal(sy_client_id(c), SY_CLIENT_ID_BASE);
    /* every fake listens: once all are connected a fresh client's first
     * call goes to the first connected node in id order, node 0, which
     * the tests below script as the one asked first */
    uint32_t up = w->n - (uint32_t)__builtin_popcount(w->unreachable);
    for (int i = 0; i < 500 && sy_client_connected(c) < up; i++)
        usleep(10000);
    assert_int_equal(sy_client_connected(c), up);
    return c;
}

/* Node i is down for clients opened from now on: the manifest names an
 * address nobody listens on (its fake goes on serving the old one). */
static void take_down(world *w, uint32_t i)
{
    const char *tmp = getenv("SYNOD_TMP");
    snprintf(w->cfg.nodes[i].client, sizeof w->cfg.nodes[i].client, "ipc://%s/nobody-%d-%u.ipc",
             tmp && *tmp ? tmp : "/tmp", (int)getpid(), i);
    w->unreachable |= 1u << i;
}

static void assert_value(const uint8_t *v, size_t len, const char *want)
{
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
}

/* ------------------------------------------------------------------ tests */

static void test_get_returns_leaders_signed_value(void **state)
{
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 0);
    sy_client *c = open_client(&w, 2000);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 10000), SY_OK);
    assert_value(v, vl, "value-from-0");
    free(v);
    set_mode(&w, 0, M_NOTFOUND, 0);
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 10000), SY_ENOTFOUND);
    assert_null(v);
    set_mode(&w, 0, M_CASFAIL, 0);
    uint8_t *cur;
    size_t cl;
    assert_int_equal(sy_client_cas(c, "k", 1, "a", 1, "b", 1, 10000, &cur, &cl), SY_ECASFAIL);
    assert_value(cur, cl, "value-from-0");
    free(cur);
    sy_client_close(c);
    world_stop(&w);
}

static void test_client_follows_leader_hint(void **state)
{
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 1);
    set_mode(&w, 0, M_NOTLEADER, 2);
    set_mode(&w, 1, M_SILENT, 0);
    sy_client *c = open_client(&w, 5000);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 20000), SY_OK);
    assert_value(v, vl, "value-from-2");
    free(v);
    assert_int_equal(requests_of(&w, 0, NULL), 1);
    assert_int_equal(requests_of(&w, 1, NULL), 0);
    /* the next call goes straight to the leader it learned */
    assert_int_equal(sy_client_put(c, "k", 1, "x", 1, 20000), SY_OK);
    assert_int_equal(requests_of(&w, 0, NULL), 1);
    assert_int_equal(requests_of(&w, 2, NULL), 2);
    sy_client_close(c);
    world_stop(&w);
}

static void test_client_rejects_forged_and_mismatched_replies(void **state)
{
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 2);
    set_mode(&w, 0, M_FORGED, 0);
    set_mode(&w, 1, M_WRONG_REQ, 0);
    sy_client *c = open_client(&w, 200);
    uint8_t *v;
    size_t vl;
    /* node 0's reply is signed by a stranger and node 1's answers another
     * request: neither is believed, so the answer must come from node 2 */
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 20000), SY_OK);
    assert_value(v, vl, "value-from-2");
    free(v);
    assert_true(requests_of(&w, 0, NULL) >= 1);
    assert_true(requests_of(&w, 1, NULL) >= 1);
    sy_client_close(c);
    world_stop(&w);
}

static void test_client_accepts_batch_signed_replies_and_rejects_forged_ones(void **state)
{
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 9);
    set_mode(&w, 0, M_BATCH, 0);
    sy_client *c = open_client(&w, 200);
    uint8_t *v;
    size_t vl;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 20000), SY_OK);
        assert_value(v, vl, "value-from-0");
        free(v);
    }
    /* a batch signed by a stranger is not believed: the answer must come
     * from node 1, after node 0 was asked */
    set_mode(&w, 0, M_BATCH_FORGED, 0);
    int before = requests_of(&w, 0, NULL);
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 20000), SY_OK);
    assert_value(v, vl, "value-from-1");
    free(v);
    assert_true(requests_of(&w, 0, NULL) > before);
    sy_client_close(c);
    world_stop(&w);
}

static void test_client_times_out_at_deadline_retrying_same_req_no(void **state)
{
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 3);
    for (uint32_t i = 0; i < 3; i++)
        set_mode(&w, i, M_SILENT, 0);
    sy_client *c = open_client(&w, 100);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 1000), SY_ETIMEOUT);
    uint64_t rn[3];
    for (uint32_t i = 0; i < 3; i++)
        assert_true(requests_of(&w, i, &rn[i]) >= 1);
    /* every node saw the one request, under one number */
    assert_int_equal(rn[0], rn[1]);
    assert_int_equal(rn[1], rn[2]);
    /* a later call uses a larger number */
    set_mode(&w, 0, M_OK, 0);
    set_mode(&w, 1, M_OK, 0);
    set_mode(&w, 2, M_OK, 0);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_OK);
    uint64_t later = 0;
    for (uint32_t i = 0; i < 3; i++) {
        uint64_t r;
        requests_of(&w, i, &r);
        if (r > later)
            later = r;
    }
    assert_true(later > rn[0]);
    sy_client_close(c);
    world_stop(&w);
}

static void test_bft_result_needs_f_plus_one_matching_replies(void **state)
{
    world w;
    world_start(&w, SY_PROTO_PBFT, 4, 1, 4);
    /* replica 0 lies, replica 2 is silent, 1 and 3 agree */
    snprintf(w.nodes[0].value, sizeof w.nodes[0].value, "evil");
    snprintf(w.nodes[1].value, sizeof w.nodes[1].value, "good");
    snprintf(w.nodes[3].value, sizeof w.nodes[3].value, "good");
    set_mode(&w, 2, M_SILENT, 0);
    sy_client *c = open_client(&w, 500);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 20000), SY_OK);
    assert_value(v, vl, "good");
    free(v);

    /* one honest answer is not enough: with 0 lying and only 1 honest
     * replica answering there is never f+1 agreement */
    set_mode(&w, 3, M_SILENT, 0);
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 1500), SY_ETIMEOUT);

    /* a forged reply does not count toward the quorum either */
    set_mode(&w, 3, M_FORGED, 0);
    snprintf(w.nodes[3].value, sizeof w.nodes[3].value, "good");
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 1500), SY_ETIMEOUT);
    sy_client_close(c);
    world_stop(&w);
}

/* A linearizable read needs a quorum of matching replies (2f+1 of 3f+1)
 * and falls back to an ordered read without one. With a replica down and
 * the live ones answering differently, no quorum can form: the ordered
 * read follows at once. Without that it waited out the fast path (2 x
 * attempt_ms, here past the call's deadline: SY_ETIMEOUT). */
static void test_bft_read_falls_back_at_once_when_a_down_replica_leaves_no_quorum(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_PBFT, 4, 1, 42);
    snprintf(w.nodes[0].value, sizeof w.nodes[0].value, "new");
    snprintf(w.nodes[1].value, sizeof w.nodes[1].value, "new");
    snprintf(w.nodes[2].value, sizeof w.nodes[2].value, "old");
    take_down(&w, 3);
    sy_client *c = open_client(&w, 5000);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 8000), SY_OK);
    assert_value(v, vl, "new");
    free(v);
    /* the fallback was an ordered read (f+1 matching) */
    uint8_t flags = 0;
    pthread_mutex_lock(&w.mu);
    for (uint32_t i = 0; i < 3; i++)   /* whichever replicas it went to */
        flags |= w.nodes[i].last_flags;
    pthread_mutex_unlock(&w.mu);
    assert_true(flags & SY_REQ_ORDERED);
    sy_client_close(c);
    world_stop(&w);
}

static int total_requests(world *w)
{
    int t = 0;
    for (uint32_t i = 0; i < w->n; i++)
        t += requests_of(w, i, NULL);
    return t;
}

/* The client returns after f+1 replies; the other replicas it asked may
 * not have counted theirs yet. Waits (bounded) until want were counted. */
static int settled_requests(world *w, int want)
{
    for (int i = 0; i < 2000 && total_requests(w) < want; i++)
        usleep(1000);
    usleep(20000);   /* and a little longer: more than want would show */
    return total_requests(w);
}

/* Correct PBFT replicas all answer alike; a replica names the primary. */
static void set_primary(world *w, uint32_t p)
{
    pthread_mutex_lock(&w->mu);
    w->primary = p;
    for (uint32_t i = 0; i < w->n; i++)
        snprintf(w->nodes[i].value, sizeof w->nodes[i].value, "same");
    pthread_mutex_unlock(&w->mu);
}

/* PBFT writes go to the primary the replies name and f backups; a silent
 * backup is dropped from that set and a new primary is followed. */
static void test_bft_write_goes_to_primary_and_f_backups(void **state)
{
    world w;
    world_start(&w, SY_PROTO_PBFT, 4, 1, 11);
    set_primary(&w, 2);
    sy_client *c = open_client(&w, 500);
    /* the first write: primary unknown, every replica gets it */
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_OK);
    assert_int_equal(settled_requests(&w, 4), 4);

    /* then the primary and one backup (f = 1), the same two each time */
    int before[MAXN], after[MAXN];
    for (uint32_t i = 0; i < 4; i++)
        before[i] = requests_of(&w, i, NULL);
    for (int k = 0; k < 5; k++)
        assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_OK);
    uint32_t backup = SY_NO_NODE, asked = 0;
    for (uint32_t i = 0; i < 4; i++) {
        after[i] = requests_of(&w, i, NULL);
        if (after[i] - before[i] == 5) {
            asked++;
            if (i != 2)
                backup = i;
        } else {
            assert_int_equal(after[i], before[i]);
        }
    }
    assert_int_equal(requests_of(&w, 2, NULL) - before[2], 5);
    assert_int_equal(asked, 2);
    assert_true(backup < 4);

    /* that backup goes silent: the write still completes (the others are
     * asked), and the next writes leave the silent one out */
    set_mode(&w, backup, M_SILENT, 0);
    int t0 = total_requests(&w);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_OK);
    /* primary and backup; after a short wait the other two. Not the
     * silent one again: it still holds the request (link_working) */
    assert_int_equal(settled_requests(&w, t0 + 4), t0 + 4);
    int silent_seen = requests_of(&w, backup, NULL);
    t0 = total_requests(&w);
    for (int k = 0; k < 5; k++)
        assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_OK);
    assert_int_equal(requests_of(&w, backup, NULL), silent_seen);
    assert_int_equal(total_requests(&w) - t0, 10);
    set_mode(&w, backup, M_OK, 0);

    /* a view change: replies name replica 1 now; the client follows */
    set_primary(&w, 1);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_OK);
    int p1 = requests_of(&w, 1, NULL);
    for (int k = 0; k < 3; k++)
        assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_OK);
    assert_int_equal(requests_of(&w, 1, NULL) - p1, 3);
    sy_client_close(c);
    world_stop(&w);
}

/* One replica naming itself primary cannot steer the client: a hint is
 * followed only when f+1 replies agree on it. */
static void test_bft_primary_hint_needs_f_plus_one(void **state)
{
    world w;
    world_start(&w, SY_PROTO_PBFT, 4, 1, 12);
    set_primary(&w, SY_NO_NODE);
    set_mode(&w, 3, M_SELF_PRIMARY, 0);
    sy_client *c = open_client(&w, 500);
    /* the others name no primary (a view change): every write goes to all
     * four, whatever replica 3 claims */
    for (int k = 0; k < 3; k++)
        assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_OK);
    assert_int_equal(settled_requests(&w, 12), 12);
    sy_client_close(c);
    world_stop(&w);
}

/* f = 0: a single replica is its own primary; narrow sends go to it alone. */
static void test_bft_single_replica_cluster(void **state)
{
    world w;
    world_start(&w, SY_PROTO_PBFT, 1, 0, 13);
    set_primary(&w, 0);
    sy_client *c = open_client(&w, 500);
    for (int k = 0; k < 3; k++)
        assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_OK);
    assert_int_equal(settled_requests(&w, 3), 3);
    sy_client_close(c);
    world_stop(&w);
}

/* A leader that takes longer than attempt_ms to answer (a large scan) is
 * heard: the client tries another node meanwhile, is sent back to the
 * leader, and waits for the answer under way instead of sending the
 * request again (which would throw that answer away and start the read
 * over, for as long as the call lasts). */
static void test_slow_leader_answer_counts_and_is_not_asked_again(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 14);
    set_slow(&w, 0, 200);
    set_mode(&w, 1, M_NOTLEADER, 0);
    set_mode(&w, 2, M_NOTLEADER, 0);
    sy_client *c = open_client(&w, 30);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 10000), SY_OK);
    assert_value(v, vl, "value-from-0");
    free(v);
    assert_int_equal(requests_of(&w, 0, NULL), 1);
    /* the followers are asked a few times, each silent attempt longer
     * than the last, not once every attempt_ms */
    assert_true(requests_of(&w, 1, NULL) + requests_of(&w, 2, NULL) <= 5);
    sy_client_close(c);
    world_stop(&w);
}

/* The same for PBFT replicas that all take longer than attempt_ms: the
 * retransmission skips those still working on the request, so each
 * executes a write once, and a read twice (the read-only try, then the
 * ordered read it falls back to), and the replies are accepted. */
static void test_bft_slow_replicas_are_not_sent_the_request_again(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_PBFT, 4, 1, 15);
    set_primary(&w, SY_NO_NODE);   /* every request goes to all four */
    for (uint32_t i = 0; i < 4; i++)
        set_slow(&w, i, 200);
    sy_client *c = open_client(&w, 30);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 10000), SY_OK);
    assert_int_equal(settled_requests(&w, 4), 4);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 10000), SY_OK);
    assert_value(v, vl, "same");
    free(v);
    assert_int_equal(settled_requests(&w, 12), 12);
    sy_client_close(c);
    world_stop(&w);
}

/* synodctl transfer's library call: only a key marked admin sends
 * anything; the request names the leader and the term it leads in (so a
 * replayed copy is stale at the node); a node that refuses the key is told
 * apart from our own manifest saying no; success is another node leading
 * in a newer term. */
static void test_transfer_asks_the_leader_in_its_term_and_waits_for_the_next(void **state)
{
    (void)state;
    /* generous deadlines: every call here ends as soon as it is answered,
     * and a loaded machine (ctest -j2 under ASan) answers late */
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 40);
    pthread_mutex_lock(&w.mu);
    w.lead_set = true;
    w.lead = 1;
    w.term = 7;
    pthread_mutex_unlock(&w.mu);
    /* one client throughout: it reads its admin flag from the manifest it
     * borrows at each call. (Closing a client whose dials were still
     * negotiating broke two of the fakes' ipc listeners for good in 2 of
     * 15 loaded runs: NNG 1.5.2's issue #1518. The fakes are bare NNG
     * sockets; a node's listeners have the transport's watchdog, which
     * test_net.c checks.) */
    sy_client *c = open_client(&w, 500);
    uint32_t from = 99, to = 99;
    assert_int_equal(sy_client_transfer(c, SY_NO_NODE, 20000, &from, &to), SY_EUNAUTH);
    assert_int_equal(w.transfers, 0);

    w.cfg.clients[0].admin = true;
    w.transfer_status = SY_EUNAUTH;   /* the nodes' manifest says no */
    assert_int_equal(sy_client_transfer(c, SY_NO_NODE, 20000, &from, &to), SY_EPERM);
    w.transfer_status = SY_OK;
    assert_int_equal(sy_client_transfer(c, 2, 20000, &from, &to), SY_OK);
    assert_int_equal(from, 1);
    assert_int_equal(to, 2);
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.transfers, 2);
    assert_int_equal(w.last_transfer.leader, 1);
    assert_int_equal(w.last_transfer.term, 7);
    assert_int_equal(w.last_transfer.target, 2);
    pthread_mutex_unlock(&w.mu);
    /* the target leads already: nothing to ask */
    assert_int_equal(sy_client_transfer(c, 2, 20000, &from, &to), SY_OK);
    assert_int_equal(from, 2);
    assert_int_equal(to, 2);
    assert_int_equal(w.transfers, 2);
    sy_client_close(c);
    world_stop(&w);
}

/* A node of another cluster id refuses us in a reply signed for its own
 * id. One such node (misconfigured) is skipped like a silent one and the
 * others serve; f+1 of them mean the manifest is the wrong one, and the
 * call ends at once with SY_ECLUSTER and their id. */
static void test_nodes_of_another_cluster_id_are_named_only_at_f_plus_one(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 41);
    char id[SY_MAX_CLUSTER_ID + 1];
    set_mode(&w, 0, M_FOREIGN, 0);
    sy_client *c = open_client(&w, 300);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 10000), SY_OK);
    assert_false(sy_client_their_cluster(c, id));
    assert_true(requests_of(&w, 1, NULL) + requests_of(&w, 2, NULL) > 0);
    set_mode(&w, 1, M_FOREIGN, 0);
    set_mode(&w, 2, M_FOREIGN, 0);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 10000), SY_ECLUSTER);
    assert_true(sy_client_their_cluster(c, id));
    assert_string_equal(id, "their-cluster");
    sy_client_close(c);
    world_stop(&w);
}

/* the same for PBFT, a case of its own (tests/unit/run_cases.h) */
static void test_bft_replicas_of_another_cluster_id_are_named_only_at_f_plus_one(void **state)
{
    (void)state;
    world w;
    char id[SY_MAX_CLUSTER_ID + 1];
    world_start(&w, SY_PROTO_PBFT, 4, 1, 43);
    for (uint32_t i = 0; i < 4; i++)
        snprintf(w.nodes[i].value, sizeof w.nodes[i].value, "same");
    set_mode(&w, 2, M_FOREIGN, 0);
    sy_client *c = open_client(&w, 300);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 10000), SY_OK);
    assert_false(sy_client_their_cluster(c, id));
    for (uint32_t i = 0; i < 4; i++)   /* the manifest is the wrong one */
        set_mode(&w, i, M_FOREIGN, 0);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 10000), SY_ECLUSTER);
    assert_true(sy_client_their_cluster(c, id));
    sy_client_close(c);
    world_stop(&w);
}

static void test_key_not_in_manifest_is_unauthorised(void **state)
{
    world w;
    world_start(&w, SY_PROTO_RAFT, 1, 0, 5);
    sy_client *c = NULL;
    char why[256] = "";
    assert_int_equal(sy_client_open_with(&w.cfg, w.stranger_sk, &c, why, sizeof why), SY_EUNAUTH);
    assert_null(c);
    assert_non_null(strstr(why, "not authorised"));
    world_stop(&w);
}

/* Every failed open says why in one line, also for structs the caller
 * loaded; a missing manifest is SY_ENOTFOUND like a missing key file. */
static void test_open_failures_say_why(void **state)
{
    (void)state;
    assert_int_equal(sy_crypto_init(), SY_OK);
    sy_seckey *sk = key_from(0x77);
    sy_cluster_cfg empty;
    memset(&empty, 0, sizeof empty);
    sy_client *c = (sy_client *)&empty;   /* any non-NULL: open must clear it */
    char why[256] = "";
    assert_int_equal(sy_client_open_with(&empty, sk, &c, why, sizeof why), SY_EINVAL);
    assert_null(c);
    assert_non_null(strstr(why, "lists 0 nodes"));
    why[0] = 0;
    assert_int_equal(sy_client_open_with(NULL, sk, &c, why, sizeof why), SY_EINVAL);
    assert_non_null(strstr(why, "the manifest is NULL"));
    assert_int_equal(sy_client_open_with(&empty, sk, &c, NULL, 0), SY_EINVAL);
    why[0] = 0;
    assert_int_equal(sy_client_open("/nonexistent-synod/cluster.ini", "/nonexistent-synod/k.key",
                                    &c, why, sizeof why),
                     SY_ENOTFOUND);
    assert_null(c);
    assert_non_null(strstr(why, "/nonexistent-synod/cluster.ini does not exist"));
    sy_seckey_free(sk);
}

/* A key our manifest lists but the nodes' does not: every node refuses
 * it with a signed SY_EUNAUTH (ids 0), which ends a call at once with that
 * status; a status request gets the same refusal, which is no status. */
static void test_key_the_nodes_do_not_list_is_refused_by_them(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 19);
    for (uint32_t i = 0; i < 3; i++)
        set_mode(&w, i, M_REFUSE_KEY, 0);
    sy_client *c = open_client(&w, 500);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 20000), SY_EUNAUTH);
    assert_int_equal(sy_client_get(c, "k", 1, &v, &vl, 20000), SY_EUNAUTH);
    assert_null(v);
    sy_client_node_status st[3];
    assert_int_equal(sy_client_status_all(c, 1000, st), SY_OK);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(st[i].rc, SY_EUNREACH);
    sy_client_close(c);
    world_stop(&w);
}

/* The client says which kind of cluster its manifest describes; nodes of
 * the other kind refuse it (a crash-fault client would trust one PBFT
 * replica's reply; a PBFT client would wait for f+1 matching replies that
 * a crash-fault cluster never sends). other_kind_refuses returns what a
 * client sees: its first put (answered as usual), the kind its request
 * said it was, and its put once every node refuses that kind. */
typedef struct {
    int first_put, kind_flags, refused_put;
} kind_seen;

static kind_seen other_kind_refuses(int proto, int test_no)
{
    world w;
    kind_seen seen;
    uint32_t n = proto == SY_PROTO_PBFT ? 4 : 3;
    world_start(&w, proto, n, 1, test_no);
    for (uint32_t i = 0; i < n; i++)   /* honest PBFT replicas agree */
        snprintf(w.nodes[i].value, sizeof w.nodes[i].value, "same");
    sy_client *c = open_client(&w, 300);
    seen.first_put = sy_client_put(c, "k", 1, "v", 1, 5000);
    /* the flags every node that got the request saw (a PBFT client asks
     * f+1 replicas, not necessarily node 0: one not connected yet is
     * skipped, which under load happened) */
    seen.kind_flags = 0;
    pthread_mutex_lock(&w.mu);
    for (uint32_t i = 0; i < n; i++)
        seen.kind_flags |= w.nodes[i].last_flags & (SY_REQ_CLIENT_CFT | SY_REQ_CLIENT_BFT);
    pthread_mutex_unlock(&w.mu);
    for (uint32_t i = 0; i < n; i++)
        set_mode(&w, i, M_OTHER_KIND, 0);
    seen.refused_put = sy_client_put(c, "k", 1, "v", 1, 5000);
    sy_client_close(c);
    world_stop(&w);
    return seen;
}

/* two cases, not one loop: a world's teardown can wedge NNG's reaper
 * (tests/unit/run_cases.h), which must not fail the other world */
static void test_nodes_of_a_bft_cluster_refuse_a_cft_client(void **state)
{
    (void)state;
    kind_seen seen = other_kind_refuses(SY_PROTO_RAFT, 23);
    assert_int_equal(seen.first_put, SY_OK);
    assert_int_equal(seen.kind_flags, SY_REQ_CLIENT_CFT);
    assert_int_equal(seen.refused_put, SY_ECONFIG);
}

static void test_nodes_of_a_cft_cluster_refuse_a_bft_client(void **state)
{
    (void)state;
    kind_seen seen = other_kind_refuses(SY_PROTO_PBFT, 24);
    assert_int_equal(seen.first_put, SY_OK);
    assert_int_equal(seen.kind_flags, SY_REQ_CLIENT_BFT);
    assert_int_equal(seen.refused_put, SY_ECONFIG);
}

/* A PBFT client sends its manifest's membership digest (a crash-fault
 * client none: it believes one node whatever f says); replicas whose
 * manifest differs refuse it, and once f+1 of them do the call ends with
 * SY_EMEMBERSHIP -- but one such replica is one faulty replica, and the
 * call goes on with the others. */
static void test_pbft_client_names_its_membership_and_f_plus_1_refusals_end_the_call(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_PBFT, 4, 1, 25);
    for (uint32_t i = 0; i < 4; i++)
        snprintf(w.nodes[i].value, sizeof w.nodes[i].value, "same");
    sy_client *c = open_client(&w, 300);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 5000), SY_OK);
    pthread_mutex_lock(&w.mu);
    assert_true(w.nodes[0].last_has_membership);
    assert_true(sy_digest_eq(&w.nodes[0].last_membership, &w.cfg.membership));
    pthread_mutex_unlock(&w.mu);
    set_mode(&w, 0, M_OTHER_MEMBERSHIP, 0);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 5000), SY_OK);
    /* three refuse, one answers: only the refusal has f+1 matching (with
     * two of each the first two matching replies to arrive would win) */
    set_mode(&w, 1, M_OTHER_MEMBERSHIP, 0);
    set_mode(&w, 2, M_OTHER_MEMBERSHIP, 0);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 5000), SY_EMEMBERSHIP);
    sy_client_close(c);
    world_stop(&w);
}

static void test_cft_client_sends_no_membership(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 26);
    sy_client *c = open_client(&w, 300);
    for (uint32_t i = 0; i < 3; i++)
        set_mode(&w, i, M_OTHER_MEMBERSHIP, 0);
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 5000), SY_OK);
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.nodes[0].requests, 1);
    assert_false(w.nodes[0].last_has_membership);
    pthread_mutex_unlock(&w.mu);
    sy_client_close(c);
    world_stop(&w);
}

static void test_status_marks_silent_node_unreachable(void **state)
{
    world w;
    world_start(&w, SY_PROTO_RAFT, 2, 0, 6);
    set_mode(&w, 1, M_SILENT, 0);
    sy_client *c = open_client(&w, 500);
    sy_client_node_status st[2];
    assert_int_equal(sy_client_status_all(c, 1000, st), SY_OK);
    assert_int_equal(st[0].rc, SY_OK);
    assert_string_equal(st[0].protocol, "raft");
    assert_int_equal(st[0].commit_index, 42);
    assert_int_equal(st[0].term, 3);
    assert_int_equal(st[1].rc, SY_EUNREACH);
    sy_client_close(c);
    world_stop(&w);
}

/* status asks for whom each node names as faulty; a node before 0.20
 * refuses that request as malformed and is asked again without it, so a
 * rolling upgrade (nodes first) keeps every node in the table. */
static void test_status_asks_old_nodes_again_without_the_fault_fields(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 27);
    set_mode(&w, 1, M_OLD_STATUS, 0);
    sy_client *c = open_client(&w, 500);
    sy_client_node_status st[3];
    assert_int_equal(sy_client_status_all(c, 3000, st), SY_OK);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(st[i].rc, SY_OK);
        assert_int_equal(st[i].commit_index, 42);
        assert_int_equal(st[i].evidence_from, SY_NO_NODE);
        assert_int_equal(st[i].dissent_from, SY_NO_NODE);
    }
    /* the new nodes' fault fields came through; the old one has none */
    assert_int_equal(st[0].bad_sigs, 5);
    assert_int_equal(st[0].bad_sig_from, 2);
    assert_int_equal(st[1].bad_sigs, 0);
    assert_int_equal(st[1].bad_sig_from, SY_NO_NODE);
    sy_client_close(c);
    world_stop(&w);
}

/* timeout_ms is a deadline and must be positive for every call: status
 * and transfer refuse 0 like the others instead of taking it as 1 ms. */
static void test_calls_refuse_a_timeout_of_zero(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 3, 1, 17);
    w.cfg.clients[0].admin = true;
    sy_client *c = open_client(&w, 500);
    sy_client_node_status st[3];
    uint32_t from = 99, to = 99;
    assert_int_equal(sy_client_put(c, "k", 1, "v", 1, 0), SY_EINVAL);
    assert_int_equal(sy_client_status_all(c, 0, st), SY_EINVAL);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(st[i].rc, SY_EUNREACH);
    assert_int_equal(sy_client_transfer(c, SY_NO_NODE, -5, &from, &to), SY_EINVAL);
    assert_int_equal(from, 99);
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.transfers, 0);
    pthread_mutex_unlock(&w.mu);
    /* the same client answers a positive deadline */
    assert_int_equal(sy_client_status_all(c, 5000, st), SY_OK);
    assert_int_equal(st[0].rc, SY_OK);
    sy_client_close(c);
    world_stop(&w);
}

/* A failed cas hands back the current value; its length is optional
 * (cur_len NULL used to crash the caller). */
static void test_cas_current_value_without_its_length(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 1, 0, 18);
    set_mode(&w, 0, M_CASFAIL, 0);
    sy_client *c = open_client(&w, 500);
    uint8_t *cur = NULL;
    size_t cl = 99;
    assert_int_equal(sy_client_cas(c, "k", 1, "a", 1, "b", 1, 10000, &cur, NULL), SY_ECASFAIL);
    assert_non_null(cur);
    assert_memory_equal(cur, "value-from-0", strlen("value-from-0"));
    free(cur);
    assert_int_equal(sy_client_cas(c, "k", 1, "a", 1, "b", 1, 10000, NULL, &cl), SY_ECASFAIL);
    assert_int_equal(cl, strlen("value-from-0"));
    sy_client_close(c);
    world_stop(&w);
}

static void test_oversized_value_rejected_before_sending(void **state)
{
    world w;
    world_start(&w, SY_PROTO_RAFT, 1, 0, 7);
    sy_client *c = open_client(&w, 500);
    size_t big = SY_MAX_VALUE + 1;
    uint8_t *v = calloc(1, big);
    assert_int_equal(sy_client_put(c, "k", 1, v, big, 1000), SY_ETOOBIG);
    assert_int_equal(requests_of(&w, 0, NULL), 0);
    free(v);
    sy_client_close(c);
    world_stop(&w);
}

/* What the state machine would refuse is refused by the library, before
 * anything is signed and sent (and logged by the cluster): an empty key
 * for put / get / del / cas, a scan's `to` bound over SY_MAX_KEY. The
 * limits themselves are requests like any other. */
static void test_requests_the_cluster_would_refuse_are_not_sent(void **state)
{
    (void)state;
    world w;
    world_start(&w, SY_PROTO_RAFT, 1, 0, 16);
    sy_client *c = open_client(&w, 500);
    uint8_t *v, *cur;
    size_t vl, cl;
    sy_client_kv *kvs;
    size_t n;
    bool more;
    uint8_t to[SY_MAX_KEY + 1];
    memset(to, 'z', sizeof to);
    assert_int_equal(sy_client_put(c, "", 0, "v", 1, 5000), SY_EINVAL);
    assert_int_equal(sy_client_get(c, "", 0, &v, &vl, 5000), SY_EINVAL);
    assert_null(v);
    assert_int_equal(sy_client_del(c, "", 0, 5000), SY_EINVAL);
    assert_int_equal(sy_client_cas(c, "", 0, NULL, 0, "v", 1, 5000, &cur, &cl), SY_EINVAL);
    assert_null(cur);
    assert_int_equal(sy_client_scan_page(c, "a", 1, to, sizeof to, 10, &kvs, &n, &more, 5000),
                     SY_ETOOBIG);
    assert_int_equal(sy_client_scan(c, "a", 1, to, sizeof to, 10, &kvs, &n, 5000), SY_ETOOBIG);
    assert_null(kvs);
    assert_int_equal(requests_of(&w, 0, NULL), 0);
    /* from the first key (empty `from`) to a bound of SY_MAX_KEY bytes */
    assert_int_equal(sy_client_scan_page(c, "", 0, to, SY_MAX_KEY, 10, &kvs, &n, &more, 5000),
                     SY_OK);
    sy_client_kvs_free(kvs, n);
    assert_int_equal(requests_of(&w, 0, NULL), 1);
    sy_client_close(c);
    world_stop(&w);
}

/* ------------------------------------ client against the real endpoint */

typedef struct kvsrv {
    world *w;
    sy_net *net;
    pthread_t thr;
    int stop;               /* __atomic: set by the test's thread */
    char keys[8][16], vals[8][64];
    size_t vlen[8];
    int n;
    int bad_frames;
} kvsrv;

static void kv_answer(kvsrv *s, const sy_net_event *ev)
{
    const sy_client_req *q = &ev->env.msg.u.req;
    sy_msg m;
    sy_buf b;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_CLIENT_REPLY;
    m.u.reply.client_id = q->client_id;
    m.u.reply.req_no = q->req_no;
    m.u.reply.leader = 0;
    m.u.reply.index = 1;
    int found = -1;
    for (int i = 0; i < s->n; i++)
        if (strlen(s->keys[i]) == q->key.len && !memcmp(s->keys[i], q->key.p, q->key.len))
            found = i;
    if (q->op == SY_OP_PUT) {
        if (found < 0 && s->n < 8)
            found = s->n++;
        snprintf(s->keys[found], sizeof s->keys[found], "%.*s", (int)q->key.len, q->key.p);
        memcpy(s->vals[found], q->val.p, q->val.len);
        s->vlen[found] = q->val.len;
    } else if (found < 0) {
        m.u.reply.status = SY_ENOTFOUND;
    } else {
        m.u.reply.val = (sy_bytes){ (const uint8_t *)s->vals[found], (uint32_t)s->vlen[found] };
    }
    sy_buf_init(&b);
    assert_int_equal(sy_env_encode(CLUSTER, 0, &m, &s->w->node_signer[0], &b), SY_OK);
    assert_int_equal(sy_net_reply(s->net, ev->handle, b.p, b.len), SY_OK);
    sy_buf_free(&b);
}

static void *kv_main(void *arg)
{
    kvsrv *s = arg;
    while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
        sy_net_event ev;
        if (sy_net_wait(s->net, 50, &ev) != SY_OK)
            continue;
        if (ev.kind == SY_NET_EV_CLIENT) {
            if (ev.rc != SY_OK)
                s->bad_frames++;
            else if (ev.env.type == SY_MSG_CLIENT_REQ)
                kv_answer(s, &ev);
        }
        sy_net_event_free(&ev);
    }
    return NULL;
}

static void test_client_and_transport_endpoint_round_trip(void **state)
{
    world w;
    kvsrv s;
    char why[256] = "";
    world_start(&w, SY_PROTO_RAFT, 1, 0, 8);
    /* the fake REP node steps aside for the real endpoint */
    __atomic_store_n(&w.stop, 1, __ATOMIC_RELAXED);
    pthread_join(w.nodes[0].thr, NULL);
    /* NNG 1.5.2 can hang in nng_close (net/bounded.h) */
    (void)sy_close_bounded(w.nodes[0].sock, 2000);
    w.n = 0;
    memset(&s, 0, sizeof s);
    s.w = &w;
    char peer[300];
    snprintf(peer, sizeof peer, "%s.peer", w.cfg.nodes[0].client);
    const char *peers[1] = { peer };
    sy_net_cfg nc;
    memset(&nc, 0, sizeof nc);
    nc.self = 0;
    nc.n = 1;
    nc.peer_addrs = peers;
    nc.client_addr = w.cfg.nodes[0].client;
    nc.verify = &w.opts;
    nc.signer = &w.node_signer[0];
    nc.cluster_id = CLUSTER;
    nc.workers = 2;
    assert_int_equal(sy_net_open(&nc, &s.net, why, sizeof why), SY_OK);
    assert_int_equal(pthread_create(&s.thr, NULL, kv_main, &s), 0);

    sy_client *c = open_client(&w, 2000);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_client_put(c, "alpha", 5, "one", 3, 20000), SY_OK);
    assert_int_equal(sy_client_get(c, "alpha", 5, &v, &vl, 20000), SY_OK);
    assert_value(v, vl, "one");
    free(v);
    assert_int_equal(sy_client_get(c, "beta", 4, &v, &vl, 20000), SY_ENOTFOUND);
    assert_int_equal(s.bad_frames, 0);

    sy_client_close(c);
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
    pthread_join(s.thr, NULL);
    sy_net_close(s.net);
    sy_seckey_free(w.node_sk[0]);
    w.node_sk[0] = NULL;
    world_stop(&w);
}

/* The key a scan goes on from: nothing sorts between it and the last one. */
static void test_key_after_is_the_next_key(void **state)
{
    (void)state;
    uint8_t out[SY_MAX_KEY], k[SY_MAX_KEY];
    assert_int_equal(sy_client_key_after("ab", 2, out), 3);
    assert_memory_equal(out, "ab\0", 3);
    memset(k, 'a', sizeof k);
    k[SY_MAX_KEY - 1] = 0xff;   /* longest key: no extension, raise the byte before */
    assert_int_equal(sy_client_key_after(k, SY_MAX_KEY, out), SY_MAX_KEY - 1);
    assert_memory_equal(out, k, SY_MAX_KEY - 2);
    assert_int_equal(out[SY_MAX_KEY - 2], 'b');
    memset(k, 0xff, sizeof k);
    assert_int_equal(sy_client_key_after(k, SY_MAX_KEY, out), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_returns_leaders_signed_value),
        cmocka_unit_test(test_client_follows_leader_hint),
        cmocka_unit_test(test_client_rejects_forged_and_mismatched_replies),
        cmocka_unit_test(test_client_accepts_batch_signed_replies_and_rejects_forged_ones),
        cmocka_unit_test(test_client_times_out_at_deadline_retrying_same_req_no),
        cmocka_unit_test(test_bft_result_needs_f_plus_one_matching_replies),
        cmocka_unit_test(test_bft_read_falls_back_at_once_when_a_down_replica_leaves_no_quorum),
        cmocka_unit_test(test_bft_write_goes_to_primary_and_f_backups),
        cmocka_unit_test(test_bft_primary_hint_needs_f_plus_one),
        cmocka_unit_test(test_bft_single_replica_cluster),
        cmocka_unit_test(test_slow_leader_answer_counts_and_is_not_asked_again),
        cmocka_unit_test(test_bft_slow_replicas_are_not_sent_the_request_again),
        cmocka_unit_test(test_transfer_asks_the_leader_in_its_term_and_waits_for_the_next),
        cmocka_unit_test(test_nodes_of_another_cluster_id_are_named_only_at_f_plus_one),
        cmocka_unit_test(test_bft_replicas_of_another_cluster_id_are_named_only_at_f_plus_one),
        cmocka_unit_test(test_key_not_in_manifest_is_unauthorised),
        cmocka_unit_test(test_open_failures_say_why),
        cmocka_unit_test(test_key_the_nodes_do_not_list_is_refused_by_them),
        cmocka_unit_test(test_nodes_of_a_bft_cluster_refuse_a_cft_client),
        cmocka_unit_test(test_nodes_of_a_cft_cluster_refuse_a_bft_client),
        cmocka_unit_test(test_pbft_client_names_its_membership_and_f_plus_1_refusals_end_the_call),
        cmocka_unit_test(test_cft_client_sends_no_membership),
        cmocka_unit_test(test_status_marks_silent_node_unreachable),
        cmocka_unit_test(test_status_asks_old_nodes_again_without_the_fault_fields),
        cmocka_unit_test(test_oversized_value_rejected_before_sending),
        cmocka_unit_test(test_calls_refuse_a_timeout_of_zero),
        cmocka_unit_test(test_cas_current_value_without_its_length),
        cmocka_unit_test(test_requests_the_cluster_would_refuse_are_not_sent),
        cmocka_unit_test(test_client_and_transport_endpoint_round_trip),
        cmocka_unit_test(test_key_after_is_the_next_key),
    };
    return sy_run_cases("test_client", tests, sizeof tests / sizeof tests[0], argc, argv);
}
