"""The study file (``studies/*.yaml``): what to search, on which data, at which fidelity, for which objectives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (Field, SerializerFunctionWrapHandler, ValidationError, ValidationInfo, field_validator,
                      model_serializer, model_validator)

from pisearch.config import ConfigModel, key_path, read_text, read_yaml, reason, validate
from pisearch.data import OWN_KEYS
from pisearch.errors import UserError
from pisearch.mpc import MAX_IMAGES, SPU_PROTOCOLS
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

    name: str = Field("digits", description="registry name: digits | fashion_mnist | cifar10 | cifar100 | "
                      "tinyimagenet | folder | npz (synthetic: tests only)")
    root: str | None = Field(None, description="data folder (folder: the training images, one subfolder per class); "
                             "null: $PISEARCH_DATA, else ./data")
    test_root: str | None = Field(None, description="folder only: test images, the same class subfolders; null: a "
                                  "stratified 20 % of root")
    path: str | None = Field(None, description="npz only: the .npz file (arrays x, y; optional x_test, y_test, "
                             "classes)")
    subset: int | None = Field(None, ge=2, description="folder / npz: read at most this many training images (a "
                               "stratified sample drawn by split_seed)")
    resolution: int | None = Field(None, ge=8, description="must equal the search space's resolution if given")
    channels: int = Field(3, ge=1, description="image channels the networks see (grey replicated, RGB → grey by "
                          "luma)")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of the training images held out for validation")
    split_seed: int = Field(0, description="seed of the validation split (and of subset's sample)")
    download: bool = Field(False, description="download a missing dataset (CIFAR, Tiny ImageNet) when online")

    @model_serializer(mode="wrap")
    def _without_unset_sources(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave out the own-data keys when not given, so a study stored before they existed is the same study."""
        return {k: v for k, v in dump(self).items() if v is not None or k not in OWN_KEYS}

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`pisearch.data.load_dataset` this block gives (all but the resolution,
        which is the search space's)."""
        return self.model_dump(exclude={"name", "resolution"})

    def portable(self) -> dict[str, Any]:
        """What an export records of this block (``metrics.json``: ``dataset_arguments``) so that ``pisearch
        linearize`` reloads the same images and split from any working directory: the keys that choose them, with
        the given paths made absolute (channels and resolution are the network's; download is not a choice of
        data)."""
        given = self.model_dump(mode="json", exclude={"name", "resolution", "channels", "download"})
        return {k: str(Path(v).resolve()) if k in PATH_KEYS and v is not None else v for k, v in given.items()}


PATH_KEYS = ("root", "test_root", "path")  # dataset keys that name files or folders


class SamplerConfig(ConfigModel):
    """The sampler (:data:`pisearch.study.samplers.SAMPLERS`): ``cost_ehvi`` (default: ranked first by
    ``benchmarks/sampler_bench.py``) | ``nsga2`` | ``tpe`` | ``gp`` | ``nsga3`` | ``random`` | ``qmc`` | ``grid``;
    ``options``: keyword arguments of its constructor (checked against its signature); ``population_size``:
    NSGA-II/III's; ``seed`` defaults to the study seed."""

    name: Literal["cost_ehvi", "nsga2", "tpe", "gp", "nsga3", "random", "qmc", "grid"] = Field(
        "cost_ehvi", description="which sampler (docs/studies.md, Samplers)")
    population_size: int = Field(8, ge=2, description="NSGA-II / NSGA-III population per generation")
    seed: int | None = Field(None, description="sampler seed; null: the study seed")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the sampler's "
                                    "constructor, checked against its signature")

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
    """DeepReShape's rule points (``pisearch rule``), one per ReLU budget."""

    budgets: list[int] = Field(default_factory=list, description="ReLU budgets to build the rule's design for")


class BaselinesConfig(ConfigModel):
    """Points evaluated under the same fidelity and seed as searched trials (tagged ``source=rule|net``)."""

    deepreshape: RuleBaseline | None = Field(None, description="DeepReShape's rule points (source=rule)")
    nets: list[str] = Field(default_factory=list, description="named networks, e.g. resnet18 (source=net)")


