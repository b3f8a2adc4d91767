"""Drives Python app-net 0.6.2 as a client for tests/appnet.rs, one JSON command per line
on standard input, one JSON result per line on standard output; exits when input ends.

Usage: appnet_client.py HOST PORT   (the net peer under test)

Commands:
  {"op": "call", "tag": T, "args": [...], "kwargs": {...}}
      calls T the way app-net users do: a function decorated with @net.connect(T) called
      with peer=(HOST, PORT), so app-net's own `peer` keyword travels too.
  {"op": "raw", "tag": T, "args": [...], "kwargs": {...}}
      app-net's PeerServer.request, without its flag and error handling.
  {"op": "peers"}
      net.peers(refresh=True, on_host=True): the peers app-net's discovery finds.
  {"op": "peer_call", "port": P, "method": M, "args": [...]}
      calls method M of the discovered net.Peer on port P (app-net builds those methods
      from the peer's info).
Results: {"ok": value} or {"error": "str(exception)"}.
"""
import json
import sys

import appnet_loopback  # noqa: F401  (confines app-net before it starts)
import net

HOST = sys.argv[1]
PORT = int(sys.argv[2])
STUBS = {}


def stub(tag):
    if tag not in STUBS:
        def remote_function(*args, **kwargs):
            raise AssertionError("runs on the remote peer only")

        STUBS[tag] = net.connect(tag)(remote_function)
    return STUBS[tag]


def run(command):
    op = command["op"]
    if op == "call":
        function = stub(command["tag"])
        return function(*command.get("args", []), peer=(HOST, PORT), **command.get("kwargs", {}))
    if op == "raw":
        return net.Peer().server.request(
            HOST, PORT, command["tag"], command.get("args", []), command.get("kwargs", {})
        )
    if op == "peers":
        found = net.peers(refresh=True, on_host=True)
        return [
            {
                "tag": tag,
                "host": peer.host,
                "port": peer.port,
                "group": peer.group,
                "hub": peer.hub,
                "connections": sorted(peer.registered_connections),
            }
            for tag, peer in found["peers"].items()
        ]
    if op == "peer_call":
        found = net.peers(on_host=True)
        for peer in found["peers"].values():
            if peer.port == command["port"]:
                return getattr(peer, command["method"])(*command.get("args", []))
        raise LookupError("no discovered peer on port %r" % command["port"])
    raise ValueError("unknown op %r" % op)


for line in sys.stdin:
    if not line.strip():
        continue
    try:
        result = {"ok": run(json.loads(line))}
    except Exception as err:  # reported to the test, which decides
        result = {"error": "%s: %s" % (type(err).__name__, err)}
    print(json.dumps(result), flush=True)
