/* Cluster manifest and node file: what loads, and the one-line error an
 * operator gets for each way a file can be wrong. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/config.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "crypto/keyfile.h"
#include "crypto/sy_err.h"

typedef struct fixture {
    char dir[512];
    char manifest[600];
    char why[1024];
    sy_cluster_cfg cfg;
    sy_node_cfg ncfg;
} fixture;

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    const char *base = getenv("SYNOD_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0755);
    snprintf(fx->dir, sizeof fx->dir, "%s/config-XXXXXX", base);
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->manifest, sizeof fx->manifest, "%s/cluster.ini", fx->dir);
    assert_int_equal(sy_crypto_init(), SY_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    sy_cluster_free(&fx->cfg);
    sy_node_free(&fx->ncfg);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static sy_seckey *key_for(int who)
{
    uint8_t seed[SY_SEED_LEN];
    memset(seed, 0, sizeof seed);
    seed[0] = (uint8_t)who;
    seed[1] = 0x5a;
    sy_seckey *sk = NULL;
    assert_int_equal(sy_seckey_from_seed(seed, &sk), SY_OK);
    return sk;
}

static void pub_b64(int who, char out[SY_KEY_B64_LEN])
{
    sy_seckey *sk = key_for(who);
    sy_pubkey pk;
    sy_seckey_public(sk, &pk);
    sy_pubkey_to_b64(&pk, out);
    sy_seckey_free(sk);
}

/* A manifest builder: defaults give a valid 4-node PBFT cluster. */
typedef struct mopts {
    const char *protocol;       /* default pbft */
    bool has_f;                 /* write an f line */
    int f;
    int n;                      /* default 4 */
    const char *id;             /* default demo */
    const char *cluster_extra;  /* lines appended to [cluster] */
    const int *ids;             /* node ids (default 0..n-1) */
    const int *key_of;          /* key seed per node (default the id) */
    const char *peer1;          /* override the peer address of the 2nd node */
    const char *metrics1;       /* override its metrics address */
    const char *node1_extra;    /* lines appended to the 2nd node */
    int clients;                /* default 1 */
    int client0_key;            /* key seed of client 0 (default 100) */
    const char *tail;           /* raw text at the end */
    bool tls;                   /* peer and client addresses are tls+tcp:// */
} mopts;

static void build_manifest(fixture *fx, mopts o)
{
    char text[16384];
    size_t off = 0;
    if (!o.protocol)
        o.protocol = "pbft";
    if (!o.n)
        o.n = 4;
    if (!o.id)
        o.id = "demo";
#define OUT(...) off += (size_t)snprintf(text + off, sizeof text - off, __VA_ARGS__)
    OUT("[cluster]\nid = %s\nprotocol = %s          ; raft | paxos | pbft\n", o.id, o.protocol);
    if (o.has_f)
        OUT("f = %d\n", o.f);
    if (o.cluster_extra)
        OUT("%s\n", o.cluster_extra);
    for (int i = 0; i < o.n; i++) {
        int id = o.ids ? o.ids[i] : i;
        char b64[SY_KEY_B64_LEN];
        pub_b64(o.key_of ? o.key_of[i] : id, b64);
        OUT("\n[node \"%d\"]\npublic_key = %s\n", id, b64);
        const char *scheme = o.tls ? "tls+tcp" : "tcp";
        if (i == 1 && o.peer1)
            OUT("peer = %s\n", o.peer1);
        else
            OUT("peer = %s://127.0.0.1:%d\n", scheme, 7000 + id);
        OUT("client = %s://127.0.0.1:%d\n", scheme, 7100 + id);
        if (i == 1 && o.metrics1)
            OUT("metrics = %s\n", o.metrics1);
        else
            OUT("metrics = http://127.0.0.1:%d\n", 7200 + id);
        if (i == 1 && o.node1_extra)
            OUT("%s\n", o.node1_extra);
    }
    if (o.clients == 0)
        o.clients = 1;
    for (int k = 0; k < o.clients; k++) {
        char b64[SY_KEY_B64_LEN];
        pub_b64(k == 0 && o.client0_key ? o.client0_key : 100 + k, b64);
        OUT("\n[client \"app-%d\"]\npublic_key = %s\n", k, b64);
    }
    if (o.tail)
        OUT("%s", o.tail);
#undef OUT
    write_file(fx->manifest, text);
}


static void expect_error(fixture *fx, const char *substr)
{
    int rc = sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why);
    assert_int_equal(rc, SY_ECONFIG);
    if (!strstr(fx->why, substr))
        fail_msg("error '%s' does not mention '%s'", fx->why, substr);
    assert_null(strchr(fx->why, '\n')); /* one line */
    assert_non_null(strstr(fx->why, fx->manifest));
}

/* ---- valid manifests ---- */

