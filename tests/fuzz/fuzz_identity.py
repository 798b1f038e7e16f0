"""The XFCC and SPIFFE parsers and identity resolution over arbitrary header text.

- parse_xfcc: parses or raises XfccError, nothing else.
- parse_spiffe_id: parses or raises SpiffeIdError; a parsed ID prints back to
  exactly its input and never carries a query, fragment or port.
- resolve_identity: never raises on any input, and only ever yields a principal
  in the local trust domain (or `unauthenticated`).
"""

from __future__ import annotations

from _inputs import text

from mesh.identity import IdentityInputs, resolve_identity
from mesh.spiffe import SpiffeIdError, parse_spiffe_id
from mesh.xfcc import XfccError, parse_xfcc

PROXY = "spiffe://cluster.local/ns/istio-system/sa/gateway"
SEEDS = [
    b"spiffe://cluster.local/ns/payments/sa/checkout",
    f'By={PROXY};Hash=abc;URI=spiffe://cluster.local/ns/a/sa/b'.encode(),
    f'URI=spiffe://cluster.local/ns/x/sa/y,By="{PROXY}";Subject="CN=a,O=b";'
    f'URI=spiffe://cluster.local/ns/a/sa/b'.encode(),
    b"spiffe://cluster.local:443/ns/a?x=1#f",
    b'By="\\"";URI=spiffe://evil.example/ns/a/sa/b',
]


def TestOneInput(data: bytes) -> None:
    value = text(data)
    try:
        elements = parse_xfcc(value)
    except XfccError:
        elements = []
    for element in elements:
        element.by  # noqa: B018 - the accessors must not raise either
        element.uris  # noqa: B018

    try:
        parsed = parse_spiffe_id(value)
    except SpiffeIdError:
        pass
    else:
        assert str(parsed) == value
        assert "?" not in value and "#" not in value
        assert ":" not in parsed.trust_domain

    identity = resolve_identity(
        IdentityInputs(peer_uri_san=value, xfcc=value, node_namespace=value[:20],
                       node_service_account=value[20:40]),
        sources=("peer-certificate", "xfcc", "node-metadata"),
        trust_domain="cluster.local",
        trusted_proxies=(PROXY,),
    )
    principal = identity.principal
    assert principal == "unauthenticated" or principal.startswith("spiffe://cluster.local/")
