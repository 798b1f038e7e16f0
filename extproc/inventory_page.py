"""The inventory page at `/` on the admin port: one self-contained HTML file.

No CDN, no build step, no external request: the page's script fetches
`/inventory` every few seconds and draws the graph and the table with DOM
calls only (textContent, setAttribute), so names that come from traffic are
shown as text. A Content-Security-Policy that allows only this page's own
inline script (by its hash) and same-origin fetches is a second wall: an
injected script would not run even if an escape were missed.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

from aiohttp import web

PAGE_FILE = "inventory_page.html"


@cache
def page() -> tuple[bytes, str]:
    """(the page's bytes, its Content-Security-Policy)."""
    html = resources.files("extproc").joinpath(PAGE_FILE).read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    )
    policy = (
        "default-src 'none'; "
        f"script-src {hashes}; "
        "style-src 'unsafe-inline'; "
        "connect-src 'self'; "
        "img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html.encode("utf-8"), policy


async def inventory_page(_: web.Request) -> web.Response:
    body, policy = page()
    return web.Response(
        body=body,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )
