"""Progress bars for long work: a live bar in a terminal, sparse plain lines elsewhere.

Every long loop of the library goes through :func:`bar`, so output redirected to a file or
captured in an executed notebook stays small and readable (no carriage returns, no widgets).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from tqdm import tqdm

#: Seconds between lines when the output is not a terminal.
QUIET_INTERVAL = 30.0


def interactive() -> bool:
    """True when progress goes to a terminal a person watches."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) and not os.environ.get("LHP_BOOK_RUN")


def bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
        disable: bool = False, initial: int = 0, **kwargs: Any) -> tqdm:
    """A tqdm bar: live in a terminal, a line every :data:`QUIET_INTERVAL` s (no ``\\r``) otherwise.

    ``initial`` counts work already done (resumed or cached) without crediting it to the rate.
    """
    live = interactive()
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, initial=initial, file=sys.stderr,
                mininterval=0.1 if live else QUIET_INTERVAL, ascii=not live, dynamic_ncols=live,
                **({} if live else {"ncols": 80}), **kwargs)
