"""``smartbranch eval faces`` and ``smartbranch faces calibrate`` end to end, on a tiny set built from
the real demo photos, and on a sample of ../shared/data."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from edge.cli.main import main
from edge.config import load_config
from tests.edge.conftest import config_dict
from vision.population import PopulationStats, Whitening, fit_whitening

PAIRS = [
    ("a_obama/obama.jpg", "a_obama/obama2.jpg", 1),
    ("a_obama/obama.jpg", "a_obama/obama3.jpg", 1),
    ("a_obama/obama2.jpg", "a_obama/obama3.jpg", 1),
    ("b_biden/biden.jpg", "b_biden/blank.png", 1),  # one photo without a face: a genuine pair missed
    ("a_obama/obama.jpg", "b_biden/biden.jpg", 0),
    ("a_obama/obama2.jpg", "c_hanks/tom_hanks.png", 0),
    ("b_biden/biden.jpg", "c_hanks/tom_hanks.png", 0),
    ("a_obama/obama3.jpg", "e_group/t1.jpg", 0),  # a group photo: its largest face is used
]
SOURCE = {"a_obama": "press", "c_hanks": "press", "b_biden": "other", "e_group": "other"}


def write_csv(path: Path, header: list[str], rows: list[tuple[Any, ...]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def tiny_set(photos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """faces/<identity>/<photo>, pairs.csv and manifest.csv (identity, source) from the real photos,
    scaled to at most 640 px (HOG on the 2-megapixel originals would take seconds a photo)."""
    root = tmp_path_factory.mktemp("tiny") / "faces"
    files = {f for pair in PAIRS for f in pair[:2]}
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("blank.png"):
            cv2.imwrite(str(root / rel), np.full((200, 200, 3), 127, np.uint8))
        else:
            image = cv2.imread(str(photos_dir / Path(rel).name))
            scale = min(1.0, 640 / max(image.shape[:2]))
            cv2.imwrite(str(root / rel), cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    write_csv(root / "pairs.csv", ["left", "right", "same"], PAIRS)
    write_csv(root / "manifest.csv", ["file", "identity", "source"],
              [(f, f.split("/")[0], SOURCE[f.split("/")[0]]) for f in sorted(files)])
    return root


def run_eval(root: Path, out: Path, *extra: str, lang: str = "en") -> int:
    return main(["--lang", lang, "eval", "faces", "--root", str(root), "--pairs", str(root / "pairs.csv"),
                 "--json", str(out), *extra])


def test_eval_faces_end_to_end_with_groups(tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given the tiny set, when evaluated per source with a plot
    out, plot = tmp_path / "r.json", tmp_path / "roc.png"
    code = run_eval(tiny_set, out, "--manifest", str(tiny_set / "manifest.csv"), "--by", "source", "--plot", str(plot))
    # then it succeeds and the report holds every metric, overall and per group
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    for key in ("accuracy", "accuracy_std", "tar_at_far_1e-3", "fnir_at_fpir_1e-2", "fnir_at_fpir_1e-3",
                "threshold", "n_pairs", "ms_per_image", "no_face", "groups"):
        assert key in report, key
    assert report["n_pairs"] == 8 and report["n_genuine"] == 4 and report["n_images"] == 7
    # the faceless photo is counted, its pair scored as a non-match, never dropped
    assert report["no_face"] == 1 and report["no_face_files"] == ["b_biden/blank.png"]
    assert report["pairs_no_face"] == 1
    assert 0.0 <= report["accuracy"] <= 1.0 and report["accuracy_std"] >= 0.0
    assert report["ms_per_image"] > 0
    # 4 impostor pairs and 4 non-mated searches cannot resolve 1e-3: null, not a guess
    assert report["tar_at_far_1e-3"] is None and report["fnir_at_fpir_1e-3"] is None
    assert report["verification_operating_points"][1]["resolution"] == pytest.approx(0.25)
    # open set: a_obama enrolled (seed 0) with obama.jpg; b_biden's two photos, Hanks and the group are strangers
    assert report["identity_source"] == "manifest"
    assert report["open_set"]["n_enrolled"] == 1 and report["open_set"]["n_mated"] == 2
    assert report["open_set"]["n_nonmated"] == 4 and report["open_set"]["n_nonmated_no_face"] == 1
    assert report["rank1_hit_rate"] == 1.0
    # groups: pairs inside one source only; the three that cross sources count overall
    groups = report["groups"]
    assert sorted(groups) == ["other", "press"]
    assert groups["press"]["n_pairs"] == 4 and groups["other"]["n_pairs"] == 1 and report["n_pairs_mixed"] == 3
    assert groups["press"]["no_face"] == 0 and groups["other"]["no_face"] == 1
    # the plot is a real image and the terminal shows the table in English
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[1] > image.shape[0] > 300
    stdout = capsys.readouterr()
    assert "FNIR@FPIR=1e-2" in stdout.out and "press" in stdout.out
    assert "embedding faces" in stdout.err  # the progress bar goes to stderr


def test_eval_faces_infers_identities_and_speaks_chinese(tiny_set: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # given no manifest, when evaluated with the default language
    out = tmp_path / "r.json"
    assert run_eval(tiny_set, out, lang="zh") == 0
    # then identities come from the folders (they agree with every pair label) and the text is Chinese
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["identity_source"] == "folder" and "groups" not in report
    assert report["open_set"]["n_mated"] == 2 and report["open_set"]["n_nonmated"] == 4
    assert "人脸识别评测" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("missing-root", "nowhere"),
        ("pairs-without-same", "pairs.csv"),
        ("bad-same-value", "line 2"),
        ("missing-image", "ghost.jpg"),
        ("unreadable-image", "broken.jpg"),
        ("manifest-without-identity", "manifest.csv"),
        ("by-without-manifest", "--manifest"),
        ("pair-not-in-manifest", "a_obama/obama2.jpg is not in"),
    ],
)
def test_bad_input_names_the_file(case: str, named: str, tiny_set: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    root, extra = tiny_set, []
    pairs = tmp_path / "pairs.csv"
    write_csv(pairs, ["left", "right", "same"], PAIRS)
    if case == "missing-root":
        root = tmp_path / "nowhere"
    elif case == "pairs-without-same":
        write_csv(pairs, ["left", "right"], [p[:2] for p in PAIRS])
    elif case == "bad-same-value":
        write_csv(pairs, ["left", "right", "same"], [(PAIRS[0][0], PAIRS[0][1], "maybe")])
    elif case == "missing-image":
        write_csv(pairs, ["left", "right", "same"], [*PAIRS, ("a_obama/ghost.jpg", "a_obama/obama.jpg", 1)])
    elif case == "unreadable-image":
        root = tmp_path / "faces"
        shutil.copytree(tiny_set, root)
        (root / "0_bad").mkdir()
        (root / "0_bad" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
        write_csv(pairs, ["left", "right", "same"], [("0_bad/broken.jpg", "a_obama/obama.jpg", 0)])
    elif case == "manifest-without-identity":
        write_csv(tmp_path / "manifest.csv", ["file", "person"], [("a_obama/obama.jpg", "x")])
        extra = ["--manifest", str(tmp_path / "manifest.csv")]
    elif case == "by-without-manifest":
        extra = ["--by", "source"]
    elif case == "pair-not-in-manifest":
        write_csv(tmp_path / "manifest.csv", ["file", "identity", "source"], [("a_obama/obama.jpg", "o", "s")])
        extra = ["--manifest", str(tmp_path / "manifest.csv"), "--by", "source"]
    # when evaluated
    code = main(["--lang", "en", "eval", "faces", "--root", str(root), "--pairs", str(pairs),
                 "--json", str(tmp_path / "r.json"), *extra])
    # then it fails with exit 2 and a message naming the culprit, and writes no report
    err = capsys.readouterr().err
    assert code == 2 and named in err and "Evaluation data error" in err
    assert not (tmp_path / "r.json").exists()


COMMENTED = "# branch box config\n"


def test_calibrate_writes_a_loadable_config(tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given a config with a comment and the product's default voter
    config = tmp_path / "smartbranch.yaml"
    cfg = config_dict(tmp_path / "data", face={"engine": {"type": "dlib"}, "voter": {"threshold": 0.96}})
    config.write_text(COMMENTED + yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    before = yaml.safe_load(config.read_text("utf-8"))
    # when calibrated for FPIR 1e-2 with two observations per track
    code = main(["--lang", "en", "faces", "calibrate", "--target-fpir", "0.01", "--root", str(tiny_set),
                 "--manifest", str(tiny_set / "manifest.csv"), "--config", str(config), "--observations", "2",
                 "--json", str(tmp_path / "cal.json")])
    # then the written config loads and holds the chosen values; the rest of the file is kept
    assert code == 0
    out = capsys.readouterr().out
    assert "Chosen: threshold=" in out and "cannot resolve FPIR 0.01" in out  # 4 stranger tracks only
    chosen = json.loads((tmp_path / "cal.json").read_text())["chosen"]
    voter = load_config(config).face.voter
    assert (voter.threshold, voter.min_margin, voter.min_votes) == (
        pytest.approx(chosen["threshold"]), pytest.approx(chosen["min_margin"]), chosen["min_votes"])
    assert chosen["false_tracks"] == 0 and chosen["hit_rate"] > 0  # Obama's other photos are found
    after = yaml.safe_load(config.read_text("utf-8"))
    after["face"].pop("voter"), before["face"].pop("voter")
    assert after == before and config.read_text("utf-8").startswith(COMMENTED)
    assert "Config written" in out


def test_calibrate_dry_run_leaves_the_config_alone(tiny_set: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "smartbranch.yaml"
    config.write_text(yaml.safe_dump(config_dict(tmp_path / "data")), "utf-8")
    original = config.read_bytes()
    code = main(["faces", "calibrate", "--target-fpir", "0.001", "--root", str(tiny_set), "--manifest",
                 str(tiny_set / "manifest.csv"), "--config", str(config), "--observations", "1", "--dry-run"])
    assert code == 0 and config.read_bytes() == original
    assert "试运行" in capsys.readouterr().out


@pytest.mark.shared_data
def test_eval_faces_on_a_sample_of_the_east_asian_set(shared_data: Path, tmp_path: Path) -> None:
    # given 40 sampled pairs of the East-Asian development set and its manifest
    root = shared_data / "faces" / "east_asian"
    out = tmp_path / "ea.json"
    # when evaluated per source
    code = main(["--lang", "en", "eval", "faces", "--root", str(root), "--pairs", str(root / "pairs.csv"),
                 "--manifest", str(root / "manifest.csv"), "--by", "source", "--limit", "40", "--json", str(out)])
    # then every sampled pair is accounted for, overall and per group
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["n_pairs"] == 40 and report["limit"] == 40
    assert sum(g["n_pairs"] for g in report["groups"].values()) + report["n_pairs_mixed"] == 40
    assert set(report["groups"]) <= {"casia_facev5_subset", "rmfd_afdb_via_facemask", "asian_celeb_db_samples"}
    assert report["no_face"] == len(report["no_face_files"]) <= report["n_images"] <= 80
    assert report["accuracy"] > 0.6  # far above chance even with the faceless RMFD crops counted as misses


# ----------------------------------------------------------------------------------------- population adaptation


def test_adapt_on_too_few_faces_falls_back_and_says_why(tiny_set: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # given the tiny set (6 faces: far too few for population statistics), evaluated with --adapt
    out = tmp_path / "r.json"
    assert run_eval(tiny_set, out, "--manifest", str(tiny_set / "manifest.csv"), "--by", "source", "--adapt") == 0
    # then the adapted figures are the unadapted ones, and the report and the terminal say why
    report = json.loads(out.read_text(encoding="utf-8"))
    adaptation = report["adaptation"]
    assert adaptation["adapted"] is False and adaptation["reason"] == "too few faces: 6 < 256"
    assert report["accuracy"] == report["accuracy_unadapted"]
    assert report["rank1_hit_rate"] == report["rank1_hit_rate_unadapted"]
    assert report["groups"]["press"]["accuracy"] == report["groups"]["press"]["accuracy_unadapted"]
    assert adaptation["fold_honest"]["folds_unadapted"] > 0
    assert "Not adapted: too few faces" in capsys.readouterr().out


def test_the_embedding_cache_is_reused_only_for_the_same_photos(tiny_set: Path, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    # given a copy of the tiny set, evaluated once with a cache folder
    root, cache = tmp_path / "faces", tmp_path / "cache"
    shutil.copytree(tiny_set, root)
    assert run_eval(root, tmp_path / "a.json", "--cache", str(cache)) == 0
    assert len(list(cache.glob("*.npz"))) == 1
    # when evaluated again unchanged, then the embeddings come from the cache and the report is the same
    caplog.set_level(logging.INFO, logger="edge.evaluation.face_data")
    assert run_eval(root, tmp_path / "b.json", "--cache", str(cache)) == 0
    assert any("read from" in r.getMessage() for r in caplog.records)
    first, second = (json.loads((tmp_path / n).read_text(encoding="utf-8")) for n in ("a.json", "b.json"))
    assert first["accuracy"] == second["accuracy"] and first["roc"] == second["roc"]
    # and when one photo changes, it is embedded again into a second cache entry
    caplog.clear()
    image = cv2.imread(str(root / "a_obama/obama2.jpg"))
    cv2.imwrite(str(root / "a_obama/obama2.jpg"), cv2.flip(image, 1))
    assert run_eval(root, tmp_path / "c.json", "--cache", str(cache)) == 0
    assert not any("read from" in r.getMessage() for r in caplog.records)
    assert len(list(cache.glob("*.npz"))) == 2


@pytest.mark.slow
@pytest.mark.shared_data
def test_eval_faces_adapt_reports_both_pipelines_in_one_run(shared_data: Path, tmp_path: Path) -> None:
    # given 400 sampled pairs of the East-Asian set (over 256 faces), evaluated with --adapt and a cache
    root = shared_data / "faces" / "east_asian"
    cache, adapted, plain = tmp_path / "cache", tmp_path / "adapt.json", tmp_path / "plain.json"
    common = ["--lang", "en", "eval", "faces", "--root", str(root), "--pairs", str(root / "pairs.csv"),
              "--manifest", str(root / "manifest.csv"), "--limit", "400", "--cache", str(cache)]
    assert main([*common, "--adapt", "--json", str(adapted)]) == 0
    # and again without --adapt (embeddings from the cache)
    assert main([*common, "--json", str(plain)]) == 0
    report = json.loads(adapted.read_text(encoding="utf-8"))
    before = json.loads(plain.read_text(encoding="utf-8"))
    # then the adapted run carries both pipelines: "accuracy" is adapted, "*_unadapted" is the plain run
    adaptation = report["adaptation"]
    assert adaptation["adapted"] is True and adaptation["n_faces"] == report["n_images"] - report["no_face"] > 256
    assert adaptation["model_id"] == report["engine"]["model_id"] == "dlib_resnet_v1_flip"
    for key in ("accuracy", "tar_at_far_1e-2", "fnir_at_fpir_1e-2"):
        assert report[f"{key}_unadapted"] == before[key], key
    assert report["unadapted"]["roc"] == before["roc"]
    assert report["roc"] != report["unadapted"]["roc"]  # the transform moved the scores
    # and the fold-honest check scored every fold through a fit without it
    honest = adaptation["fold_honest"]
    assert honest["n_pair_folds"] == 10 and honest["folds_unadapted"] == 0
    assert 0.5 < honest["accuracy"] <= 1.0 and 0.0 <= honest["fnir_at_fpir_1e-2"] <= 1.0


@pytest.mark.slow
@pytest.mark.shared_data
def test_eval_faces_adapt_makes_the_boxs_choice_per_population(shared_data: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # given samples of the East-Asian set and of LFW, each evaluated with --adapt (its own statistics, no labels)
    faces = shared_data / "faces"
    east_asian = faces / "east_asian"
    runs = {"east_asian": ["--root", str(east_asian), "--pairs", str(east_asian / "pairs.csv"),
                           "--manifest", str(east_asian / "manifest.csv")],
            "lfw": ["--root", str(faces), "--pairs", str(faces / "pairs.csv")]}
    reports = {}
    for name, data in runs.items():
        out = tmp_path / f"{name}.json"
        assert main(["--lang", "en", "eval", "faces", *data, "--limit", "400", "--cache", str(tmp_path / "cache"),
                     "--adapt", "--json", str(out)]) == 0
        reports[name] = json.loads(out.read_text(encoding="utf-8"))
    # then the East-Asian population departs from the model's native geometry and is whitened
    ea = reports["east_asian"]["adaptation"]
    assert ea["adapted"] is True and ea["choice"]["branch"] == "whiten"
    assert ea["choice"]["pair_rate"] >= ea["choice"]["min_pair_rate"]
    # and LFW sits like the native one: unadapted with the reason, every figure the unadapted one
    lfw, report = reports["lfw"]["adaptation"], reports["lfw"]
    assert lfw["adapted"] is False and lfw["choice"]["branch"] == "unadapted" and "native" in lfw["reason"]
    assert lfw["choice"]["pair_rate"] < lfw["choice"]["min_pair_rate"]
    for key in ("accuracy", "tar_at_far_1e-2", "fnir_at_fpir_1e-2"):
        assert report[key] == report[f"{key}_unadapted"], key
    assert lfw["fold_honest"]["folds_unadapted"] == lfw["fold_honest"]["n_pair_folds"] + \
        lfw["fold_honest"]["n_identity_folds"]
    # and what whitening regardless would have done is reported beside it
    whitened = lfw["whitened"]
    assert whitened["digest"] and whitened["fold_honest"]["folds_unadapted"] == 0
    assert (whitened["accuracy"], whitened["fnir_at_fpir_1e-2"]) != (report["accuracy"], report["fnir_at_fpir_1e-2"])
    out = capsys.readouterr().out
    assert "Adaptation choice (as at the box): unadapted" in out and "whitened regardless" in out


def _calibrate(tiny_set: Path, tmp_path: Path, *extra: str) -> int:
    config = tmp_path / "smartbranch.yaml"
    config.write_text(yaml.safe_dump(config_dict(tmp_path / "data")), "utf-8")
    return main(["--lang", "en", "faces", "calibrate", "--target-fpir", "0.01", "--root", str(tiny_set),
                 "--manifest", str(tiny_set / "manifest.csv"), "--config", str(config), "--observations", "2",
                 "--json", str(tmp_path / "cal.json"), "--dry-run", *extra])


def test_calibrate_reports_templates_of_several_photos_side_by_side(tiny_set: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # when calibrated with templates from 1 and 2 photos (Obama has 3: two to enrol, one track left)
    assert _calibrate(tiny_set, tmp_path, "--enrol-photos", "2,1") == 0
    # then there is one entry per count, on the same tracks, each with its hit rate and FPIR
    entries = json.loads((tmp_path / "cal.json").read_text())["by_enrol_photos"]
    assert sorted(entries) == ["1", "2"]
    for n, entry in entries.items():
        assert entry["photos"] == int(n) and entry["n_enrolled"] == 1
        assert (entry["n_mated_tracks"], entry["n_nonmated_tracks"]) == (1, 4)
        assert 0.0 <= entry["hit_rate"] <= 1.0 and entry["fpir"] == 0.0
        assert entry["chosen"]["hit_rate"] == entry["hit_rate"] and "unadapted" not in entry
    assert "photos  enrolled" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--population-out", "p.json"], "--population-out needs --adapt"),
        (["--enrol-photos", "3"], "needs identities with more than 3 photos"),
    ],
)
def test_calibrate_refuses_options_it_cannot_honour(extra: list[str], message: str, tiny_set: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert _calibrate(tiny_set, tmp_path, *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cal.json").exists()


def test_calibrate_adapt_on_too_few_faces_keeps_the_raw_space(tiny_set: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # when calibrated with --adapt on 6 faces, writing the transform
    population = tmp_path / "population.json"
    assert _calibrate(tiny_set, tmp_path, "--adapt", "--population-out", str(population)) == 0
    report = json.loads((tmp_path / "cal.json").read_text())
    # then the fit fell back: the setting after equals the one before, and the file says it is unadapted
    adaptation = report["adaptation"]
    assert adaptation["adapted"] is False and adaptation["reason"].startswith("too few faces")
    assert adaptation["before"] == adaptation["after"] == report["chosen"]
    transform = Whitening.from_bytes(population.read_bytes(), model_id="dlib_resnet_v1_flip")
    assert not transform.adapted and transform.voter is not None
    assert transform.voter.threshold == pytest.approx(report["chosen"]["threshold"])
    assert "Not adapted: too few faces" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.shared_data
def test_calibrate_adapt_moves_the_threshold_with_the_transform(shared_data: Path, tmp_path: Path) -> None:
    # given 300 photos of the East-Asian set (whole identities, over 256 faces)
    root = shared_data / "faces" / "east_asian"
    with (root / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        rows = [(r["file"], r["identity"]) for r in csv.DictReader(fh)]
    keep = {ident for _, ident in rows[:300]}
    manifest = write_csv(tmp_path / "manifest.csv", ["file", "identity"], [r for r in rows if r[1] in keep])
    config = tmp_path / "smartbranch.yaml"
    config.write_text(yaml.safe_dump(config_dict(tmp_path / "data")), "utf-8")
    original = config.read_bytes()
    population = tmp_path / "population.json"
    # when calibrated in the adapted space with 1 and 3 enrolment photos
    code = main(["--lang", "en", "faces", "calibrate", "--target-fpir", "0.001", "--root", str(root),
                 "--manifest", str(manifest), "--config", str(config), "--observations", "2", "--dry-run",
                 "--adapt", "--enrol-photos", "1,3", "--population-out", str(population),
                 "--json", str(tmp_path / "cal.json")])
    assert code == 0 and config.read_bytes() == original
    report = json.loads((tmp_path / "cal.json").read_text())
    adaptation = report["adaptation"]
    # then the transform was fitted, and the setting after adaptation is a threshold of the adapted space
    assert adaptation["adapted"] is True and adaptation["n_faces"] > 256
    before, after = adaptation["before"], adaptation["after"]
    assert before == report["chosen"] and after["false_tracks"] == 0 and before["false_tracks"] == 0
    assert after["threshold"] < before["threshold"] - 0.1  # whitened scores spread far below raw cosine ones
    # and the written transform carries that setting, for this model only
    transform = Whitening.from_bytes(population.read_bytes(), model_id="dlib_resnet_v1_flip")
    assert transform.adapted and transform.digest == adaptation["digest"]
    assert transform.voter is not None and transform.voter.threshold == pytest.approx(after["threshold"])
    # and both template sizes are reported in both spaces
    for entry in report["by_enrol_photos"].values():
        assert {"hit_rate", "fpir", "unadapted"} <= set(entry) and {"hit_rate", "fpir"} <= set(entry["unadapted"])


def _random_transform(model_id: str) -> Whitening:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 128)) + 0.2
    return fit_whitening(PopulationStats.of(model_id, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)))


def test_eval_adapts_with_a_given_transform_of_its_own_model_only(tiny_set: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # given a transform of the product's model fitted elsewhere, and one of another model
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    ours.write_bytes(_random_transform("dlib_resnet_v1_flip").to_bytes())
    theirs.write_bytes(_random_transform("dlib_resnet_v1").to_bytes())
    # when the tiny set is evaluated through ours
    out = tmp_path / "r.json"
    assert run_eval(tiny_set, out, "--adapt", "--population", str(ours), "--population-out",
                    str(tmp_path / "used.json")) == 0
    # then it is applied as given (no fold-honest refit) and written back unchanged
    adaptation = json.loads(out.read_text(encoding="utf-8"))["adaptation"]
    assert adaptation["adapted"] is True and adaptation["fitted_on"] == f"given: {ours}"
    assert adaptation["fold_honest"] is None and adaptation["n_faces"] == 300
    assert (tmp_path / "used.json").read_bytes() == ours.read_bytes()
    assert "given transform" in capsys.readouterr().out
    # and another model's transform, or a transform without --adapt, is refused before any report
    for extra, message in ((["--adapt", "--population", str(theirs)], "belongs to face model 'dlib_resnet_v1'"),
                           (["--population", str(ours)], "need --adapt")):
        assert run_eval(tiny_set, tmp_path / "refused.json", *extra) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "refused.json").exists()
