#!/usr/bin/env bash
# make durability: the whole catalog on the redisha-durable variant (seed 1), recorded in RESULTS
# beside the plain redisha stack's recorded runs (issue 14, "Must show"):
#   RESULTS/durability-runs/redisha-durable/SCENARIO-N/  each run's result.json, events.jsonl and
#       a report rendered from them, with the compare's compare.json (its plan: a run that did not
#       finish is listed as missing), as .ci/compare.sh keeps its evidence;
#   RESULTS/durability/  compare.md, compare.json, compare.html: report --merge of those runs and
#       the plain stack's runs under PLAIN (default RESULTS/compare-runs, make compare's evidence:
#       every */redisha and */*/redisha directory below it, so the recipe's runs stay out);
#   RESULTS/durability.md  the figures between its "durability-table" markers, regenerated from
#       RESULTS/durability/compare.json (the text around them is kept).
# The full reports, with every client operation, stay under OUT.
#
# Usage: durability.sh [--record-only] BIN OUT RESULTS
#   --record-only  skip the compare: record the runs already in OUT (a compare --out OUT of the
#                  variant, or any directory of its runs), e.g. after a run that was interrupted.
# Environment: PLAIN (the plain stack's evidence), DURABILITY_SEED (default 1).
# Exit status: the compare's (its verdicts), or the merge's when worse (2: runs missing).
set -uo pipefail
record_only=0
if [ "${1:-}" = "--record-only" ]; then
	record_only=1
	shift
