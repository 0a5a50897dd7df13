/* PBFT engine (Castro & Liskov, "Practical Byzantine Fault Tolerance",
 * OSDI 1999; and "Practical Byzantine Fault Tolerance and Proactive
 * Recovery", TOCS 2002). Design note: docs/pbft.md.
 *
 * Public face: sy_pbft_ops (an sy_engine_ops, core/engine.h), the test-only
 * Byzantine behaviour codes and the quorum arithmetic. Everything below the
 * "internal" line is shared by the bft/pbft sources only.
 *
 * Host contract beyond core/engine.h:
 *  - pipelined (core/engine.h): steps may come between ready() and
 *    advance(), at most one ready in flight;
 *  - rd.committed entries are also in rd.entries of the same ready (persist
 *    them first); a ready never commits past a checkpoint sequence number:
 *    when rd.checkpoint_index != 0 the host, after applying, steps
 *    SY_IN_SNAPSHOT {index, snapshot blob}; the engine's checkpoint
 *    digest is the chunked digest of the blob (core/chunks.h, chunks of
 *    cfg.state_chunk_bytes), so the blob must be byte-identical at every
 *    correct replica; or it steps SY_IN_APPLIED with that digest computed
 *    its own way (the replica then has no blob to serve to others);
 *  - rd.snapshot_install: replace the state machine with snap_data (already
 *    verified against a quorum-signed checkpoint digest), then step
 *    SY_IN_SESSIONS with the installed state's client sessions so the
 *    engine's client table is whole again (without it, clients it has no
 *    record of do not start its view-change timer);
 *  - rd.hardstate is an opaque blob to hand back in boot.hardstate, with
 *    boot.snap_index/snap_data = the last stable checkpoint's snapshot and
 *    boot.entries = the persisted committed entries above it;
 *  - cfg.clients should name the clients' keys (else batch requests are
 *    decoded but not signature-checked: benchmarks only). */
#ifndef SY_PBFT_H
#define SY_PBFT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/engine.h"
#include "core/msg.h"
#include "core/buf.h"

extern const sy_engine_ops sy_pbft_ops;

/* ---- quorum arithmetic (docs/pbft.md "Quorums") ----
 * n >= 3f+1. quorum q = ceil((n+f+1)/2): two quorums intersect in
 * 2q-n >= f+1 replicas, hence in at least one correct replica, and q <=
 * n-f so the correct replicas alone form a quorum. For n = 3f+1 this is
 * the paper's 2f+1. Prepared = pre-prepare + q-1 prepares; committed-local,
 * stable checkpoint, NEW-VIEW: q. A client accepts f+1 matching replies. */
uint32_t sy_pbft_quorum(uint32_t n, uint32_t f);

/* ---- test-only Byzantine behaviours and mutants (cfg.test_behaviour).
 * Compiled in only with SYNOD_TESTING; a normal build ignores the field. */
enum sy_pbft_behaviour {
    SY_PBFT_HONEST = 0,
    SY_PBFT_SILENT,          /* sends nothing */
    SY_PBFT_EQUIVOCATE,      /* primary: different batches for one seq */
    SY_PBFT_SKIP_SEQ,        /* primary: skips and reuses sequence numbers */
    SY_PBFT_BAD_SIG,         /* statement signatures forged/invalid */
    SY_PBFT_REPLAY,          /* re-sends old-view messages */
    SY_PBFT_WRONG_DIGEST,    /* prepares/commits for a wrong digest */
    SY_PBFT_FAKE_PREPARED,   /* VIEW-CHANGE claims a certificate it lacks */
    SY_PBFT_BAD_NEW_VIEW,    /* NEW-VIEW with a wrong O set */
    SY_PBFT_FLOOD,           /* floods well-formed garbage */
    SY_PBFT_TWINS,           /* implemented by the simulator, not here */
    SY_PBFT_BAD_STATE,       /* serves state transfers with lies in them */
    /* mutants: a correct-looking replica with a planted bug */
    SY_PBFT_MUTANT_ACCEPT_WRONG_DIGEST = 100, /* counts prepares for any digest */
    SY_PBFT_MUTANT_NV_NO_RECOMPUTE,           /* accepts NEW-VIEW O unchecked */
    SY_PBFT_MUTANT_BLAME_AGREEING,            /* counts agreeing votes as dissent */
};
/* Maps a simulator name ("silent", "equivocate", "skip-seq", "bad-sig",
 * "replay", "wrong-digest", "fake-prepared", "bad-new-view", "flood",
 * "twins", "bad-state", "mutant-accept-wrong-digest", "mutant-nv-no-recompute",
 * "mutant-blame-agreeing") to its
 * code. SY_OK or SY_EINVAL. */
