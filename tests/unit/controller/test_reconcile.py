"""Per-namespace opt-in: the pure reconcile function, as a table of observed states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from mesh.manifests import MODES, authorization_policy, envoy_filter
from mesh.reconcile import (
    SPEC_HASH_ANNOTATION,
    ExistingObject,
    NamespaceState,
    ObjectKey,
    Plan,
    TemplateError,
    check_template,
    desired_object,
    reconcile,
    spec_hash,
)

FILTER = envoy_filter(MODES["sidecar-inbound"], None)
POLICY = authorization_policy(None)
FILTER_HASH = spec_hash(FILTER)
ON = {"weir.io/enabled": "true"}


def ns(
    name: str, labels: dict[str, str] | None = None, terminating: bool = False
) -> NamespaceState:
    return NamespaceState(name, f"uid-{name}", labels or {}, terminating)


def ef(namespace: str, managed: bool = True, hash_: str | None = FILTER_HASH) -> ExistingObject:
    return ExistingObject(
        ObjectKey("EnvoyFilter", namespace, "weir-ext-proc"), managed, hash_, resource_version="7"
    )


def ap(namespace: str) -> ExistingObject:
    key = ObjectKey("AuthorizationPolicy", namespace, "weir-ext-authz")
    return ExistingObject(key, True, spec_hash(POLICY), "3")


@dataclass
class Case:
    id: str
    namespaces: list[NamespaceState]
    existing: list[ExistingObject] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=lambda: [FILTER])
    creates: list[str] = field(default_factory=list)  # "Kind ns/name"
    updates: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


EF = "EnvoyFilter {}/weir-ext-proc"
AP = "AuthorizationPolicy {}/weir-ext-authz"

CASES = [
    Case("a labelled namespace without the filter gets it created",
         [ns("shop", ON), ns("other")], creates=[EF.format("shop")]),
    Case("a labelled namespace that has an up-to-date filter needs nothing",
         [ns("shop", ON)], [ef("shop")]),
    Case("the label flipped off: the filter is deleted",
         [ns("shop", {"weir.io/enabled": "false"})], [ef("shop")], deletes=[EF.format("shop")]),
    Case("the label removed entirely: the filter is deleted",
         [ns("shop")], [ef("shop")], deletes=[EF.format("shop")]),
    Case("the label flipped on in one namespace and off in another",
         [ns("a", ON), ns("b")], [ef("b")], creates=[EF.format("a")], deletes=[EF.format("b")]),
    Case("a label value other than 'true' does not opt in",
         [ns("shop", {"weir.io/enabled": "yes"})]),
    Case("a changed template updates the stale copy",
         [ns("shop", ON)], [ef("shop", hash_="0ld")], updates=[EF.format("shop")]),
    Case("a copy without a hash annotation is updated",
         [ns("shop", ON)], [ef("shop", hash_=None)], updates=[EF.format("shop")]),
    Case("an object of the same name that Weir does not manage is a conflict, left alone",
         [ns("shop", ON)], [ef("shop", managed=False)], conflicts=[EF.format("shop")]),
    Case("an unmanaged object in an unlabelled namespace is never deleted",
         [ns("shop")], [ef("shop", managed=False)]),
    Case("a terminating labelled namespace gets no create",
         [ns("shop", ON, terminating=True)]),
    Case("a terminating namespace's filter is left to the namespace deletion",
         [ns("shop", ON, terminating=True)], [ef("shop")]),
    Case("a deleted namespace's leftover filter in a stale list is not deleted again",
         [], [ef("gone")]),
    Case("Weir's own namespace is never guarded, label or not",
         [ns("weir-system", ON)], [ef("weir-system")], deletes=[EF.format("weir-system")]),
    Case("the mesh root namespace is never stamped: it would apply mesh-wide",
         [ns("istio-system", ON)]),
    Case("with ext_authz on, a labelled namespace gets both objects",
         [ns("shop", ON)], templates=[FILTER, POLICY],
         creates=[AP.format("shop"), EF.format("shop")]),
    Case("turning ext_authz off deletes the policies and keeps the filters",
         [ns("shop", ON)], [ef("shop"), ap("shop")], deletes=[AP.format("shop")]),
    Case("no templates (the egress-gateway overlay) cleans up every stamped copy",
         [ns("a", ON), ns("b", ON)], [ef("a"), ef("b")], templates=[],
         deletes=[EF.format("a"), EF.format("b")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reconcile_plans_exactly_the_changes_the_labels_call_for(case: Case) -> None:
    plan = reconcile(case.namespaces, case.existing, case.templates)

    def names(objs: tuple[dict[str, Any], ...]) -> list[str]:
        return [f"{o['kind']} {o['metadata']['namespace']}/{o['metadata']['name']}" for o in objs]

    assert names(plan.creates) == case.creates
    assert names(plan.updates) == case.updates
    assert [str(k) for k in plan.deletes] == case.deletes
    assert [str(k) for k in plan.conflicts] == case.conflicts


def test_reconciling_the_result_of_a_plan_plans_nothing() -> None:
    namespaces = [ns("a", ON), ns("b", ON), ns("c")]
    plan = reconcile(namespaces, [ef("c")], [FILTER, POLICY])
    after = [
        ExistingObject(
            ObjectKey(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]),
            managed=True,
            spec_hash=o["metadata"]["annotations"][SPEC_HASH_ANNOTATION],
        )
        for o in plan.creates
    ]
    assert reconcile(namespaces, after, [FILTER, POLICY]) == Plan()


def test_a_stamped_copy_is_labelled_owned_and_namespaced_and_keeps_the_spec() -> None:
    obj = desired_object(FILTER, ns("shop", ON))
    metadata = obj["metadata"]
    assert metadata["namespace"] == "shop"
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "weir-controller"
    assert metadata["labels"]["weir.io/mode"] == "sidecar-inbound"
    assert metadata["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Namespace", "name": "shop", "uid": "uid-shop"}
    ]
    assert obj["spec"] == FILTER["spec"]
    assert "namespace" not in FILTER["metadata"], "the template itself must stay untouched"


def test_an_update_carries_the_observed_resource_version_for_optimistic_concurrency() -> None:
    [update] = reconcile([ns("shop", ON)], [ef("shop", hash_="old")], [FILTER]).updates
    assert update["metadata"]["resourceVersion"] == "7"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ({"kind": "Deployment", "metadata": {"name": "x"}, "spec": {}}, "not one of"),
        ({"kind": "EnvoyFilter", "metadata": {}, "spec": {}}, "metadata.name"),
        ({"kind": "EnvoyFilter", "metadata": {"name": "x", "namespace": "y"}, "spec": {}},
         "must not set metadata.namespace"),
        ({"kind": "EnvoyFilter", "metadata": {"name": "x"}}, "spec is required"),
    ],
    ids=["unsupported-kind", "no-name", "fixed-namespace", "no-spec"],
)
def test_a_template_the_controller_must_not_stamp_is_refused(
    template: dict[str, Any], reason: str
) -> None:
    with pytest.raises(TemplateError, match=reason):
        check_template(template, "t.yaml")
