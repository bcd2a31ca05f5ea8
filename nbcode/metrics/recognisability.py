"""GAN-test accuracy (Shmelkov, Schmid and Alahari, "How good is my GAN?", ECCV 2018): does each
class of a conditional generator look like its class to a classifier trained on real images?

    images, labels = samples_per_class(generator, per_class=50)
    generated = per_class_accuracy(classifier, images, labels, mean, std)      # (C,) in [0, 1]
    real = per_class_accuracy(classifier, test.images, test.labels, mean, std)
    print(recognisability_verdict(generated, real, len(labels), "cifar10, quick profile"))  # nbcode.book.verdicts

The classifier's accuracy on real test images is the ceiling a perfect generator would reach with
that classifier; 1 / C is chance, what samples that carry no class would score.
"""
from __future__ import annotations

import torch
from torch import nn

from nbcode.augment import prepare_batch
from nbcode.gan import Generator, to_uint8


@torch.no_grad()
def samples_per_class(generator: Generator, per_class: int, seed: int = 0,
                      batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` samples of every class of a conditional generator, from seeded noise.

    Returns:
        (C * per_class, 3, 32, 32) uint8 images; (C * per_class,) int64 labels, class by class.
    """
    if not generator.num_classes:
        raise ValueError("GAN-test needs a conditional generator (this one has num_classes=0)")
    labels = torch.arange(generator.num_classes).repeat_interleave(per_class)
    z = torch.randn(len(labels), generator.latent, generator=torch.Generator().manual_seed(seed))
    generator.eval()
    images = [to_uint8(generator(z[start:start + batch_size], labels[start:start + batch_size]))
              for start in range(0, len(labels), batch_size)]
    return torch.cat(images), labels


@torch.no_grad()
def per_class_accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor,
                       std: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The share of each class's images that `classifier` (eval mode, fp32) labels as that class.

    Args:
        images: (N, 3, 32, 32) uint8; labels: (N,) int64.
        mean, std: (3,) the per-channel statistics the classifier was trained with.
    Returns:
        (C,) float in [0, 1], C = the classifier's number of outputs; nan for a class with no images.
    """
    classifier.eval()
    logits = torch.cat([classifier(prepare_batch(images[start:start + batch_size], mean, std)
                                   .contiguous(memory_format=torch.channels_last))
                        for start in range(0, len(labels), batch_size)])
    right = labels[logits.argmax(1) == labels]
    num_classes = logits.shape[1]
    return torch.bincount(right, minlength=num_classes) / torch.bincount(labels, minlength=num_classes)