class ProtocolConfig(ConfigModel):
    """Protocol and network for ``latency_ms`` / ``comm_mb`` estimates (``pisearch.cost.protocols``)."""

    name: str = Field("delphi", description="delphi | sci | cheetah (paper models) | spu_cheetah | spu_semi2k | "
                      "spu_aby3 (fitted to SecretFlow SPU's measurements)")
    network: str = Field("lan", description="lan | wan (bandwidth and round-trip presets)")


class StorageConfig(ConfigModel):
    """Where the study lives (``storage:`` is this block or just its URL). ``url``: an Optuna storage URL
    (kinds: ``pisearch.study.storage``; default ``sqlite:///runs/<name>/study.db``). PostgreSQL/MySQL only: each
    worker sends a heartbeat every ``heartbeat_interval_s`` seconds while a trial runs; a trial without one for
    ``grace_period_s`` seconds (its worker died) is failed and re-run once by another worker."""

    url: str | None = Field(None, description="Optuna storage URL; null: sqlite:///runs/<name>/study.db")
    heartbeat_interval_s: int = Field(60, ge=1, description="seconds between a worker's heartbeats (PostgreSQL/MySQL)")
    grace_period_s: int = Field(120, ge=1, description="seconds without a heartbeat after which a trial is failed "
                                "and re-run")

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

    epsilon: float = Field(0.02, ge=0, le=1, description="accuracy band below the front that is promoted too")
    warm_start: bool = Field(True, description="continue from the weights of the level below (false: re-train)")


class FidelityCheckConfig(ConfigModel):
    """Learn whether to trust the level-0 ranking for ``n`` extra trainings: after the search (and its promotions),
    ``n`` measured level-0 candidates spread evenly over the accuracy range (not only the front) are re-trained from
    scratch at level 0's fidelity with ``level``'s keys changed (e.g. ``{epochs: 30}``), in the study ``<name>@check``,
    and ``fidelity.json`` reports Kendall's τ between the two accuracies. The check never enters the front or
    compare.csv."""

    n: int = Field(8, ge=2, description="candidates to re-train, spread over the accuracy range")
    level: dict[str, Any] = Field(min_length=1, description="fidelity keys of level 0 to change, e.g. {epochs: 12}")


class LinearizeStage(ConfigModel):
    """Apply ReLU-reduction methods to the ``top`` most accurate searched Pareto trials (``pisearch.linearize``).
    ``budgets``: below 1 a fraction of the trial's ReLU count, else an absolute count (every site, per image)."""

    methods: list[Literal["snl", "autorep", "cd", "naive"]] = Field(min_length=1, description="methods to apply")
    budgets: list[float] = Field(min_length=1, description="below 1: a fraction of the trial's ReLUs; else a count")
    top: int = Field(2, ge=1, description="how many of the most accurate searched Pareto trials to linearize")
    granularity: Literal["pixel", "channel"] = Field("pixel", description="pixel: exact budget; channel: within one "
                                                     "channel's H×W")
    settings: dict[str, Any] = Field(default_factory=dict, description="linearization settings (epochs, kd, …: "
                                     "pisearch/linearize/settings.py)")

    @field_validator("budgets")
    @classmethod
    def _positive(cls, budgets: list[float]) -> list[float]:
        if any(b <= 0 for b in budgets):
            raise ValueError("budgets must be positive (a fraction below 1, or a ReLU count)")
        return budgets


class MeasureStage(ConfigModel):
    """After the study, run the ``top`` most accurate searched Pareto trials under a SecretFlow SPU protocol
    (``pisearch.mpc``; needs the ``mpc`` extra) and keep what one inference cost beside their estimates."""

    protocol: Literal[tuple(SPU_PROTOCOLS)] = Field("cheetah", description="SPU protocol: cheetah | semi2k | aby3")
    top: int = Field(3, ge=1, description="how many of the most accurate searched Pareto trials to measure")
    images: int = Field(1, ge=1, le=MAX_IMAGES, description="test images per trial (one inference each, after a "
                        "warm-up pass)")


