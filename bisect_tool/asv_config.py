"""The asv config as asv reads it, found where the ecosystem keeps it, and the project layout.

asv reads `asv.conf.json` with its own JSON reader (comments and trailing commas allowed) and
resolves `repo`, `benchmark_dir`, `env_dir`, `results_dir` and `html_dir` against the config
file's directory (asv chdirs there). numpy keeps the file in `benchmarks/`, pandas and xarray
in `asv_bench/`, both with `"repo": ".."`. This module finds that file at the suite revision,
loads it through asv, resolves its paths the way asv does, and describes the project at a
commit: where its code imports from (flat, `src/`, `repo_subdir`, declared package dirs) and
whether it needs a build before its code can run (compiled extensions).
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import EnvironmentProblem, UsageError
from .git import GitRepo

try:  # Python 3.11+
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    _toml = None  # type: ignore[assignment]

CONFIG_NAMES = ("asv.conf.json", "asv.conf.jsonc")  # what asv itself looks for
PATH_KEYS = ("repo", "benchmark_dir", "env_dir", "results_dir", "html_dir")


# -- loading ---------------------------------------------------------------------------------


def load_asv_config(raw: str, name: str) -> tuple[dict[str, Any], Any]:
    """(the raw settings, asv's Config object with its defaults), read by asv's own loader.

    Errors are asv's own messages (missing repo, bad version, JSON syntax), as one line."""
    from asv import util as asv_util
    from asv.config import Config

    with tempfile.TemporaryDirectory(prefix="smbisect-conf-") as tmp:
        path = os.path.join(tmp, "asv.conf.json")
        Path(path).write_text(raw, encoding="utf-8")
        try:
            data = asv_util.load_json(path, js_comments=True)
            if not isinstance(data, dict):
                raise UsageError(f"asv config {name} is not a JSON object")
            conf = Config.load(path)
        except UsageError:
            raise
        except Exception as exc:  # asv's UserError, json5's ValueError
            message = " ".join(str(exc).replace(path, name).split())
            raise UsageError(f"cannot read asv config {name}: {message}") from None
    return data, conf


@dataclass(frozen=True)
class AsvConfig:
    """One asv config file of the repository and its settings."""

    rel_path: str  # repository-relative, posix ("asv_bench/asv.conf.json")
    data: dict[str, Any]  # the file's own settings, as asv's reader returns them
    conf: Any = field(repr=False)  # asv.config.Config: the settings with asv's defaults
    from_worktree: bool = False  # read from the working tree (not tracked at the suite rev)
    how: str = ""  # how it was found, for the note saying which config is used

    @property
    def conf_dir(self) -> str:
        """The config's directory, repository-relative ("" for the root)."""
        return posixpath.dirname(self.rel_path)

    def setting(self, key: str) -> Any:
        return getattr(self.conf, key, None)

    def absolute(self, root: Path, key: str) -> Path:
        """A path setting resolved as asv resolves it: against the config's directory."""
        value = os.path.expanduser(str(self.setting(key)))
        return Path(os.path.normpath(root / self.conf_dir / value))

    def repo_relative(self, root: Path, key: str) -> str | None:
        """The path setting relative to the repository root, or None if it lies outside."""
        try:
            rel = self.absolute(root, key).relative_to(root)
        except ValueError:
            return None
        return rel.as_posix() if rel.parts else ""

    def describe(self) -> str:
        where = " (working tree, not committed)" if self.from_worktree else ""
        return f"{self.rel_path}{where}{f', {self.how}' if self.how else ''}"


# -- finding ---------------------------------------------------------------------------------


def tracked_files(repo: GitRepo, sha: str) -> list[str]:
    """Every file path at a commit (what `git ls-files` shows for a checkout of it)."""
    out = repo.repo.git.ls_tree("-r", "--name-only", "-z", "--full-tree", sha)
    return [n for n in out.split("\0") if n]


def find_config(
    repo: GitRepo,
    sha: str,
    rev_label: str,
    given: str | None,
    cwd: Path | None = None,
    files: list[str] | None = None,
) -> AsvConfig:
    """The asv config to use: `--config` (relative to the current directory, or to the
    repository root), else the nearest one from the current directory up, else the root's,
    else the only one `git ls-files` shows in any subdirectory at the suite revision."""
    root = repo.root
    here = _inside(root, (cwd or Path.cwd()).resolve())
    tracked = set(files if files is not None else tracked_files(repo, sha))
    if given:
        return _given_config(repo, sha, rev_label, given, here, tracked)
    if here:  # running from the config's directory (or below it)
        parts = PurePosixPath(here).parts
        for depth in range(len(parts), 0, -1):
            found = _config_in(repo, "/".join(parts[:depth]), tracked, rev_label)
            if found:
                return _read(repo, sha, found, tracked, "found from the current directory")
    found = _config_in(repo, "", tracked, rev_label)
    if found:
        return _read(repo, sha, found, tracked, "")
    candidates = sorted(p for p in tracked if posixpath.basename(p) in CONFIG_NAMES)
    if len(candidates) == 1:
        return _read(repo, sha, candidates[0], tracked, f"the only asv config at {rev_label}")
    if len(candidates) > 1:
        shown = ", ".join(candidates[:6]) + (", ..." if len(candidates) > 6 else "")
        raise UsageError(
            f"{len(candidates)} asv configs at {rev_label} ({shown}); choose one with --config "
            "or run from its directory"
        )
    raise UsageError(
        f"no asv config 'asv.conf.json' in {root} or any subdirectory at {rev_label} "
        "(use --config, or --cmd for a plain command)"
    )


def _inside(root: Path, path: Path) -> str | None:
    """path relative to root (posix), None when outside or at the root itself."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def _config_in(repo: GitRepo, directory: str, tracked: set[str], rev_label: str) -> str | None:
    """The config file of one directory (tracked, else in the working tree), like asv's
    own lookup: asv.conf.json or asv.conf.jsonc, and an error if both are there."""
    names = [posixpath.join(directory, n) for n in CONFIG_NAMES]
    present = [n for n in names if n in tracked]
    if not present:
        present = [n for n in names if (repo.root / n).is_file()]
    if len(present) > 1:
        raise UsageError(
            f"both {present[0]} and {present[1]} exist at {rev_label}; choose one with --config"
        )
    return present[0] if present else None


def _given_config(
    repo: GitRepo, sha: str, rev_label: str, given: str, here: str | None, tracked: set[str]
) -> AsvConfig:
    root = repo.root
    bases = [root / here] if here else []
    bases.append(root)
    candidates: list[str] = []
    for base in bases:
        path = Path(os.path.normpath(base / os.path.expanduser(given)))
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:  # a config kept outside the repository: read from disk
            if path.is_dir() and (path / CONFIG_NAMES[0]).is_file():
                path = path / CONFIG_NAMES[0]
            if path.is_file():
                return _read(repo, sha, str(path), tracked, "--config, outside the repository")
            continue
        rel = "" if rel == "." else rel
        if rel not in tracked and not (root / rel).is_file():  # a directory holding one
            rel = _config_in(repo, rel, tracked, rev_label) or rel
        candidates.append(rel)
    if not candidates:
        raise UsageError(f"no asv config {given!r} (not in the repository {root})")
    for rel in candidates:
        if rel in tracked:
            return _read(repo, sha, rel, tracked, "--config")
    for rel in candidates:
        if rel and (root / rel).is_file():
            return _read(repo, sha, rel, tracked, "--config")
    raise UsageError(f"no asv config {given!r} in {root} at {rev_label}")


def _read(repo: GitRepo, sha: str, rel: str, tracked: set[str], how: str) -> AsvConfig:
    if rel in tracked:
        raw = repo.read_file_at(sha, rel)
        from_worktree = False
    else:
        raw = None
    if raw is None:
        try:
            raw = (repo.root / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read asv config {rel}: {exc}") from None
        from_worktree = True
    data, conf = load_asv_config(raw, rel)
    return AsvConfig(rel, data, conf, from_worktree, how)


# -- the project at a commit -----------------------------------------------------------------

Reader = Callable[[str], "str | None"]


def declared_package_dirs(read: Reader) -> list[str]:
    """Directories the packaging metadata says the packages live in (relative to the project
    directory): setuptools package-dir / packages.find where (pyproject.toml, setup.cfg),
    hatch wheel packages, poetry `from`."""
    out: list[str] = []
    pyproject = _toml_of(read("pyproject.toml"))
    tool = pyproject.get("tool", {}) if isinstance(pyproject, dict) else {}
    st = tool.get("setuptools", {}) if isinstance(tool, dict) else {}
    if isinstance(st, dict):
        pkg_dir = st.get("package-dir", {})
        if isinstance(pkg_dir, dict) and isinstance(pkg_dir.get(""), str):
            out.append(pkg_dir[""])
        packages = st.get("packages", {})
        find = packages.get("find", {}) if isinstance(packages, dict) else {}
        where = find.get("where", []) if isinstance(find, dict) else []
        out += [w for w in where if isinstance(w, str)]
    hatch = tool.get("hatch", {}) if isinstance(tool, dict) else {}
    wheel = hatch.get("build", {}).get("targets", {}).get("wheel", {}) if hatch else {}
    if isinstance(wheel, dict):
        for pkg in wheel.get("packages", []) or []:
            if isinstance(pkg, str) and "/" in pkg.strip("/"):
                out.append(posixpath.dirname(pkg.strip("/")))
    poetry = tool.get("poetry", {}) if isinstance(tool, dict) else {}
    if isinstance(poetry, dict):
        for pkg in poetry.get("packages", []) or []:
            if isinstance(pkg, dict) and isinstance(pkg.get("from"), str):
                out.append(pkg["from"])
    setup_cfg = read("setup.cfg") or ""
    m = re.search(r"^\s*package_dir\s*=\s*(?:\n\s+)?=\s*([\w./-]+)", setup_cfg, re.M)
    if m:
        out.append(m.group(1))
    m = re.search(r"^\s*where\s*=\s*([\w./-]+)", setup_cfg, re.M)
    if m:
        out.append(m.group(1))
    clean: list[str] = []
    for d in out:
        d = posixpath.normpath(d.strip())
        if d not in (".", "") and not d.startswith("..") and d not in clean:
            clean.append(d)
    return clean


def import_roots(worktree: Path, subdir: str = "") -> list[Path]:
    """Where the commit's code imports from with --python same: the declared package dirs,
    `src/`, then the project directory itself (flat layout); all inside the worktree."""
    base = worktree / subdir if subdir else worktree

    def read(rel: str) -> str | None:
        try:
            return (base / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    roots: list[Path] = []
    for rel in [*declared_package_dirs(read), "src"]:
        if (base / rel).is_dir() and base / rel not in roots:
            roots.append(base / rel)
    roots.append(base)
    return roots


def build_reason(read: Reader, files: list[str]) -> str | None:
    """Why the project cannot run from its source tree, or None when it can.

    `read(path)` gives a file of the project directory, `files` its tracked paths (relative
    to the project directory)."""
    pyproject_text = read("pyproject.toml") or ""
    pyproject = _toml_of(pyproject_text)
    system = pyproject.get("build-system", {}) if isinstance(pyproject, dict) else {}
    backend = str(system.get("build-backend", "")) if isinstance(system, dict) else ""
    requires = " ".join(map(str, system.get("requires", []))) if isinstance(system, dict) else ""
    tool = pyproject.get("tool", {}) if isinstance(pyproject, dict) else {}
    if "mesonpy" in backend or "meson.build" in files:
        return "meson.build (meson-python)"
    if "scikit_build_core" in backend or (isinstance(tool, dict) and "scikit-build" in tool):
        return "scikit-build"
    if "maturin" in backend or "setuptools_rust" in requires or "setuptools-rust" in requires:
        return "a Rust extension (maturin / setuptools-rust)"
    setup_py = read("setup.py") or ""
    if re.search(r"\bext_modules\b|\bExtension\s*\(|\bcythonize\s*\(", setup_py):
        return "setup.py with ext_modules"
    if re.search(r"^\s*(from|import)\s+skbuild\b", setup_py, re.M):
        return "scikit-build (setup.py)"
    if isinstance(tool, dict) and "ext-modules" in (tool.get("setuptools") or {}):
        return "ext-modules in pyproject.toml"
    pyx = [f for f in files if f.endswith(".pyx")]
    declared = (requires + setup_py + pyproject_text).lower()
    if pyx and ("cython" in declared or "build_ext" in declared):
        return f"Cython sources ({pyx[0]}{', ...' if len(pyx) > 1 else ''})"
    return None


def build_reason_at(
    repo: GitRepo, sha: str, subdir: str, files: list[str] | None = None
) -> str | None:
    """build_reason for the project directory at a commit, read from git."""
    listing = files if files is not None else tracked_files(repo, sha)
    prefix = f"{subdir.strip('/')}/" if subdir.strip("/") else ""
    inside = [f[len(prefix) :] for f in listing if f.startswith(prefix)]

    def read(rel: str) -> str | None:
        return repo.read_file_at(sha, prefix + rel) if prefix + rel in listing else None

    return build_reason(read, inside)


def _toml_of(text: str | None) -> dict[str, Any]:
    if not text or _toml is None:
        return {}
    try:
        data = _toml.loads(text)
    except Exception:  # a broken pyproject is the project's business, not ours
        return {}
    return data if isinstance(data, dict) else {}


# -- asv environments ------------------------------------------------------------------------


def check_environment_type(env_type: str | None, config_name: str) -> None:
    """One-line error unless asv can create environments of this type on this machine."""
    import asv

    version = getattr(asv, "__version__", "?")
    if not env_type:
        raise UsageError(
            f"--python config: {config_name} sets no environment_type "
            "(use --python virtualenv or --python same)"
        )
    hint = "install it, or use --python virtualenv"
    if env_type == "conda":
        if not (os.environ.get("CONDA_EXE") or shutil.which("conda")):
            raise EnvironmentProblem(
                f"--python config: {config_name} uses environment_type 'conda', and conda is "
                f"not installed here (no conda on PATH, no CONDA_EXE); {hint}"
            )
        return
    if env_type == "rattler":
        try:
            import rattler  # noqa: F401
            import yaml  # noqa: F401
        except ImportError:
            raise EnvironmentProblem(
                f"--python config: {config_name} uses environment_type 'rattler', which needs "
                f"py-rattler and pyyaml in smbisect's Python ({sys.executable}); "
                "pip install py-rattler pyyaml, or use --python virtualenv"
            ) from None
        return
    if env_type == "uv" and not shutil.which("uv"):
        raise EnvironmentProblem(
            f"--python config: {config_name} uses environment_type 'uv', and uv is not on PATH; "
            f"{hint}"
        )
    known = known_environment_types()
    if env_type not in known:
        raise EnvironmentProblem(
            f"--python config: {config_name} uses environment_type {env_type!r}, which asv "
            f"{version} installed here does not provide (it has: {', '.join(sorted(known))}); "
            "install the asv plugin for it, or use --python virtualenv"
        )


def known_environment_types() -> set[str]:
    """The environment types asv can load here (its plugins whose dependencies import)."""
    import asv.plugins
    from asv import environment, util
    from asv.plugin_manager import plugin_manager

    plugin_manager.load_plugins(asv.plugins)
    return {
        str(cls.tool_name)
        for cls in util.iter_subclasses(environment.Environment)
        if getattr(cls, "tool_name", None)
    }
