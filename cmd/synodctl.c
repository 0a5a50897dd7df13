/* synodctl: command-line client for a synod cluster (docs/client.md).
 *
 * Exit codes: 0 success; 1 the operation failed at run time (not found, cas
 * mismatch, cluster unreachable, no quorum before the deadline, refused by
 * the cluster); 2 usage or configuration error (bad arguments, manifest or
 * key file problems, key not in the manifest, key/value over the limits). */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "net/client.h"
#include "core/config.h"
#include "core/datadir.h"
#include "core/evidence.h"
#include "core/engine.h"
#include "core/ledger.h"
#include "crypto/keyfile.h"
#include "crypto/sy_err.h"
#include "cmd/synodctl/bench_loop.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define DEFAULT_TIMEOUT_MS 5000
#define STATUS_TIMEOUT_MS 2000
#define BENCH_MAX_CLIENTS 1024
#define BENCH_KEY_LEN 16

static const char usage_text[] =
    "usage: synodctl --cluster DIR/cluster.ini [--key FILE] [--timeout MS] [--stale] COMMAND\n"
    "\n"
    "commands:\n"
    "  put KEY VALUE            store VALUE under KEY (--stdin: VALUE from stdin)\n"
    "  get KEY                  print KEY's value\n"
    "  del KEY                  delete KEY\n"
    "  cas KEY OLD NEW          set KEY to NEW if its value is OLD\n"
    "  cas --absent KEY NEW     set KEY to NEW if KEY does not exist\n"
    "  scan FROM TO [--limit N] print keys in [FROM, TO) as KEY<TAB>VALUE lines\n"
    "                           (TO = \"\" scans to the end)\n"
    "  status [--json]          every node's role, term, leader, indexes, peers\n"
    "  transfer [--to N]        move leadership off the current leader (to node N;\n"
    "                           PBFT: the next view's primary) and wait until\n"
    "                           another node leads; needs a key marked admin\n"
    "  bench [--clients C] [--requests N | --duration S] [--value-size B]\n"
    "        [--read-ratio R] [--keys K] [--threads]\n"
    "                           load test: C clients (client keys client-0..C-1\n"
    "                           next to the manifest), 16-byte keys, driven\n"
    "                           from one event loop over tcp:// (--threads, or\n"
    "                           tls+tcp:// or ipc:// addresses: one thread per\n"
    "                           client through the client library)\n"
    "  ledger verify --cluster DIR/cluster.ini DATA_DIR\n"
    "                           check a node's hash-chained ledger offline\n"
    "\n"
    "options:\n"
    "  --cluster FILE   the cluster manifest (required)\n"
    "  --key FILE       client secret key (default: keys/client-0.key next to\n"
    "                   the manifest)\n"
    "  --timeout MS     deadline for each operation, retries included (default 5000)\n"
    "  --stale          allow get, scan and bench's reads to be served from\n"
    "                   possibly stale state\n"
    "  --stdin          put/cas: read the new VALUE from standard input (any bytes,\n"
    "                   up to the value limit) instead of the last argument\n"
    "  --help           this text\n"
    "  An option that takes a value takes it as --name VALUE or --name=VALUE.\n"
    "\n"
    "exit codes:\n"
    "  0  success\n"
    "  1  the operation failed at run time: key not found (get, del), cas found\n"
    "     another value (printed on stdout), cluster unreachable, no leader or\n"
    "     quorum before the deadline, request refused by the cluster\n"
    "  2  usage or configuration error: bad arguments, unreadable manifest or\n"
    "     key file, key not listed in the manifest (or, for transfer, not marked\n"
    "     admin), a manifest whose cluster id the nodes do not have, key or value\n"
    "     too large\n";

typedef struct args {
    const char *cluster, *key;
    int timeout_ms;             /* what is left of the deadline for the call */
    int timeout_given;          /* --timeout as given, for messages */
    bool stale, json, absent, stdin_value, threads;
    uint32_t limit;
    uint32_t clients;
    uint64_t requests;
    double duration_s;
    size_t value_size;
    double read_ratio;
    uint32_t keys;
    uint32_t to;                /* transfer --to; SY_NO_NODE if absent */
    const char *pos[8];
    int npos;
    /* options that apply to some commands only: the first one given, for
     * the check once the command is known (opt_check) */
    const char *only[16];
    int n_only;
} args;

static void die_usage(const char *fmt, const char *a)
{
    fprintf(stderr, "synodctl: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, " (see synodctl --help)\n");
    exit(EXIT_USAGE);
}

static uint64_t parse_u64(const char *opt, const char *v, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x < min || x > max) {
        fprintf(stderr, "synodctl: %s wants a whole number in [%" PRIu64 ", %" PRIu64 "], got '%s'\n",
                opt, min, max, v);
        exit(EXIT_USAGE);
    }
    return x;
}

static double parse_double(const char *opt, const char *v, double min, double max)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= min && x <= max)) {
        fprintf(stderr, "synodctl: %s wants a number in [%g, %g], got '%s'\n", opt, min, max, v);
        exit(EXIT_USAGE);
    }
    return x;
}

static void parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->timeout_ms = DEFAULT_TIMEOUT_MS;
    a->clients = 1;
    a->value_size = 16;
    a->read_ratio = 0.5;
    a->keys = 1000;
    a->to = SY_NO_NODE;
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        /* --name=value is --name value: s is the name alone, inl the value */
        char name[32];
        const char *inl = NULL;
        if (!opts_done && s[0] == '-' && s[1] == '-' && strchr(s, '=') > s + 2) {
            size_t nl = (size_t)(strchr(s, '=') - s);
            if (nl >= sizeof name)
                nl = sizeof name - 1;   /* no option is that long: unknown */
            memcpy(name, s, nl);
            name[nl] = '\0';
            inl = strchr(s, '=') + 1;
            s = name;
        }
