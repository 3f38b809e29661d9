#!/usr/bin/env bash
# Rebuilds vendor/actix-http: the published actix-http crate, trimmed to the library, plus
# the patches in vendor/patches/actix-http (what each is and why: README.md there).
#
#   scripts/vendor-actix-http.sh           # rewrite vendor/actix-http
#   scripts/vendor-actix-http.sh --check   # rebuild into a temporary directory; fail, with
#                                          # the diff, when vendor/actix-http differs
#
# The crate comes from cargo's registry cache (fetched with `cargo fetch` when absent) and
# must match the checksum below, the one crates.io's index lists for it.
# Needs: cargo, git (to apply the patches), tar, sha256sum, awk, diff.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

VERSION=3.20.0
SHA256=d20a22850ea7fecad12c5f8cd97d246c3af1f04ef400033977c2f13425c45816
PATCHES=$root/vendor/patches/actix-http
VENDORED=$root/vendor/actix-http

mode=write
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The published .crate in cargo's cache; a throwaway package that depends on exactly this
# version makes cargo download it (and verify it against the index) when it is not there.
crate_file() {
  local file
  for file in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"actix-http-$VERSION.crate"; do
    if [[ -f $file ]]; then
      echo "$file"
      return
    fi
  done
}
crate=$(crate_file)
if [[ -z $crate ]]; then
  mkdir -p "$work/fetch/src"
  touch "$work/fetch/src/lib.rs"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nactix-http = "=%s"\n' \
    "$VERSION" >"$work/fetch/Cargo.toml"
  host=$(rustc -vV | sed -n 's/^host: //p')
  cargo fetch --quiet --manifest-path "$work/fetch/Cargo.toml" --target "$host"
  crate=$(crate_file)
  [[ -n $crate ]] || { echo "cargo fetch did not leave actix-http-$VERSION.crate" >&2; exit 1; }
fi
echo "$SHA256  $crate" | sha256sum --check --quiet - ||
  { echo "$crate is not the published actix-http $VERSION (checksum)" >&2; exit 1; }

# The library only: its sources, manifest, readme and licences. The manifest loses the
# examples, tests and benches (not shipped here) and the dev-dependencies only they use.
tar -xzf "$crate" -C "$work"
pub=$work/actix-http-$VERSION
out=$work/out/actix-http
mkdir -p "$out"
cp -R "$pub/src" "$pub/README.md" "$pub/LICENSE-APACHE" "$pub/LICENSE-MIT" "$out/"
awk '
  /^\[/ { skip = ($0 ~ /^\[\[(example|test|bench)\]\]$/ || $0 ~ /^\[dev-dependencies[].]/) }
  !skip
' "$pub/Cargo.toml" >"$out/Cargo.toml"

# Each patch in order, exactly (git apply takes no fuzz). The ceiling keeps git from
# treating an enclosing repository as the one to patch.
for patch in "$PATCHES"/[0-9]*.patch; do
  (cd "$out" && GIT_CEILING_DIRECTORIES=$work git apply --whitespace=error "$patch") ||
    { echo "$(basename "$patch") does not apply to actix-http $VERSION" >&2; exit 1; }
done

{
  printf '# actix-http %s, patched for roomcast\n\n' "$VERSION"
  printf 'Written by `scripts/vendor-actix-http.sh`, which CI runs with `--check`: edit the patches,\n'
  printf 'not this directory. This is the published crate (https://crates.io/crates/actix-http/%s,\n' "$VERSION"
  printf 'MIT OR Apache-2.0, licences here), trimmed to the library (no examples, tests or benches;\n'
  printf '`Cargo.toml` without their targets and dev-dependencies), plus these patches from\n'
  printf '`vendor/patches/actix-http/`, in order:\n\n'
  for patch in "$PATCHES"/[0-9]*.patch; do
    printf -- '- `%s`: %s\n' "$(basename "$patch")" "$(sed -n '1s/^Subject: //p' "$patch")"
  done
  printf '\nWhat each changes, why, and what an upstream version would look like:\n'
  printf '`vendor/patches/actix-http/README.md`. Search for `roomcast:` to find the changes.\n'
} >"$out/PATCHED.md"

if [[ $mode == check ]]; then
  if ! diff -ru "$out" "$VENDORED"; then
    echo "vendor/actix-http differs from actix-http $VERSION plus vendor/patches/actix-http" \
      "(above: - what the script builds, + what is committed); run $0 to rebuild it" >&2
    exit 1
  fi
  echo "vendor/actix-http is actix-http $VERSION plus $(ls "$PATCHES"/[0-9]*.patch | wc -l) patches"
else
  rm -rf "$VENDORED"
  cp -R "$out" "$VENDORED"
  echo "rebuilt vendor/actix-http: actix-http $VERSION plus $(ls "$PATCHES"/[0-9]*.patch | wc -l) patches"
fi
