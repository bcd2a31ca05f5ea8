"""The paper's layer copies out: each building block and each training step the book shows, pasted
with the files it needs into a fresh interpreter without nbcode, runs on a tiny input with torch
and the standard library alone."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

NBCODE = Path(__file__).resolve().parents[1] / "nbcode"
PAPER = ("cost", "augment", "resnet", "classifier_recipe", "normalization", "projection", "losses", "gan",
         "diff_augment", "gan_recipe", "toy_gan", "mobilenet", "sle_gan")
ALLOWED = set(sys.stdlib_module_names) | {"torch"}

# What a reader copies (the modules holding the blocks, with every paper module they import), and
# a tiny run of what the book shows from them. Each runs in a namespace of its own.
USES = {
    "resnet": (("resnet",), """
        model = DSResNet()
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    """),
    "mobilenet": (("mobilenet",), """
        model = MobileNetV2Small(num_classes=10)
        model(torch.randn(2, 3, 32, 32)).sum().backward()
        assert model.head.weight.grad.shape == (10, HEAD)
    """),
    "sle_gan": (("sle_gan",), """
        g, d = SLEGenerator(num_classes=10), Discriminator(num_classes=10)
        labels = torch.tensor([0, 9])
        d(g(torch.randn(2, LATENT), labels), labels).sum().backward()
        assert g.sle_32.gate[1].weight.grad is not None
    """),
    "cost": (("cost",), """
        assert counted_macs(separable_conv(3, 8, 16), (1, 8, 8, 8)) == separable_conv_macs(3, 8, 16, 8)
        assert count_parameters(standard_conv(3, 8, 16)) == standard_conv_params(3, 8, 16)
        assert median_seconds(lambda: None, repeats=3, warmup=1) >= 0
    """),
    "classifier_recipe": (("resnet", "classifier_recipe"), """
        model = DSResNet(num_classes=10)
        recipe = RECIPES["improved"]
        optimizer, schedule = make_optimizer(model, recipe, steps=2)
        images, labels = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.tensor([0, 1, 2, 3])
        mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
        for _ in range(2):
            loss = classifier_step(model, optimizer, schedule, images, labels, mean, std, recipe, torch.Generator())
        assert loss.isfinite()
        assert set(evaluate(model, images, labels, mean, std, flip_tta=True)) == {"plain", "flip_tta"}
        assert set(ablations()) == {"AdamW + weight decay", "one-cycle schedule", "label smoothing"}
    """),
    "gan_recipe": (("gan_recipe",), """
        rng = torch.Generator().manual_seed(0)
        real, labels = torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3])
        for loss in ("aw", "hinge"):
            g, d, g_opt, d_opt = build_gan(num_classes=10, lr=2e-4)
            stats = gan_iteration(g, d, g_opt, d_opt, real, labels, loss, rng)
            assert {"d_loss", "g_loss", "real_score", "fake_score"} <= set(stats)
            fake = g(torch.randn(4, g.latent), labels)
            update_discriminator(d, d_opt, real, labels, fake, labels, loss)
            update_generator(g_opt, d, fake, labels)
        settings = GAN_RECIPES["improved"]
        g, d, g_opt, d_opt = build_gan(num_classes=10, lr=settings.lr, lr_d=settings.lr_d)
        stats = gan_iteration(g, d, g_opt, d_opt, real, labels, "aw", rng, augment=("colour", "translation"))
        assert set(gan_ablations()) == {"two time-scale rates", "faster generator"}
        ema = Generator(num_classes=10)
        update_ema(ema, g, 0.999)
        assert ema(torch.randn(2, 128), torch.tensor([0, 1])).shape == (2, 3, 32, 32)
        g, d, g_opt, d_opt = build_gan(num_classes=10, lr=2e-4, generator="sle")
        assert isinstance(g, SLEGenerator) and gan_iteration(g, d, g_opt, d_opt, real, labels, "aw", rng)["case"]
    """),
    "diff_augment": (("diff_augment",), """
        x = torch.rand(2, 3, 32, 32, requires_grad=True)
        diff_augment(x, ("colour", "translation", "cutout"), torch.Generator().manual_seed(0)).sum().backward()
        assert x.grad.shape == x.shape
    """),
    "projection": (("projection",), """
        head = ProjectionHead(8, num_classes=3)
        assert head(torch.randn(2, 8), torch.tensor([0, 2])).shape == (2,)
    """),
    "normalization": (("normalization",), """
        layer = spectral_norm(torch.nn.Linear(4, 3))
        layer(torch.randn(2, 4))
        assert ConditionalBatchNorm2d(4, 3)(torch.randn(2, 4, 2, 2), torch.tensor([0, 2])).shape == (2, 4, 2, 2)
    """),
    "losses": (("losses",), """
        d = torch.nn.Linear(2, 1)
        out_real, out_fake = d(torch.randn(4, 2)).squeeze(1), d(torch.randn(4, 2)).squeeze(1)
        weights = aw_discriminator_backward(d, out_real, out_fake, hinge_real(out_real), hinge_fake(out_fake))
        assert weights.case in AW_CASES and d.weight.grad is not None
    """),
    "toy_gan": (("toy_gan",), """
        run = train_toy_gan("aw", steps=3, seed=0, batch=16, n_samples=20)
        assert mode_coverage(run.samples)[0] >= 0
    """),
}


def paper_imports(module: str) -> tuple[list[str], list[str]]:
    """(the nbcode modules `module` imports, every other top-level module it imports)."""
    own, other = [], []
    for node in ast.walk(ast.parse((NBCODE / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            (own if node.module.startswith("nbcode") else other).append(node.module)
        elif isinstance(node, ast.Import):
            other += [alias.name for alias in node.names]
    return [name.removeprefix("nbcode.") for name in own], [name.split(".")[0] for name in other]


def files_to_copy(module: str) -> list[str]:
    """`module` and the paper modules it needs, dependencies first."""
    order: list[str] = []

    def visit(name: str) -> None:
        for dependency in paper_imports(name)[0]:
            visit(dependency)
        if name not in order:
            order.append(name)

    visit(module)
    return order


def pasted_source(modules: tuple[str, ...]) -> str:
    """The files a reader copies for `modules`, pasted into one, nbcode's own imports removed."""
    parts = []
    for name in dict.fromkeys(name for module in modules for name in files_to_copy(module)):
        lines = (NBCODE / f"{name}.py").read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        drop = {line for node in tree.body if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith(("nbcode", "__future__"))
                for line in range(node.lineno - 1, node.end_lineno)}
        parts.append("\n".join(line for i, line in enumerate(lines) if i not in drop))
    return "from __future__ import annotations\n" + "\n\n".join(parts)


