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
    if not argv or argv[0] not in {"demo", "test", "lint", "bench", "asan", "env"}:
        print(__doc__)
        print("usage: python3 dev.py demo | test [pytest args] | lint | bench | asan | env")
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if command == "demo":
        return run("-m", "stoker", "demo", *rest)
    if command == "test":
        return run("-m", "pytest", *rest)
    if command == "lint":
        ruff = run("-m", "ruff", "check", "src", "tests", "benchmarks", "tools", "dev.py")
        mypy = run("-m", "mypy")
        return ruff or mypy
    if command == "bench":
        return run("-m", "stoker", "bench", *rest)
    if command == "asan":
        return asan()
    return 0


def asan() -> int:
    """Build the C modules with AddressSanitizer and fuzz them (tools/asan_fuzz.py)."""
    import shutil
    import sysconfig
    import tempfile

    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        print("[dev] asan: no C compiler here; the C modules are optional, nothing to check")
        return 0
    library = subprocess.run(
        [compiler, "-print-file-name=libasan.so"], capture_output=True, text=True
    ).stdout.strip()
    if not os.path.isabs(library) or not os.path.exists(library):
        print("[dev] asan: libasan is not installed (e.g. apt install libasan8); skipped")
        return 0
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    with tempfile.TemporaryDirectory(prefix="stoker-asan-") as folder:
        flags = ["-shared", "-fPIC", "-O1", "-g", "-fsanitize=address", "-ffp-contract=off"]
        for source, libraries in (
            ("src/stoker/transforms/_cfused.c", []),
            ("src/stoker/_cmix.c", []),
            ("src/stoker/datasets/_cjpeg.c", ["-ljpeg"]),
        ):
            target = Path(folder) / (Path(source).stem + suffix)
            built = subprocess.run(
                [compiler, *flags, f"-I{include}", source, "-o", str(target), *libraries], cwd=ROOT
            )
            if built.returncode != 0 and not libraries:
                return built.returncode
            if built.returncode != 0:  # optional, as in setup.py: no libjpeg-turbo headers
                print(f"[dev] asan: {source} not built (no libjpeg-turbo headers); not fuzzed")
        environment = {**os.environ, "LD_PRELOAD": library, "ASAN_OPTIONS": "detect_leaks=0"}
        return subprocess.run(
            [str(PYTHON), "tools/asan_fuzz.py", folder], cwd=ROOT, env=environment
        ).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
