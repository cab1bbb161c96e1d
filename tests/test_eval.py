"""`pbrbot eval`: the acceptance floors on the seed questions, and bad input."""

import json

import pytest
from click.testing import CliRunner

from pbrbot.cli import main
from pbrbot.evaluate import Result, score, squash


def test_scoring_rules():
    questions = [{"id": "a", "kind": "fact", "gold_urls": ["https://x/p/"], "evidence": "£8 ‘million’"},
                 {"id": "b", "kind": "out_of_scope", "gold_urls": [], "evidence": None}]
    results = [Result(True, ["https://x/q", "https://x/p"], ["no", "paid  £8 “Million” in all"], 0.1),
               Result(False, [], [], 0.3)]
    s = score("pbrbot", questions, results)
    assert (s.hit_at_1, s.hit_at_3, s.evidence_at_3, s.refusal) == (0.0, 1.0, 1.0, 1.0)
    assert squash("It’s  “Binary”") == "its binary"


@pytest.mark.parametrize("urls, texts, evidence, if_hit", [
    (["https://x/p"], ["the answer is 42"], 1.0, 1.0),  # post and evidence quoted
    (["https://x/p"], ["an opening line"], 0.0, 0.0),  # the post quoted, not the sentence that answers
    (["https://x/q"], ["the answer is 42"], 1.0, None),  # evidence from another post: no hit@3 to count
    (["https://x/q"], ["nothing"], 0.0, None),
])
def test_evidence_if_hit_counts_only_questions_whose_post_is_quoted(urls, texts, evidence, if_hit):
    questions = [{"id": "a", "kind": "fact", "gold_urls": ["https://x/p/"], "evidence": "answer is 42"}]
    s = score("pbrbot", questions, [Result(True, urls, texts, 0.1)])
    assert s.evidence_at_3 == pytest.approx(evidence) and s.evidence_if_hit == (
        None if if_hit is None else pytest.approx(if_hit))


def test_cross_validations_are_averaged_and_a_miss_is_a_miss_in_half_of_them():
    from pbrbot.cv_report import mean_scores

    questions = [{"id": i, "kind": "fact", "gold_urls": ["https://x/p/"], "evidence": "answer is 42"}
                 for i in ("a", "b")] + [{"id": "c", "kind": "out_of_scope", "gold_urls": []}]
    good, bad = Result(True, ["https://x/p"], ["the answer is 42"], 0.1), Result(False, [], [], 0.1)
    runs = [score("pbrbot", questions, results) for results in
            ([good, good, bad], [good, bad, bad], [bad, bad, good])]
    mean = mean_scores(runs)
    assert mean.hit_at_3 == pytest.approx((1.0 + 0.5 + 0.0) / 3, abs=1e-3)
    assert mean.evidence_at_3 == pytest.approx(0.5, abs=1e-3)
    assert mean.refusal == pytest.approx(2 / 3, abs=1e-3)
    assert mean.evidence_if_hit == pytest.approx(1.0, abs=1e-3)  # the runs without a hit have none to count
    assert mean.misses == ["b"]  # b: missed in two of three; a: in one
    assert (mean.answerable, mean.out_of_scope) == (2, 1)


def test_bad_question_file_is_one_line_error(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "ok"}\nnot json\n')
    out = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "d"), "eval", str(bad)])
    assert out.exit_code == 1 and out.output.strip().startswith("error:") and "line 2" in out.output


@pytest.mark.slow
def test_eval_holds_the_floors_on_the_seed_questions(sample_services):
    out = CliRunner().invoke(main, ["--data-dir", str(sample_services.settings.data_dir), "eval", "--json"])
    assert out.exit_code == 0, out.output
    systems = json.loads(out.output.splitlines()[-1])["systems"]
    ours = systems["pbrbot"]
    assert ours["hit_at_3"] >= 0.9 and ours["evidence_at_3"] >= 0.8 and ours["refusal"] == 1.0
    for baseline in ("keyword", "dense"):
        assert ours["hit_at_3"] >= systems[baseline]["hit_at_3"]
        assert ours["evidence_at_3"] >= systems[baseline]["evidence_at_3"]
    assert ours["median_ms"] > 0 and ours["p95_ms"] >= ours["median_ms"]
