"""``compare``: train naive networks and their 1x1-reduced twins on the same data and budget.

Parameters and MACs come from :func:`onebyone.analysis.analyze`; latency from
:func:`onebyone._timing.latency_ms` (eval mode, median of repeats); accuracy from
:func:`onebyone.train.evaluate` on the test split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from onebyone._checks import check_choice, check_int, check_number
from onebyone.experiments.variants import VARIANTS, build_variant

__all__ = ["CompareReport", "VariantResult", "compare"]

REPORT_KEYS = (
    "name", "twin", "params", "macs", "latency_ms_b1", "latency_ms_b64", "accuracy", "train_seconds",
    "history",
)  # fmt: skip


@dataclass
class VariantResult:
    """One row of the comparison: the keys of ``report.json``.

    ``latency_ms_*`` are ``None`` when latency was not measured; ``accuracy`` is in [0, 1];
    ``history`` holds ``fit``'s per-epoch records (``epoch``, ``train_loss``,
    ``train_accuracy``, ...), the learning curve of the HTML page.

    Example:
        >>> row = VariantResult("nin_mlpconv", twin="plain_5x5", params=30_000, macs=5_000_000,
        ...                     latency_ms_b1=0.5, latency_ms_b64=9.0, accuracy=0.98, train_seconds=40.0)
        >>> row.twin, f"{row.macs / row.params:.0f} MACs per parameter"
        ('plain_5x5', '167 MACs per parameter')
    """

    name: str
    twin: str | None
    params: int
    macs: int
    latency_ms_b1: float | None
    latency_ms_b64: float | None
    accuracy: float
    train_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CompareReport:
    """The rows of a comparison, with the settings that produced them.

    Example:
        >>> r = CompareReport([VariantResult("a", None, 10, 400, 1.0, 9.0, 0.95, 3.0),
        ...                    VariantResult("b", "a", 5, 100, 0.5, 4.0, 0.97, 2.0)])
        >>> [(p["reduced"], p["macs_ratio"]) for p in r.pairs()]
        [('b', 4.0)]
    """

    variants: list[VariantResult]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``report.json`` content: ``{"variants": [{name, twin, params, macs, ...}]}``.

        Example:
            >>> r = CompareReport([VariantResult("a", None, 10, 400, None, None, 0.95, 3.0)])
            >>> r.to_dict()["variants"][0]["macs"]
            400
        """
        return {"variants": [{k: asdict(v)[k] for k in REPORT_KEYS} for v in self.variants]}

    def pairs(self) -> list[dict[str, Any]]:
        """Each variant that has a twin present, with its MAC ratio and both accuracies.

        Example:
            >>> r = CompareReport([VariantResult("a", None, 10, 400, None, None, 0.95, 3.0),
            ...                    VariantResult("b", "a", 5, 100, None, None, 0.97, 2.0)])
            >>> p = r.pairs()[0]
            >>> p["twin"], p["params_ratio"], p["twin_accuracy"]
            ('a', 2.0, 0.95)
        """
        by_name = {v.name: v for v in self.variants}
        out = []
        for v in self.variants:
            twin = by_name.get(v.twin) if v.twin else None
            if twin is None:
                continue
            out.append({
                "reduced": v.name, "twin": twin.name,
                "macs_ratio": twin.macs / v.macs if v.macs else float("inf"),
                "params_ratio": twin.params / v.params if v.params else float("inf"),
                "accuracy": v.accuracy, "twin_accuracy": twin.accuracy,
            })  # fmt: skip
        return out

    def table(self, *, batch64: bool = True, exact_macs: bool = False) -> Any:
        """A rich Table of the rows with plain headers that fits 80 columns (values never cut).

        Args:
            batch64: include the batch-64 latency column.
            exact_macs: MACs as exact integers (``12,943,360``) rather than ``12.94 M``.

        Example:
            >>> r = CompareReport([VariantResult("a", None, 10, 400, 1.0, 9.0, 0.95, 3.0)])
            >>> [c.header.replace("\\n", " ") for c in r.table().columns][3:]
            ['latency b1 (ms)', 'latency b64 (ms)', 'test accuracy', 'train time (s)']
            >>> r.table(batch64=False).row_count
            1
        """
        from rich import box
        from rich.table import Table

        from onebyone.analysis.render import human_count

        if batch64:  # two-line headers: 80 columns hold the longest variant name
            headers = ["model", "params", "MACs", "latency\nb1 (ms)", "latency\nb64 (ms)",
                       "test\naccuracy", "train\ntime (s)"]  # fmt: skip
        else:  # one latency column: room for one-line headers
            headers = ["model", "params", "MACs", "latency (ms)", "test accuracy", "train time (s)"]
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
        for k, col in enumerate(headers):
            t.add_column(col, justify="left" if k == 0 else "right", no_wrap=True)
        for v in self.variants:
            row = [v.name, f"{v.params:,}", f"{v.macs:,}" if exact_macs else human_count(v.macs),
                   "-" if v.latency_ms_b1 is None else f"{v.latency_ms_b1:.2f}"]  # fmt: skip
            if batch64:
                row.append("-" if v.latency_ms_b64 is None else f"{v.latency_ms_b64:.1f}")
            t.add_row(*row, f"{100 * v.accuracy:.2f}%", f"{v.train_seconds:.1f}")
        return t

    def summary_lines(
        self, *, min_accuracy: float = 0.97, min_ratio: float = 2.0, verdict: bool = True
    ) -> list[str]:
        """One line per reduced variant: MAC ratio, accuracy, and (``verdict``) whether the
        claim "at least ``min_accuracy`` with at least ``min_ratio``x fewer MACs" holds.

        Example:
            >>> r = CompareReport([VariantResult("a", None, 10, 400, None, None, 0.99, 3.0),
            ...                    VariantResult("b", "a", 5, 100, None, None, 0.96, 2.0)])
            >>> r.summary_lines()[0]
            'b vs a: 4.0x fewer MACs, 2.0x fewer params, accuracy 96.00% vs 99.00%  [NOT met: >= 97% and >= 2x]'
        """
        lines = []
        for p in self.pairs():
            ok = p["accuracy"] >= min_accuracy and p["macs_ratio"] >= min_ratio
            line = (
                f"{p['reduced']} vs {p['twin']}: {p['macs_ratio']:.1f}x fewer MACs, "
                f"{p['params_ratio']:.1f}x fewer params, accuracy {100 * p['accuracy']:.2f}% vs "
                f"{100 * p['twin_accuracy']:.2f}%"
            )
            if verdict:
                target = f">= {100 * min_accuracy:g}% and >= {min_ratio:g}x"
                line += f"  [{'ok' if ok else 'NOT met'}: {target}]"
            lines.append(line)
        return lines


