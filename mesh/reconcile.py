"""Per-namespace opt-in, as a pure function: observed state in, a plan of changes out.

A namespace labelled ``weir.io/enabled=true`` gets one copy of every template
(the EnvoyFilter, and the AuthorizationPolicy when ext_authz is on), owned by
the Namespace and labelled ``app.kubernetes.io/managed-by=weir-controller``.
Removing the label removes them. :func:`reconcile` decides; ``mesh.controller``
observes the cluster and carries the plan out. The rules, each a test case:

- create what a labelled namespace lacks; update a Weir-managed copy whose
  ``weir.io/spec-hash`` differs from the template's (a template change);
- delete Weir-managed copies in namespaces that are not (or no longer)
  labelled, and copies of templates that no longer exist;
- never touch an object Weir does not manage, even with the same name: it is
  reported as a conflict for a human;
- a terminating or vanished namespace gets no changes: its deletion removes
  its objects, and a create there would fail anyway;
- never stamp into Weir's own namespace (Weir guarding its own gRPC traffic
  would loop) nor Istio's root namespace (an EnvoyFilter there without a
  selector would apply to the whole mesh, not one namespace).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.manifests import ENABLED_LABEL, ISTIO_ROOT_NAMESPACE, MANAGED_BY, PART_OF, WEIR_NAMESPACE

SPEC_HASH_ANNOTATION = "weir.io/spec-hash"
SUPPORTED_KINDS = ("EnvoyFilter", "AuthorizationPolicy")
EXCLUDED_NAMESPACES = frozenset({WEIR_NAMESPACE, ISTIO_ROOT_NAMESPACE})


class TemplateError(ValueError):
    """A template the controller cannot stamp; the message names it and says why."""


@dataclass(frozen=True)
class NamespaceState:
    name: str
    uid: str
    labels: Mapping[str, str] = field(default_factory=dict)
    terminating: bool = False

    @property
    def opted_in(self) -> bool:
        return (
            self.labels.get(ENABLED_LABEL) == "true"
            and not self.terminating
            and self.name not in EXCLUDED_NAMESPACES
        )


@dataclass(frozen=True, order=True)
class ObjectKey:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class ExistingObject:
    """What the controller needs to know about an object already in the cluster."""

    key: ObjectKey
    managed: bool  # carries Weir's managed-by label
    spec_hash: str | None = None
    resource_version: str | None = None


@dataclass(frozen=True)
class Plan:
    creates: tuple[dict[str, Any], ...] = ()
    updates: tuple[dict[str, Any], ...] = ()  # carry metadata.resourceVersion
    deletes: tuple[ObjectKey, ...] = ()
    conflicts: tuple[ObjectKey, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.creates or self.updates or self.deletes)


def key_of(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj["metadata"]
    return ObjectKey(str(obj["kind"]), str(metadata["namespace"]), str(metadata["name"]))


def check_template(template: Mapping[str, Any], source: str) -> None:
    """Raise :class:`TemplateError` unless ``template`` is an object the controller may stamp."""
    kind = template.get("kind") if isinstance(template, Mapping) else None
    if kind not in SUPPORTED_KINDS:
        raise TemplateError(f"{source}: kind {kind!r} is not one of {', '.join(SUPPORTED_KINDS)}")
    metadata = template.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        raise TemplateError(f"{source}: metadata.name is required")
    if "namespace" in metadata:
        raise TemplateError(f"{source}: a template must not set metadata.namespace")
    if not isinstance(template.get("spec"), Mapping):
        raise TemplateError(f"{source}: spec is required")


def spec_hash(template: Mapping[str, Any]) -> str:
    """A digest of everything Weir sets on a copy, so a template change shows as an update."""
    canonical = json.dumps(
        {
            "apiVersion": template.get("apiVersion"),
            "labels": template["metadata"].get("labels", {}),
            "spec": template["spec"],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def desired_object(template: Mapping[str, Any], namespace: NamespaceState) -> dict[str, Any]:
    """The copy of ``template`` that belongs in ``namespace``."""
    obj = copy.deepcopy(dict(template))
    metadata = obj["metadata"]
    metadata["namespace"] = namespace.name
    metadata["labels"] = {**metadata.get("labels", {}), MANAGED_BY[0]: MANAGED_BY[1],
                          PART_OF[0]: PART_OF[1]}
    metadata["annotations"] = {**metadata.get("annotations", {}),
                               SPEC_HASH_ANNOTATION: spec_hash(template)}
    # Owned by the Namespace: Kubernetes' garbage collector agrees that these
    # objects live and die with it, and `kubectl get -o yaml` shows who made them.
    metadata["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Namespace", "name": namespace.name, "uid": namespace.uid}
    ]
    return obj


def reconcile(
    namespaces: Iterable[NamespaceState],
    existing: Iterable[ExistingObject],
    templates: Sequence[Mapping[str, Any]],
) -> Plan:
    """The changes that make the cluster match the labels. Pure and deterministic."""
    observed = {ns.name: ns for ns in namespaces}
    current = {obj.key: obj for obj in existing}
    desired: dict[ObjectKey, dict[str, Any]] = {}
    for ns in observed.values():
        if not ns.opted_in:
            continue
        for template in templates:
            obj = desired_object(template, ns)
            desired[key_of(obj)] = obj

    creates, updates, conflicts = [], [], []
    for key, obj in sorted(desired.items()):
        found = current.get(key)
        if found is None:
            creates.append(obj)
        elif not found.managed:
            conflicts.append(key)
        elif found.spec_hash != obj["metadata"]["annotations"][SPEC_HASH_ANNOTATION]:
            if found.resource_version is not None:
                obj["metadata"]["resourceVersion"] = found.resource_version
            updates.append(obj)

    deletes = []
    for key, found in sorted(current.items()):
        if not found.managed or key in desired:
            continue
        owner = observed.get(key.namespace)
        if owner is None or owner.terminating:
            continue  # the namespace's own deletion takes its objects with it
        deletes.append(key)
    return Plan(tuple(creates), tuple(updates), tuple(deletes), tuple(conflicts))
