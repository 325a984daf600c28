"""The saved recipe document (``NAME.json``): its schema, read and checked before anything is built.

A document is untrusted input: it is parsed with bounds (file size, nesting, integer digits)
and every field is checked (types, ranges, no unknown keys) so that a corrupted or hostile file
fails with one :class:`~onebyone.errors.OneByOneError` naming the file and the field, never with
a raw ``RecursionError``, ``TypeError`` or a huge allocation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from onebyone.errors import OneByOneError

FORMAT = "onebyone-surgery-plan"
VERSION = 1
#: The largest document read (a recipe is a few kB; a 1 MiB one is corrupt or hostile).
MAX_BYTES = 1 << 20
#: The deepest nesting of lists and objects a document may have (a recipe needs 5).
MAX_DEPTH = 16
#: Bounds on recorded sizes: a rank or channel count, and the elements of one example input.
MAX_RANK = 1 << 20
MAX_INPUT_ELEMENTS = 1 << 28
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DECOMPOSE_METHODS = {"tucker2": 2, "reduce": 1, "svd": 1}
_KEYS = {"format", "version", "base", "steps", "weights", "sha256", "tensors"}


def read_document(path: Path) -> dict:
    """Parse and check the document at ``path``; OneByOneError for anything malformed.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "deep.json"
        >>> _ = p.write_text("[" * 100_000 + "]" * 100_000)
        >>> read_document(p)
        Traceback (most recent call last):
        ...
        onebyone.errors.OneByOneError: plan file '...deep.json' nests deeper than 16 levels (corrupted or hostile)
    """
    where = f"plan file {str(path)!r}"
    with open(path, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise OneByOneError(f"{where} is larger than {MAX_BYTES:,} bytes: not a surgery plan")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise OneByOneError(f"{where} is not UTF-8 text (corrupted?): {e}") from e
    if _depth(text) > MAX_DEPTH:
        raise OneByOneError(f"{where} nests deeper than {MAX_DEPTH} levels (corrupted or hostile)")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, an int of 4,300+ digits, NaN
        raise OneByOneError(f"{where} is not valid JSON (corrupted or truncated?): {e}") from e
    check_document(document, where)
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _depth(text: str) -> int:
    """The deepest bracket nesting of ``text`` (brackets inside strings are counted too: an upper bound)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def check_document(doc: Any, where: str = "plan") -> None:
    """Raise OneByOneError unless ``doc`` is a well-formed recipe document.

    Example:
        >>> check_document({"format": FORMAT, "version": 1, "base": {"spec": "resnet20", "kwargs": {}},
        ...                 "steps": [{"op": "decompose", "layers": {"fc": {"method": "svd", "ranks": [10**9]}}}],
        ...                 "weights": "x.safetensors", "sha256": "0" * 64})
        Traceback (most recent call last):
        ...
        onebyone.errors.OneByOneError: plan: step 0 (decompose): layer 'fc': ranks must be ints in [1, 1048576], got [1000000000]
    """
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise OneByOneError(f"{where} is not a onebyone surgery plan (no \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise OneByOneError(f"{where} has version {doc.get('version')!r}; this onebyone reads version {VERSION}")
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise OneByOneError(f"{where} has unknown fields {unknown}; expected {sorted(_KEYS)}")
    _check_base(doc.get("base"), where)
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise OneByOneError(f"{where} has no valid \"steps\" (a list of {{\"op\": {'|'.join(_STEPS)}, ...}})")
    for i, step in enumerate(steps):
        op = step.get("op") if isinstance(step, dict) else None
        if op not in _STEPS:
            raise OneByOneError(f"{where} has no valid \"steps\": step {i} is not {{\"op\": {'|'.join(_STEPS)}, ...}}")
        try:
            _STEPS[op](step)
        except ValueError as e:
            raise OneByOneError(f"{where}: step {i} ({op}): {e}") from None
    if not isinstance(doc.get("weights"), str) or not isinstance(doc.get("sha256"), str):
        raise OneByOneError(f"{where} does not name its weights file and checksum")
    if not _SHA256.match(doc["sha256"]):
        raise OneByOneError(f"{where} has a malformed sha256 {doc['sha256'][:80]!r} (64 hex digits expected)")
    if Path(doc["weights"]).name != doc["weights"] or doc["weights"] in ("", ".", ".."):
        raise OneByOneError(f"{where} names weights outside its folder: {doc['weights']!r}")
    tensors = doc.get("tensors")
    if tensors is not None and (not isinstance(tensors, int) or isinstance(tensors, bool) or tensors < 0):
        raise OneByOneError(f"{where} has a malformed \"tensors\" count {tensors!r}")


def _check_base(base: Any, where: str) -> None:
    ok = (
        isinstance(base, dict)
        and set(base) <= {"spec", "kwargs"}
        and isinstance(base.get("spec"), str)
        and base["spec"] != ""
        and isinstance(base.get("kwargs", {}), dict)
    )
    if not ok:
        raise OneByOneError(f"{where} has no valid \"base\" (expected {{\"spec\": str, \"kwargs\": {{...}}}})")
    for key, value in base.get("kwargs", {}).items():
        if not key.isidentifier():
            raise OneByOneError(f"{where}: base kwargs: {key!r} is not an argument name")
        if not _plain(value):
            raise OneByOneError(f"{where}: base kwargs: {key}={_short(value)} is not a plain value "
                                "(bool, int, float, str or a list of them)")


def _plain(value: Any, depth: int = 0) -> bool:
    if isinstance(value, bool | int | float | str) or value is None:
        return True
    return isinstance(value, list) and depth < 2 and len(value) <= 64 and all(_plain(v, depth + 1) for v in value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _ranks_ok(ranks: Any, count: int) -> bool:
    return (
        isinstance(ranks, list) and len(ranks) == count
        and all(isinstance(r, int) and not isinstance(r, bool) and 1 <= r <= MAX_RANK for r in ranks)
    )


def _check_decompose(step: dict) -> None:
    _only_keys(step, {"op", "layers"})
    layers = step.get("layers")
    if not isinstance(layers, dict):
        raise ValueError("\"layers\" must be an object {name: {\"method\": ..., \"ranks\": [...]}}")
    for name, spec in layers.items():
        if not isinstance(spec, dict) or set(spec) != {"method", "ranks"}:
            raise ValueError(f"layer {name!r}: expected {{\"method\": ..., \"ranks\": [...]}}, got {_short(spec)}")
        count = _DECOMPOSE_METHODS.get(spec["method"])
        if count is None:
            raise ValueError(f"layer {name!r}: method must be one of {', '.join(_DECOMPOSE_METHODS)}, "
                             f"got {_short(spec['method'])}")
        if not _ranks_ok(spec["ranks"], count):
            raise ValueError(f"layer {name!r}: ranks must be ints in [1, {MAX_RANK}], got {_short(spec['ranks'])}")


def _check_convolutionalize(step: dict) -> None:
    _only_keys(step, {"op", "input_size"})
    size = step.get("input_size")
    if not (isinstance(size, list) and len(size) in (3, 4) and _ranks_ok(size, len(size))):
        raise ValueError(f"input_size must be 3 or 4 ints in [1, {MAX_RANK}], got {_short(size)}")
    elements = 1
    for d in size[-3:]:
        elements *= d
    if elements > MAX_INPUT_ELEMENTS:
        raise ValueError(f"input_size {size} has {elements:,} elements per example; at most {MAX_INPUT_ELEMENTS:,}")


def _check_fuse(step: dict) -> None:
    _only_keys(step, {"op", "only_if_cheaper", "exact_norms"})
    if not isinstance(step.get("only_if_cheaper", True), bool):
        raise ValueError(f"only_if_cheaper must be true or false, got {_short(step['only_if_cheaper'])}")
    norms = step.get("exact_norms", [])
    if not isinstance(norms, list) or not all(isinstance(n, str) for n in norms):
        raise ValueError(f"exact_norms must be a list of layer names, got {_short(norms)}")


def _only_keys(step: dict, keys: set[str]) -> None:
    unknown = sorted(set(step) - keys)
    if unknown:
        raise ValueError(f"unknown fields {unknown}; expected {sorted(keys)}")


#: Each operation's schema check (the same keys as the replay table in io.py).
_STEPS = {"decompose": _check_decompose, "convolutionalize": _check_convolutionalize, "fuse": _check_fuse}
OPS = tuple(_STEPS)
