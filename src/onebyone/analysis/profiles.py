"""Device profiles: the rates, bandwidth and per-op overhead behind the time estimates.

A :class:`DeviceProfile` holds a sustained FLOP rate per operator class (``conv1x1``, ``conv``
for kxk, ``depthwise``, ``gemm``, ``elementwise``), a memory bandwidth and a per-operator
overhead. It comes from one of three places:

* ``onebyone calibrate`` (:func:`onebyone.calibrate`) measures this machine and saves
  ``profile.json`` in the user's cache folder (``$XDG_CACHE_HOME/onebyone``, else
  ``~/.cache/onebyone``); once it exists it is the default for every estimate;
* built-in presets for well-known accelerators, from their published spec sheets
  (:data:`PRESETS`: ``h100-sxm``, ``h200``, ``a100-80gb``, ``l4``, ``t4``), for "what would
  this cost on a T4";
* without either, the named fallback ``cpu-fallback`` (rough figures for one modern x86 core),
  which every report names so that nobody mistakes it for a measurement.

Spec-sheet peaks are upper bounds that real kernels rarely reach: a preset's estimate is a
best case. The per-op overhead of the GPU presets (5 us) is an assumption (a typical eager
PyTorch launch), not a published figure.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._traffic import OP_CLASSES, REQUIRED_CLASSES

__all__ = [
    "FALLBACK",
    "PRESETS",
    "DeviceProfile",
    "default_profile_path",
    "load_profile",
    "resolve_profile",
    "save_profile",
]

SCHEMA = 1


@dataclass(frozen=True)
class DeviceProfile:
    """Rates of one device for the roofline estimate.

    Args:
        name: a short name (``"t4"``, ``"calibrated"``).
        description: the machine or the product, in words.
        source: where the numbers come from (a spec sheet, a calibration run, a fallback).
        rates: sustained FLOP/s per operator class in float32: one per ``REQUIRED_CLASSES``
            and optionally ``pool`` (else pooling uses the ``elementwise`` rate).
        bandwidth: memory bandwidth in bytes/s (reads plus writes).
        overhead_s: fixed cost of one operator call in seconds (dispatch, launch).
        rates_16bit: FLOP/s per class in float16/bfloat16 where the device is faster there
            (missing classes use ``rates``).
        cache_bytes: an operator moving at most this many bytes in total runs at
            ``cache_bandwidth`` (its tensors stay in the cache); 0: no cache level.
        cache_bandwidth: the bandwidth of that cache in bytes/s.

    Example:
        >>> p = PRESETS["t4"]
        >>> p.rate("conv", "float32") / 1e12, p.bandwidth / 1e9
        (8.1, 320.0)
    """

    name: str
    description: str
    source: str
    rates: dict[str, float]
    bandwidth: float
    overhead_s: float
    rates_16bit: dict[str, float] = field(default_factory=dict)
    cache_bytes: int = 0
    cache_bandwidth: float = 0.0

    def memory_time(self, nbytes: int) -> float:
        """Seconds to move ``nbytes`` (from the cache when they fit in ``cache_bytes``).

        Example:
            >>> p = DeviceProfile("x", "", "", {}, bandwidth=1e9, overhead_s=0.0,
            ...                   cache_bytes=1000, cache_bandwidth=1e10)
            >>> p.memory_time(1000), p.memory_time(2000)
            (1e-07, 2e-06)
        """
        if self.cache_bytes and nbytes <= self.cache_bytes:
            return nbytes / self.cache_bandwidth
        return nbytes / self.bandwidth

    def rate(self, op_class: str, dtype: str = "float32") -> float:
        """FLOP/s of ``op_class`` at ``dtype`` (``"float16"``/``"bfloat16"`` use ``rates_16bit``)."""
        if dtype in ("float16", "bfloat16") and op_class in self.rates_16bit:
            return self.rates_16bit[op_class]
        return self.rates.get(op_class) or self.rates["elementwise"]

    @property
    def label(self) -> str:
        """``name (source)``, as reports print it."""
        return f"{self.name} ({self.source})"

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready values (the file format, with a schema number)."""
        return {"schema": SCHEMA, **asdict(self)}


