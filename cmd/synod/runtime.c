/* The synod daemon runtime. See runtime.h for the loop; this file keeps the
 * bookkeeping around it: which client waits for which request, reads waiting
 * for the state machine to catch up, snapshots, metrics and log lines. */
#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <sodium.h>

#include "cmd/synod/runtime.h"
#include "core/chunks.h"
#include "core/config.h"
#include "core/datadir.h"
#include "core/engine.h"
#include "core/envelope.h"
#include "core/evidence.h"
#include "core/kv.h"
#include "core/ledger.h"
#include "core/ready.h"
#include "core/wal.h"
#include "core/log.h"
#include "core/storage.h"
#include "crypto/sy_err.h"
#include "net/transport.h"
#include "bft/pbft/pbft.h"

#define RT_MAX_EVENTS 256          /* events taken per wait */
#define RT_MAX_PENDING 65536u      /* client requests waiting for their commit */
#define RT_MAX_READS 65536u        /* reads waiting for a read index */
#define RT_MAX_WAIT_MS 50          /* longest sleep, so stop flags are seen */
#define RT_PENDING_RECHECK_MS 1000 /* a request waiting longer: ask the sessions */
#define RT_HANDOFF_MAX_MS 10000    /* longest a stopping leader waits for a hand-off */
#define RT_DROP_REPORT_MS 10000    /* rejected frames are summarised this often */
/* A node with fewer peers connected than a quorum needs says so after this
 * long, and again this often while it lasts (peers down, or unreachable: a
 * firewall, a wrong address -- otherwise its log would be silent). */
#define RT_FEW_PEERS_WARN_MS 10000u
#define RT_FEW_PEERS_REPEAT_MS 60000u
#define RT_FSYNC_BUCKETS 12
#define RT_SNAPSHOT_SLOW_S 0.5     /* a snapshot this long is WARNed about */
#define RT_MMAP_THRESHOLD (256 * 1024)   /* bytes; see synod_run */

/* A client request waiting for its entry to be applied. */
typedef struct {
    uint32_t client_id;
    uint64_t req_no;
    uint64_t handle;
    uint64_t since_ms;
} pending_req;

/* A linearizable read: waiting for its read index, then for apply. */
typedef struct {
    uint64_t read_id;
    uint64_t handle;
    uint64_t index;       /* 0 until the engine gave a read index */
    bool ready;
    sy_client_req req;    /* key/val point into frame */
    uint8_t *frame;
    uint64_t since_ms;
} pending_read;

typedef struct {
    pthread_mutex_t mu;
    /* snapshot of engine status for the HTTP thread */
    sy_engine_status st;
    uint64_t applied;
    uint64_t requests, commits, entries_applied, replies, reads;
    uint64_t reply_sigs;      /* signatures made for replies (batched) */
    uint64_t wal_syncs;       /* writes made durable by a WAL record */
    uint64_t rejected[SY_ERR_COUNT];
    uint64_t msg_in[SY_MSG_TYPE_MAX], msg_out[SY_MSG_TYPE_MAX];
    /* inputs the engine refused, by message type (client requests and
     * reads: SY_MSG_CLIENT_REQ) and the error it gave */
    uint64_t refused[SY_MSG_TYPE_MAX][SY_ERR_COUNT];
    sy_accused accused;       /* PBFT: whom the engine named, per replica */
    uint64_t fsync_buckets[RT_FSYNC_BUCKETS]; /* <= 2^i * 0.25 ms */
    uint64_t fsync_count;
    double fsync_sum;
    uint64_t pending, pending_reads;
    uint64_t snapshots;
    double snapshot_sum;      /* seconds the event loop spent taking them */
    double snapshot_last;     /* seconds, the last one */
    uint64_t snapshot_bytes;  /* size of the last one's blob */
    uint64_t snapshot_waits;  /* PBFT checkpoints that waited for the one before */
    uint64_t session_replies; /* requests answered from the session table */
    char protocol[16];
    bool storage_failed;
} rt_metrics;

/* The counters above that only the event loop writes are written without
 * mu (it would cost a lock per increment) but as relaxed atomics, read the
 * same way by the HTTP thread, so neither side races (on x86-64 a plain
 * load and store). The rest are read and written under mu. */
#define M_ADD(field, v) \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)
#define M_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* A message that waits for the write, encoded when the ready was taken. */
typedef struct {
    uint32_t to;
    uint8_t type;
    uint8_t *data;
    size_t len;
} rt_frame;

/* A ledger block whose commit record is still to be signed: the message
 * (core/evidence.h), taken from the entry when it was applied. */
typedef struct {
    uint64_t height;
    uint8_t msg[SY_ATTEST_MSG_MAX];
    size_t len;
} rt_attest;

/* Committed entries a follower applies later, in bulk (see lazy_due). */
typedef struct {
    sy_ready_owned own;       /* committed entries only */
    sy_kv_results *res;
} rt_lazy;

typedef struct rt_job {
    sy_ready_owned own;       /* the ready, copied: the engine moves on */
    sy_kv_results *res;       /* one per committed entry */
    rt_lazy *lazy;            /* applied first, in order (owned) */
    size_t n_lazy;
    rt_frame *frames;
    size_t n_frames, cap_frames;
    bool need_txn;
    /* Replies for committed entries at or below this index may leave as
     * soon as their results are computed, before the write's sync (see
     * early_replies); 0 = none may. */
    uint64_t reply_early_upto;
    bool may_hold;            /* the write may stay uncommitted (held) */
    bool held;                /* it did: its transaction is open (held) */
    bool wal_synced;          /* its durable part went to the WAL (synced) */
    int rc;                   /* of the write */
    double sync_secs;         /* time in the synced commit */
} rt_job;

typedef struct {
    sy_log log;
    sy_node_cfg ncfg;
    sy_cluster_cfg cluster;
    sy_signer signer;
    sy_verifier verifier;
    sy_directory dir;
    sy_env_opts dec;          /* verifying decode (net workers) */
    sy_storage *st;
    sy_kvm kv;
    const sy_engine_ops *ops;
    void *eng;
    sy_engine_cfg ecfg;
    sy_net *net;
    uint64_t applied;
    uint64_t applied_term;
    uint64_t snap_index;
    uint64_t ckpt_pending;    /* PBFT: checkpoint index to snapshot at */
    pending_req *pend;
    size_t n_pend;
    pending_read *reads;
    size_t n_reads;
    uint64_t next_read_id;
    sy_buf out;
    sy_env_memo memo;         /* take_msgs: the last message signed */
    sy_transfer_seen xfer_seen;   /* synodctl transfer: nonces acted on this term */
    /* Replies made during one loop iteration, signed together at its end
     * (flush_replies): one signature for all of them. */
    sy_env_batch rbatch;
    uint64_t *rhandles;
    size_t cap_rhandles;
    rt_metrics m;
    sy_engine_status last_st;
    bool last_peer_up[SY_MAX_NODES];
    /* peers that were up at some point since start, or were warned about
     * for never connecting (once each: peers_never_check) */
    bool peer_seen[SY_MAX_NODES];
    uint64_t peers_check_from;  /* ms: the first log_changes call */
    uint64_t few_peers_since;  /* ms: fewer than a quorum connected since; 0: enough */
    uint64_t few_peers_warned; /* ms of the last warning; 0: none in this spell */
    uint64_t drops_since_report, last_drop_report;
    uint64_t bad_sigs_reported, last_bad_sig_report;   /* engine's bad_sigs, logged */
    uint64_t dissent_reported, last_dissent_report;    /* engine's dissent, logged */
    uint64_t accused_seen;    /* evidence + bad_sigs + dissent when m.accused was taken */
    int last_drop_rc;
    char last_drop_why[192];
    uint64_t last_changes_ms;
    /* the ready being written (see "the write" below) */
    rt_job job;
    rt_lazy *lazy;            /* follower: committed, not yet applied */
    size_t n_lazy, cap_lazy, lazy_entries, lazy_bytes;
    uint64_t lazy_since;
    /* Held apply (see job_write): the open write transaction */
    sy_txn held_txn;
    bool held_txn_open;
    /* Blocks written in the open transaction whose commit record is still
     * to be signed (see "Commit records after the answers") */
    rt_attest *att;
    size_t n_att, cap_att;
    sy_wal *wal;
    int lock_fd;              /* the data directory's lock (core/datadir.h); -1: none */
    /* The snapshot thread (see take_snapshot); sn_* under sn_mu: */
    pthread_t sn_thread;
    bool sn_thread_up;
    pthread_mutex_t sn_mu;
    pthread_cond_t sn_cv;     /* queued / done / quit changed */
    bool sn_queued, sn_done, sn_quit;
    uint64_t sn_index, sn_term;
    sy_txn sn_txn;            /* read view at sn_index, opened by the loop */
    sy_storage sn_st;         /* the store, as the thread's transactions see it:
                                 its failures land in sn_st.err, not in st's
                                 buffer the loop writes (sy_storage_view) */
    uint8_t *sn_blob;         /* results, for the loop */
    size_t sn_len;
    sy_digest sn_digest;
    bool sn_have_digest;
    int sn_rc;
    double sn_secs;
    bool sn_busy;             /* event loop: a snapshot is being taken */
    uint32_t sn_delay_ms;     /* test builds: --slow-snapshot */
    /* slow-snapshot and checkpoint-wait lines: one per RT_DROP_REPORT_MS,
     * each saying how many were left out before it */
    uint64_t sn_warn_ms, sn_warn_skipped, sn_wait_ms, sn_wait_skipped;
    /* what the event loop knows of it (from the jobs it finished): */
    bool held_open;
    bool rejoin_marked;       /* DATA_DIR/rejoin is there (core/datadir.h) */
    uint64_t held_since;      /* ms: first left open */
    uint64_t held_bytes;      /* entry bytes written into it */
    uint64_t applied_visible; /* applied index of committed transactions:
                                 what read transactions see */
} rt;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ metrics */

/* The reasons count_reject can see: what the envelope check refuses
 * (core/envelope.c) and what the runtime refuses after it. */
static const int rt_reject_reasons[] = {
    SY_ESIG, SY_ESENDER, SY_ECLUSTER, SY_EVERSION, SY_EMSGTYPE, SY_EUNAUTH, SY_ETOOBIG,
    SY_ETRUNC, SY_ETYPE, SY_EFIELD, SY_ETRAILING, SY_ESTALE, SY_EREPLAY, SY_ECONFIG,
    SY_EMEMBERSHIP,
};

