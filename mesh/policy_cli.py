"""`weir policy check` and `weir policy explain`: the operator's view of a policy.

This module owns what those two commands print and the exit codes they
return. It does no argument parsing (the CLI wires argparse) and writes only
to the streams it is given, so every case is a plain unit test.

Exit codes:
- ``check``: 0 valid, 2 invalid (the ``PolicyError`` message on ``err``).
- ``explain``: 0 the identity (and model) would be allowed, 1 denied,
  2 the policy or the identity is invalid. In audit mode the code still
  reports the decision; the output notes that nothing would be enforced.
"""

from __future__ import annotations

from typing import TextIO

from mesh.identity import UNAUTHENTICATED
from mesh.policy import Policy, PolicyError, ScanRule, WorkloadRule
from mesh.spiffe import SpiffeIdError, parse_spiffe_id_in

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_INVALID = 2


def check(path: str, out: TextIO, err: TextIO) -> int:
    """Validate one policy file and print a one-line summary."""
    policy = _load(path, err)
    if policy is None:
        return EXIT_INVALID
    count = len(policy.workloads)
    print(
        f"{path}: ok ({count} workload{'' if count == 1 else 's'}, "
        f"defaultAction={policy.default_action}, mode={policy.mode}, "
        f"identitySources={','.join(policy.identity_sources)}, digest={policy.digest})",
        file=out,
    )
    return EXIT_OK


def explain(policy_path: str, identity: str, model: str | None, out: TextIO, err: TextIO) -> int:
    """Print which rule decides ``identity`` (and ``model``) and what it allows."""
    policy = _load(policy_path, err)
    if policy is None:
        return EXIT_INVALID
    if identity != UNAUTHENTICATED:
        try:
            parse_spiffe_id_in(identity, policy.trust_domain)
        except SpiffeIdError as exc:
            print(
                f"invalid identity {identity!r}: {exc.reason} "
                f"(expected a SPIFFE ID in trust domain '{policy.trust_domain}' "
                f"or '{UNAUTHENTICATED}')",
                file=err,
            )
            return EXIT_INVALID

    decision = policy.decide(identity, model)
    workload = decision.workload
    lines = [
        f"policy:    {policy.source} (digest {policy.digest})",
        f"identity:  {identity}",
    ]
    if workload is None:
        lines.append(f"rule:      defaultAction={policy.default_action} (no workload matches)")
    else:
        pattern = workload.matching_pattern(identity)
        lines.append(f"rule:      workload '{workload.name}' (matched by '{pattern}')")
    lines.append(f"model:     {model if model is not None else '(not given)'}")
    verdict = "ALLOWED" if decision.allowed else "DENIED"
    lines.append(f"decision:  {verdict}: {decision.reason}")
    if workload is not None:
        lines.extend(_workload_lines(workload))
    if policy.enforcing:
        lines.append("mode:      enforce")
    else:
        lines.append("mode:      audit (dry run: this decision is recorded, nothing is enforced)")
    for line in lines:
        print(line, file=out)
    return EXIT_OK if decision.allowed else EXIT_DENIED


def _workload_lines(workload: WorkloadRule) -> list[str]:
    models = "any" if workload.models is None else ", ".join(workload.models)
    return [
        f"models:    {models}",
        f"request:   {_rules(workload.request)}",
        f"response:  {_rules(workload.response)}",
    ]


def _rules(rules: tuple[ScanRule, ...]) -> str:
    if not rules:
        return "no scanners"
    return ", ".join(f"{r.scanner} -> {r.action}" for r in rules)


def _load(path: str, err: TextIO) -> Policy | None:
    # The same step the server takes before it serves a policy, scan plans
    # compiled included: what passes here never fails at run time.
    from extproc.policy_store import load_and_compile

    try:
        return load_and_compile(path)[0]
    except PolicyError as exc:
        print(str(exc), file=err)
        return None
