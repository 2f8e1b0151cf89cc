"""``qklstm predict RUN_DIR [FILE|-]``: tag sentences, forecast a series or classify sequences with a trained run.

qklstm predict runs/pos-qk sentences.txt              # one sentence per line -> word/TAG lines
qklstm predict runs/pos-qk raw.txt --tokenizer whitespace  # words between spaces, as they stand
qklstm predict runs/pos-qk - --format conllu < in.txt  # from standard input, CoNLL-U out
qklstm predict runs/pos-qk test.conllu --format conllu # the file back, its UPOS column predicted
qklstm predict runs/pos-qk test.conllu --format jsonl  # the FORM column of a CoNLL-U file
qklstm predict runs/pm-qk new_hours.csv --out f.csv    # forecaster: a CSV with the training columns
qklstm predict runs/motions X_TEST.ts --out labels.csv # classifier: a .ts file -> case, class, probabilities

Needs only the run's checkpoint. Sentences stream in batches, so a large input is never held whole.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys


def register(sub) -> None:
    from ..data.tokenize import TOKENIZERS

    p = sub.add_parser(
        "predict", help="tag sentences, forecast a series or classify sequences with a trained run (no data cache)"
    )
    p.add_argument("run", metavar="RUN_DIR", help="the --out folder of qklstm train, or a checkpoint file")
    p.add_argument(
        "input",
        nargs="?",
        default="-",
        metavar="FILE|-",
        help="sentences, one per line (a blank line stays blank), a .conllu file (with --format conllu written "
        "back as it is but for its UPOS column), a CSV for a forecaster, a .ts file for a classifier; - or "
        "nothing: standard input",
    )
    p.add_argument(
        "--format",
        choices=("text", "conllu", "jsonl"),
        default="text",
        help="tagging output: word/TAG text, CoNLL-U, or JSON lines (default: text)",
    )
    p.add_argument(
        "--tokenizer",
        choices=tuple(TOKENIZERS),
        default="ud",
        help="how a text line is cut into words: ud splits punctuation, clitics and elisions off as UD's English "
        "and French treebanks do (late, -> late ,; don't -> do n't; l'homme -> l' homme); whitespace keeps the "
        "words between spaces as they stand; the output shows the words tagged (default: ud)",
    )
    p.add_argument("--out", default="-", metavar="FILE", help="output file, written atomically (default: stdout)")
    p.add_argument("--checkpoint", default="best", help="best (the default) or last")
    p.add_argument("--batch-size", type=int, default=256, help="sentences or windows per batch (default: 256)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checks import positive_int
    from ..data.retag import conllu_blocks
    from ..io import atomic_write
    from ..train.predict import Classifier, Tagger, load

    positive_int(args.batch_size, "--batch-size")
    model = load(args.run, checkpoint=args.checkpoint)
    name = "standard input" if args.input == "-" else args.input
    with contextlib.ExitStack() as stack:
        out = sys.stdout if args.out == "-" else stack.enter_context(atomic_write(args.out, "w", encoding="utf-8"))
        if isinstance(model, Tagger):
            source = sys.stdin.buffer if args.input == "-" else stack.enter_context(open(args.input, "rb"))
            conllu = args.input.endswith(".conllu")
            items = conllu_blocks(source, name) if conllu else _text_lines(source, name, args.tokenizer)
            for batch in _batches(items, args.batch_size):
                tags = iter(model.predict([it.forms for it in batch if it.forms], args.batch_size))
                for item in batch:
                    out.write(_format(item, next(tags) if item.forms else [], args.format))
        elif isinstance(model, Classifier):
            _classify(model, args, out)
        else:
            _forecast(model, args, name, out)
    return 0


class _TextLine:
    """One line of text input: its words (none for a blank line) and the line itself."""

    def __init__(self, line: str, tokenizer: str):
        from ..data.tokenize import tokenize

        self.text, self.forms = line, tokenize(line, tokenizer)


def _text_lines(lines, name: str, tokenizer: str):
    from ..data.retag import decoded_lines

    for _, line in decoded_lines(lines, name):
        yield _TextLine(line.rstrip("\r\n"), tokenizer)


def _batches(items, size: int):
    """Lists of ``size`` items (the last may be shorter); a batch holds up to ``size`` sentences to tag."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _format(item, tags, fmt: str) -> str:
    """One item's output. Text input keeps a line per line (a blank line stays blank); a CoNLL-U block comes
    back as read but for its UPOS column (``conllu``), or as its words (``text``, ``jsonl``)."""
    words, block = item.forms, not isinstance(item, _TextLine)
    if fmt == "conllu":
        if block:
            return item.with_upos(tags)
        rows = "".join(f"{i}\t{w}\t_\t{t}\t_\t_\t_\t_\t_\t_\n" for i, (w, t) in enumerate(zip(words, tags), 1))
        return f"# text = {item.text}\n{rows}\n" if words else ""
    if block and not words:  # a block of comments only has no sentence to show
        return ""
    if fmt == "jsonl":
        return json.dumps({"tokens": words, "tags": tags}, ensure_ascii=False) + "\n"
    return " ".join(f"{w}/{t}" for w, t in zip(words, tags)) + "\n"


