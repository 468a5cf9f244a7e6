"""``smartbranch console reembed`` after a real model change (the dlib engine with flip TTA, then without: two
model ids whose vectors are never compared), on SQLite and on PostgreSQL, with real photos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import func, select

from console.context import ConsoleContext
from console.dupindex import TemplateCipher
from console.reembed import pending
from console.tables import AuditRow, GalleryChange, Person, Photo
from tests.console.conftest import add_branch
from tests.console.test_import import CONSENT, _admin, _run, csv_bytes
from vision.engines.base import DlibEngineConfig
from vision.engines.registry import build_engine
from vision.enrolment import embed_photo

OLD, NEW = "dlib_resnet_v1_flip", "dlib_resnet_v1"


def _changes(ctx: ConsoleContext) -> int:
    with ctx.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(GalleryChange)) or 0)


def _models(ctx: ConsoleContext) -> dict[str, str | None]:
    with ctx.db.transaction() as session:
        return dict(session.execute(select(Person.external_id, Person.model_id)).all())


def test_reembed_gives_every_person_a_template_of_the_new_model_resumably_and_audited(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from console.cli.main import main

    # given two persons enrolled with the flip-TTA model
    add_branch(console_ctx, "SH001")
    admin = _admin(console_ctx)
    report = _run(console_ctx, admin, csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}",
                                                f"E2,拜登,vip,gold,SH001,,,biden.jpg,,{CONSENT}"),
                  {"obama.jpg": photo_bytes("obama.jpg"), "biden.jpg": photo_bytes("biden.jpg")})
    assert [o.status for o in report] == ["created", "created"]
    assert _models(console_ctx) == {"E1": OLD, "E2": OLD}
    # and a console whose face engine is now the other model
    config = tmp_path / "console.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(console_ctx.config.data_dir),
                                      "database": {"url": console_ctx.config.database_url},
                                      "face": {"engine": {"type": "dlib", "tta": "none"}}}))
    base = ["reembed", "--config", str(config)]
    before = _changes(console_ctx)
    # when the operator names another model than the configured one, nothing is done
    assert main([*base, "--model-id", "insightface_buffalo_l"]) == 2
    assert NEW in capsys.readouterr().err and _changes(console_ctx) == before
    # when a run stops after one person (here: --limit 1), that person is wholly new and the other wholly old
    assert main([*base, "--model-id", NEW, "--limit", "1"]) == 0
    assert sorted(_models(console_ctx).values()) == [NEW, OLD] and _changes(console_ctx) == before + 1
    assert len(pending(console_ctx, NEW)) == 1
    # then the next run goes on with the rest only, and a third finds nothing to do
    assert main([*base, "--model-id", NEW]) == 0
    assert "完成 1" in capsys.readouterr().out
    assert _models(console_ctx) == {"E1": NEW, "E2": NEW} and _changes(console_ctx) == before + 2
    assert main(base) == 0 and _changes(console_ctx) == before + 2
    assert "完成 0" in capsys.readouterr().out and pending(console_ctx, NEW) == []
    # each template is the new model's embedding of the stored photo, each photo row is of the new model, and each
    # person's version is the gallery change that carries it (what the edges sync)
    engine = build_engine(DlibEngineConfig(tta="none"))
    cipher = TemplateCipher(console_ctx.key)
    with console_ctx.db.transaction() as session:
        for person in session.scalars(select(Person)):
            source = "obama.jpg" if person.external_id == "E1" else "biden.jpg"
            expected = embed_photo(engine, photo_bytes(source))
            assert expected is not None and person.template is not None
            assert float(np.dot(cipher.decrypt(person.template), expected)) > 0.999
            change = session.scalars(select(GalleryChange).where(GalleryChange.person_id == person.id)
                                     .order_by(GalleryChange.seq.desc())).first()
            assert change is not None and change.seq == person.version and change.kind == "upsert"
        assert set(session.scalars(select(Photo.model_id))) == {NEW}
        audits = session.scalars(select(AuditRow).where(AuditRow.action == "reembed")).all()
        assert len(audits) == 2 and all(a.detail and a.detail["from"] == OLD and a.detail["model_id"] == NEW
                                        for a in audits)
        assert {a.actor for a in audits} == {a.actor for a in audits if a.actor.startswith("cli")}
