"""A staged snapshot's entries are checked once, as they arrive: a photo that fails its sha256 then never reaches the
store, even though the staged entries are read back without checking their photos again."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from edge.sync.apply import GalleryApplier
from edge.sync.changes import parse_answer
from tests.edge.sync.helpers import answer, person_entry
from vision.engines.owner import EnginePool


@pytest.fixture()
def box(make_config: Callable[..., EdgeConfig], engine_pool: EnginePool) -> Iterator[EdgeRuntime]:
    runtime = EdgeRuntime(make_config(), engine=engine_pool)
    yield runtime
    runtime.stop()


def test_a_photo_that_fails_its_sha256_while_staging_is_not_stored_by_the_staged_apply(
        box: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    # given a snapshot page whose first person has a good photo and a photo whose bytes do not match its sha256
    obama, biden = photo_bytes("obama.jpg"), photo_bytes("biden.jpg")
    tampered = person_entry("a" * 32, "奥巴马", [obama, biden])
    tampered["photos"][1]["sha256"] = tampered["photos"][0]["sha256"][::-1]
    body = answer(7, [tampered, person_entry("b" * 32, "拜登", [biden])], snapshot=True)
    applier = GalleryApplier(store=box.store, data_dir=box.data_dir, gallery=box.gallery, engine=box.engine,
                             enroller=box.enroller, plates=box.plates)
    # when it is staged and the stage applied
    stage = applier.stage(7)
    page, _ = parse_answer(body)
    stage.add(page, list(body["persons"]))
    applier.apply_staged(stage)
    # then both persons are stored, the first with its good photo only, the second with its photo
    assert box.store.person_photos("a" * 32) == [obama]
    assert box.store.person_photo("b" * 32) == biden
    assert applier.version == 7