#define VAL() (inl ? (inl[0] ? inl : (die_usage("%s needs a value after '='", s), ""))      \
                   : i + 1 < argc ? argv[++i] : (die_usage("%s needs a value", s), ""))
        if (!opts_done && s[0] == '-' && s[1] == '-' && s[2] && strcmp(s, "--cluster") &&
            strcmp(s, "--key") && strcmp(s, "--timeout") && strcmp(s, "--help") &&
            strcmp(s, "--version") && a->n_only < (int)(sizeof a->only / sizeof a->only[0]))
            a->only[a->n_only++] = argv[i];   /* the name is what comes before any '=' */
        /* a flag given a value is a mistake, not a flag */
        static const char *const flags[] = { "--help", "--version", "--stale", "--json",
                                             "--absent", "--stdin", "--threads" };
        for (size_t f = 0; inl && f < sizeof flags / sizeof flags[0]; f++)
            if (!strcmp(s, flags[f]))
                die_usage("%s takes no value", s);
        if (opts_done || !strcmp(s, "--")) {
            /* after "--" everything is an argument: keys may start with "--" */
            if (opts_done) {
                if (a->npos == (int)(sizeof a->pos / sizeof a->pos[0]))
                    die_usage("too many arguments (at '%s')", s);
                a->pos[a->npos++] = s;
            }
            opts_done = true;
        } else if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(usage_text, stdout);
            exit(0);
        } else if (!strcmp(s, "--version")) {
            printf("synodctl %s (envelope format %d)\n", SYNOD_VERSION, SY_ENV_VERSION);
            exit(0);
        } else if (!strcmp(s, "--cluster")) {
            a->cluster = VAL();
        } else if (!strcmp(s, "--key")) {
            a->key = VAL();
        } else if (!strcmp(s, "--timeout")) {
            a->timeout_ms = (int)parse_u64(s, VAL(), 1, 24u * 3600u * 1000u);
        } else if (!strcmp(s, "--stale")) {
            a->stale = true;
        } else if (!strcmp(s, "--json")) {
            a->json = true;
        } else if (!strcmp(s, "--absent")) {
            a->absent = true;
        } else if (!strcmp(s, "--stdin")) {
            a->stdin_value = true;
        } else if (!strcmp(s, "--threads")) {
            a->threads = true;
        } else if (!strcmp(s, "--limit")) {
            a->limit = (uint32_t)parse_u64(s, VAL(), 1, SY_MAX_SCAN);
        } else if (!strcmp(s, "--clients")) {
            a->clients = (uint32_t)parse_u64(s, VAL(), 1, BENCH_MAX_CLIENTS);
        } else if (!strcmp(s, "--requests")) {
            a->requests = parse_u64(s, VAL(), 1, UINT64_MAX / 2);
        } else if (!strcmp(s, "--duration")) {
            a->duration_s = parse_double(s, VAL(), 0.001, 86400.0);
        } else if (!strcmp(s, "--value-size")) {
            a->value_size = (size_t)parse_u64(s, VAL(), 0, SY_MAX_VALUE);
        } else if (!strcmp(s, "--read-ratio")) {
            a->read_ratio = parse_double(s, VAL(), 0.0, 1.0);
        } else if (!strcmp(s, "--keys")) {
            a->keys = (uint32_t)parse_u64(s, VAL(), 1, UINT32_MAX);
        } else if (!strcmp(s, "--to")) {
            a->to = (uint32_t)parse_u64(s, VAL(), 0, SY_MAX_NODES - 1);
        } else if (s[0] == '-' && s[1] == '-' && s[2]) {
            die_usage("unknown option %s", argv[i]);
        } else {
            if (a->npos == (int)(sizeof a->pos / sizeof a->pos[0]))
                die_usage("too many arguments (at '%s')", s);
            a->pos[a->npos++] = s;
        }
#undef VAL
    }
}

/* Options that belong to other commands are refused, not ignored: a
 * `get --json` printing plain text, or a `put --limit` doing nothing,
 * would hide a mistake. */
static void opt_check(const args *a, const char *cmd)
{
    static const struct { const char *opt, *cmds, *say; } owner[] = {
        {"--stale", " get scan bench ", "get, scan and bench"}, {"--json", " status ", "status"},
        {"--absent", " cas ", "cas"}, {"--stdin", " put cas ", "put and cas"},
        {"--limit", " scan ", "scan"}, {"--to", " transfer ", "transfer"},
        {"--clients", " bench ", "bench"}, {"--requests", " bench ", "bench"},
        {"--duration", " bench ", "bench"}, {"--value-size", " bench ", "bench"},
        {"--read-ratio", " bench ", "bench"}, {"--keys", " bench ", "bench"},
        {"--threads", " bench ", "bench"},
    };
    char word[32];
    snprintf(word, sizeof word, " %s ", cmd);
    for (int i = 0; i < a->n_only; i++) {
        int nl = (int)strcspn(a->only[i], "=");   /* --name=value names --name */
        for (size_t j = 0; j < sizeof owner / sizeof owner[0]; j++) {
            if (strncmp(a->only[i], owner[j].opt, (size_t)nl) || owner[j].opt[nl] ||
                strstr(owner[j].cmds, word))
                continue;
            fprintf(stderr, "synodctl: %.*s does not apply to %s, only to %s (see synodctl "
                    "--help)\n", nl, a->only[i], cmd, owner[j].say);
            exit(EXIT_USAGE);
        }
    }
}

static void need_args(const args *a, int n, const char *form)
{
    if (a->npos != n)
        die_usage("usage: synodctl --cluster FILE %s", form);
}

/* DIR/keys/client-<k>.key next to the manifest. */
static void client_key_path(const char *cluster, uint32_t k, char *out, size_t outlen)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", cluster);
    snprintf(out, outlen, "%s/keys/client-%u.key", dirname(tmp), k);
}

static int exit_for_open(int rc)
{
    return rc == SY_ENOMEM || rc == SY_EIO ? EXIT_RUNTIME : EXIT_USAGE;
}

static uint64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One client key is one sequential client: its requests are executed in
 * request-number order and a repeated number is taken for a retry, so
 * synodctl processes sharing a key (parallel shell loops, a put beside a
 * bench) failed each other's requests as stale, and now and then one got
 * the other's acknowledgement for a write of its own that was never
 * applied. Each process therefore holds an exclusive lock on the key file
 * while it uses the identity (until it exits), and another one waits for
 * it until its deadline. Returns the milliseconds waited. */
