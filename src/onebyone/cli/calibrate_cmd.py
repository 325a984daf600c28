"""``onebyone calibrate``: measure this machine into the device profile behind time estimates."""

from __future__ import annotations

from pathlib import Path

import typer

from onebyone.cli._common import user_errors


@user_errors
def calibrate(
    quick: bool = typer.Option(False, "--quick", help="Smaller shapes, fewer repeats (under 10 s)."),
    device: str = typer.Option("cpu", "--device", help="cpu (with the configured threads) or cuda."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Where to save the profile (default: the user's cache folder, "
        "$XDG_CACHE_HOME/onebyone/profile.json, used by every command from then on).",
    ),
) -> None:
    """Measure GEMM and convolution rates, copy bandwidth and per-op overhead on this machine.

    The profile is written atomically: an interrupted calibration keeps the previous one.
    """
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from onebyone.analysis._calibrate import calibrate as run
    from onebyone.analysis.profiles import default_profile_path
    from onebyone.analysis.render import human_time

    path = out if out is not None else default_profile_path()
    console = Console(file=sys.stderr)
    with Progress(
        TextColumn("calibrating: {task.description}"), BarColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("starting", total=1)

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total)

        profile = run(device, quick=quick, path=path, progress=progress)
    typer.echo(f"{profile.description}")
    for name, rate in profile.rates.items():
        typer.echo(f"  {name:<12} {rate / 1e9:8.1f} GFLOP/s")
    for name, rate in profile.rates_16bit.items():
        typer.echo(f"  {name + ' 16-bit':<12} {rate / 1e9:8.1f} GFLOP/s")
    typer.echo(f"  {'bandwidth':<12} {profile.bandwidth / 1e9:8.1f} GB/s")
    typer.echo(f"  {'overhead':<12} {human_time(profile.overhead_s):>8} per op")
    typer.echo(f"wrote {path}")
