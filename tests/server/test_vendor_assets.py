"""The vendored front-end files: what ``scripts/vendor_assets.py --check`` verifies (every
listed file present with its recorded SHA-256, a licence per package, nothing unlisted),
and the files the pages name are among them."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from helios.server import assets

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "vendor_assets.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_assets", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vendor_assets = load_script()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the vendor folder to damage."""
    return Path(shutil.copytree(assets.STATIC_DIR / "vendor", tmp_path / "vendor"))


def test_the_shipped_files_match_the_manifest() -> None:
    assert vendor_assets.VENDOR_DIR == assets.STATIC_DIR / "vendor"
    assert vendor_assets.check() == []


def test_each_package_is_pinned_with_a_licence_and_hashes() -> None:
    manifest = vendor_assets.load_manifest(assets.STATIC_DIR / "vendor")
    names = {package["name"]: package for package in manifest["packages"]}
    assert set(names) == {"htmx.org", "uplot", "swagger-ui-dist", "redoc"}
    assert names["swagger-ui-dist"]["licence"] == "Apache-2.0"
    assert names["redoc"]["licence"] == "MIT"
    # as each package.json declares it (htmx's "BSD-0-Clause" is SPDX's 0BSD)
    assert names["htmx.org"]["version"] == "4.0.1"
    assert names["htmx.org"]["licence"] == "BSD-0-Clause"
    assert names["uplot"]["version"] == "1.6.32" and names["uplot"]["licence"] == "MIT"
    for package in manifest["packages"]:
        assert package["integrity"].startswith("sha512-"), package["name"]
        assert all(len(entry["sha256"]) == 64 for entry in package["files"]), package["name"]
        assert any(entry.get("licence") for entry in package["files"]), package["name"]


@pytest.mark.parametrize(
    "path",
    [
        assets.HTMX_JS,
        assets.UPLOT_JS,
        assets.UPLOT_CSS,
        assets.SWAGGER_UI_JS,
        assets.SWAGGER_UI_CSS,
        assets.SWAGGER_UI_FAVICON,
        assets.REDOC_JS,
    ],
)
def test_the_files_pages_name_are_vendored(path: str) -> None:
    assert assets.static_url(path) == f"/static/{path}"
    assert (assets.STATIC_DIR / path).stat().st_size > 0


def test_a_file_changed_by_hand_is_named(copy: Path) -> None:
    (copy / "htmx" / "htmx.min.js").write_text("alert(1)")
    assert vendor_assets.check(copy) == [
        "htmx.org@4.0.1: htmx/htmx.min.js does not match the manifest's sha256"
        " (changed by hand? run scripts/vendor_assets.py to restore it)"
    ]


def test_a_missing_file_an_empty_licence_and_a_stray_file_are_named(copy: Path) -> None:
    (copy / "uplot" / "uPlot.min.css").unlink()
    (copy / "redoc" / "LICENSE").write_text("")
    (copy / "redoc" / "extra.js").write_text("")
    problems = vendor_assets.check(copy)
    assert "uplot@1.6.32: uplot/uPlot.min.css is missing" in problems
    assert any(p.endswith("licence file redoc/LICENSE is empty") for p in problems)
    assert any("redoc/LICENSE does not match" in p for p in problems)
    assert "redoc/extra.js is not in the manifest" in problems
    assert len(problems) == 4, problems


def test_a_package_without_a_licence_is_named(copy: Path) -> None:
    manifest = vendor_assets.load_manifest(copy)
    htmx = manifest["packages"][0]
    htmx["files"] = [entry for entry in htmx["files"] if not entry.get("licence")]
    del htmx["licence"]
    (copy / "htmx" / "LICENSE").unlink()
    vendor_assets.save_manifest(copy, manifest)
    assert vendor_assets.check(copy) == [
        "htmx.org@4.0.1: the manifest names no licence",
        "htmx.org@4.0.1: no licence file listed",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not JSON"),
        ('{"packages": []}', "'packages' must be a non-empty list"),
        ('{"packages": [{"name": "x", "version": "1"}]}', "packages[0]: missing 'directory'"),
        (
            '{"packages": [{"name": "x", "version": "1", "directory": "x",'
            ' "files": [{"path": "../x.js", "from": "x.js"}]}]}',
            "packages[0].files[0]: path '../x.js' leaves",
        ),
    ],
)
def test_a_broken_manifest_is_named(copy: Path, text: str, problem: str) -> None:
    (copy / "manifest.json").write_text(text)
    [found] = vendor_assets.check(copy)
    assert found.startswith(str(copy / "manifest.json")) and problem in found


def test_set_pins_a_new_version_and_trusts_its_tarball_anew(copy: Path) -> None:
    manifest = vendor_assets.load_manifest(copy)
    vendor_assets.set_versions(manifest, ["redoc=9.9.9", "uplot=1.6.32"])
    redoc, uplot = manifest["packages"][3], manifest["packages"][1]
    assert redoc["version"] == "9.9.9" and "integrity" not in redoc
    assert uplot["integrity"].startswith("sha512-")  # unchanged pin, integrity kept
    with pytest.raises(vendor_assets.VendorError, match="--set left-pad=1: expected"):
        vendor_assets.set_versions(manifest, ["left-pad=1"])


