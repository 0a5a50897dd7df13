#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "crypto/sy_err.h"

void sy_buf_init(sy_buf *b) { memset(b, 0, sizeof *b); }

void sy_buf_free(sy_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void sy_buf_reset(sy_buf *b)
{
    b->len = 0;
    b->err = 0;
}

int sy_buf_reserve(sy_buf *b, size_t extra)
{
    if (b->err)
        return b->err;
    if (extra > SIZE_MAX / 2 - b->len)
        return b->err = SY_ENOMEM;
    if (b->len + extra <= b->cap)
        return SY_OK;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra)
        ncap *= 2;
    uint8_t *np = realloc(b->p, ncap);
    if (!np)
        return b->err = SY_ENOMEM;
    b->p = np;
    b->cap = ncap;
    return SY_OK;
}

int sy_buf_printf(sy_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return SY_EINVAL;
    int rc = sy_buf_reserve(b, (size_t)n + 1);   /* vsnprintf writes the NUL */
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SY_OK;
}

int sy_buf_append(sy_buf *b, const void *data, size_t len)
{
    int rc = sy_buf_reserve(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    return SY_OK;
}

int sy_grow(void **ptr, size_t *cap, size_t need, size_t elsz)
{
    if (need <= *cap)
        return SY_OK;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*ptr, nc * elsz);
    if (!np)
        return SY_ENOMEM;
    *ptr = np;
    *cap = nc;
    return SY_OK;
}

uint8_t *sy_buf_take(sy_buf *b, size_t *len)
{
    uint8_t *p = b->p;
    *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}
