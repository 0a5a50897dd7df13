/* A bounded wait for a helper thread doing something NNG may never finish
 * (closing sockets, stopping the HTTP server: NNG 1.5.2 can block in both).
 * Shared by net/client.c and net/transport.c. */
#ifndef SY_NET_BOUNDED_H
#define SY_NET_BOUNDED_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Waits on cv (with mu; cv made with pthread_condattr_setclock
 * CLOCK_MONOTONIC, so a wall-clock step cannot stretch the wait) until
 * *done or ms have passed. Returns *done; when false, sets *abandoned under mu so
 * the helper knows the cleanup is its own. */
static inline bool sy_wait_done(pthread_mutex_t *mu, pthread_cond_t *cv, const bool *done,
                                bool *abandoned, uint32_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(mu);
    while (!*done)
        if (pthread_cond_timedwait(cv, mu, &dl) == ETIMEDOUT)
            break;
    bool ok = *done;
    if (!ok)
        *abandoned = true;
    pthread_mutex_unlock(mu);
    return ok;
}

#endif
