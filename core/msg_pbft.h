/* PBFT message bodies (types 40..59). Owned by the PBFT engine's author;
 * included by core/msg.h. Codec in core/msg_pbft.c; design in docs/pbft.md.
 *
 * Every protocol statement carries its own Ed25519 signature by the replica
 * that makes it (on top of the envelope signature), over the canonical
 * statement encoding of sy_pbft_stmt_bytes(). That makes prepared
 * certificates, checkpoint proofs, NEW-VIEW contents and commit evidence
 * transferable: anyone holding the node keys can check them.
 *
 * Ownership: as for every body (core/msg.h), bytes borrow from the decoded
 * buffer and arrays are allocated by the decoder; sy_msg_pbft_free frees
 * them (it is safe on a partially decoded message). */
#ifndef SY_MSG_PBFT_H
#define SY_MSG_PBFT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "crypto/crypto.h"

enum sy_pbft_type {
    SY_MSG_PBFT_PRE_PREPARE = 40, /* sy_pbft_stmt + batch (paper 4.2) */
    SY_MSG_PBFT_PREPARE = 41,     /* sy_pbft_stmt */
    SY_MSG_PBFT_COMMIT = 42,      /* sy_pbft_stmt */
    SY_MSG_PBFT_CHECKPOINT = 43,  /* sy_pbft_stmt, view = 0 (paper 4.3) */
    SY_MSG_PBFT_VIEW_CHANGE = 44, /* sy_pbft_view_change (paper 4.4) */
    SY_MSG_PBFT_NEW_VIEW = 45,    /* sy_pbft_new_view */
    SY_MSG_PBFT_FETCH = 46,       /* sy_pbft_batch, batch empty: "send me d" */
    SY_MSG_PBFT_BATCH = 47,       /* sy_pbft_batch: the batch whose hash is d */
    SY_MSG_PBFT_FORWARD = 48,     /* sy_pbft_forward: client request to primary */
    SY_MSG_PBFT_STATE_REQ = 49,   /* sy_pbft_state_req (TOCS 2002, 5.3.2) */
    SY_MSG_PBFT_STATE = 50,       /* sy_pbft_state */
};

/* Limits on what a peer may make us decode. */
#define SY_PBFT_MAX_WINDOW 4096u      /* log window L; certificates per VC */
#define SY_PBFT_MAX_STATE_ENTRIES 4096u

/* One signed vote inside a certificate: the statement fields are implied by
 * the certificate, so only who signed and the signature travel. */
typedef struct {
    uint32_t replica;
    sy_sig sig;
} sy_pbft_sig;

/* PRE-PREPARE / PREPARE / COMMIT / CHECKPOINT. sig covers
 * sy_pbft_stmt_bytes(cluster, type, view, seq, digest, replica). For a
 * CHECKPOINT, digest is the state digest and view is 0. batch is only
 * carried by PRE-PREPARE (the encoded batch whose sy_hash is digest; empty
 * with an all-zero digest for a null request). */
typedef struct {
    uint64_t view, seq;
    sy_digest digest;
    uint32_t replica;
    sy_sig sig;
    sy_bytes batch;
} sy_pbft_stmt;

/* Prepared certificate (paper 4.4 "P"): the primary's signed pre-prepare
 * and quorum-1 signed prepares from distinct backups, all for (view, seq,
 * digest). */
typedef struct {
    uint64_t view, seq;
    sy_digest digest;
    sy_sig pp_sig;
    uint32_t n_prepares;
    sy_pbft_sig *prepares;
} sy_pbft_pcert;

/* Stable checkpoint proof: quorum CHECKPOINT signatures for (seq, digest).
 * seq 0 is the initial state and needs no signatures. */
typedef struct {
    uint64_t seq;
    sy_digest digest;
    uint32_t n_sigs;
    sy_pbft_sig *sigs;
} sy_pbft_ckproof;

/* VIEW-CHANGE(new_view, stable checkpoint proof, prepared certificates
 * above it, replica). sig is a statement whose digest is the hash of
 * sy_pbft_vc_content(). */
typedef struct {
    uint64_t new_view;
    uint32_t replica;
    sy_pbft_ckproof ckpt;
    uint32_t n_pcerts;
    sy_pbft_pcert *pcerts;
    sy_sig sig;
} sy_pbft_view_change;

/* One pre-prepare of the NEW-VIEW's O set, signed by the new primary as
 * an ordinary PRE-PREPARE statement for (view, seq, digest). */
