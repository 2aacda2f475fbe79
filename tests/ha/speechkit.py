"""Two of a kind on one box: the stack of tests/call with a second rtpengine and a second recogniser worker.

The second media node and worker are the same daemons `zhida up` starts, each in a run folder of its own
(pids, logs) on fresh loopback ports; the controller lists both (`media.nodes`, `recognizer.target`), and
Kamailio gets one rtpengine set per node. Calls are real: sipp on the trunk address, sipp agents.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zhida.config import Config
from zhida.stack import processes
from zhida.stack import up as stack
from zhida.stack.calls import wait_for_record
from zhida.stack.ports import free_ports
from zhida.stack.sipp import SippResult, caller_pcap, caller_scenario, run_caller

from tests.call.conftest import TRUNK_IP, _dump_logs, stack_config

NUMBER = "4008001234"
SENTENCE = "我家的空调坏了需要上门维修"
GROUP = "repair"


@dataclass
class Room:
    """The stack (`config`, node 1 and worker 1) and the extra media node / recogniser worker configs."""

    config: Config
    media: list[Config] = field(default_factory=list)  # one per media node, the stack's own first
    workers: list[Config] = field(default_factory=list)  # one per recogniser worker, the stack's own first
    routers: list[Config] = field(default_factory=list)  # one per routing worker, the stack's own first

    def stop(self) -> None:
        stack.down(self.config)
        for extra in [*self.media[1:], *self.workers[1:], *self.routers[1:]]:
            stack.down(extra)

    def dump_logs(self) -> None:
        _dump_logs(self.config)
        for extra in [*self.media[1:], *self.workers[1:], *self.routers[1:]]:
            _dump_logs(extra)

    def node_of(self, call_id: str) -> list[int]:
        return media_nodes_of(self.media, call_id)

    def worker_log(self, index: int) -> str:
        return recognizer_log(self.workers[index])

    def workers_of(self, call_id: str) -> list[int]:
        return workers_of(self.workers, call_id)

    def sessions(self) -> dict[int, list[str]]:
        """Every media node's live rtpengine sessions (a dead node: none listed)."""
        found: dict[int, list[str]] = {}
        for i, node in enumerate(self.media):
            with contextlib.suppress(OSError):
                found[i] = list(stack.ng_request(node, "list", timeout=0.5, limit="100").get("calls", []))
        return found


def media_nodes_of(media: list[Config], call_id: str) -> list[int]:
    """Indexes of the media nodes whose rtpengine logged the call."""
    return [i for i, node in enumerate(media)
            if f"[{call_id}" in (node.log_dir / "rtpengine.log").read_text(errors="replace")]


def recognizer_log(worker: Config) -> str:
    return (worker.log_dir / "recognizer.log").read_text(errors="replace")


def workers_of(workers: list[Config], call_id: str) -> list[int]:
    """Indexes of the recogniser workers that opened a stream for the call."""
    return [i for i, worker in enumerate(workers) if f"stream opened call_id={call_id} " in recognizer_log(worker)]


def _extra(config: Config, name: str) -> Config:
    extra = config.model_copy(deep=True)
    extra.run_dir = config.run_dir / name
    return extra


