# make bench: the side-by-side benchmark of issue 6 (bench/, docs/PERFORMANCE.md).
# Builds wafcanary and the harness, installs wrk, nginx, ModSecurity v3 and
# Debian's CRS when missing, and runs every target on loopback in interleaved
# rounds (8 targets; nginx + ModSecurity on the CRS 4.25 files wafcanary
# embeds, and on Debian's CRS 3.3.4 as a reference). BENCH_FLAGS passes flags to `wafbench run`,
# e.g. BENCH_FLAGS="-rounds 5 -keep".

BENCH_FLAGS ?=

.PHONY: bench
bench:
	@bench/deps.sh
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	go build -o "$$dir/wafcanary" ./cmd/wafcanary; \
	go build -o "$$dir/wafbench" ./bench; \
	"$$dir/wafbench" run -bin "$$dir" $(BENCH_FLAGS)
