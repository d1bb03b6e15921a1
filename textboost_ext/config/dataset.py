"""Where the training images are: a kohya dataset TOML, or kohya's ``<repeats>_<class tokens>`` folders.

Dataset TOML: ``[general]``, ``[[datasets]]`` and ``[[datasets.subsets]]``. Like kohya, a subset
value is looked up in the subset, then its dataset, then ``[general]``, then the training config, so
the file beats the command line. We implement the subset of kohya's keys listed below; kohya keys we
do not implement are errors that say so (unless set to their "off" value), and unknown keys get a
"did you mean". Checks here are path-level (folders exist and hold image files); the host reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textboost_ext.config.coerce import BadValue, coerce
from textboost_ext.config.errors import ConfigError, Problems, did_you_mean
from textboost_ext.config.paths import resolve_input_path
from textboost_ext.config.schema import TrainConfig
from textboost_ext.config.tomlio import read_toml
from textboost_ext.config.unsupported import KOHYA_DATASET_OPTIONS, is_off_value

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_FOLDER_RE = re.compile(r"^(\d+)_(.+)$")

# key -> type; which levels may hold it. Subset keys may also sit in [general] or [[datasets]].
DATASET_KEYS: dict[str, Any] = {"batch_size": int, "resolution": list[int]}
SUBSET_KEYS: dict[str, Any] = {"num_repeats": int, "shuffle_caption": bool, "keep_tokens": int,
                               "caption_prefix": str, "caption_suffix": str, "caption_extension": str,
                               "class_tokens": str}
SUBSET_ONLY_KEYS: dict[str, Any] = {"image_dir": str}


@dataclass(frozen=True)
class SubsetSpec:
    """One folder of images and how its captions are built."""

    image_dir: Path
    caption_extension: str = ".txt"
    class_tokens: str | None = None  # the caption of an image without a caption file
    num_repeats: int = 1
    caption_prefix: str | None = None
    caption_suffix: str | None = None
    keep_tokens: int = 0
    shuffle_caption: bool = False
    source: str = ""  # where it was defined, for the host's messages

    def image_paths(self) -> list[Path]:
        return list_images(self.image_dir)


@dataclass(frozen=True)
class DatasetSpec:
    subsets: list[SubsetSpec]
    batch_size: int
    resolution: tuple[int, int]  # (width, height)
    source: str  # the dataset TOML or the train_data_dir it came from


def list_images(directory: Path) -> list[Path]:
    """Image files directly inside ``directory`` (not recursive, as kohya), sorted by name."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def resolve_dataset(cfg: TrainConfig) -> DatasetSpec:
    """The dataset of a validated config: from ``dataset_config`` or ``train_data_dir`` (exactly one)."""
    if bool(cfg.dataset_config) == bool(cfg.train_data_dir):
        raise ConfigError(["set exactly one of dataset_config (a kohya dataset TOML) and train_data_dir "
                           "(a folder of <repeats>_<class tokens> subfolders)"])
    if cfg.dataset_config:
        return load_dataset_config(cfg.dataset_config, cfg)
    return scan_train_data_dir(cfg.train_data_dir, cfg)  # type: ignore[arg-type]


def scan_train_data_dir(train_data_dir: str | Path, cfg: TrainConfig) -> DatasetSpec:
    """kohya's folder convention: ``train_data_dir/10_sks dog/`` -> 10 repeats, class tokens "sks dog"."""
    root = Path(train_data_dir)
    label = f"train_data_dir {str(train_data_dir)!r}"
    if not root.is_dir():
        raise ConfigError([f"{label}: no such folder"])
    problems = Problems()
    loose = list_images(root)
    if loose:
        problems.add(f"{label} holds images directly ({loose[0].name}); move them into a subfolder named "
                     "<repeats>_<class tokens>, e.g. 1_dog/")
    subsets = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        match = _FOLDER_RE.match(child.name)
        if not match or not match[2].strip():
            problems.add(f"{label}: folder {child.name!r} is not named <repeats>_<class tokens> (e.g. '1_dog' or "
                         "'10_sks dog'); rename it or move it out")
            continue
        if int(match[1]) < 1:
            problems.add(f"{label}: folder {child.name!r} repeats its images 0 times; use 1 or more")
            continue
        subset = SubsetSpec(image_dir=child.resolve(), caption_extension=cfg.caption_extension,
                            class_tokens=match[2].strip(), num_repeats=int(match[1]), source=f"{label} / {child.name}")
        _check_has_images(subset, problems)
        subsets.append(subset)
    if not subsets and not problems.errors:
        problems.add(f"{label} has no <repeats>_<class tokens> subfolders; put the images in e.g. {root / '1_dog'}")
    problems.raise_if_any()
    return DatasetSpec(subsets, cfg.train_batch_size, _wh(cfg.resolution), str(train_data_dir))


