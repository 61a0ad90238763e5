#!/usr/bin/env bash
# `make fuzz` / `make fuzz-ci`: builds Herald's libFuzzer targets (the separate package in Fuzz/,
# with ASan, in its own scratch path Fuzz/.build-fuzz) and runs each for a bounded time from its
# committed seed corpus. Crashes (inputs that trap, overflow, break an invariant, time out or
# blow the memory limit) are written to Fuzz/crashes/<target>/ and make the script exit 1.
#
#   scripts/fuzz.sh [target...]          fuzz each target FUZZ_SECONDS (default 60) seconds
#   scripts/fuzz.sh --replay [target...] run every seed, every kept corpus input, every saved
#                                        crash and every input in Fuzz/regressions/<target>/
#                                        once (no fuzzing): the regression check
#   scripts/fuzz.sh --build              build only
#
# Targets: FuzzHTTPParser FuzzWebSocket FuzzJSON FuzzConfig FuzzAuth (default: all).
# Environment: FUZZ_SECONDS, FUZZ_TIMEOUT (seconds one input may take, default 10),
#   FUZZ_RSS_MB (memory limit, default 2560), FUZZ_ARGS (extra libFuzzer flags), SWIFT,
#   FUZZ_CONFIG (release, the default: -O keeps Swift's bounds and overflow checks and runs
#   about 10x more inputs a second than debug; debug adds the checks of unsafe-pointer
#   subscripts and takes a third of the build time).
# New interesting inputs go to Fuzz/.corpus/<target>/ (ignored by git) and are reused by later
# runs; the seeds in Fuzz/corpus/<target>/ are never modified (see Fuzz/seeds.py).
set -uo pipefail
cd "$(dirname "$0")/../Fuzz"

SWIFT="${SWIFT:-swift}"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
CONFIG="${FUZZ_CONFIG:-release}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
RSS_MB="${FUZZ_RSS_MB:-2560}"
ALL=(FuzzHTTPParser FuzzWebSocket FuzzJSON FuzzConfig FuzzAuth)
declare -A MAX_LEN=([FuzzHTTPParser]=8192 [FuzzWebSocket]=8192 [FuzzJSON]=4096 [FuzzConfig]=1024 [FuzzAuth]=2048)

mode=fuzz
targets=()
for arg in "$@"; do
  case "$arg" in
    --replay) mode=replay ;;
    --build) mode=build ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    Fuzz*) targets+=("$arg") ;;
    *) echo "fuzz: unknown argument '$arg' (targets: ${ALL[*]})" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
  [ -n "${MAX_LEN[$t]:-}" ] || { echo "fuzz: unknown target '$t' (targets: ${ALL[*]})" >&2; exit 2; }
done

echo "fuzz: building (swift build -c $CONFIG -Xswiftc -sanitize=fuzzer,address --scratch-path .build-fuzz in Fuzz/)"
build_log=$(mktemp)
if ! "$SWIFT" build -c "$CONFIG" -Xswiftc -sanitize=fuzzer,address --scratch-path .build-fuzz >"$build_log" 2>&1; then
  # ld.gold's "Cannot export local symbol '__asan_...'" lines are noise; show the rest.
  grep -v "Cannot export local symbol" "$build_log" | grep -E "error|warning: unre" | sort -u | head -40 >&2
  echo "fuzz: build failed (full log: $build_log)" >&2
  exit 2
fi
rm -f "$build_log"
bin_dir="$("$SWIFT" build -c "$CONFIG" --scratch-path .build-fuzz --show-bin-path)"
[ "$mode" != build ] || exit 0

# Let ASan report through libFuzzer (which saves the input); keep LeakSanitizer quiet about the
# Swift runtime's lazily allocated metadata, which lives for the whole process.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=0:handle_abort=1}"
# A Swift trap must reach libFuzzer's crash handler at once: Swift's own backtracer
# (swift-backtrace) would otherwise take over the crashed process and can hang the run.
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"

failed=()
summary=()
for t in "${targets[@]}"; do
  seeds="corpus/$t"
  work=".corpus/$t"
  crashes="crashes/$t"
  mkdir -p "$work" "$crashes" .logs
  log=".logs/$t.log"
  dict=()
  [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  if [ "$mode" = replay ]; then
    inputs=()
    for d in "$seeds" "$work" "$crashes" "regressions/$t"; do
      while IFS= read -r -d '' f; do inputs+=("$f"); done < <(find "$d" -maxdepth 1 -type f ! -name '*.log' -print0 2>/dev/null)
    done
    echo "fuzz: $t: replaying ${#inputs[@]} inputs"
    if [ ${#inputs[@]} -eq 0 ]; then continue; fi
    # In batches, so a large working corpus stays under the argument-size limit.
    if printf '%s\0' "${inputs[@]}" | xargs -0 -n 500 "$bin_dir/$t" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" >"$log" 2>&1; then
      summary+=("$t: ${#inputs[@]} inputs replayed, all pass")
    else
      failed+=("$t")
      summary+=("$t: REPLAY FAILED (see Fuzz/$log)")
      grep -E "INVARIANT|ERROR: |Fatal error|Running: " "$log" | tail -6 | sed 's/^/    /'
    fi
    continue
  fi
  echo "fuzz: $t for ${SECONDS_EACH}s (seeds $seeds, corpus $work, crashes $crashes/)"
  # shellcheck disable=SC2086
  "$bin_dir/$t" "$work" "$seeds" \
      -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
      -max_len="${MAX_LEN[$t]}" -use_value_profile=1 -print_final_stats=1 \
      -artifact_prefix="$crashes/" "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
  status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -1)
  [ -n "$rate" ] || rate=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\(\/[0-9a-zA-Z]*\)\{0,1\}\).*/cov \1, features \2, corpus \3/p' <<<"$last")
  if [ $status -eq 0 ]; then
    summary+=("$t: ok, ${execs:-?} execs, ${rate:-?} exec/s, ${cov:-no stats}")
  else
    failed+=("$t")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    summary+=("$t: CRASH (exit $status) after ${execs:-?} execs; input: Fuzz/${artifact:-?}; log: Fuzz/$log")
    grep -E "INVARIANT BROKEN|ERROR: (AddressSanitizer|libFuzzer)|Fatal error|SUMMARY" "$log" | head -4 | sed 's/^/    /'
    # The first frames of the stack, demangled.
    grep -E '^ +#[0-9]+ ' "$log" | head -10 | "$SWIFT" demangle --simplified 2>/dev/null | sed 's/^ */    /' | cut -c1-220
  fi
done

echo
echo "fuzz summary ($mode):"
for line in "${summary[@]}"; do echo "  $line"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failures in ${failed[*]}; reproduce with: SWIFT_BACKTRACE=enable=no Fuzz/.build-fuzz/$CONFIG/<target> <input file>" >&2
  exit 1
fi
