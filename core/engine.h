/* The protocol engine interface, shared by Raft, Multi-Paxos and PBFT.
 *
 * An engine is a pure, deterministic state machine. It never does I/O, never
 * reads a clock, never sleeps or spawns threads, and draws randomness only
 * from the sy_rng it is handed. The host (the synod daemon or the simulator)
 * feeds it inputs with sy_engine_step() and drains effects with
 * sy_engine_ready() / sy_engine_advance(), in the shape of etcd raft's
 * Ready/Advance:
 *
 *     step(input)...            any number of inputs
 *     ready(&rd)                 effects accumulated since the last advance
 *     1. persist rd.hardstate, truncate at rd.truncate_from, append
 *        rd.entries, install rd.snapshot: ALL IN ONE DURABLE WRITE (fsync)
 *     2. only then send rd.msgs           (persist-before-send: a vote or an
 *                                          ack is never sent for state that
 *                                          a crash could forget; messages
 *                                          marked `early` may go before 1)
 *     3. apply rd.committed in order, answer rd.reads once applied >= index,
 *        answer rd.rejects
 *     advance()                 the engine may reuse rd's memory now
 *
 * Group commit falls out of this shape: every request stepped in before
 * ready() lands in the same durable write. Everything in sy_ready is owned by
 * the engine and valid until advance().
 *
 * Pipelining (ops->pipelined): an engine that sets it also lets the host
 * step() between ready() and advance(), so the host can keep taking input
 * while the durable write of the last ready is in flight (the simulator
 * does; the daemon did until session 16 and now writes in line, which
 * measured faster on two cores: cmd/synod/runtime.c, job_write). Then:
 *   - rd is valid only until the next step() or advance(), whichever comes
 *     first: the host copies what it still needs (core/ready.h) and encodes
 *     the messages before stepping again;
 *   - ready() hands its effects out and forgets them; everything stepped in
 *     after it goes to the next ready(), and advance() acknowledges exactly
 *     the effects of the last ready() (that write is durable);
 *   - at most one ready is in flight: the host never calls ready() again
 *     before the advance() of the previous one. So whatever a step makes
 *     of entries the engine counted as its own before they were durable (a
 *     commit index, an ack) can leave only in a later ready, after advance.
 * An engine without the flag keeps the plain contract above.
 *
 * Committed entries are always already durable on this node (the engine only
 * reports commits of entries it has seen persisted via an earlier advance). */
#ifndef SY_ENGINE_H
#define SY_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/msg.h"
#include "core/rng.h"
#include "crypto/crypto.h"

#define SY_NO_NODE UINT32_MAX
#define SY_STATE_CHUNK_DEF (1024u * 1024u)   /* cfg.state_chunk_bytes */
#define SY_STATE_CHUNK_MAX (4u * 1024u * 1024u)

struct sy_directory;             /* core/envelope.h */