def _gpu(name: str, description: str, source: str, fp32: float, tf32: float, half: float, bw: float):
    tflops = 1e12
    return DeviceProfile(
        name=name,
        description=description,
        source=source,
        # PyTorch runs convolutions in TF32 by default on Ampere and later (cudnn.allow_tf32)
        # but float32 matrix products without it (cuda.matmul.allow_tf32 is False).
        rates={
            "conv1x1": tf32 * tflops,
            "conv": tf32 * tflops,
            "depthwise": fp32 * tflops,  # no tensor cores for depthwise
            "gemm": fp32 * tflops,
            "elementwise": fp32 * tflops,
        },
        bandwidth=bw * 1e9,
        overhead_s=5e-6,
        rates_16bit={c: half * tflops for c in ("conv1x1", "conv", "gemm")},
    )


PRESETS: dict[str, DeviceProfile] = {
    # NVIDIA H100 Tensor Core GPU datasheet (SXM5): FP32 67 TFLOPS, TF32 989 TFLOPS and BF16
    # 1,979 TFLOPS with sparsity (half that dense), HBM3 3.35 TB/s.
    "h100-sxm": _gpu("h100-sxm", "NVIDIA H100 SXM5 80GB", "NVIDIA H100 datasheet, dense peaks",
                     67, 494.5, 989.5, 3350),
    # NVIDIA H200 Tensor Core GPU datasheet (SXM): FP32 67 TFLOPS, TF32 989 / BF16 1,979 TFLOPS
    # with sparsity (half that dense), HBM3e 4.8 TB/s.
    "h200": _gpu("h200", "NVIDIA H200 SXM 141GB", "NVIDIA H200 datasheet, dense peaks",
                 67, 494.5, 989.5, 4800),
    # NVIDIA A100 Tensor Core GPU datasheet (80GB SXM): FP32 19.5 TFLOPS, TF32 156 TFLOPS,
    # BF16 312 TFLOPS (dense), HBM2e 2,039 GB/s.
    "a100-80gb": _gpu("a100-80gb", "NVIDIA A100 80GB SXM", "NVIDIA A100 datasheet, dense peaks",
                      19.5, 156, 312, 2039),
    # NVIDIA L4 Tensor Core GPU datasheet: FP32 30.3 TFLOPS, TF32 120 / BF16 242 TFLOPS with
    # sparsity (half that dense), GDDR6 300 GB/s.
    "l4": _gpu("l4", "NVIDIA L4 24GB", "NVIDIA L4 datasheet, dense peaks", 30.3, 60, 121, 300),
    # NVIDIA T4 Tensor Core GPU datasheet: FP32 8.1 TFLOPS, mixed FP16 65 TFLOPS, GDDR6
    # 320 GB/s; Turing has no TF32 or BF16 (float32 convolutions run at the FP32 rate).
    "t4": _gpu("t4", "NVIDIA T4 16GB", "NVIDIA T4 datasheet, peaks", 8.1, 8.1, 65, 320),
}

# Rough figures for one core of a current x86 server (AVX2/AVX-512 float32 through oneDNN),
# used only when this machine has not been calibrated; reports name it.
FALLBACK = DeviceProfile(
    name="cpu-fallback",
    description="one generic x86 core (not measured)",
    source="built-in fallback, not measured: run 'onebyone calibrate'",
    rates={"conv1x1": 60e9, "conv": 60e9, "depthwise": 8e9, "gemm": 70e9, "elementwise": 4e9},
    bandwidth=10e9,
    overhead_s=5e-6,
)


def default_profile_path() -> Path:
    """Where ``onebyone calibrate`` saves this machine's profile.

    ``$XDG_CACHE_HOME/onebyone/profile.json``, else ``~/.cache/onebyone/profile.json``.

    Example:
        >>> default_profile_path().name
        'profile.json'
    """
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "onebyone" / "profile.json"


def save_profile(profile: DeviceProfile, path: str | os.PathLike | None = None) -> Path:
    """Write ``profile`` as JSON, atomically (a failed write leaves the old file in place).

    Example:
        >>> import tempfile, pathlib
        >>> p = save_profile(PRESETS["l4"], pathlib.Path(tempfile.mkdtemp()) / "l4.json")
        >>> load_profile(p) == PRESETS["l4"]
        True
    """
    from onebyone._io import write_json_atomic

    _validate(profile.to_dict(), "the profile")
    return write_json_atomic(default_profile_path() if path is None else path, profile.to_dict())