static uint64_t lock_key_or_die(const char *key, uint64_t deadline_ms)
{
    /* read-write where we may: NFS emulates flock with POSIX locks, and an
     * exclusive one needs a file open for writing */
    int fd = open(key, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fd = open(key, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;   /* sy_client_open says what is wrong with the file */
    uint64_t t0 = clock_ms(), now = t0;
    bool told = false;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return now - t0;   /* fd stays open: the lock lasts until exit */
        if (errno != EWOULDBLOCK && errno != EINTR) {
            fprintf(stderr, "synodctl: cannot lock client key %s (%s): going on without; "
                    "another synodctl using this key at the same time would fail or be "
                    "confused with this one\n", key, strerror(errno));
            close(fd);
            return now - t0;
        }
        if (now >= deadline_ms) {
            fprintf(stderr, "synodctl: client key %s stayed in use by another process (a "
                    "synodctl or bench with the same key) for %" PRIu64 " ms: one key is one "
                    "client, one request at a time; use another key (--key) or try again\n",
                    key, now - t0);
            exit(EXIT_RUNTIME);
        }
        if (!told && now - t0 >= 1000) {
            fprintf(stderr, "synodctl: waiting for client key %s, in use by another process\n",
                    key);
            told = true;
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
        now = clock_ms();
    }
}

/* exclusive: lock the key for requests with request numbers (everything
 * but status); *waited (if non-NULL) gets the ms spent waiting for it. */
static sy_client *open_or_die(const args *a, const char *key, bool exclusive,
                              uint64_t *waited)
{
    sy_client *c;
    char why[512] = "";
    char def[PATH_MAX];
    if (!key) {
        client_key_path(a->cluster, 0, def, sizeof def);
        key = def;
    }
    uint64_t w = exclusive ? lock_key_or_die(key, clock_ms() + (uint64_t)a->timeout_ms) : 0;
    if (waited)
        *waited = w;
    int rc = sy_client_open(a->cluster, key, &c, why, sizeof why);
    if (rc) {
        fprintf(stderr, "synodctl: %s\n", why[0] ? why : sy_strerror(rc));
        exit(exit_for_open(rc));
    }
    sy_client_opts o = { .attempt_ms = 0, .stale_reads = a->stale };
    sy_client_set_opts(c, &o);
    return c;
}

/* Turns a call's failure into one line that tells unreachable from no
 * quorum by asking every node for its status. */
/* The nodes refused us for another cluster id than the manifest's: the
 * manifest is the wrong one (a configuration error). true: said so. */
static bool foreign_cluster(sy_client *c, const char *what)
{
    char their[SY_MAX_CLUSTER_ID + 1];
    if (!sy_client_their_cluster(c, their))
        return false;
    const sy_cluster_cfg *cfg = sy_client_cluster(c);
    fprintf(stderr, "synodctl: %s: the nodes belong to cluster '%s', but %s says '%s': use "
            "the cluster's own manifest\n", what, their, cfg->path[0] ? cfg->path : "the manifest",
            cfg->id);
    return true;
}

static int fail_call(sy_client *c, const args *a, const char *what, int rc)
{
    if ((rc == SY_ECLUSTER || rc == SY_ETIMEOUT) && foreign_cluster(c, what))
        return EXIT_USAGE;
    if (rc == SY_ETIMEOUT) {
        /* the connections say which it is; a status round here cost up to
         * 2 s past the deadline the user gave */
        const sy_cluster_cfg *cfg = sy_client_cluster(c);
        uint32_t up = sy_client_connected(c);
        if (up == 0)
            fprintf(stderr, "synodctl: %s: cluster unreachable: none of the %u nodes answered "
                    "(is synod running? node 0 client address %s)\n",
                    what, cfg->n, cfg->nodes[0].client);
        else
            fprintf(stderr, "synodctl: %s: no leader/quorum answered within %d ms (%u of %u "
                    "nodes connected; see synodctl status).%s\n", what, a->timeout_given, up,
                    cfg->n, strcmp(what, "get") && strcmp(what, "scan")
                                ? " The operation may or may not have taken effect." : "");
        return EXIT_RUNTIME;
    }
    if (rc == SY_ESTALE) {
        /* No automatic renumbering: a node answers this from its session,
         * which does not prove the request was never executed (it may have
         * been, just before a newer number of another process or an earlier
         * run of this key was applied) -- retrying under a new number could
         * apply it twice. */
        fprintf(stderr, "synodctl: %s: refused as an old request: the cluster holds a newer "
                "request number for this client key than this machine's clock gives (the "
                "clock stepped back, or another process uses the key). The operation may or "
                "may not have taken effect; calls succeed again once the clock has passed "
                "that number\n", what);
        return EXIT_RUNTIME;
    }
    if (rc == SY_ETOOBIG) {
        fprintf(stderr, "synodctl: %s: key or value too large (limits: key %u bytes, value %u "
                "bytes)\n", what, SY_MAX_KEY, SY_MAX_VALUE);
        return EXIT_USAGE;
    }
    /* Nodes of the other kind refuse a client whose manifest names a
     * crash-fault protocol for a PBFT cluster, or the reverse (core/msg.h):
     * it would trust their replies the wrong way. */
    if (rc == SY_ECONFIG) {
        const sy_cluster_cfg *cfg = sy_client_cluster(c);
        bool bft = cfg->protocol == SY_PROTO_PBFT;
        fprintf(stderr, "synodctl: %s: refused: the nodes run %s, but %s says %s: use the "
                "cluster's own manifest\n", what, bft ? "a crash-fault protocol (raft or paxos)"
                : "pbft", cfg->path[0] ? cfg->path : "synodctl's manifest",
                sy_protocol_name(cfg->protocol));
        return EXIT_USAGE;
    }
    /* PBFT replicas whose manifest gives another n, f or node keys than
     * ours refuse us (core/msg.h): we would count their replies against
     * the wrong f. */
    if (rc == SY_EMEMBERSHIP) {
        const sy_cluster_cfg *cfg = sy_client_cluster(c);
        fprintf(stderr, "synodctl: %s: refused: the replicas' manifest differs from %s (n=%u, "
                "f=%u) in n, f or the node keys, so this client would count their replies "
                "wrongly: use the cluster's own manifest\n", what,
                cfg->path[0] ? cfg->path : "synodctl's manifest", cfg->n, cfg->f);
        return EXIT_USAGE;
    }
    /* Only a node's signed refusal ends a call with these: our own
     * manifest lists the key (sy_client_open checked), the nodes' copy
     * does not (SY_EUNAUTH) or lists another key under its client id
     * (SY_ESIG, the request's signature failing against that key). */
    if (rc == SY_EUNAUTH || rc == SY_ESIG) {
        const sy_cluster_cfg *cfg = sy_client_cluster(c);
        const sy_client_entry *me = sy_cluster_client(cfg, sy_client_id(c));
        fprintf(stderr, "synodctl: %s: refused: this client key is not authorised by the "
                "cluster (the nodes' manifest %s client '%s' that %s lists: give every node "
                "the same manifest, then restart them)\n", what,
                rc == SY_EUNAUTH ? "has no" : "has another public key for the",
                me ? me->name : "?", cfg->path[0] ? cfg->path : "synodctl's manifest");
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "synodctl: %s failed: %s\n", what, sy_strerror(rc));
    return EXIT_RUNTIME;
}

static void print_bytes(FILE *f, const uint8_t *p, size_t n)
{
    if (n)
        fwrite(p, 1, n, f);
}

/* ---------------------------------------------------------------- status */

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void json_node(const char *key, uint32_t node)
{
    if (node == SY_NO_NODE)
        printf("%snull", key);
    else
        printf("%s%u", key, node);
}

/* The status table's "suspects": whom the node names as faulty, the
 * latest of each kind -- "n3 (evidence)" (two conflicting statements it
 * signed: proof), "n3 (bad sig)" (a statement that does not verify), "n3
 * or n0 (votes)" (votes against the pre-prepare the node accepted from
 * primary n0: one of the two; "n3 (votes)" when the node itself was that
 * primary, or n3 was); "-" when none. */
static void suspects(const sy_client_node_status *s, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
#define SUS(...)                                                                   \
    do {                                                                           \
        int k = snprintf(out + len, cap - len, "%s", len ? ", " : "");             \
        if (k > 0 && (size_t)k < cap - len)                                        \
            len += (size_t)k;                                                      \
        k = snprintf(out + len, cap - len, __VA_ARGS__);                           \
        if (k > 0 && (size_t)k < cap - len)                                        \
            len += (size_t)k;                                                      \
    } while (0)
    if (s->evidence && s->evidence_from != SY_NO_NODE)
        SUS("n%u (evidence)", s->evidence_from);
    if (s->bad_sigs && s->bad_sig_from != SY_NO_NODE)
        SUS("n%u (bad sig)", s->bad_sig_from);
    /* a correct primary knows the one pre-prepare it signed: votes against
     * its own are the voter's fault alone; and a primary whose own commit
     * contradicts its pre-prepare is at fault whoever reports it */
    if (s->dissent && s->dissent_from != SY_NO_NODE &&
        (s->dissent_primary == s->node || s->dissent_primary == s->dissent_from))
        SUS("n%u (votes)", s->dissent_from);
    else if (s->dissent && s->dissent_from != SY_NO_NODE)
        SUS("n%u or n%u (votes)", s->dissent_from, s->dissent_primary);
#undef SUS
    if (!len)
        snprintf(out, cap, "-");
}

static int cmd_status(sy_client *c, const args *a)
{
    const sy_cluster_cfg *cfg = sy_client_cluster(c);
    sy_client_node_status *st = calloc(cfg->n, sizeof *st);
    uint32_t up = 0;
    if (!st)
        return EXIT_RUNTIME;
    sy_client_status_all(c, a->timeout_ms < STATUS_TIMEOUT_MS ? a->timeout_ms : STATUS_TIMEOUT_MS,
                         st);
    if (a->json) {
        printf("[");
        for (uint32_t i = 0; i < cfg->n; i++) {
            const sy_client_node_status *s = &st[i];
            printf("%s\n  {\"node\": %u, \"address\": ", i ? "," : "", i);
            json_str(cfg->nodes[i].client);
            /* every node has reachable and connected (a node that answered
             * did so over a connection); the rest only nodes that answered */
            if (s->rc != SY_OK) {
                printf(", \"reachable\": false, \"connected\": %s}",
                       sy_client_node_connected(c, i) ? "true" : "false");
                continue;
            }
            char sd[65], lh[65];
            sy_digest_hex(&s->state_digest, 32, sd);
            sy_digest_hex(&s->ledger_head, 32, lh);
            printf(", \"reachable\": true, \"connected\": true, \"protocol\": ");
            json_str(s->protocol);
            printf(", \"role\": \"%s\", \"term\": %" PRIu64 ", \"leader\": ",
                   sy_role_name(s->role), s->term);
            if (s->leader == SY_NO_NODE)
                printf("null");
            else
                printf("%u", s->leader);
            printf(", \"last_index\": %" PRIu64 ", \"commit_index\": %" PRIu64
                   ", \"applied_index\": %" PRIu64 ", \"snapshot_index\": %" PRIu64
                   ", \"peers_connected\": %u, \"evidence\": %" PRIu64,
                   s->last_index, s->commit_index, s->applied_index, s->snap_index,
                   s->peers_connected, s->evidence);
            json_node(", \"evidence_from\": ", s->evidence_from);
            printf(", \"bad_signatures\": %" PRIu64, s->bad_sigs);
            json_node(", \"bad_signature_from\": ", s->bad_sig_from);
            printf(", \"dissenting_votes\": %" PRIu64, s->dissent);
            json_node(", \"dissent_from\": ", s->dissent_from);
            json_node(", \"dissent_primary\": ", s->dissent_primary);
            printf(", \"leader_changes\": %" PRIu64 ", \"state_digest\": \"%s\""
                   ", \"ledger_head\": \"%s\"}", s->leader_changes, sd, lh);
            up++;
        }
        printf("\n]\n");
    } else {
        printf("%-4s %-6s %-13s %8s %6s %10s %10s %10s %5s %8s  %s\n", "node", "proto", "role",
               "term", "leader", "commit", "applied", "snapshot", "peers", "evidence",
               "suspects");
        for (uint32_t i = 0; i < cfg->n; i++) {
            const sy_client_node_status *s = &st[i];
            if (s->rc != SY_OK) {
                printf("%-4u %s (%s)\n", i,
                       s->rc == SY_ECLUSTER ? "answers for another cluster id"
                       : sy_client_node_connected(c, i) ? "connected, no answer" : "unreachable",
                       cfg->nodes[i].client);
                continue;
            }
            char leader[16];
            if (s->leader == SY_NO_NODE)
                snprintf(leader, sizeof leader, "-");
            else
                snprintf(leader, sizeof leader, "%u", s->leader);
            char sus[96];
            suspects(s, sus, sizeof sus);
            printf("%-4u %-6s %-13s %8" PRIu64 " %6s %10" PRIu64 " %10" PRIu64 " %10" PRIu64
                   " %2u/%-2u %8" PRIu64 "  %s\n",
                   i, s->protocol, sy_role_name(s->role), s->term, leader, s->commit_index,
                   s->applied_index, s->snap_index, s->peers_connected, cfg->n - 1, s->evidence,
                   sus);
            up++;
        }
    }
    free(st);
    if (up == 0 && foreign_cluster(c, "status"))
        return EXIT_USAGE;
    if (up == 0) {
        /* nodes drop requests signed by a key their manifest does not list
         * (counted, never answered): connected and silent says that */
        uint32_t conn = sy_client_connected(c);
        if (conn)
            fprintf(stderr, "synodctl: status: %u of %u nodes are connected but none answered: "
                    "is this client key in the cluster's manifest (synodctl --key)?\n", conn,
                    cfg->n);
        else
            fprintf(stderr, "synodctl: status: cluster unreachable: none of the %u nodes "
                    "answered\n", cfg->n);
        return EXIT_RUNTIME;
    }
    return 0;
}

/* ----------------------------------------------------------------- bench */

typedef struct bench {
    const args *a;            /* opts */
    args opts;                /* the options with bench's defaults filled in */
    sy_client **clients;
    pthread_mutex_t mu;
    uint64_t issued;          /* requests handed out (count mode) */
    uint64_t done, errors;    /* atomic */
    uint32_t running;         /* atomic: threads not yet finished */
    uint64_t start_ms, end_ms;
    int stop;                 /* __atomic: set by the main thread */
} bench;

typedef struct bench_thread {
    bench *b;
    uint32_t idx;
    pthread_t thr;
    /* guards the rest against the main thread, which may take the
     * results while this one still waits in a call (cmd_bench) */
    pthread_mutex_t mu;
    bool abandoned;           /* results taken: record nothing more */
    uint64_t *lat_us;
    size_t n_lat, cap_lat;
    int last_err;
} bench_thread;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool bench_take(bench *b)
{
    if (__atomic_load_n(&b->stop, __ATOMIC_RELAXED))
        return false;
    if (b->a->requests) {
        bool ok;
        pthread_mutex_lock(&b->mu);
        ok = b->issued < b->a->requests;
        if (ok)
            b->issued++;
        pthread_mutex_unlock(&b->mu);
        return ok;
    }
    return mono_us() / 1000 < b->end_ms;
}

static void *bench_main(void *arg)
{
    bench_thread *t = arg;
    bench *b = t->b;
    sy_client *c = b->clients[t->idx];
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(t->idx + 1) * 0xbf58476d1ce4e5b9ull);
    uint8_t *val = malloc(b->a->value_size ? b->a->value_size : 1);
    char key[BENCH_KEY_LEN + 1];
    if (!val) {
        __atomic_fetch_sub(&b->running, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    for (size_t i = 0; i < b->a->value_size; i++)
        val[i] = (uint8_t)('a' + (bench_xorshift(&rng) % 26));
    while (bench_take(b)) {
        uint32_t k = (uint32_t)(bench_xorshift(&rng) % b->a->keys);
        bool read = (double)(bench_xorshift(&rng) % 1000000) / 1e6 < b->a->read_ratio;
        sy_client_result r;
        snprintf(key, sizeof key, "k%015u", k);
        uint64_t t0 = mono_us();
        int rc = sy_client_exec(c, read ? SY_OP_GET : SY_OP_PUT, 0, key, BENCH_KEY_LEN,
                                read ? NULL : val, read ? 0 : b->a->value_size, NULL, 0, 0,
                                b->a->timeout_ms, &r);
        uint64_t dt = mono_us() - t0;
        if (rc == SY_OK) {
            if (r.status != SY_OK && r.status != SY_ENOTFOUND)
                rc = r.status;
            sy_client_result_free(&r);
        }
        pthread_mutex_lock(&t->mu);
        if (t->abandoned) {
            pthread_mutex_unlock(&t->mu);
            break;
        }
        if (rc != SY_OK) {
            t->last_err = rc;
            __atomic_fetch_add(&b->errors, 1, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&t->mu);
            continue;
        }
        if (t->n_lat == t->cap_lat) {
            size_t nc = t->cap_lat ? t->cap_lat * 2 : 4096;
            uint64_t *nl = realloc(t->lat_us, nc * sizeof *nl);
            if (!nl) {
                pthread_mutex_unlock(&t->mu);
                break;
            }
            t->lat_us = nl;
            t->cap_lat = nc;
        }
        t->lat_us[t->n_lat++] = dt;
        __atomic_fetch_add(&b->done, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&t->mu);
    }
    free(val);
    __atomic_fetch_sub(&b->running, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static int cmd_bench(const args *a)
{
    bench *b;
    bench_thread *ts;
    int ret = 0;
    bool abandoned = false;   /* threads left in their calls at a stop */
    bool stopped = false, abandoned_loop = false;   /* the loop stopped at the check */
    bench_loop *lp = NULL;
    sy_seckey **keys = NULL;
    sy_cluster_cfg cfg;

    memset(&cfg, 0, sizeof cfg);
    if (a->requests && a->duration_s > 0)
        die_usage("%s", "bench takes --requests N or --duration S, not both");
    /* on the heap: threads left waiting in a call at a stop (below) go on
     * reading it until the process exits */
    b = calloc(1, sizeof *b);
    if (!b)
        return EXIT_RUNTIME;
    b->opts = *a;
    if (!b->opts.requests && b->opts.duration_s <= 0)
        b->opts.requests = 1000;
    b->a = &b->opts;
    pthread_mutex_init(&b->mu, NULL);
    b->clients = calloc(a->clients, sizeof *b->clients);
    ts = calloc(a->clients, sizeof *ts);
    if (!b->clients || !ts) {
        free(b->clients);
        free(ts);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return EXIT_RUNTIME;
    }
    for (uint32_t i = 0; i < a->clients; i++)
        pthread_mutex_init(&ts[i].mu, NULL);
    /* the manifest first: the keys are looked for next to it, and a
     * missing key is no help when the manifest itself is what is wrong */
    char why[512] = "";
    int rc = sy_cluster_load(a->cluster, &cfg, why, sizeof why);
    if (rc != SY_OK) {
        fprintf(stderr, "synodctl: %s\n", why[0] ? why : sy_strerror(rc));
        ret = exit_for_open(rc);
        goto out;
    }
    /* one event loop for every client where it speaks the addresses
     * (cmd/synodctl/bench_loop.h), the library's threads otherwise */
    bool use_loop = !a->threads && bench_loop_usable(&cfg);
    if (use_loop && !(keys = calloc(a->clients, sizeof *keys))) {
        fprintf(stderr, "synodctl: bench: out of memory\n");
        ret = EXIT_RUNTIME;
        goto out;
    }
    for (uint32_t i = 0; i < a->clients; i++) {
        char path[PATH_MAX];
        /* each thread is its own client identity: one identity's requests
         * are executed in req_no order, so threads must not share one */
        if (a->key && a->clients == 1)
            snprintf(path, sizeof path, "%s", a->key);
        else
            client_key_path(a->cluster, i, path, sizeof path);
        if (access(path, F_OK) != 0) {
            fprintf(stderr, "synodctl: bench --clients %u needs %u client keys, but %s is "
                    "missing: regenerate the cluster with synod-keys cluster --clients %u\n",
                    a->clients, a->clients, path, a->clients);
            ret = EXIT_USAGE;
            goto out;
        }
        if (!use_loop) {
            b->clients[i] = open_or_die(a, path, true, NULL);
            continue;
        }
        lock_key_or_die(path, clock_ms() + (uint64_t)a->timeout_ms);
        if ((rc = sy_keyfile_load_secret(path, &keys[i], why, sizeof why)) != SY_OK) {
            fprintf(stderr, "synodctl: %s\n", why[0] ? why : sy_strerror(rc));
            ret = exit_for_open(rc);
            goto out;
        }
    }
    uint64_t start = mono_us();
    b->start_ms = start / 1000;
    b->end_ms = b->start_ms + (uint64_t)(b->opts.duration_s * 1000.0);
    b->running = a->clients;
    if (use_loop) {
        bench_loop_opts lo = { .clients = a->clients, .requests = b->opts.requests,
                               .duration_s = b->opts.duration_s,
                               .value_size = b->opts.value_size,
                               .read_ratio = b->opts.read_ratio, .keys = b->opts.keys,
                               .timeout_ms = (uint32_t)a->timeout_ms, .stale = a->stale };
        if ((rc = bench_loop_start(&cfg, keys, &lo, &lp, why, sizeof why)) != SY_OK) {
            fprintf(stderr, "synodctl: %s\n", why);
            ret = exit_for_open(rc);
            goto out;
        }
    }
    for (uint32_t i = 0; !use_loop && i < a->clients; i++) {
        ts[i].b = b;
        ts[i].idx = i;
        if (pthread_create(&ts[i].thr, NULL, bench_main, &ts[i]) != 0) {
            fprintf(stderr, "synodctl: bench: cannot start thread %u\n", i);
            __atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
            __atomic_fetch_sub(&b->running, a->clients - i, __ATOMIC_RELEASE);
            for (uint32_t j = 0; j < i; j++)
                pthread_join(ts[j].thr, NULL);
            ret = EXIT_RUNTIME;
            goto out;
        }
    }
    /* When to conclude, with nothing done and no node connected, that the
     * cluster is not there: one deadline and a second in (every further
     * request would only wait out its own deadline: 1,000 requests x 5 s
     * by default), or at the end of a --duration shorter than that -- a
     * 2 s run otherwise lasted the first request's 5 s deadline and ended
     * with "1 operation failed". Not before one second: connecting takes
     * a moment, and a healthy cluster must not look unreachable. */
    uint64_t unreach_ms = b->start_ms + (uint64_t)a->timeout_ms + 1000;
    if (!b->opts.requests) {
        uint64_t at = b->end_ms > b->start_ms + 1000 ? b->end_ms : b->start_ms + 1000;
        if (at < unreach_ms)
            unreach_ms = at;
    }
    /* progress at the end of each whole second the run lasts (none for a
     * run shorter than one), until every thread is done */
    uint64_t last_done = 0, last_us = start;
    bool woke_for_check = false;   /* once, at unreach_ms; then at each second */
    for (uint32_t sec = 1;; sec++) {
        uint64_t due = start + (uint64_t)sec * 1000000u, now_us;
        uint64_t wake = woke_for_check || due < unreach_ms * 1000 ? due : unreach_ms * 1000;
        bool finished;
        for (;;) {
            finished = lp ? bench_loop_finished(lp)
                          : __atomic_load_n(&b->running, __ATOMIC_ACQUIRE) == 0;
            now_us = mono_us();
            if (finished || now_us >= wake)
                break;
            uint64_t until = wake;
            usleep(until - now_us < 20000 ? (useconds_t)(until - now_us) : 20000);
        }
        if (finished)
            break;
        uint64_t d, errs;
        uint32_t up = 0;
        if (lp) {
            bench_loop_progress(lp, &d, &errs, &up);
        } else {
            d = __atomic_load_n(&b->done, __ATOMIC_RELAXED);
            errs = __atomic_load_n(&b->errors, __ATOMIC_RELAXED);
            for (uint32_t i = 0; i < a->clients; i++)
                up += sy_client_connected(b->clients[i]);
        }
        if (d == 0 && up == 0 && now_us / 1000 >= unreach_ms) {
            fprintf(stderr, "synodctl: bench: cluster unreachable: no node connected and no "
                    "operation done in %.1fs; stopping (is synod running? node 0 client "
                    "address %s)\n", (double)(now_us - start) / 1e6,
                    cfg.nodes[0].client);
            if (lp) {   /* it drops the requests in flight and ends */
                bench_loop_stop(lp);
                stopped = true;
                break;
            }
            /* Stop now, not when the calls in flight reach their deadline
             * (up to --timeout later; there is no cancelling one): take
             * what each thread has recorded, tell it to record nothing
             * more, and leave it in its call until the process exits. */
            __atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
            for (uint32_t i = 0; i < a->clients; i++) {
                pthread_mutex_lock(&ts[i].mu);
                ts[i].abandoned = true;
                pthread_mutex_unlock(&ts[i].mu);
            }
            abandoned = true;
            break;
        }
        if (now_us < due) {   /* woken for the check alone: no progress line yet */
            woke_for_check = true;
            sec--;
            continue;
        }
        double span = (double)(now_us - last_us) / 1e6;
        fprintf(stderr, "[%3us] %" PRIu64 " ops, %.0f ops/s, %" PRIu64 " errors\n", sec, d,
                span > 0 ? (double)(d - last_done) / span : 0.0, errs);
        last_done = d;
        last_us = now_us;
    }
    if (!abandoned && !lp)
        for (uint32_t i = 0; i < a->clients; i++)
            pthread_join(ts[i].thr, NULL);
    double secs = (double)(mono_us() - start) / 1e6;
    uint64_t errors;
    size_t total = 0;
    uint64_t *all;
    int last_err = SY_OK;
    if (lp) {
        uint64_t d;
        uint32_t up;
        bench_loop_progress(lp, &d, &errors, &up);
        bench_loop_end(lp, &all, &total, &last_err, &secs);
        lp = NULL;
        if (!all && !(all = malloc(sizeof *all))) {
            fprintf(stderr, "synodctl: bench: out of memory for the results\n");
            ret = EXIT_RUNTIME;
            goto out;
        }
        /* a stop after the unreachable check is no failure of its own */
        abandoned_loop = stopped;
    } else {
        errors = __atomic_load_n(&b->errors, __ATOMIC_RELAXED);
        for (uint32_t i = 0; i < a->clients; i++)
            total += ts[i].n_lat;
        all = malloc((total ? total : 1) * sizeof *all);
        if (!all) {
            fprintf(stderr, "synodctl: bench: out of memory for the results\n");
            if (abandoned)
                return EXIT_RUNTIME;   /* the threads still use b, ts and the clients */
            ret = EXIT_RUNTIME;
            goto out;
        }
        size_t k = 0;
        for (uint32_t i = 0; i < a->clients; i++) {
            if (ts[i].n_lat)   /* lat_us is NULL for a thread that completed nothing */
                memcpy(all + k, ts[i].lat_us, ts[i].n_lat * sizeof *all);
            k += ts[i].n_lat;
            if (ts[i].last_err)
                last_err = ts[i].last_err;
        }
    }
    qsort(all, total, sizeof *all, cmp_u64);
#define PCT(p) (total ? all[(size_t)((double)(total - 1) * (p))] : 0)
    printf("clients %u, value size %zu, read ratio %.2f, keys %u\n", a->clients,
           b->opts.value_size, b->opts.read_ratio, b->opts.keys);
    printf("ops %zu in %.2f s: %.0f ops/s, errors %" PRIu64 "\n", total, secs,
           secs > 0 ? (double)total / secs : 0.0, errors);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", (double)PCT(0.50) / 1000.0,
           (double)PCT(0.90) / 1000.0, (double)PCT(0.99) / 1000.0,
           (double)(total ? all[total - 1] : 0) / 1000.0);
#undef PCT
    free(all);
    /* after a stop its own line said what went wrong */
    if (errors && !abandoned && !abandoned_loop)
        fprintf(stderr, "synodctl: bench: %" PRIu64 " operation%s failed (last: %s)\n", errors,
                errors == 1 ? "" : "s", sy_strerror(last_err));
    if (total == 0)
        ret = EXIT_RUNTIME;
    if (abandoned)
        return ret;   /* the threads still use b, ts and the clients */
out:
    /* clients are not closed: the process exits right after (see the end
     * of main for why) */
    for (uint32_t i = 0; i < a->clients; i++) {
        if (keys)
            sy_seckey_free(keys[i]);
        free(ts[i].lat_us);
        pthread_mutex_destroy(&ts[i].mu);
    }
    free(keys);
    sy_cluster_free(&cfg);
    free(b->clients);
    free(ts);
    pthread_mutex_destroy(&b->mu);
    free(b);
    return ret;
}

/* ---------------------------------------------------------------- ledger */

static int cmd_ledger_verify(const args *a)
{
    sy_cluster_cfg cfg;
    sy_directory dir;
    sy_verifier ver;
    sy_env_opts o;
    char why[512] = "";
    uint64_t height = 0;
    int rc;

    if (a->npos != 3 || strcmp(a->pos[1], "verify") != 0)
        die_usage("%s", "usage: synodctl ledger verify --cluster DIR/cluster.ini DATA_DIR");
    memset(&cfg, 0, sizeof cfg);
    if ((rc = sy_cluster_load(a->cluster, &cfg, why, sizeof why)) != SY_OK) {
        fprintf(stderr, "synodctl: %s\n", why);
        sy_cluster_free(&cfg);
        return EXIT_USAGE;
    }
    if ((rc = sy_crypto_init()) != SY_OK) {
        sy_cluster_free(&cfg);
        return EXIT_RUNTIME;
    }
    /* whose directory it is, before a signature fails on a foreign ledger */
    char mdb[PATH_MAX];
    snprintf(mdb, sizeof mdb, "%s/data.mdb", a->pos[2]);
    if (access(mdb, F_OK) != 0) {
        fprintf(stderr, "synodctl: ledger verify %s: no data.mdb there: not a synod data "
                "directory (a node file names its directory in data_dir)\n", a->pos[2]);
        sy_cluster_free(&cfg);
        return EXIT_USAGE;
    }
    sy_storage_lmdb_opts ro = {.read_only = true};
    sy_storage *st = NULL;
    char serr[SY_STORAGE_ERRMSG] = "";
    if (sy_storage_lmdb_open(a->pos[2], &ro, &st, serr) == SY_OK) {
        char owner[256], proto[256], what[640] = "";
        uint32_t node;
        sy_pubkey key;
        /* Cluster ids repeat (synod-keys names every cluster "synod" unless
         * told otherwise): the protocol and the node's key tell clusters
         * apart too. Without this a directory of another cluster failed
         * verification as if its ledger had been tampered with. */
        if (sy_datadir_identity_get(st, owner, proto, &node, &key) == SY_OK) {
            if (strcmp(owner, cfg.id))
                snprintf(what, sizeof what, "cluster '%s', not '%s'", owner, cfg.id);
            else if (strcmp(proto, sy_protocol_name(cfg.protocol)))
                snprintf(what, sizeof what, "a %s cluster, not the %s cluster of this manifest",
                         proto, sy_protocol_name(cfg.protocol));
            else if (node >= cfg.n)
                snprintf(what, sizeof what, "a cluster of more nodes (this manifest lists %u)",
                         cfg.n);
            else if (memcmp(key.b, cfg.node_keys[node].b, sizeof key.b))
                snprintf(what, sizeof what, "another cluster (its node %u key is not this "
                         "manifest's)", node);
        }
        if (what[0]) {
            fprintf(stderr, "synodctl: ledger verify %s: the data directory belongs to node %u "
                    "of %s (manifest %s): give that cluster's manifest\n", a->pos[2], node, what,
                    a->cluster);
            sy_storage_close(st);
            sy_cluster_free(&cfg);
            return EXIT_USAGE;
        }
        sy_storage_close(st);
    }
    sy_cluster_directory(&cfg, &dir);
    sy_verifier_ed25519(&ver);
    memset(&o, 0, sizeof o);
    o.cluster_id = cfg.id;
    o.dir = &dir;
    o.verifier = &ver;
    /* the chain, batch digests, every client request's signature, and each
     * block's commit evidence against the manifest's node keys */
    sy_evidence_ctx ev = {.protocol = cfg.protocol, .cluster_id = cfg.id,
                          .node_keys = cfg.node_keys, .n = cfg.n, .f = cfg.f,
                          .verifier = &ver};
    rc = sy_ledger_verify_dir(a->pos[2], &o, sy_evidence_check, &ev, &height, why, sizeof why);
    sy_cluster_free(&cfg);
    if (rc != SY_OK) {
        fprintf(stderr, "synodctl: ledger verify %s: %s\n", a->pos[2],
                why[0] ? why : sy_strerror(rc));
        return rc == SY_ENOTFOUND ? EXIT_USAGE : EXIT_RUNTIME;
    }
    printf("ledger ok: %" PRIu64 " blocks verified (tip height %" PRIu64 ")\n", height, height);
    return 0;
}

/* -------------------------------------------------------------- transfer */

static int cmd_transfer(sy_client *c, const args *a)
{
    const sy_cluster_cfg *cfg = sy_client_cluster(c);
    if (a->to != SY_NO_NODE && a->to >= cfg->n) {
        fprintf(stderr, "synodctl: transfer: --to %u: the cluster has nodes 0..%u\n", a->to,
                cfg->n - 1);
        return EXIT_USAGE;
    }
    uint32_t from = SY_NO_NODE, to = SY_NO_NODE;
    int rc = sy_client_transfer(c, a->to, a->timeout_ms, &from, &to);
    switch (rc) {
    case SY_OK:
        if (from == to) {
            printf("node %u leads already\n", to);
            return 0;
        }
        if (a->to != SY_NO_NODE && to != a->to) {
            fprintf(stderr, "synodctl: transfer: leadership moved from node %u to node %u, not "
                    "to node %u (it did not take over in time; another node won)\n", from, to,
                    a->to);
            return EXIT_RUNTIME;
        }
        printf("leadership moved from node %u to node %u\n", from, to);
        return 0;
    case SY_EUNAUTH:
        fprintf(stderr, "synodctl: transfer: this client key is not marked admin in %s; add "
                "'admin = true' to its [client] section on every node's manifest copy and "
                "restart them\n", a->cluster);
        return EXIT_USAGE;
    case SY_EPERM:
        fprintf(stderr, "synodctl: transfer: the leader refused this client key: it is not "
                "marked admin (or not listed) in the leader's copy of the manifest\n");
        return EXIT_USAGE;
    case SY_EINVAL:
        if (sy_client_cluster(c)->protocol == SY_PROTO_PBFT)
            fprintf(stderr, "synodctl: transfer: the primary cannot hand over to node %u: PBFT "
                    "hands a view only to the next view's primary\n", a->to);
        else
            fprintf(stderr, "synodctl: transfer: the leader cannot hand over to node %u (not a "
                    "voter)\n", a->to);
        return EXIT_USAGE;
    case SY_EMSGTYPE:
        fprintf(stderr, "synodctl: transfer: the leader does not know transfer requests (a "
                "synod older than this synodctl?)\n");
        return EXIT_RUNTIME;
    case SY_EUNREACH:
        fprintf(stderr, "synodctl: transfer: the leader has no peer that answered it recently "
                "to hand over to\n");
        return EXIT_RUNTIME;
    case SY_ETIMEOUT: {
        char their[SY_MAX_CLUSTER_ID + 1];
        if (sy_client_connected(c) == 0 || sy_client_their_cluster(c, their))
            return fail_call(c, a, "transfer", rc);   /* the line every command gives */
        fprintf(stderr, "synodctl: transfer: no leader found, or no other node took over, "
                "within %d ms (see synodctl status)\n", a->timeout_ms);
        return EXIT_RUNTIME;
    }
    default:
        fprintf(stderr, "synodctl: transfer: %s\n", sy_strerror(rc));
        return EXIT_RUNTIME;
    }
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    args a;
    sy_client *c;
    int ret = 0, rc;

    parse_args(argc, argv, &a);
    a.timeout_given = a.timeout_ms;
    if (a.npos == 0) {
        fprintf(stderr, "synodctl: missing command (put, get, del, cas, scan, status, transfer, "
                "bench, ledger verify; see synodctl --help)\n");
        return EXIT_USAGE;
    }
    const char *cmd = a.pos[0];
    static const char *const known[] = { "put", "get", "del", "cas", "scan", "status",
                                         "transfer", "bench", "ledger" };
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ok = ok || !strcmp(cmd, known[i]);
    if (!ok)
        die_usage("unknown command '%s'", cmd);
    if (!a.cluster)
        die_usage("%s", "--cluster DIR/cluster.ini is required");
    opt_check(&a, cmd);
    if (!strcmp(cmd, "ledger"))
        return cmd_ledger_verify(&a);
    if (!strcmp(cmd, "bench")) {
        need_args(&a, 1, "bench [--clients C] [--requests N | --duration S] ...");
        ret = cmd_bench(&a);
        fflush(stdout);
        fflush(stderr);
        _exit(ret); /* its clients stay open: see the end of main */
    }

    /* check shapes before touching the network */
    int in_arg = a.stdin_value ? 1 : 0;   /* the new value comes from stdin */
    if (a.stdin_value && strcmp(cmd, "put") && strcmp(cmd, "cas"))
        die_usage("%s", "--stdin goes with put or cas only");
    if (!strcmp(cmd, "put"))
        need_args(&a, 3 - in_arg, a.stdin_value ? "put KEY --stdin" : "put KEY VALUE");
    else if (!strcmp(cmd, "get") || !strcmp(cmd, "del"))
        need_args(&a, 2, !strcmp(cmd, "get") ? "get KEY" : "del KEY");
    else if (!strcmp(cmd, "cas"))
        need_args(&a, (a.absent ? 3 : 4) - in_arg,
                  a.absent ? (in_arg ? "cas --absent KEY --stdin" : "cas --absent KEY NEW")
                           : (in_arg ? "cas KEY OLD --stdin" : "cas KEY OLD NEW"));
    else if (!strcmp(cmd, "scan"))
        need_args(&a, 3, "scan FROM TO [--limit N]");
    else if (!strcmp(cmd, "status"))
        need_args(&a, 1, "status [--json]");
    else if (!strcmp(cmd, "transfer"))
        need_args(&a, 1, "transfer [--to N]");
    bool keyed = !strcmp(cmd, "put") || !strcmp(cmd, "get") || !strcmp(cmd, "del") ||
                 !strcmp(cmd, "cas");
    if (keyed && !a.pos[1][0]) {
        fprintf(stderr, "synodctl: %s: KEY must not be empty\n", cmd);
        return EXIT_USAGE;
    }
    /* byte order, as the store sorts keys; TO = "" means the end */
    if (!strcmp(cmd, "scan") && a.pos[2][0] && strcmp(a.pos[1], a.pos[2]) > 0) {
        fprintf(stderr, "synodctl: scan: FROM '%s' sorts after TO '%s', so [FROM, TO) is empty; "
                "swap them\n", a.pos[1], a.pos[2]);
        return EXIT_USAGE;
    }
    for (int i = 1; i < a.npos; i++) {
        size_t l = strlen(a.pos[i]);
        bool is_key = i == 1 || (!strcmp(cmd, "scan") && i == 2);
        if (l > (is_key ? SY_MAX_KEY : SY_MAX_VALUE)) {
            fprintf(stderr, "synodctl: %s too large: %zu bytes (limit %u)\n",
                    is_key ? "key" : "value", l, is_key ? SY_MAX_KEY : SY_MAX_VALUE);
            return EXIT_USAGE;
        }
    }

    /* the new value: the last argument, or all of stdin (--stdin) */
    const char *newv = NULL;
    size_t newl = 0;
    char *inbuf = NULL;
    if (a.stdin_value) {
        size_t cap = 0;
        for (;;) {
            if (newl == cap) {
                cap = cap ? 2 * cap : 65536;
                char *nb = realloc(inbuf, cap);
                if (!nb) {
                    free(inbuf);
                    fprintf(stderr, "synodctl: out of memory reading stdin\n");
                    return EXIT_RUNTIME;
                }
                inbuf = nb;
            }
            size_t r = fread(inbuf + newl, 1, cap - newl, stdin);
            newl += r;
            if (newl > SY_MAX_VALUE) {
                free(inbuf);
                fprintf(stderr, "synodctl: value too large: more than %u bytes on stdin (limit "
                        "%u)\n", SY_MAX_VALUE, SY_MAX_VALUE);
                return EXIT_USAGE;
            }
            if (r == 0)
                break;
        }
        if (ferror(stdin)) {
            free(inbuf);
            fprintf(stderr, "synodctl: cannot read the value from stdin\n");
            return EXIT_USAGE;
        }
        newv = inbuf;
    } else if (!strcmp(cmd, "put") || !strcmp(cmd, "cas")) {
        newv = a.pos[a.npos - 1];
        newl = strlen(newv);
    }
    uint64_t waited = 0;
    c = open_or_die(&a, a.key, strcmp(cmd, "status") && strcmp(cmd, "transfer"), &waited);
    if (waited) {   /* the deadline covers the wait for the key */
        a.timeout_ms = waited < (uint64_t)a.timeout_ms ? a.timeout_ms - (int)waited : 1;
    }
    const char *k = a.npos > 1 ? a.pos[1] : "";
    if (!strcmp(cmd, "status")) {
        ret = cmd_status(c, &a);
    } else if (!strcmp(cmd, "transfer")) {
        ret = cmd_transfer(c, &a);
    } else if (!strcmp(cmd, "put")) {
        rc = sy_client_put(c, k, strlen(k), newv, newl, a.timeout_ms);
        if (rc == SY_OK)
            printf("OK\n");
        else
            ret = fail_call(c, &a, "put", rc);
    } else if (!strcmp(cmd, "get")) {
        uint8_t *v;
        size_t vl;
        rc = sy_client_get(c, k, strlen(k), &v, &vl, a.timeout_ms);
        if (rc == SY_OK) {
            print_bytes(stdout, v, vl);
            putchar('\n');
            free(v);
        } else if (rc == SY_ENOTFOUND) {
            fprintf(stderr, "synodctl: get: key '%s' not found\n", k);
            ret = EXIT_RUNTIME;
        } else {
            ret = fail_call(c, &a, "get", rc);
        }
    } else if (!strcmp(cmd, "del")) {
        rc = sy_client_del(c, k, strlen(k), a.timeout_ms);
        if (rc == SY_OK) {
            printf("OK\n");
        } else if (rc == SY_ENOTFOUND) {
            fprintf(stderr, "synodctl: del: key '%s' not found\n", k);
            ret = EXIT_RUNTIME;
        } else {
            ret = fail_call(c, &a, "del", rc);
        }
    } else if (!strcmp(cmd, "cas")) {
        const char *old = a.absent ? NULL : a.pos[2];
        uint8_t *cur;
        size_t cl;
        rc = sy_client_cas(c, k, strlen(k), old, old ? strlen(old) : 0, newv, newl,
                           a.timeout_ms, &cur, &cl);
        if (rc == SY_OK) {
            printf("OK\n");
        } else if (rc == SY_ECASFAIL) {
            if (cur && cl) {
                print_bytes(stdout, cur, cl);
                putchar('\n');
                fflush(stdout);
                /* stdout may be a file or a pipe: say where the value went */
                fprintf(stderr, "synodctl: cas: key '%s' holds another value (%zu bytes, "
                        "printed on stdout)\n", k, cl);
            } else if (a.absent) {
                fprintf(stderr, "synodctl: cas: key '%s' exists (its value is empty)\n", k);
            } else {
                fprintf(stderr, "synodctl: cas: key '%s' is absent or empty\n", k);
            }
            free(cur);
            ret = EXIT_RUNTIME;
        } else {
            ret = fail_call(c, &a, "cas", rc);
        }
    } else if (!strcmp(cmd, "scan")) {
        /* Page by page, printing as pages come: a node answers at most
         * 4 MiB per request, and a page cut there goes on after its last
         * key (each page is a linearizable read of its own). */
        uint32_t want = a.limit ? a.limit : SY_MAX_SCAN;
        size_t printed = 0;
        uint8_t next[SY_MAX_KEY];
        const void *from = a.pos[1];
        size_t from_len = strlen(a.pos[1]);
        uint64_t deadline = mono_us() / 1000 + (uint64_t)a.timeout_ms;
        for (;;) {
            sy_client_kv *kvs;
            size_t n;
            bool more;
            uint64_t now = mono_us() / 1000;
            int left = deadline > now ? (int)(deadline - now) : 1;
            rc = sy_client_scan_page(c, from, from_len, a.pos[2], strlen(a.pos[2]),
                                     want - (uint32_t)printed, &kvs, &n, &more, left);
            if (rc != SY_OK) {
                fflush(stdout);
                ret = fail_call(c, &a, "scan", rc);
                if (printed)
                    fprintf(stderr, "synodctl: scan: %zu keys were printed before that; scan "
                            "again from the last one to go on\n", printed);
                break;
            }
            for (size_t i = 0; i < n; i++) {
                print_bytes(stdout, kvs[i].key, kvs[i].key_len);
                putchar('\t');
                print_bytes(stdout, kvs[i].val, kvs[i].val_len);
                putchar('\n');
            }
            printed += n;
            if (n)
                from_len = sy_client_key_after(kvs[n - 1].key, kvs[n - 1].key_len, next);
            sy_client_kvs_free(kvs, n);
            from = next;
            if (!more || !n || !from_len)
                break;
            if (printed >= want) {
                /* a full count may not be all of [FROM, TO): say so, and how on */
                fflush(stdout);
                fprintf(stderr, "synodctl: scan: stopped after %zu keys (%s); more may follow: "
                        "scan again from the last key printed (it comes again first)\n", printed,
                        a.limit ? "--limit" : "the most one scan returns");
                break;
            }
        }
    }
    /* A one-shot CLI leaves without closing its sockets: libnng 1.5's REQ
     * socket can hang in nng_close (upstream issue #648, seen here under
     * PBFT load), and the kernel releases everything at exit anyway.
     * _exit also skips the leak checker, which would otherwise report the
     * client we deliberately did not free. Long-lived programs call
     * sy_client_close (net/client.h). */
    (void)c;
    fflush(stdout);
    fflush(stderr);
    _exit(ret);
}
