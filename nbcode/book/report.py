"""The book's landing page and results page, written from run records: the paper's report card
(one row per claim of the paper), short tables with units and budgets, and the plots.

    sources = [("this build", records), ("results/paper-cifar10-cpu, cpu (2 threads)", committed)]
    report_card(sources)                      # markdown: claim | paper | ours | measured at | status
    classifier_table(records), gan_table(records)
    accuracy_figure(records, title).savefig(path)    # test accuracy against steps, one line per run
    gan_loss_figure(records, title).savefig(path)    # D and G loss against iterations, one per GAN run
    fid_figure(records, title).savefig(path)         # FID and KID bars beside their real-vs-real floors

Our figure for a claim comes from the record of the largest budget on record (the paper profile
on CIFAR-100 first), and is compared with the paper's only when dataset and budget match it:
otherwise the status says "not comparable yet" and the row says what it was measured at.
"""
from __future__ import annotations

import textwrap
from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

from nbcode.book.plots import moving_average, smoothing_window
from nbcode.book.verdicts import gan_verdict, outcome, recipe_verdict
from nbcode.cost import count_parameters
from nbcode.gan import Discriminator, Generator
from nbcode.resnet import DSResNet

PAPER_DATASET, PAPER_STEPS, PAPER_ITERATIONS, PAPER_SAMPLES = "cifar100", 10_000, 50_000, 10_000
CHAPTERS = {"classifier": "_generated/02_resnet_training.ipynb", "gan": "_generated/07_gan_evaluation.ipynb",
            "future work": "_generated/08_future_work.ipynb"}


def budget_rank(record: dict) -> tuple:
    """Orders records by how close their budget is to the paper's: the paper profile on CIFAR-100
    first, then the most steps (or iterations and samples)."""
    size = record.get("steps") or (record.get("iterations", 0), record.get("n_generated", 0))
    return record.get("profile") == "paper", record.get("dataset") == PAPER_DATASET, size


def with_training_precision(records: list[dict]) -> list[dict]:
    """`records`, each evaluation and GAN-test record given the `precision` ("fp32", "bf16") its GAN
    was trained at, copied from that GAN's run record among `records` (they are written without
    it); one whose GAN is not among them is left as it is, and shown as "precision not on record"."""
    trained = {r["run"]: r["precision"] for r in records if r["kind"] == "gan" and "precision" in r}
    return [r | {"precision": trained[r["run"]]} if r["kind"] in ("evaluation", "gan-test") and r["run"] in trained
            else r for r in records]


def precision_of(record: dict) -> str:
    """The precision a record's network was trained at, as `with_training_precision` left it."""
    return record.get("precision", "precision not on record")


def measured_at(record: dict, source: str) -> str:
    """Where a record's number comes from: dataset, profile, budget and sample counts, the training
    precision, and source."""
    if record["kind"] == "classifier":
        budget = f"{record['steps']:,} × {record['batch']} steps, {record['recipe']['name']} recipe"
    elif record["kind"] == "gan-test":
        budget = f"{record['iterations']:,} iterations, {record['n_generated']:,} generated images"
    else:
        budget = f"{record['iterations']:,} iterations, {record['n_generated']:,} vs {record['n_reference']:,} images"
    return f"{record['dataset']}, {record['profile']} profile, {budget}, {precision_of(record)} ({source})"


def comparable(record: dict) -> bool:
    """Whether a record was measured where the paper measured: CIFAR-100 at the paper's budget."""
    if record["dataset"] != PAPER_DATASET:
        return False
    if record["kind"] == "classifier":
        return record["steps"] == PAPER_STEPS
    return record["iterations"] == PAPER_ITERATIONS and record["n_generated"] == PAPER_SAMPLES


def compare(ours: float, paper: float, tolerance: float, higher_is_better: bool | None) -> str:
    """One word: reproduced (within `tolerance` of the paper), better or worse (or differs,
    where neither direction is better)."""
    if abs(ours - paper) <= tolerance:
        return "reproduced"
    if higher_is_better is None:
        return "differs"
    return "better" if (ours > paper) == higher_is_better else "worse"


def best(sources: list[tuple[str, list[dict]]], wanted) -> tuple[dict, str] | None:
    """The (record, source) of the largest budget among the records for which `wanted(record)`."""
    found = [(record, source) for source, records in sources for record in records if wanted(record)]
    return max(found, key=lambda pair: budget_rank(pair[0]), default=None)


