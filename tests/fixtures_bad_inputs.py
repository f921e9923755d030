"""Builders of the bad-input corpus (tests/test_bad_inputs.py; no tests here).

:func:`build_base` writes the good inputs every case starts from, once per session: a sample
world of scenes and one of change pairs (32², OpenEarthMap classes), a detector run, a GAN run
and a generated dataset, all made by the project's own commands. A case's builder writes its bad
input into the case folder ``tmp`` (copying what it damages out of the base, which stays
untouched) and returns the command line: :func:`cli` for a case that is only a command line,
:func:`then` for one that first runs one of the preparations below. Command lines are split
like a shell's; their placeholders ``{tmp}``, ``{scenes}``, ``{pairs}``, ``{detector}``,
``{gan}``, ``{generated}``, ``{det_ckpt}`` and ``{gan_ckpt}`` stand for those paths.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from changen.cli.app import app
from changen.data.imageio import read_image, write_image
from changen.data.world import write_sample_world
from fixtures_geo import UTM, UTM_TRANSFORM, write_geotiff
from fixtures_scenes import xbd_json
from test_security import payloads

SIZE = 32
DETECT = "--model fc-siam-diff --batch-size 2 --crop 32 --workers 0"
DETECT_RUN = f"{DETECT} --steps 1 --no-progress"
FINETUNE = "--batch-size 2 --crop 32 --workers 0 --steps 1 --no-progress"
GAN_RUN = (
    "--preset tiny --size 32 --batch-size 2 --workers 0 --steps 1 --accelerator cpu "
    "--no-progress --preview 0"
)
GEN = "--workers 0 --no-progress"

Prepare = Callable[[Path, "Base"], object]
Edit = Callable[[Path], object]


@dataclass(frozen=True)
class Base:
    """The good inputs of every case (read-only: a case copies what it changes)."""

    scenes: Path
    pairs: Path
    detector: Path
    gan: Path
    generated: Path

    @property
    def root(self) -> Path:
        return self.scenes.parent

    def places(self, tmp: Path) -> dict[str, str]:
        """What the placeholders of a command line and of a case's ``expect`` stand for."""
        paths = asdict(self) | {
            "det_ckpt": self.detector / "checkpoints" / "last",
            "gan_ckpt": self.gan / "checkpoints" / "last",
            "tmp": tmp,
        }
        return {k: str(v) for k, v in paths.items()}


def _ok(line: str) -> None:
    result = CliRunner().invoke(app, shlex.split(line))
    assert result.exit_code == 0, (result.output, result.exception)


def build_base(root: Path) -> Base:
    """Write the shared good inputs under ``root`` with the project's commands (5–15 s)."""
    scenes = write_sample_world(root / "scenes", 3, 0, size=SIZE)
    pairs = write_sample_world(root / "pairs", 3, 1, size=SIZE, pairs=True)
    _ok(f"detect train {pairs} --out {root}/detector {DETECT_RUN}")
    _ok(f"train generator {scenes} --out {root}/gan {GAN_RUN} --sample-every 0")
    _ok(f"generate {scenes} --out {root}/generated --shard-size 2 {GEN}")
    return Base(scenes, pairs, root / "detector", root / "gan", root / "generated")


Builder = Callable[[Path, Base], list[str]]


def cli(line: str) -> Builder:
    """The builder of a case that is only the command line ``line``."""

    def build(tmp: Path, base: Base) -> list[str]:
        return [a.format(**base.places(tmp)) for a in shlex.split(line)]

    return build


def then(prepare: Prepare, line: str) -> Builder:
    """The builder of a case that runs ``prepare(tmp, base)`` before its command line."""

    def build(tmp: Path, base: Base) -> list[str]:
        prepare(tmp, base)
        return cli(line)(tmp, base)

    return build


# -- copies of the base, edited ----------------------------------------------------------------


def copy(src: Path, dst: Path) -> Path:
    """A private copy of a base folder (real copies, never hard links into the base)."""
    shutil.copytree(src, dst, copy_function=shutil.copy)
    return dst


def copy_of(name: str, to: str, *edits: Edit) -> Prepare:
    """A copy of base folder ``name`` (``scenes``, ``detector``…) at ``tmp/<to>``, then each of
    ``edits`` applied to ``tmp/<to>/<sub>`` as :func:`at` says (or to the copy itself)."""

    def prepare(tmp: Path, base: Base) -> None:
        folder = copy(getattr(base, name), tmp / to)
        for edit in edits:
            edit(folder)

    return prepare


