#!/usr/bin/env bash
# Multi-Paxos, 3 real nodes: crashes, pauses and restarts under a concurrent
# workload whose history must be linearizable (chaos_suite.sh).
PROTO=paxos N=3
source "$(dirname "$0")/chaos_suite.sh"
