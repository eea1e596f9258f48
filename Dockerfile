# rgf on a CUDA machine:
#   docker build --build-arg UID="$(id -u)" -t rgf .
#   docker run --gpus all --rm -v "$PWD":/work/rgf rgf dvc exp run -S profile=paper
# The base is PyTorch's own CUDA image of the torch version pyproject.toml pins
# (2.13.0+cu126, CPython 3.12 on Ubuntu); the lock leaves torch out, so the
# base's CUDA build stays. CUDA 12.6 runs on any driver >= 525 (minor-version
# compatibility); the host needs the NVIDIA driver and container toolkit.
FROM pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime@sha256:6acf597eeb8e376a96580dde4952f37cc017fef732bb40bfc73f28f25e3f64b4

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DVC_NO_ANALYTICS=1

# git: DVC experiments are git commits. Its version does not touch results,
# so it follows the base's Ubuntu release rather than a pin that would break
# when the release's archive moves on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

# uid 1000 matches the usual host user, so files written into the mounted repo
# stay the host user's; Ubuntu images give that uid to `ubuntu`, so free it
ARG UID=1000
RUN if id -u ubuntu >/dev/null 2>&1; then userdel ubuntu; fi \
    && useradd --create-home --uid "${UID}" rgf

WORKDIR /opt/rgf
# dependencies first, code after: only a new lock reinstalls them, a change
# under pipeline/ or in pyproject.toml does not. The lock holds every
# dependency but torch, each file checked against its sha256; torch is the
# base's CUDA build (README, "The lock"). The base's Python is marked
# externally managed (PEP 668); the base itself installed torch with pip into
# the same site-packages.
COPY requirements/lock.txt requirements/
RUN pip install --no-cache-dir --break-system-packages --require-hashes -r requirements/lock.txt
# rgf itself, nothing else: pip check fails the build if the lock and the
# base's torch disagree, the assert if torch is not the base's CUDA build. The
# editable install needs the package folder to exist; the real one replaces
# the placeholder below.
COPY pyproject.toml README.md ./
RUN mkdir pipeline && touch pipeline/__init__.py \
    && pip install --no-cache-dir --break-system-packages --no-deps --no-build-isolation -e . \
    && pip check \
    && python -c "import torch; assert torch.__version__.startswith('2.13.0+cu'), torch.__version__"
COPY pipeline ./pipeline

USER ${UID}
# the repo is mounted here and owned by the host user: let git accept it
RUN git config --global --add safe.directory /work/rgf \
    && git config --global user.name "rgf" \
    && git config --global user.email "rgf@localhost"
WORKDIR /work/rgf
CMD ["dvc", "repro"]
