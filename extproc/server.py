"""`weir serve`: the grpc.aio ext_proc server, gRPC health, and the admin HTTP endpoints.

The servicer owns the gRPC stream loop and nothing else: it decodes each
ProcessingRequest into an event, hands it to the exchange state machine
(`extproc.stream`) and encodes the actions it returns; a `Publish` among them
hands the finished record to the metrics, inventory, logs and telemetry. The
I/O the exchange cannot do stays here: the budget store's answer
(`Exchange.budget_ask`), the JWKS prefetch and the drain deadline. Any fault ends the
gRPC stream with an error status, which Envoy (`failure_mode_allow: false`)
turns into a failed request: Weir fails closed, and the worker lives on.

Drain (SIGTERM): readiness turns off at once, gRPC takes no new streams, and
the open ones may finish within the grace period. Each stream runs under an
`asyncio.timeout` that drain moves to the end of the grace; when it fires, the
exchange is asked for its own ending (`Exchange.terminate`: the provider's
in-band error event, or a 503), so no stream is ever silently cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from extproc import authz
from extproc.events import Action, Direction, HeadersEvent, StreamBody
from extproc.exchange_record import ExchangeRecord, Publish
from extproc.genai_conventions import TraceContext, trace_context_of
from extproc.inventory import Inventory
from extproc.inventory_merge import merge_snapshots
from extproc.inventory_page import inventory_page
from extproc.mcp.shared_pins import RedisPinStore
from extproc.metrics import Metrics
from extproc.policy_store import PolicyStore
from extproc.shared_store import (
    LocalStore,
    RedisStore,
    SharedStore,
    StoreUnavailable,
    budget_key,
)
from extproc.stream import Exchange, ExchangeConfig, ProtocolError
from extproc.telemetry import NoTelemetry, Telemetry, TelemetryConfig, start_telemetry
from mesh.credentials import presented_tokens
from mesh.jwks import JwksCache, prefetch
from mesh.policy import Policy
from protos import wire

log = logging.getLogger("weir.server")
decision_log = logging.getLogger("weir.decision")
# One JSON line per finding: rule, span and a salted hash, never the matched text.
audit_log = logging.getLogger("weir.audit")

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
# After the drain deadline, the time left for the streams' endings to reach Envoy
# before gRPC cancels whatever is still open.
DRAIN_FLUSH_SECONDS = 1.0
# With --redis, how often a replica publishes its inventory for the cluster view.
INVENTORY_PUBLISH_SECONDS = 0.5
DRAIN_REASON = "Weir is shutting down and the drain grace period is over; retry the request"


@dataclass(frozen=True)
class ServeConfig:
    policy_path: str
    grpc_listen: str
    admin_listen: str
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    reload_interval: float = 1.0
    drain_grace: float = 20.0
    telemetry: TelemetryConfig | None = None  # OTLP export; None: off
    # `--redis redis://HOST:PORT/DB`: budgets (and the inventory) shared by every replica.
    redis_url: str | None = None
    redis_timeout: float = 0.05


class ExternalProcessor(wire.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(
        self,
        store: PolicyStore,
        metrics: Metrics,
        config: ExchangeConfig,
        inventory: Inventory | None = None,
        keys: JwksCache | None = None,
        telemetry: Telemetry | None = None,
        shared: SharedStore | None = None,
    ) -> None:
        self._store = store
        self._shared: SharedStore = shared if shared is not None else LocalStore()
        self._metrics = metrics
        self._config = config
        self._inventory = inventory or Inventory()
        self._keys = keys if keys is not None else keys_for_metrics(metrics)
        self._telemetry = telemetry or NoTelemetry()
        # One timeout per open stream, unset until drain gives them all a deadline.
        self._deadlines: set[asyncio.Timeout] = set()
        self._drain_deadline: float | None = None

    def begin_drain(self, grace: float) -> None:
        """Give every open stream, and any that still starts, `grace` seconds to finish."""
        self._drain_deadline = asyncio.get_running_loop().time() + grace
        for deadline in self._deadlines:
            deadline.reschedule(self._drain_deadline)

    async def Process(
        self,
        request_iterator: AsyncIterator[wire.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[wire.ProcessingResponse]:
        policy = self._store.current
        exchange = Exchange(policy, self._config, self._keys, self._store.plans)
        self._metrics.active_streams.inc()
        error: str | None = None
        finished = False
        # For the span: the caller's trace context and when the first answer bytes went out.
        trace: TraceContext | None = None
        first_chunk: float | None = None
        deadline = asyncio.timeout(self._drain_deadline)

        def publish(records: Sequence[ExchangeRecord]) -> None:
            nonlocal finished
            for record in records:
                finished = True
                self._finish(record, trace, first_chunk)

        settled = False

        def settle(error: str | None) -> None:
            # The stream's error count and its record's publication, once. A failing
            # stream settles before its gRPC status goes out: a client that reads the
            # metrics right after the error must see the call, and see it as an error.
            nonlocal settled
            if settled:
                return
            settled = True
            # Envoy cancelling the gRPC stream after the response is complete is its
            # ordinary way of hanging up, not an error.
            if error is not None and not (finished and error == "cancelled"):
                self._metrics.stream_errors.labels(error).inc()
            publish([step.record for step in exchange.handle_end(error)])

        try:
            observe = self._metrics.message_seconds.observe
            requests = aiter(request_iterator)
            try:
                async with deadline:
                    self._deadlines.add(deadline)
                    async for request in requests:
                        event = wire.decode_request(request)
                        if _needs_keys(policy, event):
                            # Fetch the tokens' signing keys off the loop, so the exchange
                            # verifies them without I/O.
                            assert isinstance(event, HeadersEvent)
                            await self._prefetch(policy, event)
                        started = time.perf_counter()
                        steps = exchange.handle(event)
                        if exchange.budget_ask is not None:
                            steps = [*steps, *await self._answer_budget(exchange)]
                        if exchange.pins_ask is not None or self._config.pins.pending:
                            steps = [*steps, *await self._answer_pins(exchange)]
                        records, responses = _encode(steps)
                        observe(time.perf_counter() - started)
                        if self._telemetry.enabled:
                            if isinstance(event, HeadersEvent) and event.direction is _REQUEST:
                                trace = trace_context_of(event.headers)
                            if first_chunk is None and _releases_answer(steps):
                                first_chunk = time.monotonic()
                        # Published before the last bytes go out: a client that reads the
                        # metrics right after its stream ends must see this call.
                        publish(records)
                        for response in responses:
                            yield response
                        if exchange.closed:
                            return
            except TimeoutError:
                # The drain deadline passed: end the exchange in the provider's terms.
                error = "drain_deadline"
                log.warning("drain grace over: ending an open exchange with an error")
                actions = exchange.handle_deadline(DRAIN_REASON)
                if not actions:
                    settle(error)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, DRAIN_REASON)
                for action in actions:
                    yield wire.encode_action(action)
                # After an in-band ending, swallow what Envoy still sends until it closes.
                while not exchange.closed:
                    request = await anext(requests, None)
                    if request is None:
                        break
                    records, responses = _encode(exchange.handle(wire.decode_request(request)))
                    publish(records)
                    for response in responses:
                        yield response
        except (ProtocolError, wire.UnsupportedMessage) as exc:
            error = "protocol"
            log.warning("ext_proc protocol violation, failing the exchange closed: %s", exc)
            settle(error)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            # Envoy or the client went away; nothing is owed to anyone.
            error = "cancelled"
            raise
        except Exception:
            error = "internal"
            log.exception("internal error in an exchange, failing it closed")
            settle(error)
            await context.abort(grpc.StatusCode.INTERNAL, "weir internal error")
        finally:
            settlement = exchange.budget_settlement()
            if settlement is not None:
                self._shared.charge_later(settlement)
            self._deadlines.discard(deadline)
            self._metrics.active_streams.dec()
            settle(error)

    async def _answer_budget(self, exchange: Exchange) -> list[Action | Publish]:
        """Carry the exchange's budget charge to the shared store, bounded by its timeout."""
        ask = exchange.budget_ask
        assert ask is not None
        try:
            result = await self._shared.charge(ask)
        except StoreUnavailable:
            return exchange.handle_budget(None)
        return exchange.handle_budget(result.used, result.applied)

    async def _answer_pins(self, exchange: Exchange) -> list[Action | Publish]:
        """Load the MCP server's shared pins the exchange asked for, and send what calls
        recorded before their answers go out; each bounded by the store's timeout."""
        pins = self._config.pins
        actions: list[Action | Publish] = []
        if exchange.pins_ask is not None:
            try:
                await pins.load(exchange.pins_ask)
                loaded = True
            except StoreUnavailable:
                loaded = False  # the policy's pinStore.onUnavailable decides
            actions = exchange.handle_pins(loaded)
        if pins.pending:
            with contextlib.suppress(StoreUnavailable):  # kept, and sent with the next flush
                await pins.flush()
        return actions

    async def _prefetch(self, policy: Policy, event: HeadersEvent) -> None:
        users = policy.user_tokens
        if users is not None:
            self._keys.configure(
                ttl=users.jwks_cache_seconds, max_stale=users.jwks_max_stale_seconds
            )
        await prefetch(self._keys, presented_tokens(policy, event.headers))

    def _finish(
        self,
        record: ExchangeRecord,
        trace: TraceContext | None = None,
        first_chunk: float | None = None,
    ) -> None:
        elapsed = time.monotonic() - record.started
        metrics = self._metrics
        metrics.exchange_seconds.observe(elapsed)
        workload, provider = record.workload or "none", record.provider or "none"
        model = record.model or "none"
        metrics.requests.labels(workload, provider, model, record.verdict).inc()
        if record.mcp_method is not None:
            metrics.mcp_calls.labels(
                workload, record.mcp_server or "none", record.mcp_method,
                record.tool_name or "none", record.verdict,
            ).inc()
        if record.input_tokens:
            metrics.tokens.labels(workload, provider, model, "in").inc(record.input_tokens)
        if record.output_tokens:
            metrics.tokens.labels(workload, provider, model, "out").inc(record.output_tokens)
        if record.held_bytes_max:
            metrics.held_bytes.observe(record.held_bytes_max)
        for finding in record.findings:
            metrics.findings.labels(
                finding.direction, finding.scanner, finding.rule, finding.action
            ).inc()
        if record.user is not None:
            metrics.end_user_requests.labels(workload, record.user, record.verdict).inc()
        if record.budget is not None:
            metrics.budget_decisions.labels(workload, record.budget).inc()
        if record.token_rejection is not None:
            token, _, why = record.token_rejection.partition(":")
            metrics.token_rejections.labels(token, why).inc()
        self._inventory.observe(record)
        self._telemetry.observe(
            record,
            duration_s=elapsed,
            first_chunk_s=None if first_chunk is None else first_chunk - record.started,
            trace=trace,
        )
        if decision_log.isEnabledFor(logging.INFO):
            entry = asdict(record)
            entry.pop("started")
            entry["findings"] = len(record.findings)
            entry["duration_ms"] = round(elapsed * 1000, 3)
            decision_log.info(json.dumps(entry, sort_keys=True))
        if record.findings and audit_log.isEnabledFor(logging.INFO):
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for finding in record.findings:
                audit_log.info(
                    json.dumps(
                        {
                            "time": now,
                            "identity": record.principal,
                            "user": record.user,  # a keyed hash, never the subject
                            "workload": record.workload,
                            "provider": record.provider,
                            "model": record.model,
                            "direction": finding.direction,
                            "where": finding.where,
                            "scanner": finding.scanner,
                            "rule": finding.rule,
                            "action": finding.action,
                            "span": [finding.start, finding.end],
                            "matchHash": finding.match_hash,
                        },
                        sort_keys=True,
                    )
                )


