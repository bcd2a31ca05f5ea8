"""Metrics plumbing: FID/KID (torch-fidelity, offline Inception), LPIPS (offline AlexNet), nearest
training images, GAN-test accuracy, and the cached evaluation of a GAN."""
