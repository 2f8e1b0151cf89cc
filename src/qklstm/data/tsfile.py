"""Labelled sequences from the UCR/UEA archive's ``.ts`` files, the format time-series classification benchmarks
are published in (sktime, aeon and tslearn read it): the reader of signal classification (issue 39).

A file is comments (``#``), a header of ``@`` tags, then ``@data`` and one case a line: its dimensions separated
by ``:``, each a comma-separated series, and last the class label::

    @problemName Toy
    @univariate false
    @dimensions 2
    @equalLength false
    @classLabel true walk run
    @data
    1.0,2.0,3.0:0.5,0.5,0.4:walk
    2.0,?:0.1,0.2:run

The header is checked against the data: the number of dimensions (``@univariate``, ``@dimensions``), the lengths
(``@equalLength``, ``@seriesLength``), the labels (``@classLabel``). Within a case every dimension has one length;
cases may differ (they run as padded, packed batches). ``?`` is a missing value: refused by default; where the
header says ``@missing true``, ``missing="interpolate"`` fills it linearly from its neighbours within the
series (the nearest value at either end) and ``missing="keep"`` keeps it as NaN. Time stamps
(``@timeStamps true``) and regression targets (``@targetLabel``) are refused. Every error names the file and
line.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "toy.ts"
    >>> _ = p.write_text("@problemName Toy\\n@univariate true\\n@classLabel true a b\\n@data\\n1,2,3:a\\n4,5:b\\n")
    >>> ts = read_ts(p)
    >>> ts.labels, [s.shape for s in ts.series], ts.classes
    (['a', 'b'], [(3, 1), (2, 1)], ['a', 'b'])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cleaning import interpolate_missing

__all__ = ["LabelledSeries", "fill_case", "read_ts", "stratified_carve"]

_FLAGS = ("timestamps", "missing", "univariate", "equallength")


@dataclass
class LabelledSeries:
    """Sequences with one class label each: ``series[i]`` is ``(length, channels)`` (float64, NaN where missing
    and not filled), ``labels[i]`` its class, ``classes`` the header's labels in its order."""

    series: list[np.ndarray]
    labels: list[str]
    classes: list[str]
    name: str = ""
    meta: dict = field(default_factory=dict)
    #: each case's id, where the file names its cases (a long table's ``--id-column``); else empty
    ids: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return self.series[0].shape[1]

    @property
    def equal_length(self) -> bool:
        return len({len(s) for s in self.series}) == 1


def _flag(value: str, tag: str, where: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"{where}: @{tag} expects true or false, got {value!r}")
    return value.lower() == "true"


def _header(lines, where: str) -> tuple[dict, int]:
    """The header's tags and the line number of ``@data``."""
    meta: dict = {}
    for n, line in lines:
        tag, _, value = line[1:].partition(" ")
        tag, value = tag.lower(), value.strip()
        if tag == "data":
            return meta, n
        if tag in _FLAGS:
            meta[tag] = _flag(value, tag, f"{where}:{n}")
        elif tag in ("dimensions", "serieslength"):
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{where}:{n}: @{tag} expects a positive integer, got {value!r}")
            meta[tag] = int(value)
        elif tag == "classlabel":
            first, *labels = value.split() or [""]
            if not _flag(first, tag, f"{where}:{n}") or not labels:
                raise ValueError(f"{where}:{n}: @classLabel names no classes; this reader is for classification")
            meta["classes"] = labels
        elif tag == "targetlabel":
            raise ValueError(f"{where}:{n}: @targetLabel (a regression problem) is not supported; one class per case")
        elif tag == "problemname":
            meta["name"] = value
    raise ValueError(f"{where}: no @data line")


def _values(text: str, where: str, refuse: str | None) -> np.ndarray:
    """The numbers of one dimension; a ``?`` is NaN, or refused with the reason ``refuse``."""
    try:
        values = np.array([math.nan if v.strip() == "?" else float(v) for v in text.split(",")])
    except ValueError:
        raise ValueError(f"{where}: expected comma-separated numbers or ?, got {text[:60]!r}") from None
    if not np.isfinite(values[~np.isnan(values)]).all():
        raise ValueError(f"{where}: holds an infinite value")
    if refuse is not None and np.isnan(values).any():
        raise ValueError(f"{where}: a missing value (?): {refuse}")
    return values


