"""The paper-fidelity report the page quotes: this machine's own run if there is one, else the shipped example.

`alexnet-report` writes reports/paper.json in the folder it runs in; the report package ships the example
run (report/example/paper.json) as package data, so a fresh install has measured verdicts too.
"""
from __future__ import annotations

import json
from pathlib import Path

from report.config import EXAMPLE

REPORTS = (Path("reports") / "paper.json", EXAMPLE / "paper.json")


def read_report(paths=REPORTS) -> tuple[Path, dict] | None:
    """(path, payload) of the first readable paper.json of `paths` that has a claims table, or None."""
    for path in map(Path, paths):
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(payload, dict) and isinstance(payload.get("claims"), dict):
            return path, payload
    return None


def verdict(key: str, paths=REPORTS) -> str:
    """This project's measured answer to one of the paper's claims (paper.json's claims[key]["project"])."""
    found = read_report(paths)
    claim = (found[1]["claims"].get(key) or {}) if found else {}
    if not claim.get("project"):
        return "not measured yet: run `alexnet-report`"
    return f"{claim['project']} (the paper: {claim.get('paper', '?')})"
