/* synod-keys command line: parses arguments, runs a subcommand, maps the
 * result to the exit codes of the product brief, and prints at most one
 * line on stderr naming what is wrong and the fix (on success, a line per
 * warning: a cluster that tolerates no failure, new keys over a data
 * directory a node ran on). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/config.h"
#include "crypto/keyfile.h"
#include "crypto/sy_err.h"
#include "keys/keys.h"

static const char usage_top[] =
    "usage: synod-keys COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  gen --out FILE [--force]     new key pair: FILE (secret, mode 0600) and FILE.pub\n"
    "  pub FILE                     print the public key (base64) of a key file\n"
    "  cluster --protocol raft|paxos|pbft --nodes N [--f F] [--host H]\n"
    "          [--base-port P] [--clients K] [--id NAME] [--force] --out DIR\n"
    "                               keys, manifest and node files for a cluster\n"
    "\n"
    "Run 'synod-keys COMMAND --help' for a command's options.\n"
    "Exit codes: 0 ok, 1 run-time failure (I/O, files exist), 2 usage or\n"
    "configuration error.\n";

static const char usage_gen[] =
    "usage: synod-keys gen --out FILE [--force]\n"
    "\n"
    "Writes a new Ed25519 key: the secret seed to FILE (mode 0600) and the\n"
    "public key to FILE.pub (mode 0644). Refuses to replace existing files\n"
    "unless --force is given.\n";

static const char usage_pub[] =
    "usage: synod-keys pub FILE\n"
    "\n"
    "Prints the base64 public key of FILE, which may be a secret key file\n"
    "(checked for mode 0600) or a .pub file. Paste it as public_key in the\n"
    "cluster manifest.\n";

static const char usage_cluster[] =
    "usage: synod-keys cluster --protocol raft|paxos|pbft --nodes N [--f F]\n"
    "                          [--host H] [--base-port P] [--clients K]\n"
    "                          [--id NAME] [--force] --out DIR\n"
    "\n"
    "Writes DIR/cluster.ini, DIR/node-<i>.ini, DIR/keys/node-<i>.key(.pub),\n"
    "DIR/keys/client-<k>.key(.pub) and DIR/data/node-<i>/, then loads the\n"
    "result back to check it.\n"
    "\n"
    "  --protocol P    raft or paxos (n >= 2f+1) or pbft (n >= 3f+1)\n"
    "  --nodes N       number of replicas, 1..64\n"
    "  --f F           faults to tolerate (default: the most N allows)\n"
    "  --host H        host in every address (default 127.0.0.1)\n"
    "  --base-port P   peer port P+i, client port P+100+i, metrics port\n"
    "                  P+200+i (default 7000)\n"
    "  --clients K     client keys client-0..client-K-1 (default 1)\n"
    "  --id NAME       cluster id (default synod)\n"
    "  --force         replace existing keys and files in DIR\n"
    "  --out DIR       output directory (created if missing)\n";

static int usage_error(const char *fmt, const char *arg, const char *cmd)
{
    fprintf(stderr, "synod-keys: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; see 'synod-keys %s--help'\n", cmd);
    return SY_EXIT_USAGE;
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* Matches "--name VALUE" or "--name=VALUE"; advances *i past what it used.
 * Returns 1 matched, 0 not this option, -1 matched but value missing. */
static int opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t l = strlen(name);
    if (strncmp(a, name, l) != 0)
        return 0;
    if (a[l] == '=') {
        *val = a + l + 1;
        return 1;
    }
    if (a[l] != 0)
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

static bool parse_u32(const char *s, uint32_t *out)
{
    if (!*s || strlen(s) > 9)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    *out = (uint32_t)strtoul(s, NULL, 10);
    return true;
}

/* Key-file failures: missing, unreadable or malformed input is the
 * operator's to fix (2); I/O and existing outputs are run-time failures (1). */
static int exit_for(int rc)
{
    switch (rc) {
    case SY_OK: return SY_EXIT_OK;
    case SY_EIO: case SY_ENOMEM: case SY_EEXIST: case SY_EFATAL: return SY_EXIT_FAIL;
    default: return SY_EXIT_USAGE;
    }
}

