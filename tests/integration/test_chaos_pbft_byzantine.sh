#!/usr/bin/env bash
# PBFT, 4 real nodes, node 3 Byzantine (test builds: synod --byzantine)
# all along, under crashes, pauses and restarts of any node: the history
# must stay linearizable and the correct nodes must agree (chaos_suite.sh).
# The behaviour rotates with the seed: a backup preparing and committing
# wrong digests, one claiming prepared certificates it does not have, one
# replaying old messages, one sending conflicting votes, and (after a view
# change makes node 3 primary) an equivocating primary or a bad NEW-VIEW.
PROTO=pbft N=4 BYZ=3
SEED=${CHAOS_SEED:-$(( $(date +%s) % 100000 ))}
CHAOS_SEED=$SEED
B=(wrong-digest fake-prepared replay flood equivocate bad-new-view)
BEHAVIOUR=${CHAOS_BEHAVIOUR:-${B[$((SEED % ${#B[@]}))]}}
source "$(dirname "$0")/chaos_suite.sh"
