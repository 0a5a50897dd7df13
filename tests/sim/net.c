/* The simulated network and the fault scheduler.
 *
 * Links between replicas can drop, duplicate and delay (reorder) messages
 * and be cut by partitions: an isolated node, a one-way cut (a node that can
 * send but not hear, or hear but not send), a split into two groups, or
 * clogged links (huge latency). One partition is active at a time; it heals
 * after a while. Client links see drops and delays but not partitions.
 * Crashes and pauses respect a fault budget (at most budget nodes down or
 * paused at once) so the cluster can keep making progress; safety checks do
 * not depend on that budget. */
#include <stdlib.h>
#include <string.h>
#include "tests/sim/sim_int.h"
#include "crypto/sy_err.h"

bool sim_is_client(uint32_t id) { return id >= SY_CLIENT_ID_BASE; }

static void deliver_copy(sim_world *w, uint32_t from, uint32_t to, const uint8_t *data,
                         size_t len, uint64_t lat)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        w->st->msgs_dropped++;
        return;
    }
    memcpy(copy, data, len);
    sim_schedule(w, w->now + lat, EV_DELIVER, from, to, 0, copy, len);
}

void sim_net_send(sim_world *w, uint32_t from, uint32_t to, uint8_t type, const uint8_t *data,
                  size_t len)
{
    w->st->msgs_sent++;
    bool faulty = !w->calm;
    uint32_t fl = w->o.faults;
    bool peer = !sim_is_client(from) && !sim_is_client(to);
    if (peer && w->blocked[from][to]) {
        w->st->msgs_dropped++;
        sim_trace(w, TR_DROP, from, to, type, 1, 0);
        return;
    }
    if (faulty && (fl & SY_FAULT_DROP) && sy_rng_below(&w->rng, 100) < 5) {
        w->st->msgs_dropped++;
        sim_trace(w, TR_DROP, from, to, type, 0, 0);
        return;
    }
    uint64_t lat = sy_rng_range(&w->rng, 1, 5);
    if (faulty && (fl & SY_FAULT_REORDER) && sy_rng_below(&w->rng, 100) < 20) {
        lat += sy_rng_below(&w->rng, 80);
        w->st->msgs_delayed++;
    }
    if (peer)
        lat += w->clog_ms[from][to];
    /* events name the receiving host: a twin answers for its sibling's id
     * to the nodes on its side */
    uint32_t host = to;
    if (peer && w->twin_of[to] != UINT32_MAX && w->twin_side[from])
        host = w->twin_of[to];
    deliver_copy(w, from, host, data, len, lat);
    if (faulty && (fl & SY_FAULT_DUP) && sy_rng_below(&w->rng, 100) < 3) {
        w->st->msgs_duplicated++;
        sim_trace(w, TR_DUP, from, to, type, 0, 0);
        deliver_copy(w, from, host, data, len, lat + sy_rng_below(&w->rng, 50));
    }
}

static uint32_t faulty_nodes(const sim_world *w)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < w->n; i++)
        k += !w->nodes[i].up || w->nodes[i].paused || w->nodes[i].replaced;
    return k;
}

/* Faulty now or bound to be: also a running node with a corruption it has
 * not found yet (it stops when it reads it). A replaced disk takes a node
 * out until it has rejoined, so it needs room beside all of these. */
static uint32_t faulty_or_doomed(const sim_world *w)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < w->n; i++) {
        const sim_node *nd = &w->nodes[i];
        k += !nd->up || nd->paused || nd->replaced || nd->corrupt || nd->dead || nd->lost;
    }
    return k;
}

/* A random node satisfying pred, or UINT32_MAX. */
static uint32_t pick(sim_world *w, bool (*pred)(const sim_node *))
{
    uint32_t cand[SY_SIM_MAX_NODES], k = 0;
    for (uint32_t i = 0; i < w->n; i++)
        if (pred(&w->nodes[i]))
            cand[k++] = i;
    return k ? cand[sy_rng_below(&w->rng, k)] : UINT32_MAX;
}

static bool is_healthy(const sim_node *nd) { return nd->up && !nd->paused; }
static bool is_writing(const sim_node *nd) { return nd->up && nd->busy; }
static bool is_dead(const sim_node *nd) { return nd->dead && !nd->byz; }
/* Byzantine nodes keep their disks; a mutant's is replaced like any */
static bool is_replaceable(const sim_node *nd) { return is_healthy(nd) && !nd->byz; }