typedef struct {
    uint64_t seq;
    sy_digest digest;
    sy_sig sig;
} sy_pbft_opp;

/* NEW-VIEW(view, V = quorum of view-changes, O). sig is a statement whose
 * digest is the hash of sy_pbft_nv_content(). */
typedef struct {
    uint64_t view;
    uint32_t replica;
    uint32_t n_vcs;
    sy_pbft_view_change *vcs;
    uint32_t n_o;
    sy_pbft_opp *o;
    sy_sig sig;
} sy_pbft_new_view;

typedef struct {
    sy_digest digest;
    sy_bytes batch;
} sy_pbft_batch;

typedef struct {
    sy_bytes req;         /* the client's signed request envelope */
} sy_pbft_forward;

/* "Send me state past `have`": when the requester is assembling the
 * snapshot of checkpoint `seq` chunk by chunk, `chunk` is the next one it
 * lacks (both 0 otherwise). */
typedef struct {
    uint64_t have;        /* requester's last executed sequence number */
    uint64_t seq;         /* checkpoint whose snapshot it is fetching (0: any) */
    uint32_t chunk;       /* the chunk of that snapshot it wants */
} sy_pbft_state_req;

/* A committed log entry with its commit certificate: quorum COMMIT
 * signatures for (view, seq, digest) and the batch whose hash is digest. */
typedef struct {
    uint64_t view, seq;
    sy_digest digest;
    sy_bytes batch;
    uint32_t n_commits;
    sy_pbft_sig *commits;
} sy_pbft_centry;

/* State transfer reply: the responder's stable checkpoint (its proof, and
 * chunk `chunk` of the snapshot blob of snap_len bytes whose chunked digest
 * (core/chunks.h) is the checkpoint digest, with the chunk's audit path;
 * snap_len 0 = no snapshot) and committed entries above it, each with its
 * commit certificate. Entries come only with the snapshot's last chunk or
 * without a snapshot. */
typedef struct {
    sy_pbft_ckproof ckpt;
    sy_bytes snapshot;    /* the chunk's bytes */
    uint32_t n_entries;
    sy_pbft_centry *entries;
    uint64_t snap_len;    /* length of the whole snapshot blob */
    uint32_t chunk;       /* index of this chunk */
    uint32_t n_path;
    sy_digest *path;      /* audit path, leaf first (<= SY_CHUNKS_MAX_PATH) */
} sy_pbft_state;

typedef union sy_pbft_body {
    sy_pbft_stmt stmt;            /* 40..43 */
    sy_pbft_view_change vc;       /* 44 */
    sy_pbft_new_view nv;          /* 45 */
    sy_pbft_batch batch;          /* 46, 47 */
    sy_pbft_forward fwd;          /* 48 */
    sy_pbft_state_req state_req;  /* 49 */
    sy_pbft_state state;          /* 50 */
} sy_pbft_body;

/* Canonical statement bytes: msgpack [ "pbft", cluster_id, type, view,
 * seq, digest(bin 32), replica ]. Writes at most SY_PBFT_STMT_MAX bytes
 * into out and returns the length. */
#define SY_PBFT_STMT_MAX 160u
size_t sy_pbft_stmt_bytes(const char *cluster_id, uint8_t type, uint64_t view,
                          uint64_t seq, const sy_digest *digest, uint32_t replica,
                          uint8_t out[SY_PBFT_STMT_MAX]);

/* Digest of a view-change's / new-view's content (every field but sig),
 * over its canonical msgpack encoding. SY_ENOMEM possible. */
int sy_pbft_vc_content(const sy_pbft_view_change *vc, sy_digest *out);
int sy_pbft_nv_content(const sy_pbft_new_view *nv, sy_digest *out);

/* Commit evidence for the ledger (docs/pbft.md "Evidence"): msgpack
 * [ view, seq, digest(bin 32), [ [replica, sig(bin 64)]... ] ]. encode
 * appends to out; decode borrows nothing and allocates *sigs (free()). */
struct sy_buf;
int sy_pbft_evidence_encode(uint64_t view, uint64_t seq, const sy_digest *d,
                            const sy_pbft_sig *sigs, uint32_t n, struct sy_buf *out);
int sy_pbft_evidence_decode(const uint8_t *p, size_t len, uint64_t *view, uint64_t *seq,
                            sy_digest *d, sy_pbft_sig **sigs, uint32_t *n);

#endif
