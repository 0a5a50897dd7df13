/* pbft message codec hooks (see core/msg.h). No pbft messages are
 * defined yet: every type in the range is unknown. */
#include "core/msg.h"
#include "core/mp.h"
#include "crypto/sy_err.h"

int sy_msg_pbft_encode(const sy_msg *m, void *packer)
{
    (void)m;
    (void)packer;
    return SY_EMSGTYPE;
}

int sy_msg_pbft_decode(sy_msg *m, void *reader)
{
    (void)m;
    (void)reader;
    return SY_EMSGTYPE;
}

void sy_msg_pbft_free(sy_msg *m) { (void)m; }

const char *sy_msg_pbft_name(int type)
{
    (void)type;
    return "unknown";
}
