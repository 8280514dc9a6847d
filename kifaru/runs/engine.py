"""The run every command over files shares: items -> (resumed | failed at once | to do) -> the
command's pipeline on a backend -> records -> journal -> outputs.

What a command brings: its ``pipeline(todo, finish)``, which runs the items to do (on a backend
from :mod:`kifaru.runs.backends`) and calls ``finish(record)`` once per item; its journal (or
none, when nothing is saved); and ``write(records, partial)``, which writes its outputs by name
(:mod:`kifaru.outputs`). The engine does the rest the same way for everyone: which items an
earlier run finished, the failure records of items that cannot be read at all, the journal, the
progress callback, and, when the run is interrupted (Ctrl-C, SIGTERM), the outputs of what is
finished, marked partial, before :class:`kifaru.exceptions.Interrupted` is raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from kifaru.exceptions import Interrupted
from kifaru.runs.inputs import Item
from kifaru.runs.journal import Journal, file_fingerprint
from kifaru.runs.records import STAGE_FILE, Record

Finish = Callable[[Record], None]
Pipeline = Callable[[Sequence[Item], Finish], None]
Progress = Callable[[Record, int, int], None]  # (record, items done, items in all)
# (records in input order, (done, in all) when the run was interrupted, else None) -> outputs by name
Write = Callable[[list[Record], Optional[tuple[int, int]]], dict[str, Path]]


@dataclass
class RunResult:
    records: list[Record]  # input order
    resumed: int  # items an earlier, stopped run finished
    outputs: dict[str, Path]

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.failed]

    @property
    def done(self) -> list[Record]:
        return [r for r in self.records if not r.failed]


def run_items(
    items: Sequence[Item],
    pipeline: Pipeline,
    *,
    journal: Optional[Journal] = None,
    overwrite: bool = False,
    write: Optional[Write] = None,
    progress: Optional[Progress] = None,
    before_work: Optional[Callable[[Sequence[Item], bool], None]] = None,
) -> RunResult:
    """Run ``items`` through ``pipeline``; see the module.

    ``before_work(todo, resuming)``: called once the items to do are known, before any is done
    (e.g. to choose the model's runtime only when there is work for it).
    """
    earlier = journal.earlier(overwrite) if journal is not None else {}
    records: dict[str, Record] = {}
    unreadable: list[Record] = []
    todo: list[Item] = []
    for item in items:
        previous = earlier.get(item.name)
        # A record without a fingerprint (a file that was not there) is checked again: it costs nothing.
        if previous is not None and previous.fingerprint is not None and previous.fingerprint == file_fingerprint(item.path):
            records[item.name] = previous
        elif item.problem is not None:
            unreadable.append(Record.failure(item.name, STAGE_FILE, item.problem))
        else:
            todo.append(item)
    resumed = len(records)
    if before_work is not None:
        before_work(todo, bool(earlier))
    if progress is not None:
        for count, record in enumerate(list(records.values()), 1):
            progress(record, count, len(items))

    with journal if journal is not None else _NoJournal() as log:

        def finish(record: Record) -> None:
            records[record.item] = record
            if record.fingerprint is not None:  # one without is checked again by a rerun anyway
                log.append(record)
            if progress is not None:
                progress(record, len(records), len(items))

        try:
            for record in unreadable:
                finish(record)
            if todo:
                pipeline(todo, finish)
        except KeyboardInterrupt as interrupt:
            # What is finished gets its outputs now, in input order; the journal stays, so the
            # same command continues.
            finished = [records[item.name] for item in items if item.name in records]
            outputs = write(finished, (len(finished), len(items))) if write is not None else {}
            raise Interrupted.after(interrupt, len(finished), len(items), outputs) from None

    ordered = [records[item.name] for item in items]
    outputs = write(ordered, None) if write is not None else {}
    if journal is not None:
        journal.finished()
    return RunResult(ordered, resumed, outputs)


class _NoJournal:
    """Stands in for the journal when nothing is saved."""

    def __enter__(self) -> "_NoJournal":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def append(self, record: Record) -> None:
        pass