static void start_partition(sim_world *w)
{
    if (w->part_active || w->n < 2)
        return;
    uint32_t n = w->n;
    uint32_t shape = (uint32_t)sy_rng_below(&w->rng, 5);
    uint32_t k = (uint32_t)sy_rng_below(&w->rng, n);
    switch (shape) {
    case 0: /* isolated node */
        for (uint32_t j = 0; j < n; j++)
            w->blocked[k][j] = w->blocked[j][k] = j != k;
        break;
    case 1: /* one-way: k can send, cannot hear */
        for (uint32_t j = 0; j < n; j++)
            w->blocked[j][k] = j != k;
        break;
    case 2: /* one-way: k hears, cannot send */
        for (uint32_t j = 0; j < n; j++)
            w->blocked[k][j] = j != k;
        break;
    case 3: { /* split in two groups */
        bool side[SY_SIM_MAX_NODES];
        for (uint32_t i = 0; i < n; i++)
            side[i] = sy_rng_below(&w->rng, 2);
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t j = 0; j < n; j++)
                w->blocked[i][j] = side[i] != side[j];
        break;
    }
    default: /* clogged links around k */
        for (uint32_t j = 0; j < n; j++) {
            if (j == k)
                continue;
            if (sy_rng_below(&w->rng, 2))
                w->clog_ms[k][j] = (uint32_t)sy_rng_range(&w->rng, 100, 1000);
            if (sy_rng_below(&w->rng, 2))
                w->clog_ms[j][k] = (uint32_t)sy_rng_range(&w->rng, 100, 1000);
        }
        break;
    }
    w->part_active = true;
    w->part_gen++;
    w->st->partitions++;
    sim_trace(w, TR_PARTITION, k, UINT32_MAX, shape, w->part_gen, 0);
    sim_schedule(w, w->now + sy_rng_range(&w->rng, 200, 3000), EV_HEAL, 0, UINT32_MAX,
                 w->part_gen, NULL, 0);
}

void sim_net_heal(sim_world *w, uint64_t gen)
{
    if (gen != w->part_gen || !w->part_active)
        return;
    memset(w->blocked, 0, sizeof w->blocked);
    memset(w->clog_ms, 0, sizeof w->clog_ms);
    w->part_active = false;
    sim_trace(w, TR_HEAL, 0, UINT32_MAX, gen, 0, 0);
}

void sim_net_fault(sim_world *w)
{
    if (w->calm)
        return;
    uint32_t kinds[5], nk = 0;
    if (w->o.faults & SY_FAULT_PARTITION)
        kinds[nk++] = SY_FAULT_PARTITION;
    if (w->o.faults & SY_FAULT_CRASH)
        kinds[nk++] = SY_FAULT_CRASH;
    if (w->o.faults & SY_FAULT_PAUSE)
        kinds[nk++] = SY_FAULT_PAUSE;
    if (w->o.faults & SY_FAULT_DISK)
        kinds[nk++] = SY_FAULT_DISK;
    if ((w->o.faults & SY_FAULT_REPLACE) && !w->bft)   /* synod-sim refuses it for pbft */
        kinds[nk++] = SY_FAULT_REPLACE;
    if (!nk)
        return;
    uint32_t kind = kinds[sy_rng_below(&w->rng, nk)];
    bool room = faulty_nodes(w) < w->budget;
    uint32_t v;
    switch (kind) {
    case SY_FAULT_PARTITION:
        start_partition(w);
        break;
    case SY_FAULT_CRASH:
    case SY_FAULT_DISK:
        if (!room)
            break;
        /* disk faults aim at a node with a write in flight: a crash mid-fsync */
        v = kind == SY_FAULT_DISK ? pick(w, is_writing) : pick(w, is_healthy);
        if (v == UINT32_MAX)
            break;
        sim_node_crash(w, &w->nodes[v]);
        /* quick restarts catch a node mid-election with its state half sent */
        sim_schedule(w, w->now + (sy_rng_below(&w->rng, 2) ? sy_rng_range(&w->rng, 5, 300)
                                                             : sy_rng_range(&w->rng, 300, 3000)),
                     EV_RESTART, v, UINT32_MAX, w->nodes[v].incarnation, NULL, 0);
        break;
    case SY_FAULT_REPLACE:
        /* a node that found its disk corrupt first: that is what the
         * procedure is for; it counts toward the budget already */
        v = pick(w, is_dead);
        if (v == UINT32_MAX &&
            (faulty_or_doomed(w) >= w->budget || (v = pick(w, is_replaceable)) == UINT32_MAX))
            break;
        sim_node_replace(w, &w->nodes[v]);
        sim_schedule(w, w->now + sy_rng_range(&w->rng, 5, 3000), EV_RESTART, v, UINT32_MAX,
                     w->nodes[v].incarnation, NULL, 0);
        break;
    case SY_FAULT_PAUSE:
        if (!room || (v = pick(w, is_healthy)) == UINT32_MAX)
            break;
        w->nodes[v].paused = true;
        w->st->pauses++;
        sim_trace(w, TR_PAUSE, v, UINT32_MAX, 0, 0, 0);
        sim_schedule(w, w->now + sy_rng_range(&w->rng, 50, 2000), EV_RESUME, v, UINT32_MAX,
                     w->nodes[v].incarnation, NULL, 0);
        break;
    }
    sim_schedule(w, w->now + sy_rng_range(&w->rng, 50, 600), EV_FAULT, 0, UINT32_MAX, 0,
                 NULL, 0);
}

