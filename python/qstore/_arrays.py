"""NumPy arrays to and from the byte views the native layer takes, sparse inputs, qubit-order
conversion, and the size and duration strings of the public API."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import InvalidState

#: dtypes the engine stores (NumPy names).
SUPPORTED_DTYPES = (
    "complex64",
    "complex128",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)

KINDS = ("auto", "statevector", "density_matrix", "array")


def to_ndarray(data: Any) -> np.ndarray:
    """Any array-like (NumPy, lists, torch/jax/autograd tensors) as an ndarray, without a copy
    where the input already is one."""
    if isinstance(data, np.ndarray):
        return data
    detach = getattr(data, "detach", None)
    if callable(detach):  # torch tensors
        data = detach()
        if hasattr(data, "cpu"):
            data = data.cpu()
        if hasattr(data, "numpy"):
            return np.asarray(data.numpy())
    return np.asarray(data)


def byte_view(a: np.ndarray) -> Tuple[np.ndarray, str, list]:
    """A C-contiguous little-endian array as ``(uint8 view, dtype name, shape)``.

    The view shares the caller's memory. Arrays that are not C-contiguous or not
    little-endian are converted first (one copy, unavoidable)."""
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    name = a.dtype.name
    if name not in SUPPORTED_DTYPES:
        raise InvalidState(
            f"dtype {a.dtype} is not supported; use one of {', '.join(SUPPORTED_DTYPES)}"
        )
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    flat = a.reshape(-1)
    return flat.view(np.uint8), name, [int(d) for d in a.shape]


def default_kind(kind: Optional[str], a: np.ndarray) -> str:
    """``None`` means: infer a state kind for complex data (refusing shapes that are not
    states), store anything real-valued or integer as a plain array."""
    if kind is None:
        return "auto" if a.dtype.kind == "c" else "array"
    if kind not in KINDS:
        raise InvalidState(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def tag_map(tags: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """User tags as str -> str."""
    if not tags:
        return {}
    return {str(k): str(v) for k, v in tags.items()}


def output_buffer(
    out: Optional[np.ndarray], dtype: np.dtype, shape: Tuple[int, ...]
) -> np.ndarray:
    """``out`` checked (dtype, size, C-contiguous, writable), or a new NumPy array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise InvalidState("out must be a numpy.ndarray")
    if out.dtype != dtype:
        raise InvalidState(f"out has dtype {out.dtype}, the state is {dtype}")
    if out.size != int(np.prod(shape, dtype=np.uint64)):
        raise InvalidState(f"out has {out.size} elements, {int(np.prod(shape))} are needed")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise InvalidState("out must be C-contiguous and writable")
    return out


def into_view(out: np.ndarray) -> np.ndarray:
    """The uint8 view the native layer fills."""
    return out.reshape(-1).view(np.uint8)


_BITS = re.compile(r"^[01]+$")


def sparse_input(
    amplitudes: Union[Mapping[Any, Any], Tuple[Sequence[int], Sequence[complex]]],
    n_qubits: Optional[int],
    dtype: str,
) -> Tuple[int, np.ndarray, np.ndarray]:
    """``(n_qubits, uint64 indices, complex values)`` from a dict of index or bit-string
    keys (Qiskit order: the leftmost character is the highest qubit; ``0x..`` hex keys as in
    Aer's ``save_statevector_dict``) or an ``(indices, values)`` pair. Beyond 64 qubits each
    index is ``ceil(n_qubits / 64)`` little-endian uint64 words."""
    if dtype not in ("complex64", "complex128"):
        raise InvalidState(f"sparse amplitudes must be complex64 or complex128, got {dtype}")
    if isinstance(amplitudes, Mapping):
        keys = list(amplitudes.keys())
        values = list(amplitudes.values())
        idx = []
        width = None
        for k in keys:
            if isinstance(k, str):
                s = k.replace("_", "").replace(" ", "")
                if s.startswith(("0x", "0X")):
                    try:
                        idx.append(int(s, 16))
                    except ValueError:
                        raise InvalidState(f"basis key {k!r} is not a hex number") from None
                    continue
                if not _BITS.match(s):
                    raise InvalidState(
                        f"basis key {k!r} is neither an integer nor a bit string of 0 and 1"
                    )
                if width is not None and len(s) != width:
                    raise InvalidState(
                        f"bit-string keys have different lengths ({width} and {len(s)})"
                    )
                width = len(s)
                idx.append(int(s, 2))
            elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
                idx.append(int(k))
            else:
                raise InvalidState(f"basis key {k!r} is neither an integer nor a bit string")
        if n_qubits is None:
            if width is None:
                raise InvalidState("n_qubits is needed when keys are integers")
            n_qubits = width
        elif width is not None and width != n_qubits:
            raise InvalidState(f"bit strings have {width} characters but n_qubits={n_qubits}")
    else:
        try:
            idx, values = amplitudes
        except (TypeError, ValueError):
            raise InvalidState("sparse amplitudes must be a dict or an (indices, values) pair") from None
        if n_qubits is None:
            raise InvalidState("n_qubits is needed for (indices, values) input")
    if int(n_qubits) > 64:
        # Wide indices: ceil(n / 64) little-endian words each, least significant first.
        n = int(n_qubits)
        words = (n + 63) // 64
        flat = np.empty(len(idx) * words, dtype=np.uint64)
        for k, i in enumerate(idx):
            try:
                i = int(i)
            except (TypeError, ValueError):
                raise InvalidState(f"basis index {i!r} is not an integer") from None
            if i < 0 or i >> n:
                raise InvalidState(f"basis index {i} is outside 0..2^{n}")
            for j in range(words):
                flat[k * words + j] = (i >> (64 * j)) & 0xFFFF_FFFF_FFFF_FFFF
        vals = np.ascontiguousarray(np.asarray(values, dtype=dtype).reshape(-1))
        if len(idx) != len(vals):
            raise InvalidState(f"{len(idx)} indices but {len(vals)} values")
        return n, flat, vals
    for i in idx if isinstance(idx, list) else []:
        if i < 0 or i >= 1 << 64:
            raise InvalidState(f"basis index {i} is outside 0..2^64")
    try:
        indices = np.ascontiguousarray(np.asarray(idx, dtype=np.uint64).reshape(-1))
    except (OverflowError, ValueError, TypeError) as e:
        raise InvalidState(f"basis indices are not unsigned 64-bit integers: {e}") from None
    vals = np.ascontiguousarray(np.asarray(values, dtype=dtype).reshape(-1))
    if len(indices) != len(vals):
        raise InvalidState(f"{len(indices)} indices but {len(vals)} values")
    return int(n_qubits), indices, vals


