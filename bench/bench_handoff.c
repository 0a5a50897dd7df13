/* What one hand-off costs on this machine: the floor under every hop of a
 * request's path, as bench_sigfloor is the floor under its signatures.
 * A one-client write crosses four processes' worth of hops (client ->
 * leader -> follower -> leader -> client), each one a wake-up of a thread
 * somewhere; on some virtual machines a wake-up on the other core costs
 * ten times one on the same core (docs/benchmarks.md, "Session 21").
 *
 * Measured for --seconds each, in a child process free to use every core
 * and again in one pinned to core 0 (threads inherit the pin, NNG's own
 * threads included, because the child pins itself before NNG starts):
 *   condvar   two threads taking turns through a mutex and condition
 *             variable: the one-way hand-off (half a round trip);
 *   tcp       two threads echoing 200 bytes over loopback TCP with
 *             blocking sockets and TCP_NODELAY: the round trip;
 *   nng rep   an NNG REQ/REP round trip of 200 bytes over tcp:// (the
 *             client endpoint's pattern), the REP side a thread blocked
 *             in nng_recvmsg;
 *   nng push  a PUSH/PULL pair each way (the replica mesh's pattern), the
 *             echo side a thread blocked in nng_recvmsg;
 *   nng push aio  the same, but the echo side takes each message in an
 *             NNG aio callback and hands it through a mutex and condition
 *             variable to a worker that sends it back: how the daemon
 *             takes peer messages (net/transport.c, pull_cb). Session 23
 *             measured the two alike: a blocked nng_recvmsg is woken from
 *             NNG's task thread just as the worker is, so receiving on
 *             threads of our own would save no hop.
 * The difference between "tcp" and "nng" is what NNG's threads add per
 * round trip (its poller and task threads between the socket and ours).
 *
 * usage: bench_handoff [--seconds S]
 * prints one line per case: "handoff CASE any=US one=US" (microseconds). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#define MSG_BYTES 200
#define N_CASES 5

static const char *case_names[N_CASES] = { "condvar", "tcp", "nng_rep", "nng_push",
                                              "nng_push_aio" };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "bench_handoff: %s\n", what);
    exit(1);
}

/* Every case runs its echo side on a thread of its own; the timing side
 * counts round trips for `secs`, then closes what the echo side waits on. */
/* ------------------------------------------------------------- condvar */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int turn;   /* 0: timing side's turn, 1: echo side's, 2: stop */
} cv_pair;

static void *cv_echo(void *arg)
{
    cv_pair *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->turn == 0)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->turn == 2)
            break;
        p->turn = 0;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static double run_condvar(double secs)
{
    cv_pair p = { 0 };
    pthread_t t;
    long n = 0;
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    if (pthread_create(&t, NULL, cv_echo, &p) != 0)
        die("thread");
    double t0 = now_s(), t1 = t0;
    pthread_mutex_lock(&p.mu);
    while (t1 - t0 < secs) {
        for (int i = 0; i < 100; i++) {
            p.turn = 1;
            pthread_cond_broadcast(&p.cv);
            while (p.turn != 0)
                pthread_cond_wait(&p.cv, &p.mu);
        }
        n += 100;
        t1 = now_s();
    }
    p.turn = 2;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    pthread_join(t, NULL);
    return (t1 - t0) / (double)n / 2.0 * 1e6;   /* one way */
}

/* ------------------------------------------------------------------ tcp */

static bool read_full(int fd, char *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static void *tcp_echo(void *arg)
{
    int lfd = *(int *)arg, one = 1;
    char b[MSG_BYTES];
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    while (read_full(fd, b, sizeof b))
        if (write(fd, b, sizeof b) != (ssize_t)sizeof b)
            break;
    close(fd);
    return NULL;
}

static double run_tcp(double secs)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), fd, one = 1;
    char b[MSG_BYTES];
    pthread_t t;
    long n = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        die("loopback listen");
    if (pthread_create(&t, NULL, tcp_echo, &lfd) != 0)
        die("thread");
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("loopback connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(b, 7, sizeof b);
    double t0 = now_s(), t1 = t0;
    while (t1 - t0 < secs) {
        for (int i = 0; i < 100; i++)
            if (write(fd, b, sizeof b) != (ssize_t)sizeof b || !read_full(fd, b, sizeof b))
                die("loopback echo");
        n += 100;
        t1 = now_s();
    }
    close(fd);
    pthread_join(t, NULL);
    close(lfd);
    return (t1 - t0) / (double)n * 1e6;
}

