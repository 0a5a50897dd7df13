#!/usr/bin/env bash
# PBFT, 4 real nodes: crashes, pauses and restarts under a concurrent
# workload whose history must be linearizable (chaos_suite.sh).
PROTO=pbft N=4
source "$(dirname "$0")/chaos_suite.sh"
