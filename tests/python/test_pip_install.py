"""`pip install .` from the repository root builds a working package (scikit-build-core + nanobind,
CPU backend) and the README's Python quick start runs against the installed copy.

This builds the C++ library a second time, so it runs only when QMM_TEST_PIP_INSTALL=1 (set by
the ctest test `python.pip_install`, which `make test` runs once). It installs with
--no-build-isolation into a folder under the build tree (--target), so it needs no network and
leaves the virtual environment untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

pytestmark = pytest.mark.skipif(
    not os.environ.get("QMM_TEST_PIP_INSTALL"),
    reason="set QMM_TEST_PIP_INSTALL=1 to build and install the wheel (ctest python.pip_install)",
)


def readme_example() -> str:
    text = open(os.path.join(ROOT, "python", "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "python/README.md has no python example"
    return blocks[0]


def test_pip_install_and_readme_example(tmp_path):
    base = os.environ.get("QMM_TEST_BUILD_DIR") or str(tmp_path)
    target = os.path.join(base, "pip-target")
    build_dir = os.path.join(base, "pip-build")
    shutil.rmtree(target, ignore_errors=True)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", "2")
    cmd = [sys.executable, "-m", "pip", "install", ROOT, "--no-build-isolation", "--no-deps",
           "--target", target, "-C", f"build-dir={build_dir}", "--quiet",
           "--disable-pip-version-check"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    installed = sorted(os.listdir(target))
    assert "qmm" in installed
    assert not {"include", "lib", "lib64", "share"} & set(installed), installed  # no C++ files
    pkg = sorted(os.listdir(os.path.join(target, "qmm")))
    assert "__init__.py" in pkg and "_qmm.pyi" in pkg and "py.typed" in pkg
    assert any(f.startswith("_qmm") and f.endswith(".so") for f in pkg), pkg

    env["PYTHONPATH"] = target
    check = "import qmm, sys; assert qmm.__file__.startswith(sys.argv[1]), qmm.__file__\n"
    r = subprocess.run([sys.executable, "-c", check + readme_example(), target], env=env,
                       cwd=str(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
