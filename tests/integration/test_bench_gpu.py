"""benchmarks/bench_gpu.py runs end to end on the CPU (--device cpu --quick): the GPU run's script
is exercised before a GPU machine is lent, so its one try there is not spent on a typo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_TIMEOUT_S = 110  # a few ResNet-20 steps on a loaded 2-core machine; the suite's limit is 120


def test_bench_gpu_smoke_run_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT / 'benchmarks'}")
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--device", "cpu"]
    command += ["--quick", "--images", "48", "--batch", "32", "--workers", "1", "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    for feeder in (
        "torch DataLoader",
        "stoker workers",
        "stoker device aug",
        "stoker DeviceLoader (",
    ):
        assert f"| {feeder}" in report, feeder
    assert "| DeviceLoader gather + normalise, table on the device, batch 48 |" in report
    assert "device: **" in report and "images/s" in report
