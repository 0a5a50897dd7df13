/* libFuzzer target: one Byzantine replica against three correct PBFT
 * replicas (n = 4, f = 1), in process (tests/unit/test_pbft_harness.h).
 * The Byzantine one is node 3, a backup in view 0; fuzz_pbft_primary
 * builds this file with node 0, the primary of view 0, so the fuzzer can
 * also send pre-prepares (equivocate, skip, reorder) until the others
 * change view. Below, "node 3" means whichever it is.
 *
 * Node 3's key is the attacker's: any statement or envelope it signs is
 * valid, whatever the bytes (its signatures verify unless the first byte is
 * 0xff, so both outcomes stay reachable). Nodes 0-2 run the real engine; the
 * fuzzer schedules their network (deliver, drop, reorder by dropping), their
 * clocks, client requests, crash-restarts from their durable state and
 * operators' hand-offs (SY_IN_TRANSFER), and speaks for node 3: arbitrary
 * message bodies, and the correct replicas' own messages replayed as node
 * 3 with bytes flipped. Signatures of the correct replicas cannot be
 * forged (the simulator's keyed-hash scheme).
 *
 * A crash, a sanitizer report, an engine that calls its own state
 * impossible (SY_EFATAL), two correct replicas executing different
 * batches at one sequence number, or a correct replica naming another
 * correct one as faulty (evidence, a statement that does not verify, or a
 * vote against its pre-prepare whose voter and primary are both correct)
 * is a finding: a Byzantine replica must not be able to cause any of them
 * (BRIEF.md, "What it promises"). */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "../unit/test_pbft_harness.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The Byzantine replica: 3, a backup, by default; fuzz_pbft_primary.c
 * builds this file with BYZ 0, the primary of view 0. */
#ifndef BYZ
#define BYZ 3u
#endif

/* The k-th correct replica, k in 0..2. */
static uint32_t correct(uint32_t k)
{
    return k < BYZ ? k : k + 1;
}

static sy_verifier real_ver;
static sy_pubkey byz_key;

static bool byz_verify(void *ctx, const sy_pubkey *pk, const void *m, size_t l, const sy_sig *s)
{
    if (!memcmp(pk->b, byz_key.b, sizeof pk->b))
        return s->b[0] != 0xff;
    return real_ver.verify(ctx, pk, m, l, s);
}


/* No correct replica names a correct one: whoever the latest accusation of
 * each kind names is node 3 (for a dissenting vote: the voter or the
 * primary of its view). Checked after every operation of the input. */
static bool names_a_correct_replica(harness *h)
{
    for (uint32_t k = 0; k < 3; k++) {
        sy_engine_status st = h_status(h, correct(k));
        if (st.evidence && st.evidence_from != BYZ)
            return true;
        if (st.bad_sigs && st.bad_sig_from != BYZ)
            return true;
        if (st.dissent && st.dissent_from != BYZ && st.dissent_primary != BYZ)
            return true;
    }
    return false;
}

/* Signs m as node 3 and steps it into correct replica `to` through the real
 * envelope decoder. */
static void inject(harness *h, uint32_t to, const sy_msg *m)
{
    sy_buf b;
    sy_env env;
    sy_env_opts o = { .cluster_id = H_CLUSTER, .dir = &h->nodes_dir, .verifier = &h->ver };
    sy_buf_init(&b);
    if (sy_env_encode(H_CLUSTER, BYZ, m, &h->sg[BYZ], &b) == SY_OK &&
        sy_env_decode(&o, b.p, b.len, &env, NULL) == SY_OK) {
        sy_input in = { .kind = SY_IN_MSG, .now_ms = h->now };
        in.u.msg.from = BYZ;
        in.u.msg.msg = &env.msg;
        in.u.msg.raw = b.p;
        in.u.msg.raw_len = b.len;
        h_step(h, to, &in);
        sy_env_free(&env);
    }
    sy_buf_free(&b);
}

/* Decodes body as a message of type t from node 3 and injects it. */
static void inject_body(harness *h, uint32_t to, uint8_t t, const uint8_t *body, size_t len)
{
    sy_msg m;
    if (sy_msg_decode_body(t, body, len, &m) != SY_OK)
        return;
    inject(h, to, &m);
    sy_msg_free(&m);
}

/* Node 3 replays queued message k (a correct replica's) as its own, with
 * up to 8 bytes of its body changed and possibly another type. */
