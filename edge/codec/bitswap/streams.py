"""The ANS side of Bit-swap: one constriction ``AnsCoder`` per independent stream.

:class:`LocalStreams` keeps the coders in this process; :class:`StreamPool` keeps them in
worker processes, stream ``s`` in worker ``s % workers``, so the per-stream work (building the
probability rows from snapped parameters, then coding) of one lock-step round runs in parallel.
Both take the same requests: for each stream, the bin layout, the integer parameters ``(n, j)``
(see :mod:`edge.codec.bitswap.discretize`) and, to encode, the symbols.

``decode`` pops symbols from the top of each stack; ``encode`` pushes them so that a later
``decode`` with the same parameters returns them in the same order. The pool uses the *spawn*
start method (CUDA does not survive a fork) and its workers never import torch.
"""
from __future__ import annotations

import multiprocessing
import queue
import threading
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
def _read_commands(connection, inbox: queue.SimpleQueue) -> None:
    """Move every command into ``inbox`` as soon as it arrives.

    The parent may send the next request while this worker is still sending a large answer;
    if nobody read the pipe, both sides would block on a full pipe buffer for ever.
    """
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            message = ("stop", None)
        inbox.put(message)
        if message[0] == "stop":
            return


def _worker_main(connection) -> None:
    coders: dict[int, object] = {}
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_read_commands, args=(connection, inbox), daemon=True).start()
    while True:
        command, payload = inbox.get()
        try:
            if command == "stop":
                connection.send(("ok", None))
                return
            if command == "open":
                coders = {sid: make_coder(words) for sid, words in payload.items()}
                result = None
            elif command == "decode":
                layout_name, requests = payload
                layout = layout_by_name(layout_name)
                result = {sid: decode_one(coders[sid], layout, *req) for sid, req in requests.items()}
            elif command == "encode":
                layout_name, requests = payload
                layout = layout_by_name(layout_name)
                for sid, req in requests.items():
                    encode_one(coders[sid], layout, *req)
                result = None
            elif command == "words":
                result = {sid: coder.get_compressed().copy() for sid, coder in coders.items()}
            elif command == "cpu":
                result = time.process_time()
            elif command == "bits":
                result = {sid: int(coder.num_bits()) for sid, coder in coders.items()}
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
    """Worker processes holding the stream coders; reuse one pool for many jobs.

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
        self._count = 0

    @property
    def workers(self) -> int:
        return len(self.connections)

    def __enter__(self) -> "StreamPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, command: str, payloads: list) -> list:
        self._send(command, payloads)
        return self._receive()

    def _send(self, command: str, payloads: list) -> None:
        for connection, payload in zip(self.connections, payloads):
            connection.send((command, payload))

    def _receive(self) -> list:
        """One answer from every worker, in the order the commands were sent."""
        results, failure = [], None
        for connection in self.connections:
            status, result = connection.recv()
            if status != "ok" and failure is None:
                failure = (status, result)
            results.append(result)
        if failure is not None:
            status, message = failure
            if status == "coding-error":
                raise CodingError(message)
            raise CodingError(f"stream worker failed: {message}")
        return results

    def _split(self, items: dict[int, object]) -> list[dict[int, object]]:
        parts: list[dict[int, object]] = [{} for _ in self.connections]
        for sid, item in items.items():
            parts[sid % self.workers][sid] = item
        return parts

    def cpu_seconds(self) -> float:
        """CPU time the workers have used so far (all of them together)."""
        return float(sum(self._call("cpu", [None] * self.workers)))

    def warm(self, layout_names: Sequence[str]) -> None:
        """Build the tables of these layouts in every worker ahead of the first job."""
        self._call("warm", [list(layout_names)] * self.workers)

    # The StreamSet interface, bound to one job by open().
    def open(self, seeds: Sequence[np.ndarray]) -> "StreamPool":
        self._count = len(seeds)
        self._call("open", self._split(dict(enumerate(seeds))))
        return self

    @property
    def count(self) -> int:
        return self._count

    def decode(self, layout_name: str, requests: dict[int, Request]) -> dict[int, np.ndarray]:
        merged: dict[int, np.ndarray] = {}
        for part in self._call("decode", [(layout_name, part) for part in self._split(requests)]):
            merged.update(part)
        return merged

    def encode(self, layout_name: str, requests: dict[int, Request]) -> None:
        self._call("encode", [(layout_name, part) for part in self._split(requests)])

    # Pipelined use: submit several requests, then collect their answers in the same order.
    def submit(self, op: str, layout_name: str, requests: dict[int, Request]) -> None:
        if op not in ("decode", "encode"):
            raise CodingError(f"unknown stream operation {op!r}")
        self._send(op, [(layout_name, part) for part in self._split(requests)])

    def collect(self):
        """Answer of the oldest submitted request: decoded symbols by stream, or None for an encode."""
        parts = self._receive()
        if all(part is None for part in parts):
            return None
        merged: dict[int, np.ndarray] = {}
        for part in parts:
            merged.update(part or {})
        return merged

    def drain(self, count: int) -> None:
        """Read and drop the answers of ``count`` submitted requests (after a failure)."""
        for _ in range(count):
            for connection in self.connections:
                try:
                    connection.recv()
                except (OSError, EOFError):
                    pass

    def words(self) -> list[np.ndarray]:
        merged: dict[int, np.ndarray] = {}
        for part in self._call("words", [None] * self.workers):
            merged.update(part)
        return [merged[sid] for sid in range(self._count)]

    def num_bits(self) -> list[int]:
        merged: dict[int, int] = {}
        for part in self._call("bits", [None] * self.workers):
            merged.update(part)
        return [merged[sid] for sid in range(self._count)]

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
