#!/usr/bin/env bash
# Multi-Paxos, 3 real nodes on loopback: the common cluster suite.
PROTO=paxos N=3
source "$(dirname "$0")/cluster_suite.sh"
