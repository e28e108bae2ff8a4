"""Dataset manifests: what each dataset is, where its files come from, and their hashes.

One YAML file per dataset lives in the repository's ``data_manifests/`` folder (the
single source of truth). Each manifest has ``id``, ``title``, ``description``,
``license``, ``citation`` (BibTeX), ``loader`` (module path or null) and ``files``,
a list of ``{path, sha256, size, url, note?}`` with ``path`` relative to the dataset
folder (``<LHP_DATA_MIRROR>/<id>/<path>``).
"""
from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from lhp_core.registry import Registry

# libyaml's C loader parses the 880-file pythia_evals manifest ~10x faster than pure Python.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_REQUIRED = ("id", "title", "description", "license", "citation", "loader", "files")
_FILE_REQUIRED = ("path", "sha256", "size", "url")


class ManifestError(ValueError):
    """A manifest YAML file is malformed."""


class UnknownDataset(KeyError):
    """No manifest has this id."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class UnknownFile(KeyError):
    """The dataset's manifest does not list this file."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int
    url: str | None
    note: str | None = None


@dataclass(frozen=True)
class Manifest:
    id: str
    title: str
    description: str
    license: str
    citation: str
    loader: str | None
    files: tuple[FileEntry, ...] = field(default_factory=tuple)
    source: Path | None = None

    @property
    def size(self) -> int:
        """Total bytes of all listed files."""
        return sum(f.size for f in self.files)

    def file(self, relpath: str) -> FileEntry:
        """The entry for ``relpath``; raises :class:`UnknownFile` listing valid paths."""
        for entry in self.files:
            if entry.path == relpath:
                return entry
        paths = [f.path for f in self.files]
        shown = ", ".join(paths[:30]) + (f", ... ({len(paths)} files)" if len(paths) > 30 else "")
        raise UnknownFile(f"dataset {self.id!r} has no file {relpath!r}; valid paths: {shown}")


def manifest_dir() -> Path:
    """Folder holding the manifest YAMLs.

    The repository copy (``<repo>/data_manifests``) is preferred. ``lhp_core/manifests`` is
    a symlink to it, which setuptools follows when building a wheel, so an installed
    package finds the same files as package data (one source of truth).
    """
    repo = Path(__file__).resolve().parents[2] / "data_manifests"
    if repo.is_dir():
        return repo
    packaged = Path(str(importlib.resources.files("lhp_core") / "manifests"))
    if packaged.is_dir():
        return packaged
    raise FileNotFoundError(
        f"no dataset manifests found: expected {repo} (source checkout) or {packaged} (installed package data)"
    )


def parse(path: Path) -> Manifest:
    """Read and validate one manifest YAML; raises :class:`ManifestError` naming the file and field."""
    doc = yaml.load(Path(path).read_text(), Loader=_Loader)
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: expected a mapping at top level")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise ManifestError(f"{path}: missing field(s) {missing}; every manifest needs {list(_REQUIRED)}")
    if doc["id"] != Path(path).stem:
        raise ManifestError(f"{path}: id {doc['id']!r} must equal the file name {Path(path).stem!r}")
    files = []
    seen: set[str] = set()
    for i, f in enumerate(doc["files"] or []):
        lacking = [k for k in _FILE_REQUIRED if k not in f]
        if lacking:
            raise ManifestError(f"{path}: files[{i}] lacks {lacking}; each file needs {list(_FILE_REQUIRED)}")
        sha = str(f["sha256"]).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ManifestError(f"{path}: files[{i}] ({f['path']}) sha256 is not 64 hex digits")
        if f["path"] in seen:
            raise ManifestError(f"{path}: file {f['path']!r} listed twice")
        seen.add(f["path"])
        files.append(FileEntry(str(f["path"]), sha, int(f["size"]), f["url"], f.get("note")))
    return Manifest(
        id=doc["id"],
        title=doc["title"],
        description=doc["description"],
        license=doc["license"],
        citation=doc["citation"],
        loader=doc["loader"],
        files=tuple(files),
        source=Path(path),
    )


@lru_cache(maxsize=1)
def registry() -> Registry[Manifest]:
    """Registry of every manifest in :func:`manifest_dir`.

    Ids come from file names; each YAML is parsed (and validated) on first use only, and
    then kept, so loading one dataset does not pay for parsing the others.
    """
    reg: Registry[Manifest] = Registry("dataset")
    for path in sorted(manifest_dir().glob("*.yaml")):
        reg.register(path.stem, lru_cache(maxsize=1)(lambda p=path: parse(p)))
    return reg


def list_datasets() -> list[str]:
    """Ids of all known datasets, sorted."""
    return registry().names()


def get_manifest(dataset_id: str) -> Manifest:
    """The manifest for ``dataset_id``; raises :class:`UnknownDataset` listing valid ids."""
    reg = registry()
    if dataset_id not in reg:
        raise UnknownDataset(f"unknown dataset {dataset_id!r}; valid datasets: {', '.join(reg.names())}")
    return reg.get(dataset_id)
