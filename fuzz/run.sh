#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, one after the other; exits non-zero on the
# first crash (libFuzzer writes the input to fuzz/artifacts/<target>/).
#
#   bash fuzz/run.sh            # 20 s per target
#   bash fuzz/run.sh 300        # 5 min per target
#
# Works on the stable toolchain: with no sanitizer (`-s none`) cargo-fuzz passes rustc only
# stable flags (coverage instrumentation, `--cfg fuzzing`). The code under test is safe
# Rust, so what we look for is panics, and debug assertions (`-a`) turn integer overflows
# into panics too. (AddressSanitizer needs `-Z` flags: `RUSTC_BOOTSTRAP=1 cargo fuzz run
# -s address TARGET` on stable.) The first build compiles the whole dependency tree
# instrumented, into fuzz/target (many minutes on two cores); later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
flags=(-s none -a)

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi

cargo fuzz build "${flags[@]}"
for target in $(cargo fuzz list); do
    printf '\n== fuzz %s (%ss) ==\n' "$target" "$secs"
    # corpus/ collects what the run finds (not committed); seeds/ are the committed starts.
    mkdir -p "corpus/$target" "seeds/$target"
    cargo fuzz run "${flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
printf '\nfuzz: every target ran %ss without a crash\n' "$secs"