def fill_case(channels: list[np.ndarray], where: str) -> list[np.ndarray]:
    """A case's channels with missing values filled linearly within each (the nearest value at either end;
    :func:`~qklstm.data.cleaning.interpolate_missing`); a channel with no value at all is refused at ``where``.

    >>> fill_case([np.array([np.nan, 1.0, np.nan, 3.0])], "x.ts:5")[0].tolist()
    [1.0, 1.0, 2.0, 3.0]
    """
    if any(np.isnan(c).all() for c in channels):
        raise ValueError(f"{where}: a channel of this case has no value at all; nothing to interpolate from")
    return [interpolate_missing(c)[0] for c in channels]


def read_ts(path: str | os.PathLike, *, missing: str = "refuse", argument: str = "--data") -> LabelledSeries:
    """The cases of ``.ts`` file ``path`` (see the module docstring). ``missing``: ``"refuse"`` a ``?`` (even
    where ``@missing true``), ``"keep"`` it as NaN, or ``"interpolate"`` it; ``argument`` names ``path`` in
    errors about the file itself."""
    if missing not in ("refuse", "keep", "interpolate"):
        raise ValueError(f"missing: expected refuse, keep or interpolate, got {missing!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: {path} does not exist (expected a .ts file of the UCR/UEA archive)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid UTF-8 ({err})") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    meta, data_line = _header(((n, s) for n, s in lines if s.startswith("@")), str(path))
    if meta.get("timestamps"):
        raise ValueError(f"{path}: @timeStamps true is not supported (values only, one step apart)")
    if "classes" not in meta:
        raise ValueError(f"{path}: the header has no @classLabel line")
    dims = 1 if meta.get("univariate", False) else meta.get("dimensions")
    refuse = None
    if not meta.get("missing", False):
        refuse = "the header says @missing false (or does not say true)"
    elif missing == "refuse":
        refuse = "refused by default; missing='interpolate' fills such values, 'keep' keeps them as NaN"
    series, labels = [], []
    for n, line in ((n, s) for n, s in lines if n > data_line):
        where = f"{path}:{n}"
        *parts, label = line.split(":")
        if not parts:
            raise ValueError(f"{where}: expected the dimensions separated by ':' and then the class label")
        if dims is not None and len(parts) != dims:
            raise ValueError(f"{where}: {len(parts)} dimension(s) where the header and the first case say {dims}")
        dims = len(parts)
        if label.strip() not in meta["classes"]:
            raise ValueError(f"{where}: class {label.strip()!r} is not among @classLabel {' '.join(meta['classes'])}")
        channels = [_values(p, where, refuse) for p in parts]
        if len({len(c) for c in channels}) != 1:
            raise ValueError(f"{where}: its dimensions have different lengths {[len(c) for c in channels]}")
        if missing == "interpolate":
            channels = fill_case(channels, where)
        series.append(np.stack(channels, 1))
        labels.append(label.strip())
    if not series:
        raise ValueError(f"{path}: no case after @data")
    lengths = {len(s) for s in series}
    if meta.get("equallength") and len(lengths) > 1:
        raise ValueError(f"{path}: @equalLength true, but the cases have {min(lengths)} to {max(lengths)} steps")
    if "serieslength" in meta and meta.get("equallength") and lengths != {meta["serieslength"]}:
        raise ValueError(f"{path}: @seriesLength {meta['serieslength']}, but the cases have {sorted(lengths)[0]} steps")
    return LabelledSeries(series, labels, list(meta["classes"]), meta.get("name", path.stem), meta)


def stratified_carve(labels, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(the rest, the carved)`` case indices, each in file order: of every class with ``n`` cases,
    ``round(share * n)`` drawn by numpy's generator from ``seed``, at least one where the class has two cases or
    more, never all of them (the rest keeps every class); at least one case in all.

    >>> rest, dev = stratified_carve(["a"] * 8 + ["b"] * 2, 0.25, seed=0)
    >>> len(rest), len(dev), int((dev >= 8).sum())  # two of the eight a's, one of the two b's
    (7, 3, 1)
    """
    if not 0 < share < 1:
        raise ValueError(f"carve: expected a share in (0, 1), got {share!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    carved = []
    for label in dict.fromkeys(labels.tolist()):  # classes in order of first appearance: one draw order per seed
        members = np.flatnonzero(labels == label)
        k = min(len(members) - 1, max(1, round(share * len(members))))
        carved += rng.choice(members, k, replace=False).tolist() if k > 0 else []
    if not carved:
        carved = [int(rng.integers(len(labels)))]
    picked = np.zeros(len(labels), bool)
    picked[carved] = True
    return np.flatnonzero(~picked), np.flatnonzero(picked)
