#!/usr/bin/env bash
# Raft, 3 real nodes on loopback: the common cluster suite.
PROTO=raft N=3
source "$(dirname "$0")/cluster_suite.sh"
