"""The inventory page in a real browser: traffic through real Envoy, then headless Chromium."""

from __future__ import annotations

import html
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import headless_chromium
import openai
import pytest
from weir_admin import get

from mesh.sandbox import SANDBOX_POLICY, SANDBOX_WORKLOADS, MeshSandbox

REPORTS = Path(__file__).resolve().parents[2] / "reports"
AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
# The etl workload's policy name: markup that would set a mark on <body> if it ever ran.
HOSTILE_NAME = (
    "<script>document.body.dataset.pwned='script'</script>"
    "<img src=x onerror=\"document.body.dataset.pwned='img'\">"
)
POLICY = SANDBOX_POLICY + f"""\
  - name: {json.dumps(HOSTILE_NAME)}
    match: ["{SANDBOX_WORKLOADS['etl']}"]
"""
HELLO = [{"role": "user", "content": "echo: hello"}]


@pytest.fixture(scope="module")
def browsed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    if headless_chromium.binary() is None:
        pytest.fail("chromium is missing: `make test` installs Debian's chromium")
    with MeshSandbox(tmp_path_factory.mktemp("page"), policy_text=POLICY) as mesh:
        checkout = mesh.openai_client("checkout")
        checkout.chat.completions.create(model="gpt-4o", messages=HELLO)
        list(checkout.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
        with pytest.raises(openai.PermissionDeniedError):
            checkout.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"key {AWS_KEY}"}])
        mesh.anthropic_client("checkout").messages.create(
            model="claude-sonnet-4", max_tokens=50, messages=HELLO)
        mesh.openai_client("notebook").chat.completions.create(
            model="gpt-4o-mini", messages=HELLO)
        mesh.openai_client("etl").chat.completions.create(model="gpt-4o", messages=HELLO)
        yield mesh


def section(dom: str, opening: str, closing: str) -> str:
    start = dom.index(opening)
    return dom[start : dom.index(closing, start)]


def text_nodes(markup: str) -> list[str]:
    """The text between tags, unescaped: what a person reads on the page."""
    return [html.unescape(t) for t in re.findall(r">([^<]+)<", markup)]


def test_the_page_draws_every_identity_and_model_and_shows_hostile_names_as_text(
    browsed: MeshSandbox,
) -> None:
    dom = headless_chromium.dump_dom(browsed.weir_admin_url("/"))
    graph = text_nodes(section(dom, '<svg id="graph"', "</svg>"))
    table_markup = section(dom, '<table id="table"', "</table>")
    table = text_nodes(table_markup)

    # The graph: namespaces, workloads, and each provider · model they called.
    for label in ("payments", "research", "batch", "payments-checkout", "research"):
        assert label in graph
    for node in ("openai.chat_completions · gpt-4o", "openai.chat_completions · gpt-4o-mini",
                 "anthropic.messages · claude-sonnet-4"):
        assert node in graph, graph  # the node's label
        assert any(t.startswith(f"{node}: ") for t in graph)  # its tooltip, with its weight
    # The table: one row per SPIFFE identity, with its models, decisions and findings.
    for stem in ("checkout", "notebook", "etl"):
        assert f'data-identity="{SANDBOX_WORKLOADS[stem]}"' in table_markup
        assert SANDBOX_WORKLOADS[stem] in table
    checkout_row = section(table_markup, f'data-identity="{SANDBOX_WORKLOADS["checkout"]}"',
                           "</tr>")
    assert "deny 1" in text_nodes(checkout_row) and "allow 3" in text_nodes(checkout_row)
    assert "secrets/aws-access-key-id/block 1" in text_nodes(checkout_row)
    assert "4" in text_nodes(checkout_row)  # calls

    # The hostile name is on the page as text, in the graph and the table, and never ran.
    assert HOSTILE_NAME in table
    assert any(HOSTILE_NAME.startswith(t.removesuffix("…")) for t in graph)
    assert "data-pwned" not in dom
    assert dom.count("<script") == 1 and dom.count("<img") == 0  # only the page's own script


def test_a_screenshot_of_the_page_lands_under_reports(browsed: MeshSandbox) -> None:
    path = headless_chromium.screenshot(
        browsed.weir_admin_url("/"), REPORTS / "inventory-page.png", size=(1800, 900))
    assert path.read_bytes().startswith(b"\x89PNG")


def test_the_page_is_self_contained_and_locks_its_scripts_to_its_own(
    browsed: MeshSandbox,
) -> None:
    status, page = get(browsed.weir_admin_url("/"))
    assert status == 200
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # no CDN, nothing external
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page
    with urllib.request.urlopen(browsed.weir_admin_url("/"), timeout=5) as response:
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]


def rows(dom: str) -> list[str]:
    return re.findall(r'<tr data-identity="([^"]+)"', section(dom, '<table id="table"', "</table>"))


def test_the_namespace_filter_and_the_sort_order_come_from_the_address(
    browsed: MeshSandbox,
) -> None:
    only_payments = headless_chromium.dump_dom(browsed.weir_admin_url("/?namespace=payments"))
    assert rows(only_payments) == [SANDBOX_WORKLOADS["checkout"]]
    graph = text_nodes(section(only_payments, '<svg id="graph"', "</svg>"))
    assert "research" not in graph and "openai.chat_completions · gpt-4o-mini" not in graph

    by_name = headless_chromium.dump_dom(browsed.weir_admin_url("/?sort=namespace&dir=asc"))
    assert rows(by_name) == [SANDBOX_WORKLOADS[s] for s in ("etl", "checkout", "notebook")]
    assert 'data-key="namespace" aria-sort="ascending"' in by_name
    by_calls = headless_chromium.dump_dom(browsed.weir_admin_url("/?sort=requests&dir=desc"))
    assert rows(by_calls)[0] == SANDBOX_WORKLOADS["checkout"]  # 4 calls, the others 1

    # Seen in the last 5 minutes: everyone here; a namespace nobody called: no one.
    assert len(rows(headless_chromium.dump_dom(browsed.weir_admin_url("/?range=300")))) == 3
    assert rows(headless_chromium.dump_dom(browsed.weir_admin_url("/?namespace=nobody"))) == []
