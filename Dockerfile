# syntax=docker/dockerfile:1
# Weir: `weir serve` (ext_proc + ext_authz) and `weir controller`, one image.
# Build: docker build -t weir:0.1.0 .   (istio/README.md, istio/e2e-kind.sh)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a venv with Weir and its runtime dependencies only ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/weir
# Metadata first, so a code change does not re-resolve the dependencies' layer key.
COPY pyproject.toml README.md ./
COPY extproc ./extproc
COPY mesh ./mesh
COPY protos ./protos
COPY loadtest ./loadtest
# A regular (not editable) install; the `controller` extra brings the kubernetes
# client. No test, sandbox or bench extras: no Envoy, SDKs or pytest in the image.
RUN /opt/weir/bin/pip install --no-compile '.[controller]'
# xds-protos and opentelemetry-proto ship the same opentelemetry/proto files; write
# opentelemetry-proto's again so the OTLP exporter's imports hold whatever pip's order.
RUN /opt/weir/bin/pip install --no-compile --force-reinstall --no-deps \
        "opentelemetry-proto==$(/opt/weir/bin/python -c 'from importlib.metadata import version; print(version("opentelemetry-proto"))')"

# --- runtime -------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="weir" \
      org.opencontainers.image.description="Runtime guard for LLM traffic in a service mesh" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 weir \
    && useradd --system --uid 10001 --gid weir --no-create-home --shell /usr/sbin/nologin weir
COPY --from=build /opt/weir /opt/weir
ENV PATH=/opt/weir/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/opt/weir/numba-cache
# Warm the numba cache at build time, in the final stage (numba keys its cache on
# the source files' paths and mtimes), so a pod is ready in seconds instead of
# JIT-compiling on start. The Deployment copies it into a writable emptyDir
# (istio/base/deployment.yaml); a CPU unlike the build machine's recompiles.
RUN python -c "from extproc.scanner import warm_up; warm_up()" \
    && chown -R weir:weir /opt/weir/numba-cache
USER 10001:10001
WORKDIR /opt/weir
EXPOSE 9000 9901
# For `docker run`; Kubernetes uses the Deployment's probes on the same endpoint.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9901/readyz', timeout=2)"]
ENTRYPOINT ["weir"]
CMD ["serve", "--policy=/etc/weir/policy.yaml", "--grpc-listen=0.0.0.0:9000", "--admin-listen=0.0.0.0:9901"]
