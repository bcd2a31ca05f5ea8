"""Shared code of the executable book "Efficient CIFAR-100 Modelling".

One module per concept: `profiles` (budgets and device), `data` (datasets), `augment` (batched
augmentation), `plots` (figures), `display` (showing nbcode's own source in the notebooks).
"""