typedef struct sy_engine_cfg {
    uint32_t self;               /* this node's id */
    uint32_t n;                  /* nodes 0..n-1 in the initial membership */
    uint32_t f;                  /* tolerated faults */
    char cluster_id[SY_MAX_CLUSTER_ID + 1];
    /* timing, in milliseconds of the time carried by inputs */
    uint32_t heartbeat_ms;       /* leader heartbeat / PBFT status period */
    uint32_t election_min_ms;    /* randomized in [min, max) */
    uint32_t election_max_ms;
    uint32_t request_timeout_ms; /* PBFT view-change timer base */
    uint32_t batch_delay_ms;     /* PBFT primary batching delay (0 = none) */
    /* limits */
    uint32_t batch_max;          /* requests per batch/entry */
    uint32_t batch_bytes_max;    /* bytes per append message */
    uint32_t max_inflight;       /* pipelined appends/slots per peer */
    uint32_t max_pending;        /* client requests queued at a leader */
    uint64_t snapshot_threshold; /* compact log past this many applied entries */
    uint32_t compact_keep;       /* Raft, Paxos: entries kept below a local
                                    snapshot, so a peer slightly behind
                                    catches up from the log (0 = 64) */
    uint32_t msg_entries_max;    /* Paxos: most entries in one PROMISE, ACCEPT
                                    or CHOSEN, the rest in further pages
                                    (0 = SY_MAX_ENTRIES_PER_MSG, also the
                                    most). Only tests set it, small, so the
                                    paging paths run on short logs. */
    uint32_t checkpoint_interval;/* PBFT K */
    uint32_t watermark_window;   /* PBFT L */
    bool prevote;                /* Raft thesis 9.6 */
    bool check_quorum;           /* Raft thesis 6.2 */
    /* Raft, Multi-Paxos: this node's disk was replaced (docs/operations.md,
     * section 7). It starts on an empty log, but before the disk died it
     * may have voted (promised) and acknowledged entries (accepted values)
     * that it no longer holds, so its vote could elect a leader missing a
     * committed entry. It answers nobody for sy_rejoin_wait_ms, then, until
     * it has caught up (sy_engine_status.rejoining), grants no vote,
     * pre-vote or promise, runs no election and ignores hand-offs; its
     * acknowledgements count. Needs check_quorum. PBFT ignores it. */
    bool rejoin;
    const sy_pubkey *node_keys;  /* n entries, borrowed for the engine's life */
    const sy_signer *signer;     /* this node's identity (borrowed): PBFT signs its
                                  * statements with it; Raft and Paxos leave
                                  * their commit records to the host
                                  * (sy_committed.attest) */
    const sy_verifier *verifier; /* (borrowed) */
    uint64_t rng_seed;
    uint32_t test_behaviour;     /* SYNOD_TESTING only: Byzantine/mutant switch */
    /* PBFT: clients' public keys, to verify every signed request inside a
     * primary's batch (borrowed for the engine's life; NULL = requests in
     * batches are decoded but their signatures are not checked). */
    const struct sy_directory *clients;
    /* PBFT: state transfer moves the snapshot blob in chunks of this many
     * bytes, each checked against the checkpoint digest on arrival; the
     * digest is the chunked digest of the blob (core/chunks.h), so every
     * replica of a cluster must use the same value (0 = SY_STATE_CHUNK_DEF).
     * The blob must be byte-identical at every correct replica for the
     * same index. */
    uint32_t state_chunk_bytes;
} sy_engine_cfg;

/* cfg.rejoin: how long a rejoining node answers nobody after its first
 * input -- until an election its old self voted in has ended (a candidate
 * gives up within two election timeouts, backoff included) and a leader
 * its old self kept in office has stepped down for want of a quorum
 * (check-quorum: within an election timeout and a heartbeat). At least
 * SY_REJOIN_WAIT_MIN_MS whatever the timing: a transport may queue frames
 * for a peer while its link is down and deliver them once it is back (the
 * daemon's redials it within 500 ms), and those are better dropped too. */
#define SY_REJOIN_WAIT_MIN_MS 1000u
static inline uint64_t sy_rejoin_wait_ms(const sy_engine_cfg *c)
{
    uint64_t w = 3 * (uint64_t)c->election_max_ms + c->heartbeat_ms;
    return w > SY_REJOIN_WAIT_MIN_MS ? w : SY_REJOIN_WAIT_MIN_MS;
}

/* Log indices, terms, ballots, views and sequence numbers in durable state
 * above this are corrupt: no run gets anywhere near it, and every engine's
 * arithmetic (index + 1, h + L, term + 1) stays clear of UINT64_MAX. An
 * engine refuses a boot that names one (SY_ECORRUPT). fuzz_boot found
 * hangs and wild pointers from snapshot indices and PBFT water marks near
 * 2^64 before this bound existed. */
#define SY_INDEX_MAX (1ull << 62)

/* An engine record: one value in a small keyed table that an engine keeps
 * beside its hard state, so a step that changes one part of a large durable
 * state rewrites that part only (PBFT: one record per sequence number of its
 * window -- certificates and batches -- where a single hard state rewrote
 * the whole window at every ready; docs/pbft.md, Persistence). */
