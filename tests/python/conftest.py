"""Shared fixtures of the qmm Python tests.

Run through ctest (`make test`, label `python`), which puts <build>/python on PYTHONPATH, or by
hand: `PYTHONPATH=build/release/python .venv/bin/python -m pytest tests/python`.
"""

from __future__ import annotations

import json
import os
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import qmm  # noqa: E402

try:
    import mlx.core as _mx
except Exception:  # mlx[cpu] missing or unusable on this machine
    _mx = None

try:
    import torch as _torch
except Exception:
    _torch = None

# Statistics of the MLX cross-checks: kind -> {"cases": n, "worst": {metric: value}}.
CROSS_STATS: dict = {}


def record(kind: str, **metrics: float) -> None:
    s = CROSS_STATS.setdefault(kind, {"cases": 0, "worst": {}})
    s["cases"] += 1
    for k, v in metrics.items():
        s["worst"][k] = max(s["worst"].get(k, 0.0), float(v))


@pytest.fixture
def mx():
    if _mx is None:
        pytest.skip("mlx is not importable (pip install 'mlx[cpu]==0.32.4' enables these)")
    return _mx


@pytest.fixture
def torch():
    if _torch is None:
        pytest.skip("torch is not installed here (these run where PyTorch is available)")
    return _torch


@pytest.fixture
def rng(request):
    # One reproducible generator per test, seeded by the test's id (QMM_TEST_SEED varies it).
    extra = int(os.environ.get("QMM_TEST_SEED", "0"))
    return np.random.default_rng([zlib.crc32(request.node.nodeid.encode()), extra])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not CROSS_STATS:
        return
    terminalreporter.write_sep("-", "MLX cross-checks (cases, worst errors)")
    for kind, s in sorted(CROSS_STATS.items()):
        worst = ", ".join(f"{k}={v:.3g}" for k, v in sorted(s["worst"].items()))
        terminalreporter.write_line(f"{kind}: {s['cases']} cases; worst {worst}")
    out_dir = os.environ.get("QMM_TEST_BUILD_DIR")
    if out_dir and os.path.isdir(out_dir):
        with open(os.path.join(out_dir, "python_mlx_crosscheck.json"), "w") as f:
            json.dump(CROSS_STATS, f, indent=1, sort_keys=True)
