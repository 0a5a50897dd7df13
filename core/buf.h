/* Growable byte buffer used by encoders, and the growth rule of the
 * engines' arrays (sy_grow). */
#ifndef SY_BUF_H
#define SY_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct sy_buf {
    uint8_t *p;
    size_t len, cap;
    int err;          /* sticky: first allocation failure (SY_ENOMEM) */
} sy_buf;

void sy_buf_init(sy_buf *b);
void sy_buf_free(sy_buf *b);
void sy_buf_reset(sy_buf *b);          /* len = 0, keeps memory */
int sy_buf_reserve(sy_buf *b, size_t extra);
int sy_buf_append(sy_buf *b, const void *data, size_t len);
/* Appends printf-formatted text, whole however long (no terminating NUL
 * counted in len). SY_ENOMEM (sticky) or SY_EINVAL for a bad format. */
int sy_buf_printf(sy_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the bytes to the caller (free()); buffer becomes empty. */
uint8_t *sy_buf_take(sy_buf *b, size_t *len);

/* Grows *ptr, an array of *cap elements of elsz bytes, to hold need (at
 * least doubling). SY_OK, or SY_ENOMEM with the array as it was. */
int sy_grow(void **ptr, size_t *cap, size_t need, size_t elsz);

/* Bounded reader of big-endian fixed-width fields (storage formats: KV
 * snapshot blobs, write-ahead log records). A read past the end sets bad,
 * returns NULL / 0, and every later read fails too. */
typedef struct sy_rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
} sy_rd;

static inline const uint8_t *sy_rd_take(sy_rd *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p + r->off;
    r->off += n;
    return q;
}

static inline uint8_t sy_rd_u8(sy_rd *r)
{
    const uint8_t *q = sy_rd_take(r, 1);
    return q ? q[0] : 0;
}

static inline uint32_t sy_rd_u32(sy_rd *r)
{
    const uint8_t *q = sy_rd_take(r, 4);
    return q ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3] : 0;
}

static inline uint64_t sy_rd_u64(sy_rd *r)
{
    const uint8_t *q = sy_rd_take(r, 8);
    uint64_t v = 0;
    for (int i = 0; q && i < 8; i++)
        v = v << 8 | q[i];
    return v;
}

static inline size_t sy_rd_left(const sy_rd *r) { return r->bad ? 0 : r->len - r->off; }

#endif
