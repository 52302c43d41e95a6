"""What every entry point in scripts/ shares: logging to stderr and one-line errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

# Errors a user can act on from their message alone: shown as one line, no traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)


def run_main(main: Callable[[], None]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        main()
    except EXPECTED_ERRORS as error:
        logging.getLogger("mlpipe").debug("error", exc_info=True)
        sys.exit(f"error: {type(error).__name__}: {error}")