def compare(
    variants: Sequence[str] | None = None,
    *,
    data: str | os.PathLike = "mnist5k",
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 0.05,
    optimizer: str = "sgd",
    seed: int = 0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    latency: bool = True,
    device: str = "auto",
    out_dir: str | os.PathLike | None = None,
    plot: bool = True,
    quiet: bool = False,
) -> CompareReport:
    """Train each variant with the same data, budget and seed; measure size, cost, speed, accuracy.

    Args:
        variants: names from :data:`~onebyone.experiments.variants.VARIANTS` (default: all).
        data: ``"mnist5k"`` or a dataset path (see :func:`onebyone.data.load`).
        epochs: training epochs per variant.
        batch_size: training batch size.
        lr: peak learning rate.
        optimizer: ``"sgd"``, ``"adamw"`` or ``"adam"``.
        seed: seeds every variant's initialisation and data order.
        train_subset: train on a class-balanced subset of this many samples.
        test_subset: evaluate on a class-balanced subset of this many samples.
        latency: measure CPU latency at batch 1 and 64 (else those fields are None).
        device: where to train (latency is always measured on CPU).
        out_dir: if given, write ``report.json`` and ``accuracy_vs_macs.png`` there.
        plot: write the plot (needs matplotlib) when ``out_dir`` is given.
        quiet: no progress bars or printing.

    Returns:
        A :class:`CompareReport`.

    Raises:
        ValueError: an unknown variant or dataset, ``epochs``/``batch_size`` < 1, ``lr`` <= 0
            or an unknown optimizer (checked before any training).

    Example:
        >>> r = compare(["nin_mlpconv"], epochs=1, train_subset=100, test_subset=50,
        ...             latency=False, quiet=True, device="cpu")
        >>> r.variants[0].name, r.variants[0].macs > 0
        ('nin_mlpconv', True)
    """
    from onebyone.analysis import analyze
    from onebyone.data import load
    from onebyone.train import evaluate, fit
    from onebyone.train.fit import OPTIMIZERS

    names = list(variants) if variants else list(VARIANTS)
    for n in names:
        if n not in VARIANTS:
            raise ValueError(f"unknown variant {n!r}; expected one of {', '.join(VARIANTS)}")
    epochs = check_int("epochs", epochs)
    batch_size = check_int("batch_size", batch_size)
    lr = check_number("lr", lr)
    optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
    train_set, test_set = load(data, "train"), load(data, "test")
    if train_subset:
        train_set = train_set.subset(
            min(check_int("train_subset", train_subset), len(train_set)), seed=seed
        )
    if test_subset:
        test_set = test_set.subset(
            min(check_int("test_subset", test_subset), len(test_set)), seed=seed
        )
    c, h, w = train_set.input_size
    console = None
    if not quiet:
        from rich.console import Console

        console = Console()
    rows: list[VariantResult] = []
    for i, name in enumerate(names):
        torch.manual_seed(seed)
        model = build_variant(
            name, in_channels=c, num_classes=train_set.num_classes, input_size=(h, w)
        )
        report = analyze(model, (1, c, h, w))
        if console is not None:
            console.print(
                f"[{i + 1}/{len(names)}] {name}: {report.total_params:,} params, "
                f"{report.total_macs:,} MACs",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
        history = fit(
            model, train_set, None, epochs=epochs, batch_size=batch_size, lr=lr,
            optimizer=optimizer, seed=seed, device=device, quiet=quiet,
        )  # fmt: skip
        acc = evaluate(model, test_set, device=device)["accuracy"]
        lat1 = lat64 = None
        if latency:
            from onebyone._timing import latency_ms

            model = model.to("cpu")
            lat1 = latency_ms(model, (1, c, h, w), warmup=2, repeats=7, channels_last=True)
            lat64 = latency_ms(model, (64, c, h, w), warmup=1, repeats=3, channels_last=True)
        rows.append(VariantResult(
            name, VARIANTS[name].twin if VARIANTS[name].twin in names else None,
            int(report.total_params), int(report.total_macs), lat1, lat64, float(acc),
            float(history.train_seconds), [dict(r) for r in history],
        ))  # fmt: skip
    result = CompareReport(rows, {
        "data": str(data), "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "optimizer": optimizer, "seed": seed, "train_size": len(train_set), "test_size": len(test_set),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    })  # fmt: skip
    if out_dir is not None:
        write_outputs(result, out_dir, plot=plot)
    return result


def write_outputs(
    result: CompareReport, out_dir: str | os.PathLike, *, plot: bool = True
) -> list[Path]:
    """Write ``report.json`` (and ``accuracy_vs_macs.png`` if ``plot``) into ``out_dir``.

    Example:
        >>> import tempfile
        >>> r = CompareReport([VariantResult("a", None, 10, 400, None, None, 0.95, 3.0)])
        >>> [p.name for p in write_outputs(r, tempfile.mkdtemp(), plot=False)]
        ['report.json']
    """
    from onebyone._io import write_json_atomic

    out = Path(out_dir)
    written = [write_json_atomic(out / "report.json", result.to_dict())]
    if plot:
        written.append(plot_accuracy_vs_macs(result, out / "accuracy_vs_macs.png"))
    return written


_KINDS = {  # legend label and colour of each kind of point
    "naive": ("naive", "tab:red"),
    "reduced": ("1x1-reduced", "tab:green"),
    "alone": ("no twin", "tab:purple"),
}


def _kind(v: VariantResult, variants: list[VariantResult]) -> str:
    if v.twin:
        return "reduced"
    return "naive" if any(u.twin == v.name for u in variants) else "alone"


def _figure(result: CompareReport, plt: Any) -> Any:
    """The accuracy-vs-MACs figure: every point labelled and in the legend by its kind
    (variants without a twin, such as ``maxout``, are named in their legend entry)."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    by_name = {v.name: v for v in result.variants}
    for v in result.variants:
        twin = by_name.get(v.twin) if v.twin else None
        if twin is not None:
            ax.annotate(
                "", xy=(v.macs, 100 * v.accuracy), xytext=(twin.macs, 100 * twin.accuracy),
                arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 1},
            )  # fmt: skip
    for kind, (label, color) in _KINDS.items():
        points = [v for v in result.variants if _kind(v, result.variants) == kind]
        if not points:
            continue
        if kind == "alone":
            label += ": " + ", ".join(v.name for v in points)
        ax.scatter([v.macs for v in points], [100 * v.accuracy for v in points], color=color,
                   zorder=3, label=label)  # fmt: skip
        for v in points:
            ax.annotate(v.name, (v.macs, 100 * v.accuracy), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("MACs per image (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs MACs: naive -> 1x1-reduced (arrows)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_macs(result: CompareReport, path: str | os.PathLike) -> Path:
    """Plot test accuracy against MACs (log x), one labelled point per variant, arrows to twins.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'onebyone[plot]'``).

    Example:
        >>> import tempfile, pathlib
        >>> r = CompareReport([VariantResult("a", None, 10, 400, None, None, 0.95, 3.0),
        ...                    VariantResult("b", "a", 5, 100, None, None, 0.97, 2.0)])
        >>> path = plot_accuracy_vs_macs(r, pathlib.Path(tempfile.mkdtemp()) / "plot.png")
        >>> path.read_bytes()[:4]
        b'\x89PNG'
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the plot needs matplotlib: pip install 'onebyone[plot]'") from e
    from onebyone._io import atomic_path

    fig = _figure(result, plt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