def load_dataset_config(path: str | Path, cfg: TrainConfig) -> DatasetSpec:
    """Parse and check a kohya dataset TOML; every problem is reported in one :class:`ConfigError`."""
    raw = read_toml(path, "dataset config")
    label, base_dir, problems = str(path), Path(path).parent, Problems()
    for key in raw:
        if key not in ("general", "datasets"):
            problems.add(f"{label}: unknown key {key!r}{did_you_mean(key, ['general', 'datasets'])}; a dataset TOML "
                         "holds [general] and [[datasets]] (with [[datasets.subsets]])")
    general = _table(raw.get("general", {}), f"{label} [general]", "[general]", problems)
    datasets = _tables(raw.get("datasets", []), f"{label}: datasets", "[[datasets]]", problems)
    if not datasets and isinstance(raw.get("datasets", []), list):
        problems.add(f"{label}: no [[datasets]] table; add [[datasets]] and [[datasets.subsets]] with image_dir")
    general_values = _read_level(general, "general", f"{label} [general]", problems)
    subsets, sizes = [], set()
    for i, dataset in enumerate(datasets, 1):
        ds_label = f"{label} [[datasets]] #{i}"
        ds_values = _read_level({k: v for k, v in dataset.items() if k != "subsets"}, "dataset", ds_label, problems)
        inherited = {**general_values, **ds_values}
        sizes.add((inherited.get("batch_size", cfg.train_batch_size), _wh(inherited.get("resolution", cfg.resolution))))
        subset_tables = _tables(dataset.get("subsets", []), f"{ds_label}: subsets", "[[datasets.subsets]]", problems)
        if not subset_tables:
            problems.add(f"{ds_label} has no [[datasets.subsets]]; add one with image_dir = \"...\"")
        for j, table in enumerate(subset_tables, 1):
            sub_label = f"{ds_label} > [[datasets.subsets]] #{j}"
            values = {**inherited, **_read_level(table, "subset", sub_label, problems)}
            subset = _make_subset(values, sub_label, base_dir, cfg, problems)
            if subset is not None:
                subsets.append(subset)
    if len(sizes) > 1:
        problems.add(f"{label}: all [[datasets]] must share one batch_size and resolution in this trainer; got "
                     + ", ".join(f"batch {b} at {w}x{h}" for b, (w, h) in sorted(sizes)))
    problems.raise_if_any()
    ((batch_size, resolution),) = sizes
    return DatasetSpec(subsets, batch_size, resolution, label)


def _table(value: object, label: str, name: str, problems: Problems) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    problems.add(f"{label}: {name} must be a table")
    return {}


def _tables(value: object, label: str, name: str, problems: Problems) -> list[dict[str, Any]]:
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    problems.add(f"{label} must be written as {name} tables")
    return []


