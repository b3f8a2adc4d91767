#!/usr/bin/env python3
"""The secure handshake of docs/PROTOCOL.md section 17, written from the document alone.

Usage: noise_check.py HOST:PORT SECRET

Needs the `noiseprotocol` package (PyPI). It connects to a net peer that holds SECRET,
runs the secure handshake with a hello as its payload, then sends one frame through the
encrypted stream (a ping, and a 100000-byte frame that takes two Noise messages) and
reads the peer's answers. It prints one JSON object with what came back; the Rust test
`secure::handshake::tests::a_python_client_from_the_docs_completes_the_handshake` runs it
and checks the output. Exits non-zero, with the reason on stderr, on any failure.
"""

import base64
import hashlib
import json
import socket
import struct
import sys

from noise.connection import NoiseConnection

PATTERN = "Noise_NNpsk0_25519_AESGCM_BLAKE2s"
PROLOGUE = b"net secure 1"
MAX_HANDSHAKE_FRAME = 65536
MAX_MESSAGE = 65535
TAG_LEN = 16
DEADLINE_S = 10.0


def mesh_key(secret):
    """Section 17.2: BLAKE2s-256 of the context string, a zero byte, and the secret."""
    return hashlib.blake2s(b"net secure psk v1\0" + secret).digest()


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def send_frame(sock, body):
    """Section 2: a 4-byte big-endian length, then the body."""
    sock.sendall(struct.pack(">I", len(body)) + body)


def recv_frame(sock):
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    if length > MAX_HANDSHAKE_FRAME:
        raise ValueError(f"a {length}-byte frame during the handshake")
    return recv_exact(sock, length)


class SecureStream:
    """Section 17.5: each Noise transport message behind a 2-byte big-endian length."""

    def __init__(self, sock, noise):
        self.sock = sock
        self.noise = noise
        self.plain = b""

    def send(self, data):
        wire = b""
        for at in range(0, len(data), MAX_MESSAGE - TAG_LEN):
            message = self.noise.encrypt(data[at : at + MAX_MESSAGE - TAG_LEN])
            wire += struct.pack(">H", len(message)) + message
        self.sock.sendall(wire)

    def recv_exact(self, n):
        while len(self.plain) < n:
            (length,) = struct.unpack(">H", recv_exact(self.sock, 2))
            self.plain += self.noise.decrypt(recv_exact(self.sock, length))
        data, self.plain = self.plain[:n], self.plain[n:]
        return data

    def send_frame(self, body):
        self.send(struct.pack(">I", len(body)) + body)

    def recv_frame(self):
        (length,) = struct.unpack(">I", self.recv_exact(4))
        return self.recv_exact(length)


def handshake(sock, secret, hello):
    """Sections 17.3 and 17.4: one round trip, each side's hello inside its message."""
    noise = NoiseConnection.from_name(PATTERN.encode())
    noise.set_as_initiator()
    noise.set_psks(mesh_key(secret))
    noise.set_prologue(PROLOGUE)
    noise.start_handshake()
    first = noise.write_message(hello)
    request = {
        "secure": {
            "protocol": 1,
            "noise": PATTERN,
            "message": base64.b64encode(first).decode(),
        }
    }
    send_frame(sock, json.dumps(request).encode())
    answer = json.loads(recv_frame(sock))
    if "error" in answer:
        raise RuntimeError(f"refused: {answer['error']}")
    theirs = noise.read_message(base64.b64decode(answer["secure"]["message"]))
    assert noise.handshake_finished
    return SecureStream(sock, noise), bytes(theirs)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    secret = sys.argv[2].encode()
    hello = json.dumps({"hello": {"protocol": 1, "id": None, "hub": False,
                                  "version": "noise_check-0.1", "max_frame": 1 << 20}})
    with socket.create_connection((host, int(port)), timeout=DEADLINE_S) as sock:
        stream, their_hello = handshake(sock, secret, hello.encode())
        stream.send_frame(b"ping from python")
        pong = stream.recv_frame()
        big = bytes(i % 251 for i in range(100000))
        stream.send_frame(big)
        big_back = stream.recv_frame()
    print(json.dumps({
        "their_hello": json.loads(their_hello),
        "pong": pong.decode(),
        "big_back_ok": big_back == big[::-1],
        "big_back_len": len(big_back),
    }))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the test shows the reason
        print(f"noise_check: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
