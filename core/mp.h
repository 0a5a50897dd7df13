/* Strict msgpack reading (a bounds-checked cursor) and writing (msgpack-c's
 * packer into an sy_buf). The reader never allocates, never reads past the
 * end, and rejects any type other than the one asked for: it is what makes
 * the envelope decoder strict. Counts are checked against the bytes left,
 * so a header claiming 2^32 elements cannot make anyone allocate for them. */
#ifndef SY_MP_H
#define SY_MP_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <msgpack.h>
#include "core/buf.h"

typedef struct {
    const uint8_t *p, *end;
    int err;              /* sticky first error (enum sy_err) */
} sy_mp_reader;

void sy_mp_reader_init(sy_mp_reader *r, const uint8_t *p, size_t len);
/* Each returns SY_OK or a sticky error; after an error every call fails. */
int sy_mp_array(sy_mp_reader *r, uint32_t *n);
int sy_mp_array_exact(sy_mp_reader *r, uint32_t n);
/* An array of a or of b elements (a message with optional trailing
 * fields); *n says which. SY_EFIELD for any other length. */
int sy_mp_array_either(sy_mp_reader *r, uint32_t a, uint32_t b, uint32_t *n);
int sy_mp_uint(sy_mp_reader *r, uint64_t max, uint64_t *v);
int sy_mp_u32(sy_mp_reader *r, uint32_t *v);
int sy_mp_u8(sy_mp_reader *r, uint8_t *v);
int sy_mp_bool(sy_mp_reader *r, bool *v);
/* bin, borrowed; fails with SY_ETOOBIG over max. */
int sy_mp_bin(sy_mp_reader *r, uint32_t max, const uint8_t **p, uint32_t *len);
int sy_mp_str(sy_mp_reader *r, uint32_t max, const char **p, uint32_t *len);
/* SY_OK only if every byte was consumed. */
int sy_mp_done(sy_mp_reader *r);
static inline size_t sy_mp_left(const sy_mp_reader *r) { return (size_t)(r->end - r->p); }

/* Writer: a msgpack_packer whose output goes to buf. */
void sy_mp_writer_init(msgpack_packer *pk, sy_buf *buf);
void sy_mp_put_bin(msgpack_packer *pk, const void *p, size_t len);
void sy_mp_put_str(msgpack_packer *pk, const char *s, size_t len);

#endif
