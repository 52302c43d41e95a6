"""What every entry point in scripts/ shares: logging to stderr and one-line errors.

An error raised on purpose by mlpipe's own code (bad input, a failed download, a NaN loss)
already says what is wrong and what to do: it ends the job with one line, no traceback. An
error from anywhere else is a surprise: its traceback is printed before that line.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def run_main(main: Callable[[], None]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        main()
    except Exception as error:
        if not raised_by_mlpipe(error):
            traceback.print_exc()
        sys.exit(f"error: {type(error).__name__}: {error}")


def raised_by_mlpipe(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in the mlpipe package."""
    frame = error.__traceback__
    if frame is None:
        return False
    while frame.tb_next is not None:
        frame = frame.tb_next
    return Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)
