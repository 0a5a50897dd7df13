/* libFuzzer target: an engine booting from damaged durable state. The hard
 * state, the snapshot blob and the log entries a host hands to create()
 * come from the disk, which LMDB does not checksum: a flipped bit there must
 * give an error the daemon reports (it refuses to start), never a crash or
 * an out-of-bounds read. When create() accepts the bytes, the engine must
 * also survive a tick and a ready/advance round.
 *
 * Input: u8 protocol (raft, paxos, pbft) | u8 flags | [u64 snapshot index,
 * with flag 0x80] | u16 hard state length
 * | hard state | u16 snapshot length | snapshot | then log entries, each
 * u8 type | u16 length | data, indices consecutive above the snapshot. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "core/engine.h"
#include "core/envelope.h"
#include "crypto/crypto.h"
#include "crypto/sy_err.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NODES 4u
#define MAX_ENTRIES 64u

static sy_simsig *ss;
static sy_signer sg[NODES];
static sy_pubkey pk[NODES];
static sy_verifier ver;

static void setup(void)
{
    if (ss)
        return;
    if (sy_crypto_init() || sy_simsig_new(NODES, &ss))
        abort();
    for (uint32_t i = 0; i < NODES; i++) {
        uint8_t seed[SY_SEED_LEN] = { (uint8_t)(i + 1), 0x5b };
        if (sy_simsig_add(ss, seed, &sg[i]))
            abort();
        pk[i] = sg[i].pub;
    }
    sy_verifier_simsig(&ver, ss);
}


static sy_bytes take_bytes(input *in, size_t len)
{
    if (len > in->n)
        len = in->n;
    sy_bytes b = { in->p, (uint32_t)len };
    in->p += len;
    in->n -= len;
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const protos[] = { "raft", "paxos", "pbft" };
    setup();
    input in = { data, size };
    const sy_engine_ops *ops = sy_engine_lookup(protos[take8(&in) % 3]);
    if (!ops)
        abort();
    uint8_t flags = take8(&in);
    /* flag 0x80: a snapshot index of any size follows (damaged metadata can
     * name one near 2^64); else it is the 4 bits below */
    uint64_t big_index = 0;
    if (flags & 0x80u)
        for (int i = 0; i < 8; i++)
            big_index = big_index << 8 | take8(&in);
    bool pbft = !strcmp(ops->name, "pbft");

    sy_engine_cfg c;
    memset(&c, 0, sizeof c);
    c.self = flags & 1u;
    c.n = pbft ? 4 : 3;
    c.f = 1;
    strcpy(c.cluster_id, "fuzz");
    c.heartbeat_ms = 50;
    c.election_min_ms = 150;
    c.election_max_ms = 300;
    c.request_timeout_ms = 500;
    c.batch_max = 8;
    c.batch_bytes_max = 1 << 20;
    c.max_inflight = 4;
    c.max_pending = 64;
    c.snapshot_threshold = 64;
    c.checkpoint_interval = 4;
    c.watermark_window = 8;
    c.node_keys = pk;
    c.signer = &sg[c.self];
    c.verifier = &ver;
    c.rng_seed = 1;

    sy_engine_boot boot;
    sy_ckpt_snap ckpts[2];
    memset(&boot, 0, sizeof boot);
    boot.hardstate = take_bytes(&in, take16(&in));
    boot.snap_data = take_bytes(&in, take16(&in));
    if (boot.snap_data.len) {
        boot.snap_index = (flags & 0x80u) ? big_index : (flags >> 1) & 15u;
        boot.snap_term = (flags >> 5) & 3u;
        boot.snap_members.n_voters = c.n;
        for (uint32_t i = 0; i < c.n; i++)
            boot.snap_members.voters[i] = i;
        if (pbft && (flags & 0x40u)) {
            /* pending checkpoint snapshots (sy_txn_checkpoint_snapshot) one
             * and two checkpoints up, the same bytes: signed again at boot
             * when the log reaches them (wraps near 2^64 on purpose) */
            for (uint32_t i = 0; i < 2; i++) {
                ckpts[i].index = (boot.snap_index / 4u + 1u + i) * 4u;
                ckpts[i].data = boot.snap_data;
            }
            boot.ckpts = ckpts;
            boot.n_ckpts = 1u + ((flags >> 5) & 1u);
        }
    }
    /* engine records (PBFT keeps one per sequence number of its window),
     * keys ascending as storage hands them out */
    sy_record recs[8];
    size_t nr = take8(&in) % 8u;
    uint64_t key = 0;
    for (size_t i = 0; i < nr; i++) {
        key += take8(&in) % 5u;
        recs[i].key = key;
        recs[i].val = take_bytes(&in, take16(&in) % 2048u);
    }
    boot.records = recs;
    boot.n_records = nr;
    sy_entry ents[MAX_ENTRIES];
    size_t n = 0;
    while (in.n && n < MAX_ENTRIES) {
        sy_entry *e = &ents[n];
        memset(e, 0, sizeof *e);
        e->index = boot.snap_index + n + 1;
        e->term = 1 + (take8(&in) & 1u);
        e->type = take8(&in) % 4u;
        e->data = take_bytes(&in, take16(&in) % 2048u);
        n++;
    }
    boot.entries = ents;
    boot.n_entries = n;
    boot.applied = boot.snap_index;

    void *eng = NULL;
    if (ops->create(&c, &boot, &eng) == SY_OK) {
        sy_input t = { .kind = SY_IN_TICK, .now_ms = 10000 };
        (void)ops->step(eng, &t);
        sy_ready rd;
        memset(&rd, 0, sizeof rd);
        ops->ready(eng, &rd);
        ops->advance(eng, 10000);
        sy_engine_status st;
        ops->status(eng, &st);
        ops->destroy(eng);
    }
    return 0;
}
