"""An MLServer custom runtime serving one ONNX file with ONNX Runtime, for the MLServer peer of
loadtest.peer_bench (loadtest/mlserver_peer.py writes the model-settings.json that points here).

It runs inside MLServer's own virtual environment (loadtest/setup_mlserver.sh), which MLServer starts with this
folder on PYTHONPATH, so it is imported as the top-level module `mlserver_runtime`; nothing in our packages imports
it, and our environment has no `mlserver`. Like the other servers of the benchmark: one ONNX Runtime session on the
CPU with one intra-op and one inter-op thread. Adaptive batching is MLServer's own (max_batch_size and
max_batch_time in model-settings.json): `predict` receives the merged batch and MLServer splits the response.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    """Serves the ONNX file named by the model settings' `parameters.uri`."""

    _session: ort.InferenceSession
    _input_names: list[str]
    _output_names: list[str]

    async def load(self) -> bool:
        path = await get_model_uri(self.settings, wellknown_filenames=["model.onnx"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        self._input_names = [tensor.name for tensor in self._session.get_inputs()]
        self._output_names = [tensor.name for tensor in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds: dict[str, np.ndarray] = {}
        for request_input in payload.inputs:
            if request_input.name not in self._input_names:
                raise InferenceError(f"model {self.name} has no input {request_input.name!r}")
            feeds[request_input.name] = self.decode(request_input, default_codec=NumpyCodec)
        missing = set(self._input_names) - feeds.keys()
        if missing:
            raise InferenceError(f"model {self.name} needs the inputs {sorted(missing)}")
        results = self._session.run(self._output_names, feeds)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output(name, np.asarray(value))
                for name, value in zip(self._output_names, results, strict=True)
            ],
        )