typedef struct sy_record {
    uint64_t key;
    sy_bytes val;                /* in a ready: empty deletes the record */
} sy_record;

typedef struct sy_ckpt_snap {
    uint64_t index;
    sy_bytes data;
} sy_ckpt_snap;

/* Durable state handed back at restart, read from storage by the host. */
typedef struct sy_engine_boot {
    sy_bytes hardstate;          /* last persisted rd.hardstate (empty: fresh) */
    uint64_t snap_index, snap_term; /* last snapshot / stable checkpoint */
    sy_members snap_members;
    sy_bytes snap_data;          /* host's snapshot blob for that index */
    const sy_entry *entries;     /* persisted log above snap_index, in order */
    size_t n_entries;
    uint64_t applied;            /* host's applied index (>= snap_index) */
    const sy_ckpt_snap *ckpts;   /* PBFT: snapshots taken at checkpoints that */
    size_t n_ckpts;              /* were not yet stable, ascending index */
    const sy_record *records;    /* every stored engine record, keys ascending */
    size_t n_records;
} sy_engine_boot;

enum sy_input_kind {
    SY_IN_TICK = 1,       /* time passed */
    SY_IN_MSG,            /* verified peer message */
    SY_IN_REQUEST,        /* verified client request, to be ordered */
    SY_IN_READ,           /* linearizable read wanting a read index */
    SY_IN_SNAPSHOT,       /* host took a snapshot of the state machine */
    SY_IN_TRANSFER,       /* operator asks for leadership transfer */
    SY_IN_CONF_CHANGE,    /* operator asks to add/remove a node */
    SY_IN_APPLIED,        /* PBFT: host applied through index; state digest
                             there (for CHECKPOINT; see rd.checkpoint_index) */
    SY_IN_SESSIONS,       /* PBFT: after rd.snapshot_install, the installed
                             state's client sessions (other engines: no-op) */
};

/* A client's last executed request number, as the state machine's session
 * table records it (SY_IN_SESSIONS). */
typedef struct {
    uint32_t client_id;
    uint64_t req_no;
} sy_session_rec;

typedef struct sy_input {
    uint8_t kind;
    uint64_t now_ms;      /* host time; every input carries it */
    union {
        struct {
            uint32_t from;
            const sy_msg *msg;
            const uint8_t *raw;  /* the signed envelope bytes (for certificates) */
            size_t raw_len;
        } msg;
        struct {
            const sy_client_req *req;
            const uint8_t *raw;  /* the client's signed envelope, kept in the log */
            size_t raw_len;
        } request;
        struct {
            uint64_t read_id;    /* host's handle, echoed in sy_read_state */
        } read;
        struct {
            uint64_t index, term;
            sy_bytes data;       /* borrowed; engine copies if it keeps it */
            /* PBFT, optional: the checkpoint digest of data (sy_chunks_digest
             * with the configured state_chunk_bytes), computed by the host
             * off the engine's thread; NULL: the engine computes it */
            const sy_digest *digest;
        } snapshot;
        struct {
            uint32_t target;     /* SY_NO_NODE: the engine picks the voter
                                  * whose log is most up to date */
        } transfer;
        struct {
            uint32_t node;
            bool add;            /* add as learner, promoted when caught up */
        } conf;
        struct {
            uint64_t index;
            sy_digest digest;    /* state digest after applying index */
        } applied;
        struct {
            uint64_t index;      /* the installed snapshot's index */
            const sy_session_rec *recs;  /* borrowed for the call */
            size_t n;
        } sessions;
    } u;
} sy_input;

typedef struct {
    uint32_t to;
    sy_msg msg;
    /* The engine vouches that this message does not depend on anything in
     * this ready's step 1, so the host may send it before (in parallel
     * with) the durable write instead of after it. Raft's leader marks its
     * AppendEntries so (thesis 10.2.1: the leader may write its own log in
     * parallel with replicating it; it counts itself toward commit only
     * once its write is durable). Votes, acks and promises never are. */
    bool early;
} sy_outmsg;