def ckpt_of(run: str, *edits: Edit) -> Prepare:
    """A copy of the newest checkpoint of base run ``run`` at ``tmp/ckpt``, then ``edits``."""

    def prepare(tmp: Path, base: Base) -> None:
        folder = copy(getattr(base, run) / "checkpoints" / "last", tmp / "ckpt")
        for edit in edits:
            edit(folder)

    return prepare


def at(sub: str, edit: Edit) -> Edit:
    """``edit`` applied to ``folder/sub`` instead of ``folder``."""
    return lambda folder: edit(folder / sub)


def each_checkpoint(edit: Edit) -> Edit:
    """``edit`` applied to every checkpoint of a run folder."""

    def apply(run: Path) -> None:
        for ckpt in (run / "checkpoints").iterdir():
            edit(ckpt)

    return apply


# -- images and labels -------------------------------------------------------------------------


def pngs(edit: Callable[[np.ndarray], np.ndarray], first: bool = False) -> Edit:
    """Replace every PNG of a folder (or only the first, sorted) by ``edit`` of its pixels."""

    def apply(folder: Path) -> None:
        files = sorted(folder.glob("*.png"))
        for path in files[:1] if first else files:
            write_image(path, edit(read_image(path)))

    return apply


def _band(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., 0] if pixels.ndim == 3 else pixels


def values_1_2(pixels: np.ndarray) -> np.ndarray:
    """A change label stored as 1 (unchanged) / 2 (changed), as OSCD does."""
    return (_band(pixels) > 0).astype(np.uint8) + 1


def values_0_7(pixels: np.ndarray) -> np.ndarray:
    """A change label holding 7, outside {0, 1, 255}."""
    return np.where(_band(pixels) > 0, 7, 0).astype(np.uint8)


def class_42(pixels: np.ndarray) -> np.ndarray:
    """A class mask with class 42 in a corner, outside OpenEarthMap's 0..8 (and not 255)."""
    mask = _band(pixels).copy()
    mask[:4, :4] = 42
    return mask


def grown(pixels: np.ndarray) -> np.ndarray:
    """The image at 48² (its partner stays at 32²)."""
    return np.resize(pixels, (SIZE + 16, SIZE + 16, *pixels.shape[2:]))


def grey(pixels: np.ndarray) -> np.ndarray:
    """One band of an RGB image."""
    return _band(pixels)


