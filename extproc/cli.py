"""The `weir` command line: argument parsing only, each subcommand delegates to its module.

Exit codes: 0 success, 1 a finding or a denial where the subcommand says so,
2 a usage or input error (bad policy, unreadable file), with a message on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from extproc.mcp.pins import PinStore


def _serve(args: argparse.Namespace) -> int:
    from extproc.server import ServeConfig, serve
    from extproc.stream import ExchangeConfig
    from extproc.telemetry import TelemetryConfigError, config_from
    from mesh.policy import PolicyError

    try:
        telemetry = config_from(args.otlp_endpoint)
    except TelemetryConfigError as exc:
        print(f"weir serve: {exc}", file=sys.stderr)
        return 2
    from extproc.mcp.pins import FilePinStore, MemoryPinStore

    if args.redis is not None and args.state_dir is not None:
        print("weir serve: --state-dir and --redis: with --redis the MCP tool pins live in "
              "Redis, shared by every replica; drop --state-dir", file=sys.stderr)
        return 2
    try:
        pins: PinStore = (
            # With --redis, `weir serve` keeps them in Redis (extproc.server.with_pin_store).
            MemoryPinStore() if args.state_dir is None else FilePinStore(args.state_dir)
        )
    except (OSError, ValueError) as exc:
        print(f"weir serve: --state-dir: {exc}", file=sys.stderr)
        return 2
    config = ServeConfig(
        policy_path=args.policy,
        grpc_listen=args.grpc_listen,
        admin_listen=args.admin_listen,
        exchange=ExchangeConfig(max_request_body=args.max_request_body, pins=pins),
        reload_interval=args.reload_interval,
        drain_grace=args.drain_grace,
        telemetry=telemetry,
        redis_url=args.redis,
        redis_timeout=args.redis_timeout,
    )
    try:
        return asyncio.run(serve(config, warmups=_warmups()))
    except PolicyError as exc:
        print(f"weir serve: invalid policy: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"weir serve: {exc}", file=sys.stderr)
        return 2


def _mcp_pins(args: argparse.Namespace) -> int:
    from extproc.mcp.admin_client import list_pins

    return list_pins(args.admin, sys.stdout, sys.stderr)


def _mcp_accept(args: argparse.Namespace) -> int:
    from extproc.mcp.admin_client import accept_pin

    return accept_pin(args.admin, args.server, args.tool, sys.stdout, sys.stderr)


def _warmups() -> list[Callable[[], object]]:
    """JIT warm-up of the scanner kernels and the SSE fast lane, before the server is ready."""
    from extproc.scanner import warm_up
    from extproc.sse_fast_lane import warm_up as warm_fast_lane

    return [warm_up, warm_fast_lane]


def _policy_check(args: argparse.Namespace) -> int:
    from mesh.policy_cli import check

    return check(args.file, sys.stdout, sys.stderr, strict=args.strict)


def _policy_explain(args: argparse.Namespace) -> int:
    from mesh.identity import IdentityInputs
    from mesh.policy_cli import explain

    facts = (args.peer_uri_san, args.node_namespace, args.node_service_account, args.xfcc)
    inputs = None
    if any(f is not None for f in facts):
        inputs = IdentityInputs(
            peer_uri_san=args.peer_uri_san,
            node_namespace=args.node_namespace,
            node_service_account=args.node_service_account,
            xfcc=args.xfcc,
        )
    return explain(
        args.policy, args.identity, args.model, sys.stdout, sys.stderr, inputs, args.user_claims,
        tool=args.tool,
    )


def _sandbox(args: argparse.Namespace) -> int:
    from mesh.sandbox import run_sandbox

    return run_sandbox(workdir=args.workdir, keep=args.keep)


def _controller(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mesh.controller import run
    from mesh.reconcile import TemplateError

    try:
        return run(Path(args.templates), args.resync_seconds, args.health_listen)
    except TemplateError as exc:
        print(f"weir controller: invalid template: {exc}", file=sys.stderr)
        return 2


def _redis_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise argparse.ArgumentTypeError(
            f"expected redis://HOST:PORT/DB (or rediss://, unix://), got {text!r}"
        )
    return text


def _byte_size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = int(number) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte size: {text!r} (e.g. 8MiB)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weir", description="Runtime guard for LLM traffic in a service mesh."
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (default INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the ext_proc data plane server")
    serve.add_argument("--policy", required=True, metavar="FILE", help="policy YAML file")
    serve.add_argument(
        "--grpc-listen",
        default="0.0.0.0:9000",
        metavar="HOST:PORT",
        help="where Envoy reaches ext_proc, ext_authz and gRPC health (default 0.0.0.0:9000)",
    )
    serve.add_argument(
        "--admin-listen",
        default="0.0.0.0:9901",
        metavar="HOST:PORT",
        help="/healthz, /readyz, /metrics and /inventory over HTTP (default 0.0.0.0:9901)",
    )
    serve.add_argument(
        "--max-request-body",
        type=_byte_size,
        default="8MiB",
        metavar="SIZE",
        help="largest request body accepted for judging; larger gets a 413 (default 8MiB)",
    )
    serve.add_argument(
        "--reload-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often the policy file is checked for changes",
    )
    serve.add_argument(
        "--drain-grace",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long in-flight streams may run after SIGTERM",
    )
    serve.add_argument(
        "--otlp-endpoint", default=None, metavar="URL",
        help="export OpenTelemetry GenAI spans and metrics over OTLP gRPC to URL "
        "(http://HOST:4317 plaintext, https:// for TLS); default: $OTEL_EXPORTER_OTLP_ENDPOINT, "
        "off when neither is set",
    )
    serve.add_argument(
        "--state-dir", default=None, metavar="DIR",
        help="keep MCP tool pins in DIR/mcp-pins.json so they survive a restart "
        "(default: in memory; with --redis, in Redis)",
    )
    serve.add_argument(
        "--redis", default=None, metavar="URL", type=_redis_url,
        help="share token budgets, MCP tool pins and the inventory across replicas in Redis "
        "(redis://HOST:PORT/DB, rediss:// for TLS); default: in process",
    )
    serve.add_argument(
        "--redis-timeout", type=float, default=0.05, metavar="SECONDS",
        help="how long one Redis call may take before the store counts as unavailable "
        "(default 0.05)",
    )
    serve.set_defaults(handler=_serve)

    mcp = commands.add_parser("mcp", help="MCP tool pins: list them, accept a changed tool")
    mcp_commands = mcp.add_subparsers(dest="mcp_command", required=True, metavar="SUBCOMMAND")
    pins = mcp_commands.add_parser("pins", help="list the pinned tools of every MCP server")
    pins.add_argument("--admin", default="http://127.0.0.1:9901", metavar="URL",
                      help="the admin address of a running `weir serve`")
    pins.set_defaults(handler=_mcp_pins)
    accept = mcp_commands.add_parser(
        "accept", help="accept a tool's changed definition as its new pin (exit 0, 1 unknown)"
    )
    accept.add_argument("server", metavar="SERVER", help="the MCP server (its authority)")
    accept.add_argument("tool", metavar="TOOL", help="the tool's name")
    accept.add_argument("--admin", default="http://127.0.0.1:9901", metavar="URL",
                        help="the admin address of a running `weir serve`")
    accept.set_defaults(handler=_mcp_accept)

    policy = commands.add_parser(
        "policy",
        help="check or explain a policy file",
        description="Check a policy file, or explain which rule decides an identity.",
    )
    policy_commands = policy.add_subparsers(
        dest="policy_command", required=True, metavar="SUBCOMMAND"
    )
    check = policy_commands.add_parser(
        "check",
        help="validate a policy file: every problem as file:line: path: reason (exit 0 or 2)",
        description="Validate a policy file as `weir serve` would load it. Every problem is "
        "printed as file:line: path: reason, in file order. Warnings name workload rules "
        "that earlier rules make unreachable. Exit 0 valid, 2 invalid.",
    )
    check.add_argument("file", metavar="FILE", help="the policy YAML file")
    check.add_argument(
        "--strict", action="store_true", help="fail (exit 2) on warnings too, for CI"
    )
    check.set_defaults(handler=_policy_check)
    explain = policy_commands.add_parser(
        "explain",
        help="show which rule decides an identity (exit 0 allowed, 1 denied)",
        description="Show which workload rule decides a caller and what it allows and scans; "
        "for an unauthenticated caller, which identity sources were tried and what each "
        "found. Exit 0 allowed, 1 denied, 2 the policy or the identity is invalid.",
    )
    explain.add_argument("--policy", required=True, metavar="FILE", help="the policy YAML file")
    explain.add_argument(
        "--identity",
        default=None,
        metavar="SPIFFE_ID",
        help="the caller: a SPIFFE ID in the policy's trust domain, or 'unauthenticated'; "
        "or give what Envoy reports with the options below and let the policy resolve it",
    )
    explain.add_argument(
        "--peer-uri-san",
        default=None,
        metavar="URI",
        help="the caller certificate's URI SAN (identity source peer-certificate)",
    )
    explain.add_argument(
        "--node-namespace",
        default=None,
        metavar="NS",
        help="the proxy's NAMESPACE node metadata (identity source node-metadata)",
    )
    explain.add_argument(
        "--node-service-account",
        default=None,
        metavar="SA",
        help="the proxy's SERVICE_ACCOUNT node metadata (identity source node-metadata)",
    )
    explain.add_argument(
        "--xfcc",
        default=None,
        metavar="HEADER",
        help="the x-forwarded-client-cert header value (identity source xfcc)",
    )
    explain.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help="the model asked for; without it, only the identity is decided",
    )
    explain.add_argument(
        "--user-claims",
        default=None,
        metavar="FILE",
        help="a JSON file of an end user's token claims (sub, groups ...), taken as verified",
    )
    explain.add_argument(
        "--tool", default=None, metavar="NAME",
        help="explain an MCP tools/call of this tool (the workload's `tools` globs)",
    )
    explain.set_defaults(handler=_policy_explain)

    # `weir scan` owns its own argument parsing (extproc.scanner.cli); it is listed
    # here so that `weir --help` shows it.
    commands.add_parser(
        "scan",
        help="scan files, directories or stdin for secrets, PII and prompt injection "
        "(jsonl, text or SARIF; see `weir scan --help`)",
        add_help=False,
    )

    sandbox = commands.add_parser(
        "sandbox",
        help="run the local mesh sandbox: real Envoy, mTLS, Weir, official SDKs",
        description="Start a CA, SPIFFE certificates for three workloads, a fake LLM "
        "upstream, `weir serve` and a real Envoy, then take a tour of guarded calls made "
        "with the official openai and anthropic SDKs (`make demo`). Everything started is "
        "stopped on exit, also on Ctrl-C.",
    )
    sandbox.add_argument(
        "--workdir",
        default=None,
        metavar="DIR",
        help="where certificates, envoy.yaml, the policy and the logs go, kept afterwards "
        "(default: a fresh temporary directory, removed on exit)",
    )
    sandbox.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary workdir afterwards (a --workdir you name is never removed)",
    )
    sandbox.set_defaults(handler=_sandbox)

    controller = commands.add_parser(
        "controller",
        help="per-namespace opt-in: stamp the guard into namespaces labelled weir.io/enabled=true",
    )
    controller.add_argument(
        "--templates",
        required=True,
        metavar="DIR",
        help="directory of *.yaml templates (EnvoyFilter, AuthorizationPolicy) to stamp",
    )
    controller.add_argument(
        "--resync-seconds",
        type=int,
        default=60,
        metavar="SECONDS",
        help="full reconcile at least this often, besides every namespace event",
    )
    controller.add_argument(
        "--health-listen",
        default="0.0.0.0:8081",
        metavar="HOST:PORT",
        help="serve /healthz (reconciles keep completing) and /readyz (one has) here",
    )
    controller.set_defaults(handler=_controller)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["scan"]:
        from extproc.scanner.cli import main as scan_main

        return scan_main(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
