"""The Redis component (istio/components/redis), rendered offline by kustomize: Redis
for Weir's shared state, reachable by Weir's pods only, and Weir pointed at it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from mesh.manifests import ISTIO_DIR


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = Path(sys.executable).parent / "kubectl"
    result = subprocess.run(
        [str(kubectl), "kustomize", str(ISTIO_DIR / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


DOCS = render("sidecar-inbound-redis")


def test_the_component_adds_a_redis_statefulset_service_and_network_policy() -> None:
    statefulset = named(DOCS, "StatefulSet", "weir-redis")
    service = named(DOCS, "Service", "weir-redis")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    [service_port] = service["spec"]["ports"]
    assert service_port["targetPort"] in ports and service_port["name"].startswith("tcp-")
    assert "--appendonly" in container["args"]  # budgets survive a Redis restart
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert {m["name"] for m in container["volumeMounts"]} == {claim["metadata"]["name"]}
    assert {d["metadata"].get("namespace") for d in (statefulset, service)} == {"weir-system"}


def test_only_weirs_data_plane_pods_may_reach_redis() -> None:
    policy = named(DOCS, "NetworkPolicy", "weir-redis")
    statefulset = named(DOCS, "StatefulSet", "weir-redis")
    weir = named(DOCS, "Deployment", "weir")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    weir_labels = weir["spec"]["template"]["metadata"]["labels"]
    assert source["podSelector"]["matchLabels"].items() <= weir_labels.items()
    controller = named(DOCS, "Deployment", "weir-controller")
    controller_labels = controller["spec"]["template"]["metadata"]["labels"]
    assert not source["podSelector"]["matchLabels"].items() <= controller_labels.items()
    assert [p["port"] for p in rule["ports"]] == [6379]


def test_weir_is_pointed_at_the_components_redis_service() -> None:
    weir = named(DOCS, "Deployment", "weir")
    [container] = weir["spec"]["template"]["spec"]["containers"]
    [flag] = [a for a in container["args"] if a.startswith("--redis=")]
    url = urlsplit(flag.removeprefix("--redis="))
    service = named(DOCS, "Service", "weir-redis")
    assert url.scheme == "redis"
    assert url.hostname == f"weir-redis.{service['metadata']['namespace']}.svc.cluster.local"
    assert url.port == service["spec"]["ports"][0]["port"]
    # Without the component Weir keeps its state in process.
    plain = named(render("sidecar-inbound"), "Deployment", "weir")
    assert not any(a.startswith("--redis") for a in plain["spec"]["template"]["spec"]
                   ["containers"][0]["args"])