int sy_pbft_behaviour_from_name(const char *name, uint32_t *out);
const char *sy_pbft_behaviour_name(uint32_t code);

/* ===================== internal (the bft/pbft sources only) ===================== */

#define PBFT_DEFAULT_K 64u
#define PBFT_DEFAULT_BATCH_MAX 64u
#define PBFT_DEFAULT_PENDING 4096u
#define PBFT_DEFAULT_TIMEOUT_MS 2000u
#define PBFT_DEFAULT_HEARTBEAT_MS 200u
#define PBFT_MAX_BACKOFF_SHIFT 6u     /* view-change timeout <= base * 64 */
#define PBFT_VCACHE 4096u             /* verified-signature cache (direct mapped) */
#define PBFT_MAX_WAITING 1024u        /* requests a backup watches for its timer */
/* Bytes of watched requests a replica keeps whole, to hand to the next
 * view's primary (pbft_requeue_waiting); past it, requests are watched by
 * id only and wait for the client's retransmission, as before. */
#define PBFT_WAITING_BYTES_MAX (16u << 20)
#define PBFT_MAX_FETCH 64u            /* batches fetched at once */
#define PBFT_IDLE_PROBE_HB 5u         /* heartbeats without execution between idle probes */
#define PBFT_KEEP_HB 4u               /* a kept snapshot outlives its last request this long */
#define PBFT_HS_VERSION 3u           /* 2: sections in engine records; 3: own statements */
/* A hard state's fixed header (version, view, in_vc, vote_view, vote_hi,
 * h, h_digest, nsigs), the same in every version so far. */
#define PBFT_HS_FIXED (1u + 8u + 1u + 24u + SY_DIGEST_LEN + 1u)
/* A version byte above ours but at most this is read as "a newer synod
 * wrote it" (SY_EVERSION) rather than as damage. */
#define PBFT_HS_VERSION_PLAUSIBLE 32u

/* What a sequence number's engine record encodes (pbft_records): equal
 * fingerprints, equal records -- up to which of several valid
 * certificates for the same (view, seq, digest) it holds, any of which
 * proves the same thing after a restart. */
typedef struct {
    uint8_t what;                 /* bits: cert, commit cert, batch, set-aside batch,
                                     own statements */
    uint64_t cert_view, ccert_view;
    sy_digest cert_d, d;
    uint32_t cert_n, ccert_n;
    size_t batch_len, cbatch_len;
    const void *batch, *cbatch;
    uint64_t own_view;
    sy_digest own_d;
    uint8_t own_flags;
} pbft_recfp;

/* Storage's engine record for a window slot's sequence number. */
typedef struct {
    uint64_t seq;                 /* the number (another, or 0: nothing known) */
    bool known;                   /* fp is what storage holds for seq */
    bool stored;                  /* storage holds a record for seq */
    pbft_recfp fp;
} pbft_rec;

/* A stable checkpoint's snapshot kept for a replica still fetching it. */
typedef struct {
    uint64_t seq;                 /* 0 = free */
    sy_digest d;
    uint32_t nsigs;
    sy_pbft_sig *sigs;            /* [n] its proof */
    uint8_t *snap;
    size_t len;
    sy_digest *tree;              /* its chunk tree, built when first served */
    uint32_t ntree;
} pbft_kept;

