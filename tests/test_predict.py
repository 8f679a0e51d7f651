"""Predicting from tracked runs: real MNIST test digits, drawn as handwriting on paper, read back.

One small model is trained once for the module. The digits drawn are MNIST *test* digits it
reads confidently as they are; every test then changes how they are presented (scale,
position, paper, ink, noise, lighting, JPEG, neighbours, broken strokes) and asserts that
preprocessing brings them back to what the model knows.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from digits_bench.data import DatasetSpec, load_split
from digits_bench.predict import ImageError, loading
from digits_bench.predict.__main__ import main
from digits_bench.predict.preprocess import read_page
from digits_bench.predict.reader import classify, read_image
from digits_bench.training.run import train

from .conftest import DATA_DIR, ROOT, client_for, compose, run_cli

pytestmark = pytest.mark.fit  # every test but one reads with the model trained once for the module

EXPERIMENT = "predict_tests"
# lenet, one epoch on 12k images: ~96-97% test accuracy in well under a minute on two CPU cores
TRAIN = ["model=lenet", "model.init=torch", "optimizer=adam", "optimizer.lr=0.002", "trainer.max_epochs=1",
         "data.subset=12000", "data.val_size=1000", "data.test_subset=2000", "trainer.enable_progress_bar=false",
         "trainer.enable_model_summary=false", "tracking.figures=false", f"tracking.experiment={EXPERIMENT}"]
UNSCORED = 2000  # digits drawn come from after the test images the run was scored on


@dataclass
class Trained:
    root: Path
    run_id: str
    checkpoint: Path
    module: object
    confident: dict[int, list[np.ndarray]] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.root / "mlruns"

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.store / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        """This module's store for a CLI subprocess, found as training would find it."""
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DIGITS_BENCH_RUNS")}
        return env | {"DIGITS_BENCH_STORE": str(self.store), "DIGITS_BENCH_CHECKPOINTS": str(self.root / "checkpoints"),
                      "DIGITS_BENCH_DATA": str(DATA_DIR)}

    def digit(self, label: int, nth: int = 0) -> np.ndarray:
        return self.confident[label][nth % len(self.confident[label])]


def _one_piece(image: np.ndarray) -> bool:
    return ndi.label(image > 60, structure=np.ones((3, 3)))[1] == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train once into a store of this module's own; pick digits it reads with >= 99.5% as they are."""
    root = tmp_path_factory.mktemp("predict")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("DIGITS_BENCH_RUNS", raising=False)
        env.setenv("DIGITS_BENCH_STORE", str(root / "mlruns"))
        env.setenv("DIGITS_BENCH_CHECKPOINTS", str(root / "checkpoints"))
        env.setenv("DIGITS_BENCH_DATA", str(DATA_DIR))
        result = train(compose(*TRAIN))
        images, labels = load_split(DatasetSpec.from_config(dict(compose().data.dataset)), "test")
    assert result is not None and result.metrics["test/acc"] > 0.93
    model = loading.from_run(client_for(root / "mlruns"), result.run_id)
    images, labels = images.numpy()[UNSCORED:], labels.numpy()[UNSCORED:]
    preds, probs = classify(model.module, images)
    good = (preds == labels) & (probs >= 0.995)
    confident = {k: [im for im in images[good & (labels == k)][:40] if _one_piece(im)][:6] for k in range(10)}
    assert all(len(v) >= 3 for v in confident.values())
    return Trained(root, result.run_id, Path(result.best_checkpoint), model.module, confident)


# --- drawing MNIST digits as handwriting on paper -------------------------------------------------

def paper(height: int, width: int, level: float = 225.0, gradient: float = 0.0) -> np.ndarray:
    """A light page, `gradient` grey levels darker at the bottom right (a lamp on the top left)."""
    y, x = np.mgrid[0:height, 0:width]
    return level - gradient * (x / width + y / height) / 2


