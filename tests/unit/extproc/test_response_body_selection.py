"""Which processor handles a response body, chosen at its headers (`select_response_body`):
one table of plan × tools × status × type × encoding × mode -> processor or refusal."""

from __future__ import annotations

import pytest

from extproc.events import ContinueHeaders, Direction
from extproc.llm import PROVIDERS
from extproc.response_body import (
    GuardedStream,
    JudgedDocument,
    PassThrough,
    Refuse,
    ToolCheckedStream,
    select_response_body,
)
from extproc.scan_plan import plan_for
from mesh.mcp_policy import ToolRules
from mesh.policy import ScanRule

RESP = Direction.RESPONSE
CHAT = next(p for p in PROVIDERS if p.name == "openai.chat_completions")
BLOCK = plan_for((ScanRule("secrets", "block"),), enforcing=True)
AUDIT = plan_for((ScanRule("secrets", "audit"),), enforcing=True)
TOOLS = ToolRules(("search_docs",))
SSE, JSON, TEXT = "text/event-stream", "application/json", "text/plain"
FLOWS = [ContinueHeaders(RESP)]
STREAMS = [ContinueHeaders(RESP, remove_headers=("content-length",))]

CASES = [
    # plan, tools, status, type, encoding, enforcing -> processor, headers answer, and
    # whether the record says the body went unread ("not scanned: ...")
    ("none", None, 200, SSE, None, True, PassThrough, FLOWS, False),
    ("none", None, 200, SSE, "gzip", True, PassThrough, FLOWS, False),
    ("none", None, 500, JSON, None, True, PassThrough, FLOWS, False),
    ("block", None, 200, SSE, None, True, GuardedStream, STREAMS, False),
    ("block", TOOLS, 200, SSE, None, True, GuardedStream, STREAMS, False),
    ("block", None, 200, JSON, None, True, JudgedDocument, [], False),
    ("block", None, 502, TEXT, None, True, JudgedDocument, [], False),  # the error reply, as text
    ("block", None, 200, SSE, "br", True, None, None, False),
    ("block", None, 200, TEXT, None, True, None, None, False),
    ("audit", None, 200, SSE, "gzip", True, PassThrough, FLOWS, True),
    ("audit", None, 200, TEXT, None, True, PassThrough, FLOWS, True),
    ("none", TOOLS, 200, SSE, None, True, ToolCheckedStream, STREAMS, False),
    ("none", TOOLS, 200, JSON, None, True, JudgedDocument, [], False),
    ("none", TOOLS, 200, SSE, "gzip", True, None, None, False),
    ("none", TOOLS, 200, TEXT, None, True, None, None, False),
    ("none", TOOLS, 200, SSE, "gzip", False, PassThrough, FLOWS, True),
    ("none", TOOLS, 404, JSON, None, True, PassThrough, FLOWS, False),
]


@pytest.mark.parametrize(
    ("plan", "tools", "status", "content_type", "encoding", "enforcing", "kind", "headers",
     "unscanned"),
    CASES,
    ids=[f"{c[0]}-{'tools' if c[1] else 'any-tool'}-{c[2]}-{c[3]}-{c[4]}-"
         f"{'enforce' if c[5] else 'audit'}" for c in CASES],
)
def test_the_body_processor_is_chosen_by_rules_tools_and_reply(
    plan, tools, status, content_type, encoding, enforcing, kind, headers, unscanned
) -> None:
    selected = select_response_body(
        CHAT, {"none": None, "block": BLOCK, "audit": AUDIT}[plan], tools,
        status=status, content_type=content_type, encoding=encoding,
        enforcing=enforcing, max_body=1 << 20,
    )
    if kind is None:
        assert selected.body is None
        [refusal] = selected.headers
        assert isinstance(refusal, Refuse) and refusal.kind.status == 503
        assert ("checked for the workload's tools" in refusal.message) == (plan == "none")
        return
    assert type(selected.body) is kind
    assert selected.headers == headers
    assert (selected.reason is not None) == unscanned
    if selected.reason is not None:
        assert selected.reason.startswith("not scanned: ")


def test_no_llm_call_is_never_read_whatever_the_rules() -> None:
    selected = select_response_body(
        None, BLOCK, TOOLS, status=200, content_type=SSE, encoding=None,
        enforcing=True, max_body=1 << 20,
    )
    assert type(selected.body) is PassThrough and selected.headers == FLOWS
