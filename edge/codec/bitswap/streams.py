"""Bit-swap's streams: one constriction ``AnsCoder`` per independent stream, and the process pool.

:class:`LocalStreams` keeps the coders of one job in this process. It takes requests per
stream: the bin layout, the integer parameters ``(n, j)`` (see
:mod:`edge.codec.bitswap.discretize`) and, to encode, the symbols. ``decode`` pops symbols from
the top of each stack; ``encode`` pushes them so that a later ``decode`` with the same
parameters returns them in the same order.

:class:`StreamPool` splits the streams of a job into shards, stream ``s`` in worker
``s % workers``; each worker runs the whole coding of its shard (networks and ANS) on its own
core. The networks are what costs (two thirds of the CPU time), so they must be spread too;
the streams are independent, so a shard's words are the same as when one process codes them
all. The pool uses the *spawn* start method (CUDA does not survive a fork).
"""
from __future__ import annotations

import multiprocessing
import time
from typing import Sequence

import constriction
import numpy as np

from edge.codec.bitswap.discretize import BinLayout, latent_layout, pixel_layout
from edge.errors import CodingError

# Rows of probabilities handed to constriction at once (bounds memory: 1024 x 1024 x 4 bytes).
CHUNK_ROWS = 1024

Request = tuple  # (n, j) to decode, (symbols, n, j) to encode; arrays of one stream


def layout_by_name(name: str) -> BinLayout:
    if name == "pixel256":
        return pixel_layout()
    if name.startswith("latent"):
        return latent_layout(int(name[len("latent"):]))
    raise CodingError(f"unknown bin layout {name!r}")


def _family():
    return constriction.stream.model.Categorical(perfect=False)


def decode_one(coder, layout: BinLayout, n: np.ndarray, j: np.ndarray) -> np.ndarray:
    family = _family()
    n, j = n.ravel(), j.ravel()
    out = np.empty(n.size, dtype=np.int32)
    for start in range(0, n.size, CHUNK_ROWS):
        stop = start + CHUNK_ROWS
        probabilities = layout.probabilities(n[start:stop], j[start:stop])
        try:
            out[start:stop] = coder.decode(family, probabilities)
        except (ValueError, RuntimeError, AssertionError) as error:
            raise CodingError(f"ANS decoding failed ({error}): the stream is damaged") from None
    return out


def encode_one(coder, layout: BinLayout, symbols: np.ndarray, n: np.ndarray, j: np.ndarray) -> None:
    family = _family()
    symbols = np.ascontiguousarray(symbols.ravel(), dtype=np.int32)
    n, j = n.ravel(), j.ravel()
    if symbols.size and (symbols.min() < 0 or symbols.max() >= layout.bins):
        raise CodingError(f"{layout.name}: symbol outside 0..{layout.bins - 1}")
    # A stack: push the last chunk first so that decoding returns chunk 0 first.
    starts = list(range(0, symbols.size, CHUNK_ROWS))
    for start in reversed(starts):
        stop = start + CHUNK_ROWS
        probabilities = layout.probabilities(n[start:stop], j[start:stop])
        try:
            coder.encode_reverse(symbols[start:stop], family, probabilities)
        except (ValueError, RuntimeError, AssertionError) as error:
            raise CodingError(f"ANS encoding failed: {error}") from None


def make_coder(words: np.ndarray):
    words = np.ascontiguousarray(words, dtype=np.uint32)
    try:
        return constriction.stream.stack.AnsCoder(words)
    except Exception as error:  # constriction rejects e.g. a stream ending in a zero word
        raise CodingError(f"not a valid ANS stream ({error})") from None


class LocalStreams:
    """Coders in this process (the sequential reference mode, and small jobs)."""

    def __init__(self, seeds: Sequence[np.ndarray]):
        self.coders = [make_coder(words) for words in seeds]

    @property
    def count(self) -> int:
        return len(self.coders)

    def decode(self, layout_name: str, requests: dict[int, Request]) -> dict[int, np.ndarray]:
        layout = layout_by_name(layout_name)
        return {sid: decode_one(self.coders[sid], layout, *request) for sid, request in requests.items()}

    def encode(self, layout_name: str, requests: dict[int, Request]) -> None:
        layout = layout_by_name(layout_name)
        for sid, request in requests.items():
            encode_one(self.coders[sid], layout, *request)

    def words(self) -> list[np.ndarray]:
        return [coder.get_compressed().copy() for coder in self.coders]

    def num_bits(self) -> list[int]:
        return [int(coder.num_bits()) for coder in self.coders]

    def close(self) -> None:
        self.coders = []


