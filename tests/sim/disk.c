/* The simulated disk of one node: a durable image plus at most one write in
 * flight. The host stages a sy_ready's persistence (copying what the engine
 * owns), the "fsync" completes later, and a crash before it completes loses
 * exactly that write — the only data a host that fsyncs every ready can
 * lose, and never anything it acted on (persist-before-send). */
#include <stdlib.h>
#include <string.h>
#include "tests/sim/sim_int.h"
#include "crypto/sy_err.h"

static uint8_t *dupmem(const void *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    if (d && len)
        memcpy(d, p, len);
    return d;
}

static void drop_pending(sim_disk *d)
{
    free(d->p_hs);
    for (size_t i = 0; i < d->p_n; i++)
        free(d->p_ents[i].data);
    free(d->p_ents);
    free(d->p_snap_data);
    d->p_hs = NULL;
    d->p_ents = NULL;
    d->p_snap_data = NULL;
    d->p_n = 0;
    d->pending = false;
}

void sim_disk_free(sim_disk *d)
{
    drop_pending(d);
    free(d->hs);
    for (size_t i = 0; i < d->n_log; i++)
        free(d->log[i].data);
    free(d->log);
    free(d->snap_data);
    memset(d, 0, sizeof *d);
}

int sim_disk_stage(sim_disk *d, const sy_ready *rd)
{
    drop_pending(d);
    d->pending = true;
    d->p_hs_dirty = rd->hardstate_dirty;
    if (rd->hardstate_dirty) {
        d->p_hs = dupmem(rd->hardstate.p, rd->hardstate.len);
        d->p_hs_len = rd->hardstate.len;
        if (!d->p_hs)
            goto err_drop;
    }
    d->p_truncate = rd->truncate_from;
    if (rd->n_entries) {
        d->p_ents = calloc(rd->n_entries, sizeof *d->p_ents);
        if (!d->p_ents)
            goto err_drop;
        for (size_t i = 0; i < rd->n_entries; i++) {
            const sy_entry *e = &rd->entries[i];
            d->p_ents[i] = (disk_entry){ .index = e->index, .term = e->term, .type = e->type,
                                         .len = e->data.len };
            d->p_ents[i].data = dupmem(e->data.p, e->data.len);
            d->p_n = i + 1;
            if (!d->p_ents[i].data)
                goto err_drop;
        }
    }
    /* compaction without install also carries snap_index (raft.h) */
    d->p_snap = rd->snapshot_install;
    d->p_snap_index = rd->snap_index;
    d->p_snap_term = rd->snap_term;
    d->p_snap_members = rd->snap_members;
    if (rd->snapshot_install) {
        d->p_snap_data = dupmem(rd->snap_data.p, rd->snap_data.len);
        d->p_snap_len = rd->snap_data.len;
        if (!d->p_snap_data)
            goto err_drop;
    }
    d->p_compact = rd->compact_to;
    return SY_OK;
err_drop:
    drop_pending(d);
    return SY_ENOMEM;
}

static void log_drop_from(sim_disk *d, uint64_t from)
{
    while (d->n_log && d->log[d->n_log - 1].index >= from) {
        free(d->log[d->n_log - 1].data);
        d->n_log--;
    }
}

static void log_drop_upto(sim_disk *d, uint64_t upto)
{
    size_t k = 0;
    while (k < d->n_log && d->log[k].index <= upto)
        free(d->log[k++].data);
    memmove(d->log, d->log + k, (d->n_log - k) * sizeof *d->log);
    d->n_log -= k;
}

static bool log_append(sim_disk *d, disk_entry *e)
{
    if (d->n_log == d->cap_log) {
        size_t nc = d->cap_log ? d->cap_log * 2 : 64;
        disk_entry *nl = realloc(d->log, nc * sizeof *nl);
        if (!nl)
            return false;
        d->log = nl;
        d->cap_log = nc;
    }
    /* an append below the end replaces the conflicting suffix */
    log_drop_from(d, e->index);
    d->log[d->n_log++] = *e;
    return true;
}

int sim_disk_set_snapshot(sim_disk *d, uint64_t index, uint64_t term, const uint8_t *data,
                          size_t len, const sy_members *m)
{
    uint8_t *nd = dupmem(data, len);
    if (!nd)
        return SY_ENOMEM;
    free(d->snap_data);
    d->snap_data = nd;
    d->snap_len = len;
    d->snap_index = index;
    d->snap_term = term;
    if (m)
        d->snap_members = *m;
    return SY_OK;
}

void sim_disk_sync(sim_disk *d)
{
    if (!d->pending)
        return;
    if (d->p_hs_dirty) {
        free(d->hs);
        d->hs = d->p_hs;
        d->hs_len = d->p_hs_len;
        d->p_hs = NULL;
    }
    if (d->p_snap) {
        /* install: the log below the snapshot goes unless it matches */
        bool keep = false;
        for (size_t i = 0; i < d->n_log; i++)
            if (d->log[i].index == d->p_snap_index && d->log[i].term == d->p_snap_term)
                keep = true;
        if (keep)
            log_drop_upto(d, d->p_snap_index);
        else
            log_drop_from(d, 0);
        free(d->snap_data);
        d->snap_data = d->p_snap_data;
        d->snap_len = d->p_snap_len;
        d->p_snap_data = NULL;
        d->snap_index = d->p_snap_index;
        d->snap_term = d->p_snap_term;
        d->snap_members = d->p_snap_members;
    } else if (d->p_snap_index && d->p_snap_index == d->snap_index) {
        /* compaction: the engine names the members of the host's snapshot */
        d->snap_members = d->p_snap_members;
    }
    if (d->p_truncate)
        log_drop_from(d, d->p_truncate);
    for (size_t i = 0; i < d->p_n; i++) {
        if (!log_append(d, &d->p_ents[i]))
            abort();  /* the simulator cannot model an allocation failure here */
        d->p_ents[i].data = NULL;
    }
    d->p_n = 0;
    if (d->p_compact)
        log_drop_upto(d, d->p_compact < d->snap_index ? d->p_compact : d->snap_index);
    drop_pending(d);
}

bool sim_disk_crash(sim_disk *d)
{
    bool lost = d->pending;
    drop_pending(d);
    return lost;
}

int sim_disk_boot(const sim_disk *d, sy_engine_boot *boot, sy_entry **ents)
{
    memset(boot, 0, sizeof *boot);
    *ents = NULL;
    boot->hardstate = (sy_bytes){ .p = d->hs, .len = (uint32_t)d->hs_len };
    boot->snap_index = d->snap_index;
    boot->snap_term = d->snap_term;
    boot->snap_members = d->snap_members;
    boot->snap_data = (sy_bytes){ .p = d->snap_data, .len = (uint32_t)d->snap_len };
    size_t k = 0;
    while (k < d->n_log && d->log[k].index <= d->snap_index)
        k++;
    if (d->n_log > k) {
        *ents = calloc(d->n_log - k, sizeof **ents);
        if (!*ents)
            return SY_ENOMEM;
        for (size_t i = k; i < d->n_log; i++)
            (*ents)[i - k] = (sy_entry){ .index = d->log[i].index, .term = d->log[i].term,
                                         .type = d->log[i].type,
                                         .data = { .p = d->log[i].data, .len = d->log[i].len } };
    }
    boot->entries = *ents;
    boot->n_entries = d->n_log - k;
    return SY_OK;
}