def _read_level(table: dict[str, Any], level: str, label: str, problems: Problems) -> dict[str, Any]:
    """Type-checked values of one table; ``level`` is "general", "dataset" or "subset"."""
    allowed = {**SUBSET_KEYS, **(SUBSET_ONLY_KEYS if level == "subset" else DATASET_KEYS)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in KOHYA_DATASET_OPTIONS:
            if not is_off_value(key, value):
                off = KOHYA_DATASET_OPTIONS[key][0]
                tail = "" if not isinstance(off, bool) else " (remove it, or set it to false)"
                problems.add(f"{label}: `{key}` is a kohya dataset option this trainer does not implement; "
                             f"{KOHYA_DATASET_OPTIONS[key][1]}{tail}")
        elif key in allowed:
            try:
                values[key] = coerce(key, value, allowed[key])
            except BadValue as exc:
                problems.add(f"{label}: {key}: {exc}")
                continue
            _check_range(key, values[key], label, problems)
        elif key in SUBSET_ONLY_KEYS:
            problems.add(f"{label}: {key!r} belongs in a [[datasets.subsets]] table")
        elif key in DATASET_KEYS:
            problems.add(f"{label}: {key!r} is a dataset-level key; move it to [[datasets]] or [general]")
        else:
            problems.add(f"{label}: unknown key {key!r}{did_you_mean(key, [*allowed, *KOHYA_DATASET_OPTIONS])}")
    return values


def _check_range(key: str, value: Any, label: str, problems: Problems) -> None:
    if key in ("batch_size", "num_repeats") and value < 1:
        problems.add(f"{label}: {key} = {value} must be >= 1")
    elif key == "keep_tokens" and value < 0:
        problems.add(f"{label}: keep_tokens = {value} must be >= 0")
    elif key == "caption_extension" and (not value.startswith(".") or len(value) < 2):
        problems.add(f"{label}: caption_extension = {value!r} must start with a dot, e.g. \".txt\"")


def _make_subset(values: dict[str, Any], label: str, base_dir: Path, cfg: TrainConfig,
                 problems: Problems) -> SubsetSpec | None:
    if "image_dir" not in values:
        problems.add(f"{label}: image_dir is required (the folder holding this subset's images)")
        return None
    if values.get("keep_tokens", 0) > 0 and not values.get("shuffle_caption", False):
        problems.add(f"{label}: keep_tokens only matters with shuffle_caption = true; set both or remove keep_tokens")
    image_dir = Path(resolve_input_path(values["image_dir"], base_dir))
    if not image_dir.is_dir():
        problems.add(f"{label}: image_dir {values['image_dir']!r}: no such folder (looked in the current folder, "
                     "then beside the dataset TOML)")
        return None
    subset = SubsetSpec(
        image_dir=image_dir, caption_extension=values.get("caption_extension", cfg.caption_extension),
        class_tokens=values.get("class_tokens"), num_repeats=values.get("num_repeats", 1),
        caption_prefix=values.get("caption_prefix"), caption_suffix=values.get("caption_suffix"),
        keep_tokens=values.get("keep_tokens", 0), shuffle_caption=values.get("shuffle_caption", False), source=label,
    )
    _check_has_images(subset, problems)
    return subset


def _check_has_images(subset: SubsetSpec, problems: Problems) -> None:
    if not subset.image_paths():
        problems.add(f"{subset.source}: {subset.image_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")


def _wh(resolution: list[int]) -> tuple[int, int]:
    return (resolution[0], resolution[1])


def describe_dataset(spec: DatasetSpec, captions_from_templates: bool = False) -> str:
    """A few lines for ``--dry_run``: each subset with its image count and repeats, and where its captions
    come from (``captions_from_templates``: TextBoost's caption_mode = "templates" writes them all)."""
    counts = [len(s.image_paths()) for s in spec.subsets]
    per_epoch = sum(n * s.num_repeats for n, s in zip(counts, spec.subsets))
    width, height = spec.resolution
    lines = [f"  dataset    : {spec.source}: {sum(counts)} image(s) in {len(spec.subsets)} subset(s), "
             f"{per_epoch} per epoch with repeats; batch {spec.batch_size} at {width}x{height}"]
    for n, s in zip(counts, spec.subsets):
        lines.append(f"    - {s.image_dir}: {n} image(s) x {s.num_repeats}, class tokens {s.class_tokens!r}, "
                     + ("captions from caption_templates (caption files unused)" if captions_from_templates
                        else f"captions *{s.caption_extension}"))
    return "\n".join(lines)
