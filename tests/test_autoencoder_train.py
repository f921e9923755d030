"""Latent autoencoder training (``changen train autoencoder``): presets, losses, learning signal,
checkpoints that open as latent spaces, VQ codebook use, exact resume, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import typer
from lightning_fabric import Fabric
from typer.testing import CliRunner

from changen.cli.train import app as train_app
from changen.data.world import write_sample_world
from changen.engine.checkpoint import load_config, load_state
from changen.engine.config import RunConfig
from changen.engine.metrics import read_metrics
from changen.errors import ConfigError, DataError, OutputExistsError
from changen.synthesis.diffusion.autoencoder import (
    PRESETS,
    PatchDiscriminator,
    Reconstruct,
    build_autoencoder,
    code_usage,
    raw_latents,
    reconstruction_loss,
)
from changen.synthesis.diffusion.autoencoder_train import (
    AutoencoderTrainConfig,
    AutoencoderTrainer,
    resume_config,
    saved_config,
    train_autoencoder,
)
from changen.synthesis.diffusion.latent import open_latent_space

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32


def tiny(data: Path, kind: str, **kw: object) -> AutoencoderTrainConfig:
    base: dict[str, object] = {
        "data": str(data),
        "kind": kind,
        "preset": "tiny",
        "size": SIZE,
        "batch_size": 2,
        "steps": 4,
        "holdout": 0.2,
        "disc_start": 2,
        "run": RunConfig(accelerator="cpu", log_every=1, save_every=2),
        "sample_every": 0,
        "eval_every": 2,
        "eval_samples": 2,
        "preview": 1,
    }
    return AutoencoderTrainConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def runs(worlds: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4-step tiny run of each kind (GAN term on from step 2), checkpoints at 2 and 4."""
    root = tmp_path_factory.mktemp("ae")
    torch.set_num_threads(1)
    return {k: train_autoencoder(tiny(worlds["scenes"], k), root / k).run for k in ("kl", "vq")}


