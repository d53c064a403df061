# diplobot: the long-running publishing service (`diplobot run`) and its CLI.
#
#   docker build -t diplobot .
#   docker run -d --name diplobot -p 127.0.0.1:8080:8080 -v diplobot-data:/data \
#       -e DIPLOBOT_REPO_URL=https://git.example.org/desk/content.git diplobot
#
# With DIPLOBOT_REPO_URL the content is cloned into /data/repo (the default DIPLOBOT_ROOT);
# without, mount a checkout and point at it: -v /srv/content:/content:ro -e DIPLOBOT_ROOT=/content
# Any other command runs instead of the service: `docker run --rm diplobot post-now ID`.
# See docs/deploy.md. tests/test_image.py replays the install steps and the ENTRYPOINT/CMD/
# HEALTHCHECK below without Docker; keep the two in step.

# One base for both stages: the venv built in the first is copied into the second, and its
# interpreter links to this image's /usr/local/bin/python3.
ARG PYTHON_IMAGE=python:3.12.12-slim-trixie

# ---- build: a wheel of the project, installed with its dependencies into /opt/diplobot
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/runtime.txt requirements/
COPY bot/ bot/

# The dependencies come from the committed lock, every file checked against its sha256, so the
# image built on any day has the same bytes (scripts/lock regenerates it). The wheel is then
# built with the locked setuptools (no build isolation: nothing newer is downloaded for it).
# setuptools is a declared dependency for that (a Python 3.12 venv has no setuptools of its
# own): see pyproject.toml.
RUN python -m venv /opt/diplobot \
    && /opt/diplobot/bin/pip install --no-cache-dir --require-hashes --no-deps \
        -r requirements/runtime.txt \
    && /opt/diplobot/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation \
        --wheel-dir /tmp/dist . \
    && /opt/diplobot/bin/pip install --no-cache-dir --no-deps /tmp/dist/diplobot-*.whl

# ---- runtime
FROM ${PYTHON_IMAGE}

# git: content sync (clone/pull) and the commit recorded with each delivery; openssh-client:
# git over SSH with a deploy key; tzdata: IANA zones of the accounts; ca-certificates: HTTPS.
# Versions are not pinned: Debian's stable archive only keeps the latest security build of
# each package, so a pinned version stops resolving at the next update and breaks the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client tzdata \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid, so that a bind-mounted /data can be chown'ed to 10001:10001.
# /content is where a local content repository may be mounted instead of following one with
# DIPLOBOT_REPO_URL (read-only, owned by someone else): let git read its HEAD all the same.
RUN groupadd --system --gid 10001 diplobot \
    && useradd --system --uid 10001 --gid diplobot --home-dir /home/diplobot --create-home \
        --shell /usr/sbin/nologin diplobot \
    && mkdir -p /data \
    && chown diplobot:diplobot /data \
    && git config --system --add safe.directory /content

COPY --from=build /opt/diplobot /opt/diplobot

ENV PATH="/opt/diplobot/bin:${PATH}" \
    VIRTUAL_ENV=/opt/diplobot \
    TZ=Etc/UTC \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DIPLOBOT_ROOT=/data/repo \
    DIPLOBOT_STATE=sqlite:////data/state.sqlite \
    DIPLOBOT_HTTP_ADDR=0.0.0.0:8080 \
    DIPLOBOT_LOG_FORMAT=json

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# `diplobot health` asks GET /healthz on $DIPLOBOT_HTTP_ADDR: exit 0 on 200, else 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["diplobot", "health"]

ENTRYPOINT ["diplobot"]
CMD ["run"]