typedef struct {
    sy_entry entry;
    /* Protocol commit evidence for the entry's ledger block. PBFT: the
     * commit certificate, from the engine. Raft and Multi-Paxos: empty, and
     * `attest` names the tag ("SYRC", "SYPX") of the node's own signed
     * commit record (core/evidence.h), which the host signs with the node's
     * key when it writes the block. The record depends on nothing but the
     * entry and the key, so the host may sign it after the acknowledgement
     * or reply this commit leads to has left (cmd/synod/runtime.c,
     * "Commit records after the answers"); it must be in the block before
     * the block is durable. NULL: nothing to sign. */
    sy_bytes evidence;
    const char *attest;   /* static string or NULL */
} sy_committed;

typedef struct {
    uint64_t read_id;
    uint64_t index;       /* serve once applied >= index */
    int status;           /* SY_OK, or SY_ENOTLEADER / SY_ETIMEOUT */
} sy_read_state;

typedef struct {
    uint32_t client_id;
    uint64_t req_no;
    int status;           /* SY_ENOTLEADER, SY_EFULL, ... */
    uint32_t leader;      /* hint, SY_NO_NODE if unknown */
} sy_reject;

typedef struct sy_ready {
    /* 1. persist, in one durable write, before anything in 2. */
    bool hardstate_dirty;
    sy_bytes hardstate;
    /* The hard state changed only in what a crash may lose without harm
     * (Raft and Paxos: the commit index, which a restarted node learns
     * again): write it with the rest, but it needs no sync of its own --
     * a host may leave such a write, with the applying of rd.committed,
     * uncommitted until its next durable write (the daemon's held apply,
     * cmd/synod/runtime.c; etcd's MustSync is the same rule). Its effects
     * may go out as if it were durable. Engines that leave it false get
     * every hard state synced. */
    bool hardstate_lazy;
    /* Engine records, always synced: first every stored record with a key
     * below records_drop_below goes (0 = none), then records[] are put in
     * order (an empty value deletes). */
    uint64_t records_drop_below;
    const sy_record *records;
    size_t n_records;
    uint64_t truncate_from;      /* 0 = none; else drop entries >= this */
    const sy_entry *entries;
    size_t n_entries;
    bool snapshot_install;       /* replace state machine with snap_data */
    uint64_t snap_index, snap_term;
    sy_members snap_members;
    sy_bytes snap_data;
    uint64_t compact_to;         /* storage may drop entries <= this (0 = none) */
    /* 2. send */
    const sy_outmsg *msgs;
    size_t n_msgs;
    /* 3. apply and answer */
    const sy_committed *committed;
    size_t n_committed;
    const sy_read_state *reads;
    size_t n_reads;
    const sy_reject *rejects;
    size_t n_rejects;
    /* PBFT: once applied through this index, step SY_IN_SNAPSHOT (a
     * deterministic snapshot; its sy_hash is the checkpoint digest) or
     * SY_IN_APPLIED for it (0 = none). Other engines leave it 0. */
    uint64_t checkpoint_index;
} sy_ready;

/* SY_ROLE_REJOINING is never an engine's role: a node's status reply
 * (synodctl status) names a follower that is still rejoining
 * (sy_engine_status.rejoining) so, since the reply has no field of its
 * own for it (0.16 clients decode exactly its 15 fields; they print
 * "unknown" for this value). */
enum sy_role { SY_ROLE_FOLLOWER = 0, SY_ROLE_CANDIDATE, SY_ROLE_PRECANDIDATE,
               SY_ROLE_LEADER, SY_ROLE_LEARNER, SY_ROLE_PRIMARY, SY_ROLE_BACKUP,
               SY_ROLE_VIEW_CHANGE, SY_ROLE_REJOINING };
const char *sy_role_name(int role);