/* ------------------------------------------------------------------ nng */

typedef struct {
    nng_socket in, out;   /* REP: both the same socket */
} nng_echo_arg;

static void *nng_echo(void *arg)
{
    nng_echo_arg *e = arg;
    for (;;) {
        nng_msg *m;
        if (nng_recvmsg(e->in, &m, 0) != 0)
            return NULL;
        if (nng_sendmsg(e->out, m, 0) != 0) {
            nng_msg_free(m);
            return NULL;
        }
    }
}

/* Listens on tcp://127.0.0.1 with a port the kernel picks; url gets the
 * address to dial. */
static void nng_listen_any(nng_socket s, char *url, size_t cap)
{
    nng_listener l;
    nng_sockaddr sa;
    if (nng_listen(s, "tcp://127.0.0.1:0", &l, 0) != 0 ||
        nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa) != 0)
        die("nng listen");
    snprintf(url, cap, "tcp://127.0.0.1:%u", (unsigned)ntohs(sa.s_in.sa_port));
}

static double time_nng(double secs, nng_socket out, nng_socket in)
{
    char b[MSG_BYTES];
    long n = 0;
    memset(b, 7, sizeof b);
    /* the first message waits for the connection */
    double t0 = now_s(), t1 = t0;
    for (bool warm = true;; warm = false) {
        for (int i = 0; i < (warm ? 50 : 100); i++) {
            char *r;
            size_t rl;
            if (nng_send(out, b, sizeof b, 0) != 0 || nng_recv(in, &r, &rl, NNG_FLAG_ALLOC) != 0)
                die("nng echo");
            nng_free(r, rl);
        }
        if (warm) {
            t0 = t1 = now_s();
            continue;
        }
        n += 100;
        t1 = now_s();
        if (t1 - t0 >= secs)
            break;
    }
    return (t1 - t0) / (double)n * 1e6;
}

static double run_nng_rep(double secs)
{
    nng_socket req, rep;
    nng_echo_arg e;
    pthread_t t;
    char url[64];
    if (nng_rep0_open(&rep) != 0 || nng_req0_open(&req) != 0)
        die("nng open");
    nng_listen_any(rep, url, sizeof url);
    if (nng_dial(req, url, NULL, 0) != 0)
        die("nng dial");
    e.in = e.out = rep;
    if (pthread_create(&t, NULL, nng_echo, &e) != 0)
        die("thread");
    double us = time_nng(secs, req, req);
    nng_close(req);
    nng_close(rep);
    pthread_join(t, NULL);
    return us;
}

static double run_nng_push(double secs)
{
    nng_socket a_in, a_out, b_in, b_out;
    nng_echo_arg e;
    pthread_t t;
    char url_a[64], url_b[64];
    if (nng_pull0_open(&a_in) != 0 || nng_pull0_open(&b_in) != 0 || nng_push0_open(&a_out) != 0 ||
        nng_push0_open(&b_out) != 0)
        die("nng open");
    nng_listen_any(a_in, url_a, sizeof url_a);
    nng_listen_any(b_in, url_b, sizeof url_b);
    if (nng_dial(a_out, url_b, NULL, 0) != 0 || nng_dial(b_out, url_a, NULL, 0) != 0)
        die("nng dial");
    e.in = b_in;
    e.out = b_out;
    if (pthread_create(&t, NULL, nng_echo, &e) != 0)
        die("thread");
    double us = time_nng(secs, a_out, a_in);
    nng_close(a_out);
    nng_close(b_in);
    pthread_join(t, NULL);
    nng_close(a_in);
    nng_close(b_out);
    return us;
}

/* The echo side of nng_push_aio: an aio callback on NNG's task thread
 * queues the message (one slot: the timing side has one in flight) and a
 * worker sends it back. */
typedef struct {
    nng_socket in, out;
    nng_aio *aio;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nng_msg *slot;
    bool stop;
} aio_echo;