def start_room(run_dir: Path, *, media_nodes: int = 2, workers: int = 2, routers: int = 1, db_url: str = "",
               prepare: Callable[[Config], None] | None = None, services: tuple[str, ...] = stack.SERVICES,
               attempts: int = 3, **controller: object) -> Room:
    """The stack with `media_nodes` rtpengines and `workers` recogniser workers; retried on fresh ports when a
    daemon lost a port to another process of the machine. `prepare` changes the configuration first;
    `services` are those of the stack's own that start (a second SIP edge: no speech services of its own)."""
    for attempt in range(attempts):
        config = stack_config(run_dir, **controller)
        if db_url:
            config.controller.db_url = db_url
        if prepare is not None:
            prepare(config)
        room = Room(config, media=[config], workers=[config], routers=[config])
        ports = iter(free_ports(3 * (media_nodes + workers + routers)))
        for n in range(1, media_nodes):
            node = _extra(config, f"media{n + 1}")
            node.media.ng_port, node.media.http_port = next(ports), next(ports)
            node.media.port_min = config.media.port_max + 1 + 200 * (n - 1)
            node.media.port_max = node.media.port_min + 199
            room.media.append(node)
        for n in range(1, workers):
            worker = _extra(config, f"speech{n + 1}")
            worker.recognizer.listen = f"127.0.0.1:{next(ports)}"
            room.workers.append(worker)
        for n in range(1, routers):
            router = _extra(config, f"routing{n + 1}")
            router.routing.listen = f"127.0.0.1:{next(ports)}"
            room.routers.append(router)
        if routers > 1:
            config.routing.target = [r.routing.listen for r in room.routers]
        if media_nodes > 1:
            config.media.nodes = [f"{n.media.interface}:{n.media.ng_port}" for n in room.media]
        if workers > 1:
            config.recognizer.target = [w.recognizer.listen for w in room.workers]
        try:
            # every media node answers pings before Kamailio starts (it marks a silent one down for a minute)
            for node in room.media[1:]:
                process = processes.start(node.run_dir, "rtpengine", stack.rtpengine_argv(node))
                processes.wait_ready("rtpengine", lambda n=node: stack.ng_ping(n.media.interface, n.media.ng_port),
                                     process, node.log_dir / "rtpengine.log")
            for worker in room.workers[1:]:
                stack.start_recognizer(worker)
            for router in room.routers[1:]:
                # the same tenants' rules as the stack's own routing service (a shared folder, as a room needs)
                router.tenants_dir = config.routing_tenants_dir
                stack.start_routing(router)
            stack.up(config, None, services=services)
            return room
        except processes.StartError:
            room.stop()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class Caller:
    """One trunk call on a thread: silence while the prompt plays, the sentence, `tail_s` of silence, hang-up."""

    def __init__(self, config: Config, wav: Path, work: Path, *, lead_s: float = 3.2, tail_s: float = 4.0,
                 trunk_ip: str = TRUNK_IP, enter: Callable[[], None] | None = None) -> None:
        """`enter` runs first on the caller's own thread: the carrier's network namespace, in a machine room."""
        work.mkdir(parents=True, exist_ok=True)
        caller_pcap(wav, work / "caller.pcap", lead_silence_s=lead_s, tail_silence_s=tail_s)
        scenario = caller_scenario(work / "caller.pcap", work / "caller.xml")
        self.config = config
        self.result: SippResult | None = None
        target = f"{config.sip.address}:{config.sip.port}"

        def place() -> None:
            if enter is not None:
                enter()
            self.result = run_caller(target, scenario, NUMBER, local_ip=trunk_ip, work_dir=work, timeout_s=40)

        self._thread = threading.Thread(target=place, name="sipp-caller", daemon=True)
        self._thread.start()

    def join(self) -> SippResult:
        self._thread.join(timeout=70)
        assert self.result is not None, "the caller did not finish"
        return self.result

    def record(self) -> dict:
        return wait_for_record(self.config, self.join().call_id)


def call(config: Config, wav: Path, work: Path, **kwargs: float) -> tuple[SippResult, dict]:
    """One call, start to end: sipp's result and the controller's record."""
    caller = Caller(config, wav, work, **kwargs)
    return caller.join(), caller.record()


def wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)
    return time.monotonic()


def controller_log(config: Config) -> str:
    return (config.log_dir / "controller.log").read_text(errors="replace")


def metric(config: Config, name: str) -> float:
    """The sum of a metric's samples on the controller's /metrics."""
    url = f"http://{config.controller.metrics_address}:{config.controller.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as answer:
        text = answer.read().decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))