class InitConfig(ConfigModel):
    """Seeded search: designs enqueued as the first searched trials (``source=seed``), as parameters of the study's
    own space so the sampler breeds from them. ``rule``: DeepReShape's rule at the study's baseline budgets;
    ``nets``: the baseline named networks; ``specs``: spec JSON files (``arch.json`` of an export; paths relative to
    the study file); ``neighbours``: mutated neighbours of each design (one or two knobs moved to a nearby value)."""

    rule: bool = Field(False, description="seed with the rule's designs at baselines.deepreshape.budgets")
    nets: bool = Field(False, description="seed with the named networks of baselines.nets")
    specs: list[str] = Field(default_factory=list, description="spec JSON files to seed with (e.g. an export's "
                             "arch.json)")
    neighbours: int = Field(0, ge=0, description="mutated neighbours enqueued beside each seed design")


class CompareConfig(ConfigModel):
    """Verdicts with error bars: after the search, every rule point and the searched contenders at its budget are
    re-trained with ``seeds`` training seeds (other than the search's) at the comparison level; a verdict is a
    ``tie`` when the paired 95 % interval of the accuracy difference covers 0. 0 turns it off."""

    seeds: int = Field(3, ge=0, description="training seeds of the verdict stage (0: off; 1 is refused)")

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

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="run folder runs/<name>/ and Optuna study name")
    space: str = Field(description="search-space file, relative to the study file (or the working directory)")
    dataset: DatasetConfig = Field(DatasetConfig(), description="the data and its splits")
    seed: int = Field(0, description="sampler seed, and the training seed of every level unless fidelity.seed is "
                      "given")
    fidelity: Fidelity = Field(default_factory=Fidelity, validate_default=True, description="proxy training of "
                               "level 0")
    # Higher levels: each entry overrides keys of the level below (as written; resolved once into `levels`).
    fidelities: list[dict[str, Any]] = Field(default_factory=list, validate_default=True, description="levels "
                                             "above fidelity, each the keys it changes in the level below")
    promotion: PromotionConfig = Field(default_factory=PromotionConfig, validate_default=True,
                                       description="which candidates a level promotes, and how")
    objectives: list[str] = Field(default_factory=lambda: ["accuracy", "relus"], min_length=1, description="accuracy "
                                  "(max); relus, relus_b, polys, macs, params, latency_ms, comm_mb (min)")
    sampler: SamplerConfig = Field(SamplerConfig(), description="how the next design is chosen")
    n_trials: int = Field(20, ge=1, description="trials the study holds in all; running it again resumes")
    timeout_s: float | None = Field(None, gt=0, description="stop starting trials after this many seconds")
    storage: StorageConfig = Field(StorageConfig(), description="where the study lives (a URL, or this block)")
    budget: BudgetConfig = Field(BudgetConfig(), description="the study's ReLU window, MAC cap and bins (merged with "
                                 "the space's)")
    baselines: BaselinesConfig = Field(BaselinesConfig(), description="designs trained beside the search")
    protocol: ProtocolConfig = Field(ProtocolConfig(), description="the PI protocol of latency_ms / comm_mb")
    device: str = Field("cpu", description="torch device of training: cpu | cuda")
    dashboard: bool = Field(True, description="write dashboard.html at the end of each run")
    linearize: LinearizeStage | None = Field(None, description="optional stage: linearize the best Pareto trials")
    measure: MeasureStage | None = Field(None, description="optional stage: measure the best Pareto trials under "
                                         "SecretFlow SPU")
    # after `fidelities`: its validator reads level 0
    fidelity_check: FidelityCheckConfig | None = Field(None, description="optional: re-train candidates at another "
                                                       "fidelity to measure the proxy's rank agreement")
    init: InitConfig = Field(InitConfig(), description="designs the search is seeded with")
    compare: CompareConfig = Field(CompareConfig(), description="the verdict stage against the rule")
    keep_weights: bool = Field(False, description="keep each trained trial's weights (export without retraining)")
    jobs: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(1, description="worker processes on this machine (a "
                                                                "number or auto; --jobs overrides)")

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
