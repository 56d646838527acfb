"""The recipe schema: one typed, strict, documented YAML file describes a whole run.

Each section is owned by the component that uses it and defined beside it; this module only
composes them and checks what crosses sections (domain names):

- ``data``, ``tokenizer``, ``curriculum``: `curriculum.config` (`prepare` takes data + tokenizer);
- ``mixture``: `mixers.config`;
- ``model``, ``schedule``, ``training``, ``checkpoint``: `tools.train.config`;
- ``averaging``: `tools.average.config`;
- ``evaluation``: `tools.evaluate.config` (held-out sets and probes).

Every registered scorer, mixer, ordering, LR schedule and averaging weighting is selected by its
``name:``. Reading YAML, ``extends``, ``--set`` overrides, presets and error reporting are in
`recipes.loading`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import Field, field_validator, model_validator

from curriculum.config import CurriculumConfig, DataConfig, PathText, TokenizerConfig, store_fingerprint
from curriculum.paths import PLAIN_NAME
from curriculum.registry import StrictModel
from mixers.config import MixtureConfig
from tools.average.config import AveragingConfig
from tools.evaluate.config import EvaluationConfig
from tools.train.config import CheckpointConfig, ModelConfig, ScheduleSpec, TrainingConfig
from tools.train.schedules import SCHEDULES

# Re-exported: recipes and tests name the section types through the schema.
__all__ = [
    "AveragingConfig",
    "CheckpointConfig",
    "CurriculumConfig",
    "DataConfig",
    "EvaluationConfig",
    "MixtureConfig",
    "ModelConfig",
    "Recipe",
    "TokenizerConfig",
    "TrainingConfig",
]

MAX_SEED = 2**32 - 1  # numpy's legacy seeding (np.random.seed) takes no more
RUN_NAME = PLAIN_NAME


class Recipe(StrictModel):
    """A complete run: data, model, mixture, curriculum, LR, training, checkpoints, averaging."""

    name: str = Field(
        description="Run name; the default run folder is `runs/<name>`. (A recipe file may also "
        "start with `extends: <preset or file>` to inherit everything it does not set.)"
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seeds model init, shuffles and the data order (0 to 2**32 - 1)."
    )
    run_dir: PathText | None = Field(None, description="Output folder of `train`; default `runs/<name>`.")
    data: DataConfig
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    schedule: ScheduleSpec = Field(
        default_factory=lambda: SCHEDULES.parse({"name": "cosine"}), description="The LR schedule."
    )
    training: TrainingConfig | None = Field(
        None,
        description="Steps, batch sizes, optimizer, precision, logging. Needed by train, plan, run and sweep; "
        "a recipe that only builds a store (`prepare`) may leave it out.",
    )
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    averaging: AveragingConfig = Field(default_factory=AveragingConfig)
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig,
        description="Held-out evaluation sets (loss, bits per byte) and probes: in the loop, `run` and `eval`.",
    )

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")

    @property
    def store_path(self) -> Path:
        return Path(self.data.store) if self.data.store else self.run_path / "store"

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # The name becomes a folder (runs/<name>): one plain path component, so every output stays
        # under the folder the user chose (no `../x`, `/abs`, `a/b` or hidden names).
        if not RUN_NAME.fullmatch(name):
            raise ValueError(
                f"name {name!r} must be one plain folder name: letters, digits, '.', '_' or '-', not starting "
                "with '.' (set run_dir to choose where the run goes)"
            )
        return name

    @model_validator(mode="after")
    def _cross_refs(self) -> "Recipe":
        names = set(self.data.domains)
        unknown = sorted(set(self.curriculum.per_domain) - names)
        if unknown:
            raise ValueError(f"curriculum.per_domain names unknown domains {unknown}; domains: {sorted(names)}")
        unknown = sorted(set(self.mixture.max_epochs) - names - {"default"})
        if unknown:
            raise ValueError(f"mixture.max_epochs names unknown domains {unknown}; domains: {sorted(names)}")
        return self

    def fingerprint(self, *sections: str) -> str:
        """A short hash of the given sections (all if none), for checkpoints and caches."""
        dumped = self.model_dump(mode="json")
        picked = {k: dumped[k] for k in sections} if sections else dumped
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        """The resolved recipe (every default filled in) as YAML, loadable again with `load_recipe`."""
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=False), sort_keys=False)

    def data_fingerprint(self) -> str:
        """The hash a token store records of what made it (`curriculum.config.store_fingerprint`)."""
        return store_fingerprint(self.data, self.tokenizer)
