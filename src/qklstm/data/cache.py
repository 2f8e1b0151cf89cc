"""Where fetched data sets live, and the errors raised when one is missing.

The cache folder is ``$QKLSTM_DATA`` when set, else ``$XDG_CACHE_HOME/qklstm``, else
``~/.cache/qklstm``. Each data set has its own sub-folder (``brown/``, ``beijing-pm25/``).

>>> import os
>>> os.environ["QKLSTM_DATA"] = "/tmp/qk-cache-example"
>>> str(data_home()), str(dataset_dir("brown"))
('/tmp/qk-cache-example', '/tmp/qk-cache-example/brown')
>>> del os.environ["QKLSTM_DATA"]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DATASETS",
    "DataNotFoundError",
    "DatasetInfo",
    "data_home",
    "dataset_dir",
    "dataset_info",
    "is_cached",
    "require_dataset",
]

ENV_VAR = "QKLSTM_DATA"


class DataNotFoundError(FileNotFoundError):
    """A data set is not in the cache (or a given path does not hold it); the message says how to get it."""


@dataclass(frozen=True)
class DatasetInfo:
    """A fetchable data set: its cache sub-folder and the file whose presence marks it complete."""

    name: str
    folder: str
    marker: str
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "brown": DatasetInfo(
        "brown",
        "brown",
        "cats.txt",
        "Brown corpus (500 documents, 15 genres, Brown tags mapped to the universal tagset)",
    ),
    "beijing-pm25": DatasetInfo(
        "beijing-pm25",
        "beijing-pm25",
        "beijing_pm25.csv",
        "UCI Beijing PM2.5 hourly data, 2010-2014 (43,824 rows)",
    ),
}


def data_home(cache: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache`` if given, else ``$QKLSTM_DATA``, else the user's cache dir."""
    if cache is not None:
        return Path(cache).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "qklstm"


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name``; a ``ValueError`` lists the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"data set: unknown name {name!r}; expected one of {', '.join(DATASETS)}") from None


def dataset_dir(name: str, cache: str | os.PathLike | None = None) -> Path:
    """The cache sub-folder of data set ``name`` (whether or not it is fetched)."""
    return data_home(cache) / dataset_info(name).folder


def is_cached(name: str, cache: str | os.PathLike | None = None) -> bool:
    """Whether data set ``name`` has been fetched into the cache."""
    return (dataset_dir(name, cache) / dataset_info(name).marker).is_file()


def require_dataset(name: str, cache: str | os.PathLike | None = None) -> Path:
    """The cache sub-folder of ``name``, or a :class:`DataNotFoundError` naming the fetch command.

    >>> import tempfile
    >>> try:
    ...     require_dataset("brown", tempfile.mkdtemp())
    ... except DataNotFoundError as err:
    ...     print("qklstm data fetch brown" in str(err))
    True
    """
    folder = dataset_dir(name, cache)
    if not is_cached(name, cache):
        raise DataNotFoundError(
            f"data set {name!r} is not in the cache ({folder}); run `qklstm data fetch {name}` first "
            f"(the cache folder is ${ENV_VAR}, else ~/.cache/qklstm)"
        )
    return folder
