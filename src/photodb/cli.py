"""photodb: the command group of PhotoDB's tools. Each area adds its subcommands here."""

from __future__ import annotations

import click

from photodb.cli_cluster import main as cluster
from photodb.cli_enrich import main as enrich
from photodb.cli_local import main as index
from photodb.cli_maintenance import main as maintenance
from photodb.cli_people import people
from photodb.cli_places import places
from photodb.cli_prompts import prompts
from photodb.cli_search import search_command
from photodb.cli_web import web_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


photodb.add_command(index, "index")
photodb.add_command(cluster, "cluster")
photodb.add_command(maintenance, "maintenance")
photodb.add_command(prompts)
photodb.add_command(people)
photodb.add_command(enrich, "enrich")
photodb.add_command(search_command, "search")
photodb.add_command(places)
photodb.add_command(web_command)


def main() -> None:
    photodb()


if __name__ == "__main__":
    main()
