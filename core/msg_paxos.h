/* Multi-Paxos message bodies (types 30..39). Owned by the Paxos engine's
 * author; included by core/msg.h. Codec in core/msg_paxos.c. */
#ifndef SY_MSG_PAXOS_H
#define SY_MSG_PAXOS_H

#include <stdint.h>

struct sy_buf;
struct sy_msg;
struct msgpack_packer;

/* Placeholder member until the Paxos messages are defined. */
typedef union sy_paxos_body {
    uint64_t reserved;
} sy_paxos_body;

#endif
