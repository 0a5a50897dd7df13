/* Maps a protocol name from the cluster manifest to its engine. Only cmd/
 * sees every engine, so the registry lives here. */
#include <string.h>
#include "core/engine.h"
#include "cft/raft/raft.h"
#include "cft/paxos/paxos.h"
#include "bft/pbft/pbft.h"

const sy_engine_ops *sy_engine_lookup(const char *protocol)
{
    static const sy_engine_ops *const all[] = {
        &sy_raft_ops,
        &sy_paxos_ops,
        &sy_pbft_ops,
        NULL,
    };
    for (size_t i = 0; all[i]; i++)
        if (strcmp(all[i]->name, protocol) == 0)
            return all[i];
    return NULL;
}

uint64_t sy_engine_committed_term(const sy_engine_ops *ops, const sy_entry *stored)
{
    if (ops == &sy_paxos_ops)
        return stored->term && px_val_ok(stored) ? px_val_origin(stored) : 0;
    return stored->term;
}
