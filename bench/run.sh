#!/usr/bin/env bash
# Runs berth's benchmarks beside its peers' and prints the ratios. Needs
# root and the Debian peers (runc, skopeo, umoci) that .ci/run installs.
#   bench/run.sh            # default iteration counts
#   N=50 bench/run.sh       # more iterations per benchmark
# BERTH_TRACE=/tmp/trace go test -run '^$' -bench Phases ./bench/ appends
# each start's timeline (owner and init steps) to /tmp/trace;
# bench/steps.sh /tmp/trace prints the median wall and CPU time of each step.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
# berth is a no-cgo library and its CLI is built without cgo; a cgo build of
# the benchmark binary adds 2-3 ms to each container's init (the dynamic
# loader and libc's thread creation). CGO_ENABLED=1 bench/run.sh measures that.
export CGO_ENABLED=${CGO_ENABLED-0}
out=$(mktemp)
go test -run '^$' -bench 'HostFloor|BerthRunTrue$|BerthRunTrueBusybox$|BerthRunTrueBusyboxNoSpare$|BerthRunTrueBridge|RuncRunTrue|BerthExec|BerthRunTruePhases' -benchtime "${N}x" ./bench/ | tee "$out"
go test -run '^$' -bench 'BerthConcurrent100|BerthSupervisorPSS' -benchtime 3x ./bench/ | tee -a "$out"
go test -run '^$' -bench 'Pull' -benchtime 3x ./bench/ | tee -a "$out"
# metric NAME UNIT: the value reported with UNIT on the line of benchmark NAME.
metric() { awk -v n="$1" -v u="$2" '$1 ~ n {for (i=1;i<=NF;i++) if ($(i+1)==u) print $i}' "$out" | head -1; }
median() { metric "$1" median-ms; }
berth=$(median 'BenchmarkBerthRunTrue-')
bbox=$(median 'BenchmarkBerthRunTrueBusybox-')
cold=$(median 'BenchmarkBerthRunTrueBusyboxNoSpare-')
rbox=$(median 'BenchmarkRuncRunTrueBusybox-')
bridge=$(median 'BenchmarkBerthRunTrueBridge-')
runc=$(median 'BenchmarkRuncRunTrue-')
exec_=$(median 'BenchmarkBerthExec-')
pull=$(median 'BenchmarkPull/berth-')
peer=$(median 'BenchmarkPull/skopeo\\+umoci-')
ctr=$(median 'BenchmarkPull/ctr-')
present=$(median 'BenchmarkPull/berth-present-')
echo
echo "floor (fork+exec+wait on the host, median): busybox true $(median 'BenchmarkHostFloor/busybox-true-') ms, toolbox true $(median 'BenchmarkHostFloor/toolbox-true-') ms"
echo "run true (median): berth ${berth} ms, runc ${runc} ms, berth/runc = $(awk -v a="$berth" -v b="$runc" 'BEGIN{printf "%.3f", a/b}')"
echo "run busybox true (median): berth ${bbox} ms, runc ${rbox} ms, berth/runc = $(awk -v a="$bbox" -v b="$rbox" 'BEGIN{printf "%.3f", a/b}')"
echo "  without spare inits: berth ${cold} ms, berth/runc = $(awk -v a="$cold" -v b="$rbox" 'BEGIN{printf "%.3f", a/b}')"
echo "  CPU per run (owner + init + true): berth $(metric 'BenchmarkBerthRunTrueBusybox-' cpu-ms/op) ms, without spares $(metric 'BenchmarkBerthRunTrueBusyboxNoSpare-' cpu-ms/op) ms, runc $(metric 'BenchmarkRuncRunTrueBusybox-' cpu-ms/op) ms"
echo "  steps (median): create $(metric 'BenchmarkBerthRunTruePhases-' create-ms) ms, start $(metric 'BenchmarkBerthRunTruePhases-' start-ms) ms, wait $(metric 'BenchmarkBerthRunTruePhases-' wait-ms) ms, delete $(metric 'BenchmarkBerthRunTruePhases-' delete-ms) ms"
echo "bridge network adds: $(awk -v a="$bridge" -v b="$berth" 'BEGIN{printf "%.2f", a-b}') ms (median ${bridge} ms)"
echo "exec (median): ${exec_} ms, busybox true $(median 'BenchmarkBerthExecBusybox-') ms"
echo "100 concurrent runs of true (median total): $(metric 'BenchmarkBerthConcurrent100-' total-ms) ms; busybox true $(metric 'BenchmarkBerthConcurrent100Busybox-' total-ms) ms ($(metric 'BenchmarkBerthConcurrent100Busybox-' cpu-ms/op) ms of CPU), without spares $(metric 'BenchmarkBerthConcurrent100BusyboxNoSpare-' total-ms) ms"
echo "idle supervisor PSS: $(metric 'BenchmarkBerthSupervisorPSS-' pss1-MB) MB alone, $(metric 'BenchmarkBerthSupervisorPSS-' pss10-MB) MB each of 10 ($(metric 'BenchmarkBerthSupervisorPSS-' anon-MB) MB of it private)"
echo "pull 5x20MB (median): berth ${pull} ms, skopeo+umoci ${peer} ms ($(awk -v a="$peer" -v b="$pull" 'BEGIN{printf "%.2f", a/b}')x), ctr ${ctr} ms ($(awk -v a="$ctr" -v b="$pull" 'BEGIN{printf "%.2f", a/b}')x); already present ${present} ms"
rm -f "$out"
