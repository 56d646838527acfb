"""What every benchmark needs from its surroundings: the shared data, side-cars, and where it ran.

- **Data**: the project's corpus lives beside every checkout, at ``<repo>/../shared/data``
  (resolved from this file, not the working folder); ``$CURRIMIX_BENCH_DATA`` overrides it.
- **Cache**: everything a benchmark builds for itself (side-car environments, generated inputs)
  lives under one folder, ``$CURRIMIX_BENCH_CACHE``, else ``$XDG_CACHE_HOME/currimix-bench``, else
  ``~/.cache/currimix-bench``. Delete it to start from nothing.
- **Side-cars**: what a benchmark compares against (datatrove, mergekit, other language-ID
  libraries) is not a project dependency, so it is installed on first use from a fully pinned
  list in ``benchmarks/sidecars/<name>.txt``, with the repo's ``constraints.txt`` as
  ``PIP_CONSTRAINT`` (the CPU build of torch), and reused afterwards. A ``venv`` side-car is its
  own interpreter, run as a subprocess; a ``target`` side-car is a ``pip install --target``
  folder put on ``sys.path`` (for libraries timed in the benchmark's own process; their
  dependencies come from the project's environment). The folder's name carries a hash of the
  pins, the constraints and the Python version, so changing a pin builds a new one; a
  ``.ready`` file written last marks a finished install, so an interrupted one is rebuilt.
- **Provenance**: `provenance()` is the commit (``git rev-parse --short HEAD``, ``-dirty`` when
  the tree has changes), the machine (cores, CPU model, memory, Python) and the UTC time; every
  benchmark prints `header()` above its table and puts `provenance()` in any JSON it writes.

Standard library only: the datatrove side-car imports it too (through `scorers_data`).
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIDECARS = Path(__file__).resolve().parent / "sidecars"
DATA_ENV = "CURRIMIX_BENCH_DATA"
CACHE_ENV = "CURRIMIX_BENCH_CACHE"

#: Side-car name -> kind ("venv": its own interpreter; "target": a folder for this process's sys.path).
SIDECAR_KINDS = {"datatrove": "venv", "mergekit": "venv", "langid": "target"}


def data_dir() -> Path:
    """The shared corpus: ``$CURRIMIX_BENCH_DATA`` or ``<repo>/../shared/data`` (not checked here)."""
    override = os.environ.get(DATA_ENV)
    return Path(override).expanduser().resolve() if override else (REPO.parent / "shared" / "data").resolve()


def require_data() -> Path:
    """`data_dir()`, or exit with a message saying where it was looked for and how to point elsewhere."""
    folder = data_dir()
    if not folder.is_dir():
        raise SystemExit(f"no shared data at {folder}: set {DATA_ENV}=/path/to/shared/data")
    return folder


def preset_path(path: str) -> Path:
    """A source path of a preset (``../shared/data/...``, relative to the repo) on this machine's data."""
    prefix = "../shared/data/"
    if path.startswith(prefix):
        return data_dir() / path[len(prefix) :]
    return (REPO / path).resolve()


def cache_dir(*parts: str) -> Path:
    """A folder under the benchmark cache (created)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        root = Path(override).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "currimix-bench"
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sidecar(name: str) -> Path:
    """The side-car folder ``name`` (a venv, or a ``--target`` folder), installed on first use."""
    kind = SIDECAR_KINDS[name]
    pins = SIDECARS / f"{name}.txt"
    constraints = REPO / "constraints.txt"
    # Comments are left out of the hash: rewording one must not cost a reinstall.
    wanted = [line.strip() for line in (pins.read_text() + constraints.read_text()).splitlines()]
    wanted = [line for line in wanted if line and not line.startswith("#")]
    digest = hashlib.sha256("\n".join([*wanted, platform.python_version()]).encode()).hexdigest()[:10]
    parent = cache_dir("sidecars")
    folder = parent / f"{name}-{digest}"
    ready = folder / ".ready"
    if ready.is_file():
        return folder
    # One installer at a time per side-car: two benchmarks started together must not both pip into it.
    with open(parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # left half-built by an interrupted install
        print(f"setting up side-car {name!r} in {folder} (first use; pins: {pins})", file=sys.stderr, flush=True)
        started = time.perf_counter()
        env = {**os.environ, "PIP_CONSTRAINT": str(constraints), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        if kind == "venv":
            subprocess.run([_base_python(), "-m", "venv", str(folder)], check=True)
            pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--no-input", "-r", str(pins)]
        else:
            pip = [sys.executable, "-m", "pip", "install", "--no-input", "--no-deps", "--target", str(folder)]
            pip += ["-r", str(pins)]
        subprocess.run(pip, env=env, check=True, stdout=sys.stderr)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
        seconds = time.perf_counter() - started
        ready.write_text(json.dumps({"pins": pins.read_text(), "seconds": round(seconds), "bytes": size}, indent=1))
        print(f"side-car {name!r} ready: {size / 2**20:,.0f} MiB in {seconds:.0f} s", file=sys.stderr, flush=True)
    return folder


def sidecar_bin(name: str, program: str = "python") -> Path:
    """A program of the ``venv`` side-car ``name`` (``python``, ``mergekit-yaml``, ...)."""
    assert SIDECAR_KINDS[name] == "venv", name
    return sidecar(name) / "bin" / program


def _base_python() -> str:
    """The interpreter a side-car venv is made from: the one under any venv we run in."""
    return getattr(sys, "_base_executable", None) or sys.executable


def commit() -> str:
    """``git rev-parse --short HEAD`` of the checkout, with ``-dirty`` when tracked files changed."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("-dirty" if dirty else "")


def machine() -> str:
    """Cores, CPU model, memory and Python of this machine, in one line."""
    cpu, mem_gib = platform.processor() or platform.machine(), None
    try:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), cpu
        )
        kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        mem_gib = kib / 2**20
    except (OSError, StopIteration):
        pass
    memory = f", {mem_gib:.1f} GiB RAM" if mem_gib else ""
    return f"{os.cpu_count()} cores, {cpu}{memory}, Python {platform.python_version()}"


def provenance() -> dict[str, str]:
    """Commit, machine and UTC time: put it in every JSON a benchmark writes."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"commit": commit(), "machine": machine(), "utc": f"{now:%Y-%m-%d %H:%M}"}


def header(title: str) -> str:
    """The line above every benchmark's table: what ran, at which commit, on which machine, when."""
    p = provenance()
    return f"# {title} | commit {p['commit']} | {p['machine']} | {p['utc']} UTC"


def write_json(path: Path, data: object) -> None:
    """``data`` as JSON at ``path``, atomically (a temp name in the same folder, then a rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", nargs="+", choices=sorted(SIDECAR_KINDS), help="install these side-cars now")
    args = parser.parse_args()
    for name in args.setup or ():
        sidecar(name)
    print(header("benchmark environment"))
    print(f"data:  {data_dir()}{'' if data_dir().is_dir() else '  (missing: set ' + DATA_ENV + ')'}")
    print(f"cache: {cache_dir()}  (${CACHE_ENV})")
    for folder in sorted(cache_dir("sidecars").iterdir()):
        if folder.is_dir():
            print(f"  side-car {folder.name}: {'ready' if (folder / '.ready').is_file() else 'unfinished'}")


if __name__ == "__main__":
    main()
