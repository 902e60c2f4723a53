"""scripts/ship_model.py: the wall time its model cards report from a run's log.jsonl."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ship_model():
    spec = importlib.util.spec_from_file_location("ship_model", ROOT / "scripts" / "ship_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, entries: list[dict]) -> Path:
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return tmp_path


def test_a_clock_kept_across_resume_is_not_counted_twice(tmp_path: Path) -> None:
    # checkpoint at step 100 (elapsed 200); the session went on to step 150 (300 s) and was killed; the
    # resumed run logs step 150 again from the checkpoint's clock, then finishes at step 200
    log = [{"step": 50, "elapsed": 100.0}, {"step": 100, "elapsed": 200.0}, {"step": 150, "elapsed": 300.0},
           {"step": 150, "elapsed": 290.0}, {"step": 200, "elapsed": 390.0}]
    assert _ship_model().wall_time(_run(tmp_path, log)) == (200, 390.0)


def test_a_clock_restarted_at_each_session_is_added_up(tmp_path: Path) -> None:
    # older logs: each session's clock started at 0
    log = [{"step": 50, "elapsed": 100.0}, {"step": 100, "elapsed": 200.0}, {"step": 150, "elapsed": 300.0},
           {"step": 150, "elapsed": 90.0}, {"step": 200, "elapsed": 190.0},
           {"step": 250, "elapsed": 80.0}, {"step": 300, "elapsed": 160.0}]
    assert _ship_model().wall_time(_run(tmp_path, log)) == (300, 300.0 + 190.0 + 160.0)


def test_a_run_without_times_reports_none(tmp_path: Path) -> None:
    assert _ship_model().wall_time(_run(tmp_path, [{"step": 10}, {"step": 20}])) == (20, None)