static void test_valid_manifest_loads_with_defaults(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.has_f = true, .f = 1, .clients = 2});
    assert_int_equal(sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why), SY_OK);
    sy_cluster_cfg *c = &fx->cfg;
    assert_string_equal(c->id, "demo");
    assert_int_equal(c->protocol, SY_PROTO_PBFT);
    assert_string_equal(sy_protocol_name(c->protocol), "pbft");
    assert_int_equal(c->n, 4);
    assert_int_equal(c->f, 1);
    assert_int_equal(c->heartbeat_ms, SY_DEF_HEARTBEAT_MS);
    assert_int_equal(c->batch_max, SY_DEF_BATCH_MAX);
    assert_string_equal(c->nodes[2].peer, "tcp://127.0.0.1:7002");
    assert_string_equal(c->nodes[2].client, "tcp://127.0.0.1:7102");
    assert_string_equal(c->nodes[2].metrics, "http://127.0.0.1:7202");
    assert_int_equal(c->n_clients, 2);
    assert_string_equal(c->clients[1].name, "app-1");
    assert_int_equal(c->clients[0].client_id, SY_CLIENT_ID_BASE);
    assert_int_equal(c->clients[1].client_id, SY_CLIENT_ID_BASE + 1);

    /* The directory answers with manifest keys and nothing else. */
    sy_directory dir;
    sy_cluster_directory(c, &dir);
    sy_seckey *sk = key_for(3);
    sy_pubkey pk3;
    sy_seckey_public(sk, &pk3);
    sy_seckey_free(sk);
    const sy_pubkey *got = dir.key_of(dir.ctx, 3);
    assert_non_null(got);
    assert_memory_equal(got->b, pk3.b, SY_PUBKEY_LEN);
    assert_null(dir.key_of(dir.ctx, 4));
    assert_non_null(dir.key_of(dir.ctx, SY_CLIENT_ID_BASE + 1));
    assert_null(dir.key_of(dir.ctx, SY_CLIENT_ID_BASE + 2));

    /* Clients are found by their key. */
    sk = key_for(101);
    sy_pubkey pk;
    sy_seckey_public(sk, &pk);
    sy_seckey_free(sk);
    uint32_t cid = 0;
    assert_int_equal(sy_cluster_client_by_key(c, &pk, &cid), SY_OK);
    assert_int_equal(cid, SY_CLIENT_ID_BASE + 1);
    assert_int_equal(sy_cluster_client_by_key(c, &pk3, &cid), SY_ENOTFOUND);
    uint32_t nid = 99;
    assert_int_equal(sy_cluster_node_by_key(c, &pk3, &nid), SY_OK);
    assert_int_equal(nid, 3);

    /* The engine config carries the manifest's values. */
    sy_engine_cfg ec;
    memset(&ec, 0, sizeof ec);
    sy_cluster_engine_cfg(c, 2, &ec);
    assert_int_equal(ec.self, 2);
    assert_int_equal(ec.n, 4);
    assert_int_equal(ec.f, 1);
    assert_string_equal(ec.cluster_id, "demo");
    assert_int_equal(ec.election_min_ms, SY_DEF_ELECTION_MIN_MS);
    assert_int_equal(ec.watermark_window, SY_DEF_WATERMARK_WINDOW);
    assert_int_equal(ec.state_chunk_bytes, SY_STATE_CHUNK_DEF);
    assert_ptr_equal(ec.node_keys, c->node_keys);
    assert_memory_equal(ec.node_keys[3].b, pk3.b, SY_PUBKEY_LEN);
    assert_non_null(ec.clients);
    assert_non_null(ec.clients->key_of(ec.clients->ctx, SY_CLIENT_ID_BASE));
    assert_null(ec.clients->key_of(ec.clients->ctx, SY_CLIENT_ID_BASE + 2));
}

static void test_timing_and_limit_keys_override_defaults(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.protocol = "raft", .n = 3,
                               .cluster_extra = "heartbeat_ms = 20\nelection_min_ms = 100\n"
                                                "election_max_ms = 200\nbatch_max = 64\n"
                                                "snapshot_threshold = 5000\nprevote = false\n"
                                                "max_pending = 77\nbatch_delay_ms = 0\n"
                                                "state_chunk_bytes = 65536"});
    assert_int_equal(sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why), SY_OK);
    assert_int_equal(fx->cfg.protocol, SY_PROTO_RAFT);
    assert_int_equal(fx->cfg.heartbeat_ms, 20);
    assert_int_equal(fx->cfg.election_min_ms, 100);
    assert_int_equal(fx->cfg.election_max_ms, 200);
    assert_int_equal(fx->cfg.batch_max, 64);
    assert_int_equal(fx->cfg.snapshot_threshold, 5000);
    assert_int_equal(fx->cfg.max_pending, 77);
    assert_int_equal(fx->cfg.batch_delay_ms, 0);
    assert_int_equal(fx->cfg.state_chunk_bytes, 65536);
    assert_false(fx->cfg.prevote);
    assert_true(fx->cfg.check_quorum);
}

static void test_f_defaults_to_the_most_the_protocol_tolerates(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.protocol = "pbft", .n = 7});
    assert_int_equal(sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why), SY_OK);
    assert_int_equal(fx->cfg.f, 2);
    sy_cluster_free(&fx->cfg);
    build_manifest(fx, (mopts){.protocol = "paxos", .n = 5});
    assert_int_equal(sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why), SY_OK);
    assert_int_equal(fx->cfg.f, 2);
    assert_int_equal(fx->cfg.protocol, SY_PROTO_PAXOS);
}

/* The membership digest a PBFT client sends with its requests: the same
 * for two copies of a manifest that differ only where a client's copy may
 * (addresses, timings, clients), different when n, f, a node key, the
 * protocol or the cluster id differ. */
static sy_digest membership_of(fixture *fx, mopts o)
{
    build_manifest(fx, o);
    if (sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why) != SY_OK)
        fail_msg("manifest did not load: %s", fx->why);
    sy_digest d = fx->cfg.membership;
    sy_digest again;
    sy_cluster_cfg_membership(&fx->cfg, &again);
    assert_true(sy_digest_eq(&d, &again));
    sy_cluster_free(&fx->cfg);
    return d;
}

