#!/usr/bin/env bash
# Fuzz smoke test (issue 14): builds the cargo-fuzz targets in fuzz/ and runs each for a
# short time (FUZZ_SECONDS, 45 s by default) from its seeds, in a fresh corpus; fails on a
# crash, a broken invariant, a timeout or an out-of-memory input (libFuzzer's artifact is
# kept in target/ci-artifacts/fuzz/<target>/).
#
# Needs: rustup's stable toolchain (the sanitizer flags cargo-fuzz passes are unstable:
# they are allowed on stable with RUSTC_BOOTSTRAP=1, unless FUZZ_TOOLCHAIN names another
# toolchain, such as an installed nightly), a C++ compiler for libFuzzer (installed
# with apt-get when missing and running as root), and cargo-fuzz from crates.io
# (installed once into ~/.cargo/bin; a second run finds it). Build output stays in
# fuzz/target, not incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-45}
targets=${FUZZ_TARGETS:-"ceph_command ceph_session manila_http csi"}
cargo_fuzz_version=0.13.2
export CARGO_INCREMENTAL=0

if ! command -v c++ >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq g++ >/dev/null
  else
    echo "fuzz-smoke: libFuzzer needs a C++ compiler (c++); install g++" >&2
    exit 1
  fi
fi

if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $cargo_fuzz_version"; then
  echo "== installing cargo-fuzz $cargo_fuzz_version from crates.io"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
  toolchain=(+"$FUZZ_TOOLCHAIN")
else
  toolchain=(+stable)
  export RUSTC_BOOTSTRAP=1
fi
echo "== toolchain: $(rustc "${toolchain[@]}" --version)${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}"

started=$SECONDS
echo "== building the fuzz targets (address sanitizer, coverage instrumentation)"
cargo "${toolchain[@]}" fuzz build
echo "built in $((SECONDS - started)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts=target/ci-artifacts/fuzz
failed=()
for t in $targets; do
  mkdir -p "$work/$t" "$artifacts/$t"
  echo "== fuzzing $t for $seconds s"
  # The fresh corpus comes first: libFuzzer writes new inputs there, never into seeds/.
  # Absolute paths: the csi harness changes its working directory.
  if cargo "${toolchain[@]}" fuzz run "$t" "$work/$t" "$PWD/fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$PWD/$artifacts/$t/" >"$work/$t.log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
      "$work/$t.log" | tr '\n' ' '
    echo
    echo "$t: corpus of $(find "$work/$t" -type f | wc -l) inputs"
  else
    tail -n 60 "$work/$t.log"
    echo "fuzz-smoke: $t FAILED; the input is in $artifacts/$t/"
    failed+=("$t")
  fi
done
echo "fuzz-smoke: $((SECONDS - started)) s in all"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz-smoke: failed: ${failed[*]}"
  exit 1
fi
echo "fuzz-smoke: $(echo "$targets" | wc -w) passed, 0 failed"
