#!/usr/bin/env bash
# Weir on a real cluster: kind + Istio + Weir, one labelled namespace, and proof
# that a request into it is guarded (and stops being guarded when the label goes).
#
# Needs: docker, kind, kubectl, istioctl (matching Istio 1.30) on PATH.
# Usage:  istio/e2e-kind.sh            # create cluster "weir-e2e", test, delete it
#         KEEP=1 istio/e2e-kind.sh     # keep the cluster afterwards
#         OVERLAY=sidecar-inbound-ext-authz istio/e2e-kind.sh
# It cannot run on the machines that run `make test` (no Docker, no cluster); it is
# kept correct by reading and by shellcheck (tests/unit/istio/test_image_and_script.py).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CLUSTER:-weir-e2e}"
OVERLAY="${OVERLAY:-sidecar-inbound}"
IMAGE="${IMAGE:-weir:e2e}"
KEEP="${KEEP:-0}"
TIMEOUT="${TIMEOUT:-180s}"
# Inside istio/: kustomize refuses absolute paths to a base.
WORK="$(mktemp -d "${REPO}/istio/.e2e-kind.XXXXXX")"

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  rm -rf "${WORK}"
  if [[ "${KEEP}" != "1" ]]; then
    kind delete cluster --name "${CLUSTER}" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

for tool in docker kind kubectl istioctl; do
  command -v "${tool}" >/dev/null || die "${tool} is not on PATH"
done
[[ -d "${REPO}/istio/overlays/${OVERLAY}" ]] || die "no overlay ${OVERLAY}"

log "kind cluster ${CLUSTER}"
if ! kind get clusters | grep -qx "${CLUSTER}"; then
  kind create cluster --name "${CLUSTER}" --wait 120s
fi
kubectl config use-context "kind-${CLUSTER}" >/dev/null

log "image ${IMAGE} (numba cache warmed during the build)"
docker build -t "${IMAGE}" "${REPO}"
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

log "Istio, with Weir registered as the weir-ext-authz extension provider"
istioctl install -y --set profile=default -f "${REPO}/istio/ext-authz/istio-operator.yaml"

log "Weir (${OVERLAY}) with an enforcing test policy"
cat >"${WORK}/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../overlays/${OVERLAY}
images:
  - name: ghcr.io/weir-project/weir
    newName: ${IMAGE%%:*}
    newTag: ${IMAGE##*:}
patches:
  - target: {kind: Deployment}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/imagePullPolicy
        value: IfNotPresent
  - patch: |-
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: weir-policy, namespace: weir-system}
      data:
        policy.yaml: |
          trustDomain: cluster.local
          defaultAction: deny
          mode: enforce
          identitySources: [peer-certificate]
          workloads:
            - name: allowed-client
              match: ["spiffe://cluster.local/ns/llm-clients/sa/allowed"]
              models: ["gpt-4o-mini"]
EOF
kubectl apply -k "${WORK}"
kubectl -n weir-system rollout status deploy/weir --timeout="${TIMEOUT}"
kubectl -n weir-system rollout status deploy/weir-controller --timeout="${TIMEOUT}"

log "an LLM-serving namespace (fake OpenAI upstream) and a client namespace"
kubectl apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: llm-serving
  labels: {istio-injection: enabled}
---
apiVersion: v1
kind: Namespace
metadata:
  name: llm-clients
  labels: {istio-injection: enabled}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: fake-llm, namespace: llm-serving}
spec:
  selector: {matchLabels: {app: fake-llm}}
  template:
    metadata: {labels: {app: fake-llm}}
    spec:
      containers:
        - name: fake-llm
          image: ${IMAGE}
          imagePullPolicy: IfNotPresent
          command: [python, -m, loadtest.fake_upstream, --host, 0.0.0.0, --port, "8080"]
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: fake-llm, namespace: llm-serving}
spec:
  selector: {app: fake-llm}
  ports: [{name: http, port: 8080, appProtocol: http}]
EOF
for who in allowed denied; do
  kubectl apply -f - <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: ${who}, namespace: llm-clients}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${who}, namespace: llm-clients}
spec:
  selector: {matchLabels: {app: ${who}}}
  template:
    metadata: {labels: {app: ${who}}}
    spec:
      serviceAccountName: ${who}
      containers:
        - name: curl
          image: curlimages/curl:8.11.1
          command: [sleep, infinity]
EOF
done
kubectl -n llm-serving rollout status deploy/fake-llm --timeout="${TIMEOUT}"
kubectl -n llm-clients rollout status deploy/allowed --timeout="${TIMEOUT}"
kubectl -n llm-clients rollout status deploy/denied --timeout="${TIMEOUT}"

# POST a chat completion from a client pod; prints "<status> <body>".
call() {
  local who="$1" model="$2"
  kubectl -n llm-clients exec "deploy/${who}" -c curl -- \
    curl -sS --max-time 20 -w ' %{http_code}' \
      -H 'content-type: application/json' \
      -d "{\"model\": \"${model}\", \"messages\": [{\"role\": \"user\", \"content\": \"echo: hi\"}]}" \
      http://fake-llm.llm-serving:8080/v1/chat/completions
}

# Retry until the expected status: the controller and istiod push asynchronously.
expect() {
  local want="$1" who="$2" model="$3" out=""
  for _ in $(seq 1 30); do
    # A failed call (pod not ready, connection reset) is a retry, not the end.
    set +e
    out="$(call "${who}" "${model}" 2>&1)"
    set -e
    if [[ "${out##* }" == "${want}" ]]; then
      printf '  %s %s -> %s\n' "${who}" "${model}" "${out}" >&2
      return 0
    fi
    sleep 2
  done
  die "${who} ${model}: expected HTTP ${want}, last got: ${out}"
}

log "opt llm-serving in: weir.io/enabled=true"
kubectl label namespace llm-serving weir.io/enabled=true --overwrite
for _ in $(seq 1 30); do
  kubectl -n llm-serving get envoyfilter weir-ext-proc >/dev/null 2>&1 && break
  sleep 2
done
kubectl -n llm-serving get envoyfilter weir-ext-proc -o jsonpath='{.metadata.labels}' >/dev/null \
  || die "the controller did not create the EnvoyFilter"

log "guarded: the allowed identity passes, the others are refused in OpenAI's format"
expect 200 allowed gpt-4o-mini
expect 403 denied gpt-4o-mini
expect 403 allowed gpt-4o
denied_body="$(call denied gpt-4o-mini)"
[[ "${denied_body}" == *weir_policy_denied* ]] || die "403 without Weir's body: ${denied_body}"
# Every replica's log: the denial may have gone to either. Captured, not piped into
# `grep -q`, which would close the pipe early and fail the script under pipefail.
decisions="$(kubectl -n weir-system logs -l app.kubernetes.io/name=weir -c weir --tail=500)"
[[ "${decisions}" == *'"verdict": "deny"'* ]] || die "no deny decision in Weir's decision log"

log "opt out: removing the label removes the guard"
kubectl label namespace llm-serving weir.io/enabled-
for _ in $(seq 1 30); do
  kubectl -n llm-serving get envoyfilter weir-ext-proc >/dev/null 2>&1 || break
  sleep 2
done
if kubectl -n llm-serving get envoyfilter weir-ext-proc >/dev/null 2>&1; then
  die "the controller did not delete the EnvoyFilter"
fi
expect 200 denied gpt-4o-mini

log "PASS: Weir guards a labelled namespace on kind, and lets go when unlabelled"