bool sim_crash_after_fsync(sim_world *w, sim_node *nd)
{
    if (!(w->o.faults & SY_FAULT_DISK) || w->calm || nd->host >= w->n ||
        faulty_nodes(w) >= w->budget || sy_rng_below(&w->rng, 50) != 0)
        return false;
    /* the write is durable, but the process dies before it sends a thing */
    sim_node_fsynced(w, nd);
    sim_node_crash(w, nd);
    sim_schedule(w, w->now + sy_rng_range(&w->rng, 5, 1000), EV_RESTART, nd->host, UINT32_MAX,
                 nd->incarnation, NULL, 0);
    return true;
}

/* Not a mutant: losing it would take the planted bug out of the checks. */
static bool lose_candidate(const sim_node *nd)
{
    return !nd->byz && !nd->mutant && !nd->dead && !nd->corrupt && !nd->lost;
}

/* The first running leader or primary that may be lost, else a random
 * node that may (UINT32_MAX: none). */
static uint32_t leader_or_any_candidate(sim_world *w)
{
    for (uint32_t i = 0; i < w->n; i++) {
        sim_node *nd = &w->nodes[i];
        if (!lose_candidate(nd) || !nd->up || !nd->eng)
            continue;
        sy_engine_status es;
        w->o.ops->status(nd->eng, &es);
        if (es.role == SY_ROLE_LEADER || es.role == SY_ROLE_PRIMARY)
            return i;
    }
    return pick(w, lose_candidate);
}

/* The lose fault: the nodes lost for good, the leader or primary first. */
static void lose_nodes(sim_world *w)
{
    uint32_t gone = sim_disk_lost_nodes(w);
    while (gone < w->budget) {
        uint32_t v = leader_or_any_candidate(w);
        if (v == UINT32_MAX)
            return;
        sim_node *nd = &w->nodes[v];
        nd->lost = true;
        sim_node_halt(w, nd);
        w->st->lost_nodes++;
        gone++;
    }
}

/* The outage fault's first part: the nodes lost for good, at random
 * (the leader among them or not). */
static void outage_lose(sim_world *w)
{
    for (uint32_t gone = sim_disk_lost_nodes(w); gone < w->budget; gone++) {
        uint32_t v = pick(w, lose_candidate);
        if (v == UINT32_MAX)
            return;
        w->nodes[v].lost = true;
        sim_node_halt(w, &w->nodes[v]);
        w->st->lost_nodes++;
    }
}

/* The outage fault's last blow, after the lose part: one more correct
 * node crashes (the leader or primary if one is up), which leaves fewer
 * than a quorum up, and restarts from its disk 1-8 s later. */
static void outage_crash(sim_world *w)
{
    /* half the time any node: the leader may stay up, as in
     * cluster_suite.sh, where the two killed are the leader's successors */
    bool leader_first = sy_rng_below(&w->rng, 2) == 0;
    uint32_t v = leader_first ? leader_or_any_candidate(w) : pick(w, lose_candidate);
    if (v == UINT32_MAX || !w->nodes[v].up)
        return;
    sim_node_crash(w, &w->nodes[v]);
    w->st->outages++;
    sim_schedule(w, w->now + sy_rng_range(&w->rng, 1000, 8000), EV_RESTART, v, UINT32_MAX,
                 w->nodes[v].incarnation, NULL, 0);
}

