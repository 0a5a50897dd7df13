/* An engine's queued effects between two readies (core/outbox.h). */
#include <stdlib.h>
#include <string.h>
#include "core/outbox.h"
#include "core/ready.h"
#include "crypto/sy_err.h"

sy_msg *sy_outbox_msg(sy_outbox *o, uint32_t to, uint8_t type)
{
    if (sy_grow((void **)&o->msgs, &o->cap_msgs, o->n_msgs + 1, sizeof *o->msgs)) {
        o->dropped++;
        return NULL;
    }
    sy_outmsg *m = &o->msgs[o->n_msgs++];
    memset(m, 0, sizeof *m);
    m->to = to;
    m->msg.type = type;
    return &m->msg;
}

int sy_outbox_reject(sy_outbox *o, uint32_t client_id, uint64_t req_no, int status,
                     uint32_t leader_hint)
{
    if (sy_grow((void **)&o->rejects, &o->cap_rejects, o->n_rejects + 1, sizeof *o->rejects))
        return SY_ENOMEM;
    o->rejects[o->n_rejects++] = (sy_reject){ .client_id = client_id, .req_no = req_no,
                                              .status = status, .leader = leader_hint };
    return SY_OK;
}

int sy_outbox_read(sy_outbox *o, uint64_t read_id, uint64_t index, int status)
{
    if (sy_grow((void **)&o->reads, &o->cap_reads, o->n_reads + 1, sizeof *o->reads))
        return SY_ENOMEM;
    o->reads[o->n_reads++] = (sy_read_state){ .read_id = read_id, .index = index,
                                              .status = status };
    return SY_OK;
}

int sy_outbox_defer_free(sy_outbox *o, void *ptr)
{
    if (!ptr)
        return SY_OK;
    if (sy_grow((void **)&o->scratch, &o->cap_scratch, o->n_scratch + 1, sizeof *o->scratch))
        return SY_ENOMEM;
    o->scratch[o->n_scratch++] = ptr;
    return SY_OK;
}

void sy_outbox_hand_out(sy_outbox *o, sy_ready *rd)
{
    rd->msgs = o->msgs;
    rd->n_msgs = o->n_msgs;
    rd->reads = o->reads;
    rd->n_reads = o->n_reads;
    rd->rejects = o->rejects;
    rd->n_rejects = o->n_rejects;
    o->h_msgs = o->n_msgs;
    o->h_reads = o->n_reads;
    o->h_rejects = o->n_rejects;
    o->h_scratch = o->n_scratch;
}

void sy_outbox_release(sy_outbox *o, sy_outbox_msg_fn done)
{
    for (size_t i = 0; done && i < o->h_msgs && i < o->n_msgs; i++)
        done(&o->msgs[i].msg);
    for (size_t i = 0; i < o->h_scratch && i < o->n_scratch; i++)
        free(o->scratch[i]);
    sy_drop_front(o->msgs, &o->n_msgs, o->h_msgs, sizeof *o->msgs);
    sy_drop_front(o->reads, &o->n_reads, o->h_reads, sizeof *o->reads);
    sy_drop_front(o->rejects, &o->n_rejects, o->h_rejects, sizeof *o->rejects);
    sy_drop_front(o->scratch, &o->n_scratch, o->h_scratch, sizeof *o->scratch);
    o->h_msgs = o->h_reads = o->h_rejects = o->h_scratch = 0;
}

void sy_outbox_free(sy_outbox *o, sy_outbox_msg_fn done)
{
    for (size_t i = 0; done && i < o->n_msgs; i++)
        done(&o->msgs[i].msg);
    for (size_t i = 0; i < o->n_scratch; i++)
        free(o->scratch[i]);
    free(o->msgs);
    free(o->reads);
    free(o->rejects);
    free(o->scratch);
    memset(o, 0, sizeof *o);
}