def draw(page: np.ndarray, digit: np.ndarray, x: int, y: int, scale: float, ink: float = 30.0) -> np.ndarray:
    """Write an MNIST digit (light on black, 28×28) in dark ink at (x, y), `scale` times its size."""
    size = round(28 * scale)
    alpha = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    region = page[y : y + size, x : x + size]
    region += np.clip(alpha, 0, 1) * (ink - region)
    return page


def row(digits: list[np.ndarray], gaps: list[int], scale: float = 3.0, margin: int = 30, **paper_kw) -> np.ndarray:
    """Digits side by side with uneven gaps (in pixels, between their 28×28 fields)."""
    size = round(28 * scale)
    page = paper(size + 2 * margin, 2 * margin + size * len(digits) + sum(gaps), **paper_kw)
    x = margin
    for digit, gap in zip(digits, gaps + [0]):
        draw(page, digit, x, margin, scale)
        x += size + gap
    return page


def finish(page: np.ndarray, path: Path, noise: float = 4.0, quality: int | None = 80, seed: int = 0) -> Path:
    """Sensor noise, then JPEG (or PNG when quality is None), as a phone would save it."""
    page = page + np.random.default_rng(seed).normal(0, noise, page.shape)
    image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    image.save(path, **({"quality": quality} if quality else {}))
    return path


def broken(digit: np.ndarray, width: int = 2) -> np.ndarray:
    """The digit with a blank line across it, where it leaves two big pieces: a pen lifted mid-stroke."""
    def smaller_piece(at: int) -> int:
        cut = digit.copy()
        cut[at : at + width] = 0
        labels, n = ndi.label(cut > 60, structure=np.ones((3, 3)))
        return int(np.sort(np.bincount(labels.ravel())[1:])[-2]) if n >= 2 else 0

    at = max(range(9, 19), key=smaller_piece)
    assert smaller_piece(at) > 0.15 * np.count_nonzero(digit > 60), "no cut splits this digit"
    digit = digit.copy()
    digit[at : at + width] = 0
    return digit