static int metrics_cb(void *ctx, sy_buf *b)
{
    rt *r = ctx;
#define EMIT(...) sy_buf_printf(b, __VA_ARGS__)
    pthread_mutex_lock(&r->m.mu);
    rt_metrics *m = &r->m;
    /* what a running node runs: `synod --version` only tells the binary on
     * disk, which an upgrade may have replaced under a node not restarted */
    EMIT("# HELP synod_build_info the version this process runs and its protocol\n"
         "# TYPE synod_build_info gauge\nsynod_build_info{version=\"%s\",protocol=\"%s\"} 1\n",
         SYNOD_VERSION, m->protocol);
    EMIT("# HELP synod_requests_total client requests received (writes and reads)\n"
         "# TYPE synod_requests_total counter\nsynod_requests_total %" PRIu64 "\n",
         M_GET(m->requests));
    EMIT("# HELP synod_session_replies_total requests answered from the session table (applied "
         "already: a retry)\n"
         "# TYPE synod_session_replies_total counter\nsynod_session_replies_total %" PRIu64 "\n",
         M_GET(m->session_replies));
    EMIT("# HELP synod_commits_total client requests this node executed from the log (writes, "
         "and reads ordered through it); not log entries: one entry carries a batch\n"
         "# TYPE synod_commits_total counter\nsynod_commits_total %" PRIu64 "\n",
         M_GET(m->commits));
    EMIT("# HELP synod_replies_total replies sent to clients\n"
         "# TYPE synod_replies_total counter\nsynod_replies_total %" PRIu64 "\n",
         M_GET(m->replies));
    EMIT("# HELP synod_reply_signatures_total signatures made for client replies (one per batch)\n"
         "# TYPE synod_reply_signatures_total counter\nsynod_reply_signatures_total %" PRIu64 "\n",
         M_GET(m->reply_sigs));
    EMIT("# HELP synod_wal_syncs_total durable writes made by a synced write-ahead log record "
         "(the rest are synced LMDB commits)\n"
         "# TYPE synod_wal_syncs_total counter\nsynod_wal_syncs_total %" PRIu64 "\n",
         m->wal_syncs);
    EMIT("# HELP synod_reads_total reads answered at a read index (not stale reads, not reads "
         "ordered through the log)\n"
         "# TYPE synod_reads_total counter\nsynod_reads_total %" PRIu64 "\n", M_GET(m->reads));
    EMIT("# HELP synod_applied_index last index in committed storage (what the state digest "
         "and ledger head belong to)\n"
         "# TYPE synod_applied_index gauge\nsynod_applied_index %" PRIu64 "\n", m->applied);
    EMIT("# HELP synod_commit_index highest index known committed\n"
         "# TYPE synod_commit_index gauge\nsynod_commit_index %" PRIu64 "\n", m->st.commit_index);
    EMIT("# HELP synod_last_index last index in the log\n"
         "# TYPE synod_last_index gauge\nsynod_last_index %" PRIu64 "\n", m->st.last_index);
    EMIT("# HELP synod_snapshot_index index of the last snapshot the log was compacted to\n"
         "# TYPE synod_snapshot_index gauge\nsynod_snapshot_index %" PRIu64 "\n", m->st.snap_index);
    EMIT("# HELP synod_term Raft term, Multi-Paxos ballot round or PBFT view\n"
         "# TYPE synod_term gauge\nsynod_term{protocol=\"%s\"} %" PRIu64 "\n", m->protocol,
         m->st.term);
    EMIT("# HELP synod_role this node's role (one series, value 1)\n"
         "# TYPE synod_role gauge\nsynod_role{role=\"%s\"} 1\n", sy_role_name(m->st.role));
    EMIT("# HELP synod_is_leader 1 on the leader (Raft, Multi-Paxos) or primary (PBFT)\n"
         "# TYPE synod_is_leader gauge\nsynod_is_leader %d\n",
         m->st.role == SY_ROLE_LEADER || m->st.role == SY_ROLE_PRIMARY);
    EMIT("# HELP synod_rejoining 1 while a node started with --rejoin has not caught up "
         "(it takes no part in elections)\n"
         "# TYPE synod_rejoining gauge\nsynod_rejoining %d\n", m->st.rejoining);
    EMIT("# HELP synod_leader_changes_total Raft, Multi-Paxos: leaders this node came to know "
         "since it started, itself included; PBFT: view changes it went through since it "
         "started\n"
         "# TYPE synod_leader_changes_total counter\nsynod_leader_changes_total %" PRIu64 "\n",
         m->st.leader_changes);
    EMIT("# HELP synod_engine_bad_signatures_total PBFT: peer messages refused because a signed "
         "statement inside did not verify (the sender is faulty)\n"
         "# TYPE synod_engine_bad_signatures_total counter\nsynod_engine_bad_signatures_total %"
         PRIu64 "\n", m->st.bad_sigs);
    EMIT("# HELP synod_evidence_total PBFT: proofs that a replica signed conflicting messages\n"
         "# TYPE synod_evidence_total counter\nsynod_evidence_total %" PRIu64 "\n",
         m->st.evidence);
    EMIT("# HELP synod_engine_dropped_total inputs the protocol engine refused (messages of an "
         "old term or view or outside its window, requests over max_pending)\n"
         "# TYPE synod_engine_dropped_total counter\nsynod_engine_dropped_total %" PRIu64 "\n",
         m->st.dropped);
    EMIT("# HELP synod_engine_refused_total inputs the protocol engine refused, by message type "
         "(client_req: client requests and reads) and reason; stale, not-leader and not-found "
         "are routine around elections, view changes and catching up; bad-sig, unknown-sender, "
         "bad-field and replay from a peer are not\n"
         "# TYPE synod_engine_refused_total counter\n");
    for (int t = 0; t < SY_MSG_TYPE_MAX; t++)
        for (int e = 1; e < SY_ERR_COUNT; e++)
            if (M_GET(m->refused[t][e]))
                EMIT("synod_engine_refused_total{type=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                     sy_msg_type_name(t), sy_errname(e), M_GET(m->refused[t][e]));
    EMIT("# HELP synod_engine_dissenting_votes_total PBFT: prepares and commits whose digest is "
         "not the one of the pre-prepare this replica accepted: the voter or that view's "
         "primary is faulty\n"
         "# TYPE synod_engine_dissenting_votes_total counter\n"
         "synod_engine_dissenting_votes_total %" PRIu64 "\n", m->st.dissent);
    EMIT("# HELP synod_accused_total PBFT: how often this replica named each replica as faulty, "
         "by kind: evidence (two conflicting statements it signed), bad-sig (statements from it "
         "that did not verify), dissent (its votes against the pre-prepare this replica "
         "accepted: it or that view's primary lies)\n"
         "# TYPE synod_accused_total counter\n");
    static const char *const acc_kind[3] = { "evidence", "bad-sig", "dissent" };
    const uint64_t *acc_cnt[3] = { m->accused.evidence, m->accused.bad_sigs,
                                   m->accused.dissent };
    for (int k = 0; k < 3; k++)
        for (uint32_t i = 0; i < SY_MAX_NODES; i++)
            if (acc_cnt[k][i])
                EMIT("synod_accused_total{node=\"%u\",kind=\"%s\"} %" PRIu64 "\n", i,
                     acc_kind[k], acc_cnt[k][i]);
    EMIT("# HELP synod_snapshots_total snapshots taken (PBFT: one per checkpoint)\n"
         "# TYPE synod_snapshots_total counter\nsynod_snapshots_total %" PRIu64 "\n", m->snapshots);
    EMIT("# HELP synod_snapshot_seconds_total time spent taking snapshots\n"
         "# TYPE synod_snapshot_seconds_total counter\nsynod_snapshot_seconds_total %.6f\n",
         m->snapshot_sum);
    EMIT("# HELP synod_snapshot_last_seconds how long the last snapshot took\n"
         "# TYPE synod_snapshot_last_seconds gauge\nsynod_snapshot_last_seconds %.6f\n",
         m->snapshot_last);
    EMIT("# HELP synod_snapshot_last_bytes size of the last snapshot's serialised state\n"
         "# TYPE synod_snapshot_last_bytes gauge\nsynod_snapshot_last_bytes %" PRIu64 "\n",
         m->snapshot_bytes);
    EMIT("# HELP synod_snapshot_waits_total PBFT checkpoints that waited for the snapshot "
         "before them\n"
         "# TYPE synod_snapshot_waits_total counter\nsynod_snapshot_waits_total %" PRIu64 "\n",
         m->snapshot_waits);
    EMIT("# HELP synod_pending_requests write requests waiting for their commit\n"
         "# TYPE synod_pending_requests gauge\nsynod_pending_requests %" PRIu64 "\n", m->pending);
    EMIT("# HELP synod_pending_reads reads waiting for their read index\n"
         "# TYPE synod_pending_reads gauge\nsynod_pending_reads %" PRIu64 "\n", m->pending_reads);
    EMIT("# HELP synod_messages_in_total verified messages received, by type\n"
         "# TYPE synod_messages_in_total counter\n");
    for (int t = 0; t < SY_MSG_TYPE_MAX; t++)
        if (M_GET(m->msg_in[t]))
            EMIT("synod_messages_in_total{type=\"%s\"} %" PRIu64 "\n", sy_msg_type_name(t),
                 M_GET(m->msg_in[t]));
    EMIT("# HELP synod_messages_out_total protocol messages sent to peers, by type\n"
         "# TYPE synod_messages_out_total counter\n");
    for (int t = 0; t < SY_MSG_TYPE_MAX; t++)
        if (M_GET(m->msg_out[t]))
            EMIT("synod_messages_out_total{type=\"%s\"} %" PRIu64 "\n", sy_msg_type_name(t),
                 M_GET(m->msg_out[t]));
    EMIT("# HELP synod_rejected_total frames refused before the engine saw them, by reason\n"
         "# TYPE synod_rejected_total counter\n");
    /* every reason a frame can be refused for is there from the start, so
     * an alert on one finds a series at 0 rather than none */
    bool listed[SY_ERR_COUNT] = {false};
    for (size_t i = 0; i < sizeof rt_reject_reasons / sizeof rt_reject_reasons[0]; i++)
        listed[rt_reject_reasons[i]] = true;
    for (int e = 0; e < SY_ERR_COUNT; e++)
        if (listed[e] || M_GET(m->rejected[e]))
            EMIT("synod_rejected_total{reason=\"%s\"} %" PRIu64 "\n", sy_errname(e),
                 M_GET(m->rejected[e]));
    EMIT("# HELP synod_fsync_seconds synced writes: write-ahead log records and LMDB commits\n");
    EMIT("# TYPE synod_fsync_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < RT_FSYNC_BUCKETS; i++) {
        cum += m->fsync_buckets[i];
        EMIT("synod_fsync_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", 0.00025 * (double)(1u << i), cum);
    }
    EMIT("synod_fsync_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", m->fsync_count);
    EMIT("synod_fsync_seconds_sum %.6f\nsynod_fsync_seconds_count %" PRIu64 "\n", m->fsync_sum,
         m->fsync_count);
    pthread_mutex_unlock(&r->m.mu);
    /* the transport appends its own synod_net_* lines after ours */
#undef EMIT
    return b->err;
}

static bool health_cb(void *ctx, char *why, size_t whylen)
{
    rt *r = ctx;
    pthread_mutex_lock(&r->m.mu);
    bool failed = r->m.storage_failed;
    pthread_mutex_unlock(&r->m.mu);
    if (failed) {
        snprintf(why, whylen, "storage failed; see the node's log");
        return false;
    }
    return true;
}

static void note_fsync(rt *r, double secs)
{
    int b = 0;
    while (b < RT_FSYNC_BUCKETS && secs > 0.00025 * (double)(1u << b))
        b++;
    if (b < RT_FSYNC_BUCKETS)
        r->m.fsync_buckets[b]++;
    r->m.fsync_count++;
    r->m.fsync_sum += secs;
}

/* ------------------------------------------------------------ replies */

/* A reply is encoded at once (its result may be freed right after) and
 * queued; flush_replies signs everything queued with one signature at the
 * end of the loop iteration (batch signatures, core/envelope.h), so a node
 * answering k clients at a time signs once instead of k times. Nothing
 * waits for a batch to fill: the replies of one iteration are all there is. */
static void flush_replies(rt *r);

/* Replies queued past this many bytes are signed and sent at once (a burst
 * of scan replies must not pile up in memory until the iteration ends). */
#define RT_REPLY_BATCH_BYTES (1u << 20)

/* The leader hint of an answer: a crash-fault reply comes from the leader
 * itself; a PBFT reply names the primary of the view, which the client
 * believes once f+1 replies agree (net/client.c bft_targets). */
static uint32_t reply_leader(const rt *r)
{
    return r->cluster.protocol == SY_PROTO_PBFT ? r->last_st.leader : r->ncfg.id;
}

static void reply_frame(rt *r, uint64_t handle, const sy_client_reply *rep)
{
    sy_msg m = {.type = SY_MSG_CLIENT_REPLY};
    m.u.reply = *rep;
    if (r->rbatch.n == r->cap_rhandles) {
        size_t nc = r->cap_rhandles ? r->cap_rhandles * 2 : 64;
        uint64_t *nh = realloc(r->rhandles, nc * sizeof *nh);
        if (!nh)
            return; /* the client retries */
        r->rhandles = nh;
        r->cap_rhandles = nc;
    }
    size_t at = r->rbatch.n;
    if (sy_env_batch_add(&r->rbatch, r->cluster.id, r->ncfg.id, &m) == SY_OK)
        r->rhandles[at] = handle;
    if (r->rbatch.inner.len >= RT_REPLY_BATCH_BYTES || r->rbatch.n >= SY_ENV_BATCH_MAX)
        flush_replies(r);
}

static void emit_reply(void *ctx, size_t i, const uint8_t *frame, size_t len)
{
    rt *r = ctx;
    sy_net_reply(r->net, r->rhandles[i], frame, len);
    M_ADD(r->m.replies, 1);
}

static void flush_replies(rt *r)
{
    if (!r->rbatch.n)
        return;
    size_t sigs = 0;
    sy_env_batch_seal(&r->rbatch, &r->signer, emit_reply, r, &sigs);
    M_ADD(r->m.reply_sigs, sigs);
}

static void reply_error(rt *r, uint64_t handle, uint32_t client, uint64_t req_no, int status)
{
    uint32_t leader = r->last_st.leader;
    sy_net_reply_error(r->net, handle, client, req_no, status, leader);
}

static pending_req *find_pending(rt *r, uint32_t client, uint64_t req_no)
{
    for (size_t i = 0; i < r->n_pend; i++)
        if (r->pend[i].client_id == client && r->pend[i].req_no == req_no)
            return &r->pend[i];
    return NULL;
}

static void drop_pending(rt *r, pending_req *p)
{
    *p = r->pend[--r->n_pend];
}

static void free_read(rt *r, size_t i)
{
    free(r->reads[i].frame);
    r->reads[i] = r->reads[--r->n_reads];
}

/* ------------------------------------------------------------ engine I/O */

static int step(rt *r, const sy_input *in)
{
    int rc = r->ops->step(r->eng, in);
    if (rc == SY_EFATAL) {
        SY_ERROR(&r->log, "engine found its own state impossible; stopping to protect the ledger");
        return rc;
    }
    /* what the engine refused from outside, by what it was and why: a
     * peer's stale or replayed votes, a request to a follower (the local
     * inputs -- ticks, snapshots -- are the host's own and not counted) */
    if (rc > SY_OK && rc < SY_ERR_COUNT) {
        int t = in->kind == SY_IN_MSG ? in->u.msg.msg->type
              : in->kind == SY_IN_REQUEST || in->kind == SY_IN_READ ? SY_MSG_CLIENT_REQ : -1;
        if (t >= 0 && t < SY_MSG_TYPE_MAX)
            M_ADD(r->m.refused[t][rc], 1);
    }
    return SY_OK;
}

static void serve_reads(rt *r)
{
    for (size_t i = 0; i < r->n_reads;) {
        pending_read *pr = &r->reads[i];
        if (!pr->ready || pr->index > r->applied_visible) {
            i++;
            continue;
        }
        sy_kv_results res;
        if (sy_kv_read(&r->kv, &pr->req, &res) == SY_OK && res.n == 1) {
            res.replies[0].leader = r->last_st.leader;
            reply_frame(r, pr->handle, &res.replies[0]);
            M_ADD(r->m.reads, 1);
        } else {
            reply_error(r, pr->handle, pr->req.client_id, pr->req.req_no, SY_EIO);
        }
        sy_kv_results_free(&res);
        free_read(r, i);
    }
}

/* ------------------------------------------------------------ snapshots
 *
 * A snapshot is O(state): serialise every row, hash the blob, store it
 * (synced). Done on the event loop it held every message and client for
 * its whole length (~1.1 us per key: 1.1 s at a million keys, at every
 * PBFT checkpoint). So the loop only opens a read transaction at the
 * snapshot's index -- the state is committed there (no held apply: the
 * callers wait for the flush) and the transaction keeps that view however
 * the state moves on -- and the snapshot thread does the rest, then wakes
 * the loop, which steps SY_IN_SNAPSHOT with the stored blob. Meanwhile the
 * loop goes on: every engine goes on applying (PBFT's waits only for the
 * ready that names the checkpoint to be written; its CHECKPOINT waits for
 * the snapshot, whose digest it signs). One snapshot at a time; a PBFT
 * checkpoint that comes due while one is under way waits for it, on the
 * loop (maybe_snapshot): its view must be opened before the next write
 * moves the state past it. The blob is stored before the engine hears of
 * it, as before, so a CHECKPOINT it signs is backed by a durable blob.
 * The store is a write transaction of its own: it waits for the loop's,
 * which commits at once while a snapshot is pending (flush_due), and the
 * loop's next one waits for it. */

static int maybe_snapshot(rt *r);

static void snap_members(const rt *r, sy_members *mem)
{
    memset(mem, 0, sizeof *mem);
    mem->n_voters = r->cluster.n;
    for (uint32_t i = 0; i < r->cluster.n; i++)
        mem->voters[i] = i;
}

/* Serialises the view t, computes PBFT's checkpoint digest of it, stores
 * it through st (r->st on the loop, r->sn_st on the snapshot thread). Any
 * thread; t is ended here. */
static int snap_make(rt *r, sy_storage *st, sy_txn *t, uint64_t index, uint64_t term,
                     uint8_t **blob, size_t *len, sy_digest *dg, bool *have_dg)
{
    *blob = NULL;
    *len = 0;
    *have_dg = false;
    uint64_t at = 0;
    int rc = sy_txn_get_applied(t, &at);
    if (rc == SY_OK && at != index)
        rc = SY_EINVAL;   /* a bug upstream (see maybe_snapshot): refuse, never mislabel */
    if (rc == SY_OK)
        rc = sy_kv_snapshot_txn(t, blob, len);
    sy_txn_abort(t);
    if (rc)
        return rc;
    if (r->cluster.protocol == SY_PROTO_PBFT) {
        uint32_t chunk = r->ecfg.state_chunk_bytes ? r->ecfg.state_chunk_bytes : SY_STATE_CHUNK_DEF;
        if ((rc = sy_chunks_digest(*blob, *len, chunk, dg)))
            return rc;
        *have_dg = true;
    }
    sy_members mem;
    snap_members(r, &mem);
    sy_txn w;
    if ((rc = sy_txn_begin(st, true, &w)) == SY_OK) {
        /* PBFT: kept beside the stable checkpoint's snapshot, the log whole,
         * until this checkpoint is stable (a lagging replica may still
         * fetch the stable state and the entries above it from us) */
        rc = r->cluster.protocol == SY_PROTO_PBFT
                 ? sy_txn_checkpoint_snapshot(&w, index, term, &mem,
                                              (sy_bytes){*blob, (uint32_t)*len})
                 : sy_txn_local_snapshot(&w, index, term, &mem, (sy_bytes){*blob, (uint32_t)*len});
        rc = rc ? (sy_txn_abort(&w), rc) : sy_txn_commit(&w);
    }
    return rc;
}

/* The loop: the engine learns of a stored snapshot. */
static int snap_finish(rt *r, uint64_t index, uint64_t term, uint8_t *blob, size_t len,
                       const sy_digest *dg, double secs)
{
    sy_input in = {.kind = SY_IN_SNAPSHOT, .now_ms = now_ms()};
    in.u.snapshot.index = index;
    in.u.snapshot.term = term;
    in.u.snapshot.data = (sy_bytes){blob, (uint32_t)len};
    in.u.snapshot.digest = dg;
    int rc = step(r, &in);
    if (index > r->snap_index)
        r->snap_index = index;   /* an install may have moved it further meanwhile */
    pthread_mutex_lock(&r->m.mu);
    r->m.snapshots++;
    r->m.snapshot_sum += secs;
    r->m.snapshot_last = secs;
    r->m.snapshot_bytes = len;
    pthread_mutex_unlock(&r->m.mu);
    if (r->cluster.protocol == SY_PROTO_PBFT)
        SY_INFO(&r->log, "snapshot at checkpoint %" PRIu64 " (%zu bytes, %.0f ms); the log is "
                "compacted below it once it is stable", index, len, secs * 1e3);
    else
        SY_INFO(&r->log, "snapshot at index %" PRIu64 " (%zu bytes, %.0f ms); log compacted "
                "below it", index, len, secs * 1e3);
    uint64_t t = now_ms();
    if (secs >= RT_SNAPSHOT_SLOW_S && t - r->sn_warn_ms < RT_DROP_REPORT_MS) {
        r->sn_warn_skipped++;
    } else if (secs >= RT_SNAPSHOT_SLOW_S) {
        if (r->cluster.protocol == SY_PROTO_PBFT)
            SY_WARN(&r->log,
                    "snapshot at index %" PRIu64 " took %.2f s (%zu bytes), and its checkpoint "
                    "goes stable that much later; one is taken at every checkpoint: raise "
                    "checkpoint_interval (docs/operations.md, \"Large states\"; %" PRIu64
                    " more such since the last of these lines)",
                    index, secs, len, r->sn_warn_skipped);
        else
            SY_WARN(&r->log,
                    "snapshot at index %" PRIu64 " took %.2f s (%zu bytes); raise "
                    "snapshot_threshold to take fewer (docs/operations.md, \"Large states\"; %"
                    PRIu64 " more such since the last of these lines)",
                    index, secs, len, r->sn_warn_skipped);
        r->sn_warn_ms = t;
        r->sn_warn_skipped = 0;
    }
    /* the old log entries and the engine's previous copy are gone now:
     * hand the freed heap back (see RT_MMAP_THRESHOLD) */
    free(blob);
    malloc_trim(0);
    return rc;
}

static void *snapshot_main(void *arg)
{
    rt *r = arg;
    pthread_mutex_lock(&r->sn_mu);
    for (;;) {
        while (!r->sn_queued && !r->sn_quit)
            pthread_cond_wait(&r->sn_cv, &r->sn_mu);
        if (!r->sn_queued)
            break;
        sy_txn t = r->sn_txn;
        uint64_t index = r->sn_index, term = r->sn_term;
        bool quit = r->sn_quit;
        pthread_mutex_unlock(&r->sn_mu);
        double t0 = now_s();
        uint8_t *blob = NULL;
        size_t len = 0;
        sy_digest dg = {{0}};
        bool have_dg = false;
        int rc;
        if (quit) {
            /* stopping: Raft and Paxos take it again after the next start;
             * PBFT's checkpoint is left to the others' votes (docs/pbft.md,
             * "What remains") */
            sy_txn_abort(&t);
            rc = SY_ECLOSED;
        } else {
            if (r->sn_delay_ms) {   /* test builds only (--slow-snapshot) */
                struct timespec d = {r->sn_delay_ms / 1000, (long)(r->sn_delay_ms % 1000) * 1000000L};
                nanosleep(&d, NULL);
            }
            rc = snap_make(r, &r->sn_st, &t, index, term, &blob, &len, &dg, &have_dg);
        }
        pthread_mutex_lock(&r->sn_mu);
        r->sn_blob = blob;
        r->sn_len = len;
        r->sn_digest = dg;
        r->sn_have_digest = have_dg;
        r->sn_rc = rc;
        r->sn_secs = now_s() - t0;
        r->sn_queued = false;
        r->sn_done = true;
        pthread_cond_broadcast(&r->sn_cv);
        sy_net_wake(r->net);
    }
    pthread_mutex_unlock(&r->sn_mu);
    return NULL;
}

static void snap_superseded(rt *r, uint64_t index);

static int take_snapshot(rt *r, uint64_t index)
{
    /* answered clients do not wait for the snapshot */
    flush_replies(r);
    /* the thread is idle (no snapshot is busy), so the loop may use its
     * handle to open the view the thread will read */
    sy_storage *st = r->sn_thread_up ? &r->sn_st : r->st;
    sy_txn t;
    int rc = sy_txn_begin(st, false, &t);
    if (rc) {
        SY_ERROR(&r->log, "snapshot at index %" PRIu64 " failed: %s (%s)", index, sy_strerror(rc),
                 sy_storage_errmsg(st));
        return rc;
    }
    if (r->sn_thread_up) {
        pthread_mutex_lock(&r->sn_mu);
        r->sn_txn = t;
        r->sn_index = index;
        r->sn_term = r->applied_term;
        r->sn_queued = true;
        pthread_cond_broadcast(&r->sn_cv);
        pthread_mutex_unlock(&r->sn_mu);
        r->sn_busy = true;
        return SY_OK;
    }
    /* no thread: here, holding the loop, as it always was */
    double t0 = now_s();
    uint8_t *blob;
    size_t len;
    sy_digest dg;
    bool have_dg;
    rc = snap_make(r, r->st, &t, index, r->applied_term, &blob, &len, &dg, &have_dg);
    if (rc == SY_ESTALE) {
        snap_superseded(r, index);
        free(blob);
        return SY_OK;
    }
    if (rc) {
        SY_ERROR(&r->log, "snapshot at index %" PRIu64 " failed: %s (%s)", index, sy_strerror(rc),
                 sy_storage_errmsg(r->st));
        free(blob);
        return rc;
    }
    return snap_finish(r, index, r->applied_term, blob, len, have_dg ? &dg : NULL, now_s() - t0);
}

/* A snapshot the store refused as superseded (SY_ESTALE): an install
 * committed while it was taken (sy_txn_local_snapshot), or, PBFT, a later
 * checkpoint went stable (sy_txn_checkpoint_snapshot). Nothing stored,
 * the engine not told; the next one is taken as usual. */
static void snap_superseded(rt *r, uint64_t index)
{
    if (r->cluster.protocol == SY_PROTO_PBFT)
        SY_INFO(&r->log, "snapshot at checkpoint %" PRIu64 " not stored: a later "
                "checkpoint went stable, or a snapshot was installed, meanwhile", index);
    else
        SY_INFO(&r->log, "snapshot at index %" PRIu64 " dropped: an installed snapshot "
                "superseded it meanwhile", index);
    if (index > r->snap_index)
        r->snap_index = index;   /* Raft, Paxos: the store holds one at least as new */
}

/* The loop: the snapshot the thread finished, if it has (wait: once it
 * has). */
static int snap_collect(rt *r, bool wait)
{
    if (!r->sn_busy)
        return SY_OK;
    pthread_mutex_lock(&r->sn_mu);
    while (wait && !r->sn_done)
        pthread_cond_wait(&r->sn_cv, &r->sn_mu);
    bool done = r->sn_done;
    r->sn_done = false;
    pthread_mutex_unlock(&r->sn_mu);
    if (!done)
        return SY_OK;
    r->sn_busy = false;
    if (r->sn_rc == SY_ESTALE) {
        snap_superseded(r, r->sn_index);
        free(r->sn_blob);
        r->sn_blob = NULL;
        return SY_OK;
    }
    if (r->sn_rc == SY_EINVAL) {
        SY_ERROR(&r->log, "snapshot at index %" PRIu64 ": the store was not at that index, "
                 "or its log ends below it (%s; a bug, please report); stopping rather than "
                 "mislabel state", r->sn_index, sy_storage_errmsg(&r->sn_st));
        free(r->sn_blob);
        r->sn_blob = NULL;
        return r->sn_rc;
    }
    if (r->sn_rc) {
        SY_ERROR(&r->log, "snapshot at index %" PRIu64 " failed: %s (%s)", r->sn_index,
                 sy_strerror(r->sn_rc), sy_storage_errmsg(&r->sn_st));
        free(r->sn_blob);
        r->sn_blob = NULL;
        return r->sn_rc;
    }
    uint8_t *blob = r->sn_blob;
    r->sn_blob = NULL;
    return snap_finish(r, r->sn_index, r->sn_term, blob, r->sn_len,
                       r->sn_have_digest ? &r->sn_digest : NULL, r->sn_secs);
}

static int collect_snapshot(rt *r)
{
    bool was = r->sn_busy;
    int rc = snap_collect(r, false);
    return rc || !was || r->sn_busy ? rc : maybe_snapshot(r);
}

/* Stopping: a snapshot being taken is finished (or, not yet started, its
 * view let go); the engine is not told -- the stored blob is what a
 * restart boots from. */
static void snap_stop(rt *r)
{
    if (!r->sn_thread_up)
        return;
    pthread_mutex_lock(&r->sn_mu);
    r->sn_quit = true;
    pthread_cond_broadcast(&r->sn_cv);
    pthread_mutex_unlock(&r->sn_mu);
    pthread_join(r->sn_thread, NULL);
    r->sn_thread_up = false;
    free(r->sn_blob);
    r->sn_blob = NULL;
}

/* ------------------------------------------------------------ the write
 *
 * One ready at a time is written, on this thread: its persistence and the
 * application of its committed entries in one LMDB transaction, made
 * durable by one synced write (see "Held apply"). Input that arrives
 * during the sync waits in the network's event queue and goes into the
 * engine together, so the next ready's batch forms during the sync (group
 * commit across loop iterations). Status and stale reads read the storage
 * through read transactions (LMDB MVCC, MDB_NOTLS: beside the open write
 * transaction of this thread), which see committed transactions only. */

static void results_free(sy_kv_results *res, size_t n)
{
    if (!res)
        return;
    for (size_t i = 0; i < n; i++)
        sy_kv_results_free(&res[i]);
    free(res);
}

static void lazy_free(rt_lazy *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        results_free(l[i].res, l[i].own.rd.n_committed);
        sy_ready_owned_free(&l[i].own);
    }
}

