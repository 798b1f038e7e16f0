"""`weir policy explain`: why a caller is unauthenticated, from what Envoy would report."""

from __future__ import annotations

import io
from pathlib import Path

from mesh.identity import IdentityInputs
from mesh.policy_cli import explain

FULL = str(Path(__file__).resolve().parents[2] / "data" / "policies" / "valid-full.yaml")
CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"


def _explain(identity: str | None, inputs: IdentityInputs | None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = explain(FULL, identity, "gpt-4o", out, err, inputs)
    return code, out.getvalue(), err.getvalue()


def test_unauthenticated_explains_what_each_source_needs() -> None:
    code, out, _ = _explain("unauthenticated", None)
    assert code == 1
    assert "why:       no identity source yielded an identity" in out
    for source in ("peer-certificate: needs", "node-metadata: needs", "xfcc: needs"):
        assert source in out


def test_given_envoys_facts_it_says_what_each_source_found() -> None:
    forged = f"By=spiffe://cluster.local/ns/x/sa/y;URI={CHECKOUT}"
    code, out, _ = _explain(None, IdentityInputs(xfcc=forged))
    assert code == 1
    assert "identity:  unauthenticated" in out
    assert "why:       peer-certificate: no peer certificate URI SAN" in out
    assert "why:       node-metadata: NAMESPACE or SERVICE_ACCOUNT missing" in out
    assert "why:       xfcc: last element By is not a trusted proxy" in out


def test_facts_that_identify_the_caller_decide_as_that_identity() -> None:
    code, out, _ = _explain(None, IdentityInputs(peer_uri_san=CHECKOUT))
    assert code == 0
    assert f"identity:  {CHECKOUT}" in out and "why:" not in out


def test_an_identity_that_contradicts_the_facts_is_an_error() -> None:
    code, _, err = _explain("unauthenticated", IdentityInputs(peer_uri_san=CHECKOUT))
    assert code == 2 and "disagrees" in err


def test_neither_identity_nor_facts_is_an_error() -> None:
    code, _, err = _explain(None, None)
    assert code == 2 and "--identity" in err
