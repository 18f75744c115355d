"""The spec JSON format (``arch.json``, the ``spec`` column of trials.csv): pydantic models of its structure.

Every constraint on a spec's structure lives here once: :class:`SpecDoc` validates a parsed JSON object (a bad one
raises :class:`SpecError` naming the source, the key path and the reason, like every other file pisearch reads)
and :class:`~pisearch.spec.ArchSpec` checks its own fields against the same model. What depends on the network's
geometry (which activation sites exist, a mask's shape) is checked where the geometry is known, in
:mod:`pisearch.spec.core`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from pisearch.config import UNION_TAG, ConfigModel, validate
from pisearch.errors import SpecError

ACT_KINDS = ("relu", "poly", "identity")
OFF_KINDS = ("identity", "poly")
BLOCK_EXPANSION = {"basic": 1, "bottleneck": 4}
STEM_KINDS = ("cifar", "imagenet")


class StageDoc(ConfigModel):
    """``depth`` blocks of one type, inner ``width`` channels, ``stride`` on the first block."""

    depth: int = Field(ge=1)
    width: int = Field(ge=1)
    stride: int = Field(1, ge=1)
    block: Literal[tuple(BLOCK_EXPANSION)] = "basic"


class StemDoc(ConfigModel):
    width: int = Field(64, ge=1)
    kind: Literal[STEM_KINDS] = "cifar"


class MaskDoc(ConfigModel):
    """Which positions keep their ReLU: ``shape`` ``[C]`` or ``[C, H, W]``, ``bits`` little-endian packed, base64."""

    shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=3)
    bits: str

    @field_validator("bits")
    @classmethod
    def _base64(cls, bits: str) -> str:
        try:
            base64.b64decode(bits, validate=True)
        except binascii.Error:
            raise ValueError("not valid base64") from None
        return bits

    def packed(self) -> bytes:
        """The mask bits as bytes."""
        return base64.b64decode(self.bits)


class ActDoc(ConfigModel):
    """An activation written as an object: ``kind``, and with a ``mask`` (relu only) what masked-off positions
    compute (``off``)."""

    kind: Literal[ACT_KINDS] = "relu"
    mask: MaskDoc | None = None
    off: Literal[OFF_KINDS] = "identity"


_KIND, _OBJECT = f"{UNION_TAG}kind", f"{UNION_TAG}object"
ActValue = Annotated[Annotated[Literal[ACT_KINDS], Tag(_KIND)] | Annotated[ActDoc, Tag(_OBJECT)],
                     Discriminator(lambda value: _KIND if isinstance(value, str) else _OBJECT)]


class SpecDoc(ConfigModel):
    """A whole spec; ``acts`` maps site names to an activation kind or an :class:`ActDoc` (missing sites: relu)."""

    stages: list[StageDoc]
    stem: StemDoc = StemDoc()
    num_classes: int = Field(10, ge=2)
    resolution: int = Field(32, ge=8)
    in_channels: int = Field(3, ge=1)
    preact: bool = False
    acts: dict[str, ActValue] = {}

    @field_validator("stages")
    @classmethod
    def _some(cls, stages: list[StageDoc]) -> list[StageDoc]:
        if not stages:
            raise ValueError("expected at least one stage")
        return stages


def parse_spec(obj: Any, source: str) -> SpecDoc:
    """Validate a parsed spec object; a problem raises ``SpecError("source: key.path: reason")``."""
    return validate(SpecDoc, obj, source, error=SpecError)


def parse_act(obj: Any, source: str) -> ActDoc:
    """Validate one activation object (a mapping; see :class:`ActDoc`)."""
    return validate(ActDoc, obj, source, error=SpecError)