def keys_for_metrics(metrics: Metrics) -> JwksCache:
    """The process's JWKS cache, counting its fetches in ``weir_jwks_fetches``."""
    return JwksCache(
        on_fetch=lambda source, result: metrics.jwks_fetches.labels(source, result).inc()
    )


def shared_store_for(config: ServeConfig, metrics: Metrics) -> SharedStore:
    """In process without `--redis`; with it, Redis, its failures counted in the metrics."""
    if config.redis_url is None:
        return LocalStore()
    return RedisStore(
        config.redis_url,
        timeout=config.redis_timeout,
        on_error=lambda op: metrics.budget_store_errors.labels("redis", op).inc(),
        on_state=lambda up: metrics.budget_store_up.set(1 if up else 0),
    )


def with_pin_store(config: ServeConfig, metrics: Metrics) -> ServeConfig:
    """With `--redis`, the MCP tool pins live there too (shared by every replica)."""
    if config.redis_url is None or config.exchange.pins.shared:
        return config
    store = RedisStore(
        config.redis_url,
        timeout=config.redis_timeout,
        on_error=lambda op: metrics.pin_store_errors.labels(op).inc(),
        on_state=lambda up: metrics.pin_store_up.set(1 if up else 0),
        role="MCP pin store",
    )
    return replace(config, exchange=replace(config.exchange, pins=RedisPinStore(store)))