def best_per_recipe(sources: list[tuple[str, list[dict]]], wanted) -> list[tuple[dict, str]]:
    """`best` for the paper's recipe, then for our improved one, leaving out a recipe with no record;
    `wanted(record, recipe)` says whether a record counts for that recipe."""
    found = [best(sources, lambda record: wanted(record, recipe)) for recipe in ("paper", "improved")]
    return [pair for pair in found if pair is not None]


def recipe_cells(found: list[tuple[dict, str]], value: Callable[[dict], str],
                 context: Callable[[dict], str] = lambda record: "") -> tuple[str, str]:
    """The "ours" and "measured at" cells of a row holding one record per recipe (`best_per_recipe`).

    `value(record)` is the number; `context(record)` what it stands beside (a floor, chance). Both
    the context and `measured_at` are said once when every record shares them, else after each
    recipe: records from different budgets or sources never share a floor or a label."""
    places = [measured_at(record, source) for record, source in found]
    contexts = [context(record) for record, _ in found]
    names = [recipe_name(record) for record, _ in found]
    if len(set(places)) == 1 and len(set(contexts)) == 1:
        ours = "; ".join(f"{name} recipe {value(record)}" for name, (record, _) in zip(names, found))
        return ours + (f" ({contexts[0]})" if contexts[0] else ""), places[0]
    ours = "; ".join(f"{name} recipe {value(record)}" + (f" ({text})" if text else "")
                     for name, (record, _), text in zip(names, found, contexts))
    return ours, "; ".join(f"{name} recipe: {place}" for name, place in zip(names, places))


def recipe_name(record: dict) -> str:
    """The recipe of a classifier record (a dict with its name) or of a GAN record (its name)."""
    return record["recipe"]["name"] if isinstance(record["recipe"], dict) else record["recipe"]


def parameter_rows() -> list[list[str]]:
    """The parameter counts of the paper's networks (at 100 classes), counted from the code."""
    rows = []
    for claim, paper, model in (("DS-ResNet, 1× width: parameters", 94_372, DSResNet(width_factor=1)),
                                ("DS-ResNet, 2× width: parameters", 334_052, DSResNet(width_factor=2))):
        ours = count_parameters(model)
        rows.append([claim, f"{paper:,}", f"{ours:,}", "counted from nbcode.resnet",
                     "exact" if ours == paper else "differs"])
    gan = count_parameters(Generator(100)) + count_parameters(Discriminator(100))
    rows.append(["Conditional SN-GAN, G + D: parameters", "942,812", f"{gan:,} ({942_812 - gan:,} fewer)"
                 if gan != 942_812 else f"{gan:,}", "counted from nbcode.gan (100 classes)",
                 "exact" if gan == 942_812 else "differs"])
    return rows


def accuracy_rows(sources: list[tuple[str, list[dict]]]) -> list[list[str]]:
    """The paper's test accuracies (Results: 57.7% ± 2.3% at 1× width, 65% at 2×) beside ours, the
    mean ± std over the last evaluations as the paper reports them: the paper's recipe, and our
    improved one. The status compares the paper's recipe (the improved one where it alone ran)."""
    rows = []
    for width, paper, spread in ((1, 57.7, 2.3), (2, 65.0, 2.3)):
        claim = f"DS-ResNet, {width}× width: test accuracy, {PAPER_STEPS:,} × 512 steps"
        paper_text = f"{paper:.1f}% ± {spread}%" if width == 1 else f"{paper:.0f}%"
        found = best_per_recipe(sources, lambda r, recipe: r["kind"] == "classifier" and "final" in r
                                and r["network"] == "dsresnet" and r["width_factor"] == width
                                and r["recipe"]["name"] == recipe)
        if not found:
            rows.append([claim, paper_text, "no run yet", "—", "not comparable yet"])
            continue
        ours, where = recipe_cells(found, lambda r: f"{100 * r['final']['test']['mean']:.1f}% ± "
                                                    f"{100 * r['final']['test']['std']:.1f}% ({r['steps']:,} steps)")
        record = found[0][0]
        status = (compare(100 * record["final"]["test"]["mean"], paper, spread, True) if comparable(record)
                  else "not comparable yet")
        rows.append([claim, paper_text, ours, where, status])
    return rows


