#!/usr/bin/env bash
# Runs udpchat's fuzz targets under libFuzzer, on stable Rust, with no
# cargo-fuzz and no nightly (see docs/FUZZING.md).
#
#   fuzz/run.sh [-t SECONDS | -n RUNS] [TARGET...]
#
#   -t SECONDS   fuzz each target this long (default 60)
#   -n RUNS      fuzz each target for this many executions instead
#   TARGET...    the targets to run (default: every fuzz/fuzz_targets/*.rs)
#
# UDPCHAT_FUZZ_ARGS adds libFuzzer options (say "-max_len=1200 -dict=FILE").
# CARGO_TARGET_DIR moves the build, the new inputs and the crashes.
#
# Builds the targets with the coverage instrumentation cargo-fuzz uses
# (`cargo fuzz build --sanitizer none --debug-assertions`), then runs them
# one after the other. New inputs go to target/fuzz/corpus/TARGET (the
# checked-in seeds in fuzz/corpus/TARGET are read, never written); a crash
# is saved as target/fuzz/artifacts/TARGET/crash-*. Prints one line per
# target (executions, seconds, crashes), then "fuzz: N passed, N failed"
# (a target that crashed failed), and exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
runs=""
while getopts "t:n:h" opt; do
    case "$opt" in
        t) seconds="$OPTARG" ;;
        n) runs="$OPTARG" ;;
        *) sed -n "2,20p" "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for file in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$file" .rs)")
    done
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-target}"
# Exactly the flags `cargo fuzz build --sanitizer none --debug-assertions`
# passes (cargo-fuzz 0.13.2, in its order, so either one reuses the other's
# build): SanitizerCoverage for libFuzzer's feedback, compare tracing, and
# debug assertions (so integer overflow panics, too).
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions -Ccodegen-units=1"
echo "== building ${#targets[@]} fuzz targets (release, instrumented, $triple)"
bins=()
for target in "${targets[@]}"; do
    bins+=(--bin "$target")
done
cargo build --locked --release --config 'profile.release.debug="line-tables-only"' \
    --manifest-path fuzz/Cargo.toml --features libfuzzer --target "$triple" "${bins[@]}"

out="$target_dir/fuzz"
crashed=()
printf '%-20s %14s %8s %10s %8s\n' target executions seconds exec/s crashes
for target in "${targets[@]}"; do
    mkdir -p "$out/corpus/$target" "$out/artifacts/$target" "$out/logs"
    log="$out/logs/$target.log"
    if [ -n "$runs" ]; then
        limit=(-runs="$runs")
    else
        limit=(-max_total_time="$seconds")
    fi
    before="$(find "$out/artifacts/$target" -type f | wc -l)"
    start="$(date +%s)"
    status=0
    # shellcheck disable=SC2086 # UDPCHAT_FUZZ_ARGS is split into options
    "$target_dir/$triple/release/$target" "${limit[@]}" -print_final_stats=1 -timeout=10 \
        -artifact_prefix="$out/artifacts/$target/" ${UDPCHAT_FUZZ_ARGS:-} \
        "$out/corpus/$target" "fuzz/corpus/$target" >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    executions="${executions:-0}"
    crashes=$(($(find "$out/artifacts/$target" -type f | wc -l) - before))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # died without an artifact: count it, and show the log
    fi
    printf '%-20s %14s %8s %10s %8s\n' "$target" "$executions" "$elapsed" \
        "$((executions / (elapsed > 0 ? elapsed : 1)))" "$crashes"
    if [ "$crashes" -ne 0 ]; then
        crashed+=("$target")
        echo "---- $target crashed (exit $status); the end of $log:"
        tail -40 "$log"
        echo "---- saved inputs:"
        ls -t "$out/artifacts/$target" | head -n "$crashes" | sed "s|^|$out/artifacts/$target/|"
        echo "---- reproduce: $target_dir/$triple/release/$target ARTIFACT"
    fi
done
# One target that ran without a crash is one passed.
echo "fuzz: $((${#targets[@]} - ${#crashed[@]})) passed, ${#crashed[@]} failed"
if [ ${#crashed[@]} -ne 0 ]; then
    echo "fuzzing found crashes in: ${crashed[*]}"
    exit 1
fi
