"""The body sniffer, the top-level key reader and the path normal form over arbitrary bytes.

- json_object_start, sniff, normalise_path: never raise on any input;
- TopLevelKeys: never raises, and in any chunking reads exactly the top-level keys
  of a body that parses as a JSON object;
- normalise_path: its normal form is rooted, has no empty segment, and is a fixed point.
"""

from __future__ import annotations

import json

from _inputs import text

from extproc.body_shape import TopLevelKeys, json_object_start, sniff
from extproc.request_path import normalise_path

SEEDS = [
    b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}',
    b'{"pad": "x\\"]}", "mod\\u0065l": "m", "input": [1, {"a": []}]}',
    b'  {"Model": "m", "Messages": []}',
    b"/v1/chat/%2563ompletions?x=1",
    b"//v1/./x/..%2F..%2Fchat\\completions;a=b#f",
    b"\xef\xbb\xbf{}",
]


def TestOneInput(data: bytes) -> None:
    json_object_start(data)
    sniff(data, (("anthropic-version", "2023-06-01"),))

    cut = data[0] % 7 + 1 if data else 1
    reader = TopLevelKeys()
    for start in range(0, len(data), cut):
        reader.feed(data[start : start + cut])
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        document = None
    if isinstance(document, dict) and not reader.malformed:
        assert reader.keys == set(document)

    canonical = normalise_path(text(data)).canonical
    assert canonical.startswith("/") and "//" not in canonical
    assert normalise_path(canonical).canonical == canonical