def gan_rows(sources: list[tuple[str, list[dict]]]) -> list[list[str]]:
    """The paper's FID (38.27 conditional, 32.00 unconditional) and LPIPS (0.23) beside ours, each
    with our real-vs-real floor at the same sample count: the paper's recipe, and our improved one
    where it ran. The status compares the paper's recipe (the improved one where it alone ran)."""
    rows = []
    for conditional, paper in ((True, 38.27), (False, 32.00)):
        claim = f"{'Conditional' if conditional else 'Unconditional'} aw-GAN: FID against the test split"
        found = best_per_recipe(sources, lambda r, recipe: r["kind"] == "evaluation" and r["loss"] == "aw"
                                and r["generator"] == "table1" and r["conditional"] == conditional
                                and r["recipe"] == recipe)
        lpips_claim = ["Conditional aw-GAN: LPIPS to the nearest training image", "0.23 (settings not stated)"]
        if not found:
            rows.append([claim, f"{paper:.2f}", "no evaluation yet", "—", "not comparable yet"])
            rows += [[*lpips_claim, "no evaluation yet", "—", "not comparable yet"]] if conditional else []
            continue
        record = found[0][0]
        status = compare(record["fid"], paper, 0.05 * paper, False) if comparable(record) else "not comparable yet"
        ours, where = recipe_cells(found, lambda r: f"{r['fid']:.2f}", lambda r: f"real vs real: {r['fid_floor']:.2f}")
        rows.append([claim, f"{paper:.2f}", ours, where, status])
        if conditional:
            lpips = compare(record["lpips_mean"], 0.23, 0.02, None) if comparable(record) else "not comparable yet"
            ours, where = recipe_cells(found, lambda r: f"{r['lpips_mean']:.3f}",
                                       lambda r: f"real test images: {r['lpips_real_mean']:.3f}")
            rows.append([*lpips_claim, ours, where, lpips])
    return rows


def qualitative_rows(sources: list[tuple[str, list[dict]]]) -> list[list[str]]:
    """The paper's qualitative claims: class-specific samples (measured by GAN-test accuracy in
    chapter 7: generated images classified by chapter 2's ResNet) and recognisable interpolations
    (Figure 3, judged by eye)."""
    claim = "The conditional model is preferred: its samples are class-specific"
    found = best_per_recipe(sources, lambda r, recipe: r["kind"] == "gan-test" and r["generator"] == "table1"
                            and r["recipe"] == recipe)
    if not found:
        row = [claim, "(qualitative)", "not measured yet", "—", "not comparable yet"]
    else:
        r = found[0][0]
        carries = r["accuracy"] - r["chance"] > 2 * r["spread"]
        status = ("reproduced" if carries else "worse") if comparable(r) else "not comparable yet"
        ours, where = recipe_cells(found, lambda other: f"{100 * other['accuracy']:.1f}%",
                                   lambda other: f"chance {100 * other['chance']:.1f}%, "
                                                 f"real test images {100 * other['real_accuracy']:.1f}%")
        row = [claim, "(qualitative)", f"GAN-test {ours}", where, status]
    figure = f"[Figure 3 of chapter 7]({CHAPTERS['gan']})"
    return [row, ["Interpolations stay recognisable at their midpoints", "(qualitative, Figure 3)",
                  f"drawn in {figure}", "—", "by eye"]]


def matched_pair(sources: list[tuple[str, list[dict]]], wanted, baseline_of) -> tuple[dict, dict, str] | None:
    """(record, baseline record, source) of the largest budget on record among the records for
    which `wanted(record)` and whose source also holds a record b with `baseline_of(record, b)`;
    an evaluation of the test split ranks before one of training images at the same budget."""
    pairs = [(record, baseline, source) for source, records in sources for record in records if wanted(record)
             for baseline in records if baseline_of(record, baseline)]
    return max(pairs, key=lambda p: (budget_rank(p[0]), p[0]["kind"] == "evaluation"), default=None)


def same_budget(a: dict, b: dict, keys: tuple[str, ...]) -> bool:
    """Whether two records agree on every one of `keys` (kind first, then dataset, profile, budget,
    seed...), compared in order; a KeyError if two records of one kind lack a key (check_record
    guarantees them for every kind matched here), so that a missing field never reads as a match."""
    return all(a[key] == b[key] for key in keys)


