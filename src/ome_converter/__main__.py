"""``python -m ome_converter``: parse the arguments, set up logging, run."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence


def _terminate(signum, frame) -> None:
    """SIGTERM (a scheduler cancelling the job) stops the run like Ctrl-C: workers are killed
    and unfinished outputs discarded."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import parse_or_exit

    config = parse_or_exit(argv)
    from .logsetup import configure
    from .runner import run

    configure(config.log_level)
    signal.signal(signal.SIGTERM, _terminate)
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