static void test_membership_digest_covers_what_client_trust_rests_on(void **state)
{
    fixture *fx = *state;
    sy_digest base = membership_of(fx, (mopts){.n = 7, .has_f = true, .f = 2});
    sy_digest same = membership_of(fx, (mopts){
        .n = 7, .has_f = true, .f = 2, .peer1 = "tcp://10.0.0.9:7001",
        .metrics1 = "http://10.0.0.9:7201", .clients = 3,
        .cluster_extra = "request_timeout_ms = 9000\nbatch_max = 8"});
    assert_true(sy_digest_eq(&base, &same));
    const int other_key[7] = {0, 1, 2, 3, 4, 5, 60};
    const sy_digest differ[] = {
        membership_of(fx, (mopts){.n = 7, .has_f = true, .f = 1}),
        membership_of(fx, (mopts){.n = 6, .has_f = true, .f = 1}),
        membership_of(fx, (mopts){.n = 7, .has_f = true, .f = 2, .key_of = other_key}),
        membership_of(fx, (mopts){.n = 7, .has_f = true, .f = 2, .id = "other"}),
        membership_of(fx, (mopts){.n = 7, .has_f = true, .f = 2, .protocol = "raft"}),
    };
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
        assert_false(sy_digest_eq(&base, &differ[i]));
        for (size_t j = i + 1; j < sizeof differ / sizeof differ[0]; j++)
            assert_false(sy_digest_eq(&differ[i], &differ[j]));
    }
}

static void test_ipc_and_tls_addresses_are_accepted(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.peer1 = "ipc:///tmp/synod-peer-1",
                               .metrics1 = "http://[::1]:7201"});
    assert_int_equal(sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why), SY_OK);
    assert_string_equal(fx->cfg.nodes[1].peer, "ipc:///tmp/synod-peer-1");
    assert_int_equal(sy_addr_check("tls+tcp://node1.example.com:7000", false, fx->why,
                                   sizeof fx->why), SY_OK);
    assert_int_equal(sy_addr_check("tcp://[fe80::1]:7000", false, fx->why, sizeof fx->why),
                     SY_OK);
}

/* ---- each error ---- */

static void test_unknown_protocol_lists_the_valid_ones(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.protocol = "hotstuff"});
    expect_error(fx, "unknown protocol 'hotstuff'");
    expect_error(fx, "raft, paxos, pbft");
    /* libinih takes "# ..." after a value as part of it: say how to comment */
    build_manifest(fx, (mopts){.protocol = "raft # the default"});
    expect_error(fx, "unknown protocol 'raft # the default' in [cluster]; valid protocols: raft, "
                     "paxos, pbft; a comment after a value starts with ' ;' ('#' only at the "
                     "start of a line)");
    /* no such hint where the value has no '#' */
    build_manifest(fx, (mopts){.protocol = "hotstuff"});
    int rc = sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why);
    assert_int_equal(rc, SY_ECONFIG);
    assert_null(strstr(fx->why, "comment"));
}

static void test_pbft_needs_3f_plus_1_nodes(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.protocol = "pbft", .has_f = true, .f = 1, .n = 3});
    expect_error(fx, "protocol pbft with f=1 needs n >= 3f+1 = 4 nodes, manifest has 3");
}

static void test_raft_and_paxos_need_2f_plus_1_nodes(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.protocol = "raft", .has_f = true, .f = 2, .n = 4});
    expect_error(fx, "protocol raft with f=2 needs n >= 2f+1 = 5 nodes, manifest has 4");
    build_manifest(fx, (mopts){.protocol = "paxos", .has_f = true, .f = 1, .n = 2});
    expect_error(fx, "protocol paxos with f=1 needs n >= 2f+1 = 3 nodes, manifest has 2");
}

static void test_duplicate_node_id_is_rejected(void **state)
{
    fixture *fx = *state;
    static const int ids[] = {0, 1, 2, 1};
    static const int keys[] = {0, 1, 2, 3};
    build_manifest(fx, (mopts){.ids = ids, .key_of = keys});
    expect_error(fx, "duplicate node id 1");
}

static void test_duplicate_public_key_between_nodes_is_rejected(void **state)
{
    fixture *fx = *state;
    static const int keys[] = {0, 1, 2, 1};
    build_manifest(fx, (mopts){.key_of = keys});
    expect_error(fx, "duplicate public key: [node \"1\"] and [node \"3\"]");
}

static void test_duplicate_public_key_between_node_and_client_is_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.client0_key = 2});
    expect_error(fx, "duplicate public key: [node \"2\"] and [client \"app-0\"]");
}

static void test_duplicate_address_is_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.peer1 = "tcp://127.0.0.1:7000"});
    expect_error(fx, "duplicate address 127.0.0.1:7000");
    /* A metrics listener on a peer port collides too, whatever the scheme. */
    build_manifest(fx, (mopts){.metrics1 = "http://127.0.0.1:7003"});
    expect_error(fx, "duplicate address 127.0.0.1:7003");
}

static void test_malformed_peer_addresses_are_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.peer1 = "udp://127.0.0.1:7001"});
    expect_error(fx, "must be tcp://host:port, tls+tcp://host:port or ipc://path");
    expect_error(fx, "peer in [node \"1\"]");
    build_manifest(fx, (mopts){.peer1 = "tcp://127.0.0.1"});
    expect_error(fx, "has no port");
    build_manifest(fx, (mopts){.peer1 = "tcp://127.0.0.1:0"});
    expect_error(fx, "invalid port '0'; use 1..65535");
    build_manifest(fx, (mopts){.peer1 = "tcp://127.0.0.1:70000"});
    expect_error(fx, "invalid port '70000'");
    build_manifest(fx, (mopts){.peer1 = "tcp://:7001"});
    expect_error(fx, "has no host");
    build_manifest(fx, (mopts){.peer1 = "tcp://::1:7001"});
    expect_error(fx, "brackets");
    build_manifest(fx, (mopts){.peer1 = "ipc://"});
    expect_error(fx, "empty ipc path");
}

