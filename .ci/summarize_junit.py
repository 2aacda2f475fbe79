"""Prints the failed and errored tests of a JUnit XML report, the list of names last.

CI shows only the end of a run's output: without this, a teardown error's name scrolls out of sight behind the
logs that the failing test printed.
"""

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    bad: list[tuple[str, str, str]] = []
    for case in ET.parse(path).getroot().iter("testcase"):
        for kind in ("failure", "error"):
            for node in case.findall(kind):
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                bad.append((kind, name, (node.get("message") or "") + "\n" + (node.text or "")))
    for kind, name, text in bad:
        lines = [line for line in text.splitlines() if line.strip()]
        print(f"===== {kind.upper()} {name}")
        print("\n".join(lines[:12]))
        if len(lines) > 24:
            print("    [...]")
        print("\n".join(lines[max(12, len(lines) - 12):]))
    print(f"===== {len(bad)} failed or errored:")
    for kind, name, text in bad:
        first = next((line for line in text.splitlines() if line.strip()), "")[:160]
        print(f"{kind.upper()} {name}: {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
