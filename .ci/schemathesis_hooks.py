"""Schemathesis hooks for roomcast (loaded by .ci/schemathesis.sh through SCHEMATHESIS_HOOKS).

A generated `connection_id` is a random string, so every subscribe and unsubscribe would stop
at `404 unknown_connection`. The script opens a real stream first and passes its id in
ROOMCAST_CONNECTION_ID; string ids in generated bodies are replaced by it, so the cases reach
the room, filter and replay logic. Ids of the wrong type are left alone: they test the 400s.
"""

import os

import schemathesis

CONNECTION_ID = os.environ.get("ROOMCAST_CONNECTION_ID", "")


@schemathesis.hook
def map_body(context, body):
    if CONNECTION_ID and isinstance(body, dict) and isinstance(body.get("connection_id"), str):
        return {**body, "connection_id": CONNECTION_ID}
    return body
