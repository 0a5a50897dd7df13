#!/usr/bin/env bash
# PBFT, 4 real nodes on loopback: the common cluster suite.
PROTO=pbft N=4
source "$(dirname "$0")/cluster_suite.sh"
