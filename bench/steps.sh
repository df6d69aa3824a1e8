#!/usr/bin/env bash
# Reads a BERTH_TRACE file and prints, for each step of a start, the median
# wall time since the step before it (in time order, across owner and
# init) and the median CPU time the process that logged it spent since its
# own previous line (for an init's first line, "hook entered": since its
# exec, which is its boot).
#   BERTH_TRACE=/tmp/trace go test -run '^$' -bench 'BerthRunTruePhases$' ./bench/
#   bench/steps.sh /tmp/trace
set -euo pipefail
trace=${1:?usage: steps.sh TRACEFILE}
sort -n "$trace" | awk '
{
	t = $1; pid = $2; cpu = substr($4, 5) + 0
	step = $3; for (i = 6; i <= NF; i++) step = step " " $i
	if (match(step, / initcpu=[0-9]+$/)) { total = total " " substr(step, RSTART + 9) / 1000; step = substr(step, 1, RSTART - 1) }
	if (step == "owner start") prev = t
	if (step == "init hook entered") last[pid] = 0 # every init is pid 1 in its namespace
	wall[step] = wall[step] " " (t - prev) / 1000
	if (pid in last) dcpu[step] = dcpu[step] " " (cpu - last[pid]) / 1000
	last[pid] = cpu; prev = t
	if (!(step in seen)) { seen[step] = 1; order[++n] = step }
}
function median(list,    a, k, i, j, x) {
	k = split(list, a, " ")
	if (k == 0) return "-"
	for (i = 2; i <= k; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
	return sprintf("%.2f", a[int((k + 1) / 2)])
}
END {
	printf "%-40s %9s %9s\n", "step", "wall ms", "cpu ms"
	for (i = 1; i <= n; i++) printf "%-40s %9s %9s\n", order[i], median(wall[order[i]]), median(dcpu[order[i]])
	printf "%-40s %9s %9s\n", "init, all of it (with its children)", "", median(total)
}'
