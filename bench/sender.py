"""Plays Bitrix24 for the latency bench: posts events at a steady pace from a process of its own.

Kept apart from the process that hosts the fakes, so that the time an event is sent is not held up
by the fakes' work. Reads ``[[key, body], …]`` as JSON from the file given, posts each body to the
URL given every ``--pace`` seconds, and writes ``{key: unix time sent}`` as JSON to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import httpx2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("events")
    parser.add_argument("--pace", type=float, default=0.01)
    args = parser.parse_args()
    with open(args.events, encoding="utf-8") as source:
        events: list[list[str]] = json.load(source)
    sent: dict[str, float] = {}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx2.Client() as http:
        for key, body in events:
            sent[key] = time.time()
            http.post(args.url, content=body, headers=headers).raise_for_status()
            time.sleep(args.pace)
    json.dump(sent, sys.stdout)


if __name__ == "__main__":
    main()
