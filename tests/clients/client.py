#!/usr/bin/env python3
"""A dependency-free net protocol client, written from docs/PROTOCOL.md alone.

Usage: client.py HOST:PORT [MODULE]

It connects to a net peer, shakes hands, makes the calls below and prints one JSON object
with what came back. tests/it/protocol_client.rs runs it against a real peer and checks the
output; the functions it calls besides the built-ins are defined in that test, in the Rust
module MODULE (default `protocol_client`), whose path makes their default tags.
"""

import base64
import ipaddress
import json
import socket
import struct
import sys
import time

PROTOCOL = 1
MAX_FRAME = 1 << 20  # what we accept, announced in our hello
DEADLINE_S = 10.0  # no single wait of this client lasts longer


class Closed(Exception):
    """The peer closed the connection."""


def default_tag(path):
    """Section 8: standard base64, with padding, of `module::path::name`."""
    return base64.b64encode(path.encode()).decode()


def decode_peer_id(peer_id):
    """Section 13: URL-safe base64 without padding of port, family, address, group."""
    raw = base64.urlsafe_b64decode(peer_id + "=" * (-len(peer_id) % 4))
    port, family = struct.unpack(">HB", raw[:3])
    size = 4 if family == 4 else 16
    host = str(ipaddress.ip_address(raw[3 : 3 + size]))
    group = raw[3 + size :].decode() or None
    return {"host": host, "port": port, "group": group}


