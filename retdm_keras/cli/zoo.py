"""``retdm-keras zoo list|fetch``: the model zoo's checkpoints and recipes."""

from __future__ import annotations

import argparse

from retdm_keras import zoo


def cmd_zoo_list(args: argparse.Namespace) -> int:
    """``retdm-keras zoo list``: the published checkpoints and the recipes without one."""
    print(zoo.format_zoo_table(zoo.list_models(registry=args.registry, cache_dir=args.cache_dir)))
    return 0


def cmd_zoo_fetch(args: argparse.Namespace) -> int:
    """``retdm-keras zoo fetch``: a registry model's files, hash-checked, into the cache."""
    folder = zoo.fetch(
        args.name,
        cache_dir=args.cache_dir,
        offline=True if args.offline else None,
        registry=args.registry,
    )
    print(folder)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "zoo",
        help="list or fetch model-zoo checkpoints",
        description="The model zoo: published checkpoints and the recipes that make them.",
    )
    zoo_sub = p.add_subparsers(dest="zoo_command", metavar="{list,fetch}")
    zoo_sub.required = True
    registry_help = "registry file (default: $RETDM_ZOO_REGISTRY, else the packaged one)"
    cache_help = "cache folder (default: $KERAS_HOME/retdm_zoo)"
    listing = zoo_sub.add_parser(
        "list",
        help="the published checkpoints (with their status and test metrics) and the recipes",
        description="One row per zoo name: status cached, local, downloadable, unavailable or "
        "'recipe only', and the test mAP, O-F1 and C-F1.",
    )
    listing.add_argument("--registry", help=registry_help)
    listing.add_argument("--cache-dir", help=cache_help)
    listing.set_defaults(func=cmd_zoo_list)
    fetch = zoo_sub.add_parser(
        "fetch",
        help="put a checkpoint's files in the cache and print the folder",
        description="Copy (from the registered entry folder) or download a checkpoint's files "
        "into the cache, each checked against the registry's sha256; prints the folder.",
    )
    fetch.add_argument("name", metavar="NAME", help="zoo name, or NAME@VERSION")
    fetch.add_argument("--registry", help=registry_help)
    fetch.add_argument("--cache-dir", help=cache_help)
    fetch.add_argument(
        "--offline", action="store_true", help="never download (also: RETDM_ZOO_OFFLINE=1)"
    )
    fetch.set_defaults(func=cmd_zoo_fetch)
