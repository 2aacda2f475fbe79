"""`zhida serve-controller`: the call controller process (call path, health, the CRM API on its loop)."""

from __future__ import annotations

import asyncio
import logging

from zhida import serving
from zhida.call.controller import CallController
from zhida.call.prompts import ensure_prompts
from zhida.config import Config
from zhida.crm.hosting import attach_to_controller
from zhida.directory import Directory
from zhida.events import EventBus

log = logging.getLogger(__name__)

SERVICE_NAME = "zhida.v1.CallController"
EVAPI_WAIT_S = 30.0


async def serve(config: Config) -> None:
    bus = EventBus()
    directory = Directory(config.directory_db_url)
    prompts = ensure_prompts(config.run_dir / "prompts", config.controller)
    controller = CallController(config, bus=bus, directory=directory, prompts=prompts)

    server = serving.new_server()
    health = serving.add_health(server)
    hosted = attach_to_controller(server, bus=bus, directory=directory, config=config, health=health,
                                  live_calls=controller)
    running = await serving.start(server, config.controller.api_listen, [SERVICE_NAME], health_servicer=health)
    await controller.start()
    watch = asyncio.create_task(_health_follows_evapi(controller, running), name="health-follows-evapi")
    log.info("controller up: evapi %d, API %s (%s)", config.sip.evapi_port, config.controller.api_listen,
             ", ".join(hosted.services))

    async def stop_calls() -> None:
        watch.cancel()
        await controller.stop()

    await serving.serve_until_signalled(running, name="controller", grace=2.0, before_stop=stop_calls,
                                        after_stop=lambda: asyncio.to_thread(hosted.close))


async def _health_follows_evapi(controller: CallController, running: serving.Serving) -> None:
    """SERVING exactly while Kamailio can hand us calls: the evapi link is up (it reconnects by itself)."""
    try:
        await asyncio.wait_for(controller.ready.wait(), EVAPI_WAIT_S)
    except TimeoutError:
        log.error("no evapi link to Kamailio after %.0f s; calls go to the fallback group until it comes up",
                  EVAPI_WAIT_S)
    while True:
        await controller.ready.wait()
        await running.ready(True)
        while controller.ready.is_set():  # the link has no "lost" event to wait on
            await asyncio.sleep(0.5)
        log.error("evapi link to Kamailio lost: health NOT_SERVING until it is back")
        await running.ready(False)
