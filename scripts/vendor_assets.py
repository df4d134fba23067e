#!/usr/bin/env python3
"""The front-end files ``helios serve`` ships (htmx and uPlot for the dashboard, Swagger UI
and ReDoc for ``/docs`` and ``/redoc``), vendored from the npm registry: no Node build step.

``src/helios/server/static/vendor/manifest.json`` pins each package (name, version, the
tarball's integrity as npm reports it) and lists the files taken from it, each with its
SHA-256; the licence files travel with them.

    python scripts/vendor_assets.py              # download the pinned tarballs, write the files
    python scripts/vendor_assets.py --set redoc=2.5.2   # pin another version, then download
    python scripts/vendor_assets.py --check      # the files on disk against the manifest

The download uses ``npm pack`` (the registry client; it verifies the tarball against the
registry's integrity and runs nothing from the package). A tarball whose integrity differs
from the one pinned for the same version is refused. ``--check`` needs no network: every
listed file exists and hashes as recorded, each package has a non-empty licence file, and
nothing unlisted lies in the vendor folder. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENDOR_DIR = ROOT / "src" / "helios" / "server" / "static" / "vendor"
MANIFEST_NAME = "manifest.json"


class VendorError(Exception):
    """A download or a manifest that cannot be trusted; the message says which and why."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(vendor_dir: Path) -> dict[str, Any]:
    path = vendor_dir / MANIFEST_NAME
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VendorError(f"{path}: no manifest") from None
    except json.JSONDecodeError as exc:
        raise VendorError(f"{path}: not JSON ({exc})") from None
    packages = manifest.get("packages") if isinstance(manifest, dict) else None
    if not isinstance(packages, list) or not packages:
        raise VendorError(f"{path}: 'packages' must be a non-empty list")
    for index, package in enumerate(packages):
        where = f"{path}: packages[{index}]"
        if not isinstance(package, dict):
            raise VendorError(f"{where}: expected an object")
        for key in ("name", "version", "directory", "files"):
            if key not in package:
                raise VendorError(f"{where}: missing '{key}'")
        if not isinstance(package["files"], list) or not package["files"]:
            raise VendorError(f"{where} ({package['name']}): 'files' must be a non-empty list")
        for number, entry in enumerate(package["files"]):
            if not isinstance(entry, dict) or "path" not in entry or "from" not in entry:
                raise VendorError(f"{where}.files[{number}]: needs 'path' and 'from'")
            if Path(entry["path"]).is_absolute() or ".." in Path(entry["path"]).parts:
                raise VendorError(f"{where}.files[{number}]: path {entry['path']!r} leaves")
    return manifest


KEY_ORDER = ("name", "version", "licence", "integrity", "directory", "files")


def save_manifest(vendor_dir: Path, manifest: dict[str, Any]) -> None:
    for index, package in enumerate(manifest["packages"]):
        ordered = {key: package[key] for key in KEY_ORDER if key in package}
        manifest["packages"][index] = {**ordered, **package}
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (vendor_dir / MANIFEST_NAME).write_text(text, encoding="utf-8")


