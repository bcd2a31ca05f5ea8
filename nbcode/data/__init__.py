"""Data loading: CIFAR-100, CIFAR-10 and the synthetic stand-in as uint8 tensors, and safe pickles."""
