"""Where a redacted secret could still be: every byte an end-to-end run leaves behind (the
store's files during and after the run, `events --json`, every file export, an HTML report), and
the checks the adversarial redaction tests make on them.

Nothing here imports `mcp_notary`: like the rest of the e2e suite it reads what the installed
command wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_notary import Notary, store_files

Event = dict[str, Any]

# Every export format that can write to a file (`--to FILE`). OTLP only posts to an endpoint.
FILE_EXPORT_FORMATS = ("jsonl", "ocsf", "ecs", "cef", "leef", "syslog", "splunk-hec", "elastic")
MARKER_RE = re.compile(r"^\[REDACTED:[a-z0-9_]+:(?:[0-9]{6}\*{6}[0-9]{4}:)?[0-9a-f]{12}\]$")
MANIFEST_KEYS = {"pointer", "kind", "rule", "rule_version"}


def raw_store(store: Path, label: str) -> dict[str, bytes]:
    """The store's database and side files (-wal, -shm, -journal), byte for byte."""
    files = {f"{label} {p.name}": p.read_bytes() for p in store_files(store)}
    assert files, f"no store files at {store}"
    return files


def read_side_outputs(notary: Notary, store: Path, workdir: Path) -> dict[str, bytes]:
    """`events --json`, each file export and the SOC 2 HTML report of `store`."""
    out: dict[str, bytes] = {}
    printed = notary.events_raw(store)
    assert printed.returncode == 0, printed.stderr.decode(errors="replace")[-2000:]
    out["events --json"] = printed.stdout
    for fmt in FILE_EXPORT_FORMATS:
        path = workdir / f"export-{fmt}.out"
        path.unlink(missing_ok=True)
        proc = notary.run("export", "--format", fmt, "--to", str(path), store=store)
        assert proc.returncode == 0, (fmt, proc.stderr.decode(errors="replace")[-2000:])
        data = path.read_bytes()
        assert data.strip(), f"export --format {fmt} wrote nothing"
        out[f"export {fmt}"] = data
    report = workdir / "report-soc2.html"
    proc = notary.run(
        "report", "--template", "soc2", "--format", "html", "-o", str(report),
        store=store, timeout=120,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr.decode(errors="replace")[-2000:]
    data = report.read_bytes()
    assert b"<html" in data.lower(), data[:200]
    out["report soc2 html"] = data
    return out


def encodings(secret: str) -> set[bytes]:
    """The forms a string takes in the outputs: UTF-8, and JSON-escaped (non-ASCII as \\uXXXX,
    control characters, `/` as `\\/`)."""
    forms = {secret.encode()}
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms.add(escaped.encode())
        forms.add(escaped.replace("/", "\\/").encode())
    return forms


def find_leaks(needles: dict[str, str], haystacks: dict[str, bytes]) -> list[str]:
    """`label in where` for every needle found in any haystack, in any of its encodings."""
    found = []
    for label, needle in needles.items():
        assert len(needle) >= 8, f"needle {label!r} too short to be meaningful: {needle!r}"
        forms = encodings(needle)
        where = [name for name, hay in haystacks.items() if any(f in hay for f in forms)]
        if where:
            found.append(f"{label} ({needle[:6]}…) in {', '.join(where)}")
    return found


def pieces(secret: str, n: int) -> list[str]:
    """Every substring of `secret` of length `n`."""
    return [secret[i : i + n] for i in range(len(secret) - n + 1)]


@dataclass
class Case:
    """One adversarial payload: what must be absent everywhere, and where the manifest must say
    something was removed (pointer prefixes) in the event `locate` finds."""

    needles: dict[str, str]
    pointers: tuple[str, ...]
    locate: Callable[[list[Event]], list[Event]]
    needs_depth_entry: bool = False
    note: str = ""


@dataclass
class Run:
    """An end-to-end session's store and every output made from it."""

    store: Path
    cases: dict[str, Case] = field(default_factory=dict, repr=False)
    haystacks: dict[str, bytes] = field(default_factory=dict, repr=False)
    events: list[Event] = field(default_factory=list, repr=False)
    results: dict[str, Any] = field(default_factory=dict)

    def add(self, case_id: str, case: Case) -> None:
        assert case_id not in self.cases, case_id
        self.cases[case_id] = case


def pointer_under(pointer: str, prefix: str) -> bool:
    return pointer == prefix or pointer.startswith(prefix.rstrip("/") + "/")


def case_problems(run: Run, case_id: str) -> list[str]:
    """Everything wrong with one case: leaks anywhere, a missing event, a missing manifest
    entry. The event must be found: a case that cannot see its event fails."""
    case = run.cases[case_id]
    problems = find_leaks(case.needles, run.haystacks)
    located = case.locate(run.events)
    if not located:
        return [*problems, f"{case_id}: its event was not found in the store"]
    for event in located:
        manifest = event.get("sensitive_fields") or []
        bad = [f for f in manifest if set(f) != MANIFEST_KEYS]
        if bad:
            problems.append(f"seq {event['seq']}: malformed manifest entries {bad[:3]}")
        pointers = [f.get("pointer", "") for f in manifest]
        for prefix in case.pointers:
            if not any(pointer_under(p, prefix) for p in pointers):
                problems.append(
                    f"seq {event['seq']} {event['method']}: no sensitive_fields entry at "
                    f"{prefix}; manifest: {manifest}"
                )
        if case.needs_depth_entry and not any(
            "depth" in f"{f.get('rule', '')} {f.get('kind', '')}".lower() for f in manifest
        ):
            problems.append(
                f"seq {event['seq']}: no sensitive_fields entry says a depth limit replaced "
                f"content; manifest: {manifest}"
            )
    return problems


# -- locating events -------------------------------------------------------------------------------
def requests(
    events: Iterable[Event], method: str, direction: str = "client_to_server"
) -> list[Event]:
    """Call events of `method` sent in `direction`, in the order they were recorded."""
    found = [
        e
        for e in events
        if e["kind"] == "call" and e["method"] == method and e["direction"] == direction
    ]
    return sorted(found, key=lambda e: (e["stream"], e["seq"]))


def nth(
    method: str, index: int, direction: str = "client_to_server"
) -> Callable[[list[Event]], list[Event]]:
    """The index-th request of `method` (a sequential client's requests are recorded in order)."""

    def locate(events: list[Event]) -> list[Event]:
        found = requests(events, method, direction)
        return [found[index]] if index < len(found) else []

    return locate


def by_id(jsonrpc_id: Any, method: str = "tools/call") -> Callable[[list[Event]], list[Event]]:
    """The call event of a client request with this JSON-RPC id (type kept: 1 is not "1")."""

    def locate(events: list[Event]) -> list[Event]:
        return [
            e
            for e in requests(events, method)
            if type(e["jsonrpc_id"]) is type(jsonrpc_id) and e["jsonrpc_id"] == jsonrpc_id
        ]

    return locate


def is_marker(value: Any) -> bool:
    return isinstance(value, str) and MARKER_RE.match(value) is not None
