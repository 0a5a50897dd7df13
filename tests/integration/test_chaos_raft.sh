#!/usr/bin/env bash
# Raft, 3 real nodes: crashes, pauses and restarts under a concurrent
# workload whose history must be linearizable (chaos_suite.sh).
PROTO=raft N=3
source "$(dirname "$0")/chaos_suite.sh"