static void test_malformed_metrics_address_is_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.metrics1 = "tcp://127.0.0.1:7201"});
    expect_error(fx, "metrics in [node \"1\"]: address 'tcp://127.0.0.1:7201' must look like "
                     "http://host:port");
}

static void test_unknown_key_is_reported_with_a_suggestion(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.cluster_extra = "protocl = raft"});
    expect_error(fx, "unknown key 'protocl' in [cluster]; did you mean 'protocol'?");
    build_manifest(fx, (mopts){.node1_extra = "pubkey = abc"});
    expect_error(fx, "unknown key 'pubkey' in [node \"1\"]");
}

static void test_error_names_the_line(void **state)
{
    fixture *fx = *state;
    write_file(fx->manifest, "[cluster]\nid = demo\n\nheartbeet_ms = 5\n");
    expect_error(fx, "cluster.ini:4: unknown key 'heartbeet_ms'");
}

static void test_unknown_section_is_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.tail = "\n[nodes \"4\"]\npeer = tcp://h:1\n"});
    expect_error(fx, "unknown section [nodes \"4\"]");
    build_manifest(fx, (mopts){.tail = "\n[node 4]\npeer = tcp://h:1\n"});
    expect_error(fx, "malformed section [node 4]; write [node \"ID\"]");
}

static void test_bad_integer_is_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.cluster_extra = "heartbeat_ms = fast"});
    expect_error(fx, "heartbeat_ms = 'fast' in [cluster] is not a whole number");
    build_manifest(fx, (mopts){.cluster_extra = "batch_max = -5"});
    expect_error(fx, "batch_max = '-5' in [cluster] is not a whole number");
    build_manifest(fx, (mopts){.cluster_extra = "batch_max = 0"});
    expect_error(fx, "batch_max = 0 in [cluster] is out of range");
    /* a whole number, only too large for 64 bits: out of range too */
    build_manifest(fx, (mopts){.cluster_extra = "batch_max = 99999999999999999999999"});
    expect_error(fx, "batch_max = '99999999999999999999999' in [cluster] is out of range; "
                     "expected 1..");
    build_manifest(fx, (mopts){.cluster_extra = "prevote = maybe"});
    expect_error(fx, "is not a boolean");
    /* a chunk must fit a message beside the entries that ride with it */
    build_manifest(fx, (mopts){.cluster_extra = "state_chunk_bytes = 8388608"});
    expect_error(fx, "state_chunk_bytes = 8388608 in [cluster] is out of range");
    build_manifest(fx, (mopts){.cluster_extra = "state_chunk_bytes = 100"});
    expect_error(fx, "state_chunk_bytes = 100 in [cluster] is out of range");
    /* the PBFT engine's log holds at most SY_PBFT_MAX_WINDOW sequence numbers:
     * refused here with the key named, not by the engine at start */
    build_manifest(fx, (mopts){.cluster_extra = "watermark_window = 8192"});
    expect_error(fx, "watermark_window = 8192 in [cluster] is out of range");
    build_manifest(fx, (mopts){.cluster_extra = "checkpoint_interval = 4096"});
    expect_error(fx, "checkpoint_interval = 4096 in [cluster] is out of range");
}

static void test_timing_relations_are_checked(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.cluster_extra = "election_min_ms = 500\n"
                                                          "election_max_ms = 400"});
    expect_error(fx, "election_min_ms (500) must be below election_max_ms (400)");
    build_manifest(fx, (mopts){.cluster_extra = "heartbeat_ms = 300"});
    expect_error(fx, "heartbeat_ms (300) must be below election_min_ms");
    build_manifest(fx, (mopts){.cluster_extra = "checkpoint_interval = 100\n"
                                                          "watermark_window = 150"});
    expect_error(fx, "watermark_window (150) must be at least twice checkpoint_interval");
}