static void job_clear(rt_job *j)
{
    results_free(j->res, j->own.rd.n_committed);
    j->res = NULL;
    lazy_free(j->lazy, j->n_lazy);
    free(j->lazy);
    j->lazy = NULL;
    j->n_lazy = 0;
    for (size_t i = 0; i < j->n_frames; i++)
        free(j->frames[i].data);
    j->n_frames = 0;
    sy_ready_owned_free(&j->own);
    j->need_txn = false;
    j->may_hold = j->held = j->wal_synced = false;
    j->rc = SY_OK;
    j->sync_secs = 0;
}

static void early_replies(rt *r, rt_job *j);

/* Work in a ready that must be durable before its effects: everything but
 * applying committed entries. */
static bool durable_work(const sy_ready *rd)
{
    return sy_ready_must_sync(rd);
}

/* Held apply. Applying committed entries need not be durable by itself:
 * the entries are durable in this node's log already (the write that
 * appended them was synced, or this very write appends them and is), and
 * the state machine is deterministic, so a crash that loses an applied
 * batch is repaired by applying it again from the log on restart -- the
 * argument of early replies and of lazy apply (docs/storage.md). So a
 * write that only applies (no entries, truncation, snapshot or compaction,
 * and no hard state beyond a lazy one, core/engine.h) is not committed:
 * its transaction stays open ("held") and the next write continues in it
 * and commits both with one sync. With one or a few clients a leader
 * alternates append-only and apply-only readies; this halves its syncs,
 * and the next append no longer waits behind the apply's sync. A held
 * transaction is committed at the latest the node's commit_interval_ms
 * later (node file; default SY_DEF_COMMIT_INTERVAL_MS), before a
 * linearizable read is served from the state (reads see committed
 * transactions only: applied_visible), before a snapshot, and at shutdown,
 * or sooner once RT_HOLD_MAX_BYTES of entries went into it.
 * A PBFT checkpoint is never held: the snapshot it certifies is read from
 * committed state.
 *
 * The interval. With the write-ahead log every durable write is a log
 * record, so the LMDB commit only moves data and bounds what a restart
 * replays; what it costs is pages: each commit writes every state leaf the
 * held puts touched, and a leaf touched again after a commit is copied and
 * written again. Measured (Raft n=3, 64 clients over 10,000 keys, three
 * runs each, interleaved): 20 ms 5,743 ops/s, 100 ms 5,908, 250 ms 6,204,
 * 1 s 6,376; 16 clients 3,309 / 3,351 (250 ms) / 3,427 (1 s); one client
 * within the noise. The gain comes from keys written again within an
 * interval: over 100,000 keys (16 clients) throughput is within the noise
 * of 20 ms. The price is the tail (64 clients over 10,000 keys, p99
 * 21-22.5 ms at 20 ms, 20-31 at 100 ms, 25.7-29 at 250 ms; 16 clients
 * over 100,000 keys, 11.8-12.2 / 22-23 / 19.4-31): a larger commit's flush
 * occupies the disk longer and log syncs queue behind it -- on this
 * machine the nodes share one disk; a pipeline that took the commit off
 * this thread measured the same p99 (docs/benchmarks.md). Hence a node
 * setting; operators who want the shortest tail set 20. etcd commits its
 * backend every 100 ms. 250 ms keeps what `status` and stale reads see at
 * most a quarter second behind the applied index (linearizable reads force
 * a commit) and the open transaction's copied pages to what
 * RT_HOLD_MAX_BYTES of entries can touch. */
#define RT_HOLD_MAX_BYTES (1u << 20)

/* Commit records after the answers. Raft and Multi-Paxos ask the host to
 * sign each committed entry's commit record (sy_committed.attest). It
 * depends on nothing but the entry and the node's key, and nothing reads
 * it before the block is durable, so it is signed after the answers of the
 * loop iteration have left -- a follower's acknowledgement, the leader's
 * replies -- instead of in the engine's ready, where it sat in series on
 * both (~20 us of Ed25519 each, docs/benchmarks.md, "Session 23"). The
 * block is written without it when the entry is applied; attest_note keeps
 * the record's message, attest_fill signs the waiting records into their
 * blocks: a few at the end of each loop iteration (attest_fill_held), and
 * all that wait before any commit of the transaction that holds the
 * blocks (job_write, commit_at_shutdown) and before a snapshot install
 * resets the ledger. A crash before that loses the blocks with the
 * transaction, and boot applies (and signs) again. */
