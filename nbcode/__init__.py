"""Shared code of the executable book "Efficient CIFAR-100 Modelling".

The paper, one concept per module (torch and the standard library only: copy a file whole):
    cost               eq. (2): multiply-adds, parameters and measured time of convolutions and models
    augment            batched augmentation on tensors (crop, flip, colour jitter, normalisation)
    resnet             the depthwise-separable ResNet (Part 1)
    classifier_recipe  the paper's recipe and ours: optimiser, schedule, one training step, accuracy
    normalization      spectral norm (power iteration) and conditional batch norm
    projection         the projection discriminator head, eq. (7)
    losses             hinge losses, eqs. (4)-(5), and the adaptive-weighted discriminator loss, eq. (6)
    gan                the conditional SN-GAN of Table 1 (Part 2)
    gan_recipe         GAN settings, optimisers, the D and G updates, the generator's moving average
    toy_gan            a 2-D ring-of-Gaussians GAN for quick experiments

The machinery that runs the paper and builds the book:
    runs/      profiles (budgets, device), precision, allocator, cache (checkpoints, records, locks),
               scaffold (the bookkeeping both training loops share), classifier and gan (cached,
               resumable training runs and their command lines), reproduce (every paper-budget run)
    data/      datasets (CIFAR-100, CIFAR-10, the synthetic stand-in; python -m nbcode.data),
               safe_pickle (pickles of numpy arrays, read without running code)
    metrics/   fid (FID, KID), inception (offline Inception weights), lpips_weights (offline
               AlexNet for LPIPS), nearest (nearest training images, LPIPS to them),
               recognisability (GAN-test accuracy), evaluation (a GAN's cached evaluation)
    book/      build (python -m nbcode.book), lab (python -m nbcode.book.lab), display (showing
               nbcode's source in notebooks), plots, verdicts (every computed answer and its rule)
"""
