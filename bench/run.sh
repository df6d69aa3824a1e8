#!/usr/bin/env bash
# Runs berth's benchmarks beside its peers' and prints the ratios. Needs
# root and the Debian peers (runc, skopeo, umoci) that .ci/run installs.
#   bench/run.sh            # default iteration counts
#   N=50 bench/run.sh       # more iterations per benchmark
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
out=$(mktemp)
go test -run '^$' -bench 'BerthRunTrue$|BerthRunTrueBridge|RuncRunTrue|BerthExec' -benchtime "${N}x" ./bench/ | tee "$out"
go test -run '^$' -bench 'Pull' -benchtime 3x ./bench/ | tee -a "$out"
median() { awk -v n="$1" '$1 ~ n {for (i=1;i<=NF;i++) if ($(i+1)=="median-ms") print $i}' "$out" | head -1; }
berth=$(median 'BenchmarkBerthRunTrue-')
bridge=$(median 'BenchmarkBerthRunTrueBridge-')
runc=$(median 'BenchmarkRuncRunTrue-')
exec_=$(median 'BenchmarkBerthExec-')
pull=$(median 'BenchmarkPull/berth-')
peer=$(median 'BenchmarkPull/skopeo\\+umoci-')
ctr=$(median 'BenchmarkPull/ctr-')
present=$(median 'BenchmarkPull/berth-present-')
echo
echo "run true (median): berth ${berth} ms, runc ${runc} ms, berth/runc = $(awk -v a="$berth" -v b="$runc" 'BEGIN{printf "%.3f", a/b}')"
echo "bridge network adds: $(awk -v a="$bridge" -v b="$berth" 'BEGIN{printf "%.2f", a-b}') ms (median ${bridge} ms)"
echo "exec (median): ${exec_} ms"
echo "pull 5x20MB (median): berth ${pull} ms, skopeo+umoci ${peer} ms ($(awk -v a="$peer" -v b="$pull" 'BEGIN{printf "%.2f", a/b}')x), ctr ${ctr} ms ($(awk -v a="$ctr" -v b="$pull" 'BEGIN{printf "%.2f", a/b}')x); already present ${present} ms"
rm -f "$out"
