# syntax=docker/dockerfile:1
# vaultbridge operator image. Two stages: the first builds the wheel and installs it with its
# dependencies into a virtualenv; the final stage copies only that virtualenv onto a slim
# Python base, so no compiler, pip cache or source tree ships in the image.
#
#   docker build -t vaultbridge:dev .
#
# The image runs as UID/GID 65532 (non-root) and needs no writable root filesystem; the Helm
# chart mounts an emptyDir on /tmp. (Not built in CI here: the test environment has no
# container engine; tests/integration/test_deploy_image.py checks the wheel and entrypoint.)

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Locked, hash-checked dependencies first (requirements/runtime.txt: the runtime subset of
# requirements/lock.txt, see docs/development.md), then the wheel with --no-deps: nothing is
# resolved at build time, so an image built next month holds the same versions.
COPY requirements/runtime.txt requirements/build.txt ./requirements/
RUN python -m venv /opt/vaultbridge \
 && /opt/vaultbridge/bin/pip install --require-hashes -r requirements/runtime.txt \
 && python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes -r requirements/build.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/vaultbridge/bin/pip install --no-deps /wheels/*.whl \
 && /opt/vaultbridge/bin/pip uninstall --yes pip \
 && /opt/vaultbridge/bin/vaultbridge version

FROM python:${PYTHON_VERSION}-slim AS final
LABEL org.opencontainers.image.title="vaultbridge" \
      org.opencontainers.image.description="Syncs secrets from Vault / OpenBao into Kubernetes Secrets"
ENV PATH=/opt/vaultbridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The base image's pip/setuptools are not needed at run time.
RUN python -m pip uninstall --yes pip setuptools wheel 2>/dev/null || true \
 && groupadd --gid 65532 vaultbridge \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin vaultbridge
COPY --from=build /opt/vaultbridge /opt/vaultbridge
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["vaultbridge"]
CMD ["run"]
