"""Who is calling: identity sources and the resolver that tries them in order.

This module owns the rule that turns what Envoy tells us about a request (the
peer certificate's URI SAN, the proxy's own node metadata, the XFCC header)
into one principal: a canonical SPIFFE ID string in the local trust domain, or
``unauthenticated``. It never raises on bad input: a source whose input does
not parse simply yields nothing, and the ``detail`` of the result says why,
so an operator can see why a request fell through to ``unauthenticated``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mesh.spiffe import SpiffeIdError, parse_spiffe_id, parse_spiffe_id_in
from mesh.xfcc import XfccError, parse_xfcc

UNAUTHENTICATED = "unauthenticated"

PEER_CERTIFICATE = "peer-certificate"
NODE_METADATA = "node-metadata"
XFCC = "xfcc"
JWT_SVID = "jwt-svid"
SOURCES = (PEER_CERTIFICATE, NODE_METADATA, XFCC, JWT_SVID)


@dataclass(frozen=True)
class IdentityInputs:
    """The raw facts about one request, as Envoy reported them."""

    peer_uri_san: str | None = None
    node_namespace: str | None = None
    node_service_account: str | None = None
    xfcc: str | None = None
    # A JWT-SVID, already verified (`mesh.jwt`): its subject, or why it was refused.
    jwt_svid_subject: str | None = None
    jwt_svid_problem: str | None = None


@dataclass(frozen=True)
class Identity:
    """The resolved caller.

    ``principal`` is a SPIFFE ID string or ``UNAUTHENTICATED``; ``source`` is
    the source that produced it (None when unauthenticated); ``detail`` is a
    short reason per source tried. It names parse failures, never input
    values other than accepted IDs, so it is safe to log.
    """

    principal: str
    source: str | None
    detail: str


class _Rejected(Exception):
    """A source had no usable identity; internal control flow only."""


def resolve_identity(
    inputs: IdentityInputs,
    *,
    sources: Sequence[str],
    trust_domain: str,
    trusted_proxies: Sequence[str],
) -> Identity:
    """Try ``sources`` in order; the first valid in-trust-domain ID wins.

    Raises ``ValueError`` only for a source name that is not one of
    ``SOURCES``, which is a configuration bug, not bad input.
    """
    readers: dict[str, Callable[[], str]] = {
        PEER_CERTIFICATE: lambda: _from_peer_certificate(inputs, trust_domain),
        NODE_METADATA: lambda: _from_node_metadata(inputs, trust_domain),
        XFCC: lambda: _from_xfcc(inputs, trust_domain, trusted_proxies),
        JWT_SVID: lambda: _from_jwt_svid(inputs, trust_domain),
    }
    notes: list[str] = []
    for source in sources:
        reader = readers.get(source)
        if reader is None:
            raise ValueError(f"unknown identity source {source!r}; expected one of {SOURCES}")
        try:
            principal = reader()
        except _Rejected as rejected:
            notes.append(f"{source}: {rejected}")
            continue
        notes.append(f"{source}: accepted")
        return Identity(principal=principal, source=source, detail="; ".join(notes))
    if not notes:
        notes.append("no identity sources configured")
    return Identity(principal=UNAUTHENTICATED, source=None, detail="; ".join(notes))


def _from_peer_certificate(inputs: IdentityInputs, trust_domain: str) -> str:
    if not inputs.peer_uri_san:
        raise _Rejected("no peer certificate URI SAN")
    try:
        return str(parse_spiffe_id_in(inputs.peer_uri_san, trust_domain))
    except SpiffeIdError as exc:
        raise _Rejected(f"invalid URI SAN: {exc.reason}") from None


def _from_node_metadata(inputs: IdentityInputs, trust_domain: str) -> str:
    namespace, account = inputs.node_namespace, inputs.node_service_account
    if not namespace or not account:
        raise _Rejected("NAMESPACE or SERVICE_ACCOUNT missing")
    # A '/' in either value would parse as extra path segments and could name
    # a different workload, so the parts are checked as well as the whole.
    if "/" in namespace or "/" in account:
        raise _Rejected("NAMESPACE or SERVICE_ACCOUNT contains '/'")
    try:
        candidate = f"spiffe://{trust_domain}/ns/{namespace}/sa/{account}"
        sid = parse_spiffe_id_in(candidate, trust_domain)
    except SpiffeIdError as exc:
        raise _Rejected(f"invalid metadata: {exc.reason}") from None
    if sid.namespace != namespace or sid.service_account != account:
        raise _Rejected("NAMESPACE or SERVICE_ACCOUNT does not form an Istio SPIFFE ID")
    return str(sid)


def _from_xfcc(inputs: IdentityInputs, trust_domain: str, trusted_proxies: Sequence[str]) -> str:
    if not inputs.xfcc:
        raise _Rejected("no XFCC header")
    try:
        elements = parse_xfcc(inputs.xfcc)
    except XfccError as exc:
        raise _Rejected(f"malformed header: {exc.reason}") from None
    if not elements:
        raise _Rejected("no XFCC elements")
    # Only the last element can have been written by the proxy in front of
    # us; every earlier one came from upstream of it, possibly the client.
    last = elements[-1]
    by = last.by
    if by is None:
        raise _Rejected("last element has no By")
    try:
        proxy = str(parse_spiffe_id(by))
    except SpiffeIdError as exc:
        raise _Rejected(f"last element By is not a SPIFFE ID: {exc.reason}") from None
    if proxy not in trusted_proxies:
        raise _Rejected("last element By is not a trusted proxy")
    uris = last.uris
    if len(uris) != 1:
        raise _Rejected(f"last element has {len(uris)} URI values, expected exactly 1")
    try:
        return str(parse_spiffe_id_in(uris[0], trust_domain))
    except SpiffeIdError as exc:
        raise _Rejected(f"last element URI is invalid: {exc.reason}") from None


def _from_jwt_svid(inputs: IdentityInputs, trust_domain: str) -> str:
    if inputs.jwt_svid_problem is not None:
        raise _Rejected(inputs.jwt_svid_problem)
    if not inputs.jwt_svid_subject:
        raise _Rejected("no JWT-SVID")
    try:
        return str(parse_spiffe_id_in(inputs.jwt_svid_subject, trust_domain))
    except SpiffeIdError as exc:
        raise _Rejected(f"JWT-SVID subject is invalid: {exc.reason}") from None


# What each source needs, for an operator asking why a caller was not identified.
SOURCE_NEEDS = {
    PEER_CERTIFICATE: "the caller's mTLS client certificate with a SPIFFE URI SAN "
    "(connection.uri_san_peer_certificate)",
    NODE_METADATA: "the proxy's own NAMESPACE and SERVICE_ACCOUNT node metadata (xds.node)",
    XFCC: "an x-forwarded-client-cert header whose last element a trusted proxy wrote",
    JWT_SVID: "a JWT-SVID in the configured header, signed by a key of the jwtSvid key set",
}


def unauthenticated_hint(identity: Identity, sources: Sequence[str]) -> str:
    """For a caller that no source identified, the hint its refusal may carry.

    It names the sources that were tried, and says that none yielded an
    identity; never what each found (`identity.detail`), which would tell a
    forger how far a crafted certificate or header got. Empty for an
    identified caller.
    """
    if identity.principal != UNAUTHENTICATED:
        return ""
    tried = ", ".join(sources) or "no identity sources"
    return (
        f" (no caller identity was found: tried {tried}; "
        "the decision log and `weir policy explain` say what each found)"
    )