def specks(page: np.ndarray, n: int = 30, seed: int = 1) -> np.ndarray:
    """Dust and pen dots: n small dark discs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : page.shape[0], 0 : page.shape[1]]
    for cy, cx, r in zip(rng.integers(0, page.shape[0], n), rng.integers(0, page.shape[1], n), rng.uniform(0.8, 2.5, n)):
        page[(y - cy) ** 2 + (x - cx) ** 2 <= r * r] = 40.0
    return page


# --- reading ---------------------------------------------------------------------------------------

SINGLES = [  # label, canvas (h, w), position, scale, ink, paper, noise, JPEG quality
    (0, (120, 120), (20, 15), 3.0, 30, 225, 4, 85),
    (1, (400, 300), (40, 150), 8.0, 60, 235, 6, 70),
    (2, (60, 90), (40, 10), 1.3, 20, 210, 3, None),
    (3, (300, 500), (20, 200), 2.5, 110, 200, 5, 60),  # faint pencil
    (4, (250, 250), (90, 70), 4.0, 25, 245, 10, 50),   # noisy, heavily compressed
    (5, (800, 600), (100, 300), 12.0, 40, 230, 4, 90),  # a close-up photo
    (6, (200, 160), (5, 50), 4.5, 35, 220, 4, 75),     # near the edge
    (7, (150, 300), (200, 30), 3.0, 30, 190, 3, 80),   # grey paper
    (8, (180, 180), (40, 40), 3.5, 15, 250, 4, 95),
    (9, (100, 260), (10, 20), 2.0, 50, 225, 5, 65),
]


@pytest.mark.parametrize(("label", "shape", "at", "scale", "ink", "level", "noise", "quality"), SINGLES)
def test_single_digit_on_paper(trained: Trained, tmp_path: Path, label, shape, at, scale, ink, level, noise, quality):
    page = draw(paper(*shape, level=level), trained.digit(label, label), at[0], at[1], scale, ink)
    reading = read_image(trained.module, finish(page, tmp_path / f"{label}.{'jpg' if quality else 'png'}", noise, quality))
    assert reading.text == str(label) and reading.page.inverted
    assert reading.digits[0].crop.shape == (28, 28) and reading.digits[0].prob > 0.5


def test_light_ink_on_dark_is_detected(trained: Trained, tmp_path: Path):
    page = 255.0 - row([trained.digit(3), trained.digit(8)], [25], scale=2.5)  # chalk on a blackboard
    reading = read_image(trained.module, finish(page, tmp_path / "board.jpg"))
    assert reading.text == "38" and not reading.page.inverted
    Image.fromarray(trained.digit(6, 1)).save(tmp_path / "mnist.png")  # an MNIST image itself
    reading = read_image(trained.module, tmp_path / "mnist.png")
    assert reading.text == "6" and not reading.page.inverted
    assert np.abs(reading.digits[0].crop.astype(int) - trained.digit(6, 1)).mean() < 8  # made as MNIST was made


def test_multi_digit_rows(trained: Trained, tmp_path: Path):
    year = [trained.digit(d, i) for i, d in enumerate((2, 0, 1, 7))]
    reading = read_image(trained.module, finish(row(year, [4, 30, -6], gradient=30), tmp_path / "year.jpg"))
    assert reading.text == "2017"
    boxes = [d.box for d in reading.digits]
    assert all(a[2] <= b[0] + 25 for a, b in zip(boxes, boxes[1:]))  # left to right, one box per digit

    number = "0612345789"
    digits = [trained.digit(int(c), i) for i, c in enumerate(number)]
    digits[3], digits[8] = broken(digits[3]), broken(digits[8])  # the 2 and the 8 each in two pieces
    page = specks(row(digits, [2, 12, 40, 5, 3, 25, 8, 0, 15], scale=2.5, level=235), n=40)
    reading = read_image(trained.module, finish(page, tmp_path / "phone.jpg", noise=5, quality=75))
    assert reading.text == number


def test_uneven_lighting(trained: Trained, tmp_path: Path):
    page = row([trained.digit(4, 2), trained.digit(9, 2), trained.digit(5, 2)], [20, 35], scale=4, level=250, gradient=130)
    page[:, : page.shape[1] // 5] *= 0.85  # and the photographer's shadow
    reading = read_image(trained.module, finish(page, tmp_path / "lamp.jpg", quality=70))
    assert reading.text == "495"


def test_no_ink_is_an_image_error(tmp_path: Path):
    finish(paper(300, 400, level=220, gradient=60), tmp_path / "blank.jpg", noise=6)
    with pytest.raises(ImageError, match="no ink"):
        read_page(tmp_path / "blank.jpg")


# --- the command line --------------------------------------------------------------------------------

def predict_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digits_bench.predict", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env=env)


def test_cli_reads_good_files_and_reports_each_bad_one(trained: Trained, tmp_path: Path):
    year = finish(row([trained.digit(d, 3) for d in (2, 0, 1, 7)], [10, 20, 5]), tmp_path / "year.jpg")
    seven = finish(draw(paper(150, 150), trained.digit(7, 4), 30, 30, 3), tmp_path / "seven.png", quality=None)
    (tmp_path / "notes.png").write_text("not an image\n")
    (tmp_path / "empty.jpg").write_bytes(b"")
    blank = finish(paper(200, 300), tmp_path / "blank.jpg")
    missing = tmp_path / "missing.png"
    files = [year, missing, tmp_path / "notes.png", tmp_path / "empty.jpg", blank, seven]
    out = tmp_path / "out"
    # no --tracking-uri: the store is found as training finds it, from DIGITS_BENCH_STORE
    result = predict_cli(["--run", trained.run_id, "--json", "--save", str(out), *map(str, files)], trained.env())
    assert result.returncode == 1, result.stderr[-2000:]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("digits_bench: error: ") for line in errors)
    assert [line.split(": ")[2] for line in errors] == [str(missing), str(tmp_path / "notes.png"), str(tmp_path / "empty.jpg"), str(blank)]
    assert "no such file" in errors[0] and "not an image" in errors[1] and "empty" in errors[2] and "no ink" in errors[3]
    report = json.loads(result.stdout)
    assert report["model"]["run_id"] == trained.run_id and report["model"]["model"] == "lenet"
    images = report["images"]
    assert [i["file"] for i in images] == list(map(str, files))
    assert images[0]["text"] == "2017" and images[-1]["text"] == "7"
    assert [d["digit"] for d in images[0]["digits"]] == [2, 0, 1, 7]
    expected = read_image(trained.module, year).as_dict()["digits"]  # the CLI reports what the library reads
    assert [d["box"] for d in images[0]["digits"]] == [d["box"] for d in expected]
    assert [d["prob"] for d in images[0]["digits"]] == pytest.approx([d["prob"] for d in expected], abs=1e-3)
    assert all("error" in i for i in images[1:5])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["year_annotated.png", "year_digit0_2.png", "year_digit1_0.png", "year_digit2_1.png", "year_digit3_7.png",
         "seven_annotated.png", "seven_digit0_7.png"])
    assert Image.open(out / "year_digit0_2.png").size == (28, 28)
    assert Image.open(out / "year_annotated.png").size == Image.open(year).size


@pytest.mark.fit
def test_images_that_cannot_be_read_are_said_before_any_model_is_looked_for(tmp_path: Path, isolated_store: Path):
    """Nothing to read: each file's line and exit 1 at once, without loading (or even finding) a model."""
    (tmp_path / "empty.png").write_bytes(b"")
    missing = tmp_path / "missing.png"
    result = run_cli(["--run", "0" * 32, str(missing), str(tmp_path / "empty.png")], module="digits_bench.predict", timeout=60)
    assert result.returncode == 1 and result.stderr.splitlines() == [
        f"digits_bench: error: {missing}: no such file", f"digits_bench: error: {tmp_path / 'empty.png'}: empty file (0 bytes)"]
    assert not isolated_store.exists()  # no store was opened to look for the run