def future_work_rows(sources: list[tuple[str, list[dict]]]) -> list[list[str]]:
    """The paper's two suggestions for future work, tried in chapter 8 at the paper's parameter
    budgets: the new model beside the paper's at the same recipe, budget and seed (the largest
    budget on record), with the status of that one pair (chapter 8 pools its seeds)."""
    rows = []
    classifier = ("kind", "dataset", "profile", "steps", "batch", "seed", "width_factor")
    pair = matched_pair(sources, lambda r: r["kind"] == "classifier" and "final" in r and r["network"] == "mobilenetv2",
                        lambda r, b: same_budget(r, b, classifier) and "final" in b and b["network"] == "dsresnet"
                        and b["recipe"] == r["recipe"])
    claim = "Future work (Part 1): inverted residuals and linear bottlenecks (MobileNetV2) help at ≤ 94,372 parameters"
    if pair is None:
        rows.append([claim, "suggested, untested", "no run yet", "—", "not comparable yet"])
    else:
        new, old, source = pair
        ours = (f"MobileNetV2 ({new['parameters']:,} parameters) {100 * new['final']['validation']['mean']:.1f}% "
                f"vs DS-ResNet {100 * old['final']['validation']['mean']:.1f}% validation (the status's split; "
                f"test {100 * new['final']['test']['mean']:.1f}% vs {100 * old['final']['test']['mean']:.1f}%), "
                f"{new['recipe']['name']} recipe, seed {new['seed']}")
        rows.append([claim, "suggested, untested", ours, measured_at(new, source),
                     outcome(recipe_verdict(old, new), lower_is_better=False)])
    gan = ("kind", "dataset", "profile", "iterations", "seed", "recipe", "n_generated", "conditional", "loss")
    pair = matched_pair(sources, lambda r: r["kind"] in ("evaluation", "training-fid") and r["generator"] == "sle",
                        lambda r, b: same_budget(r, b, gan) and b["generator"] == "table1")
    claim = "Future work (Part 2): skip-layer excitation and depthwise convs improve FID at ≤ 942,812 parameters"
    if pair is None:
        return rows + [[claim, "suggested, untested", "no run yet", "—", "not comparable yet"]]
    new, old, source = pair
    against = "test images" if new["kind"] == "evaluation" else "training images"
    ours = (f"SLE generator FID {new['fid']:.2f}, KID × 1000 {1000 * new['kid_mean']:.2f} vs Table 1's "
            f"{old['fid']:.2f}, {1000 * old['kid_mean']:.2f} against {against} (real vs real: {new['fid_floor']:.2f}, "
            f"{1000 * new['kid_floor']:.2f}), {new['recipe']} recipe, seed {new['seed']}")
    return rows + [[claim, "suggested, untested", ours, measured_at(new, source),
                    outcome(gan_verdict(new, old), lower_is_better=True)]]


def report_card(sources: list[tuple[str, list[dict]]]) -> str:
    """Markdown: one row per claim of the paper, with the paper's figure, ours at the largest budget
    on record, what ours was measured at, and a one-word status; the details one click away."""
    rows = (parameter_rows() + accuracy_rows(sources) + gan_rows(sources) + qualitative_rows(sources)
            + future_work_rows(sources))
    lines = ["| the paper's claim | paper | ours | measured at | status |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return ("\n".join(lines) + f"\n\nDetails: every run's table and plots on the [results page](results.md); "
            f"the training runs in [chapter 2]({CHAPTERS['classifier']}) and the GAN's evaluation in "
            f"[chapter 7]({CHAPTERS['gan']}); the paper's future work in [chapter 8]({CHAPTERS['future work']}).\n")


def classifier_table(records: list[dict]) -> str:
    """Markdown: one row per finished classifier run, accuracies in per cent."""
    lines = ["| run | parameters | test, last evaluations | test, final weights | validation | budget |",
             "|---|---|---|---|---|---|"]
    for r in sorted((r for r in records if r["kind"] == "classifier" and "final" in r), key=budget_rank):
        test, full = r["final"]["test"], r["full_splits"]
        lines.append(f"| {r['network']}, {r['recipe']['name']} recipe, {r['width_factor']}× width, seed {r['seed']} | "
                     f"{r['parameters']:,} | {100 * test['mean']:.1f} ± {100 * test['std']:.1f}% "
                     f"({test['evals']}) | {100 * full['test']:.1f}% of {full['images']['test']:,} | "
                     f"{100 * full['validation']:.1f}% of {full['images']['validation']:,} | "
                     f"{r['dataset']}, {r['profile']}, {r['steps']:,} × {r['batch']}, {r['precision']} |")
    return "\n".join(lines)