fi
if [ $# -ne 3 ]; then
	echo "usage: $0 [--record-only] BIN OUT RESULTS" >&2
	exit 2
fi
bin=$1 out=$2 results=$3
plain=${PLAIN:-$results/compare-runs}
seed=${DURABILITY_SEED:-1}
variant=redisha-durable
command -v jq >/dev/null || { echo "durability.sh: jq is needed to write durability.md" >&2; exit 2; }

status=0
if [ "$record_only" -eq 0 ]; then
	mkdir -p "$out"
	"$bin" compare --all --stacks "$variant" --seed "$seed" --out "$out"
	status=$?
fi

# Every run's evidence, at the same relative path as in OUT, so compare.json's plan still names
# the run directories.
evidence=$results/durability-runs
if [ -d "$out" ] && [ -d "$evidence" ] && [ "$(cd "$out" && pwd -P)" = "$(cd "$evidence" && pwd -P)" ]; then
	echo "durability.sh: OUT is the evidence directory itself; give the compare's output" >&2
	exit 2
fi
rm -rf "$evidence"
mkdir -p "$evidence"
# The plan, limited to the variant's runs (a compare of several stacks would otherwise have the
# merge count the other stacks' runs, not kept here, as missing).
if [ -f "$out/compare.json" ]; then
	jq --arg v "$variant" '(.planned, .whole_plan, .missing) |= (if . == null then . else map(select(.stack == $v)) end)' "$out/compare.json" >"$evidence/compare.json" || exit 2
fi
kept=()
for res in "$out"/*/result.json "$out"/*/*/result.json; do
	[ -f "$res" ] || continue
	run=$(dirname "$res")
	[ "$(jq -r .stack "$res")" = "$variant" ] || continue
	dst=$evidence/${run#"$out"/}
	mkdir -p "$dst"
	cp "$res" "$dst/"
	[ -f "$run/events.jsonl" ] && cp "$run/events.jsonl" "$dst/"
	kept+=("$dst")
done
if [ "${#kept[@]}" -eq 0 ]; then
	echo "durability.sh: no $variant run under $out" >&2
	exit 2
fi
"$bin" report "${kept[@]}" >/dev/null || true # its exit status is the runs' verdicts

# The plain stack's runs: only its own directories, not the recipe's (a compare.json of make
# compare would bring the reference stack in as a third column).
plain_dirs=()
for d in "$plain"/redisha "$plain"/*/redisha; do
	[ -d "$d" ] && plain_dirs+=("$d")
done
if [ "${#plain_dirs[@]}" -eq 0 ]; then
	echo "durability.sh: no recorded redisha runs under $plain (run make compare first, or set PLAIN)" >&2
	status=2
fi
"$bin" report --merge --out "$results/durability" "$evidence" "${plain_dirs[@]}" >/dev/null
rc=$?
if [ "$rc" -gt "$status" ]; then status=$rc; fi
rm -f "$results/durability/junit.xml"
[ -f "$results/durability/compare.json" ] || { echo "durability.sh: the merge wrote no compare.json" >&2; exit 2; }

# durability.md's figures, from the merged document.
doc=$results/durability.md
table=$(mktemp)
trap 'rm -f "$table" "$table.md"' EXIT
# shellcheck disable=SC2016 # a jq program, not shell
jq -r --arg v "$variant" --arg plain redisha '
def num($d): if . == null then "–" else (. * $d | round / $d | tostring) end;
def s1: if . == null then "–" else (. * 10 | round) as $x | ($x | fabs) as $a
	| (if $x < 0 then "-" else "" end) + "\(($a / 10) | floor).\($a % 10)" end;
def stack($n): (.stacks // [])[] | select(.stack == $n);
def cell($n): [stack($n)] | first // null;
def runs: (.runs // []);
def stat($k): if . != null and (.stats[$k].measured // 0) > 0 then .stats[$k] else null end;
def outcome: if . == null or (runs | length) == 0 then "–" else [runs[] | .outcome] | unique | join(", ") end;
def link($r): "durability/" + $r.link | sub("^durability/\\.\\./"; "");
"Generated \(.generated[0:16] | sub("T"; " ")) UTC from durability/compare.json: the variant at seed 1, the plain stack as recorded by make compare (all its runs: N per cell). Machines: \((.machines // []) | join(", ")); builds: \(if (.versions // []) | length > 0 then .versions | join(", ") else "not recorded" end); host load average (1 min) over the runs: \(if .host_load then "\(.host_load.min)–\(.host_load.max) (median \(.host_load.median))" else "not recorded" end).",
"",
([.scenarios[] | cell($v) | select(. != null and (runs | length) > 0)] as $d
 | ([$d[] | runs[] | select((.values.lost_writes // 0) > 0)] | length) as $lossy
 | ([$d[] | runs[] | select(.values.lost_writes == null)] | length) as $unmeasured
 | "**\($v)**: \($d | map(runs | length) | add // 0) runs over \($d | length) scenarios; runs with acknowledged writes lost: **\($lossy)**; runs where lost writes were not measured (harness error): \($unmeasured); planned runs missing: \((.missing // []) | length)\(if (.missing // []) | length > 0 then " (" + ([.missing[] | "\(.stack) \(.scenario) run \(.run)"] | join(", ")) + ")" else "" end)."),
"",
"| scenario | \($plain): runs | \($plain): lost (max) | \($plain): write unavailability, median s | \($v): lost | \($v): write unavailability s | difference s | \($v): outcome |",
"| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
(.scenarios[]
 | cell($plain) as $p | cell($v) as $d
 | ($d // {} | runs | first // null) as $r
 | ($p | stat("write_unavailability_s") | .median // null) as $pu
 | ($r.values.write_unavailability_s // null) as $du
 | "| \(if $r and $r.link then "[\(.name)](\(link($r)))" else .name end) | \($p // {} | runs | length) | \($p | stat("lost_writes") | .max // null | num(1)) | \($pu | s1) | \(if $r then ($r.values.lost_writes // null | num(1)) else "not run" end) | \($du | s1) | \(if $pu != null and $du != null then ($du - $pu | s1 | if startswith("-") then . else "+" + . end) else "–" end) | \($d | outcome) |")
' "$results/durability/compare.json" >"$table" || exit 2
begin='<!-- durability-table: begin (generated by .ci/durability.sh from durability/compare.json; do not edit) -->'
end='<!-- durability-table: end -->'
if [ -f "$doc" ] && grep -qF "$begin" "$doc"; then
	awk -v b="$begin" -v e="$end" -v t="$table" '
		$0 == b { print; while ((getline l < t) > 0) print l; skip = 1; next }
		$0 == e { skip = 0 }
		!skip { print }' "$doc" >"$table.md" && mv "$table.md" "$doc"
else
	{ [ -f "$doc" ] && cat "$doc" && echo; echo "$begin"; cat "$table"; echo "$end"; } >"$table.md" && mv "$table.md" "$doc"
fi
echo "recorded: $doc, $results/durability/compare.md, compare.html (evidence: $evidence; plain stack: ${plain_dirs[*]:-none}; full reports: $out)"
exit "$status"
