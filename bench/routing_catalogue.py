"""Write the UnionPay 95516 FAQ catalogue: each `faq_question` of the given files once, with its agent group.

A bank knows its FAQ and which department owns each entry; this is that list for the UnionPay data, the
input of `zhida rules learn --catalogue`.  Only the questions and groups are used, never the callers' wordings.

    .venv/bin/python -m bench.routing_catalogue ../shared/data/unionpay95516/{train,test}.tsv > catalogue.tsv
"""

from __future__ import annotations

import csv
import sys

from zhida.routing.dataset import group_of_subject


def main(paths: list[str]) -> int:
    seen: dict[str, str] = {}
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                question = (row.get("faq_question") or "").strip()
                if question and question not in seen:
                    seen[question] = group_of_subject(row["subject"])
    out = csv.writer(sys.stdout, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
    out.writerow(["text", "group"])
    for question, group in seen.items():
        out.writerow([question, group])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
