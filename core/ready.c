/* Deep copy of an engine's ready into one arena (core/ready.h). Two passes:
 * size everything, then copy, so one malloc holds the whole ready and one
 * free releases it. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include "core/ready.h"
#include "crypto/sy_err.h"

typedef struct {
    uint8_t *base;   /* NULL while sizing */
    size_t off;
} arena;

static void *take(arena *a, size_t len)
{
    a->off = (a->off + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    void *p = a->base ? a->base + a->off : NULL;
    a->off += len;
    return p;
}

static sy_bytes dup_bytes(arena *a, sy_bytes b)
{
    if (!b.len)
        return (sy_bytes){ NULL, 0 };
    uint8_t *p = take(a, b.len);
    if (p)
        memcpy(p, b.p, b.len);
    return (sy_bytes){ p, b.len };
}

/* Copies the ready into a (or only measures it when a->base is NULL). */
static void copy_into(arena *a, const sy_ready *in, sy_ready *o)
{
    *o = *in;
    o->msgs = NULL;
    o->n_msgs = 0;
    o->hardstate = dup_bytes(a, in->hardstate);
    sy_record *recs = take(a, in->n_records * sizeof *recs);
    for (size_t i = 0; i < in->n_records; i++) {
        sy_record r = in->records[i];
        r.val = dup_bytes(a, r.val);
        if (recs)
            recs[i] = r;
    }
    o->records = in->n_records ? recs : NULL;
    o->snap_data = dup_bytes(a, in->snap_data);
    sy_entry *ents = take(a, in->n_entries * sizeof *ents);
    for (size_t i = 0; i < in->n_entries; i++) {
        sy_entry e = in->entries[i];
        e.data = dup_bytes(a, e.data);
        if (ents)
            ents[i] = e;
    }
    o->entries = in->n_entries ? ents : NULL;
    sy_committed *com = take(a, in->n_committed * sizeof *com);
    for (size_t i = 0; i < in->n_committed; i++) {
        sy_committed c = in->committed[i];
        c.entry.data = dup_bytes(a, c.entry.data);
        c.evidence = dup_bytes(a, c.evidence);
        if (com)
            com[i] = c;
    }
    o->committed = in->n_committed ? com : NULL;
    sy_read_state *rs = take(a, in->n_reads * sizeof *rs);
    if (rs && in->n_reads)
        memcpy(rs, in->reads, in->n_reads * sizeof *rs);
    o->reads = in->n_reads ? rs : NULL;
    sy_reject *rj = take(a, in->n_rejects * sizeof *rj);
    if (rj && in->n_rejects)
        memcpy(rj, in->rejects, in->n_rejects * sizeof *rj);
    o->rejects = in->n_rejects ? rj : NULL;
}

int sy_ready_copy(const sy_ready *in, sy_ready_owned *out)
{
    memset(out, 0, sizeof *out);
    arena a = { NULL, 0 };
    sy_ready tmp;
    copy_into(&a, in, &tmp);
    a.base = malloc(a.off ? a.off : 1);
    if (!a.base)
        return SY_ENOMEM;
    a.off = 0;
    copy_into(&a, in, &out->rd);
    out->arena = a.base;
    return SY_OK;
}

void sy_ready_owned_free(sy_ready_owned *o)
{
    free(o->arena);
    memset(o, 0, sizeof *o);
}

void sy_drop_front(void *arr, size_t *n, size_t handed, size_t elsz)
{
    if (handed >= *n) {
        *n = 0;
        return;
    }
    memmove(arr, (uint8_t *)arr + handed * elsz, (*n - handed) * elsz);
    *n -= handed;
}

static bool records_work(const sy_ready *rd) { return rd->records_drop_below || rd->n_records; }

bool sy_ready_persists(const sy_ready *rd)
{
    return rd->hardstate_dirty || records_work(rd) || rd->truncate_from || rd->n_entries ||
           rd->snapshot_install || rd->compact_to;
}

bool sy_ready_must_sync(const sy_ready *rd)
{
    return (rd->hardstate_dirty && !rd->hardstate_lazy) || records_work(rd) ||
           rd->truncate_from || rd->n_entries || rd->snapshot_install || rd->compact_to ||
           rd->checkpoint_index;
}
