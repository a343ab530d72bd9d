#!/usr/bin/env bash
# make compare: the whole catalog on the reference and redisha stacks, split into SHARDS
# deterministic shards run side by side on this machine (compare --shard i/n), then recorded in
# RESULTS (compare.md, compare.json, compare.html) with every run's evidence kept beside it:
# RESULTS/compare-runs/shardI/STACK/SCENARIO-N/ holds the run's result.json, events.jsonl and a
# report rendered from them (the full reports, with every client operation, stay under OUT).
# SCENARIOS (environment, default --all): the scenarios to compare, e.g. "master-crash".
# Exit status as compare's (the worst shard's).
set -uo pipefail
bin=$1 out=$2 shards=$3 seed=$4 runs=$5 results=$6
read -r -a scenarios <<<"${SCENARIOS:---all}"
mkdir -p "$out"
pids=()
for i in $(seq 1 "$shards"); do
	args=(compare "${scenarios[@]}" --stacks reference,redisha --runs "$runs" --seed "$seed" --shard "$i/$shards" --out "$out/shard$i")
	if [ "$shards" -eq 1 ]; then
		"$bin" "${args[@]}" &
	else
		echo "shard $i/$shards: $out/shard$i.log"
		"$bin" "${args[@]}" >"$out/shard$i.log" 2>&1 &
	fi
	pids+=($!)
done
status=0
for p in "${pids[@]}"; do
	wait "$p"
	rc=$?
	if [ "$rc" -gt "$status" ]; then status=$rc; fi
done
for i in $(seq 1 "$shards"); do
	[ "$shards" -eq 1 ] || tail -n 3 "$out/shard$i.log"
done

evidence=$results/compare-runs
rm -rf "$evidence"
runs_kept=()
for i in $(seq 1 "$shards"); do
	src=$out/shard$i
	[ -f "$src/compare.json" ] || { echo "shard $i/$shards wrote no compare.json" >&2; status=2; continue; }
	mkdir -p "$evidence/shard$i"
	cp "$src/compare.json" "$evidence/shard$i/"
	for res in "$src"/*/*/result.json; do
		[ -f "$res" ] || continue
		run=$(dirname "$res")
		dst=$evidence/shard$i/${run#"$src"/}
		mkdir -p "$dst"
		cp "$res" "$dst/"
		[ -f "$run/events.jsonl" ] && cp "$run/events.jsonl" "$dst/"
		runs_kept+=("$dst")
	done
done
if [ "${#runs_kept[@]}" -gt 0 ]; then
	"$bin" report "${runs_kept[@]}" >/dev/null || true # its exit status is the runs' verdicts
fi
"$bin" report --merge --out "$results" "$evidence"/shard* >/dev/null
rc=$?
if [ "$rc" -gt "$status" ]; then status=$rc; fi
rm -f "$results/junit.xml"
echo "recorded: $results/compare.md, $results/compare.html (evidence: $evidence; full reports: $out)"
exit "$status"
