"""One compiled MuJoCo model per distinct model, shared by the envs of a vector env.

Why: per env, nearly all memory is the ``MjModel``'s buffer, not the simulation state. dm_control's
suite models carry an 11 MiB skybox texture; a Meta-World model is 20 MiB of meshes, their BVHs and
textures; an ``MjData`` is under 1 MiB resident (its arena is reserved, but only the pages a step
uses are ever touched). Compiling the model once and giving every env of that model its own
``MjData`` removes the per-env model copies and most of the start-up time (the compile).

Why it stays exact: some tasks write model fields at reset. Meta-World moves bodies and sites (the
box of ``button-press``, the goal site of ``reach``, ...) and writes its mocap welds; dm_control's
reacher and finger move and resize their targets. Each env owns a :class:`ModelSlot` holding an
image of the model's parameter fields (every field but the asset arrays: textures, meshes, BVHs,
height fields, skins, names). Before any call into an env its slot is entered: the fields that some
env of the model has ever changed ("dirty" fields) are written back from that env's image, so each
env sees exactly the model it would see if it had compiled its own. After a reset the parameters are
compared with the env's image: what changed becomes this env's own values (a field changed for the
first time becomes dirty for every env of the model; the others keep its compiled value).

What would break it, and is caught: a task writing the model outside a reset (none of the mt80 tasks
does; ``tests/test_shared_models.py`` runs every one of them and compares the whole buffer, assets
included). A write to a dirty field during a step is caught right after that step, a write to any
other parameter at the next reset of any env of the model, and a change of ``model.opt`` (not
swapped) at every reset: each raises :class:`SharedModelError` rather than letting envs see each
other's models.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import mujoco

# Large arrays that only rendering and collision geometry read and no task writes; they are left
# out of the per-env images (the shared-model tests check every mt80 task never writes them).
_ASSET_FIELDS = re.compile(
    r"^(tex_data|hfield_data|bvh_\w+|oct_\w+|skin_\w+|flexvert_\w+|flex_vert\w*|flex_elem\w*"
    r"|mesh_(vert|normal|texcoord|face|facenormal|facetexcoord|graph|poly\w*))$"
)


class SharedModelError(RuntimeError):
    """An env changed its shared model in a way the per-env images cannot keep apart."""


def _array_fields(model: mujoco.MjModel) -> list[tuple[str, np.ndarray]]:
    """(name, flat uint8 view) of every non-empty array field of ``model``, in name order."""
    fields = []
    for name in dir(model):
        if name.startswith("_"):
            continue
        value = getattr(model, name)
        if isinstance(value, np.ndarray) and value.size:
            if not value.flags.c_contiguous:  # pragma: no cover - the bindings' arrays are contiguous
                raise SharedModelError(f"model field {name} is not contiguous")
            fields.append((name, value.reshape(-1).view(np.uint8)))
    return fields


def _options(model: mujoco.MjModel) -> bytes:
    """``model.opt`` as bytes, to check that no env changes it."""
    opt = model.opt
    parts = []
    for name in sorted(n for n in dir(opt) if not n.startswith("_")):
        value = getattr(opt, name)
        if isinstance(value, np.ndarray | int | float):
            parts.append(np.asarray(value, dtype=np.float64).tobytes())
    return b"".join(parts)


class SharedModel:
    """A compiled model and the bookkeeping that lets several envs use it as if each had its own.

    :param model: the compiled ``mujoco.MjModel``
    :param wrapper: the object the env library holds for it (dm_control's ``wrapper.MjModel``), if any
    """

    def __init__(self, model: mujoco.MjModel, wrapper: Any = None) -> None:
        self.model = model
        self.wrapper = wrapper
        params = [(n, v) for n, v in _array_fields(model) if not _ASSET_FIELDS.match(n)]
        self._names = [n for n, _ in params]
        self._views = [v for _, v in params]
        sizes = np.array([v.size for v in self._views], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.pristine = self.snapshot()
        self._options = _options(model)
        # (field index, view, start, stop in the image) of the fields some env has changed
        self._dirty: list[tuple[int, np.ndarray, int, int]] = []
        self._owner: ModelSlot | None = None

    @property
    def dirty_fields(self) -> tuple[str, ...]:
        """Names of the parameter fields that some env of this model has changed."""
        return tuple(self._names[i] for i, *_ in self._dirty)

    @property
    def image_bytes(self) -> int:
        """Size of one env's image of the parameter fields."""
        return int(self._offsets[-1])

    def snapshot(self) -> np.ndarray:
        """The model's parameter fields, concatenated as bytes."""
        return np.concatenate(self._views)

    def slot(self) -> ModelSlot:
        """A new env's slot, starting from the compiled model."""
        return ModelSlot(self)

    def _changed_fields(self, a: np.ndarray, b: np.ndarray) -> list[int]:
        where = np.flatnonzero(a != b)
        return sorted(set((np.searchsorted(self._offsets, where, side="right") - 1).tolist()))

    def _mark_dirty(self, fields: list[int]) -> None:
        known = {i for i, *_ in self._dirty}
        for i in fields:
            if i not in known:
                self._dirty.append((i, self._views[i], int(self._offsets[i]), int(self._offsets[i + 1])))

    def _check_options(self) -> None:
        if _options(self.model) != self._options:
            raise SharedModelError(
                "an env changed model.opt of a shared model; its envs can no longer share it "
                "(build them with share_models=False)"
            )


class ModelSlot:
    """One env's view of a :class:`SharedModel`: its own values of the fields envs change.

    Call :meth:`enter` before anything that reads the model (a step), :meth:`before_reset` and
    :meth:`after_reset` around a reset (or the env's construction), and :meth:`after_step` after
    a step.
    """

    def __init__(self, shared: SharedModel) -> None:
        self.shared = shared
        self.image = shared.pristine.copy()

    def enter(self) -> None:
        """Put this env's values into the shared model (a no-op if it was the last to use it)."""
        shared = self.shared
        if shared._owner is not self:
            image = self.image
            for _, view, start, stop in shared._dirty:
                view[:] = image[start:stop]
            shared._owner = self

    def before_reset(self) -> None:
        """Enter, and check that nothing changed the model since this env's last reset."""
        self.enter()
        shared = self.shared
        now = shared.snapshot()
        if not np.array_equal(now, self.image):
            names = [shared._names[i] for i in shared._changed_fields(now, self.image)]
            raise SharedModelError(
                f"model fields {', '.join(names)} of a shared model were changed outside a reset; "
                "its envs can no longer share it (build them with share_models=False)"
            )
        shared._check_options()

    def after_reset(self) -> None:
        """Record what the reset wrote into the model as this env's own values."""
        shared = self.shared
        now = shared.snapshot()
        if not np.array_equal(now, self.image):
            shared._mark_dirty(shared._changed_fields(now, self.image))
            self.image = now
        shared._check_options()

    def after_step(self) -> None:
        """Check that the step left the changed fields as this env had them."""
        image = self.image
        for i, view, start, stop in self.shared._dirty:
            if view.tobytes() != image[start:stop].tobytes():
                raise SharedModelError(
                    f"a step changed model field {self.shared._names[i]} of a shared model; its "
                    "envs can no longer share it (build them with share_models=False)"
                )

    def release(self) -> None:
        """Forget this env (on close), so the next env to enter restores its own values."""
        if self.shared._owner is self:
            self.shared._owner = None


class ModelCache:
    """Compiled models by source, so that envs built with the same cache share them.

    A cache is meant for building a batch of envs (a vector env's shard); the envs keep their
    models alive, so drop the cache once they are built. With ``fork``, a cache filled in the parent
    process is shared copy-on-write by every worker: the assets are never written, so each model's
    pages exist once on the machine, whatever the number of workers.
    """

    def __init__(self) -> None:
        self._models: dict[Hashable, SharedModel] = {}
        self._by_model: dict[int, SharedModel] = {}

    def __len__(self) -> int:
        return len(self._models)

    def get(self, key: Hashable, compile_model: Callable[[], Any], wrapped: bool = False) -> SharedModel:
        """The shared model of ``key``, compiled by ``compile_model()`` the first time.

        :param wrapped: ``compile_model`` returns dm_control's wrapper (``.ptr`` is the model)
        """
        shared = self._models.get(key)
        if shared is None:
            compiled = compile_model()
            shared = SharedModel(compiled.ptr, compiled) if wrapped else SharedModel(compiled)
            self._models[key] = shared
            self._by_model[id(shared.model)] = shared
        return shared

    def of(self, model: mujoco.MjModel) -> SharedModel:
        """The shared model whose compiled model is ``model``."""
        return self._by_model[id(model)]

    def models(self) -> list[SharedModel]:
        return list(self._models.values())

    @contextlib.contextmanager
    def dm_control_compiles(self) -> Iterator[None]:
        """Within it, dm_control's model compiles (``Physics.from_xml_string``) come from this cache.

        dm_control's tasks compile their model inside their constructors, so the compile itself is
        the one place to share it. The patch is undone on leaving, also after an error.
        """
        from dm_control.mujoco.wrapper import core

        original = core.MjModel.__dict__["from_xml_string"]
        cache = self

        def from_xml_string(cls, xml_string, assets=None):
            key = ("dm_control-xml", cls, xml_string, tuple(sorted((assets or {}).items())))
            compile_model = lambda: original.__get__(None, cls)(xml_string, assets=assets)  # noqa: E731
            return cache.get(key, compile_model, wrapped=True).wrapper

        core.MjModel.from_xml_string = classmethod(from_xml_string)
        try:
            yield
        finally:
            core.MjModel.from_xml_string = original