static int attest_note(rt *r, const sy_committed *c, const sy_kv_results *res)
{
    if (!c->attest || !res->block)
        return SY_OK;
    if (r->n_att == r->cap_att) {
        size_t nc = r->cap_att ? r->cap_att * 2 : 64;
        rt_attest *na = realloc(r->att, nc * sizeof *na);
        if (!na)
            return SY_ENOMEM;
        r->att = na;
        r->cap_att = nc;
    }
    rt_attest *a = &r->att[r->n_att];
    a->height = res->height;
    a->len = sy_committed_attest_msg(c, r->cluster.id, a->msg);
    r->n_att++;
    return SY_OK;
}

/* Signs at most `max` of the waiting records (oldest first) into t. */
static int attest_fill_some(rt *r, sy_txn *t, size_t max)
{
    size_t n = r->n_att < max ? r->n_att : max;
    if (!n)
        return SY_OK;   /* r->att may be NULL: no memmove of it */
    for (size_t i = 0; i < n; i++) {
        uint8_t ev[SY_ATTEST_LEN];
        sy_attestation_seal(r->ncfg.id, &r->signer, r->att[i].msg, r->att[i].len, ev);
        int rc = sy_ledger_set_evidence(t, r->att[i].height, (sy_bytes){ev, sizeof ev});
        if (rc)
            return rc;
    }
    memmove(r->att, r->att + n, (r->n_att - n) * sizeof *r->att);
    r->n_att -= n;
    return SY_OK;
}

static int attest_fill(rt *r, sy_txn *t)
{
    return attest_fill_some(r, t, SIZE_MAX);
}

/* End of a loop iteration: the answers have left; records waiting in the
 * held transaction are signed into it, RT_ATTEST_PER_ITER at a time. A
 * follower applies lazily, some 30 entries at once at one client: signing
 * all their records there took ~0.7 ms in one go, and the acknowledgement
 * of an append that arrived meanwhile waited for it (one-client p99 +0.4
 * ms against signing in ready, "Session 23"); a few per iteration spreads
 * them over the appends that follow. Whatever is left is signed before
 * the transaction commits (attest_fill), and all at once past
 * RT_ATTEST_MAX waiting. */
#define RT_ATTEST_PER_ITER 4
#define RT_ATTEST_MAX 4096
static int attest_fill_held(rt *r)
{
    if (!r->n_att)
        return SY_OK;
    int rc = r->held_txn_open
                 ? attest_fill_some(r, &r->held_txn,
                                    r->n_att > RT_ATTEST_MAX ? SIZE_MAX : RT_ATTEST_PER_ITER)
                 : SY_EINVAL;
    if (rc) {
        SY_ERROR(&r->log, "storage write failed: %s (%s); stopping", sy_strerror(rc),
                 r->held_txn_open ? sy_storage_errmsg(r->st)
                                  : "commit records wait for no open transaction");
        pthread_mutex_lock(&r->m.mu);
        r->m.storage_failed = true;
        pthread_mutex_unlock(&r->m.mu);
    }
    return rc;
}

/* The write, on the event loop. Until session 16 a storage thread did it
 * while the loop kept stepping input (the engines allow that:
 * ops->pipelined); the loop took no new ready before the write was done
 * either way, and the two hand-offs per write cost more than the stepping
 * it overlapped: writing here measured +6-12% at one client (Raft, Paxos),
 * +1-8% at 16 (Raft, Paxos), within the noise at 64 and for PBFT
 * (docs/benchmarks.md, "Session 16"). Messages marked early still leave
 * before the write (take_msgs). */
static int job_write(rt *r, rt_job *j)
{
    const sy_ready *rd = &j->own.rd;
    sy_txn t;
    int rc;
    j->held = false;
    if (r->held_txn_open) {
        t = r->held_txn;
        r->held_txn_open = false;
    } else if ((rc = sy_txn_begin(r->st, true, &t))) {
        return rc;
    }
    if ((rc = sy_txn_persist_ready(&t, rd)))
        goto err_abort;
    if (rd->snapshot_install) {
        /* the install resets the ledger: what waits is signed first */
        if ((rc = attest_fill(r, &t)) ||
            (rc = sy_kv_restore(&r->kv, &t, rd->snap_data.p, rd->snap_data.len)))
            goto err_abort;
    }
    for (size_t k = 0; k < j->n_lazy; k++) {
        const sy_ready *lr = &j->lazy[k].own.rd;
        for (size_t i = 0; i < lr->n_committed; i++)
            if ((rc = sy_kv_apply(&r->kv, &t, &lr->committed[i], &j->lazy[k].res[i])) ||
                (rc = attest_note(r, &lr->committed[i], &j->lazy[k].res[i])))
                goto err_abort;
    }
    for (size_t i = 0; i < rd->n_committed; i++) {
        if ((rc = sy_kv_apply(&r->kv, &t, &rd->committed[i], &j->res[i])) ||
            (rc = attest_note(r, &rd->committed[i], &j->res[i])))
            goto err_abort;
    }
    if (j->reply_early_upto)
        early_replies(r, j);
    if (j->may_hold && !durable_work(rd)) {
        r->held_txn = t;
        r->held_txn_open = true;
        j->held = true;
        return SY_OK;
    }
    /* the replies made so far leave before the sync (see early_replies) */
    flush_replies(r);
    double t0 = now_s();
    /* Durable work: the WAL record makes it durable with one small synced
     * write, and the transaction stays open (core/wal.h). A full log, a
     * snapshot, compaction, or a flush that is due: an LMDB commit. */
    if (j->may_hold && r->wal && sy_wal_loggable(rd)) {
        bool full = false;
        rc = sy_wal_log(r->wal, &t, rd, &full);
        if (rc == SY_OK && !full) {
            j->sync_secs = now_s() - t0;
            j->wal_synced = true;
            r->held_txn = t;
            r->held_txn_open = true;
            j->held = true;
            return SY_OK;
        }
        if (rc)
            goto err_abort;
    }
    if ((rc = attest_fill(r, &t)))
        goto err_abort;
    if ((rc = sy_txn_commit(&t)))
        return rc;
    if (r->wal)
        sy_wal_reset(r->wal);  /* LMDB holds every record now */
    j->sync_secs = now_s() - t0;
    return SY_OK;
err_abort:
    sy_txn_abort(&t);
    r->n_att = 0;   /* their blocks went with the transaction */
    return rc;
}

/* Shutdown: what was held becomes durable before LMDB closes, marked
 * clean (core/wal.h). */
static int commit_at_shutdown(rt *r)
{
    sy_txn t;
    int rc = SY_OK;
    if (r->held_txn_open) {
        t = r->held_txn;
        r->held_txn_open = false;
    } else if (r->wal) {
        rc = sy_txn_begin(r->st, true, &t);
    } else {
        return SY_OK;
    }
    if (rc == SY_OK && ((rc = attest_fill(r, &t)) ||
                        (r->wal && (rc = sy_wal_mark_clean(r->wal, &t)))))
        sy_txn_abort(&t);
    else if (rc == SY_OK)
        rc = sy_txn_commit(&t);
    if (rc)
        SY_ERROR(&r->log, "the last commit at shutdown failed: %s (nothing is lost: the "
                 "write-ahead log replays at the next start)", sy_storage_errmsg(r->st));
    return rc;
}

/* Encodes the ready's messages: early ones leave now (core/engine.h), the
 * rest wait in the job for its write. */
static int take_msgs(rt *r, const sy_ready *rd, rt_job *j)
{
    /* An envelope names its sender, not its receiver, so a message the
     * engine broadcasts (PBFT: one entry per peer, the same sy_msg each
     * time) is encoded and signed once and the same frame goes to every
     * peer: n-2 fewer signatures per broadcast. A message built once per
     * peer with the same content (Raft and Paxos appends to followers that
     * are caught up: each has its own entry array) is encoded again but
     * signed once (sy_env_memo). */
    const sy_msg *last = NULL;
    for (size_t i = 0; i < rd->n_msgs; i++) {
        const sy_outmsg *om = &rd->msgs[i];
        if (om->to == r->ncfg.id || om->to >= r->cluster.n)
            continue;
        if (!last || memcmp(last, &om->msg, sizeof om->msg) != 0) {
            last = NULL;
            sy_buf_reset(&r->out);
            if (sy_env_encode_memo(r->cluster.id, r->ncfg.id, &om->msg, &r->signer, &r->memo,
                                   &r->out, NULL) != SY_OK)
                continue;
            last = &om->msg;
        }
        if (om->early) {
            sy_net_send(r->net, om->to, r->out.p, r->out.len);
            if (om->msg.type < SY_MSG_TYPE_MAX)
                M_ADD(r->m.msg_out[om->msg.type], 1);
            continue;
        }
        if (j->n_frames == j->cap_frames) {
            size_t nc = j->cap_frames ? j->cap_frames * 2 : 16;
            rt_frame *nf = realloc(j->frames, nc * sizeof *nf);
            if (!nf)
                return SY_ENOMEM;
            j->frames = nf;
            j->cap_frames = nc;
        }
        uint8_t *copy = malloc(r->out.len);
        if (!copy)
            return SY_ENOMEM;
        memcpy(copy, r->out.p, r->out.len);
        j->frames[j->n_frames++] = (rt_frame){ om->to, om->msg.type, copy, r->out.len };
    }
    return SY_OK;
}

static bool ready_empty(const sy_ready *rd)
{
    return !sy_ready_persists(rd) && !rd->n_msgs && !rd->n_committed && !rd->n_reads &&
           !rd->n_rejects && !rd->checkpoint_index;
}

/* Applied entries move the applied index; their clients get replies. */
static void applied_part(rt *r, const sy_ready *rd, sy_kv_results *results)
{
    for (size_t i = 0; i < rd->n_committed; i++) {
        sy_kv_results *res = &results[i];
        if (!res->skipped) {
            r->applied = rd->committed[i].entry.index;
            r->applied_term = rd->committed[i].entry.term;
        }
        M_ADD(r->m.entries_applied, 1);
        for (size_t k = 0; k < res->n; k++) {
            sy_client_reply *rep = &res->replies[k];
            M_ADD(r->m.commits, 1);
            pending_req *p = find_pending(r, rep->client_id, rep->req_no);
            if (p) {
                rep->leader = reply_leader(r);
                reply_frame(r, p->handle, rep);
                drop_pending(r, p);
            }
        }
    }
}

static bool snapshot_due(const rt *r)
{
    return r->ecfg.snapshot_threshold && !r->ckpt_pending &&
           r->applied >= r->snap_index + r->ecfg.snapshot_threshold &&
           strcmp(r->ops->name, "pbft") != 0;
}

/* Entry bytes a job wrote (appended or applied): what it may have added
 * to a held transaction's copied pages. */
static uint64_t job_bytes(const rt_job *j)
{
    const sy_ready *rd = &j->own.rd;
    uint64_t b = 0;
    for (size_t i = 0; i < rd->n_entries; i++)
        b += rd->entries[i].data.len;
    for (size_t i = 0; i < rd->n_committed; i++)
        b += rd->committed[i].entry.data.len;
    for (size_t k = 0; k < j->n_lazy; k++)
        for (size_t i = 0; i < j->lazy[k].own.rd.n_committed; i++)
            b += j->lazy[k].own.rd.committed[i].entry.data.len;
    return b;
}

/* After a snapshot install the engine learns the installed state's client
 * sessions (SY_IN_SESSIONS; PBFT rebuilds its client table from them,
 * docs/pbft.md "State transfer"; the others ignore them). Only a failure
 * to read the store is fatal. */
static int step_sessions(rt *r, uint64_t index)
{
    sy_session_rec *recs;
    size_t n;
    uint64_t applied;
    int rc = sy_kv_sessions(&r->kv, &recs, &n, &applied);
    if (rc) {
        SY_ERROR(&r->log, "reading the client sessions of the installed snapshot failed: %s (%s)",
                 sy_strerror(rc), sy_storage_errmsg(r->st));
        return rc;
    }
    sy_input in = {.kind = SY_IN_SESSIONS, .now_ms = now_ms()};
    in.u.sessions.index = index;
    in.u.sessions.recs = recs;
    in.u.sessions.n = n;
    rc = step(r, &in);
    free(recs);
    return rc == SY_EFATAL ? rc : SY_OK;
}

/* After advance(): an engine that has caught up from a replaced disk says
 * so, and what it caught up to is durable by then (sy_engine_status): the
 * mark goes, and a later start is an ordinary one. */
static void rejoin_check(rt *r)
{
    sy_engine_status st;
    r->ops->status(r->eng, &st);
    if (st.rejoining)
        return;
    r->rejoin_marked = false;
    char why[4400];
    if (sy_datadir_rejoin_clear(r->ncfg.data_dir, why, sizeof why))
        SY_WARN(&r->log, "caught up, but %s: the next start rejoins again", why);
    else
        SY_INFO(&r->log, "rejoined: caught up with the leader to index %" PRIu64 "; this node "
                "takes part in electing leaders again", st.commit_index);
}

/* Everything after the write is durable: bookkeeping, the waiting
 * messages, replies, read indexes, rejects, advance(), then reads and
 * snapshots that wanted the new applied index. */
static int finish_job(rt *r, rt_job *j)
{
    const sy_ready *rd = &j->own.rd;
    int rc = j->rc;
    if (rc) {
        SY_ERROR(&r->log, "storage write failed: %s (%s); stopping", sy_strerror(rc),
                 sy_storage_errmsg(r->st));
        pthread_mutex_lock(&r->m.mu);
        r->m.storage_failed = true;
        pthread_mutex_unlock(&r->m.mu);
        job_clear(j);
        return rc;
    }
    pthread_mutex_lock(&r->m.mu);
    if (j->need_txn && (!j->held || j->wal_synced))
        note_fsync(r, j->sync_secs);
    r->m.wal_syncs += j->wal_synced;
    pthread_mutex_unlock(&r->m.mu);
    if (rd->snapshot_install) {
        r->applied = rd->snap_index;
        r->applied_term = rd->snap_term;
        r->snap_index = rd->snap_index;
        SY_INFO(&r->log, "installed snapshot at index %" PRIu64 " (%" PRIu32 " bytes) %s",
                rd->snap_index, rd->snap_data.len,
                r->cluster.protocol == SY_PROTO_PBFT ? "by state transfer from peers"
                                                     : "from the leader");
    }
    /* durable: now the messages that depend on it may leave */
    for (size_t i = 0; i < j->n_frames; i++) {
        sy_net_send(r->net, j->frames[i].to, j->frames[i].data, j->frames[i].len);
        if (j->frames[i].type < SY_MSG_TYPE_MAX)
            M_ADD(r->m.msg_out[j->frames[i].type], 1);
    }
    for (size_t k = 0; k < j->n_lazy; k++)
        applied_part(r, &j->lazy[k].own.rd, j->lazy[k].res);
    applied_part(r, rd, j->res);
    if (j->need_txn && j->held) {
        if (!r->held_open) {
            r->held_open = true;
            r->held_since = now_ms();
            r->held_bytes = 0;
        }
        r->held_bytes += job_bytes(j);
    } else if (j->need_txn || !r->held_open) {
        r->held_open = false;
        r->applied_visible = r->applied;
    }
    for (size_t i = 0; i < rd->n_reads; i++) {
        const sy_read_state *rs = &rd->reads[i];
        for (size_t k = 0; k < r->n_reads; k++) {
            if (r->reads[k].read_id != rs->read_id)
                continue;
            if (rs->status != SY_OK) {
                reply_error(r, r->reads[k].handle, r->reads[k].req.client_id,
                            r->reads[k].req.req_no, rs->status);
                free_read(r, k);
            } else {
                r->reads[k].index = rs->index;
                r->reads[k].ready = true;
            }
            break;
        }
    }
    for (size_t i = 0; i < rd->n_rejects; i++) {
        const sy_reject *rj = &rd->rejects[i];
        pending_req *p = find_pending(r, rj->client_id, rj->req_no);
        if (p) {
            sy_net_reply_error(r->net, p->handle, rj->client_id, rj->req_no, rj->status,
                               rj->leader);
            drop_pending(r, p);
        }
    }
    if (rd->checkpoint_index)
        r->ckpt_pending = rd->checkpoint_index;
    bool installed = rd->snapshot_install;
    uint64_t installed_at = rd->snap_index;
    job_clear(j);
    r->ops->advance(r->eng, now_ms());
    if (r->rejoin_marked)
        rejoin_check(r);
    if (installed && (rc = step_sessions(r, installed_at)))
        return rc;
    serve_reads(r);
    return maybe_snapshot(r);
}

