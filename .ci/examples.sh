#!/usr/bin/env bash
# Runs the examples against a real server: the bot (examples/bot.rs) answers one message
# with an access token, and the receiver (examples/webhook_receiver.rs) verifies one signed
# delivery. Starts its own server on a free port with its data in a temporary directory;
# exits non-zero when either example fails or times out.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --bin roomcast --examples
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The value of a string field of a flat JSON answer (ours never escape quotes in these).
field() { grep -o "\"$1\":\"[^\"]*\"" | head -n1 | cut -d'"' -f4; }

admin_token="examples-admin-$(date +%s%N)"
ROOMCAST__SERVER__PORT=0 \
ROOMCAST__SERVER__DATA_DIR="$work" \
ROOMCAST__DATABASE__URL="sqlite://$work/rc.db?mode=rwc" \
ROOMCAST__ADMIN__API_TOKEN="$admin_token" \
ROOMCAST__WEBHOOKS__BACKOFF_MAX_SECS=1 \
RUST_LOG=info NO_COLOR=1 \
  "$bin/roomcast" serve 2>"$work/server.log" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q 'roomcast listening' "$work/server.log" 2>/dev/null && break
  sleep 0.1
done
port="$(grep -o 'port=[0-9]*' "$work/server.log" | head -n1 | cut -d= -f2)"
[ -n "$port" ] || { echo "the server did not start:"; cat "$work/server.log"; exit 1; }
base="http://127.0.0.1:$port"
echo "server on $base"

api() { # api JAR METHOD PATH [JSON]
  curl -sS --fail-with-body -b "$1" -c "$1" -X "$2" -H 'content-type: application/json' \
    ${4:+--data "$4"} "$base$3"
}

echo "== bot =="
api "$work/botuser.jar" POST /api/register '{"username":"helperbot","password":"password123"}' >/dev/null
secret="$(api "$work/botuser.jar" POST /api/me/tokens '{"name":"examples bot"}' | field secret)"
[ -n "$secret" ] || { echo "no token secret"; exit 1; }
ROOMCAST_URL="$base" ROOMCAST_TOKEN="$secret" ROOMCAST_ROOM=general \
  timeout 60 "$bin/examples/bot" --once >"$work/bot.out" 2>"$work/bot.err" &
bot=$!
pids+=($bot)
for _ in $(seq 1 100); do
  grep -q 'listening in' "$work/bot.err" 2>/dev/null && break
  sleep 0.1
done
api "$work/person.jar" POST /api/register '{"username":"person","password":"password123"}' >/dev/null
api "$work/person.jar" POST /api/rooms/general/messages '{"body":"hello bot"}' >/dev/null
if ! wait "$bot"; then
  echo "the bot failed:"; cat "$work/bot.err" "$work/bot.out"; exit 1
fi
cat "$work/bot.out"
grep -q '^answered message' "$work/bot.out"

echo "== webhook receiver =="
# A free port for the receiver: bind port 0, read what was given, let it go.
rport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $((20000 + RANDOM % 20000)))"
hook="$(curl -sS --fail-with-body -X POST -H "authorization: Bearer $admin_token" \
  -H 'content-type: application/json' \
  --data "{\"url\":\"http://127.0.0.1:$rport/\",\"events\":[\"message\"],\"rooms\":[\"general\"]}" \
  "$base/api/admin/webhooks")"
wsecret="$(printf '%s' "$hook" | field secret)"
[ -n "$wsecret" ] || { echo "no webhook secret: $hook"; exit 1; }
WEBHOOK_SECRET="$wsecret" RECEIVER_ADDR="127.0.0.1:$rport" \
  timeout 60 "$bin/examples/webhook_receiver" --once >"$work/rx.out" 2>"$work/rx.err" &
rx=$!
pids+=($rx)
api "$work/person.jar" POST /api/rooms/general/messages '{"body":"for the hook"}' >/dev/null
if ! wait "$rx"; then
  echo "the receiver failed:"; cat "$work/rx.err" "$work/rx.out"; exit 1
fi
cat "$work/rx.out"
grep -q '^verified:' "$work/rx.out"
echo "examples passed"
