/* Paxos message codec: every type round-trips, and the decoder refuses what
 * the engine must never see (out-of-order entries, a value proposed under
 * someone else's ballot, oversized arrays, trailing bytes). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "core/mp.h"
#include "core/msg.h"
#include "crypto/sy_err.h"

static void roundtrip(const sy_msg *in, sy_msg *out)
{
    sy_buf b;
    sy_buf_init(&b);
    assert_int_equal(sy_msg_encode_body(in, &b), SY_OK);
    /* decoded bytes borrow from the buffer: keep it alive via a copy */
    static uint8_t keep[4096];
    assert_true(b.len <= sizeof keep);
    memcpy(keep, b.p, b.len);
    assert_int_equal(sy_msg_decode_body(in->type, keep, b.len, out), SY_OK);
    sy_buf_free(&b);
}

static int decode_of(const sy_msg *in)
{
    sy_buf b;
    sy_msg out;
    sy_buf_init(&b);
    assert_int_equal(sy_msg_encode_body(in, &b), SY_OK);
    int rc = sy_msg_decode_body(in->type, b.p, b.len, &out);
    if (rc == SY_OK)
        sy_msg_free(&out);
    sy_buf_free(&b);
    return rc;
}

static void test_every_paxos_message_round_trips(void **state)
{
    (void)state;
    sy_entry ents[2] = {
        { 5, 65, SY_ENTRY_NORMAL, { (const uint8_t *)"abc", 3 } },
        { 6, 65, SY_ENTRY_NOOP, { NULL, 0 } },
    };
    sy_msg m, o;

    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_PREPARE;
    m.u.paxos.prepare = (sy_paxos_prepare){ 130, 7, false };
    roundtrip(&m, &o);
    assert_int_equal(o.u.paxos.prepare.ballot, 130);
    assert_int_equal(o.u.paxos.prepare.from_slot, 7);
    assert_false(o.u.paxos.prepare.probe);
    m.u.paxos.prepare.probe = true;
    roundtrip(&m, &o);
    assert_true(o.u.paxos.prepare.probe);

    /* a probe's answer carries no entries */
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_PROMISE;
    m.u.paxos.promise = (sy_paxos_promise){ .ballot = 130, .probe = true, .ok = true,
                                            .promised = 66, .from_slot = 5 };
    roundtrip(&m, &o);
    assert_true(o.u.paxos.promise.probe);
    assert_true(o.u.paxos.promise.ok);
    assert_int_equal(o.u.paxos.promise.promised, 66);
    sy_msg_free(&o);

    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_PROMISE;
    m.u.paxos.promise = (sy_paxos_promise){ .ballot = 130, .ok = true, .promised = 130,
                                            .commit = 4, .snap_index = 2, .from_slot = 5,
                                            .next_slot = 9, .n_entries = 2, .entries = ents };
    roundtrip(&m, &o);
    assert_true(o.u.paxos.promise.ok);
    assert_int_equal(o.u.paxos.promise.next_slot, 9);
    assert_int_equal(o.u.paxos.promise.n_entries, 2);
    assert_int_equal(o.u.paxos.promise.entries[1].index, 6);
    assert_memory_equal(o.u.paxos.promise.entries[0].data.p, "abc", 3);
    sy_msg_free(&o);
    assert_null(o.u.paxos.promise.entries);

    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_ACCEPT;
    m.u.paxos.accept = (sy_paxos_accept){ 65, 4, 9, 2, ents };
    roundtrip(&m, &o);
    assert_int_equal(o.u.paxos.accept.chosen, 4);
    assert_int_equal(o.u.paxos.accept.read_ctx, 9);
    assert_int_equal(o.u.paxos.accept.entries[1].type, SY_ENTRY_NOOP);
    sy_msg_free(&o);

    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_ACCEPTED;
    m.u.paxos.accepted = (sy_paxos_accepted){ 65, false, 130, 5, 2, 4, 9 };
    roundtrip(&m, &o);
    assert_false(o.u.paxos.accepted.ok);
    assert_int_equal(o.u.paxos.accepted.promised, 130);
    assert_int_equal(o.u.paxos.accepted.count, 2);

    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_CHOSEN;
    m.u.paxos.chosen = (sy_paxos_chosen){ 65, 6, 2, ents };
    roundtrip(&m, &o);
    assert_int_equal(o.u.paxos.chosen.n_entries, 2);
    sy_msg_free(&o);

    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_LEARN;
    m.u.paxos.learn.from_slot = 3;
    roundtrip(&m, &o);
    assert_int_equal(o.u.paxos.learn.from_slot, 3);

    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_SNAPSHOT;
    m.u.paxos.snap = (sy_paxos_snapshot){ 65, 10, 65, 0, true, { (const uint8_t *)"S", 1 } };
    roundtrip(&m, &o);
    assert_int_equal(o.u.paxos.snap.index, 10);
    assert_true(o.u.paxos.snap.done);

    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_SNAPSHOT_ACK;
    m.u.paxos.snap_ack = (sy_paxos_snapshot_ack){ 10, 1, true, 10 };
    roundtrip(&m, &o);
    assert_int_equal(o.u.paxos.snap_ack.commit, 10);

    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_TAKEOVER;
    m.u.paxos.takeover.ballot = 130;
    roundtrip(&m, &o);
    assert_int_equal(o.u.paxos.takeover.ballot, 130);
    m.u.paxos.takeover.ballot = 0;   /* no ballot is led at 0 */
    assert_int_equal(decode_of(&m), SY_EFIELD);

    assert_string_equal(sy_msg_type_name(SY_MSG_PAXOS_TAKEOVER), "paxos_takeover");
    assert_string_equal(sy_msg_type_name(SY_MSG_PAXOS_PROMISE), "paxos_promise");
    assert_string_equal(sy_msg_type_name(39), "unknown");
}

