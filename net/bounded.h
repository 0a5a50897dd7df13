/* Bounded teardown for work NNG may never finish (closing sockets,
 * stopping the HTTP server: NNG 1.5.2 can block in both). Shared by
 * net/client.c and net/transport.c. */
#ifndef SY_NET_BOUNDED_H
#define SY_NET_BOUNDED_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <nng/nng.h>

typedef struct {
    void (*work)(void *);      /* may block for ever */
    void (*cleanup)(void *);   /* after work; frees what work needed */
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* CLOCK_MONOTONIC */
    bool done, abandoned;
} sy_bounded;

static inline void *sy_bounded_main(void *p)
{
    sy_bounded *b = p;
    b->work(b->arg);
    pthread_mutex_lock(&b->mu);
    b->done = true;
    bool mine = b->abandoned;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (mine) {   /* the caller gave up on us: the cleanup is ours */
        b->cleanup(b->arg);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
    }
    return NULL;
}

/* Runs work(arg) then cleanup(arg), the work on a thread of its own that
 * is waited for at most ms. Returns true when both ran; false when the
 * wait gave up: the thread is left behind and runs cleanup itself if the
 * work ever finishes, so the caller must not touch arg again. Without a
 * thread (out of resources) both run here, unbounded. */
static inline bool sy_run_bounded(void (*work)(void *), void (*cleanup)(void *), void *arg,
                                  uint32_t ms)
{
    sy_bounded *b = calloc(1, sizeof *b);
    pthread_t th;
    pthread_condattr_t ca;
    if (b && pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        b = NULL;
    }
    if (b) {
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&b->cv, &ca);
        pthread_condattr_destroy(&ca);
        b->work = work;
        b->cleanup = cleanup;
        b->arg = arg;
    }
    if (!b || pthread_create(&th, NULL, sy_bounded_main, b) != 0) {
        if (b) {
            pthread_mutex_destroy(&b->mu);
            pthread_cond_destroy(&b->cv);
            free(b);
        }
        work(arg);
        cleanup(arg);
        return true;
    }
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->mu);
    while (!b->done)
        if (pthread_cond_timedwait(&b->cv, &b->mu, &dl) == ETIMEDOUT)
            break;
    bool ok = b->done;
    if (!ok)
        b->abandoned = true;
    pthread_mutex_unlock(&b->mu);
    if (!ok) {
        pthread_detach(th);
        return false;
    }
    pthread_join(th, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
    cleanup(arg);
    return true;
}

static inline void sy_bounded_close_work_(void *arg)
{
    nng_close(*(nng_socket *)arg);
}

static inline void sy_bounded_close_free_(void *arg)
{
    free(arg);
}

/* nng_close(s), waited for at most ms; false when it gave up (the close
 * goes on on a thread of its own). For sockets nothing else refers to:
 * the test harnesses' fake nodes, which share NNG's reaper with the
 * client under test and hang with it. */
static inline bool sy_close_bounded(nng_socket s, uint32_t ms)
{
    nng_socket *p = malloc(sizeof *p);
    if (!p) {
        nng_close(s);
        return true;
    }
    *p = s;
    return sy_run_bounded(sy_bounded_close_work_, sy_bounded_close_free_, p, ms);
}

#endif