static int cmd_gen(int argc, char **argv)
{
    const char *out = NULL;
    bool force = false;
    for (int i = 0; i < argc; i++) {
        const char *v;
        int m;
        if (is_help(argv[i])) {
            fputs(usage_gen, stdout);
            return SY_EXIT_OK;
        }
        if ((m = opt(argc, argv, &i, "--out", &v)) != 0) {
            if (m < 0)
                return usage_error("%s needs a value (the key file to write)", "--out",
                                   "gen ");
            out = v;
        } else if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else {
            return usage_error("unknown argument '%s' to gen", argv[i], "gen ");
        }
    }
    if (!out || !out[0])
        return usage_error("%s: missing --out FILE (where to write the key)", "gen", "gen ");
    sy_seckey *sk = NULL;
    int rc = sy_seckey_generate(&sk);
    if (rc) {
        fprintf(stderr, "synod-keys: cannot generate a key: %s\n", sy_strerror(rc));
        return SY_EXIT_FAIL;
    }
    char why[1024];
    rc = sy_keyfile_save(out, sk, force ? SY_KEYFILE_FORCE : 0, why, sizeof why);
    sy_seckey_free(sk);
    if (rc) {
        fprintf(stderr, "synod-keys: %s\n", why);
        return exit_for(rc) == SY_EXIT_USAGE ? SY_EXIT_FAIL : exit_for(rc);
    }
    return SY_EXIT_OK;
}

static int cmd_pub(int argc, char **argv)
{
    const char *file = NULL;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_pub, stdout);
            return SY_EXIT_OK;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return usage_error("unknown option '%s' to pub", argv[i], "pub ");
        if (file)
            return usage_error("pub takes one FILE, got also '%s'", argv[i], "pub ");
        file = argv[i];
    }
    if (!file)
        return usage_error("%s: missing FILE (a key file)", "pub", "pub ");
    sy_pubkey pk;
    char why[1024];
    int rc = sy_keyfile_load_any_public(file, &pk, why, sizeof why);
    if (rc) {
        fprintf(stderr, "synod-keys: %s\n", why);
        return exit_for(rc);
    }
    char b64[SY_KEY_B64_LEN];
    sy_pubkey_to_b64(&pk, b64);
    printf("%s\n", b64);
    return fflush(stdout) == 0 ? SY_EXIT_OK : SY_EXIT_FAIL;
}

/* Whether any of DIR/data/node-<i> (i < n) holds files: a node ran there. */
static bool data_in_use(const char *dir, uint32_t n)
{
    char p[4200];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/data/node-%u", dir, i);
        DIR *d = opendir(p);
        if (!d)
            continue;
        struct dirent *e;
        bool any = false;
        while (!any && (e = readdir(d)) != NULL)
            any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
        closedir(d);
        if (any)
            return true;
    }
    return false;
}

