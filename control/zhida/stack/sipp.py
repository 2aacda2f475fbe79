"""sipp as the carrier trunk and as agents' phones, for the demo, `zhida call` and the tests."""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zhida.codecs.pcap import write_rtp_pcap
from zhida.config import DEMO_DIR

SCENARIOS = DEMO_DIR / "sipp"


def in_netns(argv: list[str], netns: str | None) -> list[str]:
    """Runs a command inside a network namespace (tests put carrier, platform and agents in their own)."""
    return ["ip", "netns", "exec", netns, *argv] if netns else argv


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A free port on `host`; for an address of another network namespace, a random high port (that
    namespace is the test's own and holds nothing else)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            return random.randrange(20000, 60000, 2)
        return sock.getsockname()[1]


def read_wav_8k(path: Path) -> np.ndarray:
    """Any WAV to 8 kHz mono PCM16 (through sox when it is not that already)."""
    with wave.open(str(path)) as wav:
        if wav.getframerate() == 8000 and wav.getnchannels() == 1 and wav.getsampwidth() == 2:
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    if shutil.which("sox") is None:
        raise RuntimeError("sox is needed to convert the WAV to 8 kHz mono")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "8k.wav"
        subprocess.run(["sox", str(path), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True,
                       capture_output=True)
        with wave.open(str(out)) as wav:
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def caller_pcap(wav: Path, out: Path, *, lead_silence_s: float, tail_silence_s: float) -> float:
    """The caller's side of the call: silence while the prompt plays, the sentence, then silence (the
    endpointer needs audio to hear the silence in). Returns the sentence's offset in seconds."""
    speech = read_wav_8k(wav)
    lead = np.zeros(int(lead_silence_s * 8000), dtype=np.int16)
    tail = np.zeros(int(tail_silence_s * 8000), dtype=np.int16)
    write_rtp_pcap(out, np.concatenate([lead, speech, tail]))
    return lead_silence_s


def cancelling_scenario(wav: Path, work: Path, *, cancel_after_ms: int, lead_silence_s: float,
                        tail_silence_s: float) -> Path:
    """A trunk call that says `wav` and CANCELs `cancel_after_ms` after the 183 (files written in `work`)."""
    pcap = work / "cancel.pcap"
    caller_pcap(wav, pcap, lead_silence_s=lead_silence_s, tail_silence_s=tail_silence_s)
    scenario = work / "cancel.xml"
    text = (SCENARIOS / "caller_cancel.xml").read_text()
    scenario.write_text(text.replace("@PCAP@", str(pcap)).replace("@CANCEL_AFTER_MS@", str(cancel_after_ms)))
    return scenario


def caller_scenario(pcap: Path, out: Path) -> Path:
    out.write_text((SCENARIOS / "caller.xml").read_text().replace("@PCAP@", str(pcap)))
    return out


@dataclass
class SippResult:
    returncode: int
    call_id: str
    messages: str
    stderr: str


def run_caller(target: str, scenario: Path, number: str, *, local_ip: str, work_dir: Path,
               timeout_s: int = 60, netns: str | None = None) -> SippResult:
    inf = work_dir / "call.csv"
    inf.write_text(f"SEQUENTIAL\n{number}\n")
    message_file = work_dir / "caller-messages.log"
    argv = ["sipp", target, "-sf", str(scenario), "-inf", str(inf), "-i", local_ip, "-p", "0",
            "-mp", str(free_udp_port(local_ip)), "-m", "1", "-timeout", str(timeout_s), "-timeout_error",
            "-trace_msg", "-message_file", str(message_file), "-nostdin"]
    done = subprocess.run(in_netns(argv, netns), capture_output=True, text=True, timeout=timeout_s + 15,
                          cwd=work_dir)
    messages = message_file.read_text(errors="replace") if message_file.exists() else ""
    match = re.search(r"^Call-ID:\s*(\S+)", messages, re.MULTILINE | re.IGNORECASE)
    return SippResult(done.returncode, match.group(1) if match else "", messages, done.stderr[-2000:])


@dataclass
class AgentPhone:
    aor: str
    username: str
    password: str
    domain: str
    ip: str
    port: int
    log_file: Path
    process: subprocess.Popen[bytes]

    def received_calls(self) -> list[str]:
        if not self.log_file.exists():
            return []
        return re.findall(r"INVITE (\S+)", self.log_file.read_text(errors="replace"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_agent_phone(*, username: str, password: str, domain: str, ip: str, work_dir: Path,
                      behaviour: str = "answer", netns: str | None = None) -> AgentPhone:
    """A sipp UAS that answers (and echoes RTP) or is busy; register it with `register_agent`."""
    port = free_udp_port(ip)
    log_file = work_dir / f"agent-{username}.log"
    scenario = SCENARIOS / ("agent_answer.xml" if behaviour == "answer" else "agent_busy.xml")
    argv = ["sipp", "-sf", str(scenario), "-i", ip, "-p", str(port), "-mp", str(free_udp_port(ip)),
            "-rtp_echo", "-trace_logs", "-log_file", str(log_file), "-nostdin"]
    if behaviour == "no_answer":
        argv = ["sipp", "-sf", str(SCENARIOS / "agent_no_answer.xml"), "-i", ip, "-p", str(port),
                "-trace_logs", "-log_file", str(log_file), "-nostdin"]
    process = subprocess.Popen(in_netns(argv, netns), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=work_dir)
    return AgentPhone(f"sip:{username}@{domain}", username, password, domain, ip, port, log_file, process)


def register_agent(target: str, phone: AgentPhone, *, work_dir: Path, password: str | None = None,
                   expires: int = 600, netns: str | None = None) -> int:
    inf = work_dir / f"register-{phone.username}.csv"
    inf.write_text(f"SEQUENTIAL\n{phone.username};-;{phone.domain};{phone.port};{expires}\n")
    argv = ["sipp", target, "-sf", str(SCENARIOS / "register.xml"), "-inf", str(inf), "-i", phone.ip, "-p", "0",
            "-au", phone.username, "-ap", password or phone.password, "-m", "1", "-timeout", "10",
            "-timeout_error", "-nostdin"]
    return subprocess.run(in_netns(argv, netns), capture_output=True, timeout=20, cwd=work_dir).returncode
