#!/usr/bin/env bash
# Starts or stops nginx + Nchan for the side-by-side bench, on loopback, in a temporary
# prefix (never the system's nginx).
#
#   NCHAN_PREFIX=/tmp/nchan-x NCHAN_PORT=18080 benches/nchan/run.sh start   # prints the master pid
#   NCHAN_PREFIX=/tmp/nchan-x benches/nchan/run.sh stop                     # stops it by pid
#
# NCHAN_PING (default 15) is the seconds between eventsource pings.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${NCHAN_PREFIX:?set NCHAN_PREFIX to a scratch directory}"
pidfile="$prefix/logs/nginx.pid"

case "${1:-}" in
start)
  port="${NCHAN_PORT:?set NCHAN_PORT}"
  command -v nginx >/dev/null || {
    echo "nginx not found: apt-get install -y nginx-light libnginx-mod-nchan" >&2
    exit 1
  }
  mkdir -p "$prefix/logs" "$prefix/tmp/body"
  sed -e "s/@PORT@/$port/" -e "s/@PING@/${NCHAN_PING:-15}/" "$here/nginx.conf" >"$prefix/nginx.conf"
  # Workers run as root so they may read their own prefix; loopback only.
  nginx -p "$prefix/" -c "$prefix/nginx.conf" -g 'user root;'
  for _ in $(seq 100); do
    [ -s "$pidfile" ] && break
    sleep 0.05
  done
  [ -s "$pidfile" ] || { echo "nginx did not write $pidfile" >&2; cat "$prefix/logs/error.log" >&2; exit 1; }
  cat "$pidfile"
  ;;
stop)
  [ -s "$pidfile" ] || exit 0
  pid="$(cat "$pidfile")"
  # What went wrong, if anything (out of shared memory, dropped messages…).
  grep -E '\[(error|crit|alert|emerg)\]' "$prefix/logs/error.log" | tail -5 >&2 || true
  kill -TERM "$pid" 2>/dev/null || exit 0
  # Wait for the master (and so its workers) to go, then insist.
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || exit 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  ;;
*)
  echo "usage: NCHAN_PREFIX=DIR [NCHAN_PORT=PORT] $0 start|stop" >&2
  exit 2
  ;;
esac