static void replay(harness *h, input *in)
{
    if (!h->nq) {
        take8(in);
        return;
    }
    h_msg *q = &h->q[take16(in) % h->nq];
    uint32_t to = correct(take8(in) % 3u);
    uint8_t t = take8(in);
    unsigned flips = take8(in) % 9;
    sy_env env;
    sy_env_opts o = { .cluster_id = H_CLUSTER, .dir = &h->nodes_dir, .verifier = &h->ver };
    if (sy_env_decode(&o, q->buf, q->len, &env, NULL) != SY_OK)
        return;
    sy_buf body;
    sy_buf_init(&body);
    if (sy_msg_encode_body(&env.msg, &body) == SY_OK && body.len) {
        for (unsigned i = 0; i < flips; i++) {
            uint16_t at = take16(in);
            body.p[at % body.len] ^= take8(in);
        }
        /* t < 0x80 keeps the type; otherwise it picks one */
        inject_body(h, to, t < 0x80 ? env.type : (uint8_t)(t % SY_MSG_TYPE_MAX), body.p, body.len);
    }
    sy_buf_free(&body);
    sy_env_free(&env);
}

/* Delivers the first k queued messages (to correct replicas; node 3's
 * inbox is read by nobody). */
static void deliver_some(harness *h, size_t k)
{
    if (k > h->nq)
        k = h->nq;
    if (!k)
        return;
    for (size_t i = 0; i < k; i++)
        if (h->q[i].to != BYZ)
            h_deliver(h, &h->q[i]);
    for (size_t i = 0; i < k; i++)
        free(h->q[i].buf);
    memmove(h->q, h->q + k, (h->nq - k) * sizeof *h->q);
    h->nq -= k;
}

static void process_all(harness *h)
{
    for (uint32_t k = 0; k < 3; k++)
        h_process(h, correct(k));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    harness *h = h_new(4, 1, false, 4, NULL);
    h->down[BYZ] = true;          /* its engine is replaced by the fuzzer */
    real_ver = h->ver;
    byz_key = h->pk[BYZ];
    h->ver.verify = byz_verify;   /* the engines hold &h->ver */

    input in = { data, size };
    for (int ops = 0; in.n && ops < 400; ops++) {
        uint8_t op = take8(&in);
        switch (op % 8) {
        case 0: { /* client request, to the correct replicas in a mask */
            uint32_t c = take8(&in) % H_CLIENTS;
            uint32_t bits = take8(&in) & 7u, mask = 0;
            for (uint32_t k = 0; k < 3; k++)
                if (bits >> k & 1u)
                    mask |= 1u << correct(k);
            h_submit(h, c, mask);
            break;
        }
        case 1: /* time passes: timers fire */
            h->now += 1 + take8(&in) * 4u;
            for (uint32_t k = 0; k < 3; k++) {
                sy_input t = { .kind = SY_IN_TICK, .now_ms = h->now };
                h_step(h, correct(k), &t);
            }
            break;
        case 2: /* the network delivers k messages */
            process_all(h);
            deliver_some(h, take8(&in) % 16u + 1);
            break;
        case 3: { /* it loses the first one */
            process_all(h);
            deliver_some(h, 0);
            if (h->nq) {
                free(h->q[0].buf);
                memmove(h->q, h->q + 1, (h->nq - 1) * sizeof *h->q);
                h->nq--;
            }
            break;
        }
        case 4: case 5: { /* node 3 sends any body of any type */
            uint32_t to = correct(take8(&in) % 3u);
            uint8_t t = take8(&in);
            size_t len = take16(&in) % 4096u;
            if (len > in.n)
                len = in.n;
            inject_body(h, to, t % SY_MSG_TYPE_MAX, in.p, len);
            in.p += len;
            in.n -= len;
            break;
        }
        case 6: /* node 3 replays a correct replica's message, altered */
            process_all(h);
            replay(h, &in);
            break;
        case 7: { /* a correct replica crashes and restarts from its disk,
                   * or (a quarter of the time) its operator asks it to hand
                   * its view on, as synod does on SIGTERM (only a primary
                   * accepts) */
            uint8_t b = take8(&in);
            if ((b & 0xc0u) == 0xc0u) {
                sy_input t = { .kind = SY_IN_TRANSFER, .now_ms = h->now };
                t.u.transfer.target = SY_NO_NODE;
                h_step(h, correct(b % 3u), &t);
            } else if (h_restart(h, correct(b % 3u))) {
                h->violations++;
            }
            break;
        }
        }
        if (h->violations || names_a_correct_replica(h))
            __builtin_trap();
    }
    /* let the correct replicas settle: a Byzantine peer must not have
     * made them disagree */
    h_run_for(h, 2000, 100);
    if (h->violations || names_a_correct_replica(h))
        __builtin_trap();
    h_free(h);
    return 0;
}
