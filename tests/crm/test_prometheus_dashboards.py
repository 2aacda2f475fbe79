"""A real Prometheus scrapes zhida, Kamailio (xhttp_prom) and rtpengine; every dashboard expression evaluates
and names only metrics that those targets export.

Processes are started on free loopback ports with a generated config and killed at the end; their logs are
printed when a readiness wait fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml
import zhida
from zhida.events import CallEvent, CallEventKind, EventBus
from zhida.metrics import CallMetrics, recognizer, start_metrics_server
from zhida.routing.ab_metrics import VersionVerdicts
from zhida.stack.ports import free_port, free_ports
from zhida.store import CallRecorder, open_engine
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

from tests.crm.crmkit import bearer, scripted_call

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "ansible/roles/grafana/files/dashboards").glob("*.json"))
BINARIES = {"prometheus": "prometheus", "kamailio": "kamailio", "rtpengine": "rtpengine"}
MISSING = [name for name, binary in BINARIES.items() if shutil.which(binary) is None]
# Debian installs Kamailio's modules under the multiarch folder (x86_64-linux-gnu, aarch64-linux-gnu, …).
KAMAILIO_MODULES = next(
    iter(sorted(Path("/usr/lib").glob("*/kamailio/modules"))), Path("/usr/lib/kamailio/modules")
)

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (Debian packages)"),
]

# Identifiers in PromQL that are not metric names.
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
# Series Prometheus makes itself for every target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Grafana's variables, as a dashboard with every tenant selected expands them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s", "$tenant": ".*"}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers left after removing strings, label matchers, ranges,
    grouping clauses, function calls and keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if word.lower() in PROMQL_WORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def test_metric_name_parser():
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, tenant) (rate(a_bucket{tenant=~".*", x="by(y)"}[1m])))'
    ) == {"a_bucket"}
    assert metric_names("sum(rate(b_total[5m])) / on (job) group_left c_info offset 1h") == {
        "b_total",
        "c_info",
    }
    assert metric_names('d / scalar(sum(e{k!="v"}))') == {"d", "e"}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) for every panel target and query variable, variables expanded."""
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"]
        panels = []
        for panel in board["panels"]:
            panels.append(panel)
            panels.extend(panel.get("panels", []))
        for panel in panels:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "zhida-prometheus", panel["title"]
            for target in panel["targets"]:
                found.append((path.name, panel["title"], expand(target["expr"])))
        for variable in board["templating"]["list"]:
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
            assert match, f"{path.name}: variable {variable['name']}"
            found.append(
                (
                    path.name,
                    f"variable {variable['name']}",
                    f"count by ({match.group(2)}) ({expand(match.group(1))})",
                )
            )
    return found