def test_the_script_checks_from_the_command_line(copy: Path) -> None:
    ok = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("vendored files ok: ")
    (copy / "htmx" / "htmx.min.js").write_text("")
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--vendor-dir", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: htmx.org@4.0.1: htmx/htmx.min.js does not match")


# -- the download, with npm's registry replaced by tarballs made here -----------------------
class LocalRegistry:
    """Stands in for ``npm pack``: tarballs laid out as npm publishes them, described as
    ``npm pack --json`` describes them."""

    def __init__(self) -> None:
        self.packages: dict[str, dict[str, bytes]] = {}
        self.asked: list[str] = []

    def publish(self, spec: str, files: dict[str, bytes]) -> None:
        self.packages[spec] = files

    def pack(self, spec: str, into: Path) -> dict[str, object]:
        self.asked.append(spec)
        files = self.packages[spec]
        path = into / (spec.replace("@", "-") + ".tgz")
        with tarfile.open(path, "w:gz") as archive:
            for name, data in files.items():
                member = tarfile.TarInfo(f"package/{name}")
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
        digest = base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()
        version = spec.rpartition("@")[2]
        return {"filename": path.name, "integrity": f"sha512-{digest}", "version": version}


def published(script: bytes = b"window.lib = 1") -> dict[str, bytes]:
    return {
        "package.json": b'{"name": "lib", "license": "MIT"}',
        "dist/lib.min.js": script,
        "LICENSE": b"MIT License",
        "README.md": b"not vendored",
    }


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> LocalRegistry:
    local = LocalRegistry()
    monkeypatch.setattr(vendor_assets, "npm_pack", local.pack)
    return local


@pytest.fixture
def pinned(tmp_path: Path) -> Path:
    """A vendor folder whose manifest pins lib@1.0.0, never downloaded yet."""
    folder = tmp_path / "pinned"
    folder.mkdir()
    manifest = {
        "packages": [
            {
                "name": "lib",
                "version": "1.0.0",
                "directory": "lib",
                "files": [
                    {"path": "lib.min.js", "from": "dist/lib.min.js"},
                    {"path": "LICENSE", "from": "LICENSE", "licence": True},
                ],
            }
        ]
    }
    vendor_assets.save_manifest(folder, manifest)
    return folder


def test_a_download_writes_the_listed_files_and_pins_them(
    registry: LocalRegistry, pinned: Path
) -> None:
    registry.publish("lib@1.0.0", published())
    changes = vendor_assets.download(pinned, [])
    assert registry.asked == ["lib@1.0.0"]
    assert changes[0].startswith("lib@1.0.0: pinned tarball sha512-")
    assert sorted(p.name for p in (pinned / "lib").iterdir()) == ["LICENSE", "lib.min.js"]
    assert (pinned / "lib" / "lib.min.js").read_bytes() == b"window.lib = 1"
    [package] = vendor_assets.load_manifest(pinned)["packages"]
    assert package["licence"] == "MIT" and package["integrity"].startswith("sha512-")
    assert package["files"][0]["sha256"] == hashlib.sha256(b"window.lib = 1").hexdigest()
    assert vendor_assets.check(pinned) == []
    assert vendor_assets.download(pinned, []) == []  # the same tarball again: nothing changes


def test_a_different_tarball_for_a_pinned_version_is_refused(
    registry: LocalRegistry, pinned: Path
) -> None:
    registry.publish("lib@1.0.0", published())
    vendor_assets.download(pinned, [])
    registry.publish("lib@1.0.0", published(b"steal(document.cookie)"))
    with pytest.raises(vendor_assets.VendorError, match=r"lib@1\.0\.0: the registry's tarball"):
        vendor_assets.download(pinned, [])
    assert (pinned / "lib" / "lib.min.js").read_bytes() == b"window.lib = 1"
    assert vendor_assets.check(pinned) == []


def test_set_downloads_the_new_version(registry: LocalRegistry, pinned: Path) -> None:
    registry.publish("lib@1.0.0", published())
    registry.publish("lib@1.1.0", published(b"window.lib = 2"))
    vendor_assets.download(pinned, [])
    changes = vendor_assets.download(pinned, ["lib=1.1.0"])
    assert changes[0].startswith("lib@1.1.0: pinned tarball")
    assert "lib@1.1.0: wrote lib/lib.min.js" in changes[1]
    assert vendor_assets.load_manifest(pinned)["packages"][0]["version"] == "1.1.0"
    assert (pinned / "lib" / "lib.min.js").read_bytes() == b"window.lib = 2"


def test_a_file_the_tarball_lacks_is_named(registry: LocalRegistry, pinned: Path) -> None:
    files = published()
    del files["LICENSE"]
    registry.publish("lib@1.0.0", files)
    lacking = r"lib@1\.0\.0: the tarball has no file LICENSE"
    with pytest.raises(vendor_assets.VendorError, match=lacking):
        vendor_assets.download(pinned, [])