/* After a write or a snapshot: one is due. */
static int maybe_snapshot(rt *r)
{
    /* The read view must be the state at r->applied exactly: nothing held
     * (flushed first: flush_due). */
    if (r->held_open)
        return SY_OK;
    /* PBFT checkpoints want a snapshot of exactly the checkpointed
     * state; our apply loop stops at nothing, so we snapshot when the
     * applied index equals it (engines emit it before executing past,
     * and go on once the ready that names it is written). */
    if (r->ckpt_pending && r->applied == r->ckpt_pending) {
        int rc;
        if (r->sn_busy) {   /* see "snapshots" */
            double t0 = now_s();
            if ((rc = snap_collect(r, true)))
                return rc;
            uint64_t t = now_ms();
            if (t - r->sn_wait_ms < RT_DROP_REPORT_MS) {
                r->sn_wait_skipped++;
            } else {
                SY_INFO(&r->log, "checkpoint at index %" PRIu64 " waited %.0f ms for the "
                        "snapshot before it: snapshots are slower than checkpoints come (%" PRIu64
                        " more such since the last of these lines; synod_snapshot_waits_total)",
                        r->applied, (now_s() - t0) * 1e3, r->sn_wait_skipped);
                r->sn_wait_ms = t;
                r->sn_wait_skipped = 0;
            }
            pthread_mutex_lock(&r->m.mu);
            r->m.snapshot_waits++;
            pthread_mutex_unlock(&r->m.mu);
        }
        r->ckpt_pending = 0;
        return take_snapshot(r, r->applied);
    }
    if (!r->sn_busy && snapshot_due(r))
        return take_snapshot(r, r->applied);
    return SY_OK;
}

/* Early replies. A committed entry is durable on a quorum by definition,
 * and the state machine is deterministic: a crash before this write's sync
 * loses the applied state, not the entry, and the restart re-applies it to
 * the very same result. So the client may have its answer as soon as the
 * result is computed -- the sync of the write that applies it is off the
 * request's path (etcd answers from its in-memory apply likewise). What
 * must wait is (a) anything that depends on entries this write persists:
 * an entry in it is counted by its own node only once the write is
 * durable, which with one node is the whole quorum, so only entries
 * durable before this write (below its first appended or truncated index)
 * qualify; and (b) reads, which are served from committed transactions and
 * only once the applied index has moved (finish_job). */
static void early_replies(rt *r, rt_job *j)
{
    const sy_ready *rd = &j->own.rd;
    for (size_t i = 0; i < rd->n_committed; i++) {
        if (rd->committed[i].entry.index > j->reply_early_upto)
            break;
        sy_kv_results *res = &j->res[i];
        for (size_t k = 0; k < res->n; k++) {
            sy_client_reply *rep = &res->replies[k];
            pending_req *p = find_pending(r, rep->client_id, rep->req_no);
            if (p) {
                rep->leader = reply_leader(r);
                reply_frame(r, p->handle, rep);
                drop_pending(r, p);
            }
        }
    }
}

/* Lazy apply. A crash-fault follower answers no client from its state
 * machine (the leader does; stale reads aside, which promise nothing
 * fresher), so it need not apply each commit in the very write that
 * learns of it: it keeps the committed entries (already durable in its
 * log, so a crash loses nothing -- restart re-applies them from there) and
 * applies them in bulk, which writes each state page once for many
 * requests instead of once per write. They are applied at the latest
 * RT_LAZY_MS later, at once when the node leads, installs a snapshot or
 * serves a linearizable read, and when too many wait. PBFT replicas all
 * answer clients: never lazy. */
#define RT_LAZY_MS 50
#define RT_LAZY_MAX_ENTRIES 1024
#define RT_LAZY_MAX_BYTES (8u << 20)

static bool lazy_eligible(rt *r)
{
    if (strcmp(r->ops->name, "pbft") == 0)
        return false;
    sy_engine_status st;
    r->ops->status(r->eng, &st);
    return st.role != SY_ROLE_LEADER;
}

static bool lazy_due(rt *r, uint64_t t)
{
    return r->n_lazy && (r->lazy_entries >= RT_LAZY_MAX_ENTRIES ||
                         r->lazy_bytes >= RT_LAZY_MAX_BYTES || t - r->lazy_since >= RT_LAZY_MS ||
                         r->n_reads || !lazy_eligible(r));
}

/* Keeps a copy of rd's committed entries for later. */
static int lazy_push(rt *r, const sy_ready *rd, uint64_t t)
{
    if (r->n_lazy == r->cap_lazy) {
        size_t nc = r->cap_lazy ? r->cap_lazy * 2 : 16;
        rt_lazy *nl = realloc(r->lazy, nc * sizeof *nl);
        if (!nl)
            return SY_ENOMEM;
        r->lazy = nl;
        r->cap_lazy = nc;
    }
    sy_ready only = { .committed = rd->committed, .n_committed = rd->n_committed };
    rt_lazy *l = &r->lazy[r->n_lazy];
    memset(l, 0, sizeof *l);
    if (sy_ready_copy(&only, &l->own))
        return SY_ENOMEM;
    if (!(l->res = calloc(rd->n_committed, sizeof *l->res))) {
        sy_ready_owned_free(&l->own);
        return SY_ENOMEM;
    }
    if (!r->n_lazy)
        r->lazy_since = t;
    r->n_lazy++;
    r->lazy_entries += rd->n_committed;
    for (size_t i = 0; i < rd->n_committed; i++)
        r->lazy_bytes += rd->committed[i].entry.data.len + rd->committed[i].evidence.len;
    return SY_OK;
}

/* Hands every waiting lazy entry to the job (applied before its own). */
static void lazy_take(rt *r, rt_job *j)
{
    j->lazy = r->lazy;
    j->n_lazy = r->n_lazy;
    r->lazy = NULL;
    r->n_lazy = r->cap_lazy = r->lazy_entries = r->lazy_bytes = 0;
}

/* Held apply for all three engines. PBFT too: its boot path re-applies
 * logged, unapplied entries with their commit evidence (the simulator's
 * disk model loses held applies at crashes, for PBFT as for the others).
 * A checkpoint is never held (durable_work, and a write of its own:
 * process_ready), so the snapshot it wants is taken from committed state.
 * With LMDB commits every 20 ms this measured within the noise (968/1,021
 * vs 925/982 ops/s at 64 clients): its hard state holds every certificate
 * in the window (tens of KB) and is rewritten each ready; see
 * docs/benchmarks.md for the measurement at 250 ms. */

/* A held transaction must be committed now (see "Held apply"). */
static bool flush_due(const rt *r, uint64_t t)
{
    if (!r->held_open)
        return false;
    if (t - r->held_since >= r->ncfg.commit_interval_ms || r->held_bytes >= RT_HOLD_MAX_BYTES ||
        snapshot_due(r) || r->sn_busy)   /* the snapshot's store waits for it */
        return true;
    for (size_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].ready && r->reads[i].index > r->applied_visible &&
            r->reads[i].index <= r->applied)
            return true;
    return false;
}

/* A read waits for state not yet readable: the write that applies it
 * should be committed, not held and then flushed by a job of its own. */
static bool reads_waiting(const rt *r)
{
    for (size_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].ready && r->reads[i].index > r->applied_visible)
            return true;
    return false;
}

/* At most RT_READY_ROUNDS readies per loop iteration, so input is taken
 * between them; *more says the engine may have another one waiting, and
 * the loop then polls without sleeping (nothing else would wake it). */
#define RT_READY_ROUNDS 8

static int process_ready(rt *r, bool *more)
{
    *more = false;
    for (int round = 0; round < RT_READY_ROUNDS; round++) {
        sy_ready rd;
        memset(&rd, 0, sizeof rd);
        r->ops->ready(r->eng, &rd);
        uint64_t t = now_ms();
        bool flush = flush_due(r, t);
        if (ready_empty(&rd) && !lazy_due(r, t) && !flush)
            return SY_OK;
        rt_job *j = &r->job;
        int rc = sy_ready_copy(&rd, &j->own);
        if (rc == SY_OK && rd.n_committed && !rd.snapshot_install && lazy_eligible(r)) {
            rc = lazy_push(r, &rd, t);
            j->own.rd.n_committed = 0;   /* applied later, from the lazy copy */
        }
        if (rc == SY_OK && j->own.rd.n_committed &&
            !(j->res = calloc(j->own.rd.n_committed, sizeof *j->res)))
            rc = SY_ENOMEM;
        if (rc) {
            SY_ERROR(&r->log, "out of memory taking the engine's effects; stopping");
            job_clear(j);
            return rc;
        }
        if (r->n_lazy && (rd.snapshot_install || lazy_due(r, t)))
            lazy_take(r, j);
        /* a checkpoint commits what is held: its snapshot reads committed state */
        j->need_txn = sy_ready_persists(&rd) || j->own.rd.n_committed || j->n_lazy ||
                      rd.checkpoint_index || flush;
        j->may_hold = !flush && !reads_waiting(r) && !r->sn_busy;
        j->reply_early_upto = 0;
        if (j->own.rd.n_committed && !rd.snapshot_install) {
            uint64_t upto = UINT64_MAX;
            if (rd.n_entries)
                upto = rd.entries[0].index - 1;
            if (rd.truncate_from && rd.truncate_from - 1 < upto)
                upto = rd.truncate_from - 1;
            j->reply_early_upto = upto;
        }
        /* early messages leave before the write (core/engine.h) */
        if ((rc = take_msgs(r, &rd, j))) {
            SY_ERROR(&r->log, "out of memory taking the engine's effects; stopping");
            job_clear(j);
            return rc;
        }
        j->rc = j->need_txn ? job_write(r, j) : SY_OK;
        if ((rc = finish_job(r, j)))
            return rc;
    }
    *more = true;
    return SY_OK;
}

/* Shutdown: what was held is committed; what was left to apply lazily is
 * dropped (the entries are durable in the log: boot applies them). */
static int drain_job(rt *r)
{
    int rc = commit_at_shutdown(r);
    job_clear(&r->job);
    lazy_free(r->lazy, r->n_lazy);
    free(r->lazy);
    r->lazy = NULL;
    r->n_lazy = 0;
    free(r->att);
    r->att = NULL;
    r->n_att = r->cap_att = 0;
    free(r->job.frames);
    r->job.frames = NULL;
    return rc;
}

/* ------------------------------------------------------------ inbound */

static void count_reject(rt *r, int rc, const char *why, const char *from)
{
    if (rc >= 0 && rc < SY_ERR_COUNT)
        M_ADD(r->m.rejected[rc], 1);
    r->drops_since_report++;
    r->last_drop_rc = rc;
    snprintf(r->last_drop_why, sizeof r->last_drop_why, "%s", why ? why : "");
    SY_DEBUG(&r->log, "rejected %s frame: %s", from, why ? why : sy_strerror(rc));
}

/* A request the state machine applied already is answered from the
 * session table: its cached reply, byte for byte, or SY_ESTALE for an
 * older req_no. false: not applied (yet), the caller goes on. */
static bool answer_from_session(rt *r, uint64_t handle, uint32_t client, uint64_t req_no)
{
    sy_kv_results cached;
    int src = sy_kv_session_reply(&r->kv, client, req_no, &cached);
    bool done = false;
    if (src == SY_OK && cached.n == 1) {
        cached.replies[0].leader = r->last_st.leader;
        reply_frame(r, handle, &cached.replies[0]);
        done = true;
    } else if (src == SY_ESTALE) {
        reply_error(r, handle, client, req_no, SY_ESTALE);
        done = true;
    }
    sy_kv_results_free(&cached);
    if (done)
        M_ADD(r->m.session_replies, 1);
    return done;
}

