# rgf on a CUDA machine:
#   docker build -t rgf .
#   docker run --gpus all --rm -v "$PWD":/work/rgf rgf dvc exp run -S profile=paper
# The PyPI wheel of the pinned torch (pyproject.toml) ships its own CUDA
# runtime, so a slim Python base is all it needs; the host provides the driver.
FROM python:3.11.10-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DVC_NO_ANALYTICS=1

# git: DVC experiments are git commits
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 rgf
WORKDIR /opt/rgf
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
RUN pip install --no-cache-dir -e .

USER 1000:1000
# the repo is mounted here and owned by the host user: let git accept it
RUN git config --global --add safe.directory /work/rgf \
    && git config --global user.name "rgf" \
    && git config --global user.email "rgf@localhost"
WORKDIR /work/rgf
CMD ["dvc", "repro"]
