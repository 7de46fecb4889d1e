"""What a data pickle may build, and how numpy objects are rebuilt from it without running anything.

:mod:`eegvision.readers.safe_pickle` walks a pickle's opcode stream; this module holds the rest:

* the errors (:class:`PickleFormatError`, :class:`UnsafePickleError`, :class:`TruncatedFileError`);
* :class:`ArrayRef`, where an array's buffer lies in the file (memory-mapped or streamed, never read
  while parsing), and the placeholders the parser keeps on its stack (payloads, pending dtypes/arrays);
* the few callables a data file may name (numpy's array, dtype and scalar reconstructors,
  ``_codecs.encode``, ``bytes``), and :class:`_ValueBuilder`, which interprets their ``REDUCE`` and
  ``BUILD`` opcodes as arrays, dtypes and plain values. Nothing named in a file is ever called.
"""

from __future__ import annotations

import codecs
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArrayRef", "PickleFormatError", "TruncatedFileError", "UnsafePickleError"]

#: Largest lazily skipped text/bytes payload that may be materialised as a plain Python value.
MATERIALIZE_LIMIT = 64 << 20


class PickleFormatError(ValueError):
    """The file is not a pickle this parser understands (malformed or unsupported construct)."""


class UnsafePickleError(PickleFormatError):
    """The pickle asks to call something that a data file never contains."""


class TruncatedFileError(PickleFormatError):
    """The file ends before the pickle does (incomplete download or copy)."""


# ---------------------------------------------------------------------------------------------
# Values the parser puts on its stack besides plain Python data.


