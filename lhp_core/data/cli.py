"""``lhp data``: list the datasets in ``data_manifests/`` and verify local copies.

``lhp data list``            one row per dataset: id, title, license, files, size
``lhp data verify [ID]``     every file of one dataset (or all): ok / missing / hash mismatch;
                             exit status 1 if any file is not ok (``--problems``: only those)
``lhp data fetch [ID]``      make every file of one dataset (or all) available locally: files
                             not in the mirror are downloaded into the cache and verified
"""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from lhp_core import config, progress
from lhp_core.data.fetch import DataHashMismatch, DataUnavailable, fetch, verify
from lhp_core.data.manifests import UnknownDataset, get_manifest, list_datasets


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list known datasets")
    p = sub.add_parser("verify", help="check local files against the manifests' sha256 (no download)")
    p.add_argument("dataset", nargs="?", default=None, help="dataset id (default: all)")
    p.add_argument("--problems", action="store_true", help="list only files that are not ok (plus the summary)")
    p = sub.add_parser("fetch", help="download files missing from the mirror into LHP_CACHE (verified)")
    p.add_argument("dataset", nargs="?", default=None, help="dataset id (default: all)")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _list(console: Console) -> int:
    table = Table(title="lhp datasets (data_manifests/)")
    for col in ("id", "title", "license", "files", "size"):
        table.add_column(col, justify="right" if col in ("files", "size") else "left")
    for dataset_id in list_datasets():
        m = get_manifest(dataset_id)
        table.add_row(m.id, m.title, m.license, str(len(m.files)), _human(m.size))
    console.print(table)
    return 0


def _verify(console: Console, dataset: str | None, problems_only: bool) -> int:
    df = verify(dataset)
    mirror = config.data_mirror()
    console.print(f"LHP_DATA_MIRROR={mirror or '(unset)'}   cache={config.cache_dir() / 'data'}")
    bad = df[df.status != "ok"]
    shown = bad if problems_only else df
    table = Table(title=f"{len(df)} files checked" + (f", {len(bad)} not ok shown" if problems_only else ""))
    for col in ("dataset", "path", "status", "expected", "actual"):
        table.add_column(col, overflow="fold")
    style = {"ok": "green", "missing": "yellow", "hash mismatch": "red"}
    for row in shown.itertuples():
        table.add_row(
            row.dataset,
            row.path,
            f"[{style[row.status]}]{row.status}[/]",
            row.expected[:12],
            row.actual[:12] if row.actual else "",
        )
    console.print(table)
    counts = df.status.value_counts().to_dict()
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if len(bad):
        console.print(
            "Fix: point LHP_DATA_MIRROR at a folder laid out as <mirror>/<dataset>/<path>, or delete bad cache "
            "files so that they are downloaded again."
        )
    return 1 if len(bad) else 0


def _fetch(console: Console, dataset: str | None) -> int:
    ids = [dataset] if dataset is not None else list_datasets()
    pairs = [(i, f.path) for i in ids for f in get_manifest(i).files]
    failed: list[str] = []
    for dataset_id, relpath in progress.bar(pairs, desc="fetching data files", unit="file"):
        try:
            fetch(dataset_id, relpath)
        except (DataUnavailable, DataHashMismatch) as exc:
            failed.append(f"{dataset_id}/{relpath}: {str(exc).splitlines()[0]}")
    for line in failed:
        console.print(f"[red]failed[/] {line}")
    console.print(f"{len(pairs) - len(failed)} of {len(pairs)} files available")
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    console = Console()
    if args.action == "list":
        return _list(console)
    try:
        if args.action == "fetch":
            return _fetch(console, args.dataset)
        return _verify(console, args.dataset, args.problems)
    except UnknownDataset as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
