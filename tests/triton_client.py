"""Send one batch to a V2 server with tritonclient's HTTP client, in its own process.

    python tests/triton_client.py URL MODEL BATCH.npy OUT.npy {json|binary}

Prints the response document (without its outputs) as JSON and saves the
``probabilities`` output to ``OUT.npy``.

Why a process of its own: tritonclient's HTTP client runs on gevent, and its
``InferenceServerClient.__del__`` calls ``close()``, which joins a gevent pool. When
the client sits in a reference cycle, the garbage collector runs that on whatever
thread triggers a collection (in the test process: one of Beam's or a proxy's), and
gevent's hub belongs to the thread that made it: the test run segfaulted that way in
CI (see the README's development notes). Here the client lives and dies on one thread.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.http as triton


def main(url: str, model: str, batch_path: str, out_path: str, mode: str) -> None:
    binary = mode == "binary"
    batch = np.load(batch_path)
    with triton.InferenceServerClient(url=url.removeprefix("http://")) as client:
        if not (client.is_server_ready() and client.is_model_ready(model)):
            raise SystemExit(f"{url} is not ready to serve {model}")
        inp = triton.InferInput("image", list(batch.shape), "FP32")
        inp.set_data_from_numpy(batch, binary_data=binary)
        out = triton.InferRequestedOutput("probabilities", binary_data=binary)
        # JSON mode: tritonclient sends no Content-Type and KServe would ask for the binary header
        headers = None if binary else {"Content-Type": "application/json"}
        result = client.infer(model, [inp], outputs=[out], request_id="42", headers=headers)
        np.save(out_path, result.as_numpy("probabilities"))
        response = {k: v for k, v in result.get_response().items() if k != "outputs"}
    print(json.dumps(response))


if __name__ == "__main__":
    main(*sys.argv[1:6])
