"""photodb: the command group of PhotoDB's tools. Each area adds its subcommands here."""

from __future__ import annotations

import click

from photodb.cli_prompts import prompts


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def photodb() -> None:
    """PhotoDB: index, tag and search your photo library.

    Indexing runs with `process-local FOLDER`; the commands here manage what it uses and finds.
    Settings come from the environment and `.env` (DATABASE_URL, PHOTODB_HOME, MODELS_DIR, ...).

    \b
    Examples:
      photodb prompts list                 the tagging categories and their labels
      photodb prompts add activity skiing  tag photos of skiing from now on
      photodb prompts rebuild              embed every label again with the CLIP model
    """


photodb.add_command(prompts)


def main() -> None:
    photodb()


if __name__ == "__main__":
    main()
