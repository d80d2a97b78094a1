"""Presentation: progress lines, terminal tables (tabulate), Markdown and JSON of a session."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from . import stats, waterfall_report
from .formatting import fmt_value
from .git import clean_text
from .judge import THREADS
from .session import BenchmarkOutcome, CheckResult, Event, SessionResult
from .stats import Verdict

_ROLE_ROW = {"good": "good", "bad": "bad", "parent": "confirmation", "merge base": "confirmation"}


def format_event(event: Event, verbose: int = 0) -> str | None:
    """One progress line for the terminal, or None when the event is not worth a line."""
    line = _format_event(event, verbose)
    return None if line is None else clean_text(line)


def _format_event(event: Event, verbose: int = 0) -> str | None:
    d = event.data
    if event.kind == "step":
        rec = d["record"]
        samples = d["samples"]
        good = d["good"]
        verdict = d["verdict"]
        name = str(d["benchmark"])
        if not samples:
            return (
                f"  step {d['k']} of ~{d['bound']}  {rec.info.short}  {rec.info.subject[:50]:50}"
                f"  -> {verdict.value}: {rec.error}"
            )
        med = stats.median(samples)
        ratio = med / stats.median(good) if good and stats.median(good) else math.nan
        return (
            f"  step {d['k']} of ~{d['bound']}  {rec.info.short}  {rec.info.subject[:50]:50}"
            f"  median {fmt_value(med, str(d.get('unit', '')))} ({ratio:.2f}x good, "
            f"n={len(samples)})  -> {verdict.value}"
            + (f"  on {d['worker']}" if d.get("worker") else "")
            + (f"  [{name}]" if verbose else "")
        )
    if event.kind == "references":
        return None
    if event.kind == "more" and verbose < 1:
        return None
    return event.message


def reference_table(outcomes: Sequence[BenchmarkOutcome]) -> str:
    rows = []
    for o in outcomes:
        c = o.reference
        rows.append(
            [
                o.spec.name,
                f"{c.n_base}/{c.n_other}",
                f"{c.ratio:.3f}x" if not math.isnan(c.ratio) else "n/a",
                f"[{c.ci_low:.3f}, {c.ci_high:.3f}]" if not math.isnan(c.ci_low) else "",
                f"{c.p_value:.2g}",
                _endpoint_word(o),
            ]
        )
    return tabulate(
        rows, headers=["benchmark", "runs good/bad", "bad/good", "95% CI", "p", "endpoints"]
    )


def _endpoint_word(o: BenchmarkOutcome) -> str:
    if o.reproduces:
        return "REGRESSED"
    if o.status == "inconclusive":
        return "INCONCLUSIVE (too noisy)"
    if o.notes and o.notes[0]:
        return "no result: " + o.notes[0]
    return "no regression"


def noise_advice(result: SessionResult, o: BenchmarkOutcome) -> list[str]:
    """What an inconclusive verdict means, the noise behind it, and what to do about it."""
    lines = [f"{o.spec.name}: inconclusive, the machine is too noisy to tell. {o.reason}."]
    if o.noise is not None and math.isfinite(o.noise.sigma):
        per = ", ".join(
            f"{sha[:10]} {cv:.1%}"
            for sha, cv in o.noise.per_commit.items()
            if sha in (result.good, result.bad)
        )
        lines.append(f"  noise: {o.noise.sigma:.1%} per run (CV of the runs: {per})")
    load = result.account.load
    if load:
        lines.append(f"  load average while measuring: {min(load):.2f} to {max(load):.2f}")
    threads = (
        ""
        if result.one_thread
        else "; a benchmark that runs threads (numpy/BLAS, OpenMP) varies far less on a busy "
        f"machine with {THREADS} set for smbisect (--threads one)"
    )
    lines.append(
        "  to decide it: give it more time (--max-time-per-commit), stop other work on the "
        f"machine, or for a CPU-bound --cmd use --metric cputime{threads}"
    )
    return lines


def runs_lines(result: SessionResult) -> list[str]:
    """Where the runs went, next to what a plain `git bisect run` would need."""
    acc = result.account
    if not acc.runs:
        return []
    roles = {"good": 0, "bad": 0, "steps": 0, "confirmation": 0}
    for sha, n in acc.runs.items():
        rec = result.commits.get(sha)
        role = rec.role if rec else "step"
        key = _ROLE_ROW.get(role, "steps")
        roles[key] += n
    where = ", ".join(f"{k} {v}" for k, v in roles.items() if v)
    per = sorted(acc.runs.values())
    load = (
        f" Load average while measuring: {min(acc.load):.2f} to {max(acc.load):.2f}."
        if acc.load
        else ""
    )
    workers = _workers(result)
    machines = (
        f" Measured on {len(workers)} Dask workers ({', '.join(workers)}), each against good "
        f"and bad measured on itself; {result.rounds} measurement rounds."
        if workers
        else ""
    )
    return [
        f"Runs: {acc.total_runs} benchmark runs ({where}) at {len(acc.runs)} commits, "
        f"{per[len(per) // 2]} per commit (median), {acc.total_seconds:.1f} s measuring; "
        f"a plain git bisect run with a hand-picked threshold needs {result.plain_bisect_runs} "
        f"(ceil(log2 N) + 1).{_answer(result)}{load}{machines}"
    ]


def _answer(result: SessionResult) -> str:
    """When the culprit was known, if the check of the rest of the range cost more runs."""
    if not result.answer or result.answer[0] >= result.account.total_runs:
        return ""
    runs, seconds = result.answer
    return (
        f" The culprit was confirmed after {runs} runs ({seconds:.1f} s into the run); the "
        "rest checked the range for other changes (--no-attribution skips that)."
    )


def _workers(result: SessionResult) -> list[str]:
    return sorted({w for per in result.workers.values() for w in per})


def _ordered_commits(result: SessionResult) -> list[str]:
    """good, then the range oldest-first in topological order (what git bisect walks)."""
    order = [result.good, *result.range_commits]
    return [sha for sha in order if sha in result.commits]


def steps_table(result: SessionResult, outcome: BenchmarkOutcome, fmt: str = "simple") -> str:
    name = outcome.spec.name
    good = result.samples.get(result.good, {}).get(name, [])
    g = stats.median(good) if good else math.nan
    others = {
        c.sha: c
        for c in (outcome.waterfall.changes if outcome.waterfall else ())
        if c.sha and not c.primary
    }
    rows = []
    for sha in _ordered_commits(result):
        rec = result.commits[sha]
        samples = result.samples.get(sha, {}).get(name, [])
        verdict = rec.verdicts.get(name)
        if sha == outcome.culprit:
            label = "CULPRIT (bad)" if outcome.confirmed else "culprit? (not confirmed)"
        elif sha in others:
            c = others[sha]
            label = f"{c.kind.upper()} {c.ratio:.3g}x" + ("" if c.confirmed else "?")
        elif verdict is Verdict.SKIP:
            label = f"skip: {rec.reasons.get(name, '')[:60]}"
        elif verdict is not None:
            label = verdict.value
        else:
            label = rec.role
        if not samples and verdict is None and rec.role not in ("good", "bad"):
            continue
        med = stats.median(samples) if samples else math.nan
        subject = rec.info.subject[:48]
        rows.append(
            [
                rec.info.short,
                subject.replace("|", "\\|") if fmt == "github" else subject,
                fmt_value(med, outcome.spec.unit) if samples else "-",
                f"{med / g:.3f}x" if samples and g else "-",
                len(samples),
                label,
            ]
        )
    return tabulate(
        rows, headers=["commit", "subject", "median", "vs good", "n", "verdict"], tablefmt=fmt
    )


def culprit_lines(result: SessionResult, outcome: BenchmarkOutcome) -> list[str]:
    name = outcome.spec.name
    lines = []
    if outcome.culprit:
        info = result.commits[outcome.culprit].info
        status = "confirmed" if outcome.confirmed else "NOT CONFIRMED"
        lines.append(f"Culprit for {name} ({status}):")
        lines.append(f"  commit  {info.sha}")
        lines.append(f"  author  {info.author}")
        lines.append(f"  date    {info.date}")
        lines.append(f"  subject {info.subject}")
        lines.append(f"  files   {', '.join(info.files) or '(none)'}")
        c = outcome.confirmation
        if c is not None:
            lines.append(
                f"  slowdown over its parent: {c.ratio:.3f}x "
                f"(95% CI {c.ci_low:.3f}-{c.ci_high:.3f}, p={c.p_value:.2g}, "
                f"n={c.n_base}+{c.n_other}, measured interleaved)"
            )
    else:
        lines.append(f"No single culprit for {name}: the first bad commit is one of")
        for sha in outcome.candidates:
            info = result.commits[sha].info
            rec = result.commits[sha]
            why = rec.reasons.get(name, "") if rec.verdicts.get(name) is Verdict.SKIP else ""
            lines.append(f"  {info.sha}  {info.subject}" + (f"   (skipped: {why})" if why else ""))
    bound = result.log2_bound
    lines.append(
        f"  steps: {len(outcome.steps)} bisect steps for {len(result.range_commits)} "
        f"commits (ceil(log2 N) = {bound})"
        + (
            f", in {outcome.rounds} rounds on {len(_workers(result))} workers"
            if outcome.rounds
            else ""
        )
    )
    lines.extend(f"  note: {n}" for n in outcome.notes if n)
    return lines


METRIC_WORDS = {
    "time": "wall time",
    "cputime": "CPU time (user + system) of the process tree",
    "stdout": "the last number the command prints",
    "instructions": "instructions executed, counted under valgrind",
    "cycles": "estimated cycles (instructions, cache misses, mispredictions) under valgrind",
}


def metric_lines(result: SessionResult) -> list[str]:
    """Which metric the verdicts are by, when the caller said."""
    if result.metric is None:
        return []
    return [f"Metric: {result.metric} ({METRIC_WORDS.get(result.metric, result.metric)})", ""]


def terminal_report(result: SessionResult) -> str:
    parts = [
        "",
        *metric_lines(result),
        "Endpoints (good vs bad):",
        reference_table(result.outcomes),
    ]
    parts.append("")
    for o in result.inconclusive:
        parts.extend(noise_advice(result, o))
        parts.append("")
    if not result.bisected and not result.inconclusive:
        parts.append(
            "No benchmark is worse at bad than at good beyond the threshold and the "
            "noise: nothing to bisect."
        )
        parts.append("")
    for o in result.bisected:
        parts.append(f"Commits measured for {o.spec.name}:")
        parts.append(steps_table(result, o))
        parts.append("")
        parts.extend(culprit_lines(result, o))
        parts.append("")
        if o.waterfall is not None:
            parts.extend(waterfall_report.lines(result, o))
            parts.append("")
        if o.bisect_log:
            parts.append("git bisect log:")
            parts.extend("  " + ln for ln in o.bisect_log.splitlines())
            parts.append("")
        for c in o.waterfall.changes if o.waterfall else ():
            if c.bisect_log and not c.primary:
                parts.append(f"git bisect log of {c.low[:10]}..{c.high[:10]}:")
                parts.extend("  " + ln for ln in c.bisect_log.splitlines())
                parts.append("")
    shared = waterfall_report.shared_lines(result)
    if shared:
        parts.extend([*shared, ""])
    if result.skipped:
        parts.append("Skipped commits:")
        for sha, why in result.skipped.items():
            parts.append(f"  {sha[:10]}  {why}")
        parts.append("")
    parts.extend(f"Note: {a}" for a in result.advice)
    parts.extend(runs_lines(result))
    parts.append(f"Wall time: {result.wall_seconds:.1f} s")
    return clean_text("\n".join(parts))


def to_json(result: SessionResult) -> dict[str, Any]:
    def verdict_of(rec_verdicts: dict[str, Verdict]) -> dict[str, str]:
        return {k: v.value for k, v in rec_verdicts.items()}

    def primary_entry(o: BenchmarkOutcome) -> dict[str, Any]:
        c = o.confirmation
        return {
            "benchmark": o.spec.name,
            "sha": o.culprit,
            "ratio": c.ratio if c else None,
            "ci": [c.ci_low, c.ci_high] if c else None,
            "p_value": c.p_value if c else None,
            "confirmed": o.confirmed,
            "candidates": o.candidates,
            "steps": len(o.steps),
            "notes": o.notes,
            "commit": _info_dict(result, o.culprit) if o.culprit else None,
            "bisect_log": o.bisect_log,
        }

    culprits = waterfall_report.culprit_entries(
        result, lambda sha: _info_dict(result, sha), primary_entry
    )
    steps = []
    for sha in _ordered_commits(result):
        rec = result.commits[sha]
        steps.append(
            {
                "sha": sha,
                "subject": rec.info.subject,
                "role": rec.role,
                "samples": result.samples.get(sha, {}),
                "verdict": verdict_of(rec.verdicts),
                "error": rec.error,
                "worker": dict(rec.workers),  # benchmark -> the Dask worker that judged it
                "runs_per_worker": result.workers.get(sha, {}),
            }
        )
    return {
        "good": result.good,
        "bad": result.bad,
        "commits_in_range": len(result.range_commits),
        "log2_bound": result.log2_bound,
        "exit_code": result.exit_code,
        "wall_seconds": round(result.wall_seconds, 3),
        "endpoints": [
            {
                "benchmark": o.spec.name,
                "unit": o.spec.unit,
                "ratio": _num(o.reference.ratio),
                "ci": [_num(o.reference.ci_low), _num(o.reference.ci_high)],
                "p_value": o.reference.p_value,
                "regressed": o.reproduces,
                "status": o.status,
                "reason": o.reason,
                "runs": [o.reference.n_base, o.reference.n_other],
                "noise": None
                if o.noise is None
                else {"per_run": _num(o.noise.sigma), "per_commit": o.noise.per_commit},
            }
            for o in result.outcomes
        ],
        "culprits": culprits,
        "advice": list(result.advice),
        # --threads, and whether the benchmark processes ran with one thread per library
        "threads": {"setting": result.threads, "one_thread": result.one_thread},
        "metric": result.metric,
        "time_check": [c.to_json() for c in result.time_checks],
        "waterfall": waterfall_report.waterfall_json(result),
        "shared_culprits": {
            sha: [name for name, _ in items]
            for sha, items in waterfall_report.shared_culprits(result).items()
        },
        "steps": steps,
        "skipped": [{"sha": s, "error": e} for s, e in result.skipped.items()],
        "rounds": result.rounds,
        "workers": sorted({w for per in result.workers.values() for w in per}),
        "runs": {
            "total": result.account.total_runs,
            "per_commit": dict(result.account.runs),
            "plain_bisect": result.plain_bisect_runs,
            "seconds": round(result.account.total_seconds, 3),
            "seconds_per_commit": {k: round(v, 3) for k, v in result.account.seconds.items()},
            # when the first culprits were confirmed, before attribution checked the rest
            "to_culprit": result.answer[0] if result.answer else None,
            "seconds_to_culprit": round(result.answer[1], 3) if result.answer else None,
        },
        "load_average": (
            {
                "min": min(result.account.load),
                "max": max(result.account.load),
                "mean": sum(result.account.load) / len(result.account.load),
            }
            if result.account.load
            else None
        ),
    }


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else x


def _info_dict(result: SessionResult, sha: str) -> dict[str, Any]:
    info = result.commits[sha].info
    return {
        "sha": info.sha,
        "author": info.author,
        "date": info.date,
        "subject": info.subject,
        "files": list(info.files),
        "parents": list(info.parents),
    }


def to_markdown(result: SessionResult) -> str:
    parts = [f"# smbisect report: {result.good[:10]}..{result.bad[:10]}", ""]
    parts += [
        f"{len(result.range_commits)} commits in range; ceil(log2 N) = {result.log2_bound}; "
        f"wall time {result.wall_seconds:.1f} s.",
        "",
    ]
    parts += ["## Endpoints", "", *metric_lines(result)]
    parts += ["```", reference_table(result.outcomes), "```", ""]
    for o in result.inconclusive:
        parts += ["```", *noise_advice(result, o), "```", ""]
    if result.advice:
        parts += [*(f"> {a}" for a in result.advice), ""]
    if result.account.runs:
        parts += ["## Runs", "", *runs_lines(result), ""]
        parts += [runs_table(result), ""]
    for o in result.bisected:
        parts += [f"## {o.spec.name}", ""]
        parts += ["```", *culprit_lines(result, o), "```", ""]
        if o.waterfall is not None:
            parts += ["### Waterfall", "", waterfall_report.table(result, o, fmt="github"), ""]
            parts += [
                f"- not attributed: `{low[:10]}..{high[:10]}` ({why})"
                for low, high, why in o.waterfall.open_segments
            ]
            if o.waterfall.open_segments:
                parts.append("")
        parts += ["### Commits measured", "", steps_table(result, o, fmt="github"), ""]
        if o.bisect_log:
            parts += ["### git bisect log", "", "```", o.bisect_log, "```", ""]
    shared = waterfall_report.shared_lines(result)
    if shared:
        parts += ["## Shared culprits", "", "```", *shared, "```", ""]
    if result.skipped:
        parts += ["## Skipped commits", ""]
        parts += [f"- `{sha[:10]}`: {why}" for sha, why in result.skipped.items()]
        parts.append("")
    return clean_text("\n".join(parts))


def runs_table(result: SessionResult) -> str:
    rows = []
    for sha in _ordered_commits(result):
        n = result.account.runs.get(sha, 0)
        if n:
            rec = result.commits[sha]
            secs = result.account.seconds.get(sha, 0.0)
            rows.append([rec.info.short, rec.role, n, f"{secs:.1f}"])
    return tabulate(rows, headers=["commit", "role", "runs", "seconds"], tablefmt="github")


def _finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: they become null; strings become valid UTF-8."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, str):
        return clean_text(obj)
    if isinstance(obj, dict):
        return {clean_text(str(k)): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(result: SessionResult, path: Path) -> None:
    path.write_text(
        json.dumps(_finite(to_json(result)), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )


def check_table(result: CheckResult) -> str:
    rows = []
    for spec, comp, verdict, why in result.rows:
        rows.append(
            [
                spec.name,
                f"{comp.ratio:.3f}x" if comp else "-",
                f"{comp.p_value:.2g}" if comp else "-",
                f"{comp.n_base}/{comp.n_other}" if comp else "-",
                verdict.value,
                why,
            ]
        )
    head = f"{result.commit[:10]} against {result.baseline[:10]}:"
    table = tabulate(rows, headers=["benchmark", "vs good", "p", "n", "verdict", "why"])
    return clean_text(f"{head}\n{table}")