/* The latest vote (prepare or commit) of one replica at one seq. */
typedef struct {
    bool have;
    uint64_t view;
    sy_digest d;
    sy_sig sig;
} pbft_vote;

typedef struct {
    uint64_t seq;                 /* 0 = free */
    bool have_pp;                 /* accepted pre-prepare in pp_view */
    uint64_t pp_view;
    sy_digest d;
    sy_sig pp_sig;
    /* pp_sig is the primary's signature of (pp_view, seq, d): false after
     * state transfer filled the slot with another view or digest */
    bool pp_signed;
    bool have_batch;
    /* the batch came back at boot from durable state without a
     * pre-prepare or certificate of this run: it stays durable
     * (hs_keeps_batch) until executed, or the next restart lost it */
    bool boot_batch;
    uint8_t *batch;               /* owned; NULL for a null request */
    size_t batch_len;
    pbft_vote *prep, *com;        /* [n] */
    bool prepared, committed;     /* in pp_view */
    bool sent_prepare, sent_commit;
    /* prepared certificate of the highest view this replica prepared in */
    bool have_cert;
    uint64_t cert_view;
    sy_digest cert_d;
    sy_sig cert_pp_sig;
    uint32_t cert_n;
    sy_pbft_sig *cert_prep;       /* [n] */
    /* the batch cert_d names, kept when a later view's pre-prepare for
     * another digest took its place in `batch` (owned, or NULL) */
    uint8_t *cbatch;
    size_t cbatch_len;
    /* commit certificate, once committed (served in state transfer) */
    uint64_t ccert_view;
    uint32_t ccert_n;
    sy_pbft_sig *ccert;           /* [n] */
    bool executed;
    uint64_t fetch_ms;            /* last FETCH sent for a missing batch */
    /* This replica's own statements at this number, as its engine record
     * logged them (decoded at boot, restored once the boot knows what was
     * executed; PBFT_OWN_* flags): the Castro-Liskov message log, so a
     * restarted replica knows what it signed and may sign it again. */
    bool own_logged;
    uint8_t own_flags;
    uint64_t own_view;
    sy_digest own_d;
    sy_sig own_pp_sig;
    /* restored from own_*: the restart guard does not apply here */
    bool restored;
} pbft_slot;

#define PBFT_OWN_PREPARE 1u           /* it sent PREPARE (view, seq, d) */
#define PBFT_OWN_COMMIT 2u            /* it sent COMMIT (view, seq, d) */
#define PBFT_OWN_PRE_PREPARE 4u       /* it pre-prepared (view, seq, d): the primary */
/* One own-statement item in a record: seq u64 | view u64 | digest |
 * pp_sig | flags u8 (pbft.c, hs_sections). */
#define PBFT_OWN_ITEM_LEN (8u + 8u + SY_DIGEST_LEN + SY_SIG_LEN + 1u)

/* CHECKPOINT votes and this replica's own snapshot for one seq. */
typedef struct {
    uint64_t seq;                 /* 0 = free */
    bool *have;                   /* [n] */
    sy_digest *d;                 /* [n] */
    sy_sig *sig;                  /* [n] */
    bool mine_have, mine_sent;
    sy_digest mine;
    uint8_t *snap;                /* owned copy of the host's snapshot */
    size_t snap_len;
} pbft_ckpt;

typedef struct {
    uint8_t *buf;                 /* owned encoded body */
    size_t len;
    sy_msg msg;                   /* decoded from buf */
    bool have;
} pbft_stored;

typedef struct {
    uint32_t client;
    uint64_t req_no;
    uint8_t *raw;                 /* the signed request, or NULL (byte budget) */
    uint32_t len;
} pbft_creq;

typedef struct {
    uint8_t *raw;                 /* owned signed request envelope */
    size_t len;
    uint32_t client;
    uint64_t req_no;
} pbft_pending;

typedef struct {
    uint32_t client;              /* 0 = empty (client ids >= 0x10000) */
    uint64_t executed;            /* last executed req_no */
    uint64_t proposed;            /* primary: last proposed in this view */
} pbft_client;

