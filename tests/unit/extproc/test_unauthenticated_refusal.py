"""A caller Weir cannot identify is told why in its 403, without what each source found."""

from __future__ import annotations

import json

from extproc.authz import decide_check
from extproc.events import Direction, HeadersEvent, Respond
from extproc.stream import Exchange
from mesh.policy import parse_policy

POLICY = parse_policy(
    """
trustDomain: cluster.local
identitySources: [peer-certificate, xfcc]
xfcc: {trustedProxies: ["spiffe://cluster.local/ns/istio-system/sa/ingress"]}
workloads:
  - name: checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
""",
    "policy.yaml",
)
FORGED = (
    "By=spiffe://cluster.local/ns/evil/sa/proxy;URI=spiffe://cluster.local/ns/payments/sa/checkout"
)


def _refusal(attributes: dict[str, str], extra: tuple[tuple[str, str], ...] = ()) -> str:
    exchange = Exchange(POLICY)
    headers = ((":method", "POST"), (":path", "/v1/chat/completions"), (":authority", "llm"))
    [action] = exchange.receive(
        HeadersEvent(Direction.REQUEST, (*headers, *extra), False, attributes)
    )
    assert isinstance(action, Respond) and action.status == 403
    return str(json.loads(action.body)["error"]["message"])


def test_the_403_names_the_sources_tried_and_where_to_look() -> None:
    message = _refusal({})
    assert "no workload matches 'unauthenticated'" in message
    assert "no caller identity was found: tried peer-certificate, xfcc" in message
    assert "weir policy explain" in message


def test_the_403_never_says_how_far_a_forged_header_got() -> None:
    exchange_message = _refusal({}, (("x-forwarded-client-cert", FORGED),))
    # The decision log's detail would say "last element By is not a trusted proxy".
    assert "trusted" not in exchange_message and "By" not in exchange_message
    assert "istio-system" not in exchange_message and "evil" not in exchange_message
    assert "tried peer-certificate, xfcc" in exchange_message


def test_an_identified_caller_that_is_denied_gets_no_identity_hint() -> None:
    message = _refusal({"connection.uri_san_peer_certificate": "spiffe://cluster.local/ns/x/sa/y"})
    assert "no workload matches 'spiffe://cluster.local/ns/x/sa/y'" in message
    assert "no caller identity" not in message


def test_ext_authz_gives_the_same_hint() -> None:
    verdict = decide_check(POLICY, "", "/v1/chat/completions")
    assert not verdict.allowed
    assert b"no caller identity was found: tried peer-certificate" in verdict.body
