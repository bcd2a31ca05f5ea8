import pytest
import torch
import torch.nn.functional as F

from nbcode.projection import ProjectionHead


def test_projection_term_equals_the_explicit_one_hot_computation():
    torch.manual_seed(0)
    head = ProjectionHead(features=6, num_classes=4).eval()  # eval: the normalised weights stay fixed
    phi, labels = torch.randn(5, 6), torch.tensor([0, 3, 1, 3, 2])
    V = head.embed.weight  # (4, 6), spectrally normalised
    y = F.one_hot(labels, 4).float()  # (5, 4)
    explicit = ((y @ V) * phi).sum(dim=1) + head.psi(phi).squeeze(1)  # y^T V phi + psi(phi)
    torch.testing.assert_close(head(phi, labels), explicit)


def test_unconditional_head_is_psi_alone():
    head = ProjectionHead(features=3, num_classes=0).eval()
    phi = torch.randn(4, 3)
    torch.testing.assert_close(head(phi), head.psi(phi).squeeze(1))
    with pytest.raises(ValueError, match="unconditional"):
        head(phi, torch.zeros(4, dtype=torch.long))


def test_projection_rejects_bad_input():
    head = ProjectionHead(features=3, num_classes=10)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        head(torch.randn(2, 3), torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="pass labels"):
        head(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"expected features of shape \(B, 3\)"):
        head(torch.randn(2, 4), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"\(2,\) integer tensor"):
        head(torch.randn(2, 3), torch.tensor([1, 2, 3]))