typedef struct pbft pbft;
struct pbft {
    sy_engine_cfg cfg;            /* copy; pointers borrowed */
    uint32_t n, f, q;
    uint32_t self;
    uint64_t K, L;
    uint32_t behaviour;
    sy_rng rng;
    uint64_t now;

    /* view */
    uint64_t view;
    bool in_vc;                   /* waiting for NEW-VIEW of `view` */
    bool boot_check;              /* booted from disk: first tick checks for holes */
    uint64_t vc_deadline;         /* 0 = timer off */
    uint32_t vc_backoff;          /* successive view changes without progress */
    uint64_t view_changes;

    /* log */
    uint64_t h;                   /* low water mark: last stable checkpoint */
    sy_digest h_digest;
    uint32_t h_nsigs;
    sy_pbft_sig *h_sigs;          /* [n] proof of h */
    uint8_t *h_snap;              /* snapshot blob at h (owned; may be NULL) */
    size_t h_snap_len;
    sy_digest *h_tree;            /* its chunk tree (lazily, for serving) */
    uint32_t h_ntree;
    /* Earlier stable checkpoints' snapshots, kept after h moved on while
     * some replica goes on fetching them (pbft_keep_h_snap): at most one
     * per fetching peer, the one it fetches (fetch_seq/fetch_ms). */
    pbft_kept *kept;              /* [n] */
    uint64_t *fetch_seq;          /* [n] checkpoint each peer was last served chunks of */
    uint64_t *fetch_ms;           /* [n] when (0 = never) */
    uint32_t chunk;               /* state transfer chunk bytes */
    uint64_t executed;            /* last seq emitted in rd.committed */
    uint64_t next_seq;            /* primary: next to assign */
    uint64_t last_pp;             /* highest seq with an accepted pre-prepare */
    pbft_slot *slots;             /* [L], index seq % L */
    pbft_ckpt *cks;               /* [nck], index (seq / K) % nck */
    uint32_t nck;
    uint64_t *hi_ck;              /* [n] highest checkpoint seq each signed */
    uint64_t *peer_view;          /* [n] highest view seen signed by each */
    bool stop_at_ckpt;            /* a ready ended at a checkpoint */

    /* restart guard: no votes at seq <= guard_hi in view guard_view */
    uint64_t vote_view, vote_hi;
    uint64_t guard_view, guard_hi;
    bool hs_dirty;

    /* primary's request queue, and clients' executed request numbers */
    pbft_pending *pending;
    uint32_t n_pending, cap_pending;
    uint64_t pending_since;
    pbft_client *clients;         /* open addressing, power of two */
    uint32_t cap_clients, n_clients;
    bool clients_partial;         /* client table lost to a state install */
    uint64_t partial_at;          /* ... at this checkpoint (SY_IN_SESSIONS) */
    pbft_creq *waiting;           /* backup: requests the timer watches */
    uint64_t *waiting_since;
    uint32_t n_waiting;
    size_t waiting_bytes;         /* sum of waiting[].len */

    /* view change */
    pbft_stored *vcs;             /* [n] latest valid VIEW-CHANGE per replica */
    pbft_stored nv;               /* NEW-VIEW accepted/sent for `view` */
    uint64_t *nv_resent_ms;       /* [n] primary: NEW-VIEW last repeated to each */