static void handle_client_req(rt *r, sy_net_event *ev)
{
    const sy_env *e = &ev->env;
    const sy_client_req *q = &e->msg.u.req;
    uint64_t t = now_ms();
    M_ADD(r->m.requests, 1);
    /* A client whose manifest names the other kind of cluster would trust
     * our reply the wrong way (core/msg.h): told so, in a signed reply. */
    bool bft = r->cluster.protocol == SY_PROTO_PBFT;
    if (q->flags & (bft ? SY_REQ_CLIENT_CFT : SY_REQ_CLIENT_BFT)) {
        M_ADD(r->m.rejected[SY_ECONFIG], 1);
        reply_error(r, ev->handle, q->client_id, q->req_no, SY_ECONFIG);
        return;
    }
    /* A PBFT client believes f+1 matching replies, f from its manifest: one
     * whose membership differs from ours (a smaller f, other nodes) could
     * count too few. Refused in a signed reply; f+1 correct replicas saying
     * so end its call (core/msg.h). Crash-fault clients believe one node
     * whatever f says and send no digest. */
    if (bft && q->has_membership && !sy_digest_eq(&q->membership, &r->cluster.membership)) {
        M_ADD(r->m.rejected[SY_EMEMBERSHIP], 1);
        reply_error(r, ev->handle, q->client_id, q->req_no, SY_EMEMBERSHIP);
        return;
    }
    if ((q->op == SY_OP_GET || q->op == SY_OP_SCAN) && !(q->flags & SY_REQ_ORDERED)) {
        if (q->flags & SY_REQ_STALE_OK) {
            sy_kv_results res;
            if (sy_kv_read(&r->kv, q, &res) == SY_OK && res.n == 1) {
                res.replies[0].leader = r->last_st.leader;
                reply_frame(r, ev->handle, &res.replies[0]);
            } else {
                reply_error(r, ev->handle, q->client_id, q->req_no, SY_EIO);
            }
            sy_kv_results_free(&res);
            return;
        }
        if (r->n_reads >= RT_MAX_READS) {
            reply_error(r, ev->handle, q->client_id, q->req_no, SY_EFULL);
            return;
        }
        pending_read *pr = &r->reads[r->n_reads];
        memset(pr, 0, sizeof *pr);
        pr->frame = malloc(ev->len);
        if (!pr->frame) {
            reply_error(r, ev->handle, q->client_id, q->req_no, SY_ENOMEM);
            return;
        }
        memcpy(pr->frame, ev->data, ev->len);
        /* re-point the request's byte fields into our copy */
        pr->req = *q;
        ptrdiff_t off;
#define REPOINT(f)                                                  \
        if (q->f.len) {                                             \
            off = q->f.p - ev->data;                                \
            pr->req.f.p = pr->frame + off;                          \
        }
        REPOINT(key) REPOINT(val) REPOINT(old)
#undef REPOINT
        pr->handle = ev->handle;
        pr->read_id = ++r->next_read_id;
        pr->since_ms = t;
        r->n_reads++;
        sy_input in = {.kind = SY_IN_READ, .now_ms = t};
        in.u.read.read_id = pr->read_id;
        step(r, &in);
        return;
    }
    /* Applied already (a retransmission that arrives after its execution,
     * or a PBFT client widening to replicas it had not asked): answer from
     * the session table at once, as the state machine would, instead of
     * holding a client slot until an execution that is not coming. Under
     * load such late copies held every slot of a PBFT backup for the 30 s
     * expiry, and new clients could not reach it (bench/pbft_xfer.sh). */
    if (answer_from_session(r, ev->handle, q->client_id, q->req_no))
        return;
    pending_req *p = find_pending(r, q->client_id, q->req_no);
    if (p) {
        /* a retransmission: answer the newest connection */
        p->handle = ev->handle;
    } else {
        if (r->n_pend >= RT_MAX_PENDING) {
            reply_error(r, ev->handle, q->client_id, q->req_no, SY_EFULL);
            return;
        }
        p = &r->pend[r->n_pend++];
        *p = (pending_req){q->client_id, q->req_no, ev->handle, t};
    }
    sy_input in = {.kind = SY_IN_REQUEST, .now_ms = t};
    in.u.request.req = q;
    in.u.request.raw = ev->data;
    in.u.request.raw_len = ev->len;
    step(r, &in);
}

static void handle_status_req(rt *r, sy_net_event *ev)
{
    sy_msg m = {.type = SY_MSG_STATUS_REPLY};
    sy_status_reply *s = &m.u.status;
    sy_engine_status st;
    r->ops->status(r->eng, &st);
    s->nonce = ev->env.msg.u.status_req.nonce;
    s->node = r->ncfg.id;
    s->protocol = (sy_bytes){(const uint8_t *)r->ops->name, (uint32_t)strlen(r->ops->name)};
    /* a rejoining node acts as a follower but votes for nobody yet: the
     * operator's status shows which (core/engine.h, SY_ROLE_REJOINING) */
    s->role = st.rejoining ? SY_ROLE_REJOINING : st.role;
    s->term = st.term;
    s->leader = st.leader;
    s->last_index = st.last_index;
    s->commit_index = st.commit_index;
    s->applied_index = r->applied_visible;
    /* PBFT: the stable checkpoint (docs/client.md), not a local snapshot
     * whose checkpoint may not be stable yet */
    if (r->cluster.protocol == SY_PROTO_PBFT)
        s->snap_index = st.snap_index;
    else
        s->snap_index = st.snap_index > r->snap_index ? st.snap_index : r->snap_index;
    s->peers_connected = sy_net_peers_connected(r->net);
    s->evidence = st.evidence;
    s->leader_changes = st.leader_changes;
    if (ev->env.msg.u.status_req.with_faults) {
        s->has_faults = true;
        s->evidence_from = st.evidence ? st.evidence_from : SY_NO_NODE;
        s->bad_sigs = st.bad_sigs;
        s->bad_sig_from = st.bad_sigs ? st.bad_sig_from : SY_NO_NODE;
        s->dissent = st.dissent;
        s->dissent_from = st.dissent ? st.dissent_from : SY_NO_NODE;
        s->dissent_primary = st.dissent ? st.dissent_primary : SY_NO_NODE;
    }
    /* applied index, state digest and ledger head from one snapshot of the
     * store: the committed state they describe (what is held is not in it) */
    sy_txn t;
    if (sy_txn_begin(r->st, false, &t) == SY_OK) {
        uint64_t h, applied;
        if (sy_txn_get_applied(&t, &applied) == SY_OK)
            s->applied_index = applied;
        sy_kv_digest_txn(&t, &s->state_digest);
        sy_ledger_tip(&t, &h, &s->ledger_head);
        sy_txn_abort(&t);
    }
    sy_buf_reset(&r->out);
    if (sy_env_encode(r->cluster.id, r->ncfg.id, &m, &r->signer, &r->out) == SY_OK)
        sy_net_reply(r->net, ev->handle, r->out.p, r->out.len);
}

/* synodctl transfer: a client marked admin in the manifest asks this node,
 * as leader or primary, to hand leadership on -- the SY_IN_TRANSFER a
 * SIGTERM steps (start_handoff), without stopping. The reply says whether
 * the hand-off started; the client watches status for the rest. */
static int handle_transfer_req(rt *r, sy_net_event *ev)
{
    const sy_env *e = &ev->env;
    const sy_client_entry *ce = sy_cluster_client(&r->cluster, e->sender);
    const sy_transfer_req *q = &e->msg.u.transfer_req;
    uint32_t target = q->target;
    sy_engine_status st;
    r->ops->status(r->eng, &st);
    int rc = sy_cluster_transfer_allowed(&r->cluster, e->sender, r->ncfg.id, st.term, q);
    if (rc == SY_OK)
        rc = sy_transfer_seen_check(&r->xfer_seen, st.term, q->nonce);
    if (rc == SY_EUNAUTH) {
        count_reject(r, rc, "leadership transfer asked by a client not marked admin", "client");
    } else if (rc != SY_OK) {
        count_reject(r, rc, "leadership transfer for another node or term, or acted on already "
                     "(stale or replayed)", "client");
    } else {
        sy_input in = {.kind = SY_IN_TRANSFER, .now_ms = now_ms()};
        in.u.transfer.target = target;
        rc = r->ops->step(r->eng, &in);
        if (rc == SY_EFATAL) {
            SY_ERROR(&r->log, "engine found its own state impossible; stopping to protect the "
                     "ledger");
            return rc;
        }
        if (rc == SY_OK && target == SY_NO_NODE)
            SY_INFO(&r->log, "client '%s' asked for a leadership transfer: handing leadership on",
                    ce->name);
        else if (rc == SY_OK)
            SY_INFO(&r->log, "client '%s' asked for a leadership transfer: handing leadership to "
                    "node %u", ce->name, target);
    }
    r->ops->status(r->eng, &st);
    sy_msg m = {.type = SY_MSG_TRANSFER_REPLY};
    m.u.transfer.nonce = e->msg.u.transfer_req.nonce;
    m.u.transfer.node = r->ncfg.id;
    m.u.transfer.status = (uint8_t)rc;
    m.u.transfer.leader = rc == SY_OK ? target : st.leader;
    sy_buf_reset(&r->out);
    if (sy_env_encode(r->cluster.id, r->ncfg.id, &m, &r->signer, &r->out) == SY_OK)
        sy_net_reply(r->net, ev->handle, r->out.p, r->out.len);
    return SY_OK;
}

static int handle_event(rt *r, sy_net_event *ev)
{
    if (ev->kind == SY_NET_EV_WAKE)
        return SY_OK;
    const char *from = ev->kind == SY_NET_EV_PEER ? "peer" : "client";
    if (!ev->decoded || ev->rc != SY_OK) {
        int rc = ev->decoded ? ev->rc : SY_EINVAL;
        count_reject(r, rc, ev->why, from);
        if (ev->kind == SY_NET_EV_CLIENT)
            reply_error(r, ev->handle, 0, 0, rc == SY_ESENDER ? SY_EUNAUTH : rc);
        return SY_OK;
    }
    const sy_env *e = &ev->env;
    if (e->type < SY_MSG_TYPE_MAX)
        M_ADD(r->m.msg_in[e->type], 1);
    if (ev->kind == SY_NET_EV_CLIENT) {
        if (e->type == SY_MSG_CLIENT_REQ && e->sender >= SY_CLIENT_ID_BASE)
            handle_client_req(r, ev);
        else if (e->type == SY_MSG_STATUS_REQ)
            handle_status_req(r, ev);
        else if (e->type == SY_MSG_TRANSFER_REQ)
            return handle_transfer_req(r, ev);
        else {
            count_reject(r, SY_EMSGTYPE, "message type not accepted on the client port", from);
            reply_error(r, ev->handle, 0, 0, SY_EMSGTYPE);
        }
        return SY_OK;
    }
    /* peer port: only nodes, only protocol messages */
    if (e->sender >= r->cluster.n || e->sender == r->ncfg.id || e->type == SY_MSG_CLIENT_REQ ||
        e->type == SY_MSG_CLIENT_REPLY) {
        count_reject(r, SY_ESENDER, "peer port frame not from another replica", from);
        return SY_OK;
    }
    if (e->type == SY_MSG_PING || e->type == SY_MSG_PONG || e->type == SY_MSG_STATUS_REQ ||
        e->type == SY_MSG_STATUS_REPLY || e->type == SY_MSG_TRANSFER_REQ ||
        e->type == SY_MSG_TRANSFER_REPLY)
        return SY_OK;
    /* Another protocol's message: the nodes' manifests disagree. The
     * engine would drop it (counted only); say what is wrong instead. */
    int fam = e->type >= SY_MSG_PBFT_FIRST && e->type <= SY_MSG_PBFT_LAST     ? SY_PROTO_PBFT
              : e->type >= SY_MSG_PAXOS_FIRST && e->type <= SY_MSG_PAXOS_LAST ? SY_PROTO_PAXOS
              : e->type >= SY_MSG_RAFT_VOTE && e->type <= SY_MSG_RAFT_TIMEOUT_NOW ? SY_PROTO_RAFT
                                                                                : -1;
    if (fam >= 0 && fam != (int)r->cluster.protocol) {
        char why[160];
        snprintf(why, sizeof why, "a %s message from node %u, but this node runs %s: do the nodes' "
                 "manifests (cluster.ini) differ?", sy_protocol_name(fam), e->sender,
                 sy_protocol_name(r->cluster.protocol));
        count_reject(r, SY_EMSGTYPE, why, from);
        return SY_OK;
    }
    sy_input in = {.kind = SY_IN_MSG, .now_ms = now_ms()};
    in.u.msg.from = e->sender;
    in.u.msg.msg = &e->msg;
    in.u.msg.raw = ev->data;
    in.u.msg.raw_len = ev->len;
    return step(r, &in);
}

/* ------------------------------------------------------------ bookkeeping */

static void expire_waiters(rt *r, uint64_t t)
{
    /* Clients give up long before this; the transport expires their
     * handles too. This only bounds our own tables. */
    const uint64_t max_age = SY_NET_CLIENT_EXPIRE_MS_DEFAULT;
    for (size_t i = 0; i < r->n_pend;) {
        pending_req *p = &r->pend[i];
        if (t - p->since_ms > max_age) {
            drop_pending(r, p);
            continue;
        }
        /* Waiting over a second for an execution that may have happened
         * without it: it arrived while its apply was held (not yet
         * readable), or a state install executed it. The session table
         * says; answer from it rather than hold the slot until expiry. */
        if (t - p->since_ms > RT_PENDING_RECHECK_MS &&
            answer_from_session(r, p->handle, p->client_id, p->req_no)) {
            drop_pending(r, p);
            continue;
        }
        i++;
    }
    for (size_t i = 0; i < r->n_reads;) {
        if (t - r->reads[i].since_ms > max_age) {
            reply_error(r, r->reads[i].handle, r->reads[i].req.client_id, r->reads[i].req.req_no,
                        SY_ETIMEOUT);
            free_read(r, i);
        } else {
            i++;
        }
    }
}

/* Peers this node must reach for a quorum: n/2 for crash faults (with
 * itself, a majority), PBFT's quorum less itself (2f with n = 3f+1). */
static uint32_t quorum_peers(const rt *r)
{
    return r->cluster.protocol == SY_PROTO_PBFT ? sy_pbft_quorum(r->cluster.n, r->cluster.f) - 1
                                                : r->cluster.n / 2;
}

static void few_peers_check(rt *r, const sy_net_stats *ns, uint64_t t)
{
    uint32_t need = quorum_peers(r), down = SY_NO_NODE;
    if (ns->peers_connected >= need) {
        if (r->few_peers_warned)
            SY_INFO(&r->log, "%u of %u peers connected again", ns->peers_connected,
                    r->cluster.n - 1);
        r->few_peers_since = r->few_peers_warned = 0;
        return;
    }
    if (!r->few_peers_since)
        r->few_peers_since = t;
    if (t - r->few_peers_since < RT_FEW_PEERS_WARN_MS ||
        (r->few_peers_warned && t - r->few_peers_warned < RT_FEW_PEERS_REPEAT_MS))
        return;
    r->few_peers_warned = t;
    for (uint32_t i = 0; i < r->cluster.n && i < SY_MAX_NODES && down == SY_NO_NODE; i++)
        if (i != r->ncfg.id && !ns->peer_up[i])
            down = i;
    SY_WARN(&r->log, "only %u of %u peers connected for %" PRIu64 " s, and a quorum needs %u: "
            "check that the others run and that their peer addresses are reachable from here%s "
            "(node %u: %s)", ns->peers_connected, r->cluster.n - 1,
            (t - r->few_peers_since) / 1000, need,
            r->cluster.tls_ca[0] ? ", and that every node's certificate is signed by the "
            "manifest's tls_ca" : "", down,
            down < r->cluster.n ? r->cluster.nodes[down].peer : "?");
}

/* One line for each peer not connected RT_FEW_PEERS_WARN_MS after start,
 * even while a quorum is: its link is not merely lost but never made (a
 * wrong address, a firewall, or a TLS handshake that fails -- NNG says
 * nothing about those), and "peer N disconnected" never comes. */
static void peers_never_check(rt *r, const sy_net_stats *ns, uint64_t t)
{
    if (!r->peers_check_from)
        r->peers_check_from = t;
    bool late = t - r->peers_check_from >= RT_FEW_PEERS_WARN_MS;
    for (uint32_t i = 0; i < r->cluster.n && i < SY_MAX_NODES; i++) {
        if (i == r->ncfg.id || r->peer_seen[i])
            continue;
        if (ns->peer_up[i]) {
            r->peer_seen[i] = true;
        } else if (late) {
            r->peer_seen[i] = true;
            SY_WARN(&r->log, "peer %u has not connected in %" PRIu64 " s since start: check that it "
                    "runs and that its peer address %s is reachable from here%s", i,
                    (t - r->peers_check_from) / 1000, r->cluster.nodes[i].peer,
                    r->cluster.tls_ca[0] ? ", and that its certificate and ours are signed by "
                    "the manifest's tls_ca" : "");
        }
    }
}

