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
and seeks over it, so a multi-GB array is described by an :class:`~eegvision.readers.pickle_values.ArrayRef`
(dtype, shape, order, byte offset) that the caller memory-maps in place or streams in chunks.

This module is the opcode machine (stack, memo, one handler per opcode); the values it builds, the
allowed callables and the errors are in :mod:`eegvision.readers.pickle_values`.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import struct
from pathlib import Path
from typing import Any

from eegvision.checks import check_file
from eegvision.readers.pickle_values import (
    ArrayRef,
    PickleFormatError,
    TruncatedFileError,
    UnsafePickleError,
    _Payload,
    _ValueBuilder,
)

__all__ = ["load_data_pickle", "parse_data_pickle"]

#: Payloads up to this size are read into memory while parsing; larger ones are skipped (seek).
INLINE_LIMIT = 1 << 20


class _Mark:
    __slots__ = ()


_MARK = _Mark()


class _Parser(_ValueBuilder):
    """The opcode machine: reads opcodes, keeps the stack and memo; values are built by :class:`_ValueBuilder`."""

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
    path = check_file(path, "Pickle file", "Check the path (a THINGS-EEG2 file is preprocessed_eeg_*.npy).")
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