    /* state transfer */
    uint64_t xfer_ms;             /* last STATE_REQ sent */
    uint64_t idle_probe_ms;       /* last idle probe (pbft_maybe_fetch_state) */
    uint64_t hi_seen;             /* highest seq of a verified COMMIT from others */
    bool probed;                  /* asked f+1 peers how far they are */
    uint64_t stable_seen;         /* highest seq of a valid checkpoint proof seen */
    uint64_t progress_ms;         /* last time execution advanced */
    uint64_t xfer_bad;            /* STATE replies that failed verification */
    uint32_t xfer_peer;
    /* the snapshot being fetched chunk by chunk (TOCS 6.2's partition
     * fetch, with byte ranges of the blob for partitions) */
    struct {
        uint64_t seq;             /* 0 = none */
        sy_digest d;
        sy_pbft_sig sigs[SY_MAX_NODES];
        uint32_t nsigs;
        uint8_t *buf;             /* [len] */
        uint64_t len;
        bool *got;                /* [n_chunks] */
        uint32_t n_chunks, n_got;
        uint64_t *ask_ms;         /* [n_chunks] when asked, 0 = not out */
        uint32_t asked;           /* chunks below this were asked for */
        uint32_t lo;              /* chunks below this are all in */
        uint32_t inflight;        /* asked for, not yet in */
        uint32_t peer;            /* the replica we ask */
        bool rotate;              /* it lied: move on at the next tick */
        uint64_t lacks;           /* bit i: replica i answered with a newer one,
                                   * or stayed silent when asked, twice */
        uint8_t silences[SY_MAX_NODES]; /* stalls while replica i was asked */
        uint64_t rx_ms;           /* last chunk from peer (or when it was picked) */
    } xin;
    uint64_t hb_last;             /* last heartbeat (retransmission) */
    uint64_t exec_at_hb;

    /* verified-signature cache */
    sy_digest *vcache;            /* [PBFT_VCACHE] */
    bool *vcache_have;

    /* counters */
    uint64_t evidence, dropped;
    uint32_t evidence_from;       /* replica of the latest evidence */
    uint64_t bad_sigs;            /* messages refused for a bad inner signature */
    uint32_t bad_sig_from;        /* ... the latest one's sender */
    sy_accused accused;           /* per replica: evidence, bad sigs, dissent */
    uint64_t dissent;             /* votes against an accepted pre-prepare */
    uint32_t dissent_from;        /* ... the latest one's voter */
    uint32_t dissent_primary;     /* ... and the primary of its view */
    sy_buf evid_log;              /* conflicting statement pairs (bounded) */

    /* ready accumulators (valid until advance) */
    sy_outmsg *out;
    size_t n_out, cap_out;
    pbft_stored *owned;           /* encoded+decoded bodies behind out */
    size_t n_owned, cap_owned;
    sy_entry *ents;
    size_t n_ents, cap_ents;
    sy_committed *comm;
    size_t n_comm, cap_comm;
    void **blobs;                 /* owned memory behind ents/comm */
    size_t n_blobs, cap_blobs;
    sy_read_state *reads;
    size_t n_reads, cap_reads;
    sy_reject *rejects;
    size_t n_rejects, cap_rejects;
    sy_buf hs;                    /* encoded hardstate of the last ready */
    pbft_rec *rec_kept;           /* [L], index seq % L (pbft_records) */
    uint64_t rec_h;               /* records at or below it are dropped */
    uint64_t slot_hi;             /* highest number a slot was opened for */
    uint64_t rec_drop;            /* the last ready's records_drop_below */
    sy_record *rec_out;           /* the last ready's records ... */
    size_t n_rec_out, cap_rec_out;
    sy_buf rec_buf;               /* ... and their values */
    sy_buf rec_scratch;
    bool broken;                  /* durable state could not be encoded: stop */
    uint64_t compact_to;
    uint64_t ckpt_index;
    bool install;
    uint64_t install_index;
    uint8_t *install_data;
    size_t install_len;
    void *install_pending;        /* freed at advance */
    /* what the last ready handed out: advance() releases only that; what
     * steps added since goes to the next ready (pipelining, core/engine.h) */
    size_t h_out, h_owned, h_ents, h_comm, h_blobs, h_reads, h_rejects;
    uint64_t h_ckpt;              /* checkpoint index handed out (0 none) */
    /* Boot: entries the restart hands the host again (above its applied
     * index) sit at the front of comm, their data in boot_blobs; a ready
     * exposes them only up to ckpt_index while boot_cut is set -- a
     * checkpoint among them, or the host's applied index itself, that has
     * no stored snapshot gets one (pbft.c, boot_next_cut). */
    bool boot_cut;
    size_t boot_left;             /* of comm's front entries, the boot's */
    void **boot_blobs;
    size_t n_boot_blobs, cap_boot_blobs;
    uint64_t boot_snap_at;        /* the stored snapshot's index (0: none) */
    uint64_t *boot_ck;            /* pending checkpoint snapshots handed back */
    size_t n_boot_ck;
    bool h_install;               /* the install was handed out */
};

