"""The page shows what other Weir features add to /inventory: MCP tools, budgets, new fields.

Those features record into the inventory as they land; this drives the page
itself (the real file, with its CSP, in headless Chromium) over an inventory
document that has them, so the page is ready when they are.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import headless_chromium
import pytest

from extproc.inventory_page import page

AGENT = "spiffe://cluster.local/ns/agents/sa/planner"
INVENTORY = {
    "generatedAt": "2026-12-01T12:00:00Z",
    "workloads": [{
        "identity": AGENT, "namespace": "agents", "serviceAccount": "planner",
        "policyWorkloads": ["planner"], "providers": ["anthropic.messages"],
        "models": ["claude-sonnet-4"], "requests": 7,
        "tokens": {"input": 700, "output": 300},
        "decisions": {"allow": 6, "deny": 1}, "findings": {},
        "routes": [
            {"provider": "anthropic.messages", "model": "claude-sonnet-4", "calls": 5,
             "tokens": {"input": 700, "output": 300}},
            {"mcpServer": "github", "tool": "create_issue", "calls": 2},
        ],
        "budget": {"used": 750, "limit": 1000, "unit": "tokens/day"},
        "userHash": "hmac-sha256:<b>not bold</b>",
        "firstSeen": "2026-12-01T11:00:00Z", "lastSeen": "2026-12-01T11:59:00Z",
    }],
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, policy = page()
        headers = {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": policy}
        if self.path.startswith("/inventory"):
            body, headers = json.dumps(INVENTORY).encode(), {"Content-Type": "application/json"}
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_mcp_tools_budgets_and_unknown_fields_are_drawn_and_tabled(url: str) -> None:
    dom = headless_chromium.dump_dom(url)
    graph_markup = dom[dom.index('<svg id="graph"'):dom.index("</svg>")]
    graph = [html.unescape(t) for t in re.findall(r">([^<]+)<", graph_markup)]
    assert "MCP servers and tools" in graph and "github · create_issue" in graph
    assert 'class="edge mcp"' in graph_markup
    table_markup = dom[dom.index('<table id="table"'):dom.index("</table>")]
    table = [html.unescape(t) for t in re.findall(r">([^<]+)<", table_markup)]
    for heading in ("Budget use", "MCP tools", "userHash"):
        assert heading in table
    assert "750 / 1,000 tokens/day" in table and 'style="width:75.0%"' in table_markup
    assert "hmac-sha256:<b>not bold</b>" in table and "<b>" not in table_markup
