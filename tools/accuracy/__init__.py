"""Accuracy and cost of smbisect against `asv find`, on generated histories with a planted slowdown.

Run it through `python tools/bisect_accuracy.py` (see docs/accuracy.md). The parts:

- `history`: the history plan (pure), the cases of a run, and the repository writer;
- `scoring`: how a tool's answer counts, Wilson intervals, saved results (--jsonl);
- `load`: the bursty competing CPU load (--load);
- `run`: running smbisect and asv find on one repository;
- `tables`: the per-grid-point table and the overall summary;
- `cli`: the command line.
"""
