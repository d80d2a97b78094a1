"""The built-in default: a realistic SmallMind history with one planted MatMul regression.

The history is written from the installed smallmind sources and asv suite: a few commits build
the library up to a good release, then some forty commits of features, docs, tests, a softmax
speed-up, a memory improvement, a commit that breaks the import (fixed by the next one), and one
plausible-looking change that replaces the BLAS matmul with a hand-blocked loop "for cache
locality" -- the regression of the profiling report.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import git as gitpython

import smallmind

Tree = dict[str, str]

AUTHORS = [
    ("Ana Ruiz", "ana@smallmind.dev"),
    ("Ben Okafor", "ben@smallmind.dev"),
    ("Chen Wei", "chen@smallmind.dev"),
    ("Dana Levi", "dana@smallmind.dev"),
]

SLOW_SOFTMAX = '''def softmax(
    x: np.ndarray, axis: int = -1, out: np.ndarray | None = None
) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (the row maximum is subtracted first)."""
    moved = np.moveaxis(x, axis, -1)
    res = np.empty(moved.shape, dtype=x.dtype)
    rows_in = moved.reshape(-1, moved.shape[-1])
    rows_out = res.reshape(-1, moved.shape[-1])
    for i in range(rows_in.shape[0]):
        e = np.exp(rows_in[i] - rows_in[i].max())
        rows_out[i] = e / e.sum()
    result = np.moveaxis(res, -1, axis)
    if out is None:
        return np.ascontiguousarray(result)
    np.copyto(out, result)
    return out
'''

ALLOCATING_GELU = '''def gelu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """GELU, tanh approximation: ``0.5 x (1 + tanh(c (x + 0.044715 x^3)))``."""
    y = (0.5 * x * (1.0 + np.tanh(_GELU_C * (x + _GELU_A * x**3)))).astype(x.dtype)
    if out is None:
        return y
    np.copyto(out, y)
    return out
'''

BLOCKED_MATMUL = '''_TILE = 32


def _blocked_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """Tiled product: 32x32 tiles of both operands stay in L1 while they are reused."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
    if out is None:
        out = np.empty(batch + (n, m), dtype=np.result_type(a, b))
    a = np.broadcast_to(a, batch + (n, k))
    b = np.broadcast_to(b, batch + (k, m))
    out[...] = 0
    for i in range(0, n, _TILE):
        for j in range(0, m, _TILE):
            acc = out[..., i : i + _TILE, j : j + _TILE]
            for p in range(0, k, _TILE):
                acc += a[..., i : i + _TILE, p : p + _TILE] @ b[..., p : p + _TILE, j : j + _TILE]
    return out


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Matrix product ``a @ b`` (batched over leading dims), written into ``out`` if given.

    Blocked for cache locality instead of one large BLAS call.
    """
    _check_matmul(a, b)
    return _blocked_matmul(a, b, out)
'''


def replace_function(source: str, name: str, new_text: str) -> str:
    """Swap one top-level function (found with ast, decorators included) for new_text."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            end = node.end_lineno or node.lineno
            lines = source.splitlines(keepends=True)
            return "".join(lines[:start]) + new_text + "".join(lines[end:])
    raise ValueError(f"function {name} not found")


def _package_files(package: str) -> Tree:
    """Read a package's .py files without importing it (the suite sets BLAS env on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def suite_files() -> Tree:
    """The asv suite shipped with smbisect (the repository's benchmarks/ directory)."""
    return _package_files("bisect_tool.suite")


def smallmind_files() -> Tree:
    return _package_files(smallmind.__name__)


ASV_CONF = {
    "version": 1,
    "project": "smallmind",
    "project_url": "https://example.invalid/smallmind",
    "repo": ".",
    "branches": ["main"],
    "environment_type": "virtualenv",
    "build_command": ["python -m pip wheel --no-deps -w {build_cache_dir} {build_dir}"],
    "install_command": ["in-dir={env_dir} python -m pip install --no-deps {wheel_file}"],
    "matrix": {"req": {"numpy": [""], "threadpoolctl": [""]}},
    "benchmark_dir": "benchmarks",
    "env_dir": ".asv/env",
    "results_dir": ".asv/results",
    "html_dir": ".asv/html",
}

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "smallmind"
version = "{version}"
requires-python = ">=3.10"
dependencies = ["numpy>=1.24", "threadpoolctl>=3.1"]

[tool.setuptools]
packages = ["smallmind"]
"""

README = """# SmallMind

A small decoder-only transformer in numpy: kernels, a model, and a training loop.
"""

TOKENIZER = '''"""Character-level tokenizer for small corpora."""


class CharTokenizer:
    """Maps characters to ids in order of first appearance."""

    def __init__(self, text: str) -> None:
        self.vocab = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.vocab)}

    def encode(self, text: str) -> list[int]:
        return [self.index[ch] for ch in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)
'''

SCHEDULES = '''"""Learning-rate schedules."""

import math


