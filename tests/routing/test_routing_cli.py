"""The `zhida` commands of the routing concern, run as subprocesses: JSON out, clear errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from routingkit import DEMO_SENTENCES, DEMO_YAML

ZHIDA = [sys.executable, "-m", "zhida.cli"]


def run(*args: str, data_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZHIDA_DATA_DIR": str(data_dir)}
    return subprocess.run([*ZHIDA, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_route_prints_the_decision(tmp_path: Path) -> None:
    out = run("route", "--tenant", "demo", "我要开一张增值税发票", data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert (d["decision"], d["route"], d["group"]) == ("route", "billing", "billing")
    assert d["confidence"] > 0.6 and d["score"] > 0
    assert {"term": "发票", "weight": 3.5, "kind": "phrase"} in d["explanation"]
    assert "".join(w["text"] for w in d["words"]) == "我要开一张增值税发票"


def test_route_fallback_json(tmp_path: Path) -> None:
    d = json.loads(run("route", "--tenant", "demo", "喂喂", data_dir=tmp_path).stdout)
    assert (d["decision"], d["group"]) == ("fallback", "operator")
    d = json.loads(run("route", "--tenant", "demo", "--attempt", "1", "喂喂", data_dir=tmp_path).stdout)
    assert (d["decision"], d["group"]) == ("reprompt", "")


def test_route_unknown_tenant(tmp_path: Path) -> None:
    out = run("route", "--tenant", "nobody", "你好", data_dir=tmp_path)
    assert out.returncode == 2
    assert "unknown tenant 'nobody'" in out.stderr


def test_rules_check(tmp_path: Path) -> None:
    out = run("rules", "check", str(DEMO_YAML), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tenant"] == "demo"
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenant: bad\nroutes:\n  a: {group: a, phrases: {x: [1]}}\n", "utf-8")
    out = run("rules", "check", str(bad), data_dir=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith(f"{bad}:3: routes/a/phrases/x: [1] is not of type 'number'")


def test_eval_demo(tmp_path: Path) -> None:
    out = run("eval", "--tenant", "demo", str(DEMO_SENTENCES), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert {"n", "accuracy", "macro_f1", "fallback_rate", "wrong_rate"} <= set(m)
    assert m["n"] == 32 and m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    noisy = json.loads(
        run(
            "eval",
            "--tenant",
            "demo",
            "--noise-cer",
            "0.1",
            "--seed",
            "3",
            str(DEMO_SENTENCES),
            data_dir=tmp_path,
        ).stdout
    )
    assert noisy["accuracy"] + noisy["wrong_rate"] + noisy["fallback_rate"] == pytest.approx(1.0)
    assert noisy["noise_cer"] == 0.1
    again = json.loads(
        run(
            "eval",
            "--tenant",
            "demo",
            "--noise-cer",
            "0.1",
            "--seed",
            "3",
            str(DEMO_SENTENCES),
            data_dir=tmp_path,
        ).stdout
    )
    assert again == noisy  # seeded


def test_eval_follows_unsure_calls_through_the_reprompt(tmp_path: Path) -> None:
    """A vague first sentence is re-prompted; the caller's other wording of the question then decides the call."""
    f = tmp_path / "calls.tsv"
    f.write_text(
        "text\tgroup\tfaq_id\n"
        "喂你好\trepair\t1\n"  # vague: re-prompted, then answered by the other wording of question 1
        "我家的空调坏了需要上门维修\trepair\t1\n"
        "我要开一张增值税发票\tbilling\t2\n"
        "嗯那个\tbilling\t3\n",  # vague and alone: asked again, says the same, falls back
        "utf-8",
    )
    plain = json.loads(run("eval", "--tenant", "demo", str(f), data_dir=tmp_path).stdout)
    assert "calls" not in plain
    assert (plain["accuracy"], plain["fallback_rate"]) == (0.5, 0.5)
    out = run("eval", "--tenant", "demo", "--reprompt-paraphrases", str(f), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert {k: m[k] for k in plain} == plain  # the sentence-level figures do not change
    calls = m["calls"]
    assert calls["reprompt_rate"] == 0.5
    assert (calls["accuracy"], calls["wrong_rate"], calls["fallback_rate"]) == (0.75, 0.0, 0.25)


def test_eval_rejects_bad_files(tmp_path: Path) -> None:
    f = tmp_path / "x.tsv"
    f.write_text("sentence\tlabel\n你好\ta\n", "utf-8")
    out = run("eval", "--tenant", "demo", str(f), data_dir=tmp_path)
    assert out.returncode == 2 and "needs `text` and `group` or `subject`" in out.stderr


def test_learn_writes_an_editable_tenant_in_the_data_dir(tmp_path: Path) -> None:
    # Learn from the demo sentences (with `subject` labels, UnionPay style) into a new tenant.
    rows = DEMO_SENTENCES.read_text("utf-8").splitlines()[1:]
    tsv = tmp_path / "train.tsv"
    tsv.write_text("text\tsubject\n" + "".join(f"{t}\tshop_{g}_x\n" for t, g in (r.split("\t") for r in rows)), "utf-8")
    out = run("rules", "learn", "--tenant", "shop", "--c", "10", "--folds", "3", str(tsv), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    yaml_path = tmp_path / "tenants" / "shop.yaml"
    assert report["file"] == str(yaml_path) and report["routes"] == 4 and report["examples"] == 32
    # The written rules are the fitted model: same probabilities up to rounding and pruning of weights.
    assert report["max_probability_gap"] < 0.05
    text = yaml_path.read_text("utf-8")
    assert "learned:" in text and "repair:" in text
    d = json.loads(run("route", "--tenant", "shop", "--attempt", "2", "冰箱坏了要修", data_dir=tmp_path).stdout)
    assert d["route"] == "repair"
    assert any(c["kind"].startswith("learned ") for c in d["explanation"])

    # A hand rule added to the learned file wins, and survives re-learning.
    text = text.replace(
        "  delivery:\n    group: delivery\n", "  delivery:\n    group: delivery\n    phrases: {冰箱: 50}\n"
    )
    yaml_path.write_text(text, "utf-8")
    d = json.loads(run("route", "--tenant", "shop", "冰箱坏了要修", data_dir=tmp_path).stdout)
    assert d["route"] == "delivery" and {"term": "冰箱", "weight": 50.0, "kind": "phrase"} in d["explanation"]
    out = run("rules", "learn", "--tenant", "shop", "--c", "10", "--folds", "3", str(tsv), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "冰箱: 50" in yaml_path.read_text("utf-8")

    # Learning with simulated recognition errors gives rules of the same shape.
    args = ("rules", "learn", "--tenant", "shop", "--c", "10", "--folds", "3", "--augment-cer", "0.1")
    out = run(*args, str(tsv), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["max_probability_gap"] < 0.05


def test_serve_routing_command(tmp_path: Path) -> None:
    """The real `zhida serve-routing` process: readiness, Route, SIGHUP reload, clean exit on SIGTERM."""
    import signal

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from zhida.v1 import routing_pb2 as pb
    from zhida.v1 import routing_pb2_grpc as pb_grpc

    tenants = tmp_path / "tenants"
    tenants.mkdir()
    env = {**os.environ, "ZHIDA_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            *ZHIDA,
            "serve-routing",
            "--listen",
            "127.0.0.1:0",
            "--tenants",
            str(tenants),
            "--watch-interval",
            "0",
            "--metrics-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once serving
        ready = json.loads(line)
        assert ready["tenants"] == ["demo"]
        import urllib.request

        with urllib.request.urlopen(ready["metrics"], timeout=10) as resp:
            assert "zhida_routing_tenants 1.0" in resp.read().decode()
        with grpc.insecure_channel(ready["listening"]) as ch:
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = pb_grpc.RoutingServiceStub(ch)
            d = stub.Route(pb.RouteRequest(tenant="demo", text="我要投诉你们的安装师傅"), timeout=10).decision
            assert d.group == "complaint"
            yaml_text = "tenant: acme\nfallback: {group: op}\nroutes:\n  a: {group: a, phrases: {贷款: 3}}\n"
            (tenants / "acme.yaml").write_text(yaml_text, "utf-8")
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while True:
                try:
                    d = stub.Route(pb.RouteRequest(tenant="acme", text="贷款"), timeout=10).decision
                    break
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline
                    time.sleep(0.05)
            assert d.group == "a"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
