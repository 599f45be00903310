"""``retdm-keras publish``: record a zoo entry folder in the registry."""

from __future__ import annotations

import argparse

from retdm_keras import zoo
from retdm_keras.cli.common import PROG, DefaultsFormatter


def cmd_publish(args: argparse.Namespace) -> int:
    """``retdm-keras publish``: check a zoo entry folder and record it in the registry."""
    record = zoo.publish(
        args.entry,
        registry=args.registry,
        name=args.name,
        version=args.version,
        base_url=args.base_url,
    )
    registry = args.registry or zoo.default_registry_path()
    print(f"{PROG}: published {record['name']} version {record['version']} in {registry}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish",
        help="record a zoo entry folder in the model-zoo registry",
        description=(
            "Check a zoo entry folder (from 'train --recipe': files complete, hashes equal to "
            "its metadata.json, the model loads) and add it to the registry with the sha256 "
            "of every file."
        ),
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("entry", metavar="ENTRY_DIR", help="zoo entry folder")
    p.add_argument(
        "--registry",
        help="registry file, created if missing (default: $RETDM_ZOO_REGISTRY, else the "
        "packaged registry, into which the entry is copied)",
    )
    p.add_argument("--name", help="zoo name (default: the entry's)")
    p.add_argument(
        "--version",
        help="version (default: the one holding these exact files, else the next integer)",
    )
    p.add_argument(
        "--base-url",
        help="set the registry's download URL: files are then at BASE_URL/NAME/VERSION/FILE",
    )
    p.set_defaults(func=cmd_publish)