static void test_decoder_refuses_malformed_paxos_bodies(void **state)
{
    (void)state;
    sy_entry gap[2] = {
        { 5, 65, SY_ENTRY_NORMAL, { (const uint8_t *)"a", 1 } },
        { 7, 65, SY_ENTRY_NORMAL, { (const uint8_t *)"b", 1 } },
    };
    sy_msg m;
    memset(&m, 0, sizeof m);
    /* accept entries must be consecutive... */
    m.type = SY_MSG_PAXOS_ACCEPT;
    m.u.paxos.accept = (sy_paxos_accept){ 65, 0, 0, 2, gap };
    assert_int_equal(decode_of(&m), SY_EFIELD);
    /* ...and proposed under the message's own ballot */
    m.u.paxos.accept = (sy_paxos_accept){ 66, 0, 0, 1, gap };
    assert_int_equal(decode_of(&m), SY_EFIELD);
    /* a promise may skip slots but not go backwards */
    sy_entry back[2] = { gap[1], gap[0] };
    m.type = SY_MSG_PAXOS_PROMISE;
    m.u.paxos.promise = (sy_paxos_promise){ .ballot = 65, .ok = true, .from_slot = 1,
                                            .n_entries = 2, .entries = gap };
    assert_int_equal(decode_of(&m), SY_OK);
    m.u.paxos.promise.entries = back;
    assert_int_equal(decode_of(&m), SY_EFIELD);
    /* an entry below the page's first slot */
    m.u.paxos.promise.entries = gap;
    m.u.paxos.promise.from_slot = 6;
    assert_int_equal(decode_of(&m), SY_EFIELD);
    /* a probe's answer reports no accepted values */
    m.u.paxos.promise.from_slot = 1;
    m.u.paxos.promise.probe = true;
    assert_int_equal(decode_of(&m), SY_EFIELD);
    /* chosen values above the sender's own commit are not chosen */
    m.type = SY_MSG_PAXOS_CHOSEN;
    m.u.paxos.chosen = (sy_paxos_chosen){ 65, 5, 1, gap };
    assert_int_equal(decode_of(&m), SY_OK);
    m.u.paxos.chosen.commit = 4;
    assert_int_equal(decode_of(&m), SY_EFIELD);
    /* ballot 0 is "none": never prepared */
    m.type = SY_MSG_PAXOS_PREPARE;
    m.u.paxos.prepare = (sy_paxos_prepare){ 0, 1, false };
    assert_int_equal(decode_of(&m), SY_EFIELD);

    /* trailing bytes and wrong arity */
    uint8_t body[] = { 0x92, 0x41, 0x01, 0x00 };
    sy_msg out;
    assert_int_equal(sy_msg_decode_body(SY_MSG_PAXOS_PREPARE, body, 3, &out), SY_OK);
    assert_false(out.u.paxos.prepare.probe);
    assert_int_equal(sy_msg_decode_body(SY_MSG_PAXOS_PREPARE, body, 4, &out), SY_ETRAILING);
    /* the trailing probe flag is sent only when set: one encoding each */
    uint8_t probe[] = { 0x93, 0x41, 0x01, 0xc3 };
    assert_int_equal(sy_msg_decode_body(SY_MSG_PAXOS_PREPARE, probe, 4, &out), SY_OK);
    assert_true(out.u.paxos.prepare.probe);
    probe[3] = 0xc2;
    assert_int_equal(sy_msg_decode_body(SY_MSG_PAXOS_PREPARE, probe, 4, &out), SY_EFIELD);
    uint8_t arity[] = { 0x94, 0x41, 0x01, 0xc3, 0x01 };
    assert_int_equal(sy_msg_decode_body(SY_MSG_PAXOS_PREPARE, arity, 5, &out), SY_EFIELD);
    assert_int_equal(sy_msg_decode_body(39, arity, 5, &out), SY_EMSGTYPE);
}

static void test_decoder_refuses_too_many_entries(void **state)
{
    (void)state;
    /* header claims SY_MAX_ENTRIES_PER_MSG + 1 entries, backed by enough
     * bytes that only the limit can refuse it */
    size_t n = SY_MAX_ENTRIES_PER_MSG + 1;
    size_t len = 16 + n * 8;
    uint8_t *buf = calloc(1, len);
    size_t o = 0;
    buf[o++] = 0x94;
    buf[o++] = 0x41;
    buf[o++] = 0x00;
    buf[o++] = 0x00;
    buf[o++] = 0xdc;
    buf[o++] = (uint8_t)(n >> 8);
    buf[o++] = (uint8_t)n;
    sy_msg out;
    assert_int_equal(sy_msg_decode_body(SY_MSG_PAXOS_ACCEPT, buf, len, &out), SY_ETOOBIG);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_paxos_message_round_trips),
        cmocka_unit_test(test_decoder_refuses_malformed_paxos_bodies),
        cmocka_unit_test(test_decoder_refuses_too_many_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
