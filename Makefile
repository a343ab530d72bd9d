# redisha: `make demo` runs the main job, `make test` passes the tests. Both work
# from a fresh clone on a fresh Debian machine as root: they install what they need.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := $(CURDIR)/bin
TIMED := $(CURDIR)/.ci/timed
# Long-running packages get one test binary at a time: two cores, real daemons.
TEST_FLAGS ?= -count=1 -p 2 -timeout 19m

.PHONY: all build deps images test test-short demo compare durability chaos bench fuzz vet fmt clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# ---- lab (issue: lab) -------------------------------------------------------
deps:
	@$(TIMED) deps .ci/deps.sh

images: deps build
	@$(TIMED) images .ci/images.sh

# ---- tests ------------------------------------------------------------------
test: deps images
	@$(TIMED) vet $(MAKE) --no-print-directory vet
	@$(TIMED) workflows $(GO) test -count=1 ./.github/lint
	@$(TIMED) tests .ci/gotest $(TEST_FLAGS) ./...

# Quick local loop: skips everything that needs root, Docker or real daemons.
test-short:
	$(GO) test -short -count=1 ./... ./.github/lint

# ---- scenarios (issue: scenarios) --------------------------------------------
# The point of the project in one screen: the recipe and the redisha stack side by side on
# old-master-returns, master-minority and master-crash (shortened timings), ending with the
# path of compare.html. About 6 minutes on a 2-core machine.
DEMO_OUT ?= out/demo-$(shell date +%Y%m%d-%H%M%S)
demo: images
	@$(TIMED) demo $(BIN)/redisha compare --demo --seed 1 --out $(DEMO_OUT); status=$$?; \
	echo "open $(DEMO_OUT)/compare.html"; exit $$status

# The whole catalog on both stacks, recorded in docs/results/compare.md (+ compare.html and
# compare.json, whose dots link to each run's evidence under docs/results/compare-runs; the full
# reports stay under COMPARE_OUT). COMPARE_RUNS gives the runs per stack of the scenarios the
# issues quote (N >= 3, N >= 5 for the headline timings), 1 for the rest. COMPARE_SHARDS splits
# the runs into that many shards run side by side on this machine (the host load each run saw is
# recorded). About 2 hours with 2 shards on 2 cores. Exits as compare does, after recording.
COMPARE_RUNS ?= master-crash=5,proxy-crash=5,proxy-process-killed=5,old-master-returns=3,master-minority=3,master-freeze-long=3,flapping-link=3,sentinel-latency=3,proxy-link-latency=3,proxy-freeze-short=3,proxy-node-starved=3
COMPARE_SEED ?= 1
COMPARE_SHARDS ?= 2
COMPARE_OUT ?= out/compare-$(shell date +%Y%m%d-%H%M%S)
# COMPARE_SCENARIOS and COMPARE_RESULTS narrow it, e.g. the master-crash series of issue 10:
#   make compare COMPARE_SCENARIOS=master-crash COMPARE_RUNS=master-crash=5 COMPARE_RESULTS=docs/results/master-crash
COMPARE_SCENARIOS ?= --all
COMPARE_RESULTS ?= docs/results
compare: images
	@mkdir -p $(COMPARE_RESULTS)
	@SCENARIOS="$(COMPARE_SCENARIOS)" $(TIMED) compare .ci/compare.sh $(BIN)/redisha $(COMPARE_OUT) $(COMPARE_SHARDS) $(COMPARE_SEED) $(COMPARE_RUNS) $(COMPARE_RESULTS)

# The whole catalog on the redisha-durable variant (seed 1), recorded beside the plain redisha
# stack's runs from make compare (docs/results/compare-runs) in docs/results/durability/ and the
# table of docs/results/durability.md; each run's evidence under docs/results/durability-runs.
# About 40 minutes on 2 cores. Issue 14.
DURABILITY_OUT ?= out/durability-$(shell date +%Y%m%d-%H%M%S)
durability: images
	@$(TIMED) durability .ci/durability.sh $(BIN)/redisha $(DURABILITY_OUT) docs/results

chaos: images
	@$(TIMED) chaos $(BIN)/redisha run --all

# ---- fuzzing: every fuzz target for FUZZTIME each ----------------------------
FUZZTIME ?= 60s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

# ---- benchmarks ---------------------------------------------------------------
bench: bench-proxy bench-vip

clean:
	rm -rf $(BIN) out

# ---- vip ----
# VIP takeover (SIGKILL and SIGTERM of the master) for a keepalived pair and a
# redisha-vip pair at the same VRRPv3 advert interval, in one run, with ratios.
.PHONY: bench-vip test-vip
bench-vip:
	@set -o pipefail; REDISHA_BENCH_VIP=1 $(GO) test -count=1 -timeout 15m -run '^TestBenchTakeover$$' -v ./components/vip/daemon \
	  | grep -v -e '^=== RUN' -e '^--- PASS'

