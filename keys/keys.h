/* synod-keys: key generation and cluster manifest generation.
 *
 * The tool's logic lives here so cmd/synod_keys.c stays a thin main(). */
#ifndef SY_KEYS_H
#define SY_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Process exit codes (product brief: 0 ok, 1 run-time failure, 2 usage or
 * configuration error). */
enum { SY_EXIT_OK = 0, SY_EXIT_FAIL = 1, SY_EXIT_USAGE = 2 };

#define SY_KEYS_DEFAULT_HOST "127.0.0.1"
#define SY_KEYS_DEFAULT_BASE_PORT 7000u
#define SY_KEYS_DEFAULT_CLUSTER_ID "synod"
#define SY_KEYS_MAX_CLIENTS 1000u
/* Port offsets from the base port: peer base+i, client base+100+i,
 * metrics base+200+i. Room for SY_MAX_NODES (64) nodes per block. */
#define SY_KEYS_CLIENT_PORT_OFFSET 100u
#define SY_KEYS_METRICS_PORT_OFFSET 200u

typedef struct sy_keys_cluster_opts {
    const char *out_dir;
    const char *cluster_id;
    int protocol;          /* enum sy_protocol */
    uint32_t nodes;
    bool f_set;
    uint32_t f;
    const char *host;
    uint32_t base_port;
    uint32_t clients;
    bool force;
} sy_keys_cluster_opts;

/* Writes a complete cluster directory (keys, manifest, node files, data
 * dirs) and loads it back to validate it. Options must already be checked
 * with sy_keys_cluster_check. Returns SY_OK or an sy_err code with a
 * one-line reason in why. SY_EEXIST: files exist and force was not set. */
int sy_keys_cluster(const sy_keys_cluster_opts *o, char *why, size_t whylen);

/* Checks option values (protocol/f/nodes/ports/host). SY_ECONFIG + why. */
int sy_keys_cluster_check(sy_keys_cluster_opts *o, char *why, size_t whylen);

/* The whole command line; returns the process exit code. */
int sy_keys_main(int argc, char **argv);

#endif
