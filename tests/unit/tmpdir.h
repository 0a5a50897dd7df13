/* Scratch directories for unit tests: one fresh directory under
 * $SYNOD_TMP (ctest sets it to <build>/tmp) or /tmp, and the removal of a
 * node data directory's files (LMDB's, the write-ahead log, the lock). */
#ifndef SY_TEST_TMPDIR_H
#define SY_TEST_TMPDIR_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* out (cap bytes) gets BASE/TAG-XXXXXX, created; false if it could not be. */
static inline bool t_tmpdir(char *out, size_t cap, const char *tag)
{
    const char *base = getenv("SYNOD_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(out, cap, "%s/%s-XXXXXX", base, tag);
    return mkdtemp(out) != NULL;
}

/* Removes what a node keeps in a data directory, then the directory. */
static inline void t_rm_datadir(const char *dir)
{
    static const char *const names[] = { "data.mdb", "lock.mdb", "wal", "synod.lock" };
    char p[4200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

#endif
