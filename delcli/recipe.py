"""A recipe: everything needed to train and evaluate one model.

Zoo recipes live in `zoo/<name>.yaml` (shipped inside the package as
`delcli.zoo`); a recipe file elsewhere works the same. `load_recipe` applies
dotted `--set` overrides and validates the result once.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, get_args

from delcli.errors import ConfigError
from delcli.hub.manifest import WeightsManifest
from delcli.model.config import ModelConfig
from delcli.settings import apply_overrides, from_dict, read_yaml, to_dict


@dataclass
class StreamSpec:
    """Where one modality's features live and how they sit in time.

    `files` are filename patterns with `{video}` (e.g. `{video}_rgb.npy`),
    concatenated on channels in order; `.npy`, `.npz` (key `feats`, else the
    only array) and `.pt` are read. `folder` is relative to the dataset's
    feature root (or absolute). `fps`/`stride`/`window` describe this stream's
    own grid when it differs from the dataset grid; it is then interpolated
    onto the dataset grid.
    """

    files: list[str]
    folder: str = ""
    dim: int | None = None
    fps: float | None = None
    stride: float | None = None
    window: float | None = None


@dataclass
class DataConfig:
    """A feature dataset: annotations, feature files, the time grid, splits.

    Step i of the grid covers the window centred at
    `(i·stride + window/2) / fps` seconds (frames → seconds). With
    `resize_length`, every video is resized to that many steps and step i
    covers `[i, i+1)·duration/resize_length`.
    """

    benchmark: str | None = None
    annotations: str | None = None
    features: str | None = None
    visual: StreamSpec | None = None
    audio: StreamSpec | None = None
    fps: float | None = None  # None → each video's `fps` from the annotations
    stride: float = 8.0
    window: float = 24.0
    resize_length: int | None = None
    train_split: str = "train"
    val_split: str | None = "validation"  # None: no validation; best = last epoch
    test_split: str = "test"
    classes: list[str] | None = None  # None → the annotation file's class list
    crop_ratio: tuple[float, float] | None = (0.9, 1.0)
    trunc_thresh: float = 0.5
    skip_missing: bool = False

    def __post_init__(self) -> None:
        """The time grid and cropping settings checked before any work: one line naming the
        key."""

        def need(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"data.{key}={getattr(self, key)!r}; {allowed}")

        need(self.fps is None or 0 < self.fps < math.inf, "fps", "must be > 0 (or null)")
        need(0 < self.stride < math.inf, "stride", "must be > 0 (frames between steps)")
        need(0 < self.window < math.inf, "window", "must be > 0 (frames per step)")
        need(
            self.resize_length is None or self.resize_length >= 1,
            "resize_length",
            "must be >= 1 (or null)",
        )
        need(
            self.crop_ratio is None
            or (len(self.crop_ratio) == 2 and 0 < self.crop_ratio[0] <= self.crop_ratio[1] <= 1),
            "crop_ratio",
            "must be [low, high] with 0 < low <= high <= 1 (or null)",
        )
        need(0 <= self.trunc_thresh <= 1, "trunc_thresh", "must lie in [0, 1]")


PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class TrainConfig:
    epochs: int = 40  # after warmup, as ActionFormer counts
    warmup_epochs: int = 5
    lr: float = 1e-3
    min_lr: float = 1e-8
    weight_decay: float = 1e-4
    batch_size: int = 16
    clip_grad: float = 1.0
    ema_decay: float = 0.999  # 0 disables the EMA
    seed: int = 1234567891
    num_workers: int = 0
    eval_every: int = 1  # epochs; 0 = only at the end
    log_every: int = 20  # steps
    precision: str = "auto"  # auto (bf16 on CUDA) | bf16 | fp32
    # recompute the pyramids' and PAN's activations during backward instead of keeping
    # them: less memory for about a third more compute; same gradients
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        """Every setting checked before any work: one line naming the key."""
        at_least = {"batch_size": 1, "epochs": 0, "warmup_epochs": 0, "num_workers": 0}
        at_least |= {"eval_every": 0, "log_every": 0}
        for key, low in at_least.items():
            if getattr(self, key) < low:
                raise ConfigError(f"train.{key}={getattr(self, key)}; must be >= {low}")
        if self.epochs + self.warmup_epochs < 1:
            raise ConfigError(
                f"train.epochs={self.epochs} and train.warmup_epochs={self.warmup_epochs}: "
                "nothing to train; need at least one epoch"
            )
        for key in ("lr", "min_lr", "weight_decay", "clip_grad"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0 or (key == "lr" and value == 0):
                bound = "> 0" if key == "lr" else ">= 0"
                raise ConfigError(f"train.{key}={value}; must be a finite number {bound}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay={self.ema_decay}; must lie in [0, 1) (0: no EMA)")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"train.precision={self.precision!r}; allowed: {', '.join(PRECISIONS)}"
            )


DecayMethod = Literal["gaussian", "linear", "hard"]
DECAY_METHODS = ", ".join(get_args(DecayMethod))


@dataclass(frozen=True)
class NMSConfig:
    """Post-processing parameters; defaults are ActionFormer's THUMOS14 settings.

    Pass to `batched_nms` as `batched_nms(segments, scores, class_ids, **asdict(config))`.
    """

    iou_threshold: float = 0.1
    min_score: float = 0.001
    max_seg_num: int | None = 200
    use_soft_nms: bool = True
    method: DecayMethod = "gaussian"
    sigma: float = 0.5
    multiclass: bool = True
    voting_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.method not in get_args(DecayMethod):
            raise ConfigError(f"nms.method={self.method!r}; allowed: {DECAY_METHODS}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ConfigError(f"nms.iou_threshold={self.iou_threshold}; must lie in [0, 1]")
        if self.sigma <= 0.0:
            raise ConfigError(f"nms.sigma={self.sigma}; must be > 0")
        if self.max_seg_num is not None and self.max_seg_num < 1:
            raise ConfigError(f"nms.max_seg_num={self.max_seg_num}; must be >= 1 or None")
        if self.voting_threshold is not None and not 0.0 <= self.voting_threshold <= 1.0:
            raise ConfigError(f"nms.voting_threshold={self.voting_threshold}; must lie in [0, 1]")


@dataclass
class InferenceConfig:
    nms: NMSConfig = field(default_factory=NMSConfig)
    batch_size: int = 8
    external_top_k: int = 2  # ActivityNet: classes taken from external video-level scores
    max_detections: int = 100  # kept per video after NMS (results file)

    def __post_init__(self) -> None:
        for key in ("batch_size", "external_top_k", "max_detections"):
            if getattr(self, key) < 1:
                raise ConfigError(f"inference.{key}={getattr(self, key)}; must be >= 1")


@dataclass
class ExtractorSpec:
    """One feature extractor of a recipe: registry name, weights, options.

    `weights` is a spec `delcli.features.weights.load_extractor_weights` reads
    (a path, or `hf://ORG/NAME/FILE@REV`); extractors with several weight
    files take a mapping (e.g. i3d: {rgb: …, flow: …}).
    """

    name: str
    weights: str | dict[str, str] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeatureRecipe:
    """How this model's features are made from a video (`del extract`, `del predict`).

    The extractors run on the dataset grid (`data.fps/stride/window`); their
    outputs are written as `{video}_{output}.npy` and the model's streams are
    `data.visual.files` / `data.audio.files`, which name those outputs.
    """

    extractors: list[ExtractorSpec]


@dataclass
class PaperResult:
    """The paper's reported row, for comparison (percent)."""

    tious: list[float]
    map: list[float]
    average: float
    table: str = ""


