/* The data directory guard: one process at a time, one node identity for
 * the directory's life (core/datadir.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/datadir.h"
#include "crypto/sy_err.h"
#include "tests/unit/tmpdir.h"

typedef struct {
    char dir[512];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || !t_tmpdir(f->dir, sizeof f->dir, "datadir"))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    t_rm_datadir(f->dir);
    free(f);
    return 0;
}

/* A second node started on the directory is refused, naming the holder's
 * pid; once the first is gone (its lock closed, as at exit) it is not. */
static void test_a_second_process_on_a_data_directory_is_refused(void **state)
{
    fx *f = *state;
    int a = -1, b = -1;
    char why[512] = "";
    assert_int_equal(sy_datadir_lock(f->dir, &a, why, sizeof why), SY_OK);
    assert_int_equal(sy_datadir_lock(f->dir, &b, why, sizeof why), SY_EEXIST);
    assert_non_null(strstr(why, "in use by another synod process"));
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
    assert_non_null(strstr(why, pid));
    close(a);
    assert_int_equal(sy_datadir_lock(f->dir, &b, why, sizeof why), SY_OK);
    close(b);
}

/* A directory the node's user may not write is a deployment error
 * (SY_EPERM: the daemon exits 2, so a service manager does not retry in a
 * loop), not an I/O failure. Root writes anywhere, so as root the lock is
 * tried in a child that became nobody. */
static void test_a_data_directory_of_another_user_is_a_permission_error(void **state)
{
    fx *f = *state;
    char sub[600];
    snprintf(sub, sizeof sub, "%s/theirs", f->dir);
    assert_int_equal(mkdir(sub, 0500), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(100);
        int fd = -1;
        char why[512] = "";
        int rc = sy_datadir_lock(sub, &fd, why, sizeof why);
        _exit(rc == SY_EPERM && strstr(why, "synod.lock: Permission denied") ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    rmdir(sub);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 100)
        skip();   /* root that cannot become nobody (a restricted container) */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* The rejoin mark survives until cleared, and clearing twice is fine (a
 * crash after the unlink and before the directory sync repeats it). */
static void test_rejoin_mark_lasts_until_cleared(void **state)
{
    fx *f = *state;
    char why[512] = "";
    assert_false(sy_datadir_rejoin_marked(f->dir));
    assert_int_equal(sy_datadir_rejoin_mark(f->dir, why, sizeof why), SY_OK);
    assert_true(sy_datadir_rejoin_marked(f->dir));
    assert_int_equal(sy_datadir_rejoin_clear(f->dir, why, sizeof why), SY_OK);
    assert_false(sy_datadir_rejoin_marked(f->dir));
    assert_int_equal(sy_datadir_rejoin_clear(f->dir, why, sizeof why), SY_OK);
    assert_int_equal(sy_datadir_rejoin_mark("/nonexistent/synod-dir", why, sizeof why), SY_EIO);
    assert_non_null(strstr(why, "/nonexistent/synod-dir/rejoin"));
}

static void test_a_data_directory_keeps_the_identity_it_first_served(void **state)
{
    fx *f = *state;
    sy_storage *s;
    char err[SY_STORAGE_ERRMSG], why[512] = "";
    assert_int_equal(sy_storage_lmdb_open(f->dir, NULL, &s, err), SY_OK);
    sy_pubkey k0, k1;
    memset(k0.b, 0xa0, sizeof k0.b);
    memset(k1.b, 0xb1, sizeof k1.b);
    sy_datadir_id me = { "demo", "pbft", 0, &k0 };
    assert_int_equal(sy_datadir_identity(s, &me, why, sizeof why), SY_OK);   /* recorded */
    sy_storage_close(s);
    assert_int_equal(sy_storage_lmdb_open(f->dir, NULL, &s, err), SY_OK);
    assert_int_equal(sy_datadir_identity(s, &me, why, sizeof why), SY_OK);   /* the same */
    /* another node of the cluster: refused, naming both */
    sy_datadir_id other = { "demo", "pbft", 1, &k1 };
    assert_int_equal(sy_datadir_identity(s, &other, why, sizeof why), SY_ECONFIG);
    assert_non_null(strstr(why, "belongs to node 0 of cluster 'demo' (pbft), not to node 1"));
    /* another cluster with the same node id */
    sy_datadir_id alien = { "prod", "raft", 0, &k0 };
    assert_int_equal(sy_datadir_identity(s, &alien, why, sizeof why), SY_ECONFIG);
    assert_non_null(strstr(why, "not to node 0 of cluster 'prod' (raft)"));
    /* this node and key, the [cluster] id renamed: said as such */
    sy_datadir_id renamed = { "demo2", "pbft", 0, &k0 };
    assert_int_equal(sy_datadir_identity(s, &renamed, why, sizeof why), SY_ECONFIG);
    assert_string_equal(why, "the data directory belongs to cluster 'demo'; the manifest now "
                        "says 'demo2': a node's data stays with its cluster (put id = demo back "
                        "in [cluster] on every node, or start every node on an empty data "
                        "directory)");
    /* this node with regenerated keys */
    sy_datadir_id rekeyed = { "demo", "pbft", 0, &k1 };
    assert_int_equal(sy_datadir_identity(s, &rekeyed, why, sizeof why), SY_ECONFIG);
    assert_non_null(strstr(why, "another public key"));
    /* this node, its manifest switched to another protocol: the fix is named */
    sy_datadir_id switched = { "demo", "raft", 0, &k0 };
    assert_int_equal(sy_datadir_identity(s, &switched, why, sizeof why), SY_ECONFIG);
    assert_non_null(strstr(why, "holds node 0's pbft state, and its manifest now says raft"));
    assert_non_null(strstr(why, "switches protocol only on empty data directories"));
    /* refusals change nothing: the first identity still passes */
    assert_int_equal(sy_datadir_identity(s, &me, why, sizeof why), SY_OK);
    sy_storage_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_second_process_on_a_data_directory_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_data_directory_of_another_user_is_a_permission_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_mark_lasts_until_cleared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_data_directory_keeps_the_identity_it_first_served,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