void sim_net_calm(sim_world *w)
{
    w->calm = true;
    w->calm_at = w->now;
    if (w->o.faults & SY_FAULT_LOSE)
        lose_nodes(w);
    else if (w->o.faults & SY_FAULT_OUTAGE)
        outage_lose(w);
    sim_net_heal(w, w->part_gen);
    for (uint32_t i = 0; i < w->n_hosts && !w->stop; i++) {
        sim_node *nd = &w->nodes[i];
        if (!nd->up)
            sim_node_restart(w, nd);
        else if (nd->paused) {
            nd->paused = false;
            sim_node_pump(w, nd);
        }
    }
    if ((w->o.faults & SY_FAULT_OUTAGE) && !w->stop)
        outage_crash(w);
}

/* ---- leader-churn ---- */

/* Every leader elected in the fault phase is struck a few ms after it
 * takes office: late enough that its first appends reach whoever is on its
 * side, rarely late enough for a full round of them, which is what leaves
 * an entry on a minority and competing entries at one index (Raft thesis
 * 3.6.2, Figure 3.7). Mostly the leader is cut off with a minority (a cut
 * that lasts: the sequence needs a node holding a newer-term entry to stay
 * out while older-term leaders come and go), sometimes crashed. Tuned on
 * the old-term-commit mutant: with 5 nodes about two thirds of the seeds
 * catch it; shorter cuts (<= 1.5 s) or more crashes catch far fewer. */
#define SIM_CHURN_DELAY_MAX_MS 30u
#define SIM_CHURN_CRASH_PCT 20u
#define SIM_CHURN_CUT_MIN_MS 100u
#define SIM_CHURN_CUT_MAX_MS 6000u
#define SIM_CHURN_RESTART_MAX_MS 1500u

void sim_churn_on_leader(sim_world *w, sim_node *nd)
{
    if (!(w->o.faults & SY_FAULT_CHURN) || w->calm || nd->host >= w->n)
        return;
    sim_schedule(w, w->now + sy_rng_below(&w->rng, SIM_CHURN_DELAY_MAX_MS + 1), EV_CHURN,
                 nd->host, UINT32_MAX, nd->incarnation, NULL, 0);
}

void sim_net_churn(sim_world *w, uint32_t host, uint64_t gen)
{
    if (w->calm || host >= w->n)
        return;
    sim_node *nd = &w->nodes[host];
    if (!nd->up || !nd->eng || nd->incarnation != gen)
        return;
    sy_engine_status es = { 0 };
    w->o.ops->status(nd->eng, &es);
    if (es.role != SY_ROLE_LEADER)
        return;
    w->st->churns++;
    if (faulty_nodes(w) < w->budget && sy_rng_below(&w->rng, 100) < SIM_CHURN_CRASH_PCT) {
        sim_node_crash(w, nd);
        sim_schedule(w, w->now + sy_rng_range(&w->rng, 5, SIM_CHURN_RESTART_MAX_MS), EV_RESTART,
                     host, UINT32_MAX, nd->incarnation, NULL, 0);
        return;
    }
    /* cut the leader off together with a minority (possibly alone); this
     * replaces whatever partition was active */
    uint32_t n = w->n, size = (uint32_t)sy_rng_range(&w->rng, 1, (n - 1) / 2 ? (n - 1) / 2 : 1);
    bool side[SY_SIM_MAX_NODES] = { false };
    side[host] = true;
    for (uint32_t k = 1; k < size;) {
        uint32_t j = (uint32_t)sy_rng_below(&w->rng, n);
        if (!side[j]) {
            side[j] = true;
            k++;
        }
    }
    memset(w->clog_ms, 0, sizeof w->clog_ms);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < n; j++)
            w->blocked[i][j] = side[i] != side[j];
    w->part_active = true;
    w->part_gen++;
    w->st->partitions++;
    sim_trace(w, TR_PARTITION, host, UINT32_MAX, 5, w->part_gen, 0);
    sim_schedule(w, w->now + sy_rng_range(&w->rng, SIM_CHURN_CUT_MIN_MS, SIM_CHURN_CUT_MAX_MS),
                 EV_HEAL, 0, UINT32_MAX, w->part_gen, NULL, 0);
}
