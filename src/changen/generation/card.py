"""The dataset card: a ``README.md`` in every generated dataset saying what it holds and how it
was made (counts, event and class statistics, layout, the source's licence, versions, the
command line, the full config).

The card is built from the run's config, its manifest rows and the writer's ``manifest.json``
only, so it is the same whatever the executor or the number of restarts (no timings in it).
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from changen import __version__
from changen.data.atomic import write_text_atomic
from changen.data.readers.base import UNKNOWN_LICENCE
from changen.sample import Taxonomy

LAYOUT_FILES: dict[str, str] = {
    "levircd": "`A/` pre-event and `B/` post-event images (PNG), `label/` change (0 = unchanged, "
    "255 = changed), `A_mask/` `B_mask/` semantic masks (class-id PNGs)",
    "geotiff": "`A/ B/ label/ A_mask/ B_mask/` as LEVIR-CD, every file a GeoTIFF carrying the "
    "source's georeference",
    "second": "`im1/ im2/` images, `label1/ label2/` SECOND-style semantic labels inside changed "
    "pixels (0 = unchanged, class id + 1 elsewhere; see `manifest.json` for the taxonomy), "
    "`label/` binary change (0/255)",
    "second_rgb": "`im1/ im2/` images, `label1/ label2/` SECOND's RGB colour-coded semantic "
    "labels inside changed pixels (white = unchanged; colours in `manifest.json`), `label/` "
    "binary change (0/255)",
}


def event_statistics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Event counts by kind, and per class: objects created, removed, re-classed from/to."""
    kinds: Counter[str] = Counter()
    per_class: dict[str, Counter[int]] = {
        "created": Counter(),
        "removed": Counter(),
        "reclassed_from": Counter(),
        "reclassed_to": Counter(),
    }
    for row in rows:
        for event in row["events"]:
            kind = event["event"]
            kinds[kind] += 1
            if kind == "create":
                per_class["created"][event["class_after"]] += 1
            elif kind == "remove":
                per_class["removed"][event["class_before"]] += 1
            else:
                per_class["reclassed_from"][event["class_before"]] += 1
                per_class["reclassed_to"][event["class_after"]] += 1
    return {"kinds": dict(kinds), "per_class": {k: dict(v) for k, v in per_class.items()}}