static void aio_echo_cb(void *arg)
{
    aio_echo *e = arg;
    if (nng_aio_result(e->aio) != 0) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        return;
    }
    pthread_mutex_lock(&e->mu);
    e->slot = nng_aio_get_msg(e->aio);
    pthread_mutex_unlock(&e->mu);
    pthread_cond_signal(&e->cv);
    nng_recv_aio(e->in, e->aio);
}

static void *aio_echo_worker(void *arg)
{
    aio_echo *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->slot && !e->stop)
            pthread_cond_wait(&e->cv, &e->mu);
        nng_msg *m = e->slot;
        e->slot = NULL;
        bool stop = e->stop;
        pthread_mutex_unlock(&e->mu);
        if (m && nng_sendmsg(e->out, m, 0) != 0)
            nng_msg_free(m);
        if (stop)
            return NULL;
    }
}

static double run_nng_push_aio(double secs)
{
    nng_socket a_in, a_out;
    aio_echo e = { .slot = NULL, .stop = false };
    pthread_t t;
    char url_a[64], url_b[64];
    pthread_mutex_init(&e.mu, NULL);
    pthread_cond_init(&e.cv, NULL);
    if (nng_pull0_open(&a_in) != 0 || nng_pull0_open(&e.in) != 0 || nng_push0_open(&a_out) != 0 ||
        nng_push0_open(&e.out) != 0 || nng_aio_alloc(&e.aio, aio_echo_cb, &e) != 0)
        die("nng open");
    nng_listen_any(a_in, url_a, sizeof url_a);
    nng_listen_any(e.in, url_b, sizeof url_b);
    if (nng_dial(a_out, url_b, NULL, 0) != 0 || nng_dial(e.out, url_a, NULL, 0) != 0)
        die("nng dial");
    if (pthread_create(&t, NULL, aio_echo_worker, &e) != 0)
        die("thread");
    nng_recv_aio(e.in, e.aio);
    double us = time_nng(secs, a_out, a_in);
    nng_close(a_out);
    nng_close(e.in);
    nng_aio_stop(e.aio);   /* the callback saw the close and stopped the worker */
    pthread_join(t, NULL);
    nng_aio_free(e.aio);
    nng_close(a_in);
    nng_close(e.out);
    pthread_mutex_destroy(&e.mu);
    pthread_cond_destroy(&e.cv);
    return us;
}

/* ---------------------------------------------------------------- main */

/* Runs every case in a child (pinned to core 0 when `pin`), which writes
 * its results to fd. */
static void run_child(double secs, bool pin, int fd)
{
    double r[N_CASES];
    if (pin) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            die("sched_setaffinity");
    }
    r[0] = run_condvar(secs);
    r[1] = run_tcp(secs);
    r[2] = run_nng_rep(secs);
    r[3] = run_nng_push(secs);
    r[4] = run_nng_push_aio(secs);
    if (write(fd, r, sizeof r) != (ssize_t)sizeof r)
        die("pipe");
}

static void measure(double secs, bool pin, double out[N_CASES])
{
    int p[2], st;
    if (pipe(p) != 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(p[0]);
        run_child(secs, pin, p[1]);
        _exit(0);
    }
    close(p[1]);
    bool ok = read(p[0], out, sizeof(double) * N_CASES) == (ssize_t)(sizeof(double) * N_CASES);
    close(p[0]);
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || !ok)
        die("a measurement failed");
}

int main(int argc, char **argv)
{
    double secs = 1.0, any[N_CASES], one[N_CASES];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_handoff [--seconds S]\n");
            return 2;
        }
    }
    if (!(secs > 0.0 && secs <= 600.0)) {
        fprintf(stderr, "bench_handoff: --seconds wants a number in (0, 600]\n");
        return 2;
    }
    measure(secs, false, any);
    measure(secs, true, one);
    printf("# microseconds: condvar one way; tcp, nng_rep, nng_push a round trip of %d bytes;\n"
           "# any = threads free to use every core, one = all pinned to core 0\n",
           MSG_BYTES);
    for (int i = 0; i < N_CASES; i++)
        printf("handoff %-8s any=%.1f one=%.1f\n", case_names[i], any[i], one[i]);
    return 0;
}
