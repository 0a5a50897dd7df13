#!/bin/sh
# Runs a synod-sim sweep with a planted-bug mutant and passes only if the
# sweep caught it: exit code 1 (a check failed) AND a "FAILED check NAME"
# line naming one of the accepted checks. Anything else fails this test: exit
# 0 (the sweep is too weak to see the bug), exit 2 (usage error), a crash or
# sanitizer report (other exit codes), or a failure of a check that does not
# show the bug (by default liveness: a mutant must be caught by a safety
# check, not by getting stuck). docs/simulator.md "Mutants".
#
# usage: expect_caught.sh [--checks NAME,NAME,...] SYNOD_SIM ARGS...
set -u
checks="agreement,commit-order,durable-commit,validity,exactly-once,convergence,snapshot,durability,linearizability,engine-fatal"
if [ "${1:-}" = "--checks" ]; then
    checks=$2
    shift 2
fi
if [ $# -lt 1 ]; then
    echo "usage: expect_caught.sh [--checks NAME,...] SYNOD_SIM ARGS..." >&2
    exit 2
fi
out=$("$@" 2>&1)
rc=$?
line=$(printf '%s\n' "$out" | grep -m1 'FAILED check ')
if [ $rc -ne 1 ]; then
    printf '%s\n' "$out" | tail -40
    echo "expect_caught: synod-sim exited $rc, expected 1 (a check failed): the mutant was not caught" >&2
    exit 1
fi
name=$(printf '%s\n' "$line" | sed -n 's/.*FAILED check \([a-z-]*\).*/\1/p')
case ",$checks," in
*",$name,"*)
    printf '%s\n' "$out" | grep -E 'FAILED check |replay:|seeds? from'
    echo "expect_caught: caught by check $name"
    exit 0 ;;
esac
printf '%s\n' "$out" | tail -40
echo "expect_caught: failed check '${name:-none}' is not one of $checks: not a catch of the planted bug" >&2
exit 1
