"""The dev set (tests/data/dev: 84 real pages, 98 chat-wording questions), cross-validated: the ranker,
refusal gate and fusion weighting are fitted on the other folds' labelled questions (folds grouped by gold
post) and every dev question is scored by a model that never saw it or its post's questions; the figures
are the mean over five splits into folds (one split alone moves them by a few questions).

Floors sit a few questions below the measured figures with the default (onnx) vectors the shipped weights
were fitted on: hit@1 0.72, hit@3 0.84, evid@3 0.74, refusal 0.93, answered 0.93 (keyword 0.62 / 0.85 /
0.73, dense 0.66 / 0.89 / 0.80). Quotes are ordered by a post model (with each post's rank in the dense and
keyword halves) times a within-post sentence model (with each sentence's dense rank in its post and its
cosine with the question beyond the post's topic) and widened to short excerpts (<= 4 sentences, <= 90
words, 110 for a well-scored neighbour); a second quote of one post weighs half; three quotes of one post
give the last to a close other post; the refusal threshold weighs a wrong refusal twice a wrong answer."""

from pathlib import Path

import pytest

from pbrbot.cv_report import cv_report, load_items
from pbrbot.evaluate import load_questions
from pbrbot.fit import default_question_files

DEV = Path(__file__).parent / "data" / "dev"


@pytest.fixture(scope="module")
def dev_services(tmp_path_factory, real_embedder):
    from conftest import make_services
    from pbrbot.ingest import ingest

    svc = make_services(tmp_path_factory.mktemp("dev") / "data", embedder=real_embedder)
    ingest(svc.store, svc.settings, [str(DEV / "archive.jsonl")])
    svc.run_index(progress=False)
    yield svc
    svc.close()


@pytest.mark.slow
def test_dev_set_cross_validated_floors(dev_services):
    report = load_questions(DEV / "questions.jsonl")
    train = load_items([f for f in default_question_files() if f.exists()])
    data = cv_report(dev_services.answerer, dev_services.settings.data_dir, report, train)
    ours, keyword, dense = (data["systems"][s] for s in ("pbrbot", "keyword", "dense"))
    assert ours["answerable"] == 73 and ours["out_of_scope"] == 25
    figures = {k: data["systems"]["pbrbot"][k] for k in ("hit_at_1", "hit_at_3", "evidence_at_3", "refusal")}
    assert data["repeats"] == 5
    assert ours["hit_at_1"] >= 0.69 and ours["hit_at_3"] >= 0.81 and ours["evidence_at_3"] >= 0.70, figures
    assert ours["refusal"] >= 0.88 and data["answered"] >= 0.90, (figures, data["answered"])
    assert ours["hit_at_1"] >= max(keyword["hit_at_1"], dense["hit_at_1"]) - 0.02
    assert ours["hit_at_3"] >= keyword["hit_at_3"] - 0.05
    # the fitted fusion never loses to its halves by more than noise on held-out questions
    mrr = data["fusion_mrr"]
    assert mrr["fused"] >= max(mrr["dense"], mrr["keyword"]) - 0.03
    assert {"fact", "argument", "jargon", "comparison", "out_of_scope"} <= set(data["kinds"])


@pytest.mark.slow
def test_shipped_weights_on_questions_they_were_never_fitted_on(dev_services):
    """tests/data/written-questions.jsonl: 101 answerable questions (one or two per dev-archive post, each
    with an evidence phrase of its post) and 11 near-miss out-of-scope ones, written from the posts' text
    without the dev questions in view and kept out of every fit (fit.default_question_files). Their writers
    read the posts, and it shows: the keyword baseline beats dense here (hit@1 0.79 vs 0.59; on the dev
    set 0.62 vs 0.66), so trained on, they taught the post model to trust shared words (dev CV hit@3 0.844
    -> 0.827, refusal 0.936 -> 0.924). Held out, they check the shipped weights on a second style of
    question: measured 0.82 / 0.90 / 0.79, refusal 0.91 (keyword 0.79 / 0.90 / 0.84, dense 0.59 / 0.83 /
    0.74)."""
    from pbrbot.evaluate import evaluate

    written = load_questions(Path(__file__).parent / "data" / "written-questions.jsonl")
    assert not any(f.name == "written-questions.jsonl" for f in default_question_files())
    ours, keyword, dense = evaluate(dev_services.answerer, written)
    assert (ours.answerable, ours.out_of_scope) == (101, 11)
    figures = (ours.hit_at_1, ours.hit_at_3, ours.evidence_at_3, ours.refusal)
    assert ours.hit_at_1 >= 0.78 and ours.hit_at_3 >= 0.86 and ours.evidence_at_3 >= 0.74, figures
    assert ours.refusal >= 0.81, figures
    assert ours.hit_at_1 >= keyword.hit_at_1 - 0.02 and ours.hit_at_3 >= dense.hit_at_3, figures
