"""`weir controller` wiring, against a recording fake of the kubernetes client (no cluster here)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from extproc.cli import build_parser
from mesh.controller import load_templates, reconcile_once
from mesh.manifests import ISTIO_DIR
from mesh.reconcile import TemplateError

TEMPLATES = [
    ISTIO_DIR / "overlays/sidecar-inbound/envoyfilter.yaml",
    ISTIO_DIR / "components/ext-authz/authorizationpolicy.yaml",
]


class FakeCluster:
    """CoreV1Api + CustomObjectsApi, just the calls the controller makes."""

    def __init__(self, namespaces: list[tuple[str, dict[str, str]]]) -> None:
        self.namespaces = namespaces
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[str] = []
        self.fail_with: int | None = None

    def list_namespace(self) -> Any:
        return SimpleNamespace(items=[
            SimpleNamespace(metadata=SimpleNamespace(
                name=name, uid=f"uid-{name}", labels=labels, deletion_timestamp=None))
            for name, labels in self.namespaces
        ])

    def list_cluster_custom_object(self, group: str, version: str, plural: str) -> dict[str, Any]:
        return {"items": [o for (p, _, _), o in self.objects.items() if p == plural]}

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                        plural: str, body: dict[str, Any], **_: Any) -> None:
        self.calls.append(f"create {plural} {namespace}")
        if self.fail_with:
            raise ApiException(status=self.fail_with)
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
        self.objects[(plural, namespace, body["metadata"]["name"])] = body

    def replace_namespaced_custom_object(self, *args: Any, **_: Any) -> None:
        self.calls.append(f"replace {args[3]} {args[2]}")

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                        plural: str, name: str) -> None:
        self.calls.append(f"delete {plural} {namespace}")
        self.objects.pop((plural, namespace, name), None)


@pytest.fixture
def templates(tmp_path: Path) -> list[dict[str, Any]]:
    for path in TEMPLATES:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "README").write_text("not a template")
    return load_templates(tmp_path)


def test_the_committed_overlay_files_load_as_templates(templates: list[dict[str, Any]]) -> None:
    assert sorted(t["kind"] for t in templates) == ["AuthorizationPolicy", "EnvoyFilter"]


def test_a_label_flip_creates_then_deletes_through_the_api(
    templates: list[dict[str, Any]],
) -> None:
    cluster = FakeCluster([("shop", {"weir.io/enabled": "true"}), ("weir-system", {})])
    reconcile_once(cluster, cluster, templates)
    assert sorted(cluster.calls) == [
        "create authorizationpolicies shop", "create envoyfilters shop"
    ]
    cluster.calls.clear()
    reconcile_once(cluster, cluster, templates)
    assert cluster.calls == [], "a second pass over an unchanged cluster changes nothing"

    cluster.namespaces = [("shop", {}), ("weir-system", {})]
    reconcile_once(cluster, cluster, templates)
    assert sorted(cluster.calls) == [
        "delete authorizationpolicies shop", "delete envoyfilters shop"
    ]
    assert cluster.objects == {}


def test_a_create_that_lost_a_race_is_tolerated_and_other_errors_are_not(
    templates: list[dict[str, Any]],
) -> None:
    cluster = FakeCluster([("shop", {"weir.io/enabled": "true"})])
    cluster.fail_with = 409
    reconcile_once(cluster, cluster, templates)  # logged, next pass sees the winner
    cluster.fail_with = 403
    with pytest.raises(ApiException):
        reconcile_once(cluster, cluster, templates)


def test_a_bad_template_file_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: Secret\nmetadata: {name: x}\nspec: {}\n")
    with pytest.raises(TemplateError, match=r"bad\.yaml"):
        load_templates(tmp_path)


def test_weir_controller_is_a_subcommand_with_its_templates_and_resync() -> None:
    args = build_parser().parse_args(["controller", "--templates", "/t", "--resync-seconds", "5"])
    assert (args.templates, args.resync_seconds) == ("/t", 5)