def test_unknown_run_is_one_line_exit_2(trained: Trained):
    result = predict_cli(["--run", "0" * 32, "--tracking-uri", trained.uri, str(ROOT / "examples" / "year_2017.png")], trained.env())
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"digits_bench: error: no run '{'0' * 32}' in the MLflow store {trained.uri}"]
    assert "Traceback" not in result.stdout + result.stderr


def test_run_without_model_and_missing_store(trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture):
    client = client_for(trained.store)
    bare = client.create_run(client.get_experiment_by_name(EXPERIMENT).experiment_id).info.run_id
    client.set_terminated(bare)  # FINISHED, no metrics, no artifacts
    image = str(ROOT / "examples" / "year_2017.png")
    assert main(["--run", bare, "--tracking-uri", trained.uri, image]) == 2
    assert capsys.readouterr().err == f"digits_bench: error: run {bare} has no model: no checkpoints/*.ckpt artifact " \
                                      "(trained with tracking.log_checkpoint=false, or it did not finish)\n"
    assert main(["--run", bare, "--tracking-uri", f"sqlite:///{tmp_path}/none/mlflow.db", image]) == 2
    assert capsys.readouterr().err.startswith(f"digits_bench: error: no MLflow store at {tmp_path}/none/mlflow.db")
    assert not (tmp_path / "none").exists()


