"""LAC under the servers' real concurrency: one predictor per process, no oneDNN, identical answers.

The routing server used to abort (heap corruption inside paddle) or return other words when its gRPC pool
threads shared LAC; `zhida.understanding.paddle_compat` explains why.  The server here is the real
`zhida serve-routing` process, so a crash fails the test instead of taking pytest down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from zhida.understanding import Analyzer, get_analyzer
from zhida.v1 import routing_pb2 as pb
from zhida.v1 import routing_pb2_grpc as pb_grpc

DEMO_SENTENCES = Path(__file__).resolve().parents[2] / "control/zhida/demo/sentences.tsv"
CLIENT_THREADS = 8
CALLS_PER_THREAD = 300


@pytest.fixture
def routing_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    cmd = [sys.executable, "-m", "zhida.cli", "serve-routing", "--listen", "127.0.0.1:0"]
    cmd += ["--tenants", str(tenants), "--watch-interval", "0"]
    env = {**os.environ, "ZHIDA_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        yield proc, ready["listening"]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _key(resp: pb.RouteResponse) -> tuple[object, ...]:
    d = resp.decision
    return (d.kind, d.route, round(d.score, 9), tuple((w.text, w.tag) for w in resp.words))


def test_routing_server_answers_concurrent_clients_identically(
    routing_process: tuple[subprocess.Popen[str], str],
) -> None:
    proc, address = routing_process
    sentences = [r.split("\t")[0] for r in DEMO_SENTENCES.read_text("utf-8").splitlines()[1:]]
    texts = [s[:n] for s in sentences for n in range(2, len(s) + 1, 2)]  # finals and partials
    with grpc.insecure_channel(address) as ch:
        stub = pb_grpc.RoutingServiceStub(ch)
        serial = {t: _key(stub.Route(pb.RouteRequest(tenant="demo", text=t), timeout=10)) for t in texts}

    mismatches: list[str] = []
    failures: list[str] = []

    def client(k: int) -> None:
        with grpc.insecure_channel(address) as ch:
            stub = pb_grpc.RoutingServiceStub(ch)
            for i in range(CALLS_PER_THREAD):
                text = texts[(i * CLIENT_THREADS + k) % len(texts)]
                try:
                    got = _key(stub.Route(pb.RouteRequest(tenant="demo", text=text), timeout=10))
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code()}: {exc.details()}")
                    return
                if got != serial[text]:
                    mismatches.append(text)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else "routing server exited"
    assert failures == []
    assert mismatches == []
    with grpc.insecure_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_every_analyzer_shares_the_process_predictor() -> None:
    shared = get_analyzer()
    shared.load()
    own = Analyzer()
    assert own._model() is shared._model()
    assert own.analyze("发票抬头写错了") == shared.analyze("发票抬头写错了")


def test_lac_predictor_is_built_without_onednn() -> None:
    from zhida.understanding.paddle_compat import import_lac

    import_lac()
    import LAC
    import LAC.models

    model_dir = os.path.join(os.path.dirname(LAC.__file__), "lac_model", "model")
    assert LAC.models.AnalysisConfig(model_dir).mkldnn_enabled() is False


def test_validating_a_tenant_file_does_not_load_paddle() -> None:
    """The admin API validates uploads in the controller, which must not grow by paddle's ~350 MB."""
    code = (
        "import sys\n"
        "from zhida.routing.config import load_config\n"
        "from zhida.routing.store import packaged_demo_dir\n"
        "text = (packaged_demo_dir() / 'demo.yaml').read_text('utf-8')\n"
        "config = load_config(text, source='demo.yaml', expect_tenant='demo')\n"
        "assert config.dictionary, 'the demo tenant has a dictionary to validate'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paddle', 'LAC')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
