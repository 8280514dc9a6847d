"""``kifaru merge``: the shards of one run (``--shard I/N``, :mod:`kifaru.runs.shards`) combined
into the outputs that run would have written in one go: the same files, rows in the same order.
A predict run with photos beside its videos has two results files, each merged. Bursts of photos
(each kept whole in one shard) are numbered again over the whole run, as one run numbers them.

Refused, naming what is wrong: shards of different runs (settings, model, classes, outputs or
number of shards differ), a shard given twice or missing, a file in two shards, a shard that did
not finish (its outputs are partial), and an output folder that already holds results.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from kifaru.exceptions import ConfigError
from kifaru.outputs import write_outputs
from kifaru.outputs.results_file import IMAGE_RESULTS_FILE, RESULTS_FILE, RunResults, read_results_file
from kifaru.runs.journal import describe_differences
from kifaru.runs.records import Record

# The records of a predict run's configuration (not a writer's output): the first shard's, saved here.
CONFIGURATION_FILES = ("predict_configuration.yaml", "image_predict_configuration.yaml")
# What must be the same in every shard's results header for them to be one run.
SAME = ("command", "species", "model", "model_sha256", "settings", "outputs", "crop_classifier", "animal_threshold")


@dataclass
class Merged:
    folder: Path
    outputs: dict[str, Path]  # by file name
    records: list[Record]  # of the run's main results file (a predict run's photos: in photos)
    shards: int
    photos: list[Record] = field(default_factory=list)  # predict's photos beside the videos (photos: image)


def merge_shards(folders: Sequence[Path], out: Path, *, overwrite: bool = False) -> Merged:
    """Merge the shards in ``folders`` into ``out`` (see the module). Each results file of the
    first shard (a predict run with photos has two: its videos' and its photos') is merged."""
    if not folders:
        raise ConfigError("give the output folders of the shards to merge")
    folders = [Path(folder) for folder in folders]
    kinds = [[_read_shard(folder, RESULTS_FILE) for folder in folders]]  # each results file's shards
    if (folders[0] / IMAGE_RESULTS_FILE).is_file():
        kinds.append([_read_shard(folder, IMAGE_RESULTS_FILE) for folder in folders])
    merged = [_merged_records(kind) for kind in kinds]
    names = [dict(kind[0].description.outputs) for kind in kinds]
    out = Path(out)
    candidates = {name for outputs in names for name in outputs.values()} | {kind[0].path.name for kind in kinds}
    existing = sorted(name for name in candidates if (out / name).exists())
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds {', '.join(existing)}: pass --overwrite to replace them, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, Path] = {}
    for kind, records, filenames in zip(kinds, merged, names):
        description = replace(kind[0].description, shard=None, partial=None)
        if description.sequences is not None:  # bursts numbered over every camera of the run, as one run numbers them
            from kifaru.runs.image_predict import group_records

            given = {name: seq for shard in kind for name, seq in shard.description.sequences.given.items()}
            description = replace(description, sequences=group_records(records, given, description.sequences.gap_seconds))
        written = write_outputs(out, list(filenames), records, description, filenames)
        outputs.update({path.name: path for path in written.values()})
    for name in CONFIGURATION_FILES:
        if (folders[0] / name).exists():
            outputs[name] = _configuration(folders[0] / name, out)
    return Merged(out, outputs, merged[0], kinds[0][0].header["shard"]["count"], merged[1] if len(merged) > 1 else [])


def _merged_records(shards: list[RunResults]) -> list[Record]:
    """The shards' records in the order of the whole list, after checking they are the shards of one run."""
    first = shards[0]
    count = first.header["shard"]["count"]
    for shard in shards[1:]:
        differences = [d for key in SAME for d in describe_differences(first.header.get(key), shard.header.get(key), key)]
        if shard.header["shard"]["count"] != count:
            differences.insert(0, f"shards: {count} then, {shard.header['shard']['count']} now")
        if differences:
            raise ConfigError(
                f"{shard.path.parent} is not a shard of the same run as {first.path.parent} "
                f"({'; '.join(differences[:4])}{'; ...' if len(differences) > 4 else ''})"
            )
    by_index: dict[int, RunResults] = {}
    for shard in shards:
        index = shard.header["shard"]["index"]
        if index in by_index:
            raise ConfigError(f"shard {index}/{count} is given twice: {by_index[index].path.parent} and {shard.path.parent}")
        by_index[index] = shard
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise ConfigError(f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing: run them, then merge all {count}")
    totals = {s.header["shard"]["inputs"] for s in shards}
    if len(totals) > 1:
        raise ConfigError(f"the shards were made from different lists of files ({', '.join(str(t) for t in sorted(totals))} files)")
    placed: dict[int, Record] = {}
    owner: dict[str, Path] = {}
    for shard in shards:
        positions = shard.header["shard"]["positions"]
        if len(positions) != len(shard.records):
            raise ConfigError(f"{shard.path}: {len(shard.records)} records for {len(positions)} files: run the shard again")
        for position, record in zip(positions, shard.records):
            if record.item in owner:
                raise ConfigError(f"{record.item} is in two shards ({owner[record.item]} and {shard.path.parent}): they overlap")
            owner[record.item] = shard.path.parent
            placed[position] = record
    return [placed[position] for position in sorted(placed)]


def _configuration(path: Path, out: Path) -> Path:
    """The first shard's configuration with the merged folder as its save_dir."""
    import yaml

    from kifaru.files import write_text_atomically

    configuration = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if isinstance(configuration.get("predict_config"), dict):
        configuration["predict_config"]["save_dir"] = str(out)
    write_text_atomically(out / path.name, yaml.safe_dump(configuration))
    return out / path.name


def _read_shard(folder: Path, name: str) -> RunResults:
    path = folder / name
    if not path.is_file():
        raise ConfigError(f"{folder} holds no {name}: give the output folder of a finished run with --shard")
    results = read_results_file(path)
    if results.header.get("shard") is None:
        raise ConfigError(f"{folder} holds a run made without --shard: there is nothing to merge it with")
    if results.header.get("partial") is not None:
        done, total = results.header["partial"]
        raise ConfigError(f"{folder}: shard {results.header['shard']['index']} was interrupted ({done} of {total} files): run it again to finish it first")
    if not results.description.outputs:
        raise ConfigError(f"{folder}: its results do not say which outputs the run wrote (made by an older kifaru): run the shard again")
    return results
