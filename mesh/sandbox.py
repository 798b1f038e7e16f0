"""The local mesh sandbox: a CA and SPIFFE certificates, a fake LLM upstream,
real Envoy with mTLS and ext_proc (fail closed), and `weir serve`.

`MeshSandbox` starts and stops those processes and hands out SDK clients that
present a workload's certificate. The end-to-end tests use it as their
fixture, and `weir sandbox` (`make demo`) uses it for the guided tour, so the
demo shows exactly what the tests prove.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.certs import PkiPaths, write_pki
from mesh.envoy_config import envoy_binary, render_yaml, sandbox_bootstrap
from mesh.sandbox_idp import SandboxIdp

TRUST_DOMAIN = "cluster.local"

# file stem -> SPIFFE ID of each sandbox workload
SANDBOX_WORKLOADS: Mapping[str, str] = {
    "checkout": f"spiffe://{TRUST_DOMAIN}/ns/payments/sa/checkout",
    "notebook": f"spiffe://{TRUST_DOMAIN}/ns/research/sa/notebook",
    "etl": f"spiffe://{TRUST_DOMAIN}/ns/batch/sa/etl",
    "assistant": f"spiffe://{TRUST_DOMAIN}/ns/finance/sa/assistant",
    "agent": f"spiffe://{TRUST_DOMAIN}/ns/support/sa/agent",
}

# The sandbox's end-user identity provider: its JWKS file sits next to the policy.
SANDBOX_IDP_ISSUER = "https://idp.sandbox.local"
SANDBOX_USER_JWKS = "user-jwks.json"
SANDBOX_USER_HEADER = "x-user-token"

SANDBOX_POLICY = f"""\
# The sandbox policy: four known workloads, everyone else denied.
trustDomain: {TRUST_DOMAIN}
defaultAction: deny
mode: enforce
identitySources: [peer-certificate]
jwt:                           # end users, from the chat front end's token
  header: {SANDBOX_USER_HEADER}
  issuers:
    - {{issuer: "{SANDBOX_IDP_ISSUER}", audiences: [weir], jwks: {{file: {SANDBOX_USER_JWKS}}}}}
workloads:
  - name: payments-checkout
    match: ["spiffe://{TRUST_DOMAIN}/ns/payments/sa/checkout"]
    models: ["gpt-4o", "gpt-4o-mini", "claude-sonnet-*"]
    request:  [{{scanner: secrets, action: block}}]
    response:
      - {{scanner: secrets, action: redact}}
      - {{scanner: pii, action: redact}}
      - {{scanner: deny-list, action: redact, terms: ["Project Falcon", "falcon-db.internal"]}}
  - name: research
    match: ["spiffe://{TRUST_DOMAIN}/ns/research/*"]
    request:  [{{scanner: secrets, action: redact}}, {{scanner: prompt-injection, action: block}}]
    response: [{{scanner: secrets, action: block}}, {{scanner: pii, action: audit}}]
  - name: finance-assistant
    match: ["spiffe://{TRUST_DOMAIN}/ns/finance/sa/assistant"]
    users: ["group:finance-analysts"]
    requireUser: true
    providers: [openai]
  - name: support-agent          # calls MCP tools (the tour's agent scene)
    match: ["spiffe://{TRUST_DOMAIN}/ns/support/sa/agent"]
    tools: ["search_docs", "get_*"]
    mcp:
      request:  [{{scanner: secrets, action: block}}]
      response: [{{scanner: prompt-injection, action: block}}, {{scanner: secrets, action: redact}}]
      pinning: enforce