def damage(how: str, first: bool = False) -> Edit:
    """Damage a file (or every file of a folder, or only its first): ``zero`` bytes,
    ``truncate`` to half, or ``garbage`` (seeded random bytes)."""

    def apply(path: Path) -> None:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files[:1] if first else files:
            data = file.read_bytes()
            if how == "zero":
                file.write_bytes(b"")
            elif how == "truncate":
                file.write_bytes(data[: len(data) // 2])
            else:
                file.write_bytes(np.random.default_rng(0).integers(0, 256, 512, np.uint8).tobytes())

    return apply


def image_pair(t2: Callable[[np.ndarray], np.ndarray] | None = None, *edits: Edit) -> Prepare:
    """``tmp/t1.png`` and ``tmp/t2.png`` for ``detect predict``: random 32² RGB images, t2 made
    by ``t2`` from its random pixels, then ``edits`` applied to ``tmp``."""

    def prepare(tmp: Path, base: Base) -> None:
        rng = np.random.default_rng(3)
        t1, t2_pixels = rng.integers(0, 256, (2, SIZE, SIZE, 3), np.uint8)
        write_image(tmp / "t1.png", t1)
        write_image(tmp / "t2.png", t2_pixels if t2 is None else t2(t2_pixels))
        for edit in edits:
            edit(tmp)

    return prepare


def renamed(src: str, dst: str) -> Edit:
    return lambda folder: (folder / src).rename(folder / dst)


def xview2_outside(tmp: Path, base: Base) -> None:
    """``tmp/xv``: an xView2 tile whose one polygon lies far outside the 32² image (lon/lat
    pasted into ``features.xy``)."""
    rng = np.random.default_rng(5)
    wkt = "POLYGON ((-95.5 37.1, -95.4 37.1, -95.4 37.2, -95.5 37.2, -95.5 37.1))"
    for phase in ("pre", "post"):
        stem = f"flood_00000000_{phase}_disaster"
        image = rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8)
        write_image(tmp / "xv" / "images" / f"{stem}.png", image)
        doc = xbd_json([wkt], SIZE, f"{stem}.png", ["destroyed"] if phase == "post" else None)
        (tmp / "xv" / "labels").mkdir(parents=True, exist_ok=True)
        (tmp / "xv" / "labels" / f"{stem}.json").write_text(json.dumps(doc))


def geojson_feature(geometry: str | None) -> Prepare:
    """``tmp/gv``: a GeoTIFF and a GeoJSON (geotiff_vector) whose one feature has a ``None``
    or ``"Point"`` geometry."""

    def prepare(tmp: Path, base: Base) -> None:
        folder = tmp / "gv"
        folder.mkdir()
        write_geotiff(folder / "tile.tif", np.random.default_rng(6), (SIZE, SIZE), 3)
        point = {"type": "Point", "coordinates": list(UTM_TRANSFORM @ (4, 4))}
        feature = {
            "type": "Feature",
            "properties": {"class": "building"},
            "geometry": None if geometry is None else point,
        }
        crs = {"type": "name", "properties": {"name": UTM}}
        doc = {"type": "FeatureCollection", "crs": crs, "features": [feature]}
        (folder / "tile.geojson").write_text(json.dumps(doc))

    return prepare


# -- checkpoints and generated datasets ----------------------------------------------------------


def hostile_files(tmp: Path, base: Base) -> None:
    """``tmp/evil/``: the hostile pickles of tests/test_security.py, whose payload would write
    ``tmp/pwned.txt`` (so the case folder's snapshot sees it run)."""
    payloads(tmp / "evil", tmp / "pwned.txt")


EVIL = {
    "torch_save": "{tmp}/evil/torch_save.pth",
    "raw_pickle": "{tmp}/evil/raw_pickle.pt",
    "torchscript_zip": "{tmp}/evil/torchscript.pt",
    "fake_safetensors": "{tmp}/evil/fake.safetensors",
}


def hostile(name: str, kind: str = "raw_pickle") -> Edit:
    """Replace file ``name`` of a checkpoint by a hostile pickle (payload: a ``pwned.txt``
    beside the checkpoint)."""

    def apply(ckpt: Path) -> None:
        files = payloads(ckpt / ".evil", ckpt.parent / "pwned.txt")
        shutil.copy(files[kind], ckpt / name)
        shutil.rmtree(ckpt / ".evil")

    return apply


def foreign(name: str) -> Edit:
    """Replace ``<name>.safetensors`` by a valid file of another model's tensors."""
    return lambda ckpt: save_file(
        {"conv.weight": torch.zeros(4, 3, 3, 3)}, str(ckpt / f"{name}.safetensors")
    )


def only_step_abc(run: Path) -> None:
    """Leave a run folder only a stray ``checkpoints/step-abc`` (copied there by hand)."""
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints" / "step-abc").mkdir(parents=True)
    (run / "checkpoints" / "step-abc" / "notes.txt").write_text("copied by hand\n")


def json_edit(change: Callable[[dict[str, Any]], object]) -> Edit:
    """Edit a JSON file in place (``change`` mutates its dict)."""

    def apply(path: Path) -> None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return apply


def rows_edit(rows: Callable[[list[dict[str, Any]]], Sequence[object]]) -> Edit:
    """Rewrite a manifest shard (JSON lines) with ``rows(its rows)``."""

    def apply(shard: Path) -> None:
        old = [json.loads(line) for line in shard.read_text().splitlines()]
        shard.write_text("".join(json.dumps(r) + "\n" for r in rows(old)))

    return apply


def without(*keys: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda rows: [{k: v for k, v in r.items() if k not in keys} for r in rows]


def stray_shard(gen: Path) -> None:
    """A shard numbered beyond the plan (copied from another, larger run)."""
    shutil.copy(gen / "manifest" / "shard-00000.jsonl", gen / "manifest" / "shard-00042.jsonl")


# -- plain files ---------------------------------------------------------------------------------


def write(name: str, text: str) -> Prepare:
    """``tmp/<name>`` holding ``text``."""

    def prepare(tmp: Path, base: Base) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return prepare


def mkdir(name: str) -> Prepare:
    """An empty folder ``tmp/<name>``."""
    return lambda tmp, base: (tmp / name).mkdir(parents=True)