def n_qubits_of(dim: int) -> int:
    n = int(dim).bit_length() - 1
    if dim < 2 or (1 << n) != dim:
        raise InvalidState(f"dimension {dim} is not a power of two >= 2")
    return n


def reverse_qubits(a: np.ndarray) -> np.ndarray:
    """Swap big-endian and little-endian qubit order (Cirq/PennyLane <-> Qiskit/qstore) of a
    state vector (2^n) or density matrix (2^n x 2^n). Returns a new C-contiguous array."""
    if a.ndim == 1:
        n = n_qubits_of(a.shape[0])
        t = a.reshape((2,) * n).transpose(tuple(range(n - 1, -1, -1)))
    elif a.ndim == 2 and a.shape[0] == a.shape[1]:
        n = n_qubits_of(a.shape[0])
        axes = tuple(range(n - 1, -1, -1)) + tuple(range(2 * n - 1, n - 1, -1))
        t = a.reshape((2,) * (2 * n)).transpose(axes)
    else:
        raise InvalidState(f"shape {a.shape} is neither a state vector nor a density matrix")
    return np.ascontiguousarray(t).reshape(a.shape)


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtTpP]?)(i?[bB])?\s*$")


def parse_size(size: Union[int, str]) -> int:
    """Bytes from an int or a string like ``8GiB``, ``512M``, ``1.5GB`` (``KiB``/``K`` and
    friends are powers of 1024, ``KB``/``MB``/``GB`` powers of 1000)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size <= 0:
            raise InvalidState(f"size must be positive, got {size}")
        return int(size)
    if not isinstance(size, str):
        raise InvalidState(f"size must be an int or a string like '8GiB', got {size!r}")
    m = _SIZE.match(size)
    if not m:
        raise InvalidState(f"size {size!r} is not like '8GiB', '512M' or '1000000'")
    num, unit, suffix = m.group(1), m.group(2).upper(), m.group(3)
    power = " KMGTP".index(unit) if unit else 0
    base = 1000 if suffix in ("B", "b") and unit else 1024
    value = int(float(num) * base**power)
    if value <= 0:
        raise InvalidState(f"size {size!r} must be positive")
    return value


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d|w)?\s*$")


def parse_seconds(d: Union[int, float, str, _dt.timedelta]) -> float:
    """Seconds from a number, a ``timedelta`` or a string like ``30s``, ``10m``, ``1h``, ``7d``."""
    if isinstance(d, _dt.timedelta):
        return d.total_seconds()
    if isinstance(d, (int, float, np.integer, np.floating)) and not isinstance(d, bool):
        return float(d)
    if isinstance(d, str):
        m = _DURATION.match(d)
        if m:
            mult = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
            return float(m.group(1)) * mult[m.group(2) or "s"]
    raise InvalidState(f"duration {d!r} is not like '30s', '10m', '1h' or a number of seconds")
