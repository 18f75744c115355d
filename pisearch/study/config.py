"""The study file (``studies/*.yaml``): what to search, on which data, at which fidelity, for which objectives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (Field, SerializerFunctionWrapHandler, ValidationError, ValidationInfo, field_validator,
                      model_serializer, model_validator)

from pisearch.config import ConfigModel, key_path, read_text, read_yaml, reason, validate
from pisearch.data import OWN_KEYS
from pisearch.errors import UserError
from pisearch.space import BudgetConfig
from pisearch.spec import ArchSpec
from pisearch.study.samplers import check_options
from pisearch.train import Fidelity

# Objective name -> Optuna direction. Units: accuracy is validation top-1 in [0, 1]; relus / relus_b / polys are
# scalar evaluations per image (relus: every site of the spec; relus_b: SNL's convention B, stem/head excluded);
# macs per image; params count; latency_ms / comm_mb are protocol estimates (pisearch.cost.protocols).
OBJECTIVES = {
    "accuracy": "maximize", "relus": "minimize", "relus_b": "minimize", "polys": "minimize", "macs": "minimize",
    "params": "minimize", "latency_ms": "minimize", "comm_mb": "minimize",
}


class DatasetConfig(ConfigModel):
    """Which data (``pisearch.data`` registry name) and how it is split; images are resized to the search space's
    ``resolution`` (the pixels its ReLU counts are per); ``resolution`` here, if given, must equal it. Your own
    images: ``folder`` reads ``root`` (one subfolder per class) and ``test_root`` (the same classes; without it a
    stratified 20 % of root is the test set), ``npz`` reads the arrays of the file ``path``; ``subset``: read at most
    this many of their training images (a stratified sample drawn by ``split_seed``). Paths are relative to the
    working directory."""

    name: str = "digits"
    root: str | None = None
    test_root: str | None = None
    path: str | None = None
    subset: int | None = Field(None, ge=2)
    resolution: int | None = Field(None, ge=8)
    channels: int = Field(3, ge=1)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    split_seed: int = 0
    download: bool = False

    @model_serializer(mode="wrap")
    def _without_unset_sources(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave out the own-data keys when not given, so a study stored before they existed is the same study."""
        return {k: v for k, v in dump(self).items() if v is not None or k not in OWN_KEYS}

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`pisearch.data.load_dataset` this block gives (all but the resolution,
        which is the search space's)."""
        return self.model_dump(exclude={"name", "resolution"})


class SamplerConfig(ConfigModel):
    """The sampler (:data:`pisearch.study.samplers.SAMPLERS`): ``cost_ehvi`` (default: ranked first by
    ``benchmarks/sampler_bench.py``) | ``nsga2`` | ``tpe`` | ``gp`` | ``nsga3`` | ``random`` | ``qmc`` | ``grid``;
    ``options``: keyword arguments of its constructor (checked against its signature); ``population_size``:
    NSGA-II/III's; ``seed`` defaults to the study seed."""

    name: Literal["cost_ehvi", "nsga2", "tpe", "gp", "nsga3", "random", "qmc", "grid"] = "cost_ehvi"
    population_size: int = Field(8, ge=2)
    seed: int | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _without_empty_options(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave out ``options`` when empty, so a study stored before they existed is the same study."""
        return {k: v for k, v in dump(self).items() if k != "options" or v}

    @model_validator(mode="after")
    def _known_options(self) -> SamplerConfig:
        try:
            check_options(self.name, self.options)
        except ValueError as err:
            raise ValueError(f"options: {err}") from None
        return self


class RuleBaseline(ConfigModel):
    budgets: list[int] = Field(default_factory=list)


class BaselinesConfig(ConfigModel):
    """Points evaluated under the same fidelity and seed as searched trials (tagged ``source=rule|net``)."""

    deepreshape: RuleBaseline | None = None
    nets: list[str] = Field(default_factory=list)


class ProtocolConfig(ConfigModel):
    """Protocol and network for ``latency_ms`` / ``comm_mb`` estimates (``pisearch.cost.protocols``)."""

    name: str = "delphi"
    network: str = "lan"


class StorageConfig(ConfigModel):
    """Where the study lives (``storage:`` is this block or just its URL). ``url``: an Optuna storage URL
    (kinds: ``pisearch.study.storage``; default ``sqlite:///runs/<name>/study.db``). PostgreSQL/MySQL only: each
    worker sends a heartbeat every ``heartbeat_interval_s`` seconds while a trial runs; a trial without one for
    ``grace_period_s`` seconds (its worker died) is failed and re-run once by another worker."""

    url: str | None = None
    heartbeat_interval_s: int = Field(60, ge=1)
    grace_period_s: int = Field(120, ge=1)

    @model_validator(mode="after")
    def _grace_exceeds_interval(self) -> StorageConfig:
        if self.grace_period_s <= self.heartbeat_interval_s:
            raise ValueError(f"grace_period_s {self.grace_period_s} must be longer than heartbeat_interval_s "
                             f"{self.heartbeat_interval_s} (else trials of live workers are failed)")
        return self


class PromotionConfig(ConfigModel):
    """Multi-fidelity promotion: the measured candidates (searched trials, rule points, named nets) on the front
    or within ``epsilon`` accuracy (0–1) of it are promoted to the next level. ``warm_start``: a promoted
    candidate starts from its weights at the level below and trains only the epochs that level did not (level
    epochs must grow); it keeps every trial's weights as ``keep_weights`` does. ``false``: re-train from scratch."""

    epsilon: float = Field(0.02, ge=0, le=1)
    warm_start: bool = True


class FidelityCheckConfig(ConfigModel):
    """Learn whether to trust the level-0 ranking for ``n`` extra trainings: after the search (and its promotions),
    ``n`` measured level-0 candidates spread evenly over the accuracy range (not only the front) are re-trained from
    scratch at level 0's fidelity with ``level``'s keys changed (e.g. ``{epochs: 30}``), in the study ``<name>@check``,
    and ``fidelity.json`` reports Kendall's τ between the two accuracies. The check never enters the front or
    compare.csv."""

    n: int = Field(8, ge=2)
    level: dict[str, Any] = Field(min_length=1)


class LinearizeStage(ConfigModel):
    """Apply ReLU-reduction methods to the ``top`` most accurate searched Pareto trials (``pisearch.linearize``).
    ``budgets``: below 1 a fraction of the trial's ReLU count, else an absolute count (every site, per image)."""

    methods: list[Literal["snl", "autorep", "cd", "naive"]] = Field(min_length=1)
    budgets: list[float] = Field(min_length=1)
    top: int = Field(2, ge=1)
    granularity: Literal["pixel", "channel"] = "pixel"
    settings: dict[str, Any] = Field(default_factory=dict)  # LinearizeSettings keys (epochs, kd, …)

    @field_validator("budgets")
    @classmethod
    def _positive(cls, budgets: list[float]) -> list[float]:
        if any(b <= 0 for b in budgets):
            raise ValueError("budgets must be positive (a fraction below 1, or a ReLU count)")
        return budgets


class InitConfig(ConfigModel):
    """Seeded search: designs enqueued as the first searched trials (``source=seed``), as parameters of the study's
    own space so the sampler breeds from them. ``rule``: DeepReShape's rule at the study's baseline budgets;
    ``nets``: the baseline named networks; ``specs``: spec JSON files (``arch.json`` of an export; paths relative to
    the study file); ``neighbours``: mutated neighbours of each design (one or two knobs moved to a nearby value)."""

    rule: bool = False
    nets: bool = False
    specs: list[str] = Field(default_factory=list)
    neighbours: int = Field(0, ge=0)


class CompareConfig(ConfigModel):
    """Verdicts with error bars: after the search, every rule point and the searched contenders at its budget are
    re-trained with ``seeds`` training seeds (other than the search's) at the comparison level; a verdict is a
    ``tie`` when the paired 95 % interval of the accuracy difference covers 0. 0 turns it off."""

    seeds: int = Field(3, ge=0)

    @field_validator("seeds")
    @classmethod
    def _not_one(cls, seeds: int) -> int:
        if seeds == 1:
            raise ValueError("a single seed gives no error bar: use 2 or more (3 is the default), or 0 for none")
        return seeds


class Ladder(list):
    """The ``fidelities:`` entries as written (what the study file holds and what is stored with the study), plus
    ``levels``: the validated :class:`Fidelity` of every level, level 0 first."""

    def __init__(self, overrides: list[dict], levels: list[Fidelity]) -> None:
        super().__init__(overrides)
        self.levels = tuple(levels)


class StudyConfig(ConfigModel):
    """A whole study. ``space`` is a path relative to the study file (or to the working directory)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    space: str
    dataset: DatasetConfig = DatasetConfig()
    seed: int = 0  # sampler seed, and the training seed of every level unless fidelity.seed is given
    fidelity: Fidelity = Field(default_factory=Fidelity, validate_default=True)
    # Higher levels: each entry overrides keys of the level below (as written; resolved once into `levels`).
    fidelities: list[dict[str, Any]] = Field(default_factory=list, validate_default=True)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig, validate_default=True)
    objectives: list[str] = Field(default_factory=lambda: ["accuracy", "relus"], min_length=1)
    sampler: SamplerConfig = SamplerConfig()
    n_trials: int = Field(20, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    storage: StorageConfig = StorageConfig()
    budget: BudgetConfig = BudgetConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    device: str = "cpu"
    dashboard: bool = True
    linearize: LinearizeStage | None = None
    fidelity_check: FidelityCheckConfig | None = None  # after `fidelities` (its validator reads level 0)
    init: InitConfig = InitConfig()
    compare: CompareConfig = CompareConfig()
    keep_weights: bool = False  # store each trained trial's weights as an Optuna artifact (for export)
    jobs: Annotated[int, Field(ge=1)] | Literal["auto"] = 1  # worker processes on this machine (study.launch)

    @field_validator("storage", mode="before")
    @classmethod
    def _url_alone(cls, value: object) -> object:
        return {"url": value} if isinstance(value, str) or value is None else value

    @field_validator("fidelity")
    @classmethod
    def _study_seed(cls, fidelity: Fidelity, info: ValidationInfo) -> Fidelity:
        """The study ``seed`` is the training seed (of every level) unless ``fidelity`` sets one; written into
        ``fidelity`` so that every copy of the config (a ``--jobs`` worker's, a stored study's) trains with it."""
        if "seed" not in fidelity.model_fields_set and "seed" in info.data:
            return fidelity.model_copy(update={"seed": info.data["seed"]})
        return fidelity

    @field_validator("fidelities")
    @classmethod
    def _resolve_levels(cls, overrides: list[dict], info: ValidationInfo) -> Ladder:
        """Every level's fidelity, validated once: level 0 is ``fidelity``; level k applies ``fidelities[k-1]``
        to level k-1."""
        levels = [info.data.get("fidelity", Fidelity())]
        for i, changes in enumerate(overrides):
            try:
                levels.append(Fidelity.model_validate({**levels[-1].model_dump(), **changes}))
            except ValidationError as err:
                first = err.errors()[0]
                raise ValueError(f"level {i + 1}: {key_path(first['loc'])}: {reason(first, Fidelity)}") from None
        return Ladder(overrides, levels)

    @field_validator("promotion")
    @classmethod
    def _growing_epochs(cls, promotion: PromotionConfig, info: ValidationInfo) -> PromotionConfig:
        if promotion.warm_start and "fidelities" in info.data:
            epochs = [f.epochs for f in info.data["fidelities"].levels]
            for level in range(1, len(epochs)):
                if epochs[level] <= epochs[level - 1]:
                    raise ValueError(f"warm_start: level {level} (fidelities[{level - 1}]) has {epochs[level]} epochs, "
                                     f"not more than the {epochs[level - 1]} of the level below, so it would train "
                                     "nothing; raise its epochs or set promotion.warm_start: false")
        return promotion

    @field_validator("fidelity_check")
    @classmethod
    def _check_level(cls, check: FidelityCheckConfig | None, info: ValidationInfo) -> FidelityCheckConfig | None:
        if check is not None and "fidelities" in info.data:
            try:
                Fidelity.model_validate({**info.data["fidelities"].levels[0].model_dump(), **check.level})
            except ValidationError as err:
                first = err.errors()[0]
                raise ValueError(f"level: {key_path(first['loc'])}: {reason(first, Fidelity)}") from None
            level0 = info.data["fidelities"].levels[0].model_dump()
            if all(level0.get(k) == v for k, v in check.level.items()):
                raise ValueError("level: changes nothing of level 0's fidelity (the check would re-measure the same "
                                 "numbers); give it more epochs or a larger train_subset")
        return check

    @property
    def check_fidelity(self) -> Fidelity | None:
        """The fidelity of ``fidelity_check`` (level 0's with its ``level`` keys changed), or None."""
        if self.fidelity_check is None:
            return None
        return Fidelity.model_validate({**self.levels[0].model_dump(), **self.fidelity_check.level})

    @property
    def stores_weights(self) -> bool:
        """Whether trained trials keep their weights: ``keep_weights``, or warm-started promotion levels."""
        return self.keep_weights or bool(self.fidelities and self.promotion.warm_start)

    @property
    def levels(self) -> tuple[Fidelity, ...]:
        """The fidelity every level trains with (level 0 first; see ``fidelities``)."""
        return self.fidelities.levels

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in OBJECTIVES:
                raise ValueError(f"unknown objective {name!r} (known: {', '.join(OBJECTIVES)})")
        if len(set(names)) != len(names):
            raise ValueError("an objective is listed twice")
        return names

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]


def load_study_config(path: str | Path) -> tuple[StudyConfig, Path]:
    """Read and validate a study file; returns the config and the resolved search-space path. The spec files of
    ``init.specs`` (relative to the study file, then to the working directory) are read into the config as
    canonical spec JSON, so the study stores the designs themselves and workers elsewhere need no files."""
    path = Path(path)
    config = validate(StudyConfig, read_yaml(path), str(path))
    if config.init.specs:
        specs = [_read_spec(text, path.parent, f"{path}: init.specs[{i}]") for i, text in enumerate(config.init.specs)]
        config = config.model_copy(update={"init": config.init.model_copy(update={"specs": specs})})
    return config, resolve_space_path(config.space, path.parent, str(path))


def _read_spec(entry: str, base: Path, where: str) -> str:
    """Canonical spec JSON of an ``init.specs`` entry: already JSON (a stored study), or a spec file's path."""
    if entry.lstrip().startswith("{"):
        return ArchSpec.from_json(entry, source=where).to_json()
    for candidate in (base / entry, Path(entry)):
        if candidate.is_file():
            return ArchSpec.from_json(read_text(candidate), source=f"{where} ({candidate})").to_json()
    raise UserError(f"{where}: no such spec file {entry!r} (looked in {base} and {Path.cwd()})")


def resolve_space_path(space: str, base: Path, source: str) -> Path:
    """The space file named by a study: relative to the study file first, then to the working directory."""
    for candidate in (base / space, Path(space), Path("search_spaces") / space):
        if candidate.is_file():
            return candidate
    raise UserError(f"{source}: space: no such search-space file {space!r} (looked in {base} and {Path.cwd()})")