static int cmd_cluster(int argc, char **argv)
{
    sy_keys_cluster_opts o = {
        .host = SY_KEYS_DEFAULT_HOST,
        .base_port = SY_KEYS_DEFAULT_BASE_PORT,
        .clients = 1,
    };
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (is_help(argv[i])) {
            fputs(usage_cluster, stdout);
            return SY_EXIT_OK;
        }
        if (strcmp(argv[i], "--force") == 0) {
            o.force = true;
            continue;
        }
        static const char *const named[] = {"--protocol", "--nodes", "--f", "--host",
                                             "--base-port", "--clients", "--out", "--id"};
        size_t k;
        m = 0;
        for (k = 0; k < sizeof named / sizeof named[0]; k++)
            if ((m = opt(argc, argv, &i, named[k], &v)) != 0)
                break;
        if (m == 0)
            return usage_error("unknown argument '%s' to cluster", argv[i], "cluster ");
        if (m < 0)
            return usage_error("%s needs a value", named[k], "cluster ");
        uint32_t num = 0;
        switch (k) {
        case 0:
            if (sy_protocol_parse(v, &o.protocol) != SY_OK)
                return usage_error("unknown protocol '%s'; use raft, paxos or pbft", v,
                                   "cluster ");
            break;
        case 1: case 2: case 4: case 5:
            if (!parse_u32(v, &num))
                return usage_error("%s needs a whole number", named[k], "cluster ");
            if (k == 1 && num == 0)
                return usage_error("%s must be 1 or more", named[k], "cluster ");
            if (k == 1)
                o.nodes = num;
            else if (k == 2) {
                o.f = num;
                o.f_set = true;
            } else if (k == 4)
                o.base_port = num;
            else
                o.clients = num;
            break;
        case 3: o.host = v; break;
        case 6: o.out_dir = v; break;
        default: o.cluster_id = v; break;
        }
    }
    if (o.nodes == 0 && o.protocol != SY_PROTO_NONE && o.out_dir)
        return usage_error("%s: missing --nodes N (number of replicas)", "cluster",
                           "cluster ");
    char why[1024];
    int rc = sy_keys_cluster_check(&o, why, sizeof why);
    if (rc) {
        fprintf(stderr, "synod-keys: %s; see 'synod-keys cluster --help'\n", why);
        return SY_EXIT_USAGE;
    }
    /* --force over a cluster that ran: its nodes' directories still hold
     * state signed with the old keys, and every node would refuse them */
    bool stale_data = o.force && o.out_dir && data_in_use(o.out_dir, o.nodes);
    rc = sy_keys_cluster(&o, why, sizeof why);
    if (rc) {
        fprintf(stderr, "synod-keys: %s\n", why);
        return rc == SY_ECONFIG ? SY_EXIT_USAGE : SY_EXIT_FAIL;
    }
    /* what the size tolerates: PBFT's quorums follow the configured f;
     * Raft's and Paxos' are majorities whatever f says */
    bool none = o.protocol == SY_PROTO_PBFT ? o.f == 0 && o.nodes > 1 : o.nodes == 2;
    if (none && o.protocol == SY_PROTO_PBFT && o.nodes >= sy_protocol_min_n(o.protocol, 1))
        /* enough nodes, f left at 0: the fix is --f, not more nodes */
        fprintf(stderr, "synod-keys: warning: %u pbft nodes tolerate no failure with --f 0; "
                "give --f 1 (up to %u for %u nodes)\n", o.nodes, (o.nodes - 1) / 3, o.nodes);
    else if (none)
        fprintf(stderr, "synod-keys: warning: %u %s nodes tolerate no failure (f=0); %s needs "
                "%u nodes for f=1\n", o.nodes, sy_protocol_name(o.protocol),
                sy_protocol_name(o.protocol), sy_protocol_min_n(o.protocol, 1));
    if (stale_data)
        fprintf(stderr, "synod-keys: warning: %s/data still holds the old nodes' state, which "
                "the new keys cannot use: empty it before starting the nodes\n", o.out_dir);
    printf("wrote %s cluster of %u nodes (f=%u) and %u client key%s to %s\n"
           "start node i with: synod --config %s/node-<i>.ini\n",
           sy_protocol_name(o.protocol), o.nodes, o.f, o.clients, o.clients == 1 ? "" : "s",
           o.out_dir, o.out_dir);
    return SY_EXIT_OK;
}

int sy_keys_main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("synod-keys: missing command; commands are gen, pub and cluster; see "
              "'synod-keys --help'\n", stderr);
        return SY_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (is_help(cmd) || strcmp(cmd, "help") == 0) {
        fputs(usage_top, stdout);
        return SY_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("synod-keys %s\n", SYNOD_VERSION);
        return SY_EXIT_OK;
    }
    if (sy_crypto_init() != SY_OK) {
        fprintf(stderr, "synod-keys: cannot initialise libsodium\n");
        return SY_EXIT_FAIL;
    }
    if (strcmp(cmd, "gen") == 0)
        return cmd_gen(argc - 2, argv + 2);
    if (strcmp(cmd, "pub") == 0)
        return cmd_pub(argc - 2, argv + 2);
    if (strcmp(cmd, "cluster") == 0)
        return cmd_cluster(argc - 2, argv + 2);
    return usage_error("unknown command '%s'; commands are gen, pub and cluster", cmd, "");
}