def test_experiment_best_picks_the_best_finished_run(trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture):
    client = client_for(trained.store)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    for acc, status in ((0.5, "FINISHED"), (0.9999, "FAILED")):  # worse, and better but failed: neither is picked
        decoy = client.create_run(experiment).info.run_id
        client.log_metric(decoy, "val/acc", acc)
        client.set_terminated(decoy, status)
    image = finish(draw(paper(120, 120), trained.digit(3, 5), 20, 20, 3), tmp_path / "three.jpg")
    assert main(["--experiment", EXPERIMENT, "--best", "--tracking-uri", trained.uri, "--json", str(image)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["run_id"] == trained.run_id and report["images"][0]["text"] == "3"
    assert main(["--experiment", "nope", "--best", "--tracking-uri", trained.uri, str(image)]) == 2
    assert capsys.readouterr().err.strip() == f"digits_bench: error: no experiment 'nope' in the MLflow store {trained.uri}"


def test_checkpoint_path_finds_its_config(trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture):
    image = str(finish(draw(paper(120, 120), trained.digit(5, 5), 20, 20, 3), tmp_path / "five.jpg"))
    # in checkpoints/<run id>/: the config comes from that run
    assert main(["--checkpoint", str(trained.checkpoint), "--tracking-uri", trained.uri, "--save", str(tmp_path / "seen"), image]) == 0
    out = capsys.readouterr().out
    assert "│ 5 " in out and "│ 5:" in out  # the rich table: read "5", digit 5 with its probability
    assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == ["five_annotated.png", "five_digit0_5.png"]
    assert out.splitlines()[-1].startswith(f"saved 2 images to {tmp_path / 'seen'}: ")  # it says what it wrote
    # copied elsewhere: needs --config, or says so
    alone = tmp_path / "model.ckpt"
    alone.write_bytes(trained.checkpoint.read_bytes())
    assert main(["--checkpoint", str(alone), image]) == 2
    assert capsys.readouterr().err == (f"digits_bench: error: no config for checkpoint {alone}: "
                                       "put the run's config.yaml next to it or pass --config PATH\n")
    config = Path(client_for(trained.store).download_artifacts(trained.run_id, "config.yaml", str(tmp_path)))
    assert main(["--checkpoint", str(alone), "--config", str(config), "--json", image]) == 0
    assert json.loads(capsys.readouterr().out)["images"][0]["text"] == "5"


def test_example_image(trained: Trained):
    example = ROOT / "examples" / "year_2017.png"
    assert example.stat().st_size < 50_000
    reading = read_image(trained.module, example)
    assert reading.text == "2017" and reading.page.inverted


def test_a_registered_model_reads_digits(trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture):
    """The run's MLflow Model, registered (`python -m digits_bench.register`), is named by models:/NAME/VERSION and
    reads as the run does."""
    from digits_bench.register.__main__ import main as register

    assert register(["predict_digits", "--run", trained.run_id, "--tracking-uri", trained.uri]) == 0
    version = 1
    assert capsys.readouterr().out.startswith(f"run {trained.run_id}: its model is models:/predict_digits/1\n")
    assert register(["predict_digits", "--run", "f" * 32, "--tracking-uri", trained.uri]) == 2
    assert capsys.readouterr().err == f"digits_bench: error: no run '{'f' * 32}' in the MLflow store {trained.uri}\n"
    image = str(finish(draw(paper(120, 120), trained.digit(4, 5), 20, 20, 3), tmp_path / "four.jpg"))
    assert main(["--model", f"models:/predict_digits/{version}", "--tracking-uri", trained.uri, "--json", image]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"][0]["text"] == "4"
    assert report["model"] == {"model": "lenet", "source": f"models:/predict_digits/{version}", "run_id": trained.run_id, "checkpoint": trained.checkpoint.name}
    crops = np.stack([trained.digit(d, 1) for d in range(10)])
    assert (classify(loading.from_model_uri(f"models:/predict_digits/{version}", trained.uri).module, crops)[0] ==
            classify(trained.module, crops)[0]).all()
    assert main(["--model", "models:/predict_digits/99", "--tracking-uri", trained.uri, image]) == 2
    assert capsys.readouterr().err.startswith("digits_bench: error: no MLflow Model models:/predict_digits/99")


def test_a_store_that_cannot_be_reached_or_was_moved_says_which(tmp_path: Path, isolated_store: Path,
                                                              capsys: pytest.CaptureFixture):
    """An unreachable server answers in seconds (not MLflow's minutes of retries), and neither it nor a store moved
    away from its artifacts reads as "no run"."""
    from .conftest import TINY

    image = str(ROOT / "examples" / "year_2017.png")
    assert main(["--run", "0" * 32, "--tracking-uri", "http://127.0.0.1:9", image]) == 2
    assert "cannot reach the MLflow server http://127.0.0.1:9" in capsys.readouterr().err
    run_id = train(compose(*TINY, "model=linear")).run_id
    moved = tmp_path / "moved"
    isolated_store.rename(moved)
    capsys.readouterr()
    assert main(["--run", run_id, "--tracking-uri", f"sqlite:///{moved / 'mlflow.db'}", image]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"run {run_id}: its artifacts should be at {isolated_store}/artifacts/" in line and "moved store" in line


@pytest.mark.skipif(not __import__("digits_bench.predict.evalset", fromlist=["x"]).handwriting_fonts(),
                    reason="handwriting fonts not installed (make system-deps)")
def test_predict_eval_scores_a_run_per_condition_through_predicts_path(trained: Trained, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture):
    """`make predict-eval RUN=<id>`: every image of the set read as predict reads it, scored per condition."""
    import pandas as pd

    from digits_bench.predict.evalset import CONDITIONS, MNIST_SOURCE, SKLEARN_8X8, STROKES_SOURCE, VERSION
    from digits_bench.predict.evaluate import main as evaluate

    out = tmp_path / "results"
    args = ["--run", trained.run_id, "--tracking-uri", trained.uri, "--per-condition", "2", "--held-out", "30", "--out", str(out)]
    assert evaluate(args) == 0
    scored = pd.read_csv(out / f"predict-eval-{trained.run_id}.csv", dtype={"text": str, "read": str}, keep_default_na=False)
    held_out = scored[scored["condition"] == SKLEARN_8X8]
    assert len(scored) == len(CONDITIONS) * 3 + 30 and set(scored["condition"]) == {*CONDITIONS, SKLEARN_8X8}
    assert (scored["right"] == (scored["read"] == scored["text"])).all()  # scored against what is written
    assert held_out["text"].tolist() == [str(i % 10) for i in range(30)]  # load_digits' first 30: 0-9 three times
    assert held_out["right"].mean() >= 0.5  # 8x8 scans of other writers, read by a 1-epoch LeNet
    again = read_image(loading.from_run(client_for(trained.store), trained.run_id).module,
                       DATA_DIR / f"evalset-v{VERSION}-0-2" / scored["file"][0]).text  # predict's own reading of one image
    assert again == scored["read"][0]
    text = (out / f"predict-eval-{trained.run_id}.md").read_text()
    assert all(f"| {name}" in text for name in ["fonts", "strokes", "overall (not MNIST)", *CONDITIONS, SKLEARN_8X8])
    assert all(f"| {style}" in text for style in scored.loc[scored["source"] == STROKES_SOURCE, "style"])  # by style
    lines = capsys.readouterr().out.splitlines()
    (overall,) = [line for line in lines if line.startswith("overall (not MNIST)")]
    singles = scored[(scored["kind"] == "single") & (scored["condition"] != SKLEARN_8X8)]
    set_only = singles[singles["source"] != MNIST_SOURCE]["right"].mean()  # MNIST's writers and the held-out digits apart
    assert float(overall.split()[3]) == pytest.approx(100 * set_only, abs=0.051)  # percent, one decimal
    assert any(line.startswith("weakest styles (strokes, single digits): ") for line in lines)

    assert evaluate([*args, "--ablate"]) == 0  # what each preprocessing step is worth: one row per step switched off
    steps = pd.read_csv(out / f"predict-eval-{trained.run_id}-steps.csv", index_col="preprocessing")
    assert list(steps.index) == ["default steps", "with thicken", "with thin", "without keep_aspect"]
    assert steps.loc["default steps", "not MNIST"] == pytest.approx(set_only)  # each source on its own, single digits
    assert steps.loc["default steps", "8x8 held out"] == pytest.approx(held_out["right"].mean())
    assert {"fonts", "strokes", "MNIST again", "rows cut right"} <= set(steps.columns)
    crops = np.stack([trained.digit(d, 0) for d in range(10)])  # --tta: the same reading of digits read with certainty
    assert (classify(trained.module, crops, tta=True)[0] == classify(trained.module, crops)[0]).all()