# -- models and losses -----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "factor", "channels"), [("kl", 8, 4), ("vq", 4, 3)])
def test_presets_have_the_documented_geometry(kind: str, factor: int, channels: int) -> None:
    full, small = PRESETS[kind]["full"], PRESETS[kind]["tiny"]
    assert full.factor == small.factor == factor
    assert full.latent_channels == small.latent_channels == channels
    assert max(small.block_out_channels) <= 16
    if kind == "vq":
        assert full.codebook == 8192 and 64 <= small.codebook <= 256
    torch.manual_seed(0)
    net = Reconstruct(build_autoencoder(small), small.kind)
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    recon, reg, codes = net(x, torch.Generator().manual_seed(0))
    assert recon.shape == x.shape and reg.ndim == 0 and reg >= 0
    assert raw_latents(net.model, x).shape == (2, channels, SIZE // factor, SIZE // factor)
    assert (codes is None) == (kind == "kl")
    if codes is not None:
        assert codes.shape == (2 * (SIZE // factor) ** 2,) and int(codes.max()) < small.codebook


def test_losses_and_code_usage() -> None:
    x = torch.zeros(1, 3, 8, 8)
    y = x.clone()
    y[..., 4:] = 1.0  # an edge: L1 0.5, plus edge terms with grad_weight
    assert float(reconstruction_loss(y, x)) == pytest.approx(0.5)
    assert float(reconstruction_loss(y, x, grad_weight=1.0)) > 0.5
    usage = code_usage(torch.tensor([0, 0, 1, 1]), 8)
    assert usage == {"code_usage": 0.25, "perplexity": pytest.approx(2.0)}
    logits = PatchDiscriminator(8, 2)(torch.zeros(2, 3, SIZE, SIZE))
    assert logits.shape[:2] == (2, 1) and logits.shape[-1] < SIZE // 2


def test_config_defaults_follow_the_kind_and_bad_values_are_one_line(worlds: dict) -> None:
    kl, vq = (AutoencoderTrainConfig(data="x", kind=k, size=64) for k in ("kl", "vq"))
    assert (kl.disc_start, kl.reg_weight, kl.lr) == (50001, 1e-6, pytest.approx(4.5e-6 * 8))
    assert (vq.disc_start, vq.disc_weight, vq.reg_weight) == (0, 0.75, 1.0)
    assert AutoencoderTrainConfig(data="x", preset="tiny", size=64).lr == 1e-3
    for kw, text in [
        ({"kind": "gan"}, "--kind 'gan'"),
        ({"preset": "huge"}, "--preset 'huge'"),
        ({"size": 36}, "multiple of its factor 8"),
        ({"lr": 0.0}, "--lr 0.0 must be positive"),
        ({"disc_weight": -1.0}, "--disc-weight -1.0 must be >= 0"),
    ]:
        with pytest.raises(ConfigError, match=text) as e:
            AutoencoderTrainConfig(data="x", **kw)  # type: ignore[arg-type]
        assert "\n" not in str(e.value)


# -- training --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_a_few_steps_lower_the_held_out_reconstruction_error(tmp_path: Path, kind: str) -> None:
    world = write_sample_world(tmp_path / "w", 12, 3, size=SIZE)
    config = tiny(world, kind, disc_start=10**6, batch_size=4, holdout=0.25)
    trainer = AutoencoderTrainer(config, _cpu())
    held = trainer.eval_images(4)
    assert len(held) == 3
    before = trainer.evaluate(held)["val_l1"]
    for _ in range(20):
        trainer.update()
    after = trainer.evaluate(held)["val_l1"]
    # ~0.7 after 20 steps for both kinds and any seed; no step, a wrong target or a detached
    # loss would leave it at the random decoder's error
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_checkpoints_and_run_folders_open_as_latent_spaces(
    runs: dict[str, Path], kind: str
) -> None:
    run = runs[kind]
    arch = PRESETS[kind]["tiny"]
    step2 = run / "checkpoints" / "step-2"
    x = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    for spec in (run, run / "checkpoints" / "last", step2):
        space = open_latent_space(str(spec))
        z = space.encode(x)
        assert (space.factor, space.channels) == (arch.factor, arch.latent_channels)
        assert z.shape == (3, arch.latent_channels, SIZE // arch.factor, SIZE // arch.factor)
        assert space.decode(z).shape == x.shape
    assert open_latent_space(str(run)).describe()["folder"].endswith("last/autoencoder")
    config = load_config(run / "checkpoints" / "last")
    assert config["kind"] == "changen_autoencoder" and config["step"] == 4
    inner = json.loads((run / "checkpoints" / "last" / "autoencoder" / "config.json").read_text())
    assert inner["_class_name"] == ("AutoencoderKL" if kind == "kl" else "VQModel")
    assert inner["scaling_factor"] == pytest.approx(config["scaling_factor"])
    # the scale makes the held-out latents (what it was measured on) unit-variance
    trainer = AutoencoderTrainer(saved_config(run / "checkpoints" / "last"), _cpu())
    held = trainer.eval_images(trainer.config.eval_samples)
    assert float(open_latent_space(str(run)).encode(held).std()) == pytest.approx(1.0, rel=1e-3)
    last = run / "checkpoints" / "last"
    links = (
        last / "autoencoder.safetensors",
        last / "autoencoder" / "diffusion_pytorch_model.safetensors",
    )
    assert links[0].stat().st_ino == links[1].stat().st_ino  # one copy of the weights on disk


def test_vq_uses_more_than_one_code_and_reports_perplexity(runs: dict[str, Path]) -> None:
    rows = {s: r for s, r in read_metrics(runs["vq"] / "metrics.csv") if "loss" in r}
    logged = [r for _, r in read_metrics(runs["vq"] / "metrics.csv")]
    assert all(
        r["perplexity"] > 1 and r["code_usage"] * 128 > 1 for r in logged if "perplexity" in r
    )
    val = [r for r in logged if "val_perplexity" in r]
    assert len(val) == 2 and all(r["val_perplexity"] > 1 for r in val)
    assert "loss_d" in rows[4] and "loss_d" not in rows[1]  # GAN term from disc_start = 2
    kl = [r for _, r in read_metrics(runs["kl"] / "metrics.csv")]
    assert not any("perplexity" in r for r in kl) and any("val_psnr" in r for r in kl)


def _cpu() -> Fabric:
    return Fabric(accelerator="cpu", devices=1)


# -- exact resume ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_resume_reproduces_the_uninterrupted_run(
    worlds: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    config = tiny(worlds["scenes"], kind, disc_start=1, eval_every=0, preview=0)
    straight = train_autoencoder(config, tmp_path / "a")
    train_autoencoder(dataclasses.replace(config, steps=2), tmp_path / "b")
    resumed = train_autoencoder(resume_config(tmp_path / "b", steps=4), tmp_path / "b", resume=True)
    assert resumed.step == straight.step == 4
    for name in ("autoencoder.safetensors", "discriminator.safetensors"):
        a, b = ((r.checkpoint / name).read_bytes() for r in (straight, resumed))
        assert a == b, name
    sa, sb = load_state(straight.checkpoint), load_state(resumed.checkpoint)
    for opt in ("optimizer_ae", "optimizer_d"):
        for pa, pb in zip(sa[opt]["state"].values(), sb[opt]["state"].values(), strict=True):
            assert all(torch.equal(pa[k], pb[k]) for k in pa)
    rows_a, rows_b = (
        [(s, r["loss"]) for s, r in read_metrics(r.run / "metrics.csv") if "loss" in r]
        for r in (straight, resumed)
    )
    assert rows_a == rows_b and [s for s, _ in rows_b] == [1, 2, 3, 4]


def test_bf16_autocast_trains_with_the_gan_term(worlds: dict[str, Path], tmp_path: Path) -> None:
    run = RunConfig(accelerator="cpu", precision="bf16", log_every=1, save_every=0)
    config = tiny(worlds["scenes"], "kl", steps=2, disc_start=0, run=run, preview=0)
    result = train_autoencoder(config, tmp_path / "bf16")
    rows = [r for _, r in read_metrics(result.run / "metrics.csv") if "loss" in r]
    assert len(rows) == 2 and all("loss_d" in r and "gan_weight" in r for r in rows)
    assert open_latent_space(str(result.run)).encode(torch.zeros(1, 3, 32, 32)).shape[1] == 4


def test_resume_refuses_changed_settings(runs: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="size"):
        resume_config(runs["kl"], size=64)
    with pytest.raises(ConfigError, match="seed"):
        train_autoencoder(tiny(Path("x"), "kl", seed=3), runs["kl"], resume=True)


# -- the CLI -----------------------------------------------------------------------------------

TINY = ("--preset", "tiny", "--size", str(SIZE), "--batch-size", "2", "--workers", "0")
RUNTIME = ("--accelerator", "cpu", "--log-every", "1", "--no-progress")


def invoke(*args: str | Path):
    app = typer.Typer()
    app.add_typer(train_app, name="train")

    @app.callback()
    def _root() -> None:
        """Test app holding only the train commands."""

    return CliRunner().invoke(app, ["train", "autoencoder", *map(str, args)])


def test_cli_trains_resumes_and_opens_as_a_latent_space(
    worlds: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = ("--kind", "vq", *TINY, *RUNTIME, "--disc-start", "1", "--save-every", "2")
    result = invoke(worlds["scenes"], "--out", run, *args, "--steps", "2", "--sample-every", "1")
    assert result.exit_code == 0, result.output
    assert "trained to step 2" in result.output
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-1.png", "step-2.png"]
    assert (run / "losses.png").is_file() and json.loads((run / "config.json").read_text())
    again = invoke(worlds["scenes"], "--out", run, *args, "--steps", "2")
    assert isinstance(again.exception, OutputExistsError)
    refused = invoke("--out", run, "--resume", "--kind", "kl", *RUNTIME)
    assert isinstance(refused.exception, ConfigError) and "--kind" in str(refused.exception)
    resumed = invoke("--out", run, "--resume", "--steps", "3", *RUNTIME)
    assert resumed.exit_code == 0, resumed.output
    assert load_config(run / "checkpoints" / "last")["step"] == 3
    assert [s for s, r in read_metrics(run / "metrics.csv") if "loss" in r] == [1, 2, 3]
    assert open_latent_space(str(run)).encode(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 4, 4)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("--kind", "gan"), ConfigError, "--kind 'gan': choose one of kl, vq"),
        (("--preset", "huge"), ConfigError, "--preset 'huge': choose one of full, tiny"),
        (("--size", "36"), ConfigError, "multiple of its factor 8"),
        (("--size", "128"), DataError, "smaller than the 128×128 training crop"),
        (("--precision", "fp16"), ConfigError, "precision"),
    ],
)
def test_bad_options_are_one_line_errors_and_leave_no_run(
    worlds: dict[str, Path], tmp_path: Path, args: tuple[str, ...], error: type, message: str
) -> None:
    run = tmp_path / "run"
    result = invoke(worlds["scenes"], "--out", run, *TINY[2:], *RUNTIME, "--steps", "1", *args)
    assert isinstance(result.exception, error), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not run.exists()


def test_bad_data_and_wrong_runs_are_one_line_errors(
    worlds: dict[str, Path], runs: dict[str, Path], tmp_path: Path
) -> None:
    result = invoke("--out", tmp_path / "run", *RUNTIME)
    assert isinstance(result.exception, ConfigError) and "DATA is required" in str(result.exception)
    pairs = invoke(worlds["pairs"], "--out", tmp_path / "run", *TINY, *RUNTIME, "--steps", "1")
    assert isinstance(pairs.exception, DataError)
    assert "is a change dataset" in str(pairs.exception) and not (tmp_path / "run").exists()
    nothing = invoke("--out", tmp_path / "fresh", "--resume", *RUNTIME)
    assert isinstance(nothing.exception, DataError) and "no checkpoint" in str(nothing.exception)
