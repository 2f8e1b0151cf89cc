"""Token <-> id tables with ``<pad>`` = 0 and ``<unk>`` = 1, saved inside checkpoints as JSON.

>>> v = Vocabulary.build([["The", "cat"], ["the", "dog"]], lowercase=True)
>>> v.encode(["the", "Dog", "emu"]), len(v)
([2, 4, 1], 5)
>>> Vocabulary.from_dict(v.to_dict()) == v
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["PAD", "UNK", "Vocabulary"]

PAD = "<pad>"
UNK = "<unk>"


class Vocabulary:
    """An ordered token table: ``<pad>`` is id 0, ``<unk>`` (when present) id 1, then tokens.

    With ``unk=True`` unknown tokens map to ``<unk>``; with ``unk=False`` (a label set, such
    as tags) encoding an unknown token is a ``ValueError``. ``lowercase`` folds case on both
    build and lookup.
    """

    def __init__(self, tokens: Sequence[str], *, unk: bool = True, lowercase: bool = False):
        specials = [PAD, UNK] if unk else [PAD]
        self.unk = bool(unk)
        self.lowercase = bool(lowercase)
        self.itos: list[str] = specials + [t for t in tokens if t not in specials]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("tokens: contains duplicates")

    @classmethod
    def build(
        cls,
        sequences: Iterable[Iterable[str]],
        *,
        min_freq: int = 1,
        lowercase: bool = False,
        unk: bool = True,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Count tokens over ``sequences`` and keep those seen at least ``min_freq`` times.

        Tokens are ordered by decreasing count, then alphabetically, so the table does not
        depend on the order of the data. ``max_size`` caps the number of ordinary tokens.

        >>> Vocabulary.build([["b", "a", "b"]], min_freq=2).itos
        ['<pad>', '<unk>', 'b']
        """
        if int(min_freq) < 1:
            raise ValueError(f"min_freq: expected an integer >= 1, got {min_freq!r}")
        counts: Counter = Counter()
        for seq in sequences:
            counts.update(t.lower() if lowercase else t for t in seq)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: int(max_size)]
        return cls(kept, unk=unk, lowercase=lowercase)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int | None:
        return 1 if self.unk else None

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return self._key(token) in self.stoi

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries, unk={self.unk}, lowercase={self.lowercase})"

    def _key(self, token: str) -> str:
        return token.lower() if self.lowercase else token

    def index(self, token: str) -> int:
        """The id of ``token`` (``<unk>``'s id for unknown ones when the table has ``<unk>``)."""
        key = self._key(token)
        idx = self.stoi.get(key)
        if idx is not None:
            return idx
        if self.unk:
            return 1
        raise ValueError(f"token: {token!r} is not in this vocabulary (which has no <unk>)")

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``."""
        return [self.index(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``."""
        return [self.itos[int(i)] for i in ids]

    def to_dict(self) -> dict:
        """A JSON-serialisable form (for checkpoints)."""
        return {"itos": list(self.itos), "unk": self.unk, "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        """Inverse of :meth:`to_dict`."""
        try:
            itos, unk, lowercase = data["itos"], bool(data["unk"]), bool(data["lowercase"])
        except (KeyError, TypeError):
            raise ValueError("data: expected a dict with keys 'itos', 'unk' and 'lowercase' (from to_dict)") from None
        specials = [PAD, UNK] if unk else [PAD]
        if list(itos[: len(specials)]) != specials:
            raise ValueError(f"data: 'itos' must start with {specials}, got {list(itos[:2])}")
        return cls(itos[len(specials) :], unk=unk, lowercase=lowercase)
