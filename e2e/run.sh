#!/usr/bin/env bash
# End-to-end browser tests: installs what they need, builds the server, runs them.
#
#   e2e/run.sh                          # debug build of the server
#   ROOMCAST_BIN=target/release/roomcast e2e/run.sh
#
# Needs: Debian's chromium (installed with apt-get when missing), node >= 18 with npm
# (checked against the engines of package.json and the locked playwright-core; Debian 12's
# own nodejs 18 fits), cargo. npm brings playwright-core and axe-core (the accessibility
# checks). Exits non-zero when a test fails. Screenshots land in
# e2e/screenshots/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@"
}

if [ ! -x "$CHROMIUM" ]; then
    echo "e2e: installing chromium"
    apt_install chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "e2e: installing node and npm"
    apt_install nodejs npm
fi

cd "$here"
# The oldest Node the tests and the locked playwright-core run on: the larger of the
# `engines` minimums ("node": ">=N") in package.json and package-lock.json. Plain ES5 here,
# so that a Node too old to run the tests still gets as far as saying so.
need_node="$(node -e '
    var pkg = require("./package.json");
    var lock = require("./package-lock.json").packages["node_modules/playwright-core"];
    var need = 0;
    [pkg.engines, lock && lock.engines].forEach(function (e) {
        var m = /^>=\s*(\d+)/.exec((e && e.node) || "");
        if (m) need = Math.max(need, Number(m[1]));
    });
    console.log(need);
')"
have_node="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$have_node" -lt "$need_node" ]; then
    echo "e2e: Node $need_node or newer is needed (package.json and playwright-core's engines);" \
        "this is $(node --version) at $(command -v node)." >&2
    echo "e2e: install a newer Node (e.g. from https://nodejs.org or your distribution's backports)" \
        "and put it first on PATH." >&2
    exit 1
fi
# playwright-core never downloads a browser by itself; this makes sure nothing else does.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# Installs the locked packages unless every one of package.json's is there in its version.
if ! node -e '
    const want = require("./package.json").devDependencies;
    for (const [name, version] of Object.entries(want)) {
        let have = "";
        try { have = require(`./node_modules/${name}/package.json`).version; } catch {}
        if (have !== version) process.exit(1);
    }
'; then
    npm ci --no-audit --no-fund --loglevel=error
fi

if [ -z "${ROOMCAST_BIN:-}" ]; then
    echo "e2e: building the server"
    (cd "$root" && cargo build --bin roomcast)
    export ROOMCAST_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/roomcast"
fi
case "$ROOMCAST_BIN" in
    /*) ;;
    *) ROOMCAST_BIN="$root/$ROOMCAST_BIN" ;;
esac
export ROOMCAST_BIN
echo "e2e: server $ROOMCAST_BIN, browser $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"

mkdir -p screenshots
node --test chat.test.mjs