static void test_missing_required_keys_are_named(void **state)
{
    fixture *fx = *state;
    write_file(fx->manifest, "[cluster]\nid = demo\n");
    expect_error(fx, "[cluster] is missing required key 'protocol'");
    write_file(fx->manifest, "[cluster]\nprotocol = raft\n");
    expect_error(fx, "[cluster] is missing required key 'id'");
    write_file(fx->manifest, "[client \"x\"]\npublic_key = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
    expect_error(fx, "missing [cluster] section");
    write_file(fx->manifest, "[cluster]\nid = demo\nprotocol = raft\n");
    expect_error(fx, "no [node \"ID\"] sections");
    char b64[SY_KEY_B64_LEN], text[512];
    pub_b64(0, b64);
    snprintf(text, sizeof text, "[cluster]\nid = d\nprotocol = raft\n[node \"0\"]\n"
             "public_key = %s\nclient = tcp://h:1\n", b64);
    write_file(fx->manifest, text);
    expect_error(fx, "[node \"0\"] is missing required key 'peer'");
}

static void test_bad_public_key_is_rejected(void **state)
{
    fixture *fx = *state;
    write_file(fx->manifest, "[cluster]\nid = d\nprotocol = raft\n[node \"0\"]\n"
                             "public_key = AAAA\npeer = tcp://h:1\nclient = tcp://h:2\n");
    expect_error(fx, "public_key in [node \"0\"] is not base64 of 32 bytes");
}

static void test_missing_manifest_file_is_reported(void **state)
{
    fixture *fx = *state;
    expect_error(fx, "does not exist");
}

static void test_node_ids_must_be_contiguous(void **state)
{
    fixture *fx = *state;
    static const int ids[] = {0, 1, 3, 4};
    build_manifest(fx, (mopts){.ids = ids});
    expect_error(fx, "node ids must be contiguous 0..n-1");
    expect_error(fx, "no [node \"2\"]");
}

static void test_cluster_id_is_checked(void **state)
{
    fixture *fx = *state;
    char longid[SY_MAX_CLUSTER_ID + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    build_manifest(fx, (mopts){.id = longid});
    expect_error(fx, "cluster id 'aaaa");
    expect_error(fx, "use 1..64 characters");
    build_manifest(fx, (mopts){.id = "my/cluster"});
    expect_error(fx, "cluster id 'my/cluster' is invalid");
}

static void test_more_than_max_nodes_is_rejected(void **state)
{
    fixture *fx = *state;
    static const int ids[] = {0, 1, 2, 64};
    build_manifest(fx, (mopts){.ids = ids});
    expect_error(fx, "node id 64 in [node \"64\"] is out of range");
    expect_error(fx, "at most 64 nodes");
}

static void test_syntax_error_names_the_line(void **state)
{
    fixture *fx = *state;
    write_file(fx->manifest, "[cluster]\nid = demo\nthis line has no equals sign\n");
    expect_error(fx, "cluster.ini:3: syntax error");
}

/* admin = true marks the clients that may move leadership (synodctl
 * transfer); the default is no. */
static void test_client_admin_flag_defaults_to_no(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.clients = 2, .tail = "admin = true\n"});
    assert_int_equal(sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why), SY_OK);
    assert_false(fx->cfg.clients[0].admin);
    assert_true(fx->cfg.clients[1].admin);
    assert_true(sy_cluster_client(&fx->cfg, SY_CLIENT_ID_BASE + 1)->admin);
    /* what a node acts on: an admin's request for itself in its term */
    uint32_t app0 = SY_CLIENT_ID_BASE, app1 = SY_CLIENT_ID_BASE + 1;
    sy_transfer_req q = {.nonce = 1, .leader = 2, .term = 9, .target = UINT32_MAX};
    assert_int_equal(sy_cluster_transfer_allowed(&fx->cfg, app1, 2, 9, &q), SY_OK);
    assert_int_equal(sy_cluster_transfer_allowed(&fx->cfg, app0, 2, 9, &q), SY_EUNAUTH);
    assert_int_equal(sy_cluster_transfer_allowed(&fx->cfg, 1, 2, 9, &q), SY_EUNAUTH);   /* a node */
    assert_int_equal(sy_cluster_transfer_allowed(&fx->cfg, app1 + 1, 2, 9, &q), SY_EUNAUTH);
    /* a copy replayed once the term moved on, or to another node */
    assert_int_equal(sy_cluster_transfer_allowed(&fx->cfg, app1, 2, 10, &q), SY_ESTALE);
    assert_int_equal(sy_cluster_transfer_allowed(&fx->cfg, app1, 3, 10, &q), SY_ESTALE);
    assert_int_equal(sy_cluster_transfer_allowed(&fx->cfg, app1, 3, 9, &q), SY_ESTALE);
    /* ... or replayed in the same term (a hand-off that did not take) */
    sy_transfer_seen seen;
    memset(&seen, 0, sizeof seen);
    assert_int_equal(sy_transfer_seen_check(&seen, 9, 111), SY_OK);
    assert_int_equal(sy_transfer_seen_check(&seen, 9, 222), SY_OK);
    assert_int_equal(sy_transfer_seen_check(&seen, 9, 111), SY_EREPLAY);
    for (uint64_t k = 0; k < SY_TRANSFER_SEEN - 2; k++)
        assert_int_equal(sy_transfer_seen_check(&seen, 9, 300 + k), SY_OK);
    assert_int_equal(sy_transfer_seen_check(&seen, 9, 222), SY_EREPLAY);   /* still held */
    assert_int_equal(sy_transfer_seen_check(&seen, 10, 111), SY_OK);      /* a new term */
    sy_cluster_free(&fx->cfg);
    build_manifest(fx, (mopts){.tail = "admin = maybe\n"});
    expect_error(fx, "admin = 'maybe' in [client \"app-0\"] is not a boolean; use true or false");
    build_manifest(fx, (mopts){.tail = "admin = no\nadmin = yes\n"});
    expect_error(fx, "key 'admin' is set twice in [client \"app-0\"]");
    build_manifest(fx, (mopts){.tail = "admn = true\n"});
    expect_error(fx, "unknown key 'admn' in [client \"app-0\"]; did you mean 'admin'?");
}

static void test_key_set_twice_is_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.cluster_extra = "batch_max = 5\nbatch_max = 6"});
    expect_error(fx, "key 'batch_max' is set twice in [cluster]");
}

/* Sections libinih never reports: one without keys, and one repeated
 * (back to back it merged them, and an empty repeat passed unseen). */
