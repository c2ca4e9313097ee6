"""Checkpoints: one safetensors file per checkpoint, written atomically, read without unpickling.

A checkpoint is any nested state (dicts, lists, tuples, tensors, numpy arrays, numbers, strings):
tensors go into the safetensors body under their path (``model/fc.weight``,
``optimizer/state/0/exp_avg``), everything else into a JSON header. Nothing is ever unpickled, so a
checkpoint from an untrusted source cannot run code. Files are written to a temporary name in the
same folder, flushed to disk and renamed, so a run killed mid-write never leaves a half file behind.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from torchsci.errors import CheckpointError

FORMAT = "torchsci-checkpoint"
VERSION = "1"


def _join(path: str, key: Any) -> str:
    return f"{path}/{key}" if path else str(key)


def _encode(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": path}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, _join(path, i), tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, _join(path, i), tensors) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v, _join(path, k), tensors) for k, v in obj.items()}
        return {"__items__": [[k, _encode(v, _join(path, k), tensors)] for k, v in obj.items()]}
    raise CheckpointError(
        f"cannot store {type(obj).__name__} at '{path}' in a checkpoint: only tensors, arrays, numbers, "
        "strings, lists, tuples and dicts are allowed (a state_dict() should return only those)."
    )


def _decode(obj: Any, handle: Any) -> Any:
    if isinstance(obj, list):
        return [_decode(v, handle) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return handle.get_tensor(obj["__tensor__"])
        if "__ndarray__" in obj:
            return handle.get_tensor(obj["__ndarray__"]).numpy()
        if "__tuple__" in obj:
            return tuple(_decode(v, handle) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {k: _decode(v, handle) for k, v in obj["__items__"]}
        return {k: _decode(v, handle) for k, v in obj.items()}
    return obj


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_state(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename).

    Examples
    --------
    >>> import tempfile, torch
    >>> from torchsci.checkpoint import save_state, load_state
    >>> p = save_state({"w": torch.ones(2), "step": 3, "betas": (0.9, 0.99)}, tempfile.mkdtemp() + "/a.ckpt")
    >>> s = load_state(p); s["step"], s["betas"], s["w"].tolist()
    (3, (0.9, 0.99), [1.0, 1.0])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    header = _encode(dict(state), "", tensors)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "version": VERSION, "state": json.dumps(header)})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def save_model(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write a registry model's weights and the arguments that build it, for :func:`torchsci.load_model`.

    The same header as the Trainer's checkpoints (``meta.model_spec``), without optimizer or run state:
    the file to hand on (or pass as ``model=``) once a model is assembled outside a training run. Written
    atomically (:func:`save_state`).

    Raises
    ------
    CheckpointError
        ``model`` was not built by :func:`torchsci.create_model` (or :func:`torchsci.load_model`), so
        nothing could rebuild it.

    Examples
    --------
    >>> import tempfile, torch, torchsci
    >>> from torchsci.checkpoint import save_model
    >>> mlp = torchsci.create_model("core/mlp", in_features=3, out_features=1)
    >>> p = save_model(mlp, tempfile.mkdtemp() + "/mlp.ckpt")
    >>> torch.equal(torchsci.load_model(p)(torch.ones(1, 3)), mlp(torch.ones(1, 3)))
    True
    """
    spec = getattr(model, "torchsci_spec", None)
    if not spec:
        raise CheckpointError(f"save_model({type(model).__name__}): the model was not built by torchsci.create_model, "
                              "so no file could say how to rebuild it; save its state_dict with safetensors instead.")
    state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    return save_state({"model": state, "meta": {"model_spec": spec}}, path)


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_state` (no unpickling).

    Raises
    ------
    CheckpointError
        The file does not exist, is truncated or corrupt, or is not a torchsci checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(
                    f"{path} is a safetensors file but not a torchsci checkpoint (no '{FORMAT}' header); "
                    "to load bare model weights use torchsci.checkpoint.load_weights(model, path)."
                )
            return _decode(json.loads(meta["state"]), handle)
    except SafetensorError as exc:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({exc}); resume from an earlier checkpoint in the same folder."
        ) from exc
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} could not be read: {exc}") from exc


def load_weights(model: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> torch.nn.Module:
    """Load model weights from a torchsci checkpoint or a bare safetensors weight file into ``model``.

    Raises
    ------
    CheckpointError
        Unreadable file, or weights whose names or shapes do not fit ``model``.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            is_ckpt = (handle.metadata() or {}).get("format") == FORMAT
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} is missing, truncated or not a safetensors file ({exc}).") from exc
    if is_ckpt:
        weights = load_state(path)["model"]
    else:
        from safetensors.torch import load_file

        weights = load_file(str(path))
    try:
        model.load_state_dict(weights, strict=strict)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in {path} do not fit {type(model).__name__}: {exc}") from exc
    return model


_STEP_FILE = re.compile(r"^step-(\d+)\.ckpt$")


class CheckpointDir:
    """A run's checkpoint folder: ``step-NNNNNNNNN.ckpt`` files plus ``last.ckpt`` and ``best.ckpt``.

    ``last.ckpt`` and ``best.ckpt`` are hard links to step files (copies where links are not possible),
    each replaced atomically. Only the newest ``keep_last`` step files are kept (all when ``None``).
    """

    def __init__(self, folder: str | os.PathLike, keep_last: int | None = 2) -> None:
        self.folder = Path(folder)
        self.keep_last = keep_last

    @property
    def last(self) -> Path:
        return self.folder / "last.ckpt"

    @property
    def best(self) -> Path:
        return self.folder / "best.ckpt"

    def step_path(self, step: int) -> Path:
        return self.folder / f"step-{step:09d}.ckpt"

    def save(self, state: Mapping[str, Any], step: int, is_best: bool = False) -> Path:
        path = save_state(state, self.step_path(step))
        self._link(path, self.last)
        if is_best:
            self._link(path, self.best)
        self._prune()
        return path

    def _link(self, src: Path, dst: Path) -> None:
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        if tmp.exists():
            tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            import shutil

            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

    def steps(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if _STEP_FILE.match(p.name))

    def _prune(self) -> None:
        if self.keep_last is None:
            return
        for old in self.steps()[: -self.keep_last or None]:
            old.unlink()
