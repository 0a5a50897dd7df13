/* fuzz_pbft with the Byzantine replica as the primary of view 0 (see the
 * top of fuzz_pbft.c): the same harness and input format, BYZ = 0. */
#define BYZ 0u
#include "fuzz_pbft.c"