static void test_empty_and_repeated_sections_are_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.tail = "[client \"forgot\"]\n; public_key to come\n"});
    expect_error(fx, "[client \"forgot\"] has no keys; fill it in or remove it");
    build_manifest(fx, (mopts){.tail = "[cluster]\n"});
    expect_error(fx, "[cluster] appears twice (first at line 1); merge them");
    build_manifest(fx, (mopts){.tail = "[cluster]\nbatch_max = 3\n"});
    expect_error(fx, "[cluster] appears twice (first at line 1); merge them");
    write_file(fx->manifest, "[cluster]\nid = demo\n[cluster]\nprotocol = raft\n");
    expect_error(fx, "cluster.ini:3: [cluster] appears twice (first at line 1)");
    /* twice in a row, the first one empty: written twice, not "no keys" */
    write_file(fx->manifest, "[cluster]\n[cluster]\nid = demo\nprotocol = raft\n");
    expect_error(fx, "cluster.ini:2: [cluster] appears twice (first at line 1); merge them");
}

static void test_indented_line_is_explained(void **state)
{
    fixture *fx = *state;
    write_file(fx->manifest, "[cluster]\nid = demo\n  protocol = raft\n");
    expect_error(fx, "cluster.ini:3: line is indented, so it continues the value of 'id'");
}

/* ---- node files ---- */

/* Writes keys/node-<i>.key for every node of the default manifest, and
 * node-<id>.ini using key file `keyname`. */
static void build_node(fixture *fx, int id, const char *keyname, const char *extra)
{
    char p[700], text[1024];
    snprintf(p, sizeof p, "%s/keys", fx->dir);
    mkdir(p, 0700);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/keys/node-%d.key", fx->dir, i);
        sy_seckey *sk = key_for(i);
        int rc = sy_keyfile_save(p, sk, SY_KEYFILE_FORCE, fx->why, sizeof fx->why);
        sy_seckey_free(sk);
        assert_int_equal(rc, SY_OK);
    }
    snprintf(text, sizeof text, "[node]\nid = %d\nsecret_key = keys/%s\ndata_dir = data/node-%d\n"
             "cluster = cluster.ini\n%s", id, keyname, id, extra ? extra : "");
    snprintf(p, sizeof p, "%s/node-%d.ini", fx->dir, id);
    write_file(p, text);
}

static int load_node(fixture *fx, int id)
{
    char p[700];
    snprintf(p, sizeof p, "%s/node-%d.ini", fx->dir, id);
    return sy_node_load(p, &fx->ncfg, &fx->cfg, fx->why, sizeof fx->why);
}

static void expect_node_error(fixture *fx, int id, const char *substr)
{
    assert_int_equal(load_node(fx, id), SY_ECONFIG);
    if (!strstr(fx->why, substr))
        fail_msg("error '%s' does not mention '%s'", fx->why, substr);
    assert_null(strchr(fx->why, '\n'));
    assert_null(fx->ncfg.seckey);
}

static void test_valid_node_file_loads_with_paths_relative_to_it(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){0});
    build_node(fx, 2, "node-2.key", "log_level = debug\n");
    assert_int_equal(load_node(fx, 2), SY_OK);
    assert_int_equal(fx->ncfg.id, 2);
    assert_int_equal(fx->ncfg.log_level, SY_LOG_DEBUG);
    assert_int_equal(fx->ncfg.commit_interval_ms, SY_DEF_COMMIT_INTERVAL_MS);
    sy_node_free(&fx->ncfg);
    sy_cluster_free(&fx->cfg);
    build_node(fx, 2, "node-2.key", "commit_interval_ms = 20\n");
    assert_int_equal(load_node(fx, 2), SY_OK);
    assert_int_equal(fx->ncfg.commit_interval_ms, 20);
    char want[700];
    snprintf(want, sizeof want, "%s/data/node-2", fx->dir);
    assert_string_equal(fx->ncfg.data_dir, want);
    snprintf(want, sizeof want, "%s/keys/node-2.key", fx->dir);
    assert_string_equal(fx->ncfg.secret_key, want);
    assert_non_null(fx->ncfg.seckey);
    assert_int_equal(fx->cfg.n, 4);
    sy_pubkey pk;
    sy_seckey_public(fx->ncfg.seckey, &pk);
    assert_memory_equal(pk.b, fx->cfg.nodes[2].pubkey.b, SY_PUBKEY_LEN);
}

static void test_node_file_with_another_nodes_key_is_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){0});
    build_node(fx, 1, "node-3.key", NULL);
    expect_node_error(fx, 1, "but the manifest");
    expect_node_error(fx, 1, "for [node \"1\"]");
}

static void test_node_id_not_in_manifest_is_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){0});
    build_node(fx, 7, "node-0.key", NULL);
    expect_node_error(fx, 7, "node id 7 is not in the manifest");
    expect_node_error(fx, 7, "nodes 0..3");
}

static void test_node_key_file_missing_or_too_open_is_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){0});
    build_node(fx, 0, "nope.key", NULL);
    expect_node_error(fx, 0, "does not exist");
    build_node(fx, 0, "node-0.key", NULL);
    char p[700];
    snprintf(p, sizeof p, "%s/keys/node-0.key", fx->dir);
    assert_int_equal(chmod(p, 0644), 0);
    expect_node_error(fx, 0, "readable by others (mode 0644); run chmod 600");
}