@dataclass(frozen=True)
class ArrayRef:
    """Where a numpy array lives inside a pickle file, without reading it.

    Attributes
    ----------
    path : Path
        The pickle file.
    dtype : numpy.dtype
        Element type (byte order included).
    shape : tuple of int
        Array shape.
    order : {"C", "F"}
        Memory layout of the stored buffer.
    offset : int
        Byte offset of the stored buffer within ``path``.
    stored_nbytes : int
        Length of the stored payload in bytes.
    encoding : {"raw", "latin1"}
        ``"raw"``: the payload is the array buffer itself (protocols 3-5), so
        ``np.memmap(path, dtype, "r", offset, shape, order)`` reads it in place.
        ``"latin1"``: protocol 2 stored the buffer as UTF-8 text of latin-1 characters
        (``_codecs.encode``); it must be decoded (see :meth:`memmap`).
    """

    path: Path
    dtype: np.dtype
    shape: tuple[int, ...]
    order: str
    offset: int
    stored_nbytes: int
    encoding: str = "raw"

    @property
    def nbytes(self) -> int:
        """Size of the array buffer in bytes (after decoding)."""
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def in_place(self) -> bool:
        """True when the buffer can be memory-mapped directly from the file."""
        return self.encoding == "raw"

    def memmap(self) -> np.ndarray:
        """A read-only array over the buffer without loading it into memory.

        Raw buffers are memory-mapped in place. Protocol-2 (latin-1 text) buffers cannot be, so
        they are decoded in 16 MB blocks into an anonymous temporary file, which is mapped instead
        (constant memory; the temporary disappears when the array is released).
        """
        if math.prod(self.shape) == 0:
            out = np.empty(self.shape, self.dtype, order=self.order)
            out.flags.writeable = False
            return out
        if self.in_place:
            return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape,
                             order=self.order)
        tmp = tempfile.TemporaryFile(prefix="eegvision-decoded-")
        for block in self.iter_decoded(16 << 20):
            tmp.write(block)
        tmp.flush()
        return np.memmap(tmp, dtype=self.dtype, mode="r", shape=self.shape, order=self.order)

    def read(self) -> np.ndarray:
        """Read the whole array into memory (for small arrays such as ``times``)."""
        if self.in_place:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                buf = f.read(self.nbytes)
        else:
            buf = b"".join(self.iter_decoded(16 << 20))
        if len(buf) != self.nbytes:
            raise TruncatedFileError(
                f"{self.path}: expected {self.nbytes} bytes of array data at offset {self.offset}, "
                f"found {len(buf)}; the file is truncated or corrupt."
            )
        return np.frombuffer(buf, dtype=self.dtype).reshape(self.shape, order=self.order)

    def iter_decoded(self, block: int) -> Any:
        """Yield the decoded buffer in blocks of about ``block`` stored bytes."""
        decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass") if not self.in_place else None
        total = 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            remaining = self.stored_nbytes
            while remaining > 0:
                chunk = f.read(min(block, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                if decoder is not None:
                    chunk = decoder.decode(chunk, final=remaining == 0).encode("latin-1")
                total += len(chunk)
                yield chunk
        if total != self.nbytes:
            raise TruncatedFileError(
                f"{self.path}: the array at offset {self.offset} should hold {self.nbytes} bytes but "
                f"{total} were found; the file is truncated or corrupt."
            )


@dataclass
class _Payload:
    """A bytes/str payload of the pickle stream, read (``value``) or skipped (``value is None``)."""

    offset: int
    stored_nbytes: int
    kind: str  # "bytes" | "bytearray" | "text" | "str8" (py2 str)
    value: Any = None
    encoding: str = "raw"  # "latin1" once passed through _codecs.encode


@dataclass(frozen=True)
class _Global:
    name: str  # canonical: "reconstruct", "ndarray", "dtype", "scalar", "frombuffer", "codecs.encode"
    qualname: str


@dataclass(eq=False)
class _PendingDtype:
    """``numpy.dtype(code, False, True)`` awaiting its BUILD state (BUILD fills ``result``)."""

    base: np.dtype
    result: Any = None


@dataclass(eq=False)
class _PendingArray:
    """``_reconstruct(ndarray, (0,), b'b')`` awaiting its BUILD state (BUILD fills ``result``).

    BUILD mutates the object in place in real pickles, and the memo may hold a reference to it
    taken before BUILD; keeping one placeholder object and filling ``result`` mirrors that.
    """

    result: Any = None


def _unwrap(value: Any) -> Any:
    if isinstance(value, (_PendingDtype, _PendingArray)) and value.result is not None:
        return value.result
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    return value




_ALLOWED_GLOBALS: dict[tuple[str, str], str] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_mod, "_reconstruct")] = "reconstruct"
    _ALLOWED_GLOBALS[(_mod, "scalar")] = "scalar"
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED_GLOBALS[(_mod, "_frombuffer")] = "frombuffer"
_ALLOWED_GLOBALS[("numpy", "ndarray")] = "ndarray"
_ALLOWED_GLOBALS[("numpy", "dtype")] = "dtype"
_ALLOWED_GLOBALS[("_codecs", "encode")] = "codecs.encode"
# Protocol 2 pickles an empty ``bytes`` as ``bytes()`` (e.g. the buffer of an empty array).
_ALLOWED_GLOBALS[("__builtin__", "bytes")] = "bytes"
_ALLOWED_GLOBALS[("builtins", "bytes")] = "bytes"

# Element types a data file may use: bool, integers, floats, complex, fixed-width strings, objects
# (object arrays only ever hold values this parser built itself).
_DTYPE_RE = re.compile(r"^(b1|\?|[iu][1248]|f[248]|f16|c(8|16|32)|[US]\d+|O[48]?)$")


