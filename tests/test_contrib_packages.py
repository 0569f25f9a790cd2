"""The ``contrib_*/`` packages are standalone distributions that extend hermes from outside.

For each one (``contrib_hardware`` = hermes-contrib-hardware, ``contrib_stages`` =
hermes-contrib-stages) this test copies the source to a temporary folder, pip-installs it
into ``<tmp>/site`` and runs the package's own test suite in a child interpreter whose
``PYTHONPATH`` starts with that folder. hermes then finds the package only through its
``hermes`` entry point, as it would after a user's ``pip install``; each suite's first test
checks exactly that.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder -> (distribution, import package)
PACKAGES = {
    "contrib_hardware": ("hermes-contrib-hardware", "hermes_contrib_hardware"),
    "contrib_stages": ("hermes-contrib-stages", "hermes_contrib_stages"),
}
SWITCHES = ("HERMES_LOAD_PLUGINS", "HERMES_DISABLE_PLUGINS")


def _offline_build_possible() -> bool:
    """Whether ``--no-build-isolation`` can build a wheel here: setuptools >= 70.1 has
    ``bdist_wheel`` built in; older ones need the ``wheel`` package."""
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(p) for p in re.findall(r"\d+", setuptools.__version__)[:2])
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def pip_install(src: Path, target: Path) -> str:
    """Install ``src`` into ``target`` with ``pip install --no-deps --target``; return the
    mode that worked. Tries ``--no-build-isolation`` (offline, fast) when this environment
    can build wheels, then pip's isolated build (fetches setuptools from the package index).
    Fails the test with pip's output if neither works."""
    base = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
            "--target", str(target)]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    modes = (["--no-build-isolation"], []) if _offline_build_possible() else ([],)
    logs = []
    for extra in modes:
        shutil.rmtree(target, ignore_errors=True)
        proc = subprocess.run(base + extra + [str(src)], capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode == 0:
            return " ".join(extra) or "isolated build"
        logs.append(f"$ pip install {' '.join(extra)} {src}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    pytest.fail(f"could not pip-install {src.name}:\n" + "\n".join(logs))


def child_env(site: Path) -> dict[str, str]:
    """This environment with ``site`` first on ``PYTHONPATH`` and no plugin switches."""
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return env


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_contrib_package_installs_and_its_own_tests_pass(folder, tmp_path):
    dist, module = PACKAGES[folder]
    src = tmp_path / folder
    shutil.copytree(ROOT / folder, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                                      ".pytest_cache"))
    site = tmp_path / "site"
    mode = pip_install(src, site)
    infos = list(site.glob(f"{dist.replace('-', '_')}-*.dist-info"))
    assert len(infos) == 1, f"{dist}: expected one dist-info in {site}, found {infos} ({mode})"
    assert re.search(rf"^\[hermes\]\s*\n\w+ = {module}$", (infos[0] / "entry_points.txt").read_text(), re.M)

    env = child_env(site)
    where = subprocess.run([sys.executable, "-c", f"import {module}; print({module}.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).resolve().is_relative_to(site.resolve()), where.stdout

    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{folder}/tests"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, f"{folder}'s tests failed (installed by {mode}):\n{tail}"
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.match(r"\d+ passed", summary) and "failed" not in summary and "error" not in summary, tail