static void test_node_file_errors_are_named(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){0});
    build_node(fx, 0, "node-0.key", "log_level = loud\n");
    expect_node_error(fx, 0, "log_level = 'loud' in [node] is not a level");
    build_node(fx, 0, "node-0.key", "log_level = debug # for now\n");
    expect_node_error(fx, 0, "log_level = 'debug # for now' in [node] is not a level; use "
                             "debug, info, warn, error or off; a comment after a value starts "
                             "with ' ;'");
    build_node(fx, 0, "node-0.key", "commit_interval_ms = 0\n");
    expect_node_error(fx, 0, "commit_interval_ms = '0' in [node] is not a number of "
                             "milliseconds from 1 to 10000");
    build_node(fx, 0, "node-0.key", "commit_interval_ms = 20s\n");
    expect_node_error(fx, 0, "commit_interval_ms = '20s' in [node]");
    build_node(fx, 0, "node-0.key", "datadir = x\n");
    expect_node_error(fx, 0, "unknown key 'datadir' in [node]; did you mean 'data_dir'?");
    char p[700];
    snprintf(p, sizeof p, "%s/node-0.ini", fx->dir);
    write_file(p, "[node]\nid = 0\nsecret_key = keys/node-0.key\ncluster = cluster.ini\n");
    expect_node_error(fx, 0, "missing required key 'data_dir'");
    write_file(p, "[node]\nid = 0\nsecret_key = k\ndata_dir = d\ncluster = nowhere.ini\n");
    expect_node_error(fx, 0, "nowhere.ini does not exist");
}

/* ---- TLS settings ---- */

#define PEM_CERT "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
#define PEM_KEY "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"

/* Writes dir/name with text and mode. */
static void write_in(fixture *fx, const char *name, const char *text, mode_t mode)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", fx->dir, name);
    write_file(p, text);
    assert_int_equal(chmod(p, mode), 0);
}

static void test_tls_manifest_loads_with_ca_relative_to_it(void **state)
{
    fixture *fx = *state;
    char p[700];
    snprintf(p, sizeof p, "%s/tls", fx->dir);
    mkdir(p, 0700);
    write_in(fx, "tls/ca.pem", PEM_CERT, 0644);
    build_manifest(fx, (mopts){.tls = true, .cluster_extra = "tls_ca = tls/ca.pem"});
    assert_int_equal(sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why), SY_OK);
    snprintf(p, sizeof p, "%s/tls/ca.pem", fx->dir);
    assert_string_equal(fx->cfg.tls_ca, p);
    assert_string_equal(fx->cfg.nodes[2].client, "tls+tcp://127.0.0.1:7102");
}

static void test_plain_manifest_has_no_tls_ca(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){0});
    assert_int_equal(sy_cluster_load(fx->manifest, &fx->cfg, fx->why, sizeof fx->why), SY_OK);
    assert_string_equal(fx->cfg.tls_ca, "");
}

static void test_tls_addresses_without_tls_ca_are_rejected(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.tls = true});
    expect_error(fx, "the addresses are tls+tcp:// but [cluster] has no tls_ca; add tls_ca = PATH");
}

static void test_tls_ca_without_tls_addresses_is_rejected(void **state)
{
    fixture *fx = *state;
    write_in(fx, "ca.pem", PEM_CERT, 0644);
    build_manifest(fx, (mopts){.cluster_extra = "tls_ca = ca.pem"});
    expect_error(fx, "[cluster] tls_ca is set but no address is tls+tcp://");
}

static void test_mixing_tls_and_plain_addresses_names_the_node(void **state)
{
    fixture *fx = *state;
    write_in(fx, "ca.pem", PEM_CERT, 0644);
    build_manifest(fx, (mopts){.tls = true, .cluster_extra = "tls_ca = ca.pem",
                               .peer1 = "tcp://127.0.0.1:7001"});
    expect_error(fx, "[node \"1\"] peer is tcp://127.0.0.1:7001 but [node \"0\"] peer is "
                 "tls+tcp://; TLS is all or nothing");
    build_manifest(fx, (mopts){.tls = true, .cluster_extra = "tls_ca = ca.pem",
                               .peer1 = "ipc:///tmp/synod-peer-1"});
    expect_error(fx, "[node \"1\"] peer is ipc:///tmp/synod-peer-1 but");
}

static void test_missing_or_bogus_tls_ca_file_is_named(void **state)
{
    fixture *fx = *state;
    build_manifest(fx, (mopts){.tls = true, .cluster_extra = "tls_ca = nowhere.pem"});
    expect_error(fx, "tls_ca file ");
    expect_error(fx, "nowhere.pem does not exist");
    write_in(fx, "ca.pem", "not a certificate\n", 0644);
    build_manifest(fx, (mopts){.tls = true, .cluster_extra = "tls_ca = ca.pem"});
    expect_error(fx, "ca.pem holds no PEM certificate");
    build_manifest(fx, (mopts){.tls = true, .cluster_extra = "tls_ca ="});
    expect_error(fx, "tls_ca in [cluster] is empty");
}

static void test_tls_node_file_loads_its_certificate_path(void **state)
{
    fixture *fx = *state;
    write_in(fx, "ca.pem", PEM_CERT, 0644);
    write_in(fx, "node-2.pem", PEM_CERT PEM_KEY, 0600);
    build_manifest(fx, (mopts){.tls = true, .cluster_extra = "tls_ca = ca.pem"});
    build_node(fx, 2, "node-2.key", "tls_cert = node-2.pem\n");
    assert_int_equal(load_node(fx, 2), SY_OK);
    char want[700];
    snprintf(want, sizeof want, "%s/node-2.pem", fx->dir);
    assert_string_equal(fx->ncfg.tls_cert, want);
}

static void test_tls_manifest_needs_tls_cert_in_the_node_file(void **state)
{
    fixture *fx = *state;
    write_in(fx, "ca.pem", PEM_CERT, 0644);
    build_manifest(fx, (mopts){.tls = true, .cluster_extra = "tls_ca = ca.pem"});
    build_node(fx, 0, "node-0.key", NULL);
    expect_node_error(fx, 0, "uses TLS (tls_ca) but [node] has no tls_cert; add tls_cert = PATH");
}