@contextlib.contextmanager
def _as_file(source: str, suffix: str):
    """``source`` as a path: the file given, or standard input (``-``) copied to a temporary file (the CSV and
    ``.ts`` readers take paths), removed afterwards."""
    if source != "-":
        yield source
        return
    import os
    import tempfile

    tmp = tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, encoding="utf-8")
    try:
        with tmp:
            tmp.write(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8").read())
        yield tmp.name
    finally:
        os.unlink(tmp.name)


def _classify(model, args, out) -> None:
    """The class of every case of a ``.ts`` file (``case`` 1-based, in file order) or a table (``case`` its id),
    its true label, and each class's probability (``p_<class>``)."""
    import csv

    suffix = ".csv" if args.input == "-" and model.config.id_column else ".ts"  # standard input: the training format
    with _as_file(args.input, suffix) as path:
        cases = model.read_cases(path, argument="FILE")
        probs = model.predict_proba(cases.series, batch_size=args.batch_size)
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["case", "predicted", "true", *(f"p_{c}" for c in model.classes)])
    names = cases.ids or range(1, len(cases.labels) + 1)  # a table's ids, a .ts file's case numbers
    for case, p, true in zip(names, probs, cases.labels):
        w.writerow([case, model.classes[int(p.argmax())], true, *(f"{v:.6f}" for v in p)])


def _forecast(model, args, name: str, out) -> None:
    """Forecasts of a CSV with the training columns: ``row`` and ``time`` of the step forecast (``horizon`` steps
    after the window's last step on the series' grid, rows 1-based; the time evaluation's plots show it at), the
    forecast in the target's units, and ``steps_ahead``; a run of several series writes the id column first."""
    import csv

    import numpy as np

    from ..data.timeindex import format_time

    with _as_file(args.input, ".csv") as path:
        many = dict(skip_unknown=True) if model.id_column else {}
        result = model.predict(path, batch_size=args.batch_size, return_times=True, **many)
    by_id = result if model.id_column else {None: result}
    unknown = [key for key, value in by_id.items() if value is None]
    if unknown:
        print(f"{name}: no forecast for series {unknown} of {model.id_column!r}: not in training", file=sys.stderr)
        by_id = {key: value for key, value in by_id.items() if value is not None}
    w = csv.writer(out, lineterminator="\n")
    target, horizon, window = model.numeric[0], model.config.horizon, model.config.window
    w.writerow([model.id_column] * bool(model.id_column) + ["row", "time", f"{target}_forecast", "steps_ahead"])
    skipped = 0
    for key, (times, values) in by_id.items():
        first = [key] if model.id_column else []
        for i, (t, v) in enumerate(zip(times, values)):
            if not np.isnan(v):
                w.writerow([*first, i + window + horizon, format_time(t), f"{v:.6g}", horizon])
        skipped += int(np.isnan(values).sum())
    if skipped:
        print(
            f"{name}: {skipped:,} windows meet a gap longer than {model.max_gap} steps and have no forecast "
            "(no training window crossed one)",
            file=sys.stderr,
        )
