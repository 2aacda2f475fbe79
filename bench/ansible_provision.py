"""How long provisioning one box takes: site.yml with the local inventory, first run and a no-change rerun.

    nice -n 10 .venv/bin/python -m bench.ansible_provision --runs 3

Each round provisions a fresh scratch prefix (a first run: every file written, the directory loaded) and then
runs again on it (the rerun an operator does after changing nothing: every template compared, no handler).
Packages are already installed on the machine, so apt only confirms them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ANSIBLE_DIR = REPO / "ansible"
RECAP = re.compile(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def run(prefix: Path) -> tuple[float, int, int]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = ["ansible-playbook", "-i", "inventories/local/hosts.yml", "site.yml", "-e", f"site_prefix={prefix}"]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    match = RECAP.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"ansible-playbook failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return seconds, int(match.group(1)), int(match.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds of first run + rerun (default 3)")
    args = parser.parse_args()
    first: list[float] = []
    rerun: list[float] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="zhida-bench-provision-") as tmp:
            seconds, ok, changed = run(Path(tmp) / "root")
            first.append(seconds)
            again, ok_again, changed_again = run(Path(tmp) / "root")
            rerun.append(again)
            print(json.dumps({"first_s": round(seconds, 1), "first_tasks": ok, "first_changed": changed,
                              "rerun_s": round(again, 1), "rerun_tasks": ok_again,
                              "rerun_changed": changed_again}), flush=True)
    print(json.dumps({"first_median_s": round(statistics.median(first), 1),
                      "rerun_median_s": round(statistics.median(rerun), 1), "runs": args.runs}))


if __name__ == "__main__":
    main()
