"""The measurement cache under concurrent writers (issue 11): two processes saving samples for
the same keys at once lose none of them."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from bisect_tool.store import MeasurementStore


def _writer(path: str, tag: float, rounds: int) -> None:
    store = MeasurementStore(Path(path))
    for i in range(rounds):
        store.add("shared", [tag + i / 1000], 1)
        store.add(f"own-{tag}", [float(i)], 1)
        store.save()


def test_two_processes_saving_at_once_lose_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), tag, 150)) for tag in (1.0, 2.0)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    entries = json.loads(path.read_text())["entries"]
    shared = entries["shared"]["samples"]
    assert len(shared) == 300 and entries["shared"]["rounds"] == 300
    assert sorted(shared) == sorted(
        [1.0 + i / 1000 for i in range(150)] + [2.0 + i / 1000 for i in range(150)]
    )
    assert len(entries["own-1.0"]["samples"]) == 150 and len(entries["own-2.0"]["samples"]) == 150


def test_a_run_appends_to_what_another_saved_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    first = MeasurementStore(path)
    second = MeasurementStore(path)  # both read the empty file
    first.add("k", [1.0, 2.0], 1)
    first.save()
    second.add("k", [3.0], 1)
    second.save()
    again = MeasurementStore(path)
    assert sorted(again.get("k").samples) == [1.0, 2.0, 3.0]
    assert again.get("k").rounds == 2
    # saving again adds nothing twice
    second.save()
    assert sorted(MeasurementStore(path).get("k").samples) == [1.0, 2.0, 3.0]


def test_failures_are_not_saved_and_fresh_runs_can_ignore_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    store = MeasurementStore(path)
    store.add("ok", [1.0], 1)
    store.fail("broken", "command exited 1")
    store.save()
    reread = MeasurementStore(path)
    assert reread.get("broken").error is None and reread.get("ok").samples == [1.0]
    fresh = MeasurementStore(path, read_existing=False)
    assert fresh.get("ok").samples == []
    fresh.add("ok", [2.0], 1)
    fresh.save()
    assert sorted(MeasurementStore(path).get("ok").samples) == [1.0, 2.0]
