"""Run the real asv suite (quick mode, current interpreter) and check every benchmark
produced a number.  The repo is left untouched: results/html/env dirs, the machine file
(via HOME) and the config copy all live under tmp_path."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

EXPECTED: dict[str, int] = {  # benchmark name -> number of parameter combinations
    "kernels.MatMul.time_matmul": 4,
    "kernels.MatMulBackward.time_matmul_backward": 1,
    "kernels.Gelu.time_gelu": 1,
    "kernels.Softmax.time_softmax": 4,
    "kernels.TensorOps.time_add": 1,
    "kernels.TensorOps.time_multiply": 1,
    "kernels.TensorOps.time_broadcast": 1,
    "model.ModelCreation.time_create_small": 1,
    "model.ModelCreation.time_create_medium": 1,
    "model.Inference.time_inference_small": 1,
    "model.Inference.time_inference_medium": 1,
    "model.Training.track_training_throughput": 1,
    "model.Generation.track_generation_tokens_per_s": 1,
    "memory.Memory.peakmem_medium_inference": 1,
    "memory.Memory.peakmem_training_step": 1,
    "memory.Memory.track_matmul_backward_alloc_bytes": 1,
    "memory.Memory.track_training_alloc_bytes": 1,
}


def _asv(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asv", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_asv_quick_run_produces_every_benchmark(tmp_path):
    from asv import util
    from asv.results import iter_results

    conf = util.load_json(str(REPO / "asv.conf.json"), js_comments=True)
    conf.update(
        repo=str(REPO),
        benchmark_dir=str(REPO / "benchmarks"),
        results_dir=str(tmp_path / "results"),
        html_dir=str(tmp_path / "html"),
        env_dir=str(tmp_path / "env"),
    )
    conf_path = tmp_path / "asv.conf.json"
    conf_path.write_text(json.dumps(conf))
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    env = dict(os.environ, HOME=str(tmp_path), PYTHONPATH=str(REPO))

    for args in (
        ["machine", "--yes", "--config", str(conf_path)],
        ["check", "--python=same", "--config", str(conf_path)],
        [
            "run",
            "--quick",
            "--python=same",
            "--show-stderr",
            "--set-commit-hash",
            commit,
            "--config",
            str(conf_path),
        ],
    ):
        proc = _asv(args, env)
        assert proc.returncode == 0, f"asv {args[0]} failed:\n{proc.stdout}\n{proc.stderr}"

    found: dict[str, list] = {}
    for res in iter_results(str(tmp_path / "results")):
        assert res.commit_hash == commit
        for key in res.get_all_result_keys():
            found[key] = res.get_result_value(key, res.get_result_params(key))
    missing = sorted(set(EXPECTED) - set(found))
    assert not missing, f"no results for {missing}"
    for name, n_params in EXPECTED.items():
        values = found[name]
        values = values if isinstance(values, list) else [values]
        assert len(values) == n_params, (name, values)
        for v in values:
            assert isinstance(v, int | float) and math.isfinite(v) and v > 0, (name, values)