def _needs_keys(policy: Policy, event: object) -> bool:
    return (
        (policy.user_tokens is not None or policy.svid_tokens is not None)
        and isinstance(event, HeadersEvent)
        and event.direction is Direction.REQUEST
    )


_REQUEST, _RESPONSE = Direction.REQUEST, Direction.RESPONSE


def _encode(
    steps: Sequence[Action | Publish],
) -> tuple[list[ExchangeRecord], list[wire.ProcessingResponse]]:
    """The records to publish, and the ProcessingResponses for the actions."""
    records: list[ExchangeRecord] = []
    responses: list[wire.ProcessingResponse] = []
    for step in steps:
        if isinstance(step, Publish):
            records.append(step.record)
        else:
            responses.append(wire.encode_action(step))
    return records, responses


def _releases_answer(actions: Sequence[object]) -> bool:
    return any(
        isinstance(action, StreamBody) and action.direction is _RESPONSE and action.chunk
        for action in actions
    )


def _split_host_port(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class WeirServer:
    """Everything one `weir serve` process runs, with an explicit lifecycle for tests."""

    def __init__(
        self, config: ServeConfig, warmups: Sequence[Callable[[], object]] = ()
    ) -> None:
        self.metrics = Metrics()
        self.config = config = with_pin_store(config, self.metrics)
        self.store = PolicyStore(config.policy_path, self.metrics)
        self.inventory = Inventory()
        self.shared = shared_store_for(config, self.metrics)
        self.replica_id = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._publisher: asyncio.Task[None] | None = None
        self.telemetry: Telemetry = NoTelemetry()
        self._warmups = warmups
        self._grpc: grpc.aio.Server | None = None
        self._processor: ExternalProcessor | None = None
        self._health = health.aio.HealthServicer()
        self._admin: web.AppRunner | None = None
        self._watch: asyncio.Task[None] | None = None
        self._ready = False
        self._draining = False
        self.grpc_port = 0
        self.admin_port = 0

    @property
    def ready(self) -> bool:
        return self._ready and not self._draining and self.store.loaded

    async def start(self) -> None:
        # Admin first, so liveness answers while the policy loads and the JIT warms.
        await self._start_admin()
        self.telemetry = start_telemetry(self.config.telemetry, self.metrics.otlp_spans)
        self.store.load_initial()
        for warm in self._warmups:
            warm()
        await self._start_grpc()
        self._watch = asyncio.create_task(self.store.watch(self.config.reload_interval))
        if isinstance(self.shared, RedisStore):
            self._publisher = asyncio.create_task(self._publish_inventory())
        self._ready = True
        self.metrics.ready.set(1)
        for service in ("", EXT_PROC_SERVICE, authz.AUTHZ_SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "weir ready: grpc %s, admin %s", self.config.grpc_listen, self.config.admin_listen
        )

    async def _start_grpc(self) -> None:
        server = grpc.aio.server()
        # One key cache for both filters: a refresh one of them made serves the other.
        keys = keys_for_metrics(self.metrics)
        self._processor = ExternalProcessor(
            self.store, self.metrics, self.config.exchange, self.inventory, keys,
            self.telemetry, self.shared,
        )
        wire.add_ExternalProcessorServicer_to_server(self._processor, server)
        # ext_authz shares the port: one Service, one Envoy cluster, for both filters.
        authz.add_to_server(authz.Authorization(self.store, self.metrics, keys), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (EXT_PROC_SERVICE, authz.AUTHZ_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME),
            server,
        )
        host, port = _split_host_port(self.config.grpc_listen)
        self.grpc_port = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        self._grpc = server

    async def _start_admin(self) -> None:
        app = web.Application()
        app.router.add_get("/", inventory_page)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_handler)
        app.router.add_get("/inventory", self._inventory_handler)
        app.router.add_get("/mcp/pins", self._pins_handler)
        app.router.add_post("/mcp/pins/accept", self._accept_handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = _split_host_port(self.config.admin_listen)
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._admin = runner
        self.admin_port = int(runner.addresses[0][1]) if runner.addresses else port

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.ready:
            return web.Response(
                text=f"ready policy={self.store.current.digest}{self._store_detail()}\n"
            )
        reason = "draining" if self._draining else "starting"
        return web.Response(status=503, text=f"not ready: {reason}\n")

    def _store_detail(self) -> str:
        """The budget store's state for /readyz: a store outage is not unreadiness, since
        the policy's onUnavailable already says what a budgeted call does meanwhile."""
        shared = self.shared
        if not isinstance(shared, RedisStore):
            return ""  # in process: nothing that can be down
        pins = self.config.exchange.pins
        pin_state = f" pin-store=redis:{pins.state}" if isinstance(pins, RedisPinStore) else ""
        if shared.up:
            return " budget-store=redis:up" + pin_state
        return (f" budget-store=redis:down ({shared.last_error}, {shared.pending_charges} kept)"
                + pin_state)

    async def _metrics_handler(self, _: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def _inventory_handler(self, _: web.Request) -> web.Response:
        own = self.inventory.snapshot()
        if not isinstance(self.shared, RedisStore):
            await self._add_budget_use(own)
            return web.json_response(own)
        try:
            # Our own latest first, so the view never lags this replica's own calls.
            await self.shared.put_document("inventory", self.replica_id, own)
            documents = await self.shared.documents("inventory")
        except StoreUnavailable:
            # The cluster's view is unreachable: say this one is only this replica's.
            return web.json_response({**own, "scope": "replica", "replicas": 1})
        merged = merge_snapshots(documents.values())
        await self._add_budget_use(merged)
        return web.json_response({**merged, "scope": "cluster", "replicas": len(documents)})

    async def _add_budget_use(self, view: dict[str, object]) -> None:
        """Each workload's budget use in the current window (per-workload budgets only)."""
        rules = {w.name: w.budget for w in self.store.current.workloads if w.budget is not None}
        entries = view.get("workloads")
        if not rules or not isinstance(entries, list):
            return
        now = time.time()
        for entry in entries:
            names = [n for n in entry.get("policyWorkloads", []) if n in rules]
            if not names:
                continue
            budget = rules[names[0]]
            assert budget is not None
            if budget.per != "workload":
                continue  # per end user: one counter per user, no single figure to draw
            key = budget_key(f"workload:{names[0]}", budget.window, budget.window_start(now))
            with contextlib.suppress(StoreUnavailable):
                entry["budget"] = {
                    "used": await self.shared.used(key),
                    "limit": budget.tokens,
                    "unit": f"tokens / {budget.window}",
                }

    async def _publish_inventory(self) -> None:
        while True:
            await asyncio.sleep(INVENTORY_PUBLISH_SECONDS)
            with contextlib.suppress(StoreUnavailable):
                await self.shared.put_document(
                    "inventory", self.replica_id, self.inventory.snapshot()
                )

    async def _pins_handler(self, _: web.Request) -> web.Response:
        try:
            servers = await self.config.exchange.pins.snapshot_now()
        except StoreUnavailable as exc:
            return web.json_response({"error": f"the MCP pin store: {exc}"}, status=503)
        return web.json_response({"servers": servers})

    async def _accept_handler(self, request: web.Request) -> web.Response:
        """`{"server": ..., "tool": ...}`: the tool's definition served last becomes its pin."""
        try:
            body = await request.json()
            server, tool = body["server"], body["tool"]
            if not isinstance(server, str) or not isinstance(tool, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return web.json_response(
                {"error": 'expected a JSON object {"server": "...", "tool": "..."}'}, status=400
            )
        try:
            accepted = await self.config.exchange.pins.accept_now(server, tool)
        except StoreUnavailable as exc:
            return web.json_response({"error": f"the MCP pin store: {exc}"}, status=503)
        if not accepted:
            return web.json_response(
                {"error": f"no pin for tool '{tool}' of server '{server}'"}, status=404
            )
        log.info("mcp pin accepted: server %s tool %s", server, tool)
        return web.json_response({"accepted": {"server": server, "tool": tool}})

    async def drain(self) -> None:
        """Stop taking new work at once; let in-flight streams finish within the grace.

        A stream still open when the grace is over is ended by its exchange
        (`Exchange.terminate`); gRPC cancels what remains a moment later.
        Returns as soon as no stream is open.
        """
        self._draining = True
        self.metrics.ready.set(0)
        await self._health.enter_graceful_shutdown()
        if self._processor is not None:
            self._processor.begin_drain(self.config.drain_grace)
        if self._grpc is not None:
            await self._grpc.stop(self.config.drain_grace + DRAIN_FLUSH_SECONDS)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._publisher is not None:
            self._publisher.cancel()
        if self._grpc is not None:
            await self._grpc.stop(0)
        if self._admin is not None:
            await self._admin.cleanup()
        await self.shared.close()
        await self.config.exchange.pins.close()
        # Last, and off the loop: a final flush bounded by the export timeout.
        await asyncio.to_thread(self.telemetry.close)
        self.store.close()


async def serve(config: ServeConfig, warmups: Sequence[Callable[[], object]] = ()) -> int:
    server = WeirServer(config, warmups)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        await stop.wait()
        log.info("signal received: draining for up to %.1fs", config.drain_grace)
        await server.drain()
    finally:
        await server.close()
    return 0
