"""Run by smbisect in a process of its own (asv_workers.AsvBuilder), so that a build can be
stopped by killing its process group: asv's own machinery for one environment of a config.

    python asv_build_child.py create CONF SPEC
        create the environment if it is missing (asv's Environment.create) and print, as JSON,
        its directory and its build cache's;
    python asv_build_child.py build CONF SPEC SHA BUILD_DIR OUT_DIR
        run the config's build_command (asv's Environment._build_project, default: build a
        wheel) for SHA checked out in BUILD_DIR, with {build_cache_dir} = OUT_DIR.

SPEC is asv's -E argument ("virtualenv"). Only the standard library and asv are imported.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from asv.config import Config
    from asv.environment import get_environments
    from asv.repo import get_repo

    action, conf_path, spec = argv[:3]
    conf = Config.load(conf_path)
    envs = list(get_environments(conf, [spec]))
    if len(envs) != 1:
        print(f"asv gives {len(envs)} environments for {spec!r}, not one", file=sys.stderr)
        return 2
    env = envs[0]
    if action == "create":
        env.create()
        print(json.dumps({"path": env._path, "cache": env._cache._path}))
        return 0
    sha, build_dir, out_dir = argv[3:6]
    env.create()
    env._set_commit_hash(sha)
    env._set_build_dirs(build_dir, out_dir)
    env._build_project(get_repo(conf), sha, build_dir)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as exc:  # one line for the caller: the last line of stderr
        out = getattr(exc, "stdout", "") or ""
        err = getattr(exc, "stderr", "") or ""
        for text in (out, err):
            if text:
                print(text.rstrip(), file=sys.stderr)
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