"""


class SandboxError(RuntimeError):
    """A sandbox process failed to start; the message carries its log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class _Process:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, env: Mapping[str, str] | None = None) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.popen = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C in the terminal reaches us, we stop the children
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise SandboxError(
                    f"{self.name} exited with {self.popen.returncode if self.popen else '?'}:\n"
                    f"{_tail(self.log_path)}"
                )
            if check():
                return
            time.sleep(0.05)
        raise SandboxError(f"{self.name} not ready after {timeout}s:\n{_tail(self.log_path)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


@dataclass
class MeshSandbox:
    """Certificates, fake upstream, Weir and Envoy on loopback, for one test session or tour."""

    workdir: Path
    policy_text: str = SANDBOX_POLICY
    workloads: Mapping[str, str] = field(default_factory=lambda: dict(SANDBOX_WORKLOADS))
    request_attributes: Sequence[str] = ("connection.uri_san_peer_certificate",)
    # Istio's NAMESPACE / SERVICE_ACCOUNT node metadata, for the node-metadata identity source.
    node_metadata: Mapping[str, str] | None = None
    startup_timeout: float = 90.0  # the first start JIT-compiles the scanner kernels
    # Which guard filters Envoy runs; both point at the same `weir serve` gRPC port.
    ext_proc: bool = True
    ext_authz: bool = False
    # Neither filter: Envoy alone, the load test's baseline (must be asked for).
    unguarded: bool = False
    # False lets a caller without a certificate in (it may carry a JWT-SVID instead).
    require_client_certificate: bool = True
    # More `weir serve` flags, e.g. ("--otlp-endpoint", url).
    weir_args: Sequence[str] = ()
    weir_env: Mapping[str, str] | None = None
    # `weir serve` replicas behind Envoy's one ext_proc cluster (share state with --redis).
    replicas: int = 1
    # The MCP tool server (mesh.sandbox_mcp) behind Envoy's `/mcp` route: the tour's agent.
    mcp_server: bool = False

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.policy_path = self.workdir / "policy.yaml"
        self.upstream_log = self.workdir / "upstream-requests.jsonl"
        self.ports = {
            name: free_port()
            for name in ("envoy", "envoy_admin", "upstream", "weir_grpc", "weir_admin", "mcp")
        }
        self.mcp_log = self.workdir / "mcp-tool-calls.jsonl"
        self._mcp: _Process | None = None
        for n in range(1, self.replicas):
            self.ports[f"weir_grpc_{n}"] = free_port()
            self.ports[f"weir_admin_{n}"] = free_port()
        self._more_weir: list[_Process] = []
        self.pki: PkiPaths | None = None
        # Signs the end-user tokens of the tour and the tests (SANDBOX_POLICY trusts it).
        self.idp = SandboxIdp.create(SANDBOX_IDP_ISSUER)
        self._upstream: _Process | None = None
        self._weir: _Process | None = None
        self._envoy: _Process | None = None

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> MeshSandbox:
        try:
            self.pki = write_pki(self.workdir / "pki", TRUST_DOMAIN, self.workloads)
            (self.workdir / SANDBOX_USER_JWKS).write_bytes(self.idp.jwks())
            self.policy_path.write_text(self.policy_text)
            self.start_upstream()
            if self.mcp_server:
                self.start_mcp_server()
            self.start_weir()
            for n in range(1, self.replicas):
                self._more_weir.append(self._start_weir_process(
                    self.ports[f"weir_grpc_{n}"], self.ports[f"weir_admin_{n}"], f"weir-{n}.log"
                ))
            self.start_envoy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in (self._envoy, *self._more_weir, self._weir, self._mcp, self._upstream):
            if process is not None:
                process.stop()

    def __enter__(self) -> MeshSandbox:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start_upstream(self) -> None:
        self._upstream = _Process(
            "fake upstream",
            [
                sys.executable, "-m", "loadtest.fake_upstream",
                "--host", "127.0.0.1", "--port", str(self.ports["upstream"]),
                "--log", str(self.upstream_log),
            ],
            self.workdir / "upstream.log",
        )
        self._upstream.start()
        self._upstream.wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{self.ports['upstream']}/__requests"), 30
        )

    def start_mcp_server(self, status_description: str | None = None) -> None:
        """Start (or, with another `get_status` description, redeploy) the MCP tool server."""
        from mesh.sandbox_mcp import STATUS_DESCRIPTION

        if self._mcp is not None:
            self._mcp.stop()
        self.mcp_log.touch()
        port = self.ports["mcp"]
        self._mcp = _Process(
            "mcp tool server",
            [
                sys.executable, "-m", "mesh.sandbox_mcp", "--port", str(port),
                "--log", str(self.mcp_log),
                "--status-description", status_description or STATUS_DESCRIPTION,
            ],
            self.workdir / "mcp-server.log",
        )
        self._mcp.start()
        self._mcp.wait_until(lambda: _listening(port), 30)

    def mcp_tool_calls(self) -> list[str]:
        """The tools called on the MCP tool server, in order, since the last clear."""
        if not self.mcp_log.exists():
            return []
        return [json.loads(line)["tool"] for line in self.mcp_log.read_text().splitlines()]

    def clear_mcp_tool_calls(self) -> None:
        if self.mcp_log.exists():
            self.mcp_log.write_text("")

    def start_weir(self) -> None:
        self._weir = self._start_weir_process(
            self.ports["weir_grpc"], self.ports["weir_admin"], "weir.log"
        )

    def _start_weir_process(self, grpc_port: int, admin_port: int, log: str) -> _Process:
        process = _Process(
            "weir serve",
            [
                sys.executable, "-m", "extproc.cli", "serve",
                "--policy", str(self.policy_path),
                "--grpc-listen", f"127.0.0.1:{grpc_port}",
                "--admin-listen", f"127.0.0.1:{admin_port}",
                "--reload-interval", "0.2",
                "--drain-grace", "5",
                *self.weir_args,
            ],
            self.workdir / log,
        )
        process.start(self.weir_env)
        process.wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{admin_port}/readyz"), self.startup_timeout
        )
        return process

    def stop_weir(self, sig: int = signal.SIGTERM) -> int | None:
        return self._weir.stop(sig) if self._weir else None

    def start_envoy(self, processor_port: int | None = None) -> None:
        """Start Envoy; ``processor_port`` points its ext_proc cluster at another
        processor than `weir serve` (the load test's bare reference processor)."""
        assert self.pki is not None
        bootstrap = sandbox_bootstrap(
            listen_port=self.ports["envoy"],
            admin_port=self.ports["envoy_admin"],
            upstream_port=self.ports["upstream"],
            weir_grpc_port=processor_port or self.ports["weir_grpc"],
            ca_path=self.pki.ca,
            server_cert_path=self.pki.server_cert,
            server_key_path=self.pki.server_key,
            request_attributes=self.request_attributes,
            node_metadata=self.node_metadata,
            ext_proc=self.ext_proc,
            ext_authz=self.ext_authz,
            unguarded=self.unguarded,
            require_client_certificate=self.require_client_certificate,
            more_weir_grpc_ports=[
                self.ports[f"weir_grpc_{n}"] for n in range(1, self.replicas)
            ] if processor_port is None else [],
            mcp_port=self.ports["mcp"] if self.mcp_server else None,
        )
        config_path = self.workdir / "envoy.yaml"
        config_path.write_text(render_yaml(bootstrap))
        self._envoy = _Process(
            "envoy",
            [
                envoy_binary(), "-c", str(config_path),
                "--log-level", "warn",
                "--disable-hot-restart",
                "--concurrency", "2",
            ],
            self.workdir / "envoy.log",
        )
        self._envoy.start()
        self._envoy.wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{self.ports['envoy_admin']}/ready"), 30
        )

    def stop_envoy(self, sig: int = signal.SIGTERM) -> int | None:
        return self._envoy.stop(sig) if self._envoy else None

    def pids(self) -> dict[str, int]:
        """Process ids of the running children, by role: upstream, weir, envoy."""
        roles = {"upstream": self._upstream, "weir": self._weir, "envoy": self._envoy}
        return {
            role: process.popen.pid
            for role, process in roles.items()
            if process is not None and process.popen is not None and process.running
        }

    # --- what tests and the tour use --------------------------------------------

    @property
    def envoy_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['envoy']}"

    def weir_admin_url(self, path: str, replica: int = 0) -> str:
        port = self.ports["weir_admin" if replica == 0 else f"weir_admin_{replica}"]
        return f"http://127.0.0.1:{port}{path}"

    def ssl_context(self, workload: str | None) -> ssl.SSLContext:
        """Trusts the sandbox CA; presents `workload`'s certificate when given."""
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if workload is not None:
            cert, key = self.pki.workload(workload)
            context.load_cert_chain(str(cert), str(key))
        return context

    def openai_client(self, workload: str | None, **kwargs: Any) -> Any:
        import openai

        return openai.OpenAI(
            base_url=f"{self.envoy_url}/v1",
            api_key="sk-sandbox-not-a-real-key",
            http_client=openai.DefaultHttpxClient(verify=self.ssl_context(workload)),
            max_retries=0,
            **kwargs,
        )

    def anthropic_client(self, workload: str | None, **kwargs: Any) -> Any:
        import anthropic

        return anthropic.Anthropic(
            base_url=self.envoy_url,
            api_key="sk-ant-sandbox-not-a-real-key",
            http_client=anthropic.DefaultHttpxClient(verify=self.ssl_context(workload)),
            max_retries=0,
            **kwargs,
        )

    def user_token(self, subject: str, groups: Sequence[str], lifetime: float = 300) -> str:
        """An end-user token from the sandbox IdP, for the `finance-assistant` rule."""
        return self.idp.token(self.idp.claims(subject, "weir", lifetime, groups=list(groups)))

    def upstream_requests(self) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.ports['upstream']}/__requests"
        with urllib.request.urlopen(url, timeout=5) as response:
            return list(json.load(response))

    def clear_upstream_requests(self) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports['upstream']}/__requests", method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def weir_log(self) -> str:
        return (self.workdir / "weir.log").read_text(errors="replace")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_sandbox(workdir: str | None = None, keep: bool = False) -> int:
    """`weir sandbox`: start the mesh, take the tour, stop everything, also on Ctrl-C."""
    from mesh.tour import take_tour

    own_dir = workdir is None
    path = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="weir-sandbox-"))
    sandbox = MeshSandbox(path, mcp_server=True)
    # SIGTERM, and SIGINT even where a shell started us with it ignored, unwind like
    # Ctrl-C so that the children are stopped.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(f"Starting the Weir sandbox in {path} (CA, SPIFFE certs, upstream, Weir, Envoy)...")
        with sandbox:
            return take_tour(sandbox, removed_on_exit=own_dir and not keep)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the sandbox", file=sys.stderr)
        return 130
    except SandboxError as exc:
        print(f"weir sandbox: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if own_dir and not keep:
            shutil.rmtree(path, ignore_errors=True)
