#!/usr/bin/env python3
"""Bootstrap and run stoker's main jobs with nothing but Python 3.11: `demo`, `test`, `lint`.

The first run creates `.venv/` next to this file and installs stoker with its development
dependencies (torch 2.14.1 and torchvision 0.29.1, pinned); later runs reuse it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".stoker-installed"


def _requirements_fingerprint() -> str:
    """Changes when the dependencies or the C sources do: the install builds the C modules."""
    digest = hashlib.sha256()
    for path in [ROOT / "pyproject.toml", ROOT / "setup.py", *sorted(ROOT.glob("src/**/*.c"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create the virtual environment and install stoker[dev] unless already up to date."""
    if not PYTHON.exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _requirements_fingerprint():
        return
    print("[dev] installing stoker and its dependencies (first run: a minute or two)", flush=True)
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[dev]",
        ],
        check=True,
    )
    STAMP.write_text(_requirements_fingerprint())


def run(*args: str) -> int:
    return subprocess.run([str(PYTHON), *args], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "lint", "bench", "env"}:
        print(__doc__)
        print("usage: python3 dev.py demo | test [pytest args] | lint | bench | env")
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if command == "demo":
        return run("-m", "stoker", "demo", *rest)
    if command == "test":
        return run("-m", "pytest", *rest)
    if command == "lint":
        ruff = run("-m", "ruff", "check", "src", "tests", "benchmarks", "dev.py")
        mypy = run("-m", "mypy")
        return ruff or mypy
    if command == "bench":
        return run("-m", "stoker", "bench", *rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