@dataclass
class Recipe:
    name: str
    title: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    features: FeatureRecipe | None = None
    paper: PaperResult | None = None
    weights: WeightsManifest | None = None  # where the trained weights live (delcli.hub)


def class_names(recipe: Recipe) -> list[str]:
    """Names of the model's outputs: the recipe's classes; `event` for a class-agnostic
    model (ActivityNet's, which needs external video-level scores to name events);
    `class_<i>` when the weights name none."""
    count, names = recipe.model.num_classes, recipe.data.classes
    if names is not None and len(names) == count:
        return list(names)
    if count == 1:
        return ["event"]
    return [f"class_{i}" for i in range(count)]


def manifest_of(recipe: Recipe) -> WeightsManifest:
    """The recipe's weights block; a recipe without one is unpublished."""
    return recipe.weights if recipe.weights is not None else WeightsManifest()


def check_manifest(recipe: Recipe) -> None:
    """Cross-checks a lone `weights:` block cannot make: its extractors are the recipe's."""
    manifest = manifest_of(recipe)
    names = [spec.name for spec in recipe.features.extractors] if recipe.features else []
    for name in manifest.extractors:
        if name not in names:
            raise ConfigError(
                f"weights.extractors.{name}: not an extractor of recipe '{recipe.name}' "
                f"(its extractors: {', '.join(names) or 'none'})"
            )


def zoo_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml")
        for p in files("delcli.zoo").iterdir()
        if p.name.endswith(".yaml")
    )


def recipe_data(source: str | Path) -> dict:
    """Plain data of a zoo recipe (by name) or of a YAML file (by path)."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return read_yaml(path)
    names = zoo_names()
    if str(source) not in names:
        close = difflib.get_close_matches(str(source), names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"no zoo recipe '{source}'{hint}; known: {', '.join(names)} — or give a YAML file"
        )
    return read_yaml(Path(str(files("delcli.zoo").joinpath(f"{source}.yaml"))))


def load_recipe(source: str | Path | dict, overrides: list[str] = ()) -> Recipe:
    """A validated `Recipe` from a zoo name, a YAML path or plain data, plus `key=value`s."""
    data = dict(source) if isinstance(source, dict) else recipe_data(source)
    data = apply_overrides(data, list(overrides))
    return from_dict(Recipe, data)


def recipe_to_dict(recipe: Recipe) -> dict:
    return to_dict(recipe)


def with_data_paths(
    recipe: Recipe,
    features: str | Path | None = None,
    annotations: str | Path | None = None,
    absolute: bool = False,
) -> Recipe:
    """`recipe` with `data.features` / `data.annotations` replaced by those given (a command
    line's `--features` / `--annotations`): the one place such paths enter, so that
    training, validation and evaluation read `recipe.data` alone.

    `absolute` makes both absolute, given or not, so a run's config.yaml (and `--resume`
    from another directory) is unambiguous; otherwise they stay as spelled, as reports
    name them.
    """

    def chosen(path: str | Path | None, default: str | None) -> str | None:
        path = path if path is not None else default
        if path is None:
            return None
        return str(Path(path).resolve()) if absolute else str(path)

    data = replace(
        recipe.data,
        features=chosen(features, recipe.data.features),
        annotations=chosen(annotations, recipe.data.annotations),
    )
    return replace(recipe, data=data)
