"""The model zoo: entry folders, publishing, cached hash-checked downloads, listing.

Every model here is a tiny_cnn RETDM made in the test; downloads come from a loopback HTTP
server (``http.server`` on 127.0.0.1, an ephemeral port).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from retdm_keras import zoo
from retdm_keras.metrics import METRIC_NAMES, evaluate
from retdm_keras.model import RETDM

NAME = "tiny"
LABELS = ["red", "green", "blue"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")


@pytest.fixture(scope="module")
def entry(tmp_path_factory, images) -> tuple[Path, np.ndarray]:
    """A written entry folder and the predictions of its model on ``images``."""
    model = RETDM(
        3,
        backbone="tiny_cnn",
        image_size=16,
        embed_dim=8,
        label_hidden_units=8,
        label_names=LABELS,
        thresholds=[0.4, 0.5, 0.6],
    )
    scores = model.predict(images, verbose=0)
    metrics = evaluate(np.eye(3, dtype="float32")[[0, 1, 2, 0]], scores)
    folder = zoo.write_entry(
        model,
        tmp_path_factory.mktemp("entry") / NAME,
        metrics=metrics,
        name=NAME,
        dataset="four random images",
        description="A tiny test model.",
        recipe={"name": NAME},
    )
    return folder, scores


def _copy(entry: Path, target: Path) -> Path:
    shutil.copytree(entry, target)
    return target


def _published_registry(entry: Path, tmp_path: Path, base_url: str | None = None) -> Path:
    """A registry holding ``entry`` whose local folder is gone (so files must be fetched)."""
    registry = tmp_path / "zoo" / "registry.json"
    staging = _copy(entry, tmp_path / "staging" / NAME)
    zoo.publish(staging, registry=registry, base_url=base_url)
    shutil.rmtree(staging)
    return registry


class _Server:
    """``http.server`` in a thread serving ``root``; records the requested paths."""

    def __init__(self, root: Path):
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                requests.append(self.path)

        handler = functools.partial(Handler, directory=os.fspath(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(tmp_path, entry, monkeypatch):
    """The entry served as ``<url>/tiny/1/<file>``, with ``RETDM_ZOO_URL`` pointing at it."""
    root = tmp_path / "served"
    _copy(entry[0], root / NAME / "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("RETDM_ZOO_OFFLINE", raising=False)
    running = _Server(root)
    monkeypatch.setenv("RETDM_ZOO_URL", running.url)
    yield running, root
    running.stop()


# --------------------------------------------------------------------------- entries
def test_write_entry_holds_the_preset_files(entry):
    folder, _ = entry
    assert sorted(p.name for p in folder.iterdir()) == sorted(zoo.ENTRY_FILES)  # no temp files
    metadata = json.loads((folder / "metadata.json").read_text())
    for name, info in metadata["files"].items():
        assert info == {"sha256": _sha256(folder / name), "size": (folder / name).stat().st_size}
    assert set(metadata["library"]) >= {"retdm_keras", "keras", "tensorflow"}
    assert metadata["recipe"] == {"name": NAME} and metadata["created"]
    assert list(json.loads((folder / "metrics.json").read_text())) == list(METRIC_NAMES)
    assert json.loads((folder / "labels.json").read_text()) == LABELS
    assert json.loads((folder / "config.json").read_text())["class_name"] == "RETDM"
    card = (folder / "README.md").read_text()
    assert card.startswith(f"# {NAME}") and "mAP" in card and "zoo.load" in card


def test_load_a_local_entry_folder(entry, images):
    folder, scores = entry
    model = zoo.load(folder)
    np.testing.assert_allclose(model.predict(images, verbose=0), scores, atol=1e-6)
    assert model.label_names == LABELS
    assert model.thresholds == pytest.approx([0.4, 0.5, 0.6])


def test_verify_entry_names_modified_and_missing_files(entry, tmp_path):
    folder = _copy(entry[0], tmp_path / "copy")
    (folder / "labels.json").write_text('["a", "b", "c"]\n')
    with pytest.raises(zoo.ZooHashError, match="labels.json"):
        zoo.load(folder)
    (folder / "model.weights.h5").unlink()
    with pytest.raises(zoo.ZooError, match="missing model.weights.h5"):
        zoo.verify_entry(folder)


# --------------------------------------------------------------------------- publish
def test_publish_records_hashes_sizes_and_a_card(entry, tmp_path):
    folder, _ = entry
    registry = tmp_path / "zoo" / "registry.json"
    record = zoo.publish(folder, registry=registry, base_url="https://example.org/zoo/")
    content = json.loads(registry.read_text())
    assert content["base_url"] == "https://example.org/zoo"
    assert content["url_template"] == "{base_url}/{name}/{version}/{file}"
    assert content["models"][NAME]["latest"] == "1"
    stored = content["models"][NAME]["versions"]["1"]
    assert stored == json.loads(json.dumps(record))
    assert sorted(stored["files"]) == sorted(zoo.ENTRY_FILES)
    for name, info in stored["files"].items():
        assert info["sha256"] == _sha256(folder / name)
        assert info["size"] == (folder / name).stat().st_size
    assert list(stored["metrics"]) == list(METRIC_NAMES)
    assert "sha256" in (tmp_path / "zoo" / "cards" / f"{NAME}.md").read_text()
    assert stored["local_dir"] == os.fspath(folder.resolve())  # a user registry: anywhere
    # the same files again: same version; other files: the next one
    assert zoo.publish(folder, registry=registry)["version"] == "1"
    assert zoo.publish(folder, registry=registry, name="tiny-2")["name"] == "tiny-2"


def test_publish_never_overwrites_the_entry_readme_with_the_card(entry, tmp_path):
    registry = tmp_path / "zoo" / "registry.json"
    folder = _copy(entry[0], tmp_path / "zoo" / "cards")  # next to the cards
    readme = (folder / "README.md").read_text()
    zoo.publish(folder, registry=registry)
    assert (folder / "README.md").read_text() == readme
    zoo.verify_entry(folder)  # hashes still match


def test_publish_rejects_a_modified_entry(entry, tmp_path):
    folder = _copy(entry[0], tmp_path / "copy")
    with open(folder / "model.weights.h5", "ab") as fh:
        fh.write(b"extra")
    with pytest.raises(zoo.ZooHashError, match="model.weights.h5"):
        zoo.publish(folder, registry=tmp_path / "registry.json")
    assert not (tmp_path / "registry.json").exists()


# --------------------------------------------------------------------------- downloads
def test_download_then_cache_in_a_fresh_process(entry, tmp_path, server, images):
    running, _ = server
    registry = _published_registry(entry[0], tmp_path)
    cache = tmp_path / "cache"
    model = zoo.load(NAME, cache_dir=cache, registry=registry)
    np.testing.assert_allclose(model.predict(images, verbose=0), entry[1], atol=1e-6)
    assert sorted(p.name for p in (cache / NAME / "1").iterdir()) == sorted(zoo.ENTRY_FILES)
    assert sum(f"/{NAME}/1/" in r for r in running.requests) == len(zoo.ENTRY_FILES)
    running.stop()

    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(
        f"""
        import json, numpy as np
        from retdm_keras import zoo
        model = zoo.load({NAME!r}, cache_dir={os.fspath(cache)!r},
                         registry={os.fspath(registry)!r})
        scores = model.predict(np.load({os.fspath(tmp_path / "images.npy")!r}), verbose=0)
        print(json.dumps(scores.tolist()))
        """
    )
    env = {**os.environ, "RETDM_ZOO_URL": running.url, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    scores = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(scores, entry[1], atol=1e-6)


def test_a_tampered_download_is_an_error_and_is_not_kept(entry, tmp_path, server):
    _, root = server
    registry = _published_registry(entry[0], tmp_path)
    with open(root / NAME / "1" / "model.weights.h5", "ab") as fh:
        fh.write(b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(zoo.ZooHashError, match="model.weights.h5.*sha256"):
        zoo.load(NAME, cache_dir=cache, registry=registry)
    left = sorted(p.name for p in (cache / NAME / "1").iterdir())
    assert "model.weights.h5" not in left
    assert not any(name.startswith(".") for name in left)  # no staging folder left behind


def test_a_corrupted_cache_file_is_fetched_again(entry, tmp_path, server, images):
    registry = _published_registry(entry[0], tmp_path)
    cache = tmp_path / "cache"
    zoo.fetch(NAME, cache_dir=cache, registry=registry)
    (cache / NAME / "1" / "config.json").write_text("{}")
    with pytest.raises(zoo.ZooError, match="offline"):
        zoo.load(NAME, cache_dir=cache, registry=registry, offline=True)
    assert not (cache / NAME / "1" / "config.json").exists()  # never trusted
    model = zoo.load(NAME, cache_dir=cache, registry=registry)
    np.testing.assert_allclose(model.predict(images, verbose=0), entry[1], atol=1e-6)


def test_offline_never_downloads(entry, tmp_path, server, monkeypatch):
    running, _ = server
    registry = _published_registry(entry[0], tmp_path)
    monkeypatch.setenv("RETDM_ZOO_OFFLINE", "1")
    with pytest.raises(zoo.ZooError, match="offline mode is on"):
        zoo.load(NAME, cache_dir=tmp_path / "cache", registry=registry)
    assert running.requests == []


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize("packaged", [True, False])
def test_a_recipe_without_checkpoint_raises_the_honest_message(tmp_path, packaged):
    # the packaged registry's recipe stubs count for a user registry too
    registry = zoo.packaged_registry_path() if packaged else tmp_path / "registry.json"
    with pytest.raises(zoo.NoCheckpointError) as info:
        zoo.load("coco", registry=registry, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "no published checkpoint for 'coco'" in message
    assert "retdm-keras train --recipe coco --out DIR" in message
    assert "retdm-keras publish DIR" in message
    with pytest.raises(zoo.ZooError, match="unknown zoo model 'nope'"):
        zoo.load("nope", registry=registry)


def test_list_models_statuses(entry, tmp_path, server):
    registry = _published_registry(entry[0], tmp_path)  # "tiny": downloadable
    zoo.publish(entry[0], registry=registry, name="tiny-local")  # its folder is here
    content = json.loads(registry.read_text())
    content["models"]["later"] = {"recipe": "later", "dataset": "some images"}  # a stub
    registry.write_text(json.dumps(content))
    cache = tmp_path / "cache"
    rows = zoo.list_models(registry=registry, cache_dir=cache)
    statuses = {row["name"]: row["status"] for row in rows}
    packaged_stubs = {
        "coco": "recipe only",
        "mirflickr25k": "recipe only",
        "nuswide": "recipe only",
    }
    assert statuses == {
        "tiny": "downloadable",
        "tiny-local": "local",
        "later": "recipe only",
        **packaged_stubs,
    }
    assert {row["name"]: row["dataset"] for row in rows}["later"] == "some images"
    zoo.fetch(NAME, cache_dir=cache, registry=registry)
    rows = zoo.list_models(registry=registry, cache_dir=cache)
    assert {row["name"]: row["status"] for row in rows}["tiny"] == "cached"
    table = zoo.format_zoo_table(rows)
    assert table.splitlines()[0].split() == ["name", "version", "status", "mAP", "O-F1", "C-F1",
                                             "dataset"]  # fmt: skip
    assert "recipe only" in table and "cached" in table


def test_a_record_whose_files_are_gone_is_unavailable_not_a_crash(entry, tmp_path):
    registry = _published_registry(entry[0], tmp_path)  # local_dir removed, no base_url
    rows = zoo.list_models(registry=registry, cache_dir=tmp_path / "cache")
    assert {row["name"]: row["status"] for row in rows}[NAME] == "unavailable"
    with pytest.raises(zoo.ZooError, match=r"not cached, nor complete in .*staging.*RETDM_ZOO_URL"):
        zoo.load(NAME, registry=registry, cache_dir=tmp_path / "cache", offline=False)


# --------------------------------------------------------------------------- packaged registry
@pytest.fixture
def packaged(tmp_path, monkeypatch) -> Path:
    """A stand-in for the packaged registry and its entries folder (the real ones untouched)."""
    from retdm_keras.zoo import registry as registry_module

    package = tmp_path / "site-packages" / "retdm_keras" / "zoo"
    package.mkdir(parents=True)
    shutil.copy(registry_module.packaged_registry_path(), package / "registry.json")
    monkeypatch.setattr(
        registry_module, "packaged_registry_path", lambda: package / "registry.json"
    )
    monkeypatch.setattr(registry_module, "packaged_entries_dir", lambda: package / "entries")
    monkeypatch.delenv("RETDM_ZOO_REGISTRY", raising=False)
    return package


def test_publish_into_the_packaged_registry_copies_the_entry_into_the_package(
    entry, tmp_path, packaged, images
):
    staging = _copy(entry[0], tmp_path / "runs" / "zoo" / NAME)  # e.g. a git-ignored folder
    record = zoo.publish(staging)  # the default registry: the packaged one
    assert record["packaged_entry"] == f"{NAME}/1" and "local_dir" not in record
    text = (packaged / "registry.json").read_text()
    assert os.fspath(tmp_path) not in text and f"runs/zoo/{NAME}" not in text
    stored = packaged / "entries" / NAME / "1"
    assert sorted(p.name for p in stored.iterdir()) == sorted(zoo.ENTRY_FILES)
    assert (packaged / "cards" / f"{NAME}.md").is_file()
    shutil.rmtree(staging)
    cache = tmp_path / "cache"
    statuses = {row["name"]: row["status"] for row in zoo.list_models(cache_dir=cache)}
    assert statuses[NAME] == "local" and statuses["coco"] == "recipe only"
    model = zoo.load(NAME, cache_dir=cache, offline=True)
    np.testing.assert_allclose(model.predict(images, verbose=0), entry[1], atol=1e-6)
    # the same files again: the same version, still inside the package
    assert zoo.publish(stored)["packaged_entry"] == f"{NAME}/1"


@pytest.mark.parametrize("name", ["../outside", "a/b", ".hidden"])
def test_the_packaged_registry_refuses_names_that_leave_the_package(entry, packaged, name):
    with pytest.raises(zoo.ZooError, match="cannot be a folder of the packaged registry"):
        zoo.publish(entry[0], name=name)
    assert not (packaged / "entries").exists()


def test_a_packaged_entry_path_may_not_leave_the_package(tmp_path, packaged):
    content = json.loads((packaged / "registry.json").read_text())
    record = {"name": NAME, "version": "1", "files": {}, "packaged_entry": "../../elsewhere"}
    content["models"][NAME] = {"latest": "1", "versions": {"1": record}}
    (packaged / "registry.json").write_text(json.dumps(content))
    with pytest.raises(zoo.ZooError, match="must stay inside the package"):
        zoo.fetch(NAME, cache_dir=tmp_path / "cache")


def test_the_package_data_is_there():
    """The registry, the model cards and the built-in recipes are package data, declared in
    setup.cfg so that a wheel carries them (the wheel itself is built in another test)."""
    import configparser
    import fnmatch
    from importlib import resources

    root = resources.files("retdm_keras")
    shipped = [
        root / "zoo" / "registry.json",
        root / "zoo" / "cards" / "scene.md",
        root / "zoo" / "cards" / "scene-features.md",
        *(root / "recipes" / "builtin").iterdir(),
    ]
    assert all(item.is_file() for item in shipped)
    assert len([p for p in shipped if p.name.endswith(".yaml")]) >= 5
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    patterns = config["options.package_data"]["retdm_keras"].split()
    for item in shipped:
        relative = Path(os.fspath(item)).relative_to(Path(os.fspath(root))).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} not declared"
    for example in ("zoo/entries/x/1/model.weights.h5", "zoo/entries/x/1/metadata.json"):
        assert any(fnmatch.fnmatch(example, p) for p in patterns), f"{example} not declared"


def test_the_packaged_registry_is_portable_and_its_entries_complete():
    """No absolute path and no folder outside the package in the shipped registry; every
    published version's files are in the package with their recorded sha256; sizes within
    the issue's limits (20 MB a file, 30 MB in all)."""
    content = zoo.read_registry(zoo.packaged_registry_path())
    text = zoo.packaged_registry_path().read_text()
    assert "local_dir" not in text and "/work" not in text and "runs/" not in text
    total = 0
    published = []
    for name, model in content["models"].items():
        for version, record in model.get("versions", {}).items():
            folder = zoo.packaged_entries_dir() / record["packaged_entry"]
            assert record["packaged_entry"] == f"{name}/{version}"
            for file, info in record["files"].items():
                path = folder / file
                assert path.is_file() and zoo.entry.file_matches(path, info), (name, file)
                assert info["size"] <= 20 * 2**20
                total += info["size"]
            published.append(name)
    assert {"scene", "scene-features"} <= set(published)
    assert total <= 30 * 2**20
