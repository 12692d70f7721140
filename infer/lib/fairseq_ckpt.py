"""Read and write fairseq checkpoints without fairseq and without running pickled code.

A fairseq checkpoint (`hubert_base.pt`) is a `torch.save`d dict::

    {"cfg": {...plain dicts...}, "model": {name: tensor}, "task_state": {"dictionaries": [Dictionary]},
     "args": None, "optimizer_history": [...], "extra_state": {...}, "last_optimizer_state": None}

`task_state` holds a `fairseq.data.dictionary.Dictionary` object, so a plain `pickle` load needs fairseq
and, like any pickle, may run whatever callable the file names. `load_fairseq_checkpoint` unpickles with
a restricted `find_class`: the few globals needed to rebuild tensors and containers resolve to the real
objects; every other class or function name resolves to an `InertObject` subclass that only records the
arguments and state it is given. A file naming `os.system` therefore yields an inert record of the call,
never the call. (This is the "restricting globals" technique of the `pickle` documentation; the
C unpickler routes every GLOBAL, STACK_GLOBAL, INST, OBJ and EXT opcode through `find_class`.)

`save_fairseq_checkpoint` writes the same on-disk layout, with `InertObject`s pickled under their
recorded class path, so stand-in files are byte-for-byte the format that fairseq writes.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from infer.lib.errors import WeightsError

# Globals a fairseq checkpoint needs that rebuild data, never run user-chosen code.
# (Storage classes, e.g. `torch HalfStorage`, are resolved by torch.load before our `find_class`.)
_ALLOWED_GLOBALS: dict[tuple[str, str], str] = {
    ("collections", "OrderedDict"): "collections.OrderedDict",
    ("torch._utils", "_rebuild_tensor"): "torch._utils._rebuild_tensor",
    ("torch._utils", "_rebuild_tensor_v2"): "torch._utils._rebuild_tensor_v2",
    ("torch._utils", "_rebuild_parameter"): "torch._utils._rebuild_parameter",
    ("torch", "Size"): "torch.Size",
    ("_codecs", "encode"): "_codecs.encode",
    ("builtins", "set"): "builtins.set",
    ("builtins", "frozenset"): "builtins.frozenset",
    ("builtins", "bytearray"): "builtins.bytearray",
    ("builtins", "complex"): "builtins.complex",
    ("__builtin__", "set"): "builtins.set",
}
_TORCH_DTYPES = {
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
    "half",
    "float",
    "double",
    "long",
    "int",
}


def _resolve_allowed(module: str, name: str) -> Any | None:
    if (module, name) in _ALLOWED_GLOBALS:
        target = _ALLOWED_GLOBALS[(module, name)]
        mod, _, attr = target.rpartition(".")
        if mod == "builtins":
            import builtins

            return getattr(builtins, attr)
        if mod == "collections":
            return getattr(collections, attr)
        if mod == "_codecs":
            import _codecs

            return getattr(_codecs, attr)
        import torch

        if mod == "torch._utils":
            return getattr(torch._utils, attr)
        return getattr(torch, attr)
    if module == "torch" and name in _TORCH_DTYPES:
        import torch

        value = getattr(torch, name)
        if isinstance(value, torch.dtype):
            return value
    return None


class InertObject:
    """What an unknown pickled class or function becomes: a record, never behaviour.

    `pickled_class` is the dotted path the file named (e.g. `fairseq.data.dictionary.Dictionary`),
    `args` the constructor/call arguments, `state` what BUILD set, `items`/`list_items` what
    SETITEMS/APPENDS added (for dict or list subclasses).
    """

    pickled_class: ClassVar[str] = "?"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any
    items: dict[Any, Any]
    list_items: list[Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = super().__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = None
        obj.items = {}
        obj.list_items = []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls the class; nothing to run
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    def __reduce__(self) -> Any:  # how `save_fairseq_checkpoint` writes it back (see _InertPickler)
        return (type(self), self.args, self.state)

    def __repr__(self) -> str:
        return f"InertObject({self.pickled_class}, args={self.args!r}, state keys={_keys(self.state)})"


def _keys(state: Any) -> Any:
    return sorted(state) if isinstance(state, dict) else type(state).__name__


def inert_class(dotted: str) -> type[InertObject]:
    """A fresh `InertObject` subclass that pickles as the global `dotted` (`module.Name`)."""
    module, _, name = dotted.rpartition(".")
    cls = cast(type[InertObject], types.new_class(name, (InertObject,), {}))
    cls.__module__ = module
    cls.__qualname__ = name
    cls.pickled_class = dotted
    return cls


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals are the allow-list above; anything else becomes an `InertObject`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inert_classes: dict[str, type[InertObject]] = {}

    def find_class(self, module: str, name: str) -> Any:
        allowed = _resolve_allowed(module, name)
        if allowed is not None:
            return allowed
        dotted = f"{module}.{name}"
        if dotted not in self.inert_classes:
            self.inert_classes[dotted] = inert_class(dotted)
        return self.inert_classes[dotted]


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


if TYPE_CHECKING:

    class _PurePickler(pickle._Pickler):
        """The members of the pure-Python pickler used below, which typeshed leaves undeclared."""

        proto: int

        def save(self, obj: Any, save_persistent_id: bool = True) -> None: ...
        def write(self, data: bytes) -> Any: ...
        def memoize(self, obj: Any) -> None: ...
        def save_global(self, obj: Any, name: str | None = None) -> None: ...
        def save_reduce(
            self, func: Any, args: Any, state: Any = None, *rest: Any, obj: Any = None, **kw: Any
        ) -> None: ...

else:
    _PurePickler = pickle._Pickler


class _InertPickler(_PurePickler):
    """The pure-Python pickler, writing `InertObject` classes as GLOBAL <their recorded path>.

    The stock pickler checks that a class can be imported by its name; ours are placeholders for
    classes (fairseq's) that are deliberately not importable here.
    """

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if isinstance(obj, type) and issubclass(obj, InertObject):
            module, _, qual = obj.pickled_class.rpartition(".")
            if self.proto >= 4:
                self.save(module)
                self.save(qual)
                self.write(pickle.STACK_GLOBAL)
            else:
                self.write(pickle.GLOBAL + f"{module}\n{qual}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)

    def save_reduce(self, func: Any, args: Any, state: Any = None, *rest: Any, obj: Any = None, **kw: Any) -> None:
        # An InertObject built with no args pickles exactly as a plain object does (protocol 2:
        # `cls, (), NEWOBJ, state, BUILD`), which is what fairseq's Dictionary looks like on disk.
        if isinstance(func, type) and issubclass(func, InertObject) and self.proto >= 2 and args == ():
            self.save(func)
            self.save(())
            self.write(pickle.NEWOBJ)
            if obj is not None:
                self.memoize(obj)
            if state is not None:
                self.save(state)
                self.write(pickle.BUILD)
            return
        super().save_reduce(func, args, state, *rest, obj=obj, **kw)


_RESTRICTED_PICKLE = types.SimpleNamespace(
    __name__="rvc_restricted_pickle",
    Unpickler=RestrictedUnpickler,
    load=_restricted_load,
    Pickler=_InertPickler,
    dump=pickle.dump,
    HIGHEST_PROTOCOL=pickle.HIGHEST_PROTOCOL,
    DEFAULT_PROTOCOL=pickle.DEFAULT_PROTOCOL,
)


def load_fairseq_checkpoint(path: str | os.PathLike[str] | io.BytesIO) -> dict[str, Any]:
    """Load a fairseq checkpoint on the CPU with the restricted unpickler; return its top-level dict.

    Works for torch's zip format and the legacy format. Unknown classes come back as `InertObject`s.
    Raises `WeightsError` when the file is not a torch checkpoint or its top level is not a dict.
    """
    import torch

    try:
        obj = torch.load(path, map_location="cpu", pickle_module=_RESTRICTED_PICKLE, weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, KeyError, ValueError, TypeError) as e:
        raise WeightsError(f"{path}: not a readable fairseq/torch checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a fairseq checkpoint dict at the top level, got {type(obj).__name__}")
    return obj


def save_fairseq_checkpoint(obj: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """`torch.save` (zip format, pickle protocol 2 as fairseq) allowing `InertObject`s; atomic.

    torch names the zip's inner folder after the file, so the temporary file has the final name, in a
    hidden temporary folder beside `path`, and is renamed into place when complete.
    """
    import shutil
    import tempfile

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}.tmp-"))
    try:
        tmp = tmp_dir / path.name
        torch.save(obj, tmp, pickle_module=_RESTRICTED_PICKLE, pickle_protocol=2)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
