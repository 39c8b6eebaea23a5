# The server image: the same install as `make run` (pinned by constraints.txt), run as a non-root user.
#   docker build -t oip-server .
#   docker run -p 8001:8001 -p 8002:8002 -v "$PWD/models:/models:ro" oip-server
# GPU variant: ONNX Runtime's CUDA build, with CUDA and cuDNN from PyPI (the host needs the NVIDIA driver and
# container toolkit: docker run --gpus all ...); the server then prefers CUDAExecutionProvider:
#   docker build --build-arg ONNXRUNTIME="onnxruntime-gpu[cuda,cudnn]==1.31.1" -t oip-server:gpu .
# No Docker engine or GPU is available where this project is developed: tests/test_packaging.py checks this file
# against the Makefile and CLI, but no image has been built or run from it here.
FROM python:3.11-slim

# Empty: the CPU build from constraints.txt. Else a pip requirement replacing the onnxruntime package.
ARG ONNXRUNTIME=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin inference

WORKDIR /opt/oip-server
COPY pyproject.toml README.md constraints.txt ./
COPY oip ./oip
COPY server ./server
COPY clients ./clients
COPY loadtest ./loadtest
RUN python -m pip install --no-cache-dir -c constraints.txt .
# The GPU variant swaps the CPU build for the one named (same Python module, `onnxruntime`).
RUN if [ -n "$ONNXRUNTIME" ]; then \
      python -m pip uninstall --yes onnxruntime && python -m pip install --no-cache-dir "$ONNXRUNTIME"; \
    fi

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
