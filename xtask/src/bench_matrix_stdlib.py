"""The peer of `cargo xtask bench matrix`: send -> /sync delivery latency with nothing but the
Python standard library (urllib, threads). Prints a JSON list of latencies in milliseconds.

usage: bench_matrix_stdlib.py BASE_URL SHARED_SECRET MESSAGES
"""

import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.parse
import urllib.request

BASE, SECRET, COUNT = sys.argv[1], sys.argv[2], int(sys.argv[3])


def call(method, path, token=None, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def register(name):
    nonce = call("GET", "/_synapse/admin/v1/register")["nonce"]
    password = name + "-password"
    mac = hmac.new(SECRET.encode(), b"\0".join(
        [nonce.encode(), name.encode(), password.encode(), b"notadmin"]), hashlib.sha1).hexdigest()
    reply = call("POST", "/_synapse/admin/v1/register", body={
        "nonce": nonce, "username": name, "password": password, "admin": False, "mac": mac})
    return reply["access_token"], reply["user_id"]


sender_token, _ = register("stdlib-sender")
receiver_token, receiver_id = register("stdlib-receiver")
room = call("POST", "/_matrix/client/v3/createRoom", sender_token, {})["room_id"]
quoted_room = urllib.parse.quote(room)
call("POST", f"/_matrix/client/v3/rooms/{quoted_room}/invite", sender_token, {"user_id": receiver_id})
call("POST", f"/_matrix/client/v3/join/{quoted_room}", receiver_token, {})
since = call("GET", "/_matrix/client/v3/sync?timeout=0", receiver_token)["next_batch"]

latencies = []
for index in range(COUNT):
    body = f"bench {index}"
    arrived = threading.Event()

    def receive():
        global since
        while not arrived.is_set():
            reply = call("GET", f"/_matrix/client/v3/sync?timeout=30000&since={since}",
                         receiver_token)
            since = reply["next_batch"]
            timeline = reply.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
            if any(event.get("content", {}).get("body") == body
                   for event in timeline.get("events", [])):
                arrived.set()

    started = time.perf_counter()
    receiver = threading.Thread(target=receive)
    receiver.start()
    call("PUT", f"/_matrix/client/v3/rooms/{quoted_room}/send/m.room.message/txn{index}",
         sender_token, {"msgtype": "m.text", "body": body})
    receiver.join()
    latencies.append((time.perf_counter() - started) * 1000.0)

print(json.dumps(latencies))