# --- process pool ----------------------------------------------------------------------------
def _worker_main(connection) -> None:
    # Imported here, in the worker: edge.codec.bitswap.coding imports this module (its stream pool).
    import torch

    from edge.codec.bitswap.coding import CanonicalNetworks, decode_patches, encode_patches
    from edge.codec.bitswap.model import BitswapConfig, BitswapVAE

    torch.set_num_threads(1)          # one worker per core
    nets, model_key = None, None
    while True:
        try:
            command, payload = connection.recv()
        except (EOFError, OSError):     # the parent is gone
            return
        try:
            if command == "stop":
                connection.send(("ok", None))
                return
            if command == "model":
                model_key, config, state, bins = payload
                model = BitswapVAE(BitswapConfig(**config))
                model.load_state_dict({name: torch.from_numpy(value) for name, value in state.items()})
                nets = CanonicalNetworks(model.eval(), bins)
                result = None
            elif command in ("encode", "decode"):
                key, job = payload
                if nets is None or key != model_key:
                    raise CodingError("stream worker holds another model than the job's")
                result = encode_patches(nets, *job) if command == "encode" else decode_patches(nets, *job)
            elif command == "cpu":
                result = time.process_time()
            elif command == "warm":
                for name in payload:
                    layout_by_name(name).build_all()
                result = None
            else:
                raise CodingError(f"unknown pool command {command!r}")
            connection.send(("ok", result))
        except CodingError as error:
            connection.send(("coding-error", str(error)))
        except Exception as error:  # report, keep the worker alive for the next job
            connection.send(("error", f"{type(error).__name__}: {error}"))


class StreamPool:
    """Worker processes that code shards of a job's streams; reuse one pool for many jobs.

    Create it before any CUDA use (it uses the spawn start method anyway). Use as a context
    manager or call :meth:`close`.
    """

    def __init__(self, workers: int = 2):
        if workers < 1:
            raise ValueError("a stream pool needs at least one worker")
        context = multiprocessing.get_context("spawn")
        self.connections, self.processes = [], []
        for _ in range(workers):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main, args=(child,), daemon=True)
            process.start()
            child.close()
            self.connections.append(parent)
            self.processes.append(process)
        self._model_key = None

    @property
    def workers(self) -> int:
        return len(self.connections)

    def __enter__(self) -> "StreamPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, command: str, payloads: list) -> list:
        """Send one command to each worker (as many as there are payloads), then gather the answers."""
        connections = self.connections[: len(payloads)]
        for connection, payload in zip(connections, payloads):
            connection.send((command, payload))
        results, failure = [], None
        for connection in connections:
            try:
                status, result = connection.recv()
            except (EOFError, OSError):
                status, result = "error", "the worker process died"
            if status != "ok" and failure is None:
                failure = (status, result)
            results.append(result)
        if failure is not None:
            status, message = failure
            if status == "coding-error":
                raise CodingError(message)
            raise CodingError(f"stream worker failed: {message}")
        return results

    def cpu_seconds(self) -> float:
        """CPU time the workers have used so far (all of them together)."""
        return float(sum(self._call("cpu", [None] * self.workers)))

    def warm(self, layout_names: Sequence[str]) -> None:
        """Build the tables of these layouts in every worker ahead of the first job."""
        self._call("warm", [list(layout_names)] * self.workers)

    def _use_model(self, nets) -> object:
        """Send the networks' weights to the workers unless they hold them already."""
        key = nets.fingerprint
        if key != self._model_key:
            state = {name: value.detach().numpy().copy() for name, value in nets.net.state_dict().items()}
            config = dict(nets.config.__dict__)
            self._call("model", [(key, config, state, nets.latent.bins)] * self.workers)
            self._model_key = key
        return key

    def encode(self, nets, shards: list[tuple]) -> list:
        """Each shard ``(patches, seeds)`` coded by one worker: the words of its streams."""
        key = self._use_model(nets)
        return self._call("encode", [(key, shard) for shard in shards])

    def decode(self, nets, shards: list[tuple]) -> list:
        """Each shard ``(words, count)`` decoded by one worker: (patches, remaining words)."""
        key = self._use_model(nets)
        return self._call("decode", [(key, shard) for shard in shards])

    def close(self) -> None:
        for connection, process in zip(self.connections, self.processes):
            try:
                connection.send(("stop", None))
                connection.recv()
            except (OSError, EOFError):
                pass
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        self.connections, self.processes = [], []
