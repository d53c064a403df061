"""The committed lock (requirements/*.txt) agrees with pyproject.toml, and this venv with it.

A dependency added to, removed from or narrowed in pyproject.toml without `scripts/lock` fails
here, as does a lock edited by hand into something the ranges do not allow.
"""

from __future__ import annotations

import re
import sys
import sysconfig
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "requirements" / "runtime.txt"
TEST = ROOT / "requirements" / "test.txt"
SUPPORTED = ("3.11", "3.12", "3.13")
"""Python versions the lock must cover (README says which are tested)."""
PLATFORMS = ("linux", "darwin", "win32")


@dataclass
class Pin:
    name: str
    version: str
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> list[Pin]:
    """The pins of a uv/pip-compile requirements file: name==version ; marker, hashes, via."""
    pins: list[Pin] = []
    in_via = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        head = re.match(
            r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", raw
        )
        if head:
            marker = Marker(head[3]) if head[3] else None
            pins.append(Pin(canonicalize_name(head[1]), head[2], marker))
            in_via = False
        elif line.startswith("--hash=sha256:"):
            pins[-1].hashes.append(line.split(":", 1)[1].rstrip(" \\"))
        elif line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            pins[-1].via.extend([rest] if rest else [])
            in_via = True
        elif in_via and line.startswith("#   "):
            pins[-1].via.append(line.removeprefix("#").strip())
        elif line and not line.startswith("#"):
            pytest.fail(f"{path.name}: a line that is not a pin: {raw!r}")
    return pins


def environments() -> list[dict[str, str]]:
    """Marker environments for every supported Python on every platform."""
    out = []
    for version in SUPPORTED:
        for platform in PLATFORMS:
            out.append(
                {
                    "python_version": version,
                    "python_full_version": f"{version}.0",
                    "sys_platform": platform,
                    "platform_system": {"linux": "Linux", "darwin": "Darwin"}.get(
                        platform, "Windows"
                    ),
                    "os_name": "nt" if platform == "win32" else "posix",
                    "implementation_name": "cpython",
                    "platform_python_implementation": "CPython",
                    "extra": "",
                }
            )
    return out


def applies(marker: Marker | None, env: dict[str, str]) -> bool:
    return marker is None or marker.evaluate(env)


def declared() -> tuple[list[Requirement], list[Requirement]]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    test = [Requirement(r) for r in project["optional-dependencies"]["test"]]
    return runtime, test


def check_lock(pins: list[Pin], direct: list[Requirement]) -> list[str]:
    """What is wrong between one lock file and the requirements it was generated from."""
    problems = []
    for req in direct:
        name = canonicalize_name(req.name)
        for env in environments():
            if not applies(req.marker, env):
                continue
            chosen = [p for p in pins if p.name == name and applies(p.marker, env)]
            if len(chosen) != 1:
                problems.append(
                    f"{req} (Python {env['python_version']}, {env['sys_platform']}): "
                    f"{len(chosen)} pins, expected 1"
                )
            elif not req.specifier.contains(Version(chosen[0].version), prereleases=True):
                problems.append(f"{req}: locked at {chosen[0].version}, outside the range")
    names = {canonicalize_name(r.name) for r in direct}
    for pin in pins:
        if "diplobot (pyproject.toml)" in pin.via and pin.name not in names:
            problems.append(f"{pin.name}: locked as a direct dependency pyproject.toml lacks")
        if not pin.hashes:
            problems.append(f"{pin.name}=={pin.version}: no hash")
    return problems


def test_lock_matches_pyproject() -> None:
    runtime, test = declared()
    problems = [f"runtime.txt: {p}" for p in check_lock(read_lock(RUNTIME), runtime)]
    problems += [f"test.txt: {p}" for p in check_lock(read_lock(TEST), runtime + test)]
    assert not problems, "\n".join(
        ["pyproject.toml and requirements/ disagree: run scripts/lock", *problems]
    )


def test_runtime_and_test_locks_agree() -> None:
    """Every package the two files share has the same version (and the same files)."""
    test = {(p.name, str(p.marker)): p for p in read_lock(TEST)}
    for pin in read_lock(RUNTIME):
        twin = test.get((pin.name, str(pin.marker)))
        assert twin is not None, f"{pin.name} is in runtime.txt only"
        assert (pin.version, sorted(pin.hashes)) == (twin.version, sorted(twin.hashes)), pin.name


def test_check_catches_a_dependency_added_to_pyproject_only() -> None:
    """The check above is not vacuous: a new requirement, or one narrowed, is reported."""
    runtime, _ = declared()
    pins = read_lock(RUNTIME)
    added = [*runtime, Requirement("humanize>=4")]
    assert check_lock(pins, added) == [
        f"humanize>=4 (Python {v}, {p}): 0 pins, expected 1" for v in SUPPORTED for p in PLATFORMS
    ]
    yaml_pin = next(p for p in pins if p.name == "pyyaml")
    narrowed = [
        Requirement(f"pyyaml>{yaml_pin.version}") if r.name.lower() == "pyyaml" else r
        for r in runtime
    ]
    assert check_lock(pins, narrowed) == [
        f"pyyaml>{yaml_pin.version}: locked at {yaml_pin.version}, outside the range"
    ] * (len(SUPPORTED) * len(PLATFORMS))
    dropped = [r for r in runtime if r.name.lower() != "pyyaml"]
    assert check_lock(pins, dropped) == [
        "pyyaml: locked as a direct dependency pyproject.toml lacks"
    ]


def test_this_venv_is_the_lock() -> None:
    """The interpreter running the tests has exactly the locked versions (scripts/setup)."""
    stamp = Path(sys.prefix) / ".diplobot-setup"
    if not stamp.is_file():
        pytest.skip("not a venv made by scripts/setup")
    if stamp.read_text(encoding="utf-8").startswith("latest"):
        pytest.skip("DIPLOBOT_DEPS=latest: the newest allowed versions, not the lock")
    env = {
        "python_version": "{}.{}".format(*sys.version_info[:2]),
        "python_full_version": "{}.{}.{}".format(*sys.version_info[:3]),
        "sys_platform": sys.platform,
    }
    paths = sysconfig.get_paths()
    want = {
        p.name: p.version for p in read_lock(TEST) if p.marker is None or p.marker.evaluate(env)
    }
    have = {
        canonicalize_name(d.metadata["Name"]): d.version
        # Only what is installed in the venv: pkg_resources puts setuptools' vendored
        # packages on sys.path once imported, and they are not installs of their own.
        for d in metadata.distributions(path=sorted({paths["purelib"], paths["platlib"]}))
        if canonicalize_name(d.metadata["Name"]) not in ("pip", "diplobot")
    }
    assert have == want
