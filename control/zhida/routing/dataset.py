"""Labelled sentences for learning and evaluation: TSV with a header naming `text` and `group` or `subject`.

`subject` is the UnionPay 95516 format, where the agent group is the second `_` field
(`银联二期_手机支付_Apple Pay_FAQ` → `手机支付`).  An optional `faq_id` column groups paraphrases of one
question; cross-validation keeps each group on one side so that tuning measures generalisation to new
questions, not to new wordings of known ones.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    group: str
    paraphrase_group: str  # faq_id, or the text itself when the file has none


class DatasetError(ValueError):
    pass


def group_of_subject(subject: str) -> str:
    parts = subject.split("_")
    if len(parts) < 2 or not parts[1]:
        raise DatasetError(f"subject {subject!r} has no second '_' field")
    return parts[1]


def read_tsv(path: str | Path) -> list[Example]:
    p = Path(path)
    try:
        with p.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            fields = reader.fieldnames or []
            if "text" not in fields or not ({"group", "subject"} & set(fields)):
                raise DatasetError(f"{p}: the header needs `text` and `group` or `subject` (has {fields})")
            out = []
            for line, row in enumerate(reader, start=2):
                text = (row.get("text") or "").strip()
                if not text:
                    continue
                try:
                    group = (row.get("group") or "").strip() or group_of_subject(row.get("subject") or "")
                except DatasetError as exc:
                    raise DatasetError(f"{p}:{line}: {exc}") from None
                out.append(Example(text, group, (row.get("faq_id") or "").strip() or text))
            return out
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{p}: cannot read: {exc}") from None