class _ValueBuilder:
    """The parser's half that builds values: the allowed calls, ``BUILD`` states, the final result.

    Subclasses set ``path`` (the file, for messages and lazily read payloads) and ``pos`` (the byte
    offset of the opcode being processed).
    """

    path: Path
    pos: int

    def _bad(self, what: str) -> PickleFormatError:
        return PickleFormatError(
            f"{self.path}: unsupported or malformed pickle content at byte {self.pos}: {what}. "
            "eegvision reads only data pickles (dicts, lists, strings, numbers and numpy arrays) "
            "such as the THINGS-EEG2 preprocessed files."
        )

    # -- globals and calls ----------------------------------------------------------------------
    def find_global(self, module: str, name: str) -> _Global:
        key = _ALLOWED_GLOBALS.get((module, name))
        if key is None:
            raise UnsafePickleError(
                f"Refusing to read {self.path}: at byte {self.pos} the pickle asks to call "
                f"{module}.{name}, which is not part of a THINGS-EEG2 data file. Loading it with "
                "pickle.load or np.load(allow_pickle=True) would run that code. eegvision never "
                "executes pickles; it reads only dicts, lists, strings, numbers and numpy arrays. "
                "Delete the file and download it again from the original source."
            )
        return _Global(key, f"{module}.{name}")

    def reduce(self, func: Any, args: Any) -> Any:
        args = _unwrap(args)
        if not isinstance(func, _Global):
            raise self._bad(f"REDUCE on a non-callable value ({type(func).__name__})")
        if not isinstance(args, tuple):
            raise self._bad(f"{func.qualname} called with non-tuple arguments")
        if func.name == "reconstruct":
            # _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills in.
            if (len(args) == 3 and isinstance(args[0], _Global) and args[0].name == "ndarray"
                    and isinstance(args[1], tuple)):
                return _PendingArray()
            raise self._bad(f"{func.qualname} with unexpected arguments")
        if func.name == "dtype":
            if not args or not isinstance(args[0], str) or not _DTYPE_RE.match(args[0]):
                raise self._bad(f"numpy.dtype({args[0] if args else ''!r}) is not a supported element type")
            return _PendingDtype(np.dtype(args[0]))
        if func.name == "codecs.encode":
            if (len(args) == 2 and isinstance(args[0], _Payload) and args[0].kind == "text"
                    and args[1] in ("latin1", "latin-1")):
                src = args[0]
                value = src.value.encode("latin-1") if src.value is not None else None
                return _Payload(src.offset, src.stored_nbytes, "bytes", value, "latin1")
            if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
                return args[0].encode("latin-1")
            raise self._bad("_codecs.encode with arguments other than (text, 'latin1')")
        if func.name == "bytes":
            if args:
                raise self._bad("bytes() called with arguments")
            return b""
        if func.name == "scalar":
            if len(args) != 2 or not isinstance(args[0], np.dtype) or args[0].hasobject:
                raise self._bad("numpy scalar of an unsupported type")
            raw = self.small_bytes(args[1], "a numpy scalar")
            if len(raw) != args[0].itemsize:
                raise self._bad("numpy scalar with the wrong number of bytes")
            return np.frombuffer(raw, dtype=args[0])[0]
        if func.name == "frombuffer":
            # numpy >= 1.16, protocol 5: _frombuffer(buffer, dtype, shape, order)
            if len(args) != 4 or not isinstance(args[1], np.dtype) or args[1].hasobject:
                raise self._bad("numpy._frombuffer with unexpected arguments")
            buf, dtype, shape, order = args
            return self.make_array(buf, dtype, self.check_shape(shape), order)
        raise self._bad(f"{func.qualname} cannot be called directly")

    def build(self, obj: Any, state: Any) -> Any:
        state = _unwrap(state)
        if isinstance(obj, (_PendingDtype, _PendingArray)) and obj.result is not None:
            raise self._bad("BUILD applied twice to the same object")
        if isinstance(obj, _PendingDtype):
            obj.result = self._build_dtype(obj, state)
            return obj
        if isinstance(obj, _PendingArray):
            obj.result = self._build_array(state)
            return obj
        raise self._bad(f"BUILD on a {type(obj).__name__} (setting state on objects is not allowed)")

    def _build_dtype(self, obj: _PendingDtype, state: Any) -> np.dtype:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise self._bad("numpy.dtype state has an unexpected form")
        byteorder, subarray, names, fields = state[1:5]
        if subarray is not None or names is not None or fields is not None:
            raise self._bad("structured or sub-array dtypes are not supported")
        dtype = obj.base
        if byteorder in ("<", ">"):
            dtype = dtype.newbyteorder(byteorder)
        elif byteorder not in ("|", "="):
            raise self._bad(f"numpy.dtype byte order {byteorder!r}")
        return dtype

    def _build_array(self, state: Any) -> Any:
        if not isinstance(state, tuple):
            raise self._bad("numpy array state has an unexpected form")
        if len(state) == 5:
            state = state[1:]  # drop the version number
        if len(state) != 4:
            raise self._bad("numpy array state has an unexpected form")
        shape, dtype, is_fortran, raw = state
        if not isinstance(dtype, np.dtype):
            raise self._bad("numpy array state without a dtype")
        return self.make_array(raw, dtype, self.check_shape(shape), "F" if is_fortran else "C")

    def check_shape(self, shape: Any) -> tuple[int, ...]:
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                   for n in shape):
            raise self._bad(f"array shape {shape!r}")
        return shape

    def make_array(self, raw: Any, dtype: np.dtype, shape: tuple[int, ...], order: str) -> Any:
        if order not in ("C", "F"):
            raise self._bad(f"array order {order!r}")
        count = math.prod(shape)
        if dtype.hasobject:
            # Object arrays pickle their items as a list of (already vetted) plain values.
            if not isinstance(raw, list) or len(raw) != count:
                raise self._bad("object array whose items are not a plain list")
            arr = np.empty(count, dtype=object)
            arr[:] = [self.resolve(v) for v in raw]
            return arr.reshape(shape, order=order)
        if isinstance(raw, (bytes, bytearray)):
            # Already decoded in memory (e.g. protocol 2 through _codecs.encode of a short str).
            if len(raw) != count * dtype.itemsize:
                raise self._bad(f"array data of {len(raw)} bytes for shape {shape} of {dtype}")
            arr = np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order=order)
            return arr
        if not isinstance(raw, _Payload) or raw.kind == "text":
            raise self._bad("array data is not a bytes block")
        ref = ArrayRef(self.path, dtype, shape, order, raw.offset, raw.stored_nbytes, raw.encoding)
        if raw.encoding == "raw" and raw.stored_nbytes != ref.nbytes:
            raise self._bad(f"array data of {raw.stored_nbytes} bytes for shape {shape} of {dtype} "
                            f"({ref.nbytes} bytes)")
        return ref

    def small_bytes(self, value: Any, what: str) -> bytes:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, _Payload) and value.kind != "text" and value.value is not None:
            return bytes(value.value)
        raise self._bad(f"{what} whose data is not a short bytes block")

    # -- final values ---------------------------------------------------------------------------
    def resolve(self, value: Any, seen: dict[int, Any] | None = None) -> Any:
        """Turn parser placeholders into plain Python values (ArrayRefs stay)."""
        if seen is None:
            seen = {}
        if id(value) in seen:
            return seen[id(value)]
        if isinstance(value, (_PendingDtype, _PendingArray)) and value.result is not None:
            return self.resolve(value.result, seen)
        if isinstance(value, _Payload):
            if value.value is None:
                if value.stored_nbytes > MATERIALIZE_LIMIT:
                    raise self._bad(f"a {value.stored_nbytes}-byte string or bytes value outside any array")
                with open(self.path, "rb") as f:
                    f.seek(value.offset)
                    data = f.read(value.stored_nbytes)
                value.value = data.decode("utf-8", "surrogatepass") if value.kind == "text" else data
            if value.kind == "str8":
                return value.value.decode("latin-1")
            if value.kind == "bytearray":
                return bytearray(value.value)
            return value.value
        if isinstance(value, (_Global, _PendingArray, _PendingDtype)):
            raise self._bad(f"an incomplete object ({type(value).__name__.strip('_')}) in the result")
        if isinstance(value, list):
            out: Any = []
            seen[id(value)] = out
            out.extend(self.resolve(v, seen) for v in value)
            return out
        if isinstance(value, tuple):
            out = tuple(self.resolve(v, seen) for v in value)
            seen[id(value)] = out
            return out
        if isinstance(value, dict):
            out = {}
            seen[id(value)] = out
            for k, v in value.items():
                out[k] = self.resolve(v, seen)
            return out
        return value

    def key(self, value: Any) -> Any:
        value = self.resolve(value)
        if isinstance(value, (list, dict, bytearray, ArrayRef, np.ndarray)):
            raise self._bad(f"a dict key of type {type(value).__name__}")
        return value
