/* Reading a fuzz input as a stream of small integers: past the end every
 * read gives 0, so any input is a complete schedule. The two bytes of a
 * u16 are read in a fixed order (low first). */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static inline uint8_t take8(input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static inline uint16_t take16(input *in)
{
    uint16_t lo = take8(in);
    return (uint16_t)(lo | take8(in) << 8);
}

#endif