static void log_changes(rt *r, uint64_t t)
{
    /* a busy loop turns many times per millisecond; this needs no more */
    if (t == r->last_changes_ms)
        return;
    r->last_changes_ms = t;
    sy_engine_status st;
    r->ops->status(r->eng, &st);
    if (st.role != r->last_st.role || st.term != r->last_st.term || st.leader != r->last_st.leader) {
        const char *unit = strcmp(r->ops->name, "pbft") == 0 ? "view"
                           : strcmp(r->ops->name, "paxos") == 0 ? "ballot" : "term";
        if (st.leader == SY_NO_NODE)
            SY_INFO(&r->log, "role %s %s %" PRIu64 " leader unknown", sy_role_name(st.role), unit, st.term);
        else
            SY_INFO(&r->log, "role %s %s %" PRIu64 " leader %u", sy_role_name(st.role), unit, st.term,
                    st.leader);
    }
    if (st.evidence > r->last_st.evidence)
        SY_WARN(&r->log, "misbehaviour evidence recorded against node %u (two conflicting "
                "statements it signed; total %" PRIu64 "): it is faulty or its key is stolen",
                st.evidence_from, st.evidence);
    r->last_st = st;
    sy_net_stats ns;
    sy_net_get_stats(r->net, &ns);
    for (uint32_t i = 0; i < r->cluster.n && i < SY_MAX_NODES; i++) {
        if (i == r->ncfg.id)
            continue;
        if (ns.peer_up[i] != r->last_peer_up[i])
            SY_INFO(&r->log, "peer %u %s", i, ns.peer_up[i] ? "connected" : "disconnected");
        r->last_peer_up[i] = ns.peer_up[i];
    }
    peers_never_check(r, &ns, t);
    few_peers_check(r, &ns, t);
    /* a PBFT replica whose statements do not verify leaves no evidence
     * (nothing it signed conflicts) and its envelopes pass: say who */
    if (st.bad_sigs > r->bad_sigs_reported && t - r->last_bad_sig_report >= RT_DROP_REPORT_MS) {
        SY_WARN(&r->log, "peer messages whose signed statements do not verify: %" PRIu64
                " since the last report (%" PRIu64 " in all), the last from node %u: that node "
                "is faulty, or signs with a key the manifest does not give it",
                st.bad_sigs - r->bad_sigs_reported, st.bad_sigs, st.bad_sig_from);
        r->bad_sigs_reported = st.bad_sigs;
        r->last_bad_sig_report = t;
    }
    /* a PBFT replica voting for digests no pre-prepare had leaves no
     * evidence either (each vote alone is consistent): its votes only fail
     * to count. Which of the voter and the primary lies, the log of the
     * other correct replicas tells: they name the same one. */
    if (st.dissent > r->dissent_reported && t - r->last_dissent_report >= RT_DROP_REPORT_MS) {
        /* the voter alone is at fault when this node was the primary (it
         * knows what it signed) or the voter was (it contradicts itself) */
        bool self = st.dissent_primary == r->ncfg.id;
        if (self || st.dissent_primary == st.dissent_from)
            SY_WARN(&r->log, "votes for a digest other than the pre-prepare's: %" PRIu64 " since "
                    "the last report (%" PRIu64 " in all), the last from node %u%s: node %u is "
                    "faulty", st.dissent - r->dissent_reported, st.dissent, st.dissent_from,
                    self ? " against this node's own pre-prepare"
                         : ", the primary of its view, against its own pre-prepare",
                    st.dissent_from);
        else
            SY_WARN(&r->log, "votes for a digest other than the pre-prepare's: %" PRIu64 " since "
                    "the last report (%" PRIu64 " in all), the last from node %u in a view whose "
                    "primary is node %u: one of the two is faulty (the voter, if the other "
                    "replicas name it too; the primary, if they name different voters)",
                    st.dissent - r->dissent_reported, st.dissent, st.dissent_from,
                    st.dissent_primary);
        r->dissent_reported = st.dissent;
        r->last_dissent_report = t;
    }
    if (r->drops_since_report && t - r->last_drop_report >= RT_DROP_REPORT_MS) {
        SY_WARN(&r->log, "rejected %" PRIu64 " frame%s in the last %ds (last: %s%s%s)",
                r->drops_since_report, r->drops_since_report == 1 ? "" : "s",
                RT_DROP_REPORT_MS / 1000, sy_strerror(r->last_drop_rc),
                r->last_drop_why[0] ? ": " : "", r->last_drop_why);
        r->drops_since_report = 0;
        r->last_drop_report = t;
    }
    /* the per-replica counts, only when one of them moved */
    uint64_t acc = st.evidence + st.bad_sigs + st.dissent;
    bool acc_moved = r->ops->accused && acc != r->accused_seen;
    sy_accused accused;
    if (acc_moved) {
        r->ops->accused(r->eng, &accused);
        r->accused_seen = acc;
    }
    pthread_mutex_lock(&r->m.mu);
    r->m.st = st;
    if (acc_moved)
        r->m.accused = accused;
    r->m.applied = r->applied_visible;
    r->m.pending = r->n_pend;
    r->m.pending_reads = r->n_reads;
    pthread_mutex_unlock(&r->m.mu);
}

/* ------------------------------------------------------------ setup */

static int mkdir_p(const char *path)
{
    char tmp[SY_CFG_MAX_PATH];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0700) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) && errno != EEXIST)
        return -1;
    return 0;
}

/* For a data directory this user may not use: what to change. Empty for
 * any other code. */
static const char *owner_hint(int rc, char *buf, size_t cap)
{
    if (rc != SY_EPERM)
        return "";
    snprintf(buf, cap, "; the data directory and its files must belong to the user synod runs "
             "as (uid %u)", (unsigned)geteuid());
    return buf;
}

/* How long a stopping leader waits for its hand-off: election_max_ms for
 * each peer it may try (Raft and Paxos give a target that does not take
 * over election_max_ms, then try the next; PBFT hands to the next view's
 * primary only), at most RT_HANDOFF_MAX_MS. */
static uint32_t handoff_ms(const rt *r)
{
    uint64_t tries = r->cluster.protocol == SY_PROTO_PBFT || r->cluster.n < 2 ? 1 : r->cluster.n - 1;
    uint64_t ms = (uint64_t)r->cluster.election_max_ms * tries;
    return ms < RT_HANDOFF_MAX_MS ? (uint32_t)ms : RT_HANDOFF_MAX_MS;
}

/* On a stop request: true when a transfer of leadership started. */
static bool start_handoff(rt *r)
{
    sy_engine_status st;
    r->ops->status(r->eng, &st);
    if ((st.role != SY_ROLE_LEADER && st.role != SY_ROLE_PRIMARY) || r->cluster.n < 2)
        return false;
    /* Raft: TimeoutNow (thesis 3.10); Multi-Paxos: TAKEOVER (docs/paxos.md);
     * PBFT: the primary's own VIEW-CHANGE (docs/pbft.md, "Hand-off") */
    sy_input in = {.kind = SY_IN_TRANSFER, .now_ms = now_ms()};
    in.u.transfer.target = SY_NO_NODE;
    int rc = r->ops->step(r->eng, &in);
    if (rc != SY_OK) {
        SY_INFO(&r->log, "stopping: no leadership hand-off (%s)",
                rc == SY_EUNREACH ? "no peer answered recently" : sy_strerror(rc));
        return false;
    }
    SY_INFO(&r->log, "stopping: handing leadership to a peer first (at most %u ms; a second "
            "signal stops at once)", handoff_ms(r));
    return true;
}

/* The hand-off is over: another node leads, or time is up. */
static bool handoff_done(rt *r, uint64_t until)
{
    sy_engine_status st;
    r->ops->status(r->eng, &st);
    /* wait for the new leader's first message (PBFT: its NEW-VIEW), so
     * clients get its name */
    if ((st.role == SY_ROLE_FOLLOWER || st.role == SY_ROLE_BACKUP) && st.leader != SY_NO_NODE &&
        st.leader != r->ncfg.id) {
        SY_INFO(&r->log, "stopping: leadership handed to node %u", st.leader);
        return true;
    }
    if (now_ms() < until) {
        /* the whole cluster stopping at once: nobody left to take over */
        sy_net_stats ns;
        sy_net_get_stats(r->net, &ns);
        for (uint32_t i = 0; i < r->cluster.n && i < SY_MAX_NODES; i++)
            if (i != r->ncfg.id && ns.peer_up[i])
                return false;
        SY_INFO(&r->log, "stopping: no peer connected to take over leadership");
        return true;
    }
    if (st.role != SY_ROLE_LEADER && st.role != SY_ROLE_PRIMARY)
        SY_INFO(&r->log, "stopping: no longer leader; the new leader is not known yet");
    else
        SY_WARN(&r->log, "stopping: no peer took over leadership within %u ms; stopping anyway",
                handoff_ms(r));
    return true;
}

/* Every client and peer connection holds a descriptor, and a node that
 * runs out of them stops accepting until some close (NNG retries its
 * accepts): anyone who can reach the client port could hold the default
 * soft limit of 1,024 connections open. So the soft limit goes up to the
 * hard one (systemd's default hard limit is 524,288), as etcd's Go runtime
 * does; a limit still under 4,096 is worth an operator's look. */
