/* In-simulator KV state machine with sessions (see simkv.h). Keys are few
 * in simulated workloads, so a flat array with linear search is enough. */
#include <stdlib.h>
#include <string.h>
#include "tests/sim/simkv.h"
#include "crypto/sy_err.h"

typedef struct {
    uint8_t *k, *v;
    uint32_t kl, vl;
} kv_pair;

typedef struct {
    uint32_t client;
    uint64_t req_no;
    int status;
    uint8_t *v;
    uint32_t vl;
} kv_session;

struct simkv {
    kv_pair *pairs;
    size_t n, cap;
    kv_session *sess;
    size_t n_sess, cap_sess;
    uint64_t digest;
};

static uint64_t mix(const uint8_t *p, size_t len, uint64_t h)
{
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static uint64_t pair_hash(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    return mix(v, vl, mix(k, kl, 0xcbf29ce484222325ull) ^ 0x5bd1e995ull);
}

static uint64_t sess_hash(const kv_session *s)
{
    uint8_t b[12];
    memcpy(b, &s->client, 4);
    memcpy(b + 4, &s->req_no, 8);
    return mix(b, sizeof b, 0x84222325cbf29ce4ull);
}

int simkv_new(simkv **out)
{
    simkv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return SY_ENOMEM;
    *out = kv;
    return SY_OK;
}

static void clear(simkv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->pairs[i].k);
        free(kv->pairs[i].v);
    }
    for (size_t i = 0; i < kv->n_sess; i++)
        free(kv->sess[i].v);
    kv->n = kv->n_sess = 0;
    kv->digest = 0;
}

void simkv_free(simkv *kv)
{
    if (!kv)
        return;
    clear(kv);
    free(kv->pairs);
    free(kv->sess);
    free(kv);
}

static kv_pair *find(const simkv *kv, const uint8_t *k, size_t kl)
{
    for (size_t i = 0; i < kv->n; i++)
        if (kv->pairs[i].kl == kl && (kl == 0 || memcmp(kv->pairs[i].k, k, kl) == 0))
            return &kv->pairs[i];
    return NULL;
}

static uint8_t *dup(const uint8_t *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    if (d && len)
        memcpy(d, p, len);
    return d;
}

static int set(simkv *kv, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    kv_pair *p = find(kv, k, kl);
    uint8_t *nv = dup(v, vl);
    if (!nv)
        return SY_ENOMEM;
    if (p) {
        kv->digest -= pair_hash(p->k, p->kl, p->v, p->vl);
        free(p->v);
        p->v = nv;
        p->vl = (uint32_t)vl;
        kv->digest += pair_hash(p->k, p->kl, p->v, p->vl);
        return SY_OK;
    }
    if (kv->n == kv->cap) {
        size_t nc = kv->cap ? kv->cap * 2 : 16;
        kv_pair *np = realloc(kv->pairs, nc * sizeof *np);
        if (!np) {
            free(nv);
            return SY_ENOMEM;
        }
        kv->pairs = np;
        kv->cap = nc;
    }
    uint8_t *nk = dup(k, kl);
    if (!nk) {
        free(nv);
        return SY_ENOMEM;
    }
    kv->pairs[kv->n++] = (kv_pair){ .k = nk, .kl = (uint32_t)kl, .v = nv, .vl = (uint32_t)vl };
    kv->digest += pair_hash(k, kl, v, vl);
    return SY_OK;
}

static void del(simkv *kv, kv_pair *p)
{
    kv->digest -= pair_hash(p->k, p->kl, p->v, p->vl);
    free(p->k);
    free(p->v);
    *p = kv->pairs[--kv->n];
}

static kv_session *session(simkv *kv, uint32_t client, bool create)
{
    for (size_t i = 0; i < kv->n_sess; i++)
        if (kv->sess[i].client == client)
            return &kv->sess[i];
    if (!create)
        return NULL;
    if (kv->n_sess == kv->cap_sess) {
        size_t nc = kv->cap_sess ? kv->cap_sess * 2 : 16;
        kv_session *ns = realloc(kv->sess, nc * sizeof *ns);
        if (!ns)
            return NULL;
        kv->sess = ns;
        kv->cap_sess = nc;
    }
    kv_session *s = &kv->sess[kv->n_sess++];
    memset(s, 0, sizeof *s);
    s->client = client;
    kv->digest += sess_hash(s);
    return s;
}