typedef struct sy_engine_status {
    uint8_t role;
    uint64_t term;               /* term / ballot round / view */
    uint32_t leader;             /* SY_NO_NODE if unknown */
    uint64_t last_index;
    uint64_t commit_index;
    uint64_t snap_index;         /* last snapshot / stable checkpoint */
    uint64_t leader_changes;     /* leaders this node came to know since it
                                    started: Raft one per term, Multi-Paxos
                                    one per change of leader, PBFT one per
                                    view change (each view, a new primary) */
    uint64_t evidence;           /* misbehaviour evidence held (PBFT) */
    uint32_t evidence_from;      /* the replica the latest of it is against
                                    (PBFT; meaningful once evidence > 0) */
    uint64_t bad_sigs;           /* peer messages whose inner signed statements
                                    did not verify (PBFT): a faulty sender */
    uint32_t bad_sig_from;       /* the sender of the latest such message */
    uint64_t dissent;            /* PBFT: prepares and commits, each verified,
                                    whose digest is not the one of the
                                    pre-prepare this replica accepted for
                                    their view and number. Not evidence: the
                                    voter or that view's primary (which may
                                    have sent two pre-prepares) is faulty */
    uint32_t dissent_from;       /* the voter of the latest one */
    uint32_t dissent_primary;    /* the primary of its view */
    uint64_t dropped;            /* inputs dropped by limits (counted) */
    bool rejoining;              /* cfg.rejoin and not caught up yet: once
                                    false it stays false, and what it caught
                                    up to is durable (Raft) */
} sy_engine_status;

/* How often an engine named each replica as faulty since it started, by
 * replica id (sy_engine_status has the latest of each kind only): the
 * replica behind evidence, the sender of statements that did not verify,
 * the voter of votes against an accepted pre-prepare (its primary is not
 * counted: an equivocating primary makes correct voters dissent, so these
 * counts name the voters and the operator compares them across replicas,
 * docs/pbft.md "Evidence of misbehaviour"). */
typedef struct sy_accused {
    uint64_t evidence[SY_MAX_NODES];
    uint64_t bad_sigs[SY_MAX_NODES];
    uint64_t dissent[SY_MAX_NODES];
} sy_accused;

typedef struct sy_engine_ops {
    const char *name;            /* "raft", "paxos", "pbft" */
    /* Creates an engine; cfg and boot are borrowed for the call only except
     * where sy_engine_cfg says otherwise. */
    int (*create)(const sy_engine_cfg *cfg, const sy_engine_boot *boot, void **out);
    void (*destroy)(void *e);
    /* Returns SY_OK, or an error for an input it drops (counted); SY_EFATAL
     * means the engine found its own state impossible: the host must stop. */
    int (*step)(void *e, const sy_input *in);
    /* Fills *rd with effects accumulated so far (may be all empty). */
    void (*ready)(void *e, sy_ready *rd);
    /* Host finished with the last ready: its persistence is durable. */
    void (*advance)(void *e, uint64_t now_ms);
    void (*status)(void *e, sy_engine_status *st);
    /* Earliest time the engine wants a tick (0 = no timer). */
    uint64_t (*next_deadline)(void *e);
    /* true: step() is allowed between ready() and advance() (see top). */
    bool pipelined;
    /* Fills *out (sy_accused); NULL for an engine that names nobody
     * (Raft, Multi-Paxos: crash faults only). */
    void (*accused)(void *e, sy_accused *out);
} sy_engine_ops;

/* The term a committed entry is reported with (sy_committed), from the
 * entry as stored: Raft's and PBFT's stored term; Multi-Paxos stores the
 * ballot it accepted the slot in and reports the value's origin ballot,
 * carried in the first 8 bytes of its data (cft/paxos/paxos.h). A host
 * that labels snapshots from what it boots with needs the reported one. */
uint64_t sy_engine_committed_term(const sy_engine_ops *ops, const sy_entry *stored);

/* Registry (cmd/engines.c): NULL if unknown. */
const sy_engine_ops *sy_engine_lookup(const char *protocol);

#endif
