"""photodb: the command group of PhotoDB's tools. Each area adds its subcommands here."""

from __future__ import annotations

import importlib

import click

from photodb.cli_support import verbose_option

#: Each subcommand and where it lives, imported only when it runs (or `--help` lists them): the
#: areas pull in heavy libraries (scipy, scikit-learn, Starlette, the LLM SDKs), and a command
#: such as `photodb people list` should not pay for every other area at start-up.
SUBCOMMANDS = {
    "index": "photodb.cli_local:main",
    "cluster": "photodb.cli_cluster:main",
    "maintenance": "photodb.cli_maintenance:main",
    "prompts": "photodb.cli_prompts:prompts",
    "people": "photodb.cli_people:people",
    "enrich": "photodb.cli_enrich:main",
    "search": "photodb.cli_search:search_command",
    "places": "photodb.cli_places:places",
    "web": "photodb.cli_web:web_command",
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module when that subcommand is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@verbose_option
def photodb() -> None:
    """PhotoDB: index, tag and search your photo library.

    Settings come from the environment and `.env` (DATABASE_URL, PHOTODB_HOME, MODELS_DIR, ...).
    The spec's commands (process-local, scripts/bootstrap_clusters.py, photodb-maintenance) run the
    same code as `photodb index`, `photodb cluster` and `photodb maintenance`.

    \b
    Examples:
      photodb index ~/Pictures             find faces, dates, places and tags in a folder
      photodb cluster                      group every face into identities
      photodb maintenance weekly           keep clusters and people healthy (cron-friendly)
      photodb prompts list                 the tagging categories and their labels
      photodb prompts add activity skiing  tag photos of skiing from now on
      photodb prompts rebuild              embed every label again with the CLIP model
      photodb enrich ~/Pictures            LLM descriptions and tags (same as enrich-photos)
      photodb search --person Grace --year 1985   find photos (text, people, dates, places, tags)
      photodb places backfill              name the places of photos indexed before
      photodb web                          review people in a browser on 127.0.0.1
    """


def main() -> None:
    photodb()


if __name__ == "__main__":
    main()
