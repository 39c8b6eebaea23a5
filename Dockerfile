# The server image: the same install as `make run` (pinned by constraints.txt), run as a non-root user.
#   docker build -t oip-server .
#   docker run -p 8001:8001 -p 8002:8002 -v "$PWD/models:/models:ro" oip-server
# GPU variant: ONNX Runtime's CUDA build, with CUDA and cuDNN from PyPI (the host needs the NVIDIA driver and
# container toolkit: docker run --gpus all ...); the server then prefers CUDAExecutionProvider:
#   docker build --build-arg ONNXRUNTIME="onnxruntime-gpu[cuda,cudnn]==1.31.1" -t oip-server:gpu .
# The native frontend's extension (oip_native) is built in the first stage by the same `pip install .`, with Debian
# 12's gRPC C++ toolchain; the final stage has only the shared libraries it links (readelf -d: libgrpc++, libgpr,
# libabsl_synchronization, libprotobuf), so `--frontend auto` runs the native frontend.
# No Docker engine or GPU is available where this project is developed: tests/test_packaging.py checks this file
# against the Makefile and CLI, but no image has been built or run from it here.
# Bookworm (Debian 12): the gRPC C++ 1.51 and protobuf 3.21 that the native extension is written against.
FROM python:3.11-slim-bookworm AS build

# Empty: the CPU build from constraints.txt. Else a pip requirement replacing the onnxruntime package.
ARG ONNXRUNTIME=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# The native extension's toolchain (scripts/setup_native.sh installs the same packages), plus a compiler and CMake.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends g++ cmake ninja-build pkg-config \
       libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv

WORKDIR /opt/oip-server
COPY pyproject.toml README.md constraints.txt ./
COPY CMakeLists.txt ./
COPY native ./native
COPY proto ./proto
COPY oip ./oip
COPY server ./server
COPY clients ./clients
COPY loadtest ./loadtest
RUN python -m pip install --no-cache-dir -c constraints.txt .
# The toolchain is here, so the extension must be too (a pip install without it would quietly leave it out).
RUN python -c "import oip_native"
# The GPU variant swaps the CPU build for the one named (same Python module, `onnxruntime`).
RUN if [ -n "$ONNXRUNTIME" ]; then \
      python -m pip uninstall --yes onnxruntime && python -m pip install --no-cache-dir "$ONNXRUNTIME"; \
    fi

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# Only the shared libraries the native extension links (apt brings theirs: c-ares, re2, OpenSSL, zlib).
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin inference

# The server, its dependencies and the extension, installed in the build stage (same path, same Python).
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/oip-server

COPY --chown=inference:inference models /models
# Routing state (rollbacks, weights set through the admin API) must survive restarts and the
# models volume is often read-only: it lives in a volume of its own.
RUN mkdir -p /var/lib/oip-server && chown inference:inference /var/lib/oip-server
ENV SERVER_STATE_DIR=/var/lib/oip-server
VOLUME ["/models"]
VOLUME ["/var/lib/oip-server"]

USER inference
EXPOSE 8001 8002

# Ready means: listening and the repository has been loaded (same endpoint as Kubernetes probes).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8002/v2/health/ready', timeout=2)"]

ENTRYPOINT ["python", "-m", "server"]
CMD ["--model-repository", "/models", "--host", "0.0.0.0", "--grpc-port", "8001", "--metrics-port", "8002"]
