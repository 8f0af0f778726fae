#!/usr/bin/env bash
# Regenerates the counterexample corpus: for every --bug, the shortest counterexample to the
# property that catches it, in the smallest scenario that reaches it (the same scenarios as
# model/tests/bugs.rs). Run from anywhere; each file also records the command that wrote it.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
out=traces/corpus

gen() {
    local bug=$1; shift
    local property
    property=$(./target/release/drcheck check --list-bugs | awk -v b="$bug" '$1 == b { print $4 }')
    # Exit code 1 is expected: the bug is caught.
    ./target/release/drcheck check -q --reapplies 0 "$@" --bug "$bug" --property "$property" \
        --trace-out "$out" > /dev/null || [ $? -eq 1 ]
}

# Flags: writes, outages, partitions, failbacks, forced failovers; then what the bug needs.
gen no-throttle          --writes 2 --outages 1 --partitions 1 --failbacks 0 --forced 1 --grace 0 --no-isolation
gen no-lease-wait        --writes 0 --outages 1 --partitions 0 --failbacks 0 --forced 0
gen no-rpo-guard         --writes 1 --outages 1 --partitions 1 --failbacks 0 --forced 0 --no-isolation
gen rpo-guard-no-margin  --writes 1 --outages 1 --partitions 1 --failbacks 0 --forced 0 --no-isolation
gen rejoin-no-truncate   --writes 1 --outages 1 --partitions 0 --failbacks 0 --forced 0 --no-isolation
gen rejoin-no-quarantine --writes 1 --outages 1 --partitions 0 --failbacks 0 --forced 0 --no-isolation
gen rejoin-merge         --writes 1 --outages 1 --partitions 0 --failbacks 0 --forced 0 --no-isolation
gen failback-no-drain    --writes 1 --outages 1 --partitions 0 --failbacks 1 --forced 0 --no-isolation
gen auto-data-failback   --writes 0 --outages 1 --partitions 0 --failbacks 0 --forced 0 --no-isolation
gen hasty-detection      --writes 0 --outages 0 --partitions 0 --failbacks 0 --forced 0
gen no-compute-failover  --writes 0 --outages 1 --partitions 0 --failbacks 0 --forced 0 --no-isolation
gen no-sync-timeout      --writes 1 --outages 0 --partitions 1 --failbacks 0 --forced 0 --no-isolation --rto 19
gen failback-needs-caught-up --writes 1 --outages 1 --partitions 0 --failbacks 1 --forced 0 --no-isolation
gen failback-unfenced    --writes 0 --outages 1 --partitions 0 --failbacks 1 --forced 0 --no-isolation
gen compute-ignores-data --writes 0 --outages 1 --partitions 1 --failbacks 0 --forced 0 --no-isolation --rto 19
gen cp-restart-hasty     --writes 0 --outages 0 --partitions 0 --failbacks 0 --forced 0 --cp-restarts 1
gen no-auto-failover     --writes 0 --outages 1 --partitions 0 --failbacks 0 --forced 0 --no-isolation --rto 12 --sync-timeout 8
gen candidate-any-epoch  --writes 0 --outages 2 --partitions 0 --failbacks 0 --forced 0 --no-isolation --rto 12 --sync-timeout 8 --regions 3
gen failback-stale-last-entry --writes 1 --outages 1 --partitions 0 --failbacks 1 --forced 0 --no-isolation

# Only counterexamples belong in the corpus.
rm -f "$out"/*.worst-*.json
echo "$(ls "$out"/*.json | wc -l) counterexamples in $out"