# The vip area's tests alone (root: namespaces, keepalived interop).
test-vip:
	$(GO) test -count=1 -timeout 10m ./components/vip/... ./cmd/redisha-vip/...

# ---- fault ----
# NFQUEUE latency accuracy (added-ms per configured delay) and throughput
# between two namespaces; numbers are recorded in docs/faults.md.
.PHONY: bench-fault test-fault
bench-fault:
	$(GO) test -count=1 -run '^$$' -bench 'NodeLinkDelay' -benchtime 3x ./scenarios/lab/fault/
	$(GO) test -count=1 -run '^$$' -bench 'NodeLinkThroughput' -benchtime 2s ./scenarios/lab/fault/

# The fault area's tests alone (root: namespaces, nftables, NFQUEUE, redis-server).
test-fault:
	$(GO) test -count=1 -timeout 5m ./scenarios/lab/fault/...

# ---- proxy ----
# redisha-proxy vs HAProxy (recipe tcp-check config) vs redis direct:
# redis-benchmark set/get, 50 clients, with and without -P 16, alternating
# rounds, in three placements (pinned, shared, two cores); then RSS for idle
# client connections; then the end-to-end switch latency benchmark.
PROXY_BENCH_ROUNDS ?= 5
PROXY_BENCH_N ?= 200000
PROXY_BENCH_NP ?= 1000000
PROXY_BENCH_PLACEMENTS ?= pinned,shared,two
.PHONY: bench-proxy
bench-proxy:
	@mkdir -p $(BIN) out
	$(GO) build -o $(BIN)/redisha-proxy ./cmd/redisha-proxy
	@$(TIMED) bench-proxy $(GO) run ./components/proxy/bench -proxy $(BIN)/redisha-proxy \
	  -rounds $(PROXY_BENCH_ROUNDS) -n $(PROXY_BENCH_N) -np $(PROXY_BENCH_NP) \
	  -placements $(PROXY_BENCH_PLACEMENTS) -markdown out/proxy-bench.md
	@echo "switch latency (end to end, through real sentinels):"
	$(GO) test -count=1 -run '^$$' -bench SwitchLatency -benchtime 10x ./components/proxy/daemon

# ---- witness ----
# redisha-witness alone (root for the netns partition test; real redis-server
# and redis-sentinel), and its footprint next to redis-sentinel in the same
# role (RSS and idle CPU side by side; recorded in docs/results/witness.md).
FOOTPRINT_SECONDS ?= 60
FOOTPRINT_RUNS ?= 3
.PHONY: test-witness footprint-witness
test-witness:
	$(GO) test -count=1 -timeout 10m ./components/witness/... ./cmd/redisha-witness/...

footprint-witness:
	FOOTPRINT_SECONDS=$(FOOTPRINT_SECONDS) FOOTPRINT_RUNS=$(FOOTPRINT_RUNS) FOOTPRINT_OUT=$(CURDIR)/docs/results/witness.md \
		$(GO) test -count=1 -timeout 30m -run '^$$' -bench Footprint -benchtime 1x ./components/witness/interop/

# ---- sim ----
# Deterministic simulator: seeded fault schedules against the production VIP
# machine, proxy routing core and witness voter in virtual time; prints
# schedules/s, the invariants with the seeds that break them, and measures.
# Replay a seed: go run ./cmd/redisha sim vip --seed N --trace
SIM_SEED ?= 1
SIM_VIP_SCHEDULES ?= 5000
SIM_PROXY_SCHEDULES ?= 1000
SIM_WITNESS_SCHEDULES ?= 500
SIM_HELLO_SEEDS ?= 10000
.PHONY: sim sim-vip sim-proxy sim-proxy-hello sim-witness test-sim
sim: sim-vip sim-proxy sim-proxy-hello sim-witness

sim-vip:
	$(GO) run ./cmd/redisha sim vip --schedules $(SIM_VIP_SCHEDULES) --seed $(SIM_SEED)

sim-proxy:
	$(GO) run ./cmd/redisha sim proxy --schedules $(SIM_PROXY_SCHEDULES) --seed $(SIM_SEED)

# The proxy's hello path (routing.hello_views) with a client forging hellos:
# every routing invariant over SIM_HELLO_SEEDS schedules (~15 CPU-minutes).
sim-proxy-hello:
	PROXYSIM_HELLO_SEEDS=$(SIM_HELLO_SEEDS) $(GO) test -count=1 -timeout 60m -run '^TestHelloPathHoldsInvariants$$' -v ./sim/proxysim/

sim-witness:
	$(GO) run ./cmd/redisha sim witness --schedules $(SIM_WITNESS_SCHEDULES) --seed $(SIM_SEED)

# The sim area's tests alone (no root, no Docker; under a minute).
test-sim:
	$(GO) test -count=1 ./sim/... && $(GO) test -count=1 -run '^TestSim' ./cmd/redisha/
