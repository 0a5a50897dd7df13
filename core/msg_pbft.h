/* PBFT message bodies (types 40..59). Owned by the PBFT engine's author;
 * included by core/msg.h. Codec in core/msg_pbft.c. */
#ifndef SY_MSG_PBFT_H
#define SY_MSG_PBFT_H

#include <stdint.h>

typedef union sy_pbft_body {
    uint64_t reserved;
} sy_pbft_body;

#endif