/* pbft.c: helpers shared by the protocol files */
/* The digest of a null request (Castro & Liskov 4.4): all zero. */
static inline bool pbft_digest_is_null(const sy_digest *d)
{
    static const sy_digest zero;
    return sy_digest_eq(d, &zero);
}
static inline uint32_t pbft_primary(const pbft *p, uint64_t view) { return (uint32_t)(view % p->n); }
static inline bool pbft_is_primary(const pbft *p) { return pbft_primary(p, p->view) == p->self; }
bool pbft_behaves(const pbft *p, uint32_t b);
/* Checkpoint digest of a snapshot blob: its chunked digest. */
int pbft_snap_digest(const pbft *p, const uint8_t *blob, size_t len, sy_digest *out);
/* Replaces the blob held for h (takes ownership of blob; NULL = none). */
void pbft_set_h_snap(pbft *p, uint8_t *blob, size_t len);
void pbft_keep_h_snap(pbft *p);
void pbft_kept_expire(pbft *p);
pbft_kept *pbft_kept_find(pbft *p, uint64_t seq);
/* The host's client sessions of the state installed at index
 * (SY_IN_SESSIONS): the client table a state install had lost. */
int pbft_on_sessions(pbft *p, uint64_t index, const sy_session_rec *recs, size_t n);
/* Drops a half-fetched snapshot. */
void pbft_xin_clear(pbft *p);
void pbft_sign_stmt(pbft *p, uint8_t type, uint64_t view, uint64_t seq,
                    const sy_digest *d, sy_sig *out);
bool pbft_verify_stmt(pbft *p, uint8_t type, uint64_t view, uint64_t seq,
                      const sy_digest *d, uint32_t replica, const sy_sig *sig);
/* Encodes m and queues it to `to` (SY_NO_NODE = every other replica). */
int pbft_send(pbft *p, uint32_t to, const sy_msg *m);
int pbft_commit_entry(pbft *p, uint64_t seq, uint64_t view, uint8_t type,
                      const uint8_t *data, size_t len, const sy_bytes *evidence);
void *pbft_keep(pbft *p, void *blob);   /* freed at advance */
pbft_slot *pbft_slot_get(pbft *p, uint64_t seq);   /* NULL outside (h, h+L] */
pbft_client *pbft_client_get(pbft *p, uint32_t client, bool create);
void pbft_note_vote(pbft *p, uint64_t seq);
void pbft_record_evidence(pbft *p, uint8_t type, uint32_t replica, uint64_t view,
                          uint64_t seq, const sy_digest *a, const sy_digest *b);
/* Counts the votes of slot s (in its pre-prepare's view) whose digest is
 * not the pre-prepare's, when the pre-prepare was accepted after them;
 * pbft_on_vote counts the ones that come later. */
void pbft_dissent_scan(pbft *p, const pbft_slot *s);
void pbft_reset_timer(pbft *p);
/* A verified statement shows `from` in a view above ours: once f+1 do,
 * join them (we missed a NEW-VIEW). */
void pbft_note_peer_view(pbft *p, uint32_t from, uint64_t view);
/* f+1 other replicas run or want views above ours: join the smallest. */
void pbft_follow_higher_views(pbft *p);

/* pbft_normal.c (paper 4.2, 4.3) */
int pbft_on_request(pbft *p, const uint8_t *raw, size_t len, const sy_client_req *req,
                    bool from_client);
int pbft_on_forward(pbft *p, uint32_t from, const sy_pbft_forward *fw);
int pbft_on_pre_prepare(pbft *p, uint32_t from, const sy_pbft_stmt *s);
int pbft_on_vote(pbft *p, uint8_t type, uint32_t from, const sy_pbft_stmt *s);
int pbft_on_checkpoint(pbft *p, uint32_t from, const sy_pbft_stmt *s);
int pbft_on_snapshot(pbft *p, uint64_t index, const uint8_t *data, size_t len,
                     const sy_digest *digest);
