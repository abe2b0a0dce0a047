"""The package as a user installs it: build the wheel, install it in a fresh venv outside the
repository, and run the console command from a folder that is not the repository.

The fresh venv gets the package ONLY from the wheel; its dependencies (torch, SB3, ...) come from
the running interpreter's site-packages through a ``.pth`` line, so the test needs no network
and no second copy of torch. The ``.pth`` is written after the wheel is installed (pip must not
see the running environment's editable install), and Python does not run the ``.pth`` files of a
folder added that way, so the editable install's import hook stays off.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Not copied into the build tree: the build must see only the sources (a stale build/lib/ would
# put deleted modules into the wheel).
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", "logs", "results")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
            "PYTHONNOUSERSITE": "1"}


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a clean copy of the repository's sources (no build isolation: offline)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCES)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(tmp / "dist"), str(src)], cwd=tmp, timeout=180)
    wheels = list((tmp / "dist").glob("sb3_selfplay-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the repository: the wheel installed, the dependencies borrowed."""
    home = tmp_path_factory.mktemp("venv") / "venv"
    assert ROOT not in home.parents
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, timeout=120)
    python = home / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], cwd=home.parent)
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=home.parent).stdout.strip())
    deps = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
            if Path(p).is_dir() and Path(p).resolve() != purelib.resolve()]
    (purelib / "_sb3_selfplay_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return home


def test_wheel_holds_the_sources_and_hyperparams(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "sb3_selfplay").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert sources - names == set()  # every module ships (a folder without __init__.py would not)
    for yml in (ROOT / "hyperparams").glob("*.yml"):
        assert f"sb3_selfplay/hyperparams/{yml.name}" in names, yml.name
    for template in (ROOT / "sb3_selfplay").glob("replays/templates/*.html"):
        assert template.relative_to(ROOT).as_posix() in names, template.name
    assert "sb3_selfplay/py.typed" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "sb3-selfplay = sb3_selfplay.zoo.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_package_comes_from_the_wheel(venv, tmp_path):
    code = ("import sb3_selfplay; from sb3_selfplay.zoo.hyperparams import default_hyperparams_file as f; "
            "print(sb3_selfplay.__file__); print(f('rppo')); print(f('rppo').is_file())")
    lines = _run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path).stdout.split()
    package, rppo = Path(lines[0]), Path(lines[1])
    assert venv in package.parents and venv in rppo.parents, lines
    assert rppo.name == "rppo.yml" and rppo.parent.name == "hyperparams" and lines[2] == "True"
    out = _run([str(venv / "bin" / "python"), "-m", "sb3_selfplay", "--help"], cwd=tmp_path).stdout
    for command in ("train", "enjoy", "tournament", "replay", "plot"):
        assert command in out


def test_console_command_trains_a_debug_run(venv, tmp_path):
    out = _run([str(venv / "bin" / "sb3-selfplay"), "train", "--algo", "rppo", "--env", "Duel-v0", "--debug",
                "-f", str(tmp_path / "logs"), "--seed", "0", "--verbose", "0", "--num-threads", "1"],
               cwd=tmp_path, timeout=240)
    assert "debug: self-play: ok" in out.stdout, out.stdout
    run = tmp_path / "logs" / "rppo" / "Duel-v0_1"
    for name in ("Duel-v0.zip", "Duel-v0/config.yml", "Duel-v0/args.yml", "pool/ledger.sqlite"):
        assert (run / name).is_file(), name
    conf = Path(yaml.safe_load((run / "Duel-v0" / "args.yml").read_text())["conf_file"])
    assert venv in conf.parents and conf.name == "rppo.yml"  # the wheel's hyperparams, not the repository's