def load_profile(path: str | os.PathLike) -> DeviceProfile:
    """Read and validate a profile file.

    Raises:
        ValueError: the file is not JSON, is truncated, or a field is missing, not a number,
            zero or negative; the message names the file and the field.
        OSError: the file cannot be read.

    Example:
        >>> import tempfile, pathlib
        >>> bad = pathlib.Path(tempfile.mkdtemp()) / "p.json"
        >>> _ = bad.write_text('{"name": "x"')
        >>> load_profile(bad)
        Traceback (most recent call last):
        ...
        ValueError: device profile '...p.json' is not valid JSON (truncated?): Expecting ',' delimiter: line 1 column 13 (char 12)
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"device profile {str(path)!r} is not valid JSON (truncated?): {e}") from None
    return _validate(data, f"device profile {str(path)!r}")


def _validate(data: Any, where: str) -> DeviceProfile:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    for key in ("name", "description", "source"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"{where}: field {key!r} is missing or not a string")
    rates = data.get("rates")
    if not isinstance(rates, dict):
        raise ValueError(f"{where}: field 'rates' is missing or not an object")
    for c in REQUIRED_CLASSES:
        _positive(rates.get(c), f"{where}: field 'rates.{c}'")
    for c in set(rates) - set(REQUIRED_CLASSES):
        if c not in OP_CLASSES:
            raise ValueError(f"{where}: field 'rates.{c}' is not an operator class {OP_CLASSES}")
        _positive(rates[c], f"{where}: field 'rates.{c}'")
    rates16 = data.get("rates_16bit", {})
    if not isinstance(rates16, dict):
        raise ValueError(f"{where}: field 'rates_16bit' is not an object")
    for c, v in rates16.items():
        _positive(v, f"{where}: field 'rates_16bit.{c}'")
    _positive(data.get("bandwidth"), f"{where}: field 'bandwidth'")
    cache_bytes = data.get("cache_bytes", 0)
    if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes < 0:
        raise ValueError(f"{where}: field 'cache_bytes' must be an integer >= 0, got {cache_bytes!r}")
    if cache_bytes:
        _positive(data.get("cache_bandwidth"), f"{where}: field 'cache_bandwidth'")
    overhead = data.get("overhead_s")
    if isinstance(overhead, bool) or not isinstance(overhead, (int, float)) or not (
        math.isfinite(overhead) and overhead >= 0
    ):
        raise ValueError(f"{where}: field 'overhead_s' must be a number >= 0, got {overhead!r}")
    return DeviceProfile(
        name=data["name"],
        description=data["description"],
        source=data["source"],
        rates={c: float(rates[c]) for c in OP_CLASSES if c in rates},
        bandwidth=float(data["bandwidth"]),
        overhead_s=float(overhead),
        rates_16bit={c: float(v) for c, v in rates16.items()},
        cache_bytes=cache_bytes,
        cache_bandwidth=float(data.get("cache_bandwidth", 0.0)) if cache_bytes else 0.0,
    )


def _positive(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{what} must be a positive number, got {value!r}")


def resolve_profile(profile: DeviceProfile | str | os.PathLike | None = None) -> DeviceProfile:
    """The profile to estimate with: a profile, a preset name, a file, or None for the default.

    The default is this machine's calibrated profile when ``onebyone calibrate`` has saved
    one, else :data:`FALLBACK`.

    Raises:
        ValueError: an unknown name (the message lists the presets) or an invalid file.

    Example:
        >>> resolve_profile("h200").bandwidth
        4800000000000.0
        >>> resolve_profile("h300")
        Traceback (most recent call last):
        ...
        ValueError: unknown device profile 'h300': not a preset (a100-80gb, h100-sxm, h200, l4, t4, cpu-fallback) nor an existing file
    """
    if isinstance(profile, DeviceProfile):
        return profile
    if profile is None:
        path = default_profile_path()
        return load_profile(path) if path.is_file() else FALLBACK
    if not isinstance(profile, (str, os.PathLike)):
        raise TypeError(
            f"device_profile must be a DeviceProfile, a preset name or a file path, got {profile!r}"
        )
    key = str(profile).lower()
    if key in PRESETS:
        return PRESETS[key]
    if key == FALLBACK.name:
        return FALLBACK
    if Path(profile).is_file():
        return load_profile(profile)
    names = ", ".join([*sorted(PRESETS), FALLBACK.name])
    raise ValueError(
        f"unknown device profile {str(profile)!r}: not a preset ({names}) nor an existing file"
    )
