#include <string.h>
#include "core/mp.h"
#include "crypto/sy_err.h"

void sy_mp_reader_init(sy_mp_reader *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->end = p + len;
    r->err = SY_OK;
}

static int fail(sy_mp_reader *r, int err)
{
    if (!r->err)
        r->err = err;
    return r->err;
}

static int need(sy_mp_reader *r, size_t n)
{
    if (r->err)
        return r->err;
    if ((size_t)(r->end - r->p) < n)
        return fail(r, SY_ETRUNC);
    return SY_OK;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int sy_mp_array(sy_mp_reader *r, uint32_t *n)
{
    if (need(r, 1))
        return r->err;
    uint8_t t = *r->p;
    uint64_t cnt;
    if ((t & 0xf0) == 0x90) {
        cnt = t & 0x0f;
        r->p += 1;
    } else if (t == 0xdc) {
        if (need(r, 3))
            return r->err;
        cnt = be(r->p + 1, 2);
        r->p += 3;
    } else if (t == 0xdd) {
        if (need(r, 5))
            return r->err;
        cnt = be(r->p + 1, 4);
        r->p += 5;
    } else {
        return fail(r, SY_ETYPE);
    }
    /* every element takes at least one byte */
    if (cnt > (uint64_t)(r->end - r->p))
        return fail(r, SY_ETRUNC);
    *n = (uint32_t)cnt;
    return SY_OK;
}

int sy_mp_array_either(sy_mp_reader *r, uint32_t a, uint32_t b, uint32_t *n)
{
    if (sy_mp_array(r, n))
        return r->err;
    if (*n != a && *n != b)
        return fail(r, SY_EFIELD);
    return SY_OK;
}

int sy_mp_array_exact(sy_mp_reader *r, uint32_t n)
{
    uint32_t got;
    if (sy_mp_array(r, &got))
        return r->err;
    if (got != n)
        return fail(r, SY_EFIELD);
    return SY_OK;
}

int sy_mp_uint(sy_mp_reader *r, uint64_t max, uint64_t *v)
{
    if (need(r, 1))
        return r->err;
    uint8_t t = *r->p;
    uint64_t x;
    int len;
    if (t <= 0x7f) {
        x = t;
        len = 1;
    } else if (t >= 0xcc && t <= 0xcf) {
        int w = 1 << (t - 0xcc);
        if (need(r, 1 + (size_t)w))
            return r->err;
        x = be(r->p + 1, w);
        len = 1 + w;
    } else {
        return fail(r, SY_ETYPE);
    }
    if (x > max)
        return fail(r, SY_EFIELD);
    r->p += len;
    *v = x;
    return SY_OK;
}

int sy_mp_u32(sy_mp_reader *r, uint32_t *v)
{
    uint64_t x = 0;
    int rc = sy_mp_uint(r, UINT32_MAX, &x);
    if (!rc)
        *v = (uint32_t)x;
    return rc;
}

int sy_mp_u8(sy_mp_reader *r, uint8_t *v)
{
    uint64_t x = 0;
    int rc = sy_mp_uint(r, UINT8_MAX, &x);
    if (!rc)
        *v = (uint8_t)x;
    return rc;
}

int sy_mp_bool(sy_mp_reader *r, bool *v)
{
    if (need(r, 1))
        return r->err;
    if (*r->p == 0xc2)
        *v = false;
    else if (*r->p == 0xc3)
        *v = true;
    else
        return fail(r, SY_ETYPE);
    r->p++;
    return SY_OK;
}

static int raw(sy_mp_reader *r, bool is_bin, uint32_t max, const uint8_t **p, uint32_t *len)
{
    if (need(r, 1))
        return r->err;
    uint8_t t = *r->p;
    uint64_t n;
    int hdr;
    if (is_bin && t >= 0xc4 && t <= 0xc6) {
        hdr = 1 << (t - 0xc4);
    } else if (!is_bin && (t & 0xe0) == 0xa0) {
        hdr = 0;
    } else if (!is_bin && t >= 0xd9 && t <= 0xdb) {
        hdr = 1 << (t - 0xd9);
    } else {
        return fail(r, SY_ETYPE);
    }
    if (need(r, 1 + (size_t)hdr))
        return r->err;
    n = hdr ? be(r->p + 1, hdr) : (uint64_t)(t & 0x1f);
    if (n > max)
        return fail(r, SY_ETOOBIG);
    if ((uint64_t)(r->end - r->p) - 1 - (uint64_t)hdr < n)
        return fail(r, SY_ETRUNC);
    *p = r->p + 1 + hdr;
    *len = (uint32_t)n;
    r->p += 1 + hdr + n;
    return SY_OK;
}

int sy_mp_bin(sy_mp_reader *r, uint32_t max, const uint8_t **p, uint32_t *len)
{
    return raw(r, true, max, p, len);
}

int sy_mp_str(sy_mp_reader *r, uint32_t max, const char **p, uint32_t *len)
{
    const uint8_t *q = NULL;
    int rc = raw(r, false, max, &q, len);
    if (!rc)
        *p = (const char *)q;
    return rc;
}

int sy_mp_done(sy_mp_reader *r)
{
    if (r->err)
        return r->err;
    if (r->p != r->end)
        return fail(r, SY_ETRAILING);
    return SY_OK;
}

static int buf_write(void *data, const char *p, size_t len)
{
    return sy_buf_append((sy_buf *)data, p, len) ? -1 : 0;
}

void sy_mp_writer_init(msgpack_packer *pk, sy_buf *buf)
{
    msgpack_packer_init(pk, buf, buf_write);
}

void sy_mp_put_bin(msgpack_packer *pk, const void *p, size_t len)
{
    msgpack_pack_bin(pk, len);
    if (len)
        msgpack_pack_bin_body(pk, p, len);
}

void sy_mp_put_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    if (len)
        msgpack_pack_str_body(pk, s, len);
}
