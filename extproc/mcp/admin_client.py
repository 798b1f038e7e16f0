"""`weir mcp pins` and `weir mcp accept`: the admin API of a running `weir serve`, from a shell."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TextIO

EXIT_OK, EXIT_UNKNOWN, EXIT_FAILED = 0, 1, 2


def _call(url: str, data: bytes | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=data, method="POST" if data is not None else "GET",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.load(exc)
        except ValueError:
            return exc.code, {"error": exc.reason}


def list_pins(admin: str, out: TextIO, err: TextIO) -> int:
    try:
        status, body = _call(f"{admin.rstrip('/')}/mcp/pins")
    except (OSError, ValueError) as exc:
        print(f"weir mcp pins: cannot reach {admin}: {exc}", file=err)
        return EXIT_FAILED
    servers = body.get("servers")
    if status != 200 or not isinstance(servers, dict):
        print(f"weir mcp pins: {admin} answered {status}", file=err)
        return EXIT_FAILED
    for server, tools in servers.items():
        for tool, pin in tools.items():
            state = "poisoned" if pin.get("poisoned") else "DRIFTED" if pin.get("drifted") else "ok"
            print(f"{server}\t{tool}\t{state}\t{str(pin.get('digest'))[:16]}", file=out)
    return EXIT_OK


def accept_pin(admin: str, server: str, tool: str, out: TextIO, err: TextIO) -> int:
    payload = json.dumps({"server": server, "tool": tool}).encode()
    try:
        status, body = _call(f"{admin.rstrip('/')}/mcp/pins/accept", payload)
    except (OSError, ValueError) as exc:
        print(f"weir mcp accept: cannot reach {admin}: {exc}", file=err)
        return EXIT_FAILED
    if status == 200:
        print(f"accepted: tool '{tool}' of {server} is pinned to its current definition", file=out)
        return EXIT_OK
    print(f"weir mcp accept: {body.get('error', status)}", file=err)
    return EXIT_UNKNOWN if status == 404 else EXIT_FAILED
