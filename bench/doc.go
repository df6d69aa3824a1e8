// Package bench holds berth's benchmarks against its peers (runc, skopeo +
// umoci, containerd's ctr), run side by side in one process so that the
// ratios hold on a noisy shared machine. run.sh runs them and prints the
// ratios; the benchmarks need root and the Debian peers installed.
package bench
