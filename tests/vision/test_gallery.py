"""FAISS gallery: one best hit per person, removal, input checks, atomic and authenticated save/load keyed by
model_id."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import deterministic_vector, noisy
from vision.engines.base import FaceEngine
from vision.errors import GalleryAuthError, GalleryBindingError, GalleryError, GalleryUnsealedError
from vision.gallery import Gallery
from vision.gallery_files import GallerySeal, map_path, reseal_map
from vision.types import Image

DIM = 128
MODEL = "fake-embedder"
SEAL = GallerySeal(bytes(range(32)), "epoch-1")


def _v(key: str) -> np.ndarray:
    return deterministic_vector(key, DIM)


def _gallery(*persons: str) -> Gallery:
    gallery = Gallery(MODEL, DIM, seal=SEAL)
    for person in persons:
        gallery.add(person, _v(person)[None, :])
    return gallery


def test_search_ranks_the_enrolled_person_first_with_the_right_margin() -> None:
    # given three persons with one embedding each
    gallery = _gallery("alice", "bob", "carol")
    # when a probe close to alice (cosine ~0.9) is searched
    probe = noisy(_v("alice"), 0.9, seed=1)
    [result] = gallery.search(probe[None, :])
    # then alice ranks first, the hits are best-first, and the margin is over the runner-up
    assert result.best is not None and result.best.person_id == "alice"
    assert result.best.score == pytest.approx(float(probe @ _v("alice")), abs=1e-5)
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert {h.person_id for h in result.hits} == {"alice", "bob", "carol"}
    assert result.margin == pytest.approx(scores[0] - max(scores[1], 0.0), abs=1e-6)
    assert result.margin > 0.5  # unrelated random 128-d vectors sit near cosine 0


def test_several_probes_in_one_call_get_one_result_each_in_order() -> None:
    # given three persons, when a batch of probes for carol then alice is searched
    gallery = _gallery("alice", "bob", "carol")
    probes = np.stack([noisy(_v("carol"), 0.8, seed=2), noisy(_v("alice"), 0.8, seed=3)])
    results = gallery.search(probes)
    # then the answers come back in probe order
    assert [r.best.person_id for r in results if r.best] == ["carol", "alice"]


def test_several_embeddings_per_person_give_one_hit_per_person_at_its_best() -> None:
    # given alice with three embeddings at different distances from the probe, and bob with two
    base = _v("alice")
    gallery = Gallery(MODEL, DIM)
    ids = gallery.add("alice", np.stack([noisy(base, c, seed=i) for i, c in enumerate((0.6, 0.95, 0.8))]))
    gallery.add("bob", np.stack([_v("bob"), noisy(_v("bob"), 0.9, seed=7)]))
    assert ids == [1, 2, 3] and len(gallery) == 5 and gallery.persons == {"alice", "bob"}
    # when the base vector is searched
    [result] = gallery.search(base[None, :])
    # then each person appears once, alice with her best (cosine 0.95) score
    assert [h.person_id for h in result.hits] == ["alice", "bob"]
    assert result.hits[0].score == pytest.approx(0.95, abs=1e-4)


@pytest.mark.parametrize(("k", "expected"), [(0, 0), (1, 1), (2, 2), (10, 4)])
def test_k_caps_the_number_of_persons(k: int, expected: int) -> None:
    # given four persons, when searched with k, then at most k persons come back, "a" first
    [result] = _gallery("a", "b", "c", "d").search(_v("a")[None, :], k=k)
    assert len(result.hits) == expected
    assert [h.person_id for h in result.hits][:1] == ["a"][:expected]


def test_remove_drops_every_vector_of_the_person() -> None:
    # given alice with two embeddings and bob with one
    gallery = _gallery("bob")
    gallery.add("alice", np.stack([_v("alice"), noisy(_v("alice"), 0.9)]))
    # when alice is removed
    removed = gallery.remove("alice")
    # then both vectors are gone, bob stays, and alice's probe now finds only bob
    assert removed == 2 and len(gallery) == 1 and gallery.persons == {"bob"}
    [result] = gallery.search(_v("alice")[None, :])
    assert [h.person_id for h in result.hits] == ["bob"]
    # and removing someone unknown is a no-op
    assert gallery.remove("alice") == 0 and gallery.remove("nobody") == 0


def test_remove_many_drops_every_vector_of_those_persons_in_one_pass() -> None:
    gallery = _gallery("bob", "carol")
    gallery.add("alice", np.stack([_v("alice"), noisy(_v("alice"), 0.9)]))
    assert gallery.remove_many(["alice", "carol", "nobody"]) == 3
    assert gallery.persons == {"bob"} and len(gallery) == 1
    [result] = gallery.search(_v("carol")[None, :])
    assert [h.person_id for h in result.hits] == ["bob"]
    assert gallery.remove_many([]) == 0 and gallery.remove_many(["alice"]) == 0


@pytest.mark.parametrize("before", [0, 1, 3])
def test_replace_swaps_a_persons_vectors_and_returns_the_old_ones(before: int) -> None:
    # given bob, and alice with `before` embeddings (none: not enrolled)
    gallery = _gallery("bob")
    old = np.stack([noisy(_v("alice"), 0.9, seed=i) for i in range(before)]) if before else np.zeros((0, DIM))
    gallery.add("alice", old.astype(np.float32))
    # when alice's vectors are replaced by one template
    template = noisy(_v("alice"), 0.95, seed=9)
    returned = gallery.replace("alice", template[None, :])
    # then the old vectors come back in order, and alice now holds only the template
    np.testing.assert_allclose(returned, old, atol=1e-6)
    np.testing.assert_allclose(gallery.vectors("alice"), template[None, :], atol=1e-6)
    assert len(gallery) == 2 and gallery.persons == {"alice", "bob"}
    np.testing.assert_allclose(gallery.vectors("bob"), _v("bob")[None, :], atol=1e-6)
    # and an unknown person has no vectors
    assert gallery.vectors("nobody").shape == (0, DIM)


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.zeros((1, 64), np.float32), "shape"),
        (np.zeros((DIM,), np.float32), "shape"),
        (np.zeros((1, 1, DIM), np.float32), "shape"),
        (np.full((1, DIM), 0.5, np.float32), "L2-normalised"),
        (np.zeros((1, DIM), np.float32), "L2-normalised"),
        (np.stack([_v("a"), 2 * _v("b")]), "L2-normalised"),
    ],
    ids=["wrong-dim", "1d", "3d", "not-normalised", "zero-vector", "one-of-two-bad"],
)
def test_bad_vectors_are_refused(vectors: np.ndarray, message: str) -> None:
    # given a gallery, when bad vectors are added or searched, then GalleryError names the problem
    gallery = _gallery("alice")
    with pytest.raises(GalleryError, match=message):
        gallery.add("bob", vectors)
    with pytest.raises(GalleryError, match=message):
        gallery.search(vectors)
    # and nothing was half-added
    assert len(gallery) == 1 and gallery.persons == {"alice"}


def test_adding_zero_vectors_changes_nothing() -> None:
    # given a gallery, when an empty (0, dim) batch is added, then no ids are given out
    gallery = _gallery("alice")
    assert gallery.add("bob", np.zeros((0, DIM), np.float32)) == []
    assert len(gallery) == 1 and gallery.persons == {"alice"}


@pytest.mark.parametrize("persons", [(), ("alice",)])
def test_empty_searches(persons: tuple[str, ...]) -> None:
    # given an empty or a one-person gallery
    gallery = _gallery(*persons)
    # when no probes are searched, then there are no results
    assert gallery.search(np.zeros((0, DIM), np.float32)) == []
    # when two probes are searched, then there is one result each, empty if the gallery is
    results = gallery.search(np.stack([_v("x"), _v("y")]))
    assert len(results) == 2
    assert all((r.best is None) == (not persons) for r in results)
    if not persons:
        assert all(r.hits == () and r.margin == 0.0 for r in results)


def _load(folder: Path, model_id: str = MODEL, dim: int = DIM, seal: GallerySeal = SEAL) -> Gallery:
    return Gallery.load(folder, model_id, dim, seal=seal)


def _index(folder: Path) -> Path:
    [index] = folder.glob("*.faiss")
    return index


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    # given a gallery with several persons, one removed (so ids have a gap)
    gallery = _gallery("alice", "bob", "carol")
    gallery.add("alice", noisy(_v("alice"), 0.9)[None, :])
    gallery.remove("bob")
    probes = np.stack([noisy(_v(p), 0.85, seed=i) for i, p in enumerate(("alice", "bob", "carol"))])
    before = gallery.search(probes)
    # when saved and loaded
    gallery.save(tmp_path / "g")
    loaded = _load(tmp_path / "g")
    # then the loaded gallery answers identically and keeps numbering after the old ids
    assert loaded.search(probes) == before
    assert len(loaded) == len(gallery) == 3 and loaded.persons == {"alice", "carol"}
    assert loaded.add("dave", _v("dave")[None, :]) == [5]


def test_save_leaves_no_temp_files_and_overwrites(tmp_path: Path) -> None:
    # given a gallery saved twice (the second save replaces the first)
    gallery = _gallery("alice")
    gallery.save(tmp_path)
    gallery.add("bob", _v("bob")[None, :])
    gallery.save(tmp_path)
    # then only the two current gallery files exist (no *.tmp, no stale index), private to the owner
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in gallery.files(tmp_path)) and len(names) == 2
    assert not [n for n in names if n.endswith(".tmp")]
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {0o600}
    assert _load(tmp_path).persons == {"alice", "bob"}


def test_a_gallery_without_a_seal_is_never_written(tmp_path: Path) -> None:
    gallery = Gallery(MODEL, DIM)
    gallery.add("alice", _v("alice")[None, :])
    with pytest.raises(GalleryError, match="seal"):
        gallery.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_crash_between_index_and_id_map_leaves_the_old_gallery(tmp_path: Path) -> None:
    # given a saved one-person gallery, and the index of a two-person gallery written beside it, as a save
    # that crashed before it replaced the id map leaves it
    _gallery("alice").save(tmp_path)
    map_before = map_path(tmp_path, MODEL).read_bytes()
    _gallery("alice", "bob").save(tmp_path / "next")
    (tmp_path / _index(tmp_path / "next").name).write_bytes(_index(tmp_path / "next").read_bytes())
    # when loaded, then the old gallery is whole; the next save removes the stray index
    assert map_path(tmp_path, MODEL).read_bytes() == map_before
    assert _load(tmp_path).persons == {"alice"}
    _gallery("carol").save(tmp_path)
    assert len(list(tmp_path.glob("*.faiss"))) == 1


@pytest.mark.parametrize("model_id", ["dlib_resnet_v1", "weird/../id with spaces"])
def test_file_names_are_keyed_and_sanitised_by_model_id(tmp_path: Path, model_id: str) -> None:
    # given a gallery for a model id, when it is saved, then its files stay inside the folder
    gallery = Gallery(model_id, DIM, seal=SEAL)
    gallery.save(tmp_path)
    files = gallery.files(tmp_path)
    assert len(files) == 2 and all(p.parent == tmp_path for p in files)
    assert not [p for p in files if " " in p.name or "/" in p.name]


@pytest.mark.parametrize(
    ("model_id", "dim", "message"),
    [("other-model", DIM, "other-model"), (MODEL, 64, "64")],
    ids=["other-model", "other-dim"],
)
def test_load_for_another_model_is_refused(tmp_path: Path, model_id: str, dim: int, message: str) -> None:
    # given a gallery saved for MODEL/128 whose id map is copied under another model's name
    gallery = _gallery("alice")
    gallery.save(tmp_path)
    if model_id != MODEL:
        map_path(tmp_path, model_id).write_bytes(map_path(tmp_path, MODEL).read_bytes())
    # when loaded for that model, then GalleryError says it must be rebuilt
    with pytest.raises(GalleryError, match="rebuild") as info:
        _load(tmp_path, model_id, dim)
    assert message in str(info.value)


def test_load_of_a_folder_with_no_files_gives_an_empty_gallery(tmp_path: Path) -> None:
    # given an empty (or absent) folder, when loaded, then the gallery is empty, usable and sealed
    for folder in (tmp_path, tmp_path / "absent"):
        gallery = _load(folder)
        assert len(gallery) == 0 and gallery.model_id == MODEL and gallery.dim == DIM and gallery.seal == SEAL
        assert gallery.add("alice", _v("alice")[None, :]) == [1]


@pytest.mark.parametrize(("damage", "error", "needle"), [
    ("missing-ids", GalleryError, "unreadable"),
    ("missing-index", GalleryError, "unreadable"),
    ("garbage-ids", GalleryError, "unreadable"),
    ("garbage-index", GalleryAuthError, "sha256"),
])
def test_load_of_damaged_files_is_refused(tmp_path: Path, damage: str, error: type[GalleryError],
                                          needle: str) -> None:
    # given saved gallery files, one of them damaged
    gallery = _gallery("alice")
    gallery.save(tmp_path)
    target = map_path(tmp_path, MODEL) if "ids" in damage else _index(tmp_path)
    if damage.startswith("missing"):
        target.unlink()
    else:
        target.write_bytes(b"not what you expect")
    # when loaded, then a GalleryError names the files instead of a raw crash
    with pytest.raises(error, match=needle):
        _load(tmp_path)


def _edit_map(folder: Path, edit: Callable[[dict[str, object]], None]) -> None:
    path = map_path(folder, MODEL)
    body = json.loads(path.read_text(encoding="utf-8"))
    edit(body)
    path.write_text(json.dumps(body), encoding="utf-8")


def _swap_owners(body: dict[str, object]) -> None:
    owner = body["owner"]
    assert isinstance(owner, dict)
    swap = {"alice": "bob", "bob": "alice"}
    body["owner"] = {k: swap[v] for k, v in owner.items()}


def _other_index(body: dict[str, object]) -> None:
    body["index_sha256"] = "0" * 64


@pytest.mark.parametrize(("tamper", "error", "needle"), [
    (_swap_owners, GalleryAuthError, "not authentic"),
    (_other_index, GalleryAuthError, "not authentic"),
    (lambda body: body.pop("mac"), GalleryUnsealedError, "no MAC"),
    (lambda body: body.update(next=1), GalleryAuthError, "not authentic"),
], ids=["owners-swapped", "index-hash-changed", "mac-removed", "counter-changed"])
def test_an_edited_id_map_is_refused(tmp_path: Path, tamper: Callable[[dict[str, object]], None],
                                     error: type[GalleryError], needle: str) -> None:
    # given a saved two-person gallery whose id map was edited (the MAC left as it was, or removed)
    _gallery("alice", "bob").save(tmp_path)
    _edit_map(tmp_path, tamper)
    # when loaded, then it is refused as not authentic, naming the file
    with pytest.raises(error, match=needle) as info:
        _load(tmp_path)
    assert map_path(tmp_path, MODEL).name in str(info.value)


def test_another_key_or_another_context_is_refused(tmp_path: Path) -> None:
    # given a gallery saved under SEAL
    _gallery("alice").save(tmp_path)
    # when loaded under another key, then it is not authentic; under another context, it belongs elsewhere
    with pytest.raises(GalleryAuthError, match="another data key"):
        _load(tmp_path, seal=GallerySeal(b"k" * 32, SEAL.context))
    with pytest.raises(GalleryBindingError, match="epoch-2"):
        _load(tmp_path, seal=GallerySeal(SEAL.key, "epoch-2"))


def test_an_id_map_from_another_gallery_is_refused(tmp_path: Path) -> None:
    # given a saved two-person gallery whose id map is replaced by a one-person gallery's (same key)
    _gallery("alice", "bob").save(tmp_path / "two")
    _gallery("alice").save(tmp_path / "one")
    map_path(tmp_path / "two", MODEL).write_bytes(map_path(tmp_path / "one", MODEL).read_bytes())
    # when loaded, then the map names an index that is not there: refused
    with pytest.raises(GalleryError, match="unreadable"):
        _load(tmp_path / "two")


def test_reseal_moves_the_files_to_a_new_key(tmp_path: Path) -> None:
    # given a gallery saved under SEAL
    _gallery("alice", "bob").save(tmp_path)
    new = GallerySeal(b"n" * 32, SEAL.context)
    path = map_path(tmp_path, MODEL)
    # when its id map is resealed under a new key (as a key rotation does)
    reseal_map(path, old=SEAL, new=new, dest=path)
    # then the new key loads it unchanged and the old key no longer does
    assert _load(tmp_path, seal=new).persons == {"alice", "bob"}
    with pytest.raises(GalleryAuthError):
        _load(tmp_path)
    # and a map the old key does not authenticate is not resealed
    with pytest.raises(GalleryAuthError):
        reseal_map(path, old=SEAL, new=new, dest=tmp_path / "copy.json")
    assert not (tmp_path / "copy.json").exists()


def test_seal_keys_shorter_than_32_bytes_are_refused() -> None:
    with pytest.raises(GalleryError, match="32"):
        GallerySeal(b"short", "c")


def test_real_photos_obama_ranks_first_for_obama_not_for_biden(photo: Callable[[str], Image],
                                                               engine: FaceEngine, tmp_path: Path) -> None:
    # given obama.jpg and biden.jpg enrolled with the real engine
    def embed(name: str) -> np.ndarray:
        image = photo(name)
        dets = engine.detect(image)
        assert len(dets) == 1, name
        return engine.embed(image, dets)

    gallery = Gallery(engine.model_id, engine.dim, seal=SEAL)
    gallery.add("obama", embed("obama.jpg"))
    # when another Obama photo and a Biden photo are searched
    [for_obama2, for_biden] = gallery.search(np.concatenate([embed("obama2.jpg"), embed("biden.jpg")]))
    # then Obama's photo scores higher against the enrolled Obama than Biden's best score
    assert for_obama2.best is not None and for_obama2.best.person_id == "obama"
    assert for_biden.best is not None
    assert for_obama2.best.score > for_biden.best.score + 0.05
    # and after a save/load round trip the answer is the same
    gallery.save(tmp_path)
    reloaded = Gallery.load(tmp_path, engine.model_id, engine.dim, seal=SEAL)
    assert reloaded.search(embed("obama2.jpg")) == [for_obama2]


def test_a_person_with_many_close_photos_does_not_hide_the_runner_up() -> None:
    # given alice with 8 photos all closer to the probe than bob's one
    gallery = Gallery(MODEL, DIM)
    alice = _v("alice")
    gallery.add("alice", np.stack([noisy(alice, 0.95, seed=i) for i in range(8)]))
    gallery.add("bob", noisy(alice, 0.9, seed=99)[None, :])
    # when searching for two persons
    result = gallery.search(alice[None, :], k=2)[0]
    # then bob is still the runner-up and the margin is alice's lead over him
    assert [h.person_id for h in result.hits] == ["alice", "bob"]
    assert result.margin == pytest.approx(0.05, abs=0.02)


def test_every_edit_changes_the_revision_and_entries_are_read_together() -> None:
    # given a gallery of two persons
    gallery = _gallery("alice", "bob")
    revision, owners, vectors = gallery.entries()
    assert owners == ["alice", "bob"] and vectors.shape == (2, DIM)
    np.testing.assert_allclose(vectors[1], _v("bob"), atol=1e-6)
    seen = {revision}
    # when it is edited in every way, then each edit gives a new revision
    for edit in (lambda: gallery.add("carol", _v("carol")[None, :]), lambda: gallery.remove("alice"),
                 lambda: gallery.replace("bob", _v("bob2")[None, :]), lambda: gallery.take(_gallery("dave"))):
        edit()
        assert gallery.revision not in seen
        seen.add(gallery.revision)
    assert gallery.entries()[1] == ["dave"]
    # and an empty gallery has no entries
    _, no_owners, no_vectors = Gallery(MODEL, DIM).entries()
    assert no_owners == [] and no_vectors.shape == (0, DIM)


def test_add_many_adds_one_vector_per_person_in_one_pass_like_add_one_at_a_time() -> None:
    # given one gallery filled one person at a time and one filled in one batch
    persons = ["alice", "bob", "carol"]
    one_by_one = _gallery(*persons)
    batch = Gallery(MODEL, DIM, seal=SEAL)
    before = batch.revision
    # when the batch is added at once
    ids = batch.add_many(persons, np.stack([_v(p) for p in persons]))
    # then both hold the same entries, the ids are new and the revision moved
    assert len(ids) == 3 and len(set(ids)) == 3
    assert batch.persons == one_by_one.persons
    for person in persons:
        np.testing.assert_allclose(batch.vectors(person), one_by_one.vectors(person))
    assert batch.revision != before
    [hit] = batch.search(_v("bob")[None, :], k=1)
    assert hit.hits[0].person_id == "bob"
    # and a mismatched count or a vector not normalised is refused, the gallery left as it was
    with pytest.raises(GalleryError, match="3 vectors for 2 persons"):
        batch.add_many(["dave", "erin"], np.stack([_v("dave")] * 3))
    with pytest.raises(GalleryError, match="L2-normalised"):
        batch.add_many(["dave"], 2 * _v("dave")[None, :])
    assert batch.persons == set(persons) and len(batch) == 3