def split_lines(config: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """The card's "Splits" section (empty without splits): the spec, then per split the
    source items, samples planned and change pairs written, and how the field's loaders read
    it."""
    plan = config.get("plan", {})
    shares, planned = plan.get("splits"), plan.get("split_counts", {})
    if not shares:
        return []
    written = manifest["counts"].get("splits", {})
    spec = ",".join(f"{name}={share:g}" for name, share in shares.items())
    lines = [
        "## Splits",
        "",
        f"Split by source item (`--split {spec}`, seed {config['seed']}): every crop and "
        "variant of one source item is in the same split, chosen from a hash of the seed and the "
        "item's name, so an item keeps its split when items are added.",
        "",
        "| split | source items | samples planned | change pairs |",
        "|---|---|---|---|",
    ]
    for name in shares:
        counts = planned.get(name, {})
        pairs = written.get(name, {}).get("samples", 0)
        lines.append(
            f"| {name} | {counts.get('items', 0)} | {counts.get('samples', 0)} | {pairs} |"
        )
    lines += [
        "",
        "`<split>/` holds the layout's folders; `list/<split>.txt` names its files. Files are "
        "named `<split>_<sample>` as in the official LEVIR-CD release: torchgeo reads "
        '`LEVIRCD(root="<this folder>/train", split="train")`, Open-CD `data_root` = this '
        "folder with `img_path_from='train/A'`, torchange `dataset_dir` = `<this folder>/train`.",
        "",
    ]
    return lines


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def command_line(argv: list[str]) -> str:
    """``argv`` as a shell line, the program by its name (``changen`` for the console script
    and ``python -m changen``) rather than its install path."""
    program = Path(argv[0]).name if argv else "changen"
    return shlex.join(["changen" if program == "__main__.py" else program, *argv[1:]])


def provenance_lines(config: dict[str, Any], environment: dict[str, Any] | None) -> list[str]:
    """The card's "Licence and provenance" section: the source's licence (which the dataset
    inherits), the versions that made it, the command line and how to make it again."""
    licence = config["source"].get("licence", UNKNOWN_LICENCE)
    lines = [
        "## Licence and provenance",
        "",
        f"Source licence: **{licence}**. This dataset is derived from the source's images and "
        "labels, so it inherits that licence: use and share it only under the source's terms "
        "(check them at the source).",
        "",
    ]
    if environment is not None:
        versions = ", ".join(f"{k} {v}" for k, v in environment["versions"].items() if v)
        lines += [
            f"Made with {versions}, by:",
            "",
            "```",
            command_line(environment["command"]),
            "```",
            "",
        ]
    lines += [
        "`changen generate --config generation.json --out OTHER` makes the same files again "
        "(the same bytes with the same versions; `manifest/` timings differ).",
        "",
    ]
    return lines


def render_card(
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    manifest: dict[str, Any],
    environment: dict[str, Any] | None = None,
) -> str:
    """The card's Markdown text (independent of the folder's name, so copies compare equal;
    ``environment``, :func:`changen.generation.rerun.environment`, adds the versions and the
    command line)."""
    status = Counter(row["status"] for row in rows)
    counts = manifest["counts"]
    taxonomy = Taxonomy.from_dict(config["taxonomy"])
    events = event_statistics(rows)
    sizes = sorted({f"{r['size'][1]}×{r['size'][0]}" for r in rows if r["status"] != "skipped"})
    synth = config["synthesizer"]
    layout = config["layout"]
    changed = _pct(counts.get("changed_pixels", 0), counts.get("labelled_pixels", 0))
    lines = [
        "# Synthetic change-detection dataset (changen)",
        "",
        f"Generated by changen {__version__} with the Generative Probabilistic Change Model: "
        f"change events simulated on the masks of `{config['source']['path']}`, post-event "
        f"images synthesised by `{synth['name']}` (config hash `{synth['config_hash']}`).",
        "",
        _nuisance_line(config.get("nuisance"), config.get("negatives", 0.0)),
        "",
        "## Contents",
        "",
        "| | |",
        "|---|---|",
        f"| samples planned | {len(rows)} |",
        f"| samples written | {status['ok'] + status['nochange'] + status['negative']} |",
        f"| of which no-change (no eligible objects) | {status['nochange']} |",
        f"| of which hard negatives (no event, nuisance only) | {status['negative']} |",
        f"| samples skipped (no eligible objects) | {status['skipped']} |",
        f"| change pairs | {counts.get('samples', 0)} |",
        f"| time steps per sample | {config['steps']} |",
        f"| variants per source crop | {config['per_image']} |",
        f"| image sizes (w×h) | {', '.join(sizes) or '-'} |",
        f"| changed pixels | {changed} |",
        f"| seed | {config['seed']} |",
        "",
        *split_lines(config, manifest),
        *provenance_lines(config, environment),
        "## Change events",
        "",
        "| event | objects |",
        "|---|---|",
        *(f"| {k} | {events['kinds'].get(k, 0)} |" for k in ("create", "remove", "reclass")),
        "",
        "## Classes",
        "",
        "Pixel shares over all pairs (pre-event `A`, post-event `B`) and objects per event.",
        "",
        "| id | class | pre-event pixels | post-event pixels | created | removed "
        "| re-classed from | re-classed to |",
        "|---|---|---|---|---|---|---|---|",
    ]
    t1, t2 = counts.get("t1_class_pixels", {}), counts.get("t2_class_pixels", {})
    total1, total2 = sum(t1.values()), sum(t2.values())
    per_class = events["per_class"]
    for c in taxonomy.classes:
        cells = [
            c.id,
            c.name,
            _pct(t1.get(str(c.id), 0), total1),
            _pct(t2.get(str(c.id), 0), total2),
            *(
                per_class[k].get(c.id, 0)
                for k in ("created", "removed", "reclassed_from", "reclassed_to")
            ),
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += [
        "",
        "## Files",
        "",
        f"- {LAYOUT_FILES.get(layout, layout)};",
        "- `manifest/shard-XXXXX.jsonl`: one provenance row per sample (source item and crop, "
        "seed, every object-level event, synthesizer and config hash, timings, output names);",
    ]
    if config["steps"] > 1:
        lines.append(
            "- `series/<sample>/image_t<k>`, `mask_t<k>.png`: the whole time series (the pairs "
            "above are its consecutive steps, named `<sample>_t<k-1>_t<k>`);"
        )
    lines += [
        "- `generation.json`: the full configuration below; `manifest.json`: counts and taxonomy.",
        "",
        "## Load it",
        "",
        "```python",
        "from changen.data.readers import open_dataset",
        "",
        'pairs = open_dataset("<this folder>")  # ChangeSample: t1_image, t2_image, change_mask, …',
        "```",
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def _nuisance_line(nuisance: dict[str, Any] | None, negatives: float) -> str:
    """What the card says about the acquisition differences between dates."""
    share = f"{100 * negatives:.0f} % of samples are hard negatives (no event). "
    if not nuisance:
        return share + "No nuisance model: unchanged pixels are identical between dates."
    strengths = ", ".join(f"{k} {v:g}" for k, v in nuisance.items() if isinstance(v, float))
    return share + f"Post-event images pass through the nuisance model ({strengths})."


def write_card(
    root: Path,
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    manifest: dict[str, Any],
    environment: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/README.md`` atomically and return its path."""
    path = root / "README.md"
    write_text_atomic(path, render_card(config, rows, manifest, environment))
    return path
