"""What `trading-cycle` shows while a run works and when it fails (issue #16 item 3).

- Progress on stderr: one line per step as it ends (`  features ......... 1.26 s`); for a range run on
  a terminal, a rich progress bar of the run's steps under those lines.
- Dagster's own event log goes to the instance (the UI shows it) and to a log file under the data dir
  (`logs/<run id>.log`), not to the terminal; `--verbose` puts it back on the terminal.
- A failed run: one paragraph -- what failed (the step, or the blocking check and its description),
  which sessions and symbols (read from the failing check's metadata and the step's error), what was
  skipped, the run id, and how to see it in `dagster dev`; a Python traceback only with --verbose.

The CLI subscribes to the run's events in the instance (`DagsterInstance.add_event_listener`), so this
module sees exactly what the UI records; nothing here changes what the run does.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATE_IN_TEXT = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")  # the universe's strict pattern, without reason codes (they have '_')
MAX_LISTED = 12  # sessions / symbols named in the paragraph; the rest are counted


# --- progress --------------------------------------------------------------------------------------
class StepProgress:
    """An instance event listener that prints one line per finished step (and drives a progress bar).

    Steps are Dagster's execution steps (an asset, a multi-asset, a check); the bar counts them.
    """

    def __init__(self, stream: TextIO, total_steps: int, bar: bool):
        self.stream = stream
        self.total = total_steps
        self.done = 0
        self.started = time.perf_counter()
        self._bar = None
        self._task = None
        if bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=Console(file=stream), transient=True)
            self._task = self._bar.add_task("steps", total=total_steps)

    def __enter__(self) -> "StepProgress":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def __call__(self, entry) -> None:
        event = entry.dagster_event if getattr(entry, "is_dagster_event", False) else None
        if event is None or not event.step_key:
            return
        kind = event.event_type_value
        if kind == "STEP_START" and self._task is not None:
            self._bar.update(self._task, description=event.step_key)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            self.done += 1
            if kind == "STEP_SUCCESS":
                seconds = event.event_specific_data.duration_ms / 1000.0
                self._line(f"  {event.step_key:.<58} {seconds:6.2f} s")
            elif kind == "STEP_FAILURE":
                self._line(f"  {event.step_key:.<58} FAILED")
            else:
                self._line(f"  {event.step_key:.<58} skipped")
            if self._task is not None:
                self._bar.update(self._task, completed=self.done)


@contextlib.contextmanager
def dagster_output_to(log_path: Path, verbose: bool) -> Iterator[None]:
    """Inside: what Dagster and the run print (its console event log, warnings, prints) goes to
    `log_path`, not the terminal; with verbose, to stderr as before (stdout stays for the JSON)."""
    if verbose:
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        yield


# --- a failed run in one paragraph -----------------------------------------------------------------
@dataclass
class FailureReport:
    run_id: str
    failed_steps: list[tuple[str, str]] = field(default_factory=list)  # (step, first line of the error)
    failed_checks: list[tuple[str, str, str]] = field(default_factory=list)  # (check, asset, description)
    skipped: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    traceback: str = ""

    def as_json(self) -> dict:
        return {
            "failed_steps": [f"{s}: {m}" for s, m in self.failed_steps],
            "failed_checks": [{"check": c, "asset": a, "description": d} for c, a, d in self.failed_checks],
            "skipped_steps": self.skipped,
            "sessions": self.sessions,
            "symbols": self.symbols,
        }

    def paragraph(self, dagster_home: Path | str, log_path: Path | None, verbose: bool = False) -> str:
        parts = [f"trading-cycle: the run FAILED."]
        for check, asset, description in self.failed_checks:
            parts.append(f"The blocking check {check} on {asset} failed" + (f": {description}." if description else "."))
        for step, message in self.failed_steps:
            if not any(step.startswith(f"{a}_{c}") or step == f"{a}_{c}" for c, a, _ in self.failed_checks):
                parts.append(f"Step {step} failed: {message}" + ("" if message.endswith((".", ")")) else "."))
        if self.sessions:
            parts.append(f"Sessions: {_listed(self.sessions)}.")
        if self.symbols:
            parts.append(f"Symbols: {_listed(self.symbols)}.")
        if self.skipped:
            parts.append(f"Not run (downstream of the failure): {_listed(self.skipped)}.")
        parts.append(f"Run id {self.run_id}: see it with `DAGSTER_HOME={dagster_home} dagster dev` "
                     f"(http://127.0.0.1:3000/runs/{self.run_id}).")
        if log_path is not None:
            parts.append(f"Dagster's log: {log_path}.")
        parts.append("Rerun with --verbose for the traceback." if self.traceback and not verbose else "")
        return " ".join(p for p in parts if p)


def _listed(items: list[str]) -> str:
    head = ", ".join(items[:MAX_LISTED])
    return head + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def failure_report(run_id: str, events: Iterable, steps: Iterable[str] = ()) -> FailureReport:
    """The report of a failed run from its Dagster events (ExecuteInProcessResult.all_events); `steps`,
    the run's step keys, tells which were never run (Dagster does not start a step whose upstream
    step or blocking check failed, and records no event for it)."""
    rep = FailureReport(run_id)
    ended: set[str] = set()
    sessions: dict[str, None] = {}
    symbols: dict[str, None] = {}
    for e in events:
        kind = e.event_type_value
        if kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            ended.add(e.step_key)
        if kind == "STEP_FAILURE":
            err = getattr(e.event_specific_data, "error", None)
            message = _user_message(err) if err is not None else (e.message or "").strip()
            first = message.splitlines()[0] if message else "(no message)"
            rep.failed_steps.append((e.step_key, first))
            if err is not None:
                rep.traceback += err.to_string()
            for d in ISO_DATE_IN_TEXT.findall(message):
                sessions.setdefault(d)
        elif kind == "STEP_SKIPPED":
            rep.skipped.append(e.step_key)
        elif kind == "ASSET_CHECK_EVALUATION":
            ev = e.event_specific_data
            blocking = ev.blocking if ev.blocking is not None else ev.severity.value == "ERROR"
            if ev.passed or not blocking:  # a failed non-blocking check (e.g. freshness) did not fail the run
                continue
            rep.failed_checks.append((ev.check_name, ev.asset_key.to_user_string(), (ev.description or "").rstrip(".")))
            for key, value in (ev.metadata or {}).items():
                _collect(_plain(value), key.lower(), sessions, symbols)
    rep.skipped += [s for s in steps if s not in ended and s not in rep.skipped]
    rep.sessions = sorted(sessions)
    rep.symbols = sorted(symbols)
    return rep


def _user_message(err) -> str:
    """The message of the error the step's own code raised (Dagster wraps it in a step-execution
    error; the cause chain ends at it), as 'ValueError: text', or the text alone for dg.Failure."""
    while getattr(err, "cause", None) is not None and err.cls_name and err.cls_name.startswith("DagsterExecution"):
        err = err.cause
    text = (err.message or "").strip()
    head, sep, rest = text.partition(": ")
    if sep and "." in head and " " not in head:  # "package.module.ClassName: text" -> "ClassName: text"
        name = head.rsplit(".", 1)[1]
        text = rest if name == "Failure" else f"{name}: {rest}"
    return text


def _plain(value: Any) -> Any:
    """A MetadataValue as plain Python (JSON data, text, numbers)."""
    for attr in ("data", "text", "value", "md_str"):
        if hasattr(value, attr):
            return getattr(value, attr)
    return value


def _collect(value: Any, hint: str, sessions: dict, symbols: dict) -> None:
    """Sessions (ISO dates) and symbols found in a check's metadata value: strings under a key that
    names symbols, dict keys of such a mapping, and the symbol-like strings of rows that hold a date
    (e.g. [date, symbol, reason])."""
    if isinstance(value, str):
        if ISO_DATE.match(value):
            sessions.setdefault(value)
        elif "symbol" in hint and SYMBOL.match(value):
            symbols.setdefault(value)
        else:
            for d in ISO_DATE_IN_TEXT.findall(value):
                sessions.setdefault(d)
    elif isinstance(value, dict):
        for k, v in value.items():
            if "symbol" in hint and isinstance(k, str) and SYMBOL.match(k):
                symbols.setdefault(k)
            _collect(v, f"{hint}/{k}".lower(), sessions, symbols)
    elif isinstance(value, (list, tuple)):
        row_has_date = any(isinstance(v, str) and ISO_DATE.match(v) for v in value)
        for v in value:
            if row_has_date and isinstance(v, str) and SYMBOL.match(v):
                symbols.setdefault(v)
            else:
                _collect(v, hint, sessions, symbols)
