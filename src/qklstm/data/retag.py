"""Tagging a CoNLL-U file in place: its sentence blocks read line by line as they are, and written back with
only the UPOS column of the word lines changed, so comments (``# sent_id``, ``# text``), multi-word token
ranges, empty nodes, blank lines, line endings and every other column survive byte for byte (a byte-order mark
at the start is dropped).

Example:
    >>> lines = [b"# text = Hi there\\n", b"1\\tHi\\thi\\tX\\t_\\t_\\t0\\troot\\t_\\t_\\n",
    ...          b"2\\tthere\\tthere\\tX\\t_\\t_\\t1\\tdep\\t_\\tSpaceAfter=No\\n", b"\\n"]
    >>> (block,) = conllu_blocks(lines, "x.conllu")
    >>> block.forms
    ['Hi', 'there']
    >>> [row.split("\\t")[3] for row in block.with_upos(["INTJ", "ADV"]).splitlines()[1:3]]
    ['INTJ', 'ADV']
    >>> block.with_upos(["INTJ", "ADV"]).replace("INTJ", "X").replace("ADV", "X") == b"".join(lines).decode()
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ConlluBlock", "conllu_blocks", "decoded_lines"]

_UPOS = 3  # the fourth column


@dataclass
class ConlluBlock:
    """One sentence block: its lines as read (terminators kept), and where its words are."""

    lines: list[str] = field(default_factory=list)
    word_lines: list[int] = field(default_factory=list)  # indices into ``lines`` of word lines (integer IDs)
    forms: list[str] = field(default_factory=list)

    def with_upos(self, tags) -> str:
        """The block as read, the UPOS column of its word lines replaced by ``tags`` (one per word)."""
        if len(tags) != len(self.word_lines):
            raise ValueError(f"tags: expected {len(self.word_lines)} (one per word), got {len(tags)}")
        lines = list(self.lines)
        for i, tag in zip(self.word_lines, tags):
            body = lines[i].rstrip("\r\n")
            fields = body.split("\t")
            fields[_UPOS] = tag
            lines[i] = "\t".join(fields) + lines[i][len(body) :]
        return "".join(lines)


def decoded_lines(lines, name: str):
    """``(line number, text with its terminator)`` of binary ``lines``, each decoded alone so that a bad byte
    is named by its line; a UTF-8 byte-order mark before the first line is dropped."""
    for n, raw in enumerate(lines, 1):
        try:
            yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{name}: line {n} is not valid UTF-8 ({err.reason})") from None


def conllu_blocks(lines, name: str):
    """:class:`ConlluBlock` per sentence of binary CoNLL-U ``lines`` (a blank line ends one and belongs to it);
    a word line is checked for its ten tab-separated fields, named by file and line number."""
    block = ConlluBlock()
    for n, line in decoded_lines(lines, name):
        body = line.rstrip("\r\n")
        block.lines.append(line)
        if not body.strip():
            yield block
            block = ConlluBlock()
        elif not body.startswith("#"):
            fields = body.split("\t")
            if len(fields) != 10:
                raise ValueError(f"{name}:{n}: expected 10 tab-separated CoNLL-U fields, found {len(fields)}")
            if fields[0].isdigit():  # words only: no multi-word ranges, no empty nodes
                block.word_lines.append(len(block.lines) - 1)
                block.forms.append(fields[1])
    if block.lines:
        yield block
