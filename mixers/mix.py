"""Mix specs: the weight argument of the combinator mixers (upsample, staged, interpolate).

A mix is written in a recipe as one of

- ``natural`` (proportional to each domain's training tokens) or ``uniform``;
- a ``{domain: weight}`` mapping (unlisted domains get 0; sums to 1 unless the mixer normalises);
- a nested mixer config, i.e. a mapping with a ``name`` key such as ``{name: temperature, tau: 3}``.

A fixed mix is resolved once to a vector. A nested mixer is evaluated at the *same* global progress
as its parent (its own fractions refer to the whole run), and the parent exposes the nested
mixer's phases and breakpoints so the plan, the LR and averaging can refer to them too.
(A domain literally called ``name`` therefore cannot be used in a weight mapping.)
"""

from __future__ import annotations

from numbers import Real
from typing import Annotated, Any, Union

import numpy as np
from pydantic import AfterValidator, BaseModel, ValidationError

from curriculum.errors import UserError
from curriculum.registry import validation_problems
from mixers.base import DomainInfo, Mixer, Phase
from mixers.registry import MIXERS
from mixers.static import resolve_weights

MIX_HELP = (
    "`natural`, `uniform`, a {domain: weight} mapping, or a nested mixer config "
    "({name: temperature, ...}) evaluated at the same point of training"
)


def non_numbers(weights: dict[str, Any]) -> dict[str, Any]:
    """The entries of a weight mapping that are not real numbers (booleans count as not)."""
    return {k: v for k, v in weights.items() if isinstance(v, bool) or not isinstance(v, Real)}


def _check_mix(value: Any) -> Any:
    """Field validator: the shape of a mix spec (domain names are checked when the mixer is built)."""
    if isinstance(value, str):
        if value not in ("natural", "uniform"):
            raise ValueError(f"a mix is {MIX_HELP}; got {value!r}")
        return value
    if "name" in value:
        try:
            MIXERS.parse(value)
        except ValidationError as exc:
            raise ValueError(
                "not a valid nested mixer: " + "; ".join(validation_problems(exc, value, top="(mixer)"))
            ) from None
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return value
    bad = non_numbers(value)
    if bad:
        raise ValueError(f"weights must be numbers, got {bad}; a mix is {MIX_HELP}")
    return {str(k): float(v) for k, v in value.items()}


MixSpec = Annotated[Union[str, dict[str, Any]], AfterValidator(_check_mix)]


def parse_nested_mixer(spec: dict[str, Any] | BaseModel, where: str) -> BaseModel:
    """Validate a nested mixer config, raising a UserError whose lines name ``where.<key>``."""
    try:
        return MIXERS.parse(spec)
    except ValidationError as exc:
        raise UserError(
            f"{where} is not a valid mixer:",
            [f"{where}.{line}" for line in validation_problems(exc, spec, top="(mixer)")],
        ) from None
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


class Mix:
    """A mix spec resolved against the domains: a fixed distribution, or a nested mixer."""

    def __init__(self, spec: str | dict[str, Any] | BaseModel, normalize: bool, domains: DomainInfo, where: str):
        self.where = where
        self.mixer: Mixer | None = None
        self.vector: np.ndarray | None = None
        if isinstance(spec, BaseModel) or (isinstance(spec, dict) and "name" in spec):
            self.mixer = MIXERS.build(parse_nested_mixer(spec, where), domains, where)
        else:
            if isinstance(spec, dict):
                if non_numbers(spec):
                    raise UserError(f"{where}: weights must be numbers, got {non_numbers(spec)}")
            elif spec not in ("natural", "uniform"):
                raise UserError(f"{where}: a mix is {MIX_HELP}; got {spec!r}")
            self.vector = resolve_weights(spec, normalize, domains, where)

    @property
    def fixed(self) -> bool:
        """True when the mix is the same at every point of training."""
        return self.vector is not None

    def weights(self, progress: np.ndarray) -> np.ndarray:
        if self.vector is not None:
            return np.broadcast_to(self.vector, (len(progress), len(self.vector))).copy()
        return np.asarray(self.mixer.weights(progress), dtype=np.float64)

    def phases(self) -> list[Phase]:
        return self.mixer.phases() if self.mixer is not None else []

    def breakpoints(self) -> list[float]:
        return self.mixer.breakpoints() if self.mixer is not None else []


def merge_phases(own: list[Phase], mixes: list[Mix], where: str) -> list[Phase]:
    """A mixer's own phases plus those of its nested mixers, ordered by start; names must be unique."""
    phases = list(own) + [p for mix in mixes for p in mix.phases()]
    names = [p.name for p in phases]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise UserError(
            f"{where}: phase names {clashes} are declared twice (a nested mixer declares the same "
            "phase as its parent or a sibling); rename a stage or use a different nested mixer"
        )
    return sorted(phases, key=lambda p: (p.start, p.end))


def merge_breakpoints(phases: list[Phase], mixes: list[Mix]) -> list[float]:
    """Phase edges plus every nested mixer's own breakpoints."""
    points = {p.start for p in phases} | {p.end for p in phases}
    for mix in mixes:
        points |= set(mix.breakpoints())
    return sorted(points)