#define RT_NOFILE_CAP (1u << 20)
#define RT_NOFILE_LOW 4096u
static void raise_nofile(const sy_log *log)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t was = rl.rlim_cur;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > RT_NOFILE_CAP ? RT_NOFILE_CAP
                                                                               : rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    if (rl.rlim_cur < RT_NOFILE_LOW)
        SY_WARN(log, "open files limit is %llu (hard limit %llu): each client and peer connection "
                     "takes one; raise it (systemd LimitNOFILE=, ulimit -Hn)",
                (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
    else if (rl.rlim_cur != was)
        SY_INFO(log, "open files limit raised from %llu to %llu", (unsigned long long)was,
                (unsigned long long)rl.rlim_cur);
}

int synod_run(const synod_opts *o, volatile sig_atomic_t *stop)
{
    rt *r = calloc(1, sizeof *r);
    char why[512];
    int code = 1, rc;
    if (!r) {
        fprintf(stderr, "synod: out of memory\n");
        return 1;
    }
    r->lock_fd = -1;
    /* Snapshots are whole-state heap blobs (tens of MB), made and freed
     * every snapshot_threshold entries. glibc's dynamic mmap threshold
     * rises after the first such free, after which the blobs come from the
     * heap and fragment it: anonymous memory then swings by the blob size
     * per snapshot and is returned only in part (docs/benchmarks.md,
     * "Memory"). A fixed threshold keeps every large block in its own
     * mapping, returned whole on free. */
    mallopt(M_MMAP_THRESHOLD, RT_MMAP_THRESHOLD);
    pthread_mutex_init(&r->m.mu, NULL);
    pthread_mutex_init(&r->sn_mu, NULL);
    pthread_cond_init(&r->sn_cv, NULL);
    sy_buf_init(&r->out);
    sy_env_memo_init(&r->memo);
    sy_env_batch_init(&r->rbatch);
    if (sy_crypto_init()) {
        fprintf(stderr, "synod: libsodium failed to initialise\n");
        goto out_free;
    }
    rc = sy_node_load(o->config_path, &r->ncfg, &r->cluster, why, sizeof why);
    if (rc) {
        fprintf(stderr, "synod: %s\n", why);
        code = 2;
        goto out_cfg;
    }
    char prefix[32];
    snprintf(prefix, sizeof prefix, "node=%u", r->ncfg.id);
    int level = o->log_level >= 0 ? o->log_level : r->ncfg.log_level;
    sy_log_init(&r->log, level < 0 ? SY_LOG_INFO : level, prefix);
    const char *proto = sy_protocol_name(r->cluster.protocol);
    r->ops = sy_engine_lookup(proto);
    if (!r->ops) {
        fprintf(stderr, "synod: protocol '%s' in %s is not built into this binary\n", proto,
                r->cluster.path);
        code = 2;
        goto out_cfg;
    }
    if (o->rejoin && r->cluster.protocol != SY_PROTO_PBFT && !r->cluster.check_quorum) {
        fprintf(stderr, "synod: --rejoin needs check_quorum = true in %s: a rejoining node "
                "waits for any leader its old self kept in office to step down, and without "
                "check_quorum a leader cut off from its quorum never does\n", r->cluster.path);
        code = 2;
        goto out_cfg;
    }
    if (o->slow_snapshot) {
#ifdef SYNOD_TESTING
        r->sn_delay_ms = o->slow_snapshot_ms;
#else
        fprintf(stderr, "synod: --slow-snapshot exists only in test builds (cmake -DSYNOD_TESTING=ON)\n");
        code = 2;
        goto out_cfg;
#endif
    }
#ifndef SYNOD_TESTING
    if (o->stall_close_ms) {
        fprintf(stderr, "synod: --stall-close exists only in test builds (cmake -DSYNOD_TESTING=ON)\n");
        code = 2;
        goto out_cfg;
    }
#endif
    uint32_t behaviour = 0;
    if (o->byzantine) {
#ifdef SYNOD_TESTING
        if (r->cluster.protocol != SY_PROTO_PBFT) {
            fprintf(stderr, "synod: --byzantine needs protocol pbft; %s is %s\n", r->cluster.path, proto);
            code = 2;
            goto out_cfg;
        }
        if (sy_pbft_behaviour_from_name(o->byzantine, &behaviour) != SY_OK ||
            behaviour == SY_PBFT_TWINS) {
            fprintf(stderr, "synod: unknown --byzantine behaviour '%s' (silent, equivocate, skip-seq, "
                            "bad-sig, replay, wrong-digest, fake-prepared, bad-new-view, flood, "
                            "bad-state, mutant-accept-wrong-digest, mutant-nv-no-recompute, "
                            "mutant-blame-agreeing)\n",
                    o->byzantine);
            code = 2;
            goto out_cfg;
        }
#else
        fprintf(stderr, "synod: --byzantine exists only in test builds (cmake -DSYNOD_TESTING=ON)\n");
        code = 2;
        goto out_cfg;
#endif
    }
    snprintf(r->m.protocol, sizeof r->m.protocol, "%s", proto);
    sy_signer_ed25519(&r->signer, r->ncfg.seckey);
    sy_verifier_ed25519(&r->verifier);
    sy_cluster_directory(&r->cluster, &r->dir);
    r->dec = (sy_env_opts){.cluster_id = r->cluster.id, .dir = &r->dir, .verifier = &r->verifier};

    struct stat dst;
    char hint[128];
    if (mkdir_p(r->ncfg.data_dir)) {
        fprintf(stderr, "synod: cannot create data dir %s: %s (node file %s)\n", r->ncfg.data_dir,
                strerror(errno), r->ncfg.path);
        code = 2;
        goto out_cfg;
    }
    if (stat(r->ncfg.data_dir, &dst) != 0) {
        int e = errno;
        fprintf(stderr, "synod: cannot use data_dir %s: %s%s (node file %s)\n", r->ncfg.data_dir,
                strerror(e), owner_hint(e == EACCES ? SY_EPERM : SY_EIO, hint, sizeof hint),
                r->ncfg.path);
        code = 2;
        goto out_cfg;
    }
    if (!S_ISDIR(dst.st_mode)) {
        fprintf(stderr, "synod: data_dir %s is not a directory (node file %s)\n",
                r->ncfg.data_dir, r->ncfg.path);
        code = 2;
        goto out_cfg;
    }
    if ((rc = sy_datadir_lock(r->ncfg.data_dir, &r->lock_fd, why, sizeof why))) {
        fprintf(stderr, "synod: %s%s (node file %s)\n", why, owner_hint(rc, hint, sizeof hint),
                r->ncfg.path);
        /* a directory of another user stays so: no restart loop (exit 2) */
        code = rc == SY_EPERM ? 2 : 1;
        goto out_cfg;
    }
    char serr[SY_STORAGE_ERRMSG] = "";
    if ((rc = sy_storage_lmdb_open(r->ncfg.data_dir, NULL, &r->st, serr))) {
        fprintf(stderr, "synod: cannot open storage in %s: %s%s\n", r->ncfg.data_dir, serr,
                owner_hint(rc, hint, sizeof hint));
        code = rc == SY_EPERM ? 2 : 1;
        goto out_cfg;
    }
    /* Every engine writes through the WAL (core/wal.h); its records since
     * the last LMDB commit are replayed before anything reads the store. */
    char walpath[4200];
    snprintf(walpath, sizeof walpath, "%s/%s", r->ncfg.data_dir, SY_WAL_FILE);
    {
        size_t replayed = 0;
        if ((rc = sy_wal_open(r->ncfg.data_dir, 0, &r->wal, serr))) {
            fprintf(stderr, "synod: cannot open the write-ahead log in %s: %s (%s)%s\n",
                    r->ncfg.data_dir, serr, sy_strerror(rc), owner_hint(rc, hint, sizeof hint));
            code = rc == SY_EPERM ? 2 : 1;
            goto out_storage;
        }
        /* the reason names the log or the store, whichever failed */
        if ((rc = sy_wal_recover(r->wal, r->st, &replayed))) {
            fprintf(stderr, "synod: recovering %s: %s (%s)\n", r->ncfg.data_dir,
                    sy_storage_errmsg(r->st), sy_strerror(rc));
            goto out_storage;
        }
        if (replayed)
            SY_INFO(&r->log, "replayed %zu write-ahead log records", replayed);
        if (sy_wal_missing(r->wal))
            SY_INFO(&r->log, "the write-ahead log %s was missing; the node had stopped "
                    "cleanly, so nothing is lost: created anew", walpath);
    }
    r->rejoin_marked = sy_datadir_rejoin_marked(r->ncfg.data_dir);
    if (o->rejoin && r->cluster.protocol == SY_PROTO_PBFT) {
        SY_INFO(&r->log, "--rejoin changes nothing for PBFT: a replica on an empty disk fetches "
                "the last stable checkpoint from the others and counts as one of the f faults "
                "until it has");
    } else if (o->rejoin && !r->rejoin_marked) {
        /* marked before the identity is recorded: a crash in between
         * leaves a mark and no identity, and --rejoin again continues */
        char icl[256], ipr[256];
        uint32_t inode = 0;
        rc = sy_datadir_identity_get(r->st, icl, ipr, &inode, NULL);
        if (rc == SY_OK) {
            fprintf(stderr, "synod: --rejoin is for a node whose data directory was lost: %s "
                    "already holds node %u's %s state; start it without --rejoin\n",
                    r->ncfg.data_dir, inode, ipr);
            code = 2;
            goto out_storage;
        }
        if (rc != SY_ENOTFOUND) {
            fprintf(stderr, "synod: reading the identity in %s failed: %s\n", r->ncfg.data_dir,
                    sy_storage_errmsg(r->st));
            goto out_storage;
        }
        if ((rc = sy_datadir_rejoin_mark(r->ncfg.data_dir, why, sizeof why))) {
            fprintf(stderr, "synod: %s\n", why);
            goto out_storage;
        }
        r->rejoin_marked = true;
    }
    sy_datadir_id ident = { .cluster_id = r->cluster.id, .protocol = proto, .node = r->ncfg.id,
                         .key = &r->cluster.nodes[r->ncfg.id].pubkey };
    if ((rc = sy_datadir_identity(r->st, &ident, why, sizeof why))) {
        if (rc == SY_ECONFIG || rc == SY_ECORRUPT || rc == SY_EINVAL)
            fprintf(stderr, "synod: %s: %s (node file %s)\n", r->ncfg.data_dir, why,
                    r->ncfg.path);
        else
            fprintf(stderr, "synod: recording the node's identity in %s failed: %s\n",
                    r->ncfg.data_dir, sy_storage_errmsg(r->st));
        if (rc == SY_ECONFIG)
            code = 2;
        goto out_storage;
    }
    sy_env_opts kvdec = {.cluster_id = r->cluster.id, .dir = &r->dir};
    if ((rc = sy_kv_init(&r->kv, r->st, &kvdec, 0))) {
        fprintf(stderr, "synod: state machine in %s: %s\n", r->ncfg.data_dir, sy_strerror(rc));
        goto out_storage;
    }
    sy_storage_boot boot;
    if ((rc = sy_storage_load_boot(r->st, &boot))) {
        fprintf(stderr, "synod: reading durable state in %s failed: %s\n", r->ncfg.data_dir,
                sy_storage_errmsg(r->st));
        goto out_storage;
    }
    r->applied = boot.boot.applied;
    r->applied_visible = r->applied;
    r->snap_index = boot.boot.snap_index;
    r->applied_term = boot.boot.snap_term;
    for (size_t i = 0; i < boot.boot.n_entries; i++)
        if (boot.boot.entries[i].index == r->applied)
            r->applied_term = sy_engine_committed_term(r->ops, &boot.boot.entries[i]);

    sy_cluster_engine_cfg(&r->cluster, r->ncfg.id, &r->ecfg);
    r->ecfg.signer = &r->signer;
    r->ecfg.verifier = &r->verifier;
    r->ecfg.test_behaviour = behaviour;
    r->rejoin_marked = r->rejoin_marked && r->cluster.protocol != SY_PROTO_PBFT;
    if (r->rejoin_marked && !r->cluster.check_quorum) {   /* marked by an earlier --rejoin */
        fprintf(stderr, "synod: %s is still rejoining (%s), which needs check_quorum = true in "
                "%s\n", r->ncfg.data_dir, SY_DATADIR_REJOIN, r->cluster.path);
        sy_storage_boot_free(&boot);
        code = 2;
        goto out_storage;
    }
    r->ecfg.rejoin = r->rejoin_marked;
    if (r->rejoin_marked)
        SY_WARN(&r->log, "rejoining on a replaced disk: this node answers nobody for %" PRIu64
                " ms, then takes no part in electing a leader until it holds everything the "
                "leader has committed (%s/%s; "
                "docs/operations.md, section 7)", sy_rejoin_wait_ms(&r->ecfg), r->ncfg.data_dir,
                SY_DATADIR_REJOIN);
    if (behaviour)
        SY_WARN(&r->log, "TEST BUILD: running as a Byzantine replica (%s)", o->byzantine);
    randombytes_buf(&r->ecfg.rng_seed, sizeof r->ecfg.rng_seed);
    rc = r->ops->create(&r->ecfg, &boot.boot, &r->eng);
    sy_storage_boot_free(&boot);
    if (rc == SY_ECONFIG && r->cluster.protocol == SY_PROTO_PBFT) {
        fprintf(stderr, "synod: %s holds PBFT certificates past the window of watermark_window "
                "= %u: the window cannot shrink below what a replica holds; set it (and "
                "checkpoint_interval) back, or shrink it only after a stable checkpoint past "
                "the old window (%s)\n", r->ncfg.data_dir, r->cluster.watermark_window,
                r->cluster.path);
        code = 2;
        goto out_storage;
    }
    if (rc == SY_EVERSION && r->cluster.protocol == SY_PROTO_PBFT) {
        fprintf(stderr, "synod: %s holds PBFT state written by a newer synod (its hard state "
                "format is above %u, the newest this %s binary reads): run that newer binary; "
                "downgrades are not supported (docs/operations.md, Upgrades)\n",
                r->ncfg.data_dir, PBFT_HS_VERSION, SYNOD_VERSION);
        code = 2;
        goto out_storage;
    }
    if (rc) {
        fprintf(stderr, "synod: %s engine could not start from %s: %s\n", proto, r->ncfg.data_dir,
                sy_strerror(rc));
        goto out_storage;
    }

    r->pend = calloc(RT_MAX_PENDING, sizeof *r->pend);
    r->reads = calloc(RT_MAX_READS, sizeof *r->reads);
    if (!r->pend || !r->reads) {
        fprintf(stderr, "synod: out of memory\n");
        goto out_engine;
    }
    const char *peers[SY_MAX_NODES];
    for (uint32_t i = 0; i < r->cluster.n; i++)
        peers[i] = r->cluster.nodes[i].peer;
    const sy_node_entry *me = &r->cluster.nodes[r->ncfg.id];
    sy_net_cfg nc = {
        .self = r->ncfg.id,
        .n = r->cluster.n,
        .peer_addrs = peers,
        .client_addr = me->client,
        .metrics_addr = me->metrics[0] ? me->metrics : NULL,
        .tls_cert = r->ncfg.tls_cert[0] ? r->ncfg.tls_cert : NULL,
        .tls_ca = r->cluster.tls_ca[0] ? r->cluster.tls_ca : NULL,
        .verify = &r->dec,
        .signer = &r->signer,
        .cluster_id = r->cluster.id,
        .metrics = metrics_cb,
        .health = health_cb,
        .cb_ctx = r,
        .test_close_stall_ms = o->stall_close_ms,
    };
    raise_nofile(&r->log);
    if ((rc = sy_net_open(&nc, &r->net, why, sizeof why))) {
        fprintf(stderr, "synod: %s\n", why);
        code = rc == SY_ECONFIG || rc == SY_EINVAL ? 2 : 1;
        goto out_engine;
    }
    SY_INFO(&r->log, "started: protocol %s, %u nodes, f=%u, peer %s, client %s, metrics %s, applied %" PRIu64,
            proto, r->cluster.n, r->cluster.f, me->peer, me->client,
            me->metrics[0] ? me->metrics : "(none)", r->applied);
    r->last_st.role = 0xff;
    r->last_drop_report = now_ms();
    sy_storage_view(r->st, &r->sn_st);
    if (pthread_create(&r->sn_thread, NULL, snapshot_main, r) == 0)
        r->sn_thread_up = true;
    else
        SY_WARN(&r->log, "no snapshot thread (%s); snapshots on the event loop", strerror(errno));

    code = 0;
    sy_net_event *evs = calloc(RT_MAX_EVENTS, sizeof *evs);
    if (!evs) {
        code = 1;
        goto out_net;
    }
    uint64_t last_expire = now_ms();
    /* A leader asked to stop hands leadership to its most caught-up peer
     * first (Raft thesis 3.10; what etcd does on a graceful stop), so a
     * rolling restart costs the cluster no election timeout. It keeps
     * running until another node leads or election_max_ms passes. */
    bool stopping = false, handing_off = false, kick = false;
    uint64_t handoff_until = 0;
    for (;;) {
        if (*stop && !stopping) {
            stopping = true;
            handing_off = kick = start_handoff(r);
            handoff_until = now_ms() + handoff_ms(r);
        }
        if (handing_off && *stop > 1) {
            SY_INFO(&r->log, "stopping: second signal; leadership hand-off abandoned");
            break;
        }
        if (stopping && (!handing_off || handoff_done(r, handoff_until)))
            break;
        uint64_t t = now_ms();
        uint64_t dl = r->ops->next_deadline ? r->ops->next_deadline(r->eng) : 0;
        int timeout = RT_MAX_WAIT_MS;
        if (dl && dl <= t)
            timeout = 0;
        else if (dl && dl - t < (uint64_t)timeout)
            timeout = (int)(dl - t);
        if (r->held_open) {
            uint64_t due = r->held_since + r->ncfg.commit_interval_ms;
            timeout = due <= t ? 0 : (due - t < (uint64_t)timeout ? (int)(due - t) : timeout);
        }
        if (kick) {   /* a transfer's messages, or readies left over: now, not after a wait */
            timeout = 0;
            kick = false;
        }
        size_t n = 0;
        rc = sy_net_wait_batch(r->net, timeout, evs, RT_MAX_EVENTS, &n);
        if (rc == SY_ECLOSED)
            break;
        for (size_t i = 0; i < n; i++) {
            int erc = handle_event(r, &evs[i]);
            sy_net_event_free(&evs[i]);
            if (erc == SY_EFATAL) {
                for (size_t k = i + 1; k < n; k++)
                    sy_net_event_free(&evs[k]);
                code = 1;
                goto out_loop;
            }
        }
        t = now_ms();
        sy_input tick = {.kind = SY_IN_TICK, .now_ms = t};
        bool more = false;
        if (step(r, &tick) == SY_EFATAL || collect_snapshot(r) ||
            process_ready(r, &more)) {
            code = 1;
            break;
        }
        if (more)
            kick = true;   /* the next wait polls: the engine has more to give */
        if (t - last_expire >= 1000) {
            expire_waiters(r, t);
            last_expire = t;
        }
        log_changes(r, t);
        flush_replies(r);
        if (attest_fill_held(r)) {
            code = 1;
            break;
        }
    }
out_loop:
    flush_replies(r);
    free(evs);
    if (code == 0)   /* the phases below wait on other threads: say where we are */
        SY_INFO(&r->log, "stopping: committing what is held, then closing storage and "
                "the network");
out_net:
    if (drain_job(r) != SY_OK && code == 0)
        code = 1;   /* not a clean stop: the log is not marked clean */
    snap_stop(r);
    flush_replies(r);
    if (sy_net_close(r->net) == SY_ETIMEOUT) {
        if (o->net_left_behind)
            *o->net_left_behind = true;
        SY_WARN(&r->log, "stopping: the network did not close within %u ms (an NNG hang); "
                "left behind, storage is closed regardless", SY_NET_CLOSE_MS);
    }
out_engine:
    if (r->eng)
        r->ops->destroy(r->eng);
    for (size_t i = 0; i < r->n_reads; i++)
        free(r->reads[i].frame);
    free(r->pend);
    free(r->reads);
out_storage:
    sy_wal_close(r->wal);
    sy_storage_close(r->st);
    if (code == 0)
        SY_INFO(&r->log, "stopping: signal received; storage closed cleanly");
out_cfg:
    if (r->lock_fd >= 0)
        close(r->lock_fd);   /* after the store is closed */
    sy_node_free(&r->ncfg);
    sy_cluster_free(&r->cluster);
out_free:
    sy_buf_free(&r->out);
    sy_env_memo_free(&r->memo);
    sy_env_batch_free(&r->rbatch);
    free(r->rhandles);
    pthread_mutex_destroy(&r->m.mu);
    pthread_mutex_destroy(&r->sn_mu);
    pthread_cond_destroy(&r->sn_cv);
    free(r);
    return code;
}
