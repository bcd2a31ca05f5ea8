"""The common way to feed CIFAR to a model, used as the baseline by the benchmarks:
PIL images through torchvision transforms in a DataLoader."""
from __future__ import annotations

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class PILImages(Dataset):
    """The usual per-image dataset: uint8 tensor -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: transforms.Compose):
        self.pictures = images.permute(0, 2, 3, 1).numpy()  # (N, 32, 32, 3), as torchvision's CIFAR keeps them
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.pictures[i])), self.labels[i]


def reference_loader(images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                     batch_size: int, workers: int) -> DataLoader:
    """RandomCrop(32, padding=4), RandomHorizontalFlip, ColorJitter(0.2, 0.2, 0.2), ToTensor, Normalize."""
    recipe = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(0.2, 0.2, 0.2), transforms.ToTensor(),
        transforms.Normalize(mean.tolist(), std.tolist())])
    return DataLoader(PILImages(images, labels, recipe), batch_size=batch_size, shuffle=True,
                      num_workers=workers, drop_last=True)


def endless(loader: DataLoader):
    """Batches from `loader`, epoch after epoch."""
    while True:
        yield from loader
