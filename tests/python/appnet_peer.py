"""A Python app-net 0.6.2 peer serving app.py's functions, for tests/appnet.rs.

Prints one JSON line {"host": ..., "port": ...} once it serves, then runs until its
standard input closes (the test holds it open and closes it to stop the peer).
"""
import json
import sys

import appnet_loopback  # noqa: F401  (confines app-net before it starts)
import net
import app  # noqa: F401  (registers the functions)

peer = net.Peer()
print(json.dumps({"host": peer.host, "port": peer.port}), flush=True)
sys.stdin.read()
