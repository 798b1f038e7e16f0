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
    config = ServeConfig(
        policy_path=args.policy,
        grpc_listen=args.grpc_listen,
        admin_listen=args.admin_listen,
        exchange=ExchangeConfig(max_request_body=args.max_request_body),
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


def _warmups() -> list[Callable[[], object]]:
    """JIT warm-up of the scanner kernels, run before the server reports ready."""
    from extproc.scanner import warm_up

    return [warm_up]


def _policy_check(args: argparse.Namespace) -> int:
    from mesh.policy_cli import check

    return check(args.file, sys.stdout, sys.stderr)


def _policy_explain(args: argparse.Namespace) -> int:
    from mesh.policy_cli import explain

    return explain(
        args.policy, args.identity, args.model, sys.stdout, sys.stderr, args.user_claims
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
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the ext_proc data plane server")
    serve.add_argument("--policy", required=True, metavar="FILE", help="policy YAML file")
    serve.add_argument("--grpc-listen", default="0.0.0.0:9000", metavar="HOST:PORT")
    serve.add_argument("--admin-listen", default="0.0.0.0:9901", metavar="HOST:PORT")
    serve.add_argument(
        "--max-request-body",
        type=_byte_size,
        default="8MiB",
        metavar="SIZE",
        help="largest request body accepted for judging; larger gets a 413 (default 8MiB)",
    )
    serve.add_argument(
        "--reload-interval", type=float, default=1.0, metavar="SECONDS",
        help="how often the policy file is checked for changes",
    )
    serve.add_argument(
        "--drain-grace", type=float, default=20.0, metavar="SECONDS",
        help="how long in-flight streams may run after SIGTERM",
    )
    serve.add_argument(
        "--otlp-endpoint", default=None, metavar="URL",
        help="export OpenTelemetry GenAI spans and metrics over OTLP gRPC to URL "
        "(http://HOST:4317 plaintext, https:// for TLS); default: $OTEL_EXPORTER_OTLP_ENDPOINT, "
        "off when neither is set",
    )
    serve.add_argument(
        "--redis", default=None, metavar="URL", type=_redis_url,
        help="share token budgets and the inventory across replicas in Redis "
        "(redis://HOST:PORT/DB, rediss:// for TLS); default: in process",
    )
    serve.add_argument(
        "--redis-timeout", type=float, default=0.05, metavar="SECONDS",
        help="how long one Redis call may take before the store counts as unavailable "
        "(default 0.05)",
    )
    serve.set_defaults(handler=_serve)

    policy = commands.add_parser("policy", help="check or explain a policy file")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser("check", help="validate a policy file (exit 0 or 2)")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(handler=_policy_check)
    explain = policy_commands.add_parser(
        "explain", help="show which rule decides an identity (exit 0 allowed, 1 denied)"
    )
    explain.add_argument("--policy", required=True, metavar="FILE")
    explain.add_argument("--identity", required=True, metavar="SPIFFE_ID")
    explain.add_argument("--model", default=None, metavar="MODEL")
    explain.add_argument(
        "--user-claims",
        default=None,
        metavar="FILE",
        help="a JSON file of an end user's token claims (sub, groups ...), taken as verified",
    )
    explain.set_defaults(handler=_policy_explain)

    # `weir scan` owns its own argument parsing (extproc.scanner.cli); it is listed
    # here so that `weir --help` shows it.
    commands.add_parser("scan", help="scan a file for secrets, PII and prompt injection",
                        add_help=False)

    sandbox = commands.add_parser(
        "sandbox", help="run the local mesh sandbox: real Envoy, mTLS, Weir, official SDKs"
    )
    sandbox.add_argument("--workdir", default=None, help="where certificates and logs go")
    sandbox.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    sandbox.set_defaults(handler=_sandbox)

    controller = commands.add_parser(
        "controller",
        help="per-namespace opt-in: stamp the guard into namespaces labelled weir.io/enabled=true",
    )
    controller.add_argument(
        "--templates", required=True, metavar="DIR",
        help="directory of *.yaml templates (EnvoyFilter, AuthorizationPolicy) to stamp",
    )
    controller.add_argument(
        "--resync-seconds", type=int, default=60, metavar="SECONDS",
        help="full reconcile at least this often, besides every namespace event",
    )
    controller.add_argument(
        "--health-listen", default="0.0.0.0:8081", metavar="HOST:PORT",
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