@pytest.mark.parametrize("module", PAPER)
def test_the_paper_modules_import_torch_and_the_standard_library_only(module):
    own, other = paper_imports(module)
    assert set(own) <= set(PAPER), f"{module} imports machinery: {set(own) - set(PAPER)}"
    assert set(other) <= ALLOWED, f"{module} imports {set(other) - ALLOWED}"


def test_every_paper_module_has_a_copy_check():
    assert {name for modules, _ in USES.values() for module in modules for name in files_to_copy(module)} == set(PAPER)


def test_each_block_runs_pasted_into_a_fresh_interpreter_without_nbcode():
    script = textwrap.dedent("""
        import json, sys, types
        sys.modules["nbcode"] = None  # any import of nbcode fails
        import torch
        torch.manual_seed(0)
        cases = json.loads(sys.stdin.read())
        for module, (source, use) in cases.items():
            pasted = sys.modules[f"pasted_{module}"] = types.ModuleType(f"pasted_{module}")  # the reader's file
            namespace = pasted.__dict__
            exec(compile(source, f"<pasted {module}>", "exec"), namespace)
            exec(compile(use, f"<use of {module}>", "exec"), namespace)
            print("ran", module)
    """)
    cases = {name: (pasted_source(modules), textwrap.dedent(use)) for name, (modules, use) in USES.items()}
    result = subprocess.run([sys.executable, "-c", script], input=json.dumps(cases), capture_output=True,
                            text=True, timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [word for module in USES for word in ("ran", module)]
