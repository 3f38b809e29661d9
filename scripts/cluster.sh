#!/usr/bin/env bash
# A two-node roomcast cluster on one machine, behind nginx round-robin (no sticky sessions):
#
#   scripts/cluster.sh start   # database, node 1 (:8081), node 2 (:8082), nginx (:8080)
#   scripts/cluster.sh status
#   scripts/cluster.sh stop    # stops nginx and the nodes (the database is kept)
#
# Browsers and scripts use http://127.0.0.1:8080 exactly as they would use one node.
# Needs: PostgreSQL answering at $ROOMCAST_PG_ADMIN (started here when it does not), nginx
# (Debian: apt-get install nginx-light), and a built binary (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=${ROOMCAST_CLUSTER_DIR:-/tmp/roomcast-cluster}
DB=${ROOMCAST_CLUSTER_DB:-roomcast_cluster}
PG_ADMIN=${ROOMCAST_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
PG_URL=${PG_ADMIN%/*}/$DB
BIN=${ROOMCAST_BIN:-target/release/roomcast}
PORT=${ROOMCAST_CLUSTER_PORT:-8080}
NODES=(8081 8082)

start() {
  [[ -x $BIN ]] || { echo "no $BIN: run cargo build --release first" >&2; exit 1; }
  command -v nginx >/dev/null || { echo "nginx not found (apt-get install nginx-light)" >&2; exit 1; }
  if ! pg_isready -q -d "$PG_ADMIN"; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 50); do pg_isready -q -d "$PG_ADMIN" && break; sleep 0.1; done
  fi
  psql -q "$PG_ADMIN" -tc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
    || psql -q "$PG_ADMIN" -c "CREATE DATABASE $DB"
  mkdir -p "$RUN"
  for port in "${NODES[@]}"; do
    mkdir -p "$RUN/node-$port"
    # Every node: the same database (which makes it one cluster), its own port and data
    # directory; nginx is the trusted proxy whose X-Forwarded-For names the client.
    ROOMCAST__DATABASE__URL=$PG_URL \
    ROOMCAST__SERVER__PORT=$port \
    ROOMCAST__SERVER__DATA_DIR=$RUN/node-$port \
    ROOMCAST__SERVER__TRUSTED_PROXIES=127.0.0.1/32 \
    ROOMCAST__SERVER__PUBLIC_ORIGIN=http://127.0.0.1:$PORT \
      "$BIN" >"$RUN/node-$port.log" 2>&1 &
    echo $! >"$RUN/node-$port.pid"
  done
  for port in "${NODES[@]}"; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null \
      || { echo "node :$port did not start; see $RUN/node-$port.log" >&2; exit 1; }
  done
  {
    echo "pid $RUN/nginx.pid;"
    echo "error_log $RUN/nginx-error.log warn;"
    echo "events { worker_connections 20000; }"
    echo "http {"
    echo "  access_log off;"
    echo "  upstream roomcast { $(printf 'server 127.0.0.1:%s; ' "${NODES[@]}") keepalive 64; }"
    echo "  server {"
    echo "    listen 127.0.0.1:$PORT;"
    # The nodes talk to each other directly; nobody reaches that route through here.
    echo "    location /internal/ { return 404; }"
    echo "    location / {"
    echo "      proxy_pass http://roomcast;"
    echo "      proxy_http_version 1.1;"
    echo "      proxy_set_header Connection \"\";"
    echo "      proxy_set_header Host \$http_host;"
    echo "      proxy_set_header X-Forwarded-For \$remote_addr;"
    # Streams must flow as they are written, and live for hours.
    echo "      proxy_buffering off;"
    echo "      proxy_read_timeout 24h;"
    echo "    }"
    echo "  }"
    echo "}"
  } >"$RUN/nginx.conf"
  nginx -p "$RUN" -c "$RUN/nginx.conf"
  echo "cluster up: http://127.0.0.1:$PORT (nodes ${NODES[*]}, database $PG_URL, logs in $RUN)"
}

stop() {
  [[ -f $RUN/nginx.pid ]] && kill "$(cat "$RUN/nginx.pid")" 2>/dev/null || true
  for port in "${NODES[@]}"; do
    [[ -f $RUN/node-$port.pid ]] && kill "$(cat "$RUN/node-$port.pid")" 2>/dev/null || true
    rm -f "$RUN/node-$port.pid"
  done
  echo "cluster stopped (database $DB kept; drop it with: psql $PG_ADMIN -c 'DROP DATABASE $DB')"
}

status() {
  for port in "${NODES[@]}"; do
    printf 'node :%s ' "$port"; curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$port/readyz" || echo down
  done
  printf 'nginx :%s ' "$PORT"; curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT/healthz" || echo down
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
