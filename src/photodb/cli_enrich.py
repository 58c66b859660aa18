"""enrich-photos: LLM analysis through Anthropic or AWS Bedrock batch APIs (not built yet)."""

from __future__ import annotations

import click

from photodb.cli_support import settings_or_exit


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", required=False, type=click.Path(path_type=str))
def main(path: str | None) -> None:
    """Add LLM descriptions, objects and tags to photos (not implemented yet).

    Enrichment through the Anthropic and AWS Bedrock batch APIs is planned; until it lands this
    command does nothing and exits with status 2.
    """
    settings_or_exit()  # a bad configuration is reported first, as by every command
    raise click.UsageError("enrich-photos is not implemented yet; run process-local for local indexing")