# -- --check ----------------------------------------------------------------------------------
def check(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """What is wrong with the vendored files, one sentence each (empty: all is well)."""
    try:
        manifest = load_manifest(vendor_dir)
    except VendorError as exc:
        return [str(exc)]
    problems: list[str] = []
    listed = {vendor_dir / MANIFEST_NAME}
    for package in manifest["packages"]:
        name = f"{package['name']}@{package['version']}"
        folder = vendor_dir / package["directory"]
        if not package.get("licence"):
            problems.append(f"{name}: the manifest names no licence")
        licences = [entry for entry in package["files"] if entry.get("licence")]
        if not licences:
            problems.append(f"{name}: no licence file listed")
        for entry in package["files"]:
            path = folder / entry["path"]
            listed.add(path)
            shown = path.relative_to(vendor_dir)
            if not path.is_file():
                problems.append(f"{name}: {shown} is missing")
                continue
            if not entry.get("sha256"):
                problems.append(f"{name}: {shown} has no sha256 in the manifest")
            elif sha256_of(path) != entry["sha256"]:
                problems.append(
                    f"{name}: {shown} does not match the manifest's sha256"
                    " (changed by hand? run scripts/vendor_assets.py to restore it)"
                )
            if entry.get("licence") and not path.read_text(encoding="utf-8").strip():
                problems.append(f"{name}: licence file {shown} is empty")
    for path in sorted(vendor_dir.rglob("*")):
        if path.is_file() and path not in listed:
            problems.append(f"{path.relative_to(vendor_dir)} is not in the manifest")
    return problems


# -- download ---------------------------------------------------------------------------------
def npm_pack(spec: str, into: Path) -> dict[str, Any]:
    """``npm pack spec`` into ``into``: npm's own description of the tarball."""
    command = ["npm", "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(into)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=into)
    except FileNotFoundError:
        raise VendorError("npm not found: install Node.js and npm to download") from None
    if done.returncode != 0:
        raise VendorError(f"npm pack {spec} failed: {done.stderr.strip()[-2000:]}")
    described = json.loads(done.stdout)
    return dict(described[0])


def vendor(package: dict[str, Any], vendor_dir: Path, scratch: Path) -> list[str]:
    """Download one pinned package and write its files; what changed, one line each."""
    spec = f"{package['name']}@{package['version']}"
    tarball = npm_pack(spec, scratch)
    if tarball.get("version") != package["version"]:
        raise VendorError(f"{spec}: npm packed version {tarball.get('version')}")
    pinned = package.get("integrity")
    if pinned and tarball["integrity"] != pinned:
        raise VendorError(
            f"{spec}: the registry's tarball ({tarball['integrity']}) is not the one pinned"
            f" ({pinned}); a published version never changes, so this one is refused"
        )
    changes = [] if pinned else [f"{spec}: pinned tarball {tarball['integrity']}"]
    package["integrity"] = tarball["integrity"]
    folder = vendor_dir / package["directory"]
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(scratch / tarball["filename"]) as archive:
        meta = _member(archive, "package.json", spec)
        package["licence"] = json.loads(meta).get("license", package.get("licence"))
        for entry in package["files"]:
            data = _member(archive, entry["from"], spec)
            target = folder / entry["path"]
            digest = hashlib.sha256(data).hexdigest()
            if entry.get("sha256") != digest or not target.is_file():
                changes.append(f"{spec}: wrote {target.relative_to(vendor_dir)} ({digest[:12]})")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            entry["sha256"] = digest
    return changes


def _member(archive: tarfile.TarFile, name: str, spec: str) -> bytes:
    try:
        member = archive.extractfile(f"package/{name}")
    except KeyError:
        member = None
    if member is None:
        raise VendorError(f"{spec}: the tarball has no file {name}")
    return member.read()


def set_versions(manifest: dict[str, Any], pins: list[str]) -> None:
    """``NAME=VERSION`` pins: the new version's tarball is trusted on first download."""
    by_name = {package["name"]: package for package in manifest["packages"]}
    for pin in pins:
        name, _, version = pin.partition("=")
        if name not in by_name or not version:
            raise VendorError(
                f"--set {pin}: expected NAME=VERSION with NAME one of {sorted(by_name)}"
            )
        if by_name[name]["version"] != version:
            by_name[name]["version"] = version
            by_name[name].pop("integrity", None)


def download(vendor_dir: Path, pins: list[str]) -> list[str]:
    manifest = load_manifest(vendor_dir)
    set_versions(manifest, pins)
    changes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="helios-vendor-") as scratch:
        for package in manifest["packages"]:
            changes += vendor(package, vendor_dir, Path(scratch))
    save_manifest(vendor_dir, manifest)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="verify the files, no network")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VERSION", help="pin another version"
    )
    parser.add_argument("--vendor-dir", type=Path, default=VENDOR_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.vendor_dir)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if not problems:
            count = sum(len(p["files"]) for p in load_manifest(args.vendor_dir)["packages"])
            print(f"vendored files ok: {count} files match {MANIFEST_NAME}")
        return 1 if problems else 0
    try:
        changes = download(args.vendor_dir, args.set)
    except VendorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(changes) if changes else "vendored files unchanged")
    problems = check(args.vendor_dir)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
