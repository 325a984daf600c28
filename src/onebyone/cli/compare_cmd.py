"""``onebyone compare``: naive networks vs their 1x1-reduced twins, trained on the same budget."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import (
    check_device,
    check_subset,
    set_threads,
    threads_option,
    user_errors,
)
from onebyone.cli._paths import check_out_dir


def compare_table(report):
    """The comparison as a rich Table with plain headers that fits 80 columns (each reduced
    variant's twin is named in the summary lines below it).

    Example:
        >>> from onebyone.experiments.comparison import CompareReport, VariantResult
        >>> t = compare_table(CompareReport([VariantResult("a", None, 10, 400, 1.0, 9.0, 0.95, 3.0)]))
        >>> [c.header.replace("\\n", " ") for c in t.columns][3:]
        ['latency b1 (ms)', 'latency b64 (ms)', 'test accuracy', 'train time (s)']
    """
    return report.table()


@user_errors
def compare(
    variants: list[str] = typer.Argument(
        None, metavar="VARIANT", help="Variant names (default: all; see --list)."
    ),
    data: str = typer.Option("mnist5k", "--data", help="'mnist5k' (bundled) or a dataset path."),
    epochs: int = typer.Option(3, "--epochs", help="Training epochs per variant."),
    batch_size: int = typer.Option(32, "--batch-size", help="Samples per step."),
    lr: float = typer.Option(0.05, "--lr", help="Peak learning rate."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd, adamw or adam."),
    seed: int = typer.Option(
        0, "--seed", help="Seeds every variant's initialisation and the data order."
    ),
    subset: int = typer.Option(
        0, "--subset", help="Train on a class-balanced subset of this many samples."
    ),
    test_subset: int = typer.Option(
        0, "--test-subset", help="Evaluate on a subset of this many samples."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="A smoke run: 1 epoch on 500 samples (or --subset), 200 test samples."
    ),
    out: Path = typer.Option(
        Path("runs/compare"), "--out", help="Where report.json and the plot go."
    ),
    plot: bool = typer.Option(
        True, "--plot/--no-plot", help="Write accuracy_vs_macs.png (matplotlib)."
    ),
    latency: bool = typer.Option(
        True, "--latency/--no-latency", help="Measure CPU latency (batch 1, 64)."
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto (CUDA if available), cpu, cuda, cuda:N (latency: CPU)."
    ),
    html: Path | None = typer.Option(None, "--html", help="Also write an HTML page of the results."),
    list_: bool = typer.Option(False, "--list", help="List the variants and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    threads: int | None = threads_option(),
) -> None:
    """Train each variant, then print params, MACs, CPU latency, test accuracy and training time.

    Example: onebyone compare --out runs/compare
    """
    from rich.console import Console

    from onebyone._checks import check_choice, check_int, check_number
    from onebyone.data import load
    from onebyone.experiments import VARIANTS
    from onebyone.experiments import compare as run_compare
    from onebyone.train.fit import OPTIMIZERS

    if list_:
        for v in VARIANTS.values():
            twin = f" (twin: {v.twin})" if v.twin else ""
            typer.echo(f"{v.name:20s} {v.description}{twin}")
        return
    check_int("--epochs", epochs)
    check_int("--batch-size", batch_size)
    check_int("--subset", subset, minimum=0)
    check_int("--test-subset", test_subset, minimum=0)
    check_number("--lr", lr)
    check_int("--seed", seed, minimum=0)
    check_choice("--optimizer", optimizer, OPTIMIZERS)
    check_device(device)
    set_threads(threads)
    check_out_dir(out, "--out", ("report.json", "accuracy_vs_macs.png"))
    if html is not None:  # html: check the page's path before any training
        from onebyone.html import check_page_path

        check_page_path(html, "--html")
    if plot:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            plot = False
            typer.echo("note: no plot, matplotlib is not installed (pip install 'onebyone[plot]')", err=True)
    train_set, test_set = load(data, "train"), load(data, "test")  # a bad --data fails here
    if quick:
        epochs = 1
        subset = subset or min(500, len(train_set))
        test_subset = test_subset or min(200, len(test_set))
    check_subset("--subset", subset, train_set)
    check_subset("--test-subset", test_subset, test_set)
    result = run_compare(
        variants or None, data=data, epochs=epochs, batch_size=batch_size, lr=lr,
        optimizer=optimizer, seed=seed, train_subset=subset or None,
        test_subset=test_subset or None, latency=latency, device=device, out_dir=out,
        plot=plot, quiet=quiet,
    )  # fmt: skip
    console = Console()  # the terminal's width; 80 columns in a pipe
    console.print(compare_table(result))
    # markup=False: "[ok: ...]" is text, not a rich style tag.
    for line in result.summary_lines(verdict=not quick):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if quick:
        console.print(
            f"(--quick is a smoke run: 1 epoch on {subset} samples; its accuracies say little)",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
    written = "report.json" + (", accuracy_vs_macs.png" if plot else "")
    console.print(f"wrote {written} in {out}", highlight=False, soft_wrap=True)
    if html is not None:  # html: the page from the same results
        from onebyone.html import compare_html

        console.print(f"wrote {compare_html(result, html)}", highlight=False, soft_wrap=True)