def cosine_with_warmup(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warmup to peak, then cosine decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1.0 + math.cos(math.pi * min(1.0, progress)))
'''

METRICS = '''"""Evaluation metrics."""

import math


def perplexity(mean_cross_entropy: float) -> float:
    """exp of the mean cross-entropy (in nats)."""
    return math.exp(mean_cross_entropy)
'''

CI_YAML = """name: ci
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install -e . pytest && pytest -q
"""


def _edit(path: str, fn: Callable[[str], str]) -> Callable[[Tree], None]:
    def apply(tree: Tree) -> None:
        tree[path] = fn(tree.get(path, ""))

    return apply


def _put(path: str, text: str) -> Callable[[Tree], None]:
    return _edit(path, lambda _old: text)


def _append(path: str, text: str) -> Callable[[Tree], None]:
    return _edit(path, lambda old: old + text)


def _changelog(line: str) -> Callable[[Tree], None]:
    return _append("CHANGELOG.md", f"- {line}\n")


def _history(final: Tree, suite: Tree) -> tuple[list[tuple[str, Callable[[Tree], None]]], int, int]:
    """The commits, in order, and the indexes of the good release and the planted regression."""
    kernels = final["smallmind/kernels.py"]
    early_kernels = replace_function(
        replace_function(kernels, "softmax", SLOW_SOFTMAX), "gelu", ALLOCATING_GELU
    )
    sm = {k: v for k, v in final.items() if k.startswith("smallmind/")}

    def base(tree: Tree) -> None:
        tree.update(
            {
                "README.md": README,
                "pyproject.toml": PYPROJECT.format(version="0.1.0"),
                ".gitignore": "__pycache__/\n.asv/\n*.egg-info/\n",
            }
        )

    def library(tree: Tree) -> None:
        tree.update(sm)
        tree["smallmind/kernels.py"] = early_kernels

    def benchmarks(tree: Tree) -> None:
        tree.update({f"benchmarks/{k}": v for k, v in suite.items()})
        tree["asv.conf.json"] = json.dumps(ASV_CONF, indent=2) + "\n"

    fast_softmax = _edit(
        "smallmind/kernels.py",
        lambda s: replace_function(s, "softmax", _function_text(kernels, "softmax")),
    )
    inplace_gelu = _edit(
        "smallmind/kernels.py",
        lambda s: replace_function(s, "gelu", _function_text(kernels, "gelu")),
    )
    regression = _edit(
        "smallmind/kernels.py", lambda s: replace_function(s, "matmul", BLOCKED_MATMUL)
    )
    broken_init = _edit(
        "smallmind/__init__.py",
        lambda s: s.replace(
            "__version__", "from smallmind.metrics import perplexity\n\n__version__", 1
        ),
    )

    commits: list[tuple[str, Callable[[Tree], None]]] = [
        ("Initial commit: README, packaging", base),
        ("Add kernels, tensor ops, model, training loop", library),
        ("Add asv benchmark suite for kernels, model and memory", benchmarks),
        ("Add CHANGELOG", _put("CHANGELOG.md", "# Changelog\n\n## 0.1.0\n- First release\n")),
        ("Release 0.1.0", _changelog("Tagged 0.1.0")),
        # -- good release above; the range to bisect starts here --
        (
            "docs: describe small and medium configs",
            _append(
                "README.md",
                "\n## Configs\n\n`small`: 128 dim, 2 layers. `medium`: 256 dim, 4 layers.\n",
            ),
        ),
        ("Add character-level tokenizer", _put("smallmind/tokenizer.py", TOKENIZER)),
        (
            "tests: tokenizer round trip",
            _put(
                "tests/test_tokenizer.py",
                "from smallmind.tokenizer import CharTokenizer\n\n\ndef test_round_trip():\n"
                "    t = CharTokenizer('hello')\n"
                "    assert t.decode(t.encode('hello')) == 'hello'\n",
            ),
        ),
        ("ci: run the tests on push", _put(".github/workflows/ci.yml", CI_YAML)),
        ("Add learning-rate schedules", _put("smallmind/schedules.py", SCHEDULES)),
        (
            "docs: training quick start",
            _append(
                "README.md",
                "\n## Training\n\n"
                "`train_steps(model, data, steps, batch_size)` returns samples/s.\n",
            ),
        ),
        ("Vectorise softmax over rows (no Python loop)", fast_softmax),
        ("CHANGELOG: softmax speed-up", _changelog("softmax is vectorised: 10-30x faster")),
        (
            "schedules: clamp progress past the end",
            _edit(
                "smallmind/schedules.py",
                lambda s: s.replace("min(1.0, progress)", "min(1.0, max(0.0, progress))"),
            ),
        ),
        ("Export perplexity from the package", broken_init),
        ("Add missing metrics module", _put("smallmind/metrics.py", METRICS)),
        (
            "tests: schedules warm up linearly",
            _put(
                "tests/test_schedules.py",
                "from smallmind.schedules import cosine_with_warmup\n\n\ndef test_warmup():\n"
                "    assert cosine_with_warmup(0, 100, 10, 1.0) == 0.1\n",
            ),
        ),
        ("gelu: evaluate in place in the output buffer", inplace_gelu),
        (
            "CHANGELOG: gelu allocates nothing in steady state",
            _changelog("gelu no longer allocates temporaries"),
        ),
        (
            "docs: memory notes",
            _append(
                "README.md",
                "\n## Memory\n\nKernels accept `out=` buffers; the BufferPool reuses them.\n",
            ),
        ),
        (
            "tokenizer: document id order",
            _edit(
                "smallmind/tokenizer.py",
                lambda s: s.replace(
                    '"""Maps characters to ids in order of first appearance."""',
                    '"""Maps characters to ids (sorted, so ids are stable)."""',
                ),
            ),
        ),
        (
            "Bump version to 0.2.0.dev0",
            _edit(
                "pyproject.toml", lambda s: s.replace('version = "0.1.0"', 'version = "0.2.0.dev0"')
            ),
        ),
        (
            "docs: benchmark instructions",
            _append("README.md", "\n## Benchmarks\n\n`asv run --python=same --quick`\n"),
        ),
        (
            "tests: perplexity of a uniform model",
            _put(
                "tests/test_metrics.py",
                "import math\n\nfrom smallmind.metrics import perplexity\n\n\ndef test_uniform():\n"
                "    assert math.isclose(perplexity(math.log(7)), 7)\n",
            ),
        ),
        ("kernels: block matmul for cache locality", regression),
        ("CHANGELOG: blocked matmul", _changelog("matmul is blocked in 32x32 tiles for locality")),
        ("docs: fix typo in README", _edit("README.md", lambda s: s.replace("numpy:", "NumPy:"))),
        (
            "metrics: add bits-per-character",
            _append(
                "smallmind/metrics.py",
                "\n\ndef bits_per_char(mean_cross_entropy: float) -> float:\n"
                "    return mean_cross_entropy / math.log(2)\n",
            ),
        ),
        (
            "ci: cache pip downloads",
            _edit(
                ".github/workflows/ci.yml",
                lambda s: s.replace('python-version: "3.11"', 'python-version: "3.11", cache: pip'),
            ),
        ),
        (
            "tests: bits per character",
            _append(
                "tests/test_metrics.py",
                "\n\ndef test_bits():\n    from smallmind.metrics import bits_per_char\n"
                "    assert bits_per_char(math.log(2)) == 1.0\n",
            ),
        ),
    ]
    good_index = 4
    regression_index = next(i for i, (s, _) in enumerate(commits) if s.startswith("kernels: block"))
    return commits, good_index, regression_index


def _function_text(source: str, name: str) -> str:
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            return "".join(lines[start : node.end_lineno])
    raise ValueError(f"function {name} not found")


def _fillers(count: int) -> list[tuple[str, Callable[[Tree], None]]]:
    """Routine commits (notes, docs) to bring the history to the requested length."""
    topics = [
        "attention masking",
        "weight init",
        "AdamW defaults",
        "batching",
        "profiling",
        "numerical stability",
        "generation",
        "layer norm",
        "buffer pool",
        "datasets",
    ]
    out = []
    for i in range(count):
        topic = topics[i % len(topics)]
        out.append(
            (
                f"docs: notes on {topic}",
                _append(f"docs/notes/{topic.replace(' ', '-')}.md", f"Note {i + 1} on {topic}.\n"),
            )
        )
    return out


def build_demo_repository(root: Path, n_commits: int = 48) -> tuple[str, str]:
    """Write the demo history into root (a new git repository); return (good sha, planted sha)."""
    final = {f"smallmind/{k}": v for k, v in smallmind_files().items()}
    commits, good_index, regression_index = _history(final, suite_files())
    extra = max(0, n_commits - len(commits))
    fill = _fillers(extra)
    half = extra // 2
    # Routine commits go on both sides of the regression, so it does not sit at an edge.
    head, tail = commits[: regression_index - 2], commits[regression_index - 2 :]
    commits = head + fill[:half] + tail[:3] + fill[half:] + tail[3:]
    regression_index = len(head) + half + 2
    root.mkdir(parents=True, exist_ok=True)
    repo = gitpython.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "smbisect demo")
        cw.set_value("user", "email", "demo@smallmind.dev")
        cw.set_value("commit", "gpgsign", "false")
    tree: Tree = {}
    shas = []
    t0 = 1_769_900_000  # early February 2026, like the profiling report
    for i, (subject, change) in enumerate(commits):
        change(tree)
        for rel, text in tree.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
        name, email = AUTHORS[i % len(AUTHORS)]
        when = f"{t0 + i * 3600 * 5} +0000"
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_AUTHOR_DATE": when,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "GIT_COMMITTER_DATE": when,
        }
        repo.git.add("-A")
        with repo.git.custom_environment(**env):
            repo.git.commit("-q", "--no-verify", "--allow-empty", "-m", subject)
        shas.append(repo.head.commit.hexsha)
    repo.git.tag("v0.1.0", shas[good_index])
    return shas[good_index], shas[regression_index]
