"""Plays Bitrix24 for the latency bench: posts events at a steady pace from a process of its own.

Kept apart from the process that hosts the fakes, so that the time an event is sent is not held up
by the fakes' work. Reads ``[[key, body], …]`` as JSON from the file given, posts each body to the
URL given every ``--pace`` seconds, and writes ``{key: unix time sent}`` as JSON to stdout.

The requests are written whole on one kept-alive socket and the time is taken just before the
write: what an HTTP client library spends building a request is the sender's, not the pipeline's.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from urllib.parse import urlsplit


class KeptAlive:
    """One HTTP/1.1 connection: a prepared request out, the status of its answer back."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._path = parts.path or "/"
        self._host = parts.netloc
        self._sock = socket.create_connection((parts.hostname, parts.port or 80))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending = b""

    def request(self, body: bytes) -> bytes:
        head = (
            f"POST {self._path} HTTP/1.1\r\nHost: {self._host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def send(self, request: bytes) -> int:
        self._sock.sendall(request)
        return self._answer()

    def _answer(self) -> int:
        while b"\r\n\r\n" not in self._pending:
            self._pending += self._receive()
        head, _, rest = self._pending.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
        if "content-length" not in fields:
            raise ConnectionError("the gateway answered without a Content-Length")
        length = int(fields["content-length"])
        while len(rest) < length:
            rest += self._receive()
        self._pending = rest[length:]
        return status

    def _receive(self) -> bytes:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        return chunk

    def close(self) -> None:
        self._sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("events")
    parser.add_argument("--pace", type=float, default=0.01)
    args = parser.parse_args()
    with open(args.events, encoding="utf-8") as source:
        events: list[list[str]] = json.load(source)
    sent: dict[str, float] = {}
    connection = KeptAlive(args.url)
    try:
        for key, body in events:
            request = connection.request(body.encode())
            sent[key] = time.time()
            status = connection.send(request)
            if status != 200:
                raise SystemExit(f"the gateway answered {status}")
            time.sleep(args.pace)
    finally:
        connection.close()
    json.dump(sent, sys.stdout)


if __name__ == "__main__":
    main()