static void test_tls_cert_without_tls_manifest_is_rejected(void **state)
{
    fixture *fx = *state;
    write_in(fx, "node-0.pem", PEM_CERT PEM_KEY, 0600);
    build_manifest(fx, (mopts){0});
    build_node(fx, 0, "node-0.key", "tls_cert = node-0.pem\n");
    expect_node_error(fx, 0, "tls_cert is set but the manifest");
    expect_node_error(fx, 0, "does not use TLS");
}

static void test_tls_cert_file_problems_are_named(void **state)
{
    fixture *fx = *state;
    write_in(fx, "ca.pem", PEM_CERT, 0644);
    build_manifest(fx, (mopts){.tls = true, .cluster_extra = "tls_ca = ca.pem"});
    build_node(fx, 0, "node-0.key", "tls_cert = node-0.pem\n");
    expect_node_error(fx, 0, "tls_cert file ");
    expect_node_error(fx, 0, "node-0.pem does not exist");
    write_in(fx, "node-0.pem", PEM_CERT, 0600);
    expect_node_error(fx, 0, "node-0.pem holds no PEM private key; put the node's certificate "
                      "and its key in one file");
    write_in(fx, "node-0.pem", PEM_KEY, 0600);
    expect_node_error(fx, 0, "node-0.pem holds no PEM certificate");
    write_in(fx, "node-0.pem", PEM_CERT "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n"
             "-----END ENCRYPTED PRIVATE KEY-----\n", 0600);
    expect_node_error(fx, 0, "holds an encrypted private key");
    write_in(fx, "node-0.pem", PEM_CERT PEM_KEY, 0640);
    expect_node_error(fx, 0, "node-0.pem holds a private key and is readable by others (mode "
                      "0640); run chmod 600");
}

static void test_addr_host_is_the_name_a_certificate_must_carry(void **state)
{
    (void)state;
    char h[64];
    assert_int_equal(sy_addr_host("tls+tcp://node1.example.com:7000", h, sizeof h), SY_OK);
    assert_string_equal(h, "node1.example.com");
    assert_int_equal(sy_addr_host("tls+tcp://[::1]:7000", h, sizeof h), SY_OK);
    assert_string_equal(h, "::1");
    assert_int_equal(sy_addr_host("tcp://127.0.0.1:7000", h, sizeof h), SY_OK);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(sy_addr_host("ipc:///tmp/x", h, sizeof h), SY_EINVAL);
    assert_int_equal(sy_addr_host("tls+tcp://node1.example.com:7000", h, 5), SY_ETOOBIG);
    assert_true(sy_addr_is_tls("tls+tcp://a:1"));
    assert_false(sy_addr_is_tls("tcp://a:1"));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_valid_manifest_loads_with_defaults),
        T(test_timing_and_limit_keys_override_defaults),
        T(test_f_defaults_to_the_most_the_protocol_tolerates),
        T(test_membership_digest_covers_what_client_trust_rests_on),
        T(test_ipc_and_tls_addresses_are_accepted),
        T(test_unknown_protocol_lists_the_valid_ones),
        T(test_pbft_needs_3f_plus_1_nodes),
        T(test_raft_and_paxos_need_2f_plus_1_nodes),
        T(test_duplicate_node_id_is_rejected),
        T(test_duplicate_public_key_between_nodes_is_rejected),
        T(test_duplicate_public_key_between_node_and_client_is_rejected),
        T(test_duplicate_address_is_rejected),
        T(test_malformed_peer_addresses_are_rejected),
        T(test_malformed_metrics_address_is_rejected),
        T(test_unknown_key_is_reported_with_a_suggestion),
        T(test_error_names_the_line),
        T(test_unknown_section_is_rejected),
        T(test_bad_integer_is_rejected),
        T(test_timing_relations_are_checked),
        T(test_missing_required_keys_are_named),
        T(test_bad_public_key_is_rejected),
        T(test_missing_manifest_file_is_reported),
        T(test_node_ids_must_be_contiguous),
        T(test_cluster_id_is_checked),
        T(test_more_than_max_nodes_is_rejected),
        T(test_syntax_error_names_the_line),
        T(test_key_set_twice_is_rejected),
        T(test_empty_and_repeated_sections_are_rejected),
        T(test_client_admin_flag_defaults_to_no),
        T(test_indented_line_is_explained),
        T(test_valid_node_file_loads_with_paths_relative_to_it),
        T(test_node_file_with_another_nodes_key_is_rejected),
        T(test_node_id_not_in_manifest_is_rejected),
        T(test_tls_manifest_loads_with_ca_relative_to_it),
        T(test_plain_manifest_has_no_tls_ca),
        T(test_tls_addresses_without_tls_ca_are_rejected),
        T(test_tls_ca_without_tls_addresses_is_rejected),
        T(test_mixing_tls_and_plain_addresses_names_the_node),
        T(test_missing_or_bogus_tls_ca_file_is_named),
        T(test_tls_node_file_loads_its_certificate_path),
        T(test_tls_manifest_needs_tls_cert_in_the_node_file),
        T(test_tls_cert_without_tls_manifest_is_rejected),
        T(test_tls_cert_file_problems_are_named),
        T(test_addr_host_is_the_name_a_certificate_must_carry),
        T(test_node_key_file_missing_or_too_open_is_rejected),
        T(test_node_file_errors_are_named),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
