/* fuzz_raft's harness and checks (see the top of fuzz_raft.c) driving the
 * Multi-Paxos engine: the same input format; a term there is a ballot here,
 * and a leader must also lead in a ballot it owns. */
#define FUZZ_PAXOS 1
#include "fuzz_raft.c"
