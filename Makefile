# make bench: the side-by-side benchmark of issue 6 (bench/, docs/PERFORMANCE.md).
# Builds wafcanary and the harness, installs wrk, nginx, ModSecurity v3 and
# Debian's CRS when missing, and runs every target on loopback in interleaved
# rounds (nginx + ModSecurity on the CRS 4.25 files wafcanary
# embeds, and on Debian's CRS 3.3.4 as a reference). BENCH_FLAGS passes flags to `wafbench run`,
# e.g. BENCH_FLAGS="-rounds 5 -keep". The wafcanary-coraza-patched row is
# the wafcanary target built on Coraza with third_party/coraza's patches
# (not what go.mod builds): what they would give, in the same rounds.

BENCH_FLAGS ?=

.PHONY: bench
bench:
	@bench/deps.sh
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	go build -o "$$dir/wafcanary" ./cmd/wafcanary; \
	third_party/coraza/build.sh "$$dir/coraza" "$$dir/wafcanary-coraza-patched"; \
	go build -o "$$dir/wafbench" ./bench; \
	"$$dir/wafbench" run -bin "$$dir" -variant coraza-patched=bin:"$$dir/wafcanary-coraza-patched" $(BENCH_FLAGS)

# make pgo: a CPU profile for profile-guided optimisation, written to
# cmd/wafcanary/default.pgo, which `go build ./cmd/wafcanary` then applies
# (-pgo=auto). It is the bench mix through the router in process, split and
# shadow (BenchmarkMix/split and /shadow, PGO_BENCHTIME each). No profile is
# shipped: measured side by side it gave no gain this machine resolves
# (docs/PERFORMANCE.md, "Issue 34"), and it costs every build of the
# command a rebuild of all its packages. make bench-levers measures it again.
PGO_BENCHTIME ?= 15s
PGO_PROFILE ?= cmd/wafcanary/default.pgo

.PHONY: pgo
pgo:
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	go test -run '^$$' -bench '^BenchmarkMix$$' -benchtime $(PGO_BENCHTIME) -cpuprofile "$$dir/cpu.pprof" -o "$$dir/bench.test" ./bench; \
	cp "$$dir/cpu.pprof" "$(PGO_PROFILE)"; \
	echo "wrote $(PGO_PROFILE) ($$(wc -c < "$(PGO_PROFILE)") bytes)"

# make bench-levers: the wafcanary and nginx-modsec targets of make bench,
# with each lever of issue 34 beside the wafcanary target in the same
# rounds: the binary built with a fresh profile (pgo), the garbage
# collector's settings (gc.percent, gc.memory_limit), and Coraza with the
# patches of third_party/coraza (coraza-patched). BENCH_FLAGS still
# applies, e.g. BENCH_FLAGS="-rounds 5".
.PHONY: bench-levers
bench-levers:
	@bench/deps.sh
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	$(MAKE) -s pgo PGO_PROFILE="$$dir/default.pgo"; \
	go build -pgo=off -o "$$dir/wafcanary" ./cmd/wafcanary; \
	go build -pgo="$$dir/default.pgo" -o "$$dir/wafcanary-pgo" ./cmd/wafcanary; \
	third_party/coraza/build.sh "$$dir/coraza" "$$dir/wafcanary-coraza-patched"; \
	go build -o "$$dir/wafbench" ./bench; \
	"$$dir/wafbench" run -bin "$$dir" -only wafcanary,nginx-modsec \
		-variant pgo=bin:"$$dir/wafcanary-pgo" \
		-variant gc200=env:WAFCANARY_GC_PERCENT=200 \
		-variant gc400=env:WAFCANARY_GC_PERCENT=400,env:WAFCANARY_GC_MEMORY_LIMIT=256MiB \
		-variant coraza-patched=bin:"$$dir/wafcanary-coraza-patched" \
		$(BENCH_FLAGS)
