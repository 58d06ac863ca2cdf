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

# make pgo: the profile `go build ./cmd/wafcanary` optimises with
# (cmd/wafcanary/default.pgo; Go applies it by default, -pgo=off turns it
# off). It is a CPU profile of the bench mix through the router in process,
# split and shadow (BenchmarkMix/split and /shadow, 15 s each): regenerate
# it after a change to the request path or to Coraza, and commit it.
PGO_BENCHTIME ?= 15s

.PHONY: pgo
pgo:
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	go test -run '^$$' -bench '^BenchmarkMix$$' -benchtime $(PGO_BENCHTIME) -cpuprofile "$$dir/cpu.pprof" -o "$$dir/bench.test" ./bench; \
	cp "$$dir/cpu.pprof" cmd/wafcanary/default.pgo; \
	echo "wrote cmd/wafcanary/default.pgo ($$(wc -c < cmd/wafcanary/default.pgo) bytes)"

# make bench-levers: the wafcanary and nginx-modsec targets of make bench,
# with each lever of issue 34 beside the wafcanary target in the same
# rounds: the binary built without its profile (nopgo) and the garbage
# collector's settings (gc.percent, gc.memory_limit). BENCH_FLAGS still
# applies, e.g. BENCH_FLAGS="-rounds 5".
.PHONY: bench-levers
bench-levers:
	@bench/deps.sh
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	go build -o "$$dir/wafcanary" ./cmd/wafcanary; \
	go build -pgo=off -o "$$dir/wafcanary-nopgo" ./cmd/wafcanary; \
	go build -o "$$dir/wafbench" ./bench; \
	"$$dir/wafbench" run -bin "$$dir" -only wafcanary,nginx-modsec \
		-variant nopgo=bin:"$$dir/wafcanary-nopgo" \
		-variant gc200=env:WAFCANARY_GC_PERCENT=200 \
		-variant gc400=env:WAFCANARY_GC_PERCENT=400,env:WAFCANARY_GC_MEMORY_LIMIT=256MiB \
		$(BENCH_FLAGS)
