"""The shared server runner: port 0, health, reflection, error mapping, graceful stop."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import pytest
import testkeys
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from corral import errors
from corral.rpc import open_aio_channel
from services.common import server as runner
from services.common.auth import Need
from services.common.interpreter import set_switch_interval
from services.common.remote_auth import OwnerAuthenticator

SERVICE = "corral.test.v1.ProbeService"


def _probe_handler(behavior):
    async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await behavior(request)

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Call": grpc.unary_unary_rpc_method_handler(handle),
    })


async def _start(behavior) -> runner.RunningServer:
    async def register(server: grpc.aio.Server):
        server.add_generic_rpc_handlers((_probe_handler(behavior),))
        return [SERVICE], None

    security = runner.ServerSecurity(OwnerAuthenticator(testkeys.ADMIN_KEY),
                                     {f"/{SERVICE}/Call": Need.READ})
    return await runner.start("probe", "127.0.0.1:0", register, security)


def _call(channel: grpc.aio.Channel):
    return channel.unary_unary(f"/{SERVICE}/Call")(b"x", timeout=5)


@pytest.mark.parametrize("exc", [
    errors.InvalidArgument("spec.name must not be empty"),
    errors.NotFound("dataset 'x' not found"),
    errors.DataLoss("sha256 mismatch"),
    errors.AlreadyExists("/a.jpg exists"),
])
def test_domain_errors_become_their_status(exc: errors.CorralError) -> None:
    async def scenario() -> None:
        async def fail(_: bytes) -> bytes:
            raise exc

        running = await _start(fail)
        try:
            async with open_aio_channel(f"127.0.0.1:{running.port}") as channel:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await _call(channel)
            assert caught.value.code().name == exc.code
            assert caught.value.details() == exc.message
        finally:
            await running.stop(1)

    asyncio.run(scenario())


def test_unexpected_errors_are_internal_without_traceback() -> None:
    async def scenario() -> None:
        async def crash(_: bytes) -> bytes:
            raise KeyError("secret-internal-detail")

        running = await _start(crash)
        try:
            async with open_aio_channel(f"127.0.0.1:{running.port}") as channel:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await _call(channel)
            assert caught.value.code() == grpc.StatusCode.INTERNAL
            assert "secret-internal-detail" not in caught.value.details()
            assert "Traceback" not in caught.value.details()
        finally:
            await running.stop(1)

    asyncio.run(scenario())


def test_health_reflection_and_graceful_stop() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def slow(_: bytes) -> bytes:
            await release.wait()
            return b"done"

        running = await _start(slow)
        assert running.port > 0
        addr = f"127.0.0.1:{running.port}"
        async with open_aio_channel(addr) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", SERVICE):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING

            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            replies = [r async for r in stub.ServerReflectionInfo(iter([request]))]
            listed = {s.name for s in replies[0].list_services_response.service}
            assert {SERVICE, "grpc.health.v1.Health"} <= listed

            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            in_flight = asyncio.ensure_future(_call(channel))
            await asyncio.sleep(0.2)
            stopping = asyncio.ensure_future(running.stop(5))
            # Watchers learn NOT_SERVING at once, before the in-flight call is done.
            update = await asyncio.wait_for(watch.read(), 2)
            assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not in_flight.done()
            watch.cancel()
            release.set()
            assert await in_flight == b"done"  # the in-flight call finished within the grace
            await stopping

    asyncio.run(scenario())


def test_services_collect_garbage_less_often_and_skip_what_lives_forever() -> None:
    # In a fresh interpreter: run() tunes the collector before it serves.
    script = (
        "import gc\n"
        "from services.common.interpreter import GC_GEN0_THRESHOLD, tune_garbage_collection\n"
        "before = gc.get_threshold()\n"
        "tune_garbage_collection()\n"
        "assert gc.get_threshold() == (GC_GEN0_THRESHOLD, *before[1:]), gc.get_threshold()\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "cycle = []\n"
        "cycle.append(cycle)\n"
        "del cycle\n"
        "assert gc.collect() >= 1  # cycles are still collected\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_services_let_waiting_threads_in_after_half_a_millisecond() -> None:
    # In a fresh interpreter, as run() does before it serves.
    script = (
        "import sys\n"
        "from services.common.interpreter import tune_interpreter\n"
        "tune_interpreter()\n"
        "assert sys.getswitchinterval() == 0.0005, sys.getswitchinterval()\n"
        "tune_interpreter(2.0)\n"
        "assert sys.getswitchinterval() == 0.002, sys.getswitchinterval()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_a_switch_interval_that_is_not_positive_stops_the_service_naming_the_setting(
        value: float) -> None:
    with pytest.raises(SystemExit, match="CORRAL_SWITCH_INTERVAL_MS"):
        set_switch_interval(value)
