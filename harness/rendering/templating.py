"""The jinja2 environment (templates shipped in this package) and the generator string."""

from __future__ import annotations

from functools import cache
from importlib.metadata import version

import jinja2

from harness import __version__
from harness.rendering.fmt import md_cell


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.rendering", "templates"),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "html"),
            disabled_extensions=("md.j2",),
            default_for_string=True,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md_cell"] = md_cell
    return env


def versions() -> dict[str, str]:
    """What writes the HTML here: the harness, jinja2 and matplotlib versions."""
    return {
        "harness": __version__,
        "jinja2": version("jinja2"),
        "matplotlib": version("matplotlib"),
    }


def generator() -> str:
    """The content of report.html's `<meta name="generator">`."""
    return "; ".join(f"{name} {v}" for name, v in versions().items())
