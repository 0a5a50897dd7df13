/* synod-keys as an operator runs it: exit codes, messages, and output that
 * the daemon's own loader accepts. Runs $SYNOD_BIN/synod-keys. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/config.h"
#include "crypto/crypto.h"
#include "crypto/keyfile.h"
#include "crypto/sy_err.h"

typedef struct fixture {
    char dir[512];
    char bin[1024];
    char out[8192];
    char err[8192];
    char path[1024];
    char why[1024];
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
    snprintf(fx->dir, sizeof fx->dir, "%s/synod-keys-XXXXXX", base);
    if (!mkdtemp(fx->dir))
        return -1;
    const char *bin = getenv("SYNOD_BIN");
    snprintf(fx->bin, sizeof fx->bin, "%s/synod-keys", bin && *bin ? bin : "bin");
    assert_int_equal(sy_crypto_init(), SY_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void slurp(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Runs synod-keys with args inside the fixture dir; returns its exit code,
 * stdout and stderr land in fx->out / fx->err. */
static int run(fixture *fx, const char *args)
{
    if (access(fx->bin, X_OK) != 0)
        skip();
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s/.out' 2>'%s/.err'", fx->dir, fx->bin,
             args, fx->dir, fx->dir);
    int st = system(cmd);
    char p[700];
    snprintf(p, sizeof p, "%s/.out", fx->dir);
    slurp(p, fx->out, sizeof fx->out);
    unlink(p);
    snprintf(p, sizeof p, "%s/.err", fx->dir);
    slurp(p, fx->err, sizeof fx->err);
    unlink(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static const char *at(fixture *fx, const char *rel)
{
    snprintf(fx->path, sizeof fx->path, "%s/%s", fx->dir, rel);
    return fx->path;
}

static void assert_one_line_error(fixture *fx, const char *substr)
{
    size_t n = strlen(fx->err);
    assert_true(n > 0);
    assert_int_equal(fx->err[n - 1], '\n');
    assert_null(memchr(fx->err, '\n', n - 1));
    if (!strstr(fx->err, substr))
        fail_msg("stderr '%s' does not mention '%s'", fx->err, substr);
}

static void test_help_prints_usage_to_stdout_and_exits_zero(void **state)
{
    fixture *fx = *state;
    static const char *const forms[] = {"--help", "gen --help", "pub --help",
                                        "cluster --help"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(run(fx, forms[i]), 0);
        assert_non_null(strstr(fx->out, "usage: synod-keys"));
        assert_string_equal(fx->err, "");
    }
    assert_int_equal(run(fx, "cluster --help"), 0);
    assert_non_null(strstr(fx->out, "--base-port"));
}

static void test_bad_usage_exits_two_with_one_line(void **state)
{
    fixture *fx = *state;
    assert_int_equal(run(fx, ""), 2);
    assert_one_line_error(fx, "missing command; commands are gen, pub and cluster");
    assert_int_equal(run(fx, "frobnicate"), 2);
    assert_one_line_error(fx, "unknown command 'frobnicate'");
    assert_int_equal(run(fx, "gen"), 2);
    assert_one_line_error(fx, "missing --out FILE");
    assert_int_equal(run(fx, "cluster --nodes 3 --out c"), 2);
    assert_one_line_error(fx, "missing --protocol");
    assert_int_equal(run(fx, "cluster --protocol zab --nodes 3 --out c"), 2);
    assert_one_line_error(fx, "unknown protocol 'zab'; use raft, paxos or pbft");
    assert_int_equal(run(fx, "cluster --protocol pbft --nodes 3 --f 1 --out c"), 2);
    assert_one_line_error(fx, "protocol pbft with f=1 needs n >= 3f+1 = 4 nodes");
    assert_int_equal(run(fx, "cluster --protocol raft --nodes many --out c"), 2);
    assert_one_line_error(fx, "--nodes needs a whole number");
    assert_int_equal(run(fx, "cluster --protocol raft --nodes 3 --out c --colour"), 2);
    assert_one_line_error(fx, "unknown argument '--colour'");
    assert_int_equal(run(fx, "cluster --protocol raft --nodes 3 --base-port 65500 --out c"), 2);
    assert_one_line_error(fx, "--base-port 65500 leaves no room");
    /* Nothing was written by any of these. */
    struct stat st;
    assert_int_not_equal(stat(at(fx, "c"), &st), 0);
}

static void test_gen_writes_a_key_pair_that_pub_reads(void **state)
{
    fixture *fx = *state;
    assert_int_equal(run(fx, "gen --out node.key"), 0);
    struct stat st;
    assert_int_equal(stat(at(fx, "node.key"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(at(fx, "node.key.pub"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);

    sy_pubkey pk;
    assert_int_equal(sy_keyfile_load_public(at(fx, "node.key.pub"), &pk, fx->why,
                                            sizeof fx->why), SY_OK);
    char b64[SY_KEY_B64_LEN + 1];
    sy_pubkey_to_b64(&pk, b64);
    strcat(b64, "\n");
    assert_int_equal(run(fx, "pub node.key"), 0);
    assert_string_equal(fx->out, b64);
    assert_int_equal(run(fx, "pub node.key.pub"), 0);
    assert_string_equal(fx->out, b64);
}

static void test_gen_refuses_to_overwrite_without_force(void **state)
{
    fixture *fx = *state;
    assert_int_equal(run(fx, "gen --out k"), 0);
    assert_int_equal(run(fx, "pub k"), 0);
    char first[sizeof fx->out];
    snprintf(first, sizeof first, "%s", fx->out);

    assert_int_equal(run(fx, "gen --out k"), 1);
    assert_one_line_error(fx, "already exists");
    assert_one_line_error(fx, "--force");
    assert_int_equal(run(fx, "pub k"), 0);
    assert_string_equal(fx->out, first);

    assert_int_equal(run(fx, "gen --out k --force"), 0);
    assert_int_equal(run(fx, "pub k"), 0);
    assert_string_not_equal(fx->out, first);
}

static void test_pub_rejects_a_secret_key_others_can_read(void **state)
{
    fixture *fx = *state;
    assert_int_equal(run(fx, "gen --out k"), 0);
    assert_int_equal(chmod(at(fx, "k"), 0644), 0);
    assert_int_equal(run(fx, "pub k"), 2);
    assert_one_line_error(fx, "readable by others (mode 0644); run chmod 600");
    assert_string_equal(fx->out, "");
    assert_int_equal(run(fx, "pub missing.key"), 2);
    assert_one_line_error(fx, "missing.key does not exist");
}

static void test_generated_cluster_loads_as_the_daemon_loads_it(void **state)
{
    fixture *fx = *state;
    assert_int_equal(run(fx, "cluster --protocol pbft --nodes 4 --clients 2 --base-port 9000 "
                             "--out demo"), 0);
    sy_cluster_cfg cfg;
    assert_int_equal(sy_cluster_load(at(fx, "demo/cluster.ini"), &cfg, fx->why, sizeof fx->why),
                     SY_OK);
    assert_int_equal(cfg.protocol, SY_PROTO_PBFT);
    assert_int_equal(cfg.n, 4);
    assert_int_equal(cfg.f, 1);
    assert_int_equal(cfg.n_clients, 2);
    assert_string_equal(cfg.clients[1].name, "client-1");
    assert_string_equal(cfg.nodes[3].peer, "tcp://127.0.0.1:9003");
    assert_string_equal(cfg.nodes[3].client, "tcp://127.0.0.1:9103");
    assert_string_equal(cfg.nodes[3].metrics, "http://127.0.0.1:9203");

    /* Each client key file belongs to its manifest entry. */
    sy_pubkey pk;
    uint32_t cid = 0;
    assert_int_equal(sy_keyfile_load_any_public(at(fx, "demo/keys/client-1.key"), &pk, fx->why,
                                                sizeof fx->why), SY_OK);
    assert_int_equal(sy_cluster_client_by_key(&cfg, &pk, &cid), SY_OK);
    assert_int_equal(cid, SY_CLIENT_ID_BASE + 1);
    sy_cluster_free(&cfg);

    for (int i = 0; i < 4; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "demo/node-%d.ini", i);
        sy_node_cfg ncfg;
        int rc = sy_node_load(at(fx, rel), &ncfg, &cfg, fx->why, sizeof fx->why);
        if (rc)
            fail_msg("node %d: %s", i, fx->why);
        assert_int_equal(ncfg.id, (uint32_t)i);
        struct stat st;
        assert_int_equal(stat(ncfg.secret_key, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(stat(ncfg.data_dir, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        sy_node_free(&ncfg);
        sy_cluster_free(&cfg);
    }
}

static void test_cluster_f_defaults_to_the_most_n_allows(void **state)
{
    fixture *fx = *state;
    sy_cluster_cfg cfg;
    assert_int_equal(run(fx, "cluster --protocol raft --nodes 5 --clients 0 --out a"), 0);
    assert_int_equal(sy_cluster_load(at(fx, "a/cluster.ini"), &cfg, fx->why, sizeof fx->why),
                     SY_OK);
    assert_int_equal(cfg.f, 2);
    assert_int_equal(cfg.n_clients, 0);
    sy_cluster_free(&cfg);
    assert_string_equal(fx->err, "");
    /* sizes that tolerate nothing are allowed, with a warning */
    assert_int_equal(run(fx, "cluster --protocol pbft --nodes 3 --out z3"), 0);
    assert_one_line_error(fx, "warning: 3 pbft nodes tolerate no failure (f=0); pbft needs 4 "
                              "nodes for f=1");
    /* enough nodes but f given as 0: the warning names --f, not more nodes */
    assert_int_equal(run(fx, "cluster --protocol pbft --nodes 7 --f 0 --out z7"), 0);
    assert_one_line_error(fx, "warning: 7 pbft nodes tolerate no failure with --f 0; give --f 1 "
                              "(up to 2 for 7 nodes)");
    assert_int_equal(run(fx, "cluster --protocol raft --nodes 2 --out z2"), 0);
    assert_one_line_error(fx, "raft needs 3 nodes for f=1");
    assert_int_equal(run(fx, "cluster --protocol raft --nodes 1 --out z1"), 0);
    assert_string_equal(fx->err, "");   /* one node: plainly meant */
    /* Raft's quorum is a majority whatever f says: 3 nodes tolerate one */
    assert_int_equal(run(fx, "cluster --protocol raft --nodes 3 --f 0 --out zf"), 0);
    assert_string_equal(fx->err, "");
    assert_int_equal(run(fx, "cluster --protocol paxos --nodes 5 --f 1 --out b"), 0);
    assert_int_equal(sy_cluster_load(at(fx, "b/cluster.ini"), &cfg, fx->why, sizeof fx->why),
                     SY_OK);
    assert_int_equal(cfg.f, 1);
    assert_int_equal(cfg.protocol, SY_PROTO_PAXOS);
    sy_cluster_free(&cfg);
}

static void test_cluster_refuses_to_overwrite_keys_without_force(void **state)
{
    fixture *fx = *state;
    assert_int_equal(run(fx, "cluster --protocol raft --nodes 3 --out c"), 0);
    assert_int_equal(run(fx, "pub c/keys/node-0.key"), 0);
    char first[sizeof fx->out];
    snprintf(first, sizeof first, "%s", fx->out);

    assert_int_equal(run(fx, "cluster --protocol raft --nodes 3 --out c"), 1);
    assert_one_line_error(fx, "keys/node-0.key already exists; pass --force");
    assert_int_equal(run(fx, "pub c/keys/node-0.key"), 0);
    assert_string_equal(fx->out, first);

    assert_int_equal(run(fx, "cluster --protocol raft --nodes 3 --out c --force"), 0);
    assert_string_equal(fx->err, "");   /* no node ran: nothing to warn of */
    assert_int_equal(run(fx, "pub c/keys/node-0.key"), 0);
    assert_string_not_equal(fx->out, first);
    /* a node ran on data/node-1: new keys over it are written, with a warning */
    FILE *ran = fopen(at(fx, "c/data/node-1/data.mdb"), "w");
    assert_non_null(ran);
    fclose(ran);
    assert_int_equal(run(fx, "cluster --protocol raft --nodes 3 --out c --force"), 0);
    assert_one_line_error(fx, "c/data still holds the old nodes' state");
    sy_cluster_cfg cfg;
    sy_node_cfg ncfg;
    assert_int_equal(sy_node_load(at(fx, "c/node-0.ini"), &ncfg, &cfg, fx->why, sizeof fx->why),
                     SY_OK);
    sy_node_free(&ncfg);
    sy_cluster_free(&cfg);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_help_prints_usage_to_stdout_and_exits_zero),
        T(test_bad_usage_exits_two_with_one_line),
        T(test_gen_writes_a_key_pair_that_pub_reads),
        T(test_gen_refuses_to_overwrite_without_force),
        T(test_pub_rejects_a_secret_key_others_can_read),
        T(test_generated_cluster_loads_as_the_daemon_loads_it),
        T(test_cluster_f_defaults_to_the_most_n_allows),
        T(test_cluster_refuses_to_overwrite_keys_without_force),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
