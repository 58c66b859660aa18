"""photodb prompts: the categories and labels scene_analysis tags photos and faces with."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from photodb.cli_support import open_for_collection, settings_or_exit, verbose_option
from photodb.database.prompt_repository import PromptRepository
from photodb.prompts import NAME_PATTERN, RESERVED_CATEGORIES, CategorySpec, PromptFileError, load_prompt_file
from photodb.prompts.embedding import build_prompt_embeddings, ensure_default_prompts

#: Texts made from a label given without --text ("skiing" -> "a photo of skiing", ...).
LABEL_TEMPLATES = ("a photo of {}", "a picture of {}", "a photo showing {}")


@click.group()
@verbose_option
def prompts() -> None:
    """Tagging prompts: categories of labels that scene_analysis matches photos and faces against.

    Each category targets whole photos (scene) or face crops (face) and picks one label (single:
    the best, if its confidence reaches min-confidence) or several (multi: every label that
    reaches it). Confidences are a softmax over the category's labels, so a threshold must sit
    above 1 / (number of labels). A label's texts are embedded with the CLIP text encoder and
    averaged; scene_analysis embeds new or edited labels itself, so `rebuild` is only needed to
    start over. The shipped set (mood, setting, activity, time, weather, social; emotion,
    expression, gaze) is stored on first use.
    """


@prompts.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--labels/--no-labels", default=True, show_default=True, help="show each category's labels")
def list_command(as_json: bool, labels: bool) -> None:
    """Show the categories, their settings, labels and which CLIP models have embedded them."""
    with open_for_collection(None) as (db, _):
        repository = PromptRepository(db)
        ensure_default_prompts(repository)
        rows = repository.list_categories()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "target": r.target,
                        "selection_mode": r.selection_mode,
                        "min_confidence": r.min_confidence,
                        "enabled": r.enabled,
                        "description": r.description,
                        "labels": list(r.labels),
                        "embedded": r.embedded,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    table = Table("category", "target", "mode", "min conf", "labels", "embedded (model: labels)")
    for r in rows:
        name = r.name if r.enabled else f"{r.name} (disabled)"
        shown = ", ".join(r.labels) if labels else str(len(r.labels))
        embedded = ", ".join(f"{model}: {n}/{len(r.labels)}" for model, n in sorted(r.embedded.items())) or "-"
        table.add_row(name, r.target, r.selection_mode, f"{r.min_confidence:.2f}", shown, embedded)
    Console().print(table)


@prompts.command("add")
@click.argument("category", required=False)
@click.argument("label", required=False)
@click.option("-t", "--text", "texts", multiple=True, help="a text for LABEL, used as written (repeatable)")
@click.option("--target", type=click.Choice(["scene", "face"]), help="what a new category tags [scene]")
@click.option(
    "--mode",
    type=click.Choice(["single", "multi"]),
    help="best label only, or every label above the threshold [single]",
)
@click.option("--min-confidence", type=click.FloatRange(0, 1), help="smallest confidence that makes a tag [0.3]")
@click.option("--description", help="what the category is for")
@click.option("--enable/--disable", "enabled", default=None, help="switch a category on or off")
@click.option(
    "--file",
    "prompt_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="add or update every category of a prompt file (the format of photodb/prompts/default_prompts.json)",
)
def add_command(
    category: str | None,
    label: str | None,
    texts: tuple[str, ...],
    target: str | None,
    mode: str | None,
    min_confidence: float | None,
    description: str | None,
    enabled: bool | None,
    prompt_file: Path | None,
) -> None:
    """Add a label to CATEGORY (created if new), change a category's settings, or load a file.

    \b
    Examples:
      photodb prompts add activity skiing
      photodb prompts add activity skiing -t "people skiing down a slope" -t "a ski run"
      photodb prompts add vehicle car --target scene --mode multi --min-confidence 0.4
      photodb prompts add weather --min-confidence 0.5
      photodb prompts add gaze --disable
      photodb prompts add --file my_prompts.json

    Without --text a label's texts are "a photo of LABEL" and two more wordings. Existing
    labels get the new texts; running stages pick changes up within seconds.
    """
    if prompt_file is not None:
        if category or label:
            raise click.UsageError("give either --file or CATEGORY [LABEL], not both")
        try:
            categories = load_prompt_file(prompt_file)
        except PromptFileError as error:
            raise click.ClickException(str(error)) from error
        with open_for_collection(None) as (db, _):
            repository = PromptRepository(db)
            ensure_default_prompts(repository)
            count = repository.save_categories(categories)
        click.echo(f"saved {len(categories)} categories, {count} labels from {prompt_file}")
        return
    if not category:
        raise click.UsageError("give CATEGORY [LABEL] or --file PATH")
    _check_name(category)
    if label is None and texts:
        raise click.UsageError("--text needs a LABEL")
    with open_for_collection(None) as (db, _):
        repository = PromptRepository(db)
        ensure_default_prompts(repository)
        existed = repository.update_category(
            category,
            target=target,
            selection_mode=mode,
            min_confidence=min_confidence,
            description=description,
            enabled=enabled,
        )
        if label is None:
            if not existed:
                raise click.ClickException(f"no category {category!r}: give a LABEL to create it")
            click.echo(f"updated category {category}")
            return
        label_texts = texts or tuple(t.format(label.replace("_", " ")) for t in LABEL_TEMPLATES)
        if not existed:
            spec = CategorySpec(
                category, target or "scene", mode or "single", 0.3 if min_confidence is None else min_confidence,
                description, {label: label_texts},
            )  # fmt: skip
            repository.save_categories([spec])
            click.echo(f"created category {category} ({spec.target}, {spec.selection_mode}) with label {label}")
        else:
            repository.save_label(category, label, label_texts)
            click.echo(f"saved label {label} of {category} ({len(label_texts)} texts)")


@prompts.command("rebuild")
@click.option(
    "--all/--missing", "everything", default=True, show_default=True, help="every label, or only new and edited ones"
)
def rebuild_command(everything: bool) -> None:
    """Embed the labels' texts with the configured CLIP model (CLIP_MODEL_PATH) and store them.

    scene_analysis embeds missing labels on its own; rebuild after replacing the model file
    under the same name, or to check that the model loads.
    """
    from photodb.ml.base import ModelUnavailable
    from photodb.ml.clip import create_clip_model

    settings = settings_or_exit()
    model = create_clip_model(settings)
    try:
        model.load()
    except ModelUnavailable as error:
        raise click.ClickException(str(error)) from error
    with open_for_collection(None) as (db, _):
        repository = PromptRepository(db)
        ensure_default_prompts(repository)
        with Progress(TextColumn("embedding labels"), BarColumn(), MofNCompleteColumn(), transient=True) as bar:
            task = bar.add_task("embed", total=None)
            count = build_prompt_embeddings(
                repository,
                model,
                everything=everything,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    click.echo(f"embedded {count} labels with {model.model_name}")


def _check_name(category: str) -> None:
    if not re.match(NAME_PATTERN, category):
        raise click.BadParameter("lower-case letters, digits and _, starting with a letter", param_hint="CATEGORY")
    if category in RESERVED_CATEGORIES:
        raise click.BadParameter(f"{category!r} is reserved for the stage's own tags", param_hint="CATEGORY")
