/* Growable byte buffer used by encoders. */
#ifndef SY_BUF_H
#define SY_BUF_H

#include <stddef.h>
#include <stdint.h>

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
/* Hand the bytes to the caller (free()); buffer becomes empty. */
uint8_t *sy_buf_take(sy_buf *b, size_t *len);

#endif