def expand(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unexpanded variable in {expr}"
    return expr


def http_get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read()


class Processes:
    """Started processes (each its own session, so the whole tree is stopped) and their logs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.folder, **kwargs
        )
        self.running[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def wait(self, name: str, ready, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running[name].poll() is not None:
                break
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{name} not ready (exit {self.running[name].poll()}):\n{self.log(name)}")

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def kamailio_config(http_port: int) -> str:
    # The modules whose statistics the capacity dashboard reads, and xhttp_prom serving /metrics.
    return f"""#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
tcp_accept_no_cl=yes
listen=tcp:127.0.0.1:{http_port}
mpath="{KAMAILIO_MODULES}/"
loadmodule "kex.so"
loadmodule "pv.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "dialog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "xhttp.so"
loadmodule "xhttp_prom.so"
modparam("xhttp_prom", "xhttp_prom_stats", "all")
request_route {{ sl_send_reply("404", "Not here"); exit; }}
event_route[xhttp:request] {{
    if (prom_check_uri()) {{ prom_dispatch(); }}
    else {{ xhttp_reply("404", "Not Found", "text/plain", ""); }}
}}
"""


async def emit_every_zhida_metric(api_port: int, tokens) -> None:
    """At least one sample of each metric the dashboards read, through the real code paths."""
    bus = EventBus()
    bus.add_sink(CallMetrics())
    bus.add_sink(VersionVerdicts())
    for i, tenant in enumerate(("acme", "globex")):
        for event in scripted_call(f"prom-{i}", tenant):
            bus.publish(event)
        bus.publish(CallEvent(f"prom-{i}", tenant, CallEventKind.PROMPT, {"attempt": 2}))
        bus.publish(CallEvent(f"prom-{i}", tenant, CallEventKind.FEEDBACK, {"correct": i == 0}))
    with recognizer.track_stream("test-model") as stream:
        stream.add(audio_seconds=3.0, processing_seconds=0.3)
    recognizer.stream_rejected("test-model")
    recorder = CallRecorder(open_engine("sqlite://"), queue_size=1)  # never started: the second event drops
    recorder(scripted_call("dropped", "acme")[0])
    recorder(scripted_call("dropped", "acme")[1])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api_port}") as channel:
        stub = calls_pb2_grpc.CallEventServiceStub(channel)
        await stub.ListCalls(pb.ListCallsRequest(), metadata=bearer(tokens.acme))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ListCalls(pb.ListCallsRequest(), metadata=bearer("wrong"))


@pytest.fixture
def processes(tmp_path):
    running = Processes(tmp_path)
    yield running
    running.stop_all()


async def test_dashboards_against_real_prometheus(tmp_path, processes, crm_api, crm_tokens):
    assert DASHBOARDS, "no dashboards found"
    await emit_every_zhida_metric(crm_api.port, crm_tokens)
    metrics_server, in_process_port = start_metrics_server(0)

    # The standalone API as a second zhida target, as `zhida serve-api` runs it.
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text(
        yaml.safe_dump({"tokens": [{"name": "ops", "admin": True, "token": crm_tokens.admin}]})
    )
    api_metrics_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(zhida.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    processes.start(
        "serve-api",
        [
            sys.executable,
            "-m",
            "zhida.cli",
            "serve-api",
            "--listen",
            "127.0.0.1:0",
            "--tokens",
            str(tokens_file),
            "--db",
            f"sqlite:///{tmp_path}/api.db",
            "--metrics-port",
            str(api_metrics_port),
        ],
        env=env,
    )
    rtp_http, rtp_ng = free_ports(2)

    def no_core_dumps() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    processes.start(
        "rtpengine",
        [
            "rtpengine",
            "-f",
            "-E",
            "--table=-1",
            "--interface=127.0.0.1",
            f"--listen-ng=127.0.0.1:{rtp_ng}",
            f"--listen-http=127.0.0.1:{rtp_http}",
            "--port-min=42000",
            "--port-max=42100",
            "--log-level=5",
        ],
        preexec_fn=no_core_dumps,
    )
    kam_http = free_port()
    (tmp_path / "kamailio.cfg").write_text(kamailio_config(kam_http))
    processes.start(
        "kamailio",
        [
            "kamailio",
            "-DD",
            "-E",
            "-f",
            str(tmp_path / "kamailio.cfg"),
            "-Y",
            str(tmp_path),
            "-P",
            str(tmp_path / "kamailio.pid"),
        ],
    )
    prom_port = free_port()
    jobs = {
        "zhida-controller": [f"127.0.0.1:{in_process_port}", f"127.0.0.1:{api_metrics_port}"],
        "rtpengine": [f"127.0.0.1:{rtp_http}"],
        "kamailio": [f"127.0.0.1:{kam_http}"],
    }
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    processes.start(
        "prometheus",
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
    )
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def query(promql: str) -> dict:
        url = f"{api}/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            return json.loads(http_get(url))
        except urllib.error.HTTPError as exc:  # 400/422 carry the error in the body
            return json.loads(exc.read())

    try:
        processes.wait("prometheus", lambda: http_get(f"http://127.0.0.1:{prom_port}/-/ready") is not None)
        all_targets = sum(len(t) for t in jobs.values())

        def all_up() -> bool:
            targets = json.loads(http_get(f"{api}/targets"))["data"]["activeTargets"]
            return len(targets) == all_targets and all(t["health"] == "up" for t in targets)

        await asyncio.to_thread(processes.wait, "prometheus", all_up, 60)
        # Two scrapes or more of every target, so that rate() and increase() have samples to work on.
        time.sleep(3)
        exported = set(json.loads(http_get(f"{api}/label/__name__/values"))["data"]) | SYNTHETIC

        problems = []
        queries = dashboard_queries()
        for board, title, expr in queries:
            names = metric_names(expr)
            if not names:
                problems.append(f"{board} / {title}: no metric in {expr}")
            for name in sorted(names - exported):
                problems.append(f"{board} / {title}: {name} is not exported by any target")
            answer = query(expr)
            if answer.get("status") != "success":
                problems.append(f"{board} / {title}: {answer.get('error')} in {expr}")
            elif not answer["data"]["result"]:
                problems.append(f"{board} / {title}: no data for {expr}")
        assert not problems, "\n".join(problems)
        assert len(queries) >= 30
    finally:
        metrics_server.shutdown()
