"""A restricted pickle *parser* for data-only pickles (THINGS-EEG2 ``preprocessed_eeg_*.npy``).

The THINGS-EEG2 preprocessed files are pickled dicts (``pickle.dump(..., protocol=4)``) with a
``.npy`` name. ``pickle.load`` and ``np.load(allow_pickle=True)`` execute whatever callables a
pickle names, so a tampered download could run arbitrary code. This module never unpickles:
it walks the opcode stream itself and understands only the constructs a data file needs:

* protocols 2 to 5 (and the protocol-0/1 data opcodes the Python 2 pickler used inside them);
* ``dict``, ``list``, ``tuple``, ``str``, ``bytes``, ``int``, ``float``, ``bool``, ``None``;
* numpy arrays as numpy 1.x and 2.x pickle them: ``numpy[._]core.multiarray._reconstruct`` +
  ``numpy.ndarray`` + ``numpy.dtype`` + ``BUILD`` with the raw bytes (protocols 2-4, and
  non-contiguous arrays), ``numpy[._]core.numeric._frombuffer`` with an in-band buffer
  (protocol 5), ``_codecs.encode(text, "latin1")`` (how protocol 2 stores ``bytes``);
* numpy scalars (``numpy[._]core.multiarray.scalar``).

Any other callable (``GLOBAL``/``STACK_GLOBAL``), and ``INST``/``OBJ``/``NEWOBJ``/extension or
persistent-id opcodes, is refused with :class:`UnsafePickleError` naming the file and the
callable, before anything could run (nothing is ever called).

Large payloads are *not read*: the parser records where an array's raw buffer starts in the file
and seeks over it, so a multi-GB array is described by an :class:`ArrayRef` (dtype, shape, order,
byte offset) that the caller memory-maps in place or streams in chunks.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ArrayRef",
    "PickleFormatError",
    "TruncatedFileError",
    "UnsafePickleError",
    "load_data_pickle",
    "parse_data_pickle",
]

#: Payloads up to this size are read into memory while parsing; larger ones are skipped (seek).
INLINE_LIMIT = 1 << 20
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


class _Mark:
    __slots__ = ()


_MARK = _Mark()

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


# ---------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, path: Path, f: io.BufferedReader, size: int) -> None:
        self.path = path
        self.f = f
        self.size = size
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.protocol = 0
        self.pos = 0  # offset of the opcode being processed

    # -- low-level reading ----------------------------------------------------------------------
    def _truncated(self, what: str) -> TruncatedFileError:
        return TruncatedFileError(
            f"{self.path} is truncated: it ends at byte {self.size} while reading {what} (opcode at "
            f"byte {self.pos}). The download or copy is incomplete; fetch the file again."
        )

    def read(self, n: int, what: str = "an opcode argument") -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise self._truncated(what)
        return data

    def readline(self, what: str = "a text argument") -> bytes:
        line = self.f.readline(4096)
        if not line.endswith(b"\n"):
            raise self._truncated(what) if len(line) < 4096 else self._bad(f"an over-long {what}")
        return line[:-1]

    def _bad(self, what: str) -> PickleFormatError:
        return PickleFormatError(
            f"{self.path}: unsupported or malformed pickle content at byte {self.pos}: {what}. "
            "eegvision reads only data pickles (dicts, lists, strings, numbers and numpy arrays) "
            "such as the THINGS-EEG2 preprocessed files."
        )

    def payload(self, n: int, kind: str) -> _Payload | str:
        start = self.f.tell()
        if start + n > self.size:
            raise TruncatedFileError(
                f"{self.path} is truncated: a {n}-byte data block starts at byte {start} and needs the "
                f"file to be at least {start + n} bytes long, but it has {self.size} "
                f"({start + n - self.size} bytes missing). The download or copy is incomplete; "
                "fetch the file again."
            )
        if n <= INLINE_LIMIT:
            value = self.f.read(n)
            if kind == "text":  # short strings are plain values (names, keys, dtype codes)
                return value.decode("utf-8", "surrogatepass")
            return _Payload(start, n, kind, value)
        self.f.seek(n, os.SEEK_CUR)
        return _Payload(start, n, kind, None)

    # -- stack helpers --------------------------------------------------------------------------
    def pop_mark(self) -> list[Any]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1:]
                del self.stack[i:]
                return items
        raise self._bad("a MARK is missing")

    def pop(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise self._bad("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise self._bad("stack underflow")
        return self.stack[-1]

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> Any:
        ops = _OPS
        while True:
            self.pos = self.f.tell()
            code = self.f.read(1)
            if not code:
                raise TruncatedFileError(
                    f"{self.path} is truncated: it ends at byte {self.size} before the pickle's STOP "
                    "opcode. The download or copy is incomplete; fetch the file again."
                )
            handler = ops.get(code)
            if handler is None:
                name = _OPCODE_NAMES.get(code, f"byte 0x{code[0]:02x}")
                if code in _REFUSED:
                    raise UnsafePickleError(
                        f"Refusing to read {self.path}: at byte {self.pos} the pickle uses {name}, "
                        f"which {_REFUSED[code]}. A data file never needs this, and loading it with "
                        "pickle.load or np.load(allow_pickle=True) could run code. eegvision reads only "
                        "dicts, lists, strings, numbers and numpy arrays."
                    )
                raise self._bad(f"opcode {name} is not supported")
            if handler(self) is _STOP:
                if len(self.stack) != 1:
                    raise self._bad("the stack does not hold exactly one object at STOP")
                return self.stack.pop()

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
        if True:
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
        if True:
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


class _StopSignal:
    pass


_STOP = _StopSignal()


def _op_proto(p: _Parser) -> None:
    p.protocol = p.read(1)[0]
    if not 2 <= p.protocol <= 5:
        raise PickleFormatError(
            f"{p.path}: pickle protocol {p.protocol} is not supported (only protocols 2 to 5, which "
            "Python 3 and numpy write). Re-save the file with pickle protocol 4."
        )


def _push(value: Any):
    def handler(p: _Parser) -> None:
        p.stack.append(value() if callable(value) else value)

    return handler


def _setitems(p: _Parser) -> None:
    items = p.pop_mark()
    d = p.top()
    if not isinstance(d, dict) or len(items) % 2:
        raise p._bad("SETITEMS on a non-dict")
    for i in range(0, len(items), 2):
        d[p.key(items[i])] = items[i + 1]


def _setitem(p: _Parser) -> None:
    value = p.pop()
    key = p.pop()
    d = p.top()
    if not isinstance(d, dict):
        raise p._bad("SETITEM on a non-dict")
    d[p.key(key)] = value


def _appends(p: _Parser) -> None:
    items = p.pop_mark()
    lst = p.top()
    if not isinstance(lst, list):
        raise p._bad("APPENDS on a non-list")
    lst.extend(items)


def _append(p: _Parser) -> None:
    value = p.pop()
    lst = p.top()
    if not isinstance(lst, list):
        raise p._bad("APPEND on a non-list")
    lst.append(value)


def _dict(p: _Parser) -> None:
    items = p.pop_mark()
    if len(items) % 2:
        raise p._bad("DICT with an odd number of items")
    p.stack.append({p.key(items[i]): items[i + 1] for i in range(0, len(items), 2)})


def _tuple_n(n: int):
    def handler(p: _Parser) -> None:
        if n == 0:
            p.stack.append(())
            return
        items = [p.pop() for _ in range(n)][::-1]
        p.stack.append(tuple(items))

    return handler


def _int_fmt(fmt: str, size: int):
    def handler(p: _Parser) -> None:
        p.stack.append(struct.unpack(fmt, p.read(size))[0])

    return handler


def _long_n(size: int):
    def handler(p: _Parser) -> None:
        n = struct.unpack("<B" if size == 1 else "<i", p.read(size))[0]
        if n < 0 or n > 1024:
            raise p._bad(f"an integer of {n} bytes")
        p.stack.append(int.from_bytes(p.read(n), "little", signed=True))

    return handler


def _text_int(p: _Parser) -> None:
    line = p.readline("an integer")
    if line == b"01":
        p.stack.append(True)
    elif line == b"00":
        p.stack.append(False)
    else:
        try:
            p.stack.append(int(line.rstrip(b"L")))
        except ValueError:
            raise p._bad(f"integer text {line[:20]!r}") from None


def _text_float(p: _Parser) -> None:
    try:
        p.stack.append(float(p.readline("a float")))
    except ValueError:
        raise p._bad("float text") from None


def _binfloat(p: _Parser) -> None:
    p.stack.append(struct.unpack(">d", p.read(8))[0])


def _payload_op(fmt: str | None, size: int, kind: str):
    def handler(p: _Parser) -> None:
        n = struct.unpack(fmt, p.read(size))[0] if fmt else p.read(1)[0]
        p.stack.append(p.payload(n, kind))

    return handler


def _text_unicode(p: _Parser) -> None:
    p.stack.append(p.readline("a string").decode("raw-unicode-escape"))


def _text_string(p: _Parser) -> None:
    line = p.readline("a string")
    if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
        p.stack.append(codecs.escape_decode(line[1:-1])[0].decode("latin-1"))
    else:
        raise p._bad("a malformed STRING")


def _global(p: _Parser) -> None:
    module = p.readline("a module name").decode("utf-8", "replace")
    name = p.readline("a name").decode("utf-8", "replace")
    p.stack.append(p.find_global(module, name))


def _stack_global(p: _Parser) -> None:
    name = p.resolve(p.pop())
    module = p.resolve(p.pop())
    if not isinstance(module, str) or not isinstance(name, str):
        raise p._bad("STACK_GLOBAL with non-string names")
    p.stack.append(p.find_global(module, name))


def _reduce(p: _Parser) -> None:
    args = p.pop()
    func = p.pop()
    p.stack.append(p.reduce(func, args))


def _build(p: _Parser) -> None:
    state = p.pop()
    obj = p.pop()
    p.stack.append(p.build(obj, state))


def _memo_put(fmt: str | None, size: int):
    def handler(p: _Parser) -> None:
        if fmt is None:
            idx = int(p.readline("a memo index"))
        else:
            idx = struct.unpack(fmt, p.read(size))[0]
        p.memo[idx] = p.top()

    return handler


def _memoize(p: _Parser) -> None:
    p.memo[len(p.memo)] = p.top()


def _memo_get(fmt: str | None, size: int):
    def handler(p: _Parser) -> None:
        if fmt is None:
            idx = int(p.readline("a memo index"))
        else:
            idx = struct.unpack(fmt, p.read(size))[0]
        if idx not in p.memo:
            raise p._bad(f"memo entry {idx} used before it was stored")
        p.stack.append(p.memo[idx])

    return handler


def _frame(p: _Parser) -> None:
    p.read(8)  # frame length: only a read-ahead hint


def _pop(p: _Parser) -> None:
    if p.stack and p.stack[-1] is _MARK:
        p.stack.pop()
    else:
        p.pop()


def _pop_mark(p: _Parser) -> None:
    p.pop_mark()


def _dup(p: _Parser) -> None:
    p.stack.append(p.top())


def _mark(p: _Parser) -> None:
    p.stack.append(_MARK)


def _list(p: _Parser) -> None:
    p.stack.append(p.pop_mark())


def _tuple(p: _Parser) -> None:
    p.stack.append(tuple(p.pop_mark()))


def _stop(p: _Parser) -> _StopSignal:
    return _STOP


_OPS = {
    pickle.PROTO: _op_proto, pickle.FRAME: _frame, pickle.STOP: _stop,
    pickle.MARK: _mark, pickle.POP: _pop, pickle.POP_MARK: _pop_mark, pickle.DUP: _dup,
    pickle.NONE: _push(None), pickle.NEWTRUE: _push(True), pickle.NEWFALSE: _push(False),
    pickle.INT: _text_int, pickle.BININT: _int_fmt("<i", 4), pickle.BININT1: _int_fmt("<B", 1),
    pickle.BININT2: _int_fmt("<H", 2), pickle.LONG1: _long_n(1), pickle.LONG4: _long_n(4),
    pickle.FLOAT: _text_float, pickle.BINFLOAT: _binfloat,
    pickle.EMPTY_DICT: _push(dict), pickle.DICT: _dict, pickle.SETITEM: _setitem, pickle.SETITEMS: _setitems,
    pickle.EMPTY_LIST: _push(list), pickle.LIST: _list, pickle.APPEND: _append, pickle.APPENDS: _appends,
    pickle.EMPTY_TUPLE: _tuple_n(0), pickle.TUPLE: _tuple, pickle.TUPLE1: _tuple_n(1),
    pickle.TUPLE2: _tuple_n(2), pickle.TUPLE3: _tuple_n(3),
    pickle.SHORT_BINUNICODE: _payload_op(None, 1, "text"), pickle.BINUNICODE: _payload_op("<I", 4, "text"),
    pickle.BINUNICODE8: _payload_op("<Q", 8, "text"), pickle.UNICODE: _text_unicode,
    pickle.SHORT_BINBYTES: _payload_op(None, 1, "bytes"), pickle.BINBYTES: _payload_op("<I", 4, "bytes"),
    pickle.BINBYTES8: _payload_op("<Q", 8, "bytes"), pickle.BYTEARRAY8: _payload_op("<Q", 8, "bytearray"),
    pickle.SHORT_BINSTRING: _payload_op(None, 1, "str8"), pickle.BINSTRING: _payload_op("<i", 4, "str8"),
    pickle.STRING: _text_string,
    pickle.GLOBAL: _global, pickle.STACK_GLOBAL: _stack_global, pickle.REDUCE: _reduce, pickle.BUILD: _build,
    pickle.PUT: _memo_put(None, 0), pickle.BINPUT: _memo_put("<B", 1), pickle.LONG_BINPUT: _memo_put("<I", 4),
    pickle.MEMOIZE: _memoize,
    pickle.GET: _memo_get(None, 0), pickle.BINGET: _memo_get("<B", 1), pickle.LONG_BINGET: _memo_get("<I", 4),
}

_REFUSED = {
    pickle.INST: "creates an instance of an arbitrary class",
    pickle.OBJ: "creates an instance of an arbitrary class",
    pickle.NEWOBJ: "creates an instance of an arbitrary class",
    pickle.NEWOBJ_EX: "creates an instance of an arbitrary class",
    pickle.EXT1: "looks up a registered extension callable",
    pickle.EXT2: "looks up a registered extension callable",
    pickle.EXT4: "looks up a registered extension callable",
    pickle.PERSID: "asks the loader to resolve a persistent object",
    pickle.BINPERSID: "asks the loader to resolve a persistent object",
    pickle.NEXT_BUFFER: "refers to an out-of-band buffer that is not stored in the file",
    pickle.READONLY_BUFFER: "refers to an out-of-band buffer that is not stored in the file",
    pickle.EMPTY_SET: "builds a set (not part of a data file)",
    pickle.FROZENSET: "builds a frozenset (not part of a data file)",
    pickle.ADDITEMS: "builds a set (not part of a data file)",
}

_OPCODE_NAMES = {}
for _name in dir(pickle):
    _val = getattr(pickle, _name)
    if _name.isupper() and isinstance(_val, bytes) and len(_val) == 1 and not _name.startswith("_"):
        _OPCODE_NAMES.setdefault(_val, _name)


# ---------------------------------------------------------------------------------------------


def parse_data_pickle(path: str | os.PathLike) -> Any:
    """Parse a data-only pickle without executing it.

    Parameters
    ----------
    path : str or PathLike
        The pickle file (for THINGS-EEG2: ``preprocessed_eeg_{training,test}.npy``).

    Returns
    -------
    object
        The pickled value made of ``dict``/``list``/``tuple``/``str``/``bytes``/numbers, numpy
        scalars and object arrays; every numeric or string numpy array is an :class:`ArrayRef`
        (use ``.memmap()`` or ``.read()``). Large payloads are never read.

    Raises
    ------
    UnsafePickleError
        The pickle names a callable (or opcode) a data file never contains; the message names it.
    TruncatedFileError
        The file ends before the pickle (or an array buffer) does.
    PickleFormatError
        Anything else this parser does not understand.
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    size = path.stat().st_size
    with open(path, "rb", buffering=1 << 16) as f:
        head = f.read(6)
        if head.startswith(b"\x93NUMPY"):
            raise PickleFormatError(
                f"{path} is a plain .npy array file, not a pickled dict; read it with "
                "numpy.load(path, mmap_mode='r')."
            )
        if not head.startswith(b"\x80"):
            raise PickleFormatError(
                f"{path} is not a pickle written with protocol 2 or later (it starts with {head[:2]!r}). "
                "Expected a THINGS-EEG2 preprocessed file (a pickled dict)."
                if head else f"{path} is empty (0 bytes); fetch the file again."
            )
        f.seek(0)
        parser = _Parser(path, f, size)
        result = parser.run()
        return parser.resolve(result)


def load_data_pickle(path: str | os.PathLike, materialize_below: int = INLINE_LIMIT) -> Any:
    """Like :func:`parse_data_pickle`, with arrays smaller than ``materialize_below`` bytes read.

    Larger arrays stay :class:`ArrayRef` objects; small ones (``times``, channel arrays) become
    ordinary read-only numpy arrays.
    """

    def walk(v: Any) -> Any:
        if isinstance(v, ArrayRef):
            return v.read() if v.nbytes < materialize_below else v
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, tuple):
            return tuple(walk(x) for x in v)
        return v

    return walk(parse_data_pickle(path))