class Client:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=DEADLINE_S)
        self.next_id = 1
        self.replies = {}  # id -> outcome, replies that came while waiting for another
        self.served = []  # calls the peer made to us over the reverse channel
        self.peer_limit = None  # the peer's max_frame, from its hello

    # -- frames (section 2) -------------------------------------------------------------

    def send(self, message):
        body = json.dumps(message, separators=(",", ":")).encode()
        if self.peer_limit is not None and len(body) > self.peer_limit:
            raise ValueError(f"{len(body)}-byte frame over the peer's {self.peer_limit}")
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def _read_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise Closed("the peer closed the connection")
            data += chunk
        return data

    def receive(self):
        (length,) = struct.unpack(">I", self._read_exact(4))
        if length > MAX_FRAME:
            raise ValueError(f"the peer sent a {length}-byte frame, over our {MAX_FRAME}")
        return json.loads(self._read_exact(length))

    # -- handshake (section 4) ----------------------------------------------------------

    def handshake(self):
        # Both sides send hello at once: ours goes out before theirs is read.
        self.send({"hello": {"protocol": PROTOCOL, "id": None, "group": None, "hub": False,
                             "version": "client.py-0.1", "max_frame": MAX_FRAME}})
        first = self.receive()
        if isinstance(first, dict) and "error" in first:
            raise RuntimeError("refused: " + first["error"]["message"])
        hello = first["hello"]
        if hello["protocol"] != PROTOCOL:
            self.send({"error": {"message": f"incompatible protocol: this client speaks "
                                            f"{PROTOCOL}, you speak {hello['protocol']}"}})
            raise RuntimeError(f"peer speaks protocol {hello['protocol']}")
        self.peer_limit = hello["max_frame"]
        return hello

    # -- calls (sections 5-7) -----------------------------------------------------------

    def send_call(self, tag, args, kwargs=None, timeout_ms=5000, oneway=False):
        call_id = self.next_id
        self.next_id += 1
        call = {"id": call_id, "tag": tag, "args": args}
        if kwargs is not None:
            call["kwargs"] = kwargs
        if oneway:
            call["oneway"] = True
        else:
            call["timeout_ms"] = timeout_ms
        self.send({"call": call})
        return call_id

    def wait_reply(self, call_id):
        """Reads frames until the reply to `call_id`, serving the peer's calls meanwhile
        and keeping replies to our other calls for later."""
        deadline = time.monotonic() + DEADLINE_S
        while call_id not in self.replies:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply to call {call_id}")
            self.handle(self.receive())
        return self.replies.pop(call_id)

    def call(self, tag, args, kwargs=None):
        return self.wait_reply(self.send_call(tag, args, kwargs))

    def handle(self, message):
        if message == "goodbye" or (isinstance(message, dict) and "goodbye" in message):
            raise Closed("the peer said goodbye")
        (kind, body), = message.items()
        if kind == "reply":
            self.replies[body["id"]] = body["outcome"]
        elif kind == "call":
            # The reverse channel: the peer calls us, with its own ids.
            self.served.append(body)
            if body.get("oneway"):
                return
            if body["tag"] == "pass_through":
                outcome = {"ok": body["args"][0]}
            else:
                outcome = {"flag": {"name": "INVALID_CONNECTION",
                                    "detail": ["pass_through (client.py)"]}}
            self.send({"reply": {"id": body["id"], "outcome": outcome}})
        elif kind == "error":
            raise Closed("the peer reported an error: " + body["message"])
        # A cancel for us: we run nothing long, so there is nothing to stop.

    def goodbye(self):
        self.send("goodbye")
        self.sock.close()


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    module = sys.argv[2] if len(sys.argv) > 2 else "protocol_client"
    client = Client(host, int(port))
    out = {}

    hello = client.handshake()
    out["hello"] = hello
    out["peer"] = decode_peer_id(hello["id"])

    value = {"dict": {"nested": {"k": "v"}}, "list": [1, -2, 3.5, "", None, True, False],
             "empty": "", "unicode": "héllo ✓"}
    out["pass_through"] = client.call("pass_through", [value])
    out["multiply"] = client.call(default_tag(module + "::multiply"), [6, 7])
    out["kwargs"] = client.call(default_tag(module + "::multiply"), [6], {"b": 7})
    out["lookup_ok"] = client.call("protocol_client::lookup", ["answer"])
    out["lookup_err"] = client.call("protocol_client::lookup", ["nope"])
    out["null"] = client.call("null", [])
    out["unknown"] = client.call("no_such_function", [])
    out["panic"] = client.call(default_tag(module + "::explode"), [])
    out["bad_args"] = client.call(default_tag(module + "::multiply"), ["six", 7])
    out["info"] = client.call("info", [])
    out["connections"] = client.call("connections", [])
    out["multiply_tag"] = default_tag(module + "::multiply")

    # Many calls in flight: a slow one first, a fast one second; replies match by id
    # and the fast one is answered first.
    slow = client.send_call("protocol_client::slow", [300])
    fast = client.send_call("pass_through", ["fast"])
    order = []
    while len(order) < 2:
        before = set(client.replies)
        client.handle(client.receive())
        order += [i for i in client.replies if i not in before]
    out["order"] = ["slow" if i == slow else "fast" if i == fast else i for i in order]
    out["slow"] = client.replies.pop(slow)
    out["fast"] = client.replies.pop(fast)

    # Cancel: start a call that would run for 10 s, cancel it, and ask the peer (with
    # other calls) until it reports the work stopped.
    waiting = client.send_call("protocol_client::wait_for_cancel", [], timeout_ms=30000)
    client.send({"cancel": {"id": waiting}})
    deadline = time.monotonic() + DEADLINE_S
    stopped = client.call("protocol_client::cancelled_count", [])
    while stopped.get("ok", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
        stopped = client.call("protocol_client::cancelled_count", [])
    out["cancelled_count"] = stopped

    # One-way: no reply comes; the effect shows through another call.
    noted = {"note": [1, 2, 3]}
    oneway_id = client.send_call("protocol_client::record", [noted], oneway=True)
    recorded = client.call("protocol_client::recorded", [])
    while noted not in recorded.get("ok", []) and time.monotonic() < deadline:
        time.sleep(0.02)
        recorded = client.call("protocol_client::recorded", [])
    out["recorded"] = recorded

    # The reverse channel: the peer calls our pass_through while handling this call.
    out["ask_back"] = client.call("protocol_client::ask_back", [{"back": [True, None]}])
    out["served"] = client.served

    # Nothing may have answered the cancelled or the one-way call.
    out["stray_replies"] = sorted(k for k in client.replies if k in (waiting, oneway_id))
    client.goodbye()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