int simkv_apply(simkv *kv, const sy_client_req *req, simkv_result *res)
{
    memset(res, 0, sizeof *res);
    kv_session *s = session(kv, req->client_id, true);
    if (!s)
        return SY_ENOMEM;
    if (req->req_no <= s->req_no) {
        if (req->req_no == s->req_no) {
            res->status = s->status;
            res->val = s->v;
            res->vlen = s->vl;
        } else {
            res->status = SY_ESTALE;
        }
        return SY_OK;
    }
    int status = SY_OK;
    const uint8_t *rv = NULL;
    uint32_t rvl = 0;
    kv_pair *p = find(kv, req->key.p, req->key.len);
    int rc = SY_OK;
    switch (req->op) {
    case SY_OP_PUT:
        rc = set(kv, req->key.p, req->key.len, req->val.p, req->val.len);
        break;
    case SY_OP_DEL:
        if (p)
            del(kv, p);
        else
            status = SY_ENOTFOUND;
        break;
    case SY_OP_CAS: {
        bool match = (req->flags & SY_CAS_EXPECT_ABSENT)
                         ? p == NULL
                         : (p && p->vl == req->old.len &&
                            (p->vl == 0 || memcmp(p->v, req->old.p, p->vl) == 0));
        if (match) {
            rc = set(kv, req->key.p, req->key.len, req->val.p, req->val.len);
        } else {
            status = SY_ECASFAIL;
            if (p) {
                rv = p->v;
                rvl = p->vl;
            }
        }
        break;
    }
    case SY_OP_GET:
        if (p) {
            rv = p->v;
            rvl = p->vl;
        } else {
            status = SY_ENOTFOUND;
        }
        break;
    default:
        break;  /* noop and unsupported ops change nothing */
    }
    if (rc)
        return rc;
    uint8_t *cached = rvl ? dup(rv, rvl) : NULL;
    if (rvl && !cached)
        return SY_ENOMEM;
    kv->digest -= sess_hash(s);
    free(s->v);
    s->req_no = req->req_no;
    s->status = status;
    s->v = cached;
    s->vl = rvl;
    kv->digest += sess_hash(s);
    res->status = status;
    res->val = s->v;
    res->vlen = s->vl;
    res->effective = true;
    return SY_OK;
}

int simkv_get(const simkv *kv, const uint8_t *k, size_t kl, const uint8_t **v, size_t *vl)
{
    kv_pair *p = find(kv, k, kl);
    if (!p)
        return SY_ENOTFOUND;
    *v = p->v;
    *vl = p->vl;
    return SY_OK;
}

uint64_t simkv_digest(const simkv *kv) { return kv->digest; }

static void put32(uint8_t **w, uint32_t v) { memcpy(*w, &v, 4); *w += 4; }
static void put64(uint8_t **w, uint64_t v) { memcpy(*w, &v, 8); *w += 8; }
static void putb(uint8_t **w, const uint8_t *p, uint32_t l)
{
    put32(w, l);
    if (l)
        memcpy(*w, p, l);
    *w += l;
}

int simkv_save(const simkv *kv, uint8_t **out, size_t *len)
{
    size_t n = 8;
    for (size_t i = 0; i < kv->n; i++)
        n += 8 + kv->pairs[i].kl + kv->pairs[i].vl;
    for (size_t i = 0; i < kv->n_sess; i++)
        n += 4 + 8 + 4 + 4 + kv->sess[i].vl;
    uint8_t *buf = malloc(n), *w = buf;
    if (!buf)
        return SY_ENOMEM;
    put32(&w, (uint32_t)kv->n);
    for (size_t i = 0; i < kv->n; i++) {
        putb(&w, kv->pairs[i].k, kv->pairs[i].kl);
        putb(&w, kv->pairs[i].v, kv->pairs[i].vl);
    }
    put32(&w, (uint32_t)kv->n_sess);
    for (size_t i = 0; i < kv->n_sess; i++) {
        put32(&w, kv->sess[i].client);
        put64(&w, kv->sess[i].req_no);
        put32(&w, (uint32_t)kv->sess[i].status);
        putb(&w, kv->sess[i].v, kv->sess[i].vl);
    }
    *out = buf;
    *len = n;
    return SY_OK;
}

typedef struct {
    const uint8_t *p;
    size_t left;
    bool bad;
} rd;

static uint32_t get32(rd *r)
{
    uint32_t v = 0;
    if (r->left < 4) {
        r->bad = true;
        return 0;
    }
    memcpy(&v, r->p, 4);
    r->p += 4;
    r->left -= 4;
    return v;
}

static uint64_t get64(rd *r)
{
    uint64_t v = 0;
    if (r->left < 8) {
        r->bad = true;
        return 0;
    }
    memcpy(&v, r->p, 8);
    r->p += 8;
    r->left -= 8;
    return v;
}

static const uint8_t *getb(rd *r, uint32_t *l)
{
    *l = get32(r);
    if (r->bad || r->left < *l) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += *l;
    r->left -= *l;
    return p;
}

int simkv_load(simkv *kv, const uint8_t *p, size_t len)
{
    rd r = { .p = p, .left = len };
    clear(kv);
    uint32_t n = get32(&r);
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        uint32_t kl, vl;
        const uint8_t *k = getb(&r, &kl);
        const uint8_t *v = getb(&r, &vl);
        if (!r.bad && set(kv, k, kl, v, vl))
            return SY_ENOMEM;
    }
    uint32_t ns = get32(&r);
    for (uint32_t i = 0; i < ns && !r.bad; i++) {
        uint32_t client = get32(&r);
        uint64_t req_no = get64(&r);
        int status = (int)get32(&r);
        uint32_t vl;
        const uint8_t *v = getb(&r, &vl);
        if (r.bad)
            break;
        kv_session *s = session(kv, client, true);
        if (!s)
            return SY_ENOMEM;
        kv->digest -= sess_hash(s);
        s->req_no = req_no;
        s->status = status;
        s->v = vl ? dup(v, vl) : NULL;
        s->vl = vl;
        kv->digest += sess_hash(s);
    }
    if (r.bad || r.left) {
        clear(kv);
        return SY_ECORRUPT;
    }
    return SY_OK;
}
