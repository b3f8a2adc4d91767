"""Confines Python app-net 0.6.2 to 127.0.0.1 for the tests; import it before `net`.

Importing app-net starts its server at once on HOST_IP = gethostbyname(gethostname()),
which on most machines is the LAN address, after pinging ports there; and `net.peers()`
without on_host=True runs `arp -a` and probes every neighbour. Tests may only touch
loopback, so before app-net is imported this module makes the host name resolve to
127.0.0.1 (HOST_IP and the default host of PeerServer.ping both come from it), checks
that app-net took it, and makes the LAN scan an error.
"""
import socket
import socketserver

socket.gethostname = lambda: "127.0.0.1"
# app-net's scan_for_port loops forever when a port that no one answers on cannot be
# bound (e.g. it is in TIME_WAIT after an earlier test); SO_REUSEADDR lets it bind.
socketserver.TCPServer.allow_reuse_address = True

import net  # noqa: E402  (must come after the patches above)
import net.api  # noqa: E402

if net.HOST_IP != "127.0.0.1" or net.Peer().server.host != "127.0.0.1":
    raise SystemExit("app-net is not confined to 127.0.0.1: HOST_IP=%r" % net.HOST_IP)


def _no_lan_scan():
    raise RuntimeError("tests must not scan the LAN (arp -a); use net.peers(on_host=True)")


net.api.local_network = _no_lan_scan