def gan_table(records: list[dict]) -> str:
    """Markdown: one row per GAN evaluation, each metric beside its real-vs-real floor."""
    lines = ["| GAN | FID (real vs real) | KID × 1000 (real vs real) | LPIPS to nearest (real) | budget |",
             "|---|---|---|---|---|"]
    for r in sorted((r for r in records if r["kind"] == "evaluation"), key=budget_rank):
        kind = "conditional" if r["conditional"] else "unconditional"
        lines.append(f"| {kind}, {r['loss']} loss, {r['recipe']} recipe, {r['generator']} generator | "
                     f"{r['fid']:.2f} ({r['fid_floor']:.2f}) | "
                     f"{1000 * r['kid_mean']:.2f} ± {1000 * r['kid_std']:.2f} ({1000 * r['kid_floor']:.2f}) | "
                     f"{r['lpips_mean']:.3f} ({r['lpips_real_mean']:.3f}) | {r['dataset']}, {r['profile']}, "
                     f"{r['iterations']:,} iterations, {r['n_generated']:,} vs {r['n_reference']:,} images, "
                     f"{precision_of(r)} |")
    return "\n".join(lines)


def wrapped(title: str) -> str:
    """A figure title broken into lines that fit a 7.5-inch figure at 9 pt (a source label names
    its profile, dataset, device, commits and dates, so it can run past one line)."""
    return textwrap.fill(title, width=100)


def accuracy_figure(records: list[dict], title: str) -> Figure:
    """Test accuracy (per cent) against training steps, one line per finished classifier run."""
    figure = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = figure.add_subplot()
    for r in sorted((r for r in records if r["kind"] == "classifier" and "final" in r), key=budget_rank):
        steps = [h["step"] for h in r["history"]]
        ax.plot(steps, [100 * h["test"] for h in r["history"]], marker=".",
                label=f"{r['network']} {r['recipe']['name']}, {r['width_factor']}×, seed {r['seed']}, "
                      f"{r['steps']:,} steps")
    ax.set(xlabel="training step", ylabel="test accuracy (%)")
    ax.legend(fontsize=7)
    figure.suptitle(wrapped(title), fontsize=9)
    return figure


def gan_loss_figure(records: list[dict], title: str) -> Figure:
    """Discriminator and generator loss against training iterations, one smoothed line per GAN run
    record with a log (a committed record's log is binned: `log_bin` iterations per value)."""
    figure = Figure(figsize=(7.5, 3.2), layout="constrained")
    runs = sorted((r for r in records if r["kind"] == "gan" and "log" in r), key=budget_rank)
    for i, (key, label) in enumerate((("d_loss", "D loss: L_r + L_f"), ("g_loss", "G loss: -E[D(G(z))]"))):
        ax = figure.add_subplot(1, 2, i + 1)
        for r in runs:
            values, per_value = r["log"][key], r.get("log_bin", 1)
            smoothed = moving_average(values)
            iterations = (np.arange(len(smoothed)) + smoothing_window(len(values))) * per_value
            settings = r["settings"]
            ax.plot(iterations, smoothed, label=f"{'cond.' if settings['conditional'] else 'uncond.'} "
                                                f"{settings['loss']}, {settings['name']}, {settings['generator']}")
        ax.set(xlabel="iteration", title=label)
        ax.legend(fontsize=6)
    figure.suptitle(wrapped(title), fontsize=9)
    return figure


def fid_figure(records: list[dict], title: str) -> Figure:
    """FID and KID of each GAN evaluation (bars) beside the real-vs-real floor at the same n (grey)."""
    evaluations = sorted((r for r in records if r["kind"] == "evaluation"), key=budget_rank)
    figure = Figure(figsize=(7.5, 3.2), layout="constrained")
    names = [f"{'cond.' if r['conditional'] else 'uncond.'} {r['loss']}\n{r['recipe']}, {r['generator']}, "
             f"{r['iterations']:,} it." for r in evaluations]
    for i, (key, label) in enumerate((("fid", "FID"), ("kid_mean", "KID × 1000"))):
        ax = figure.add_subplot(1, 2, i + 1)
        scale = 1000 if key == "kid_mean" else 1
        positions = range(len(evaluations))
        ax.bar([p - 0.2 for p in positions], [scale * r[key] for r in evaluations], width=0.4, label="generated")
        ax.bar([p + 0.2 for p in positions], [scale * r[key.replace("_mean", "") + "_floor"] for r in evaluations],
               width=0.4, color="grey", label="real vs real")
        ax.set_xticks(list(positions), names, fontsize=7)
        ax.set(ylabel=label, title=f"{label} (lower is better)")
        ax.legend(fontsize=7)
    figure.suptitle(wrapped(title), fontsize=9)
    return figure