void pbft_try_batch(pbft *p);
/* Stops watching waiting[w] (frees its copy; the last entry moves in). */
void pbft_waiting_drop(pbft *p, uint32_t w);
/* On entering a view: the requests this replica watches and holds whole go
 * to the view's primary -- into its own pending queue, or FORWARDed. */
void pbft_requeue_waiting(pbft *p);
void pbft_progress(pbft *p, pbft_slot *s);
int pbft_execute(pbft *p);
/* Records the requests of an executed batch in their clients' entries
 * (executed, proposed, waiting), without verifying them: the batch was
 * checked when it was ordered, or read back from this replica's own log at
 * boot. */
void pbft_note_batch_executed(pbft *p, const uint8_t *batch, size_t len);
void pbft_send_prepare(pbft *p, pbft_slot *s);
void pbft_stabilize(pbft *p, uint64_t seq, const sy_digest *d, const sy_pbft_sig *sigs,
                    uint32_t nsigs);
void pbft_retransmit(pbft *p);
bool pbft_batch_valid(pbft *p, const uint8_t *batch, size_t len);
void pbft_slot_clear(pbft *p, pbft_slot *s);
/* The slot's batch becomes (batch, len) for digest d (batch owned, NULL for
 * a null request or one still to fetch; have = whether it is in hand). The
 * batch of the slot's prepared certificate is set aside, not freed, when it
 * leaves, and taken back when d is the certificate's digest again. */
void pbft_slot_set_batch(pbft_slot *s, uint8_t *batch, size_t len, bool have,
                         const sy_digest *d);
uint64_t pbft_batch_deadline(const pbft *p);

/* pbft_view.c (paper 4.4) */
void pbft_start_view_change(pbft *p, uint64_t new_view);
/* The operator's leadership transfer (a stopping primary, docs/pbft.md
 * "Hand-off"): the primary of the current view, running it, moves to the
 * next view itself. target: SY_NO_NODE or that view's primary. */
int pbft_abdicate(pbft *p, uint32_t target);
void pbft_arm_vc_timer(pbft *p);
int pbft_on_view_change(pbft *p, uint32_t from, const sy_msg *m);
int pbft_on_new_view(pbft *p, uint32_t from, const sy_msg *m);
bool pbft_vc_valid(pbft *p, const sy_pbft_view_change *vc);
bool pbft_ckproof_valid(pbft *p, const sy_pbft_ckproof *c);
/* Computes the O set from vcs (paper 4.4): *o allocated (free()). */
int pbft_compute_o(pbft *p, uint64_t view, const sy_pbft_view_change *vcs, uint32_t n_vcs,
                   uint64_t *min_s, sy_pbft_opp **o, uint32_t *n_o);
void pbft_vc_resend(pbft *p);
/* A normal-case message from `from` for a view below ours: as primary of
 * ours, repeat our NEW-VIEW to it (rate-limited). */
void pbft_nv_to_laggard(pbft *p, uint32_t from);

/* pbft_xfer.c (TOCS 2002 5.3.2: state transfer; fetching batches) */
int pbft_on_fetch(pbft *p, uint32_t from, const sy_pbft_batch *b);
int pbft_on_batch(pbft *p, uint32_t from, const sy_pbft_batch *b);
int pbft_on_state_req(pbft *p, uint32_t from, const sy_pbft_state_req *r);
int pbft_on_state(pbft *p, uint32_t from, const sy_pbft_state *s);
void pbft_maybe_fetch_state(pbft *p);
/* Behind a checkpoint that a quorum (or f+1 replicas) vouch for. */
bool pbft_behind(const pbft *p);
void pbft_fetch_batches(pbft *p);

/* pbft_byz.c (SYNOD_TESTING only) */
void pbft_byz_tick(pbft *p);

#endif
