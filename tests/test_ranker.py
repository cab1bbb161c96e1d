"""The fitted ranker's parts that need no model: folds, fitting, thresholds, fusion, exclusive definitions."""

import numpy as np
import pytest

from pbrbot.definitions import exclusive
from pbrbot.fit import fit_listwise, fit_logistic, folds, threshold
from pbrbot.models import Hit
from pbrbot.ranker import FEATURES, POST_RETRIEVAL, load_model, post_retrieval
from pbrbot.search import fuse


def test_folds_keep_questions_about_one_post_together():
    items = [{"question": f"q{i}", "gold_urls": [f"https://x/p{i % 4}/"]} for i in range(12)]
    items.append({"question": "both", "gold_urls": ["https://x/p0", "https://x/p1/"]})  # joins p0 and p1
    items += [{"question": f"out{i}", "gold_urls": []} for i in range(5)]
    fold = folds(items, k=3)
    by_post: dict[str, set[int]] = {}
    for item, f in zip(items, fold):
        for url in item["gold_urls"]:
            by_post.setdefault(url.rstrip("/"), set()).add(f)
    assert all(len(fs) == 1 for fs in by_post.values())
    assert fold[0] == fold[1] == fold[12]  # p0, p1 and the question about both
    assert set(fold) == {0, 1, 2}


def test_each_repeat_is_another_split_that_keeps_a_posts_questions_together():
    items = [{"question": f"q{i}", "gold_urls": [f"https://x/p{i % 10}/"]} for i in range(30)]
    splits = [folds(items, k=5, repeat=r) for r in range(4)]
    assert splits[0] == folds(items, k=5)  # repeat 0 is the split of a single cross-validation
    assert folds(items, k=5, repeat=2) == splits[2]  # deterministic
    assert len({tuple(s) for s in splits}) == 4
    for split in splits:
        assert all(split[i] == split[i % 10] for i in range(30))
        assert sorted(split.count(f) for f in range(5)) == [6] * 5  # 10 posts of 3 questions: 2 per fold


def test_logistic_and_listwise_fits_find_the_signal():
    rng = np.random.default_rng(1)
    xs, ys = [], []
    for _ in range(40):  # per question: 30 candidates, the positive has a higher first feature
        x = rng.normal(size=(30, 3))
        y = np.zeros(30)
        y[0] = 1.0
        x[0, 0] += 4.0
        xs.append(x)
        ys.append(y)
    w, b, mean, scale = fit_logistic(np.vstack(xs), np.concatenate(ys))
    assert w[0] > 1.0 and abs(w[1]) < 0.5 and abs(w[2]) < 0.5 and b < 0
    order = fit_listwise(xs, ys, mean, scale)
    assert order[0] > 1.0 and abs(order[1]) < 0.5
    firsts = [int(np.argmax(((x - mean) / scale) @ order)) == 0 for x in xs]
    assert sum(firsts) >= 36


def test_threshold_separates_answerable_from_out_of_scope():
    best = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.75])
    answerable = np.array([True, True, True, False, False, False])
    cut = threshold(best, answerable)
    assert 0.3 < cut <= 0.7
    assert threshold(best, answerable, weight=0.9) <= 0.7  # wrong refusals weigh more: not higher


def test_common_words_lean_on_the_dense_half():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    keyword = [(3, 5.0), (2, 4.0), (1, 3.0)]
    fusion = {"keyword": 1.5, "common": 0.25, "rare": 0.4}
    assert fuse(dense, keyword, 0.9, fusion)[0][0] == 3  # a rare word: the keyword half carries weight
    assert fuse(dense, keyword, 0.1, fusion)[0][0] == 1  # all words common: the dense order wins
    assert fuse(dense, [], 0.9, fusion)[0][0] == 1


def test_a_sentence_defines_two_terms_only_when_it_defines_both():
    shared = {"post_id": 1, "index": 4, "score": 1.0, "defines": False}
    mined = {"binary": [dict(shared, score=0.9)], "frequency": [dict(shared, score=1.1),
                                                               {"post_id": 2, "index": 0, "score": 0.8}]}
    out = exclusive(mined)
    assert out["binary"] == [] and [i["post_id"] for i in out["frequency"]] == [1, 2]
    both = {k: [dict(i, defines=True) for i in v] for k, v in mined.items()}
    assert [i["post_id"] for i in exclusive(both)["binary"]] == [1]


def test_shipped_weights_load_and_score():
    model = load_model()
    x = np.zeros((4, len(FEATURES)))
    x[1, FEATURES.index("dense")] = 0.8
    x[1, FEATURES.index("context")] = 0.8
    probs, weights = model.score(x), model.rank(x)
    assert np.all((probs > 0) & (probs < 1)) and weights.max() == pytest.approx(1.0)
    assert int(np.argmax(weights)) == 1 and 0 < model.related <= model.found < 1
    assert set(model.fusion) == {"keyword", "common", "rare"}


def test_rank_weighs_the_post_then_the_sentence_within_it():
    from pbrbot.ranker import Model

    n, m = len(FEATURES), len(FEATURES) + len(POST_RETRIEVAL)
    dense, first = FEATURES.index("dense"), FEATURES.index("first")
    post_w, within = np.zeros(m), np.zeros(n)
    post_w[dense], within[first] = 3.0, -2.0  # posts by their best dense cosine; inside one, not its opening
    model = Model(np.zeros(n), 0.0, np.zeros(n), np.ones(n), np.zeros(n), {}, 0.5, 0.1, within=within,
                  post={"weights": post_w, "mean": np.zeros(m), "scale": np.ones(m)})
    x = np.zeros((4, n))
    x[:2, dense] = 0.9  # post 7: its opening and a later sentence
    x[0, first] = 1.0
    x[2:, dense] = 0.2  # post 9: weaker
    weights = model.rank(x, [7, 7, 9, 9])
    assert weights.max() == pytest.approx(1.0) and int(np.argmax(weights)) == 1
    assert weights[0] == pytest.approx(np.exp(-2.0), rel=1e-6)  # the opening's share of post 7
    assert weights[2] == pytest.approx(weights[3]) and weights[2] < weights[0]
    # post 9's sentences share its weight: exp(3 * (0.2 - 0.9)) / 2, against post 7's best 1 / (1 + e^-2)
    assert weights[2] == pytest.approx(np.exp(-2.1) / 2 * (1 + np.exp(-2.0)), rel=1e-6)


def _hit(post_id: int, dense_rank: int | None, keyword_rank: int | None) -> Hit:
    return Hit(0, post_id, f"https://x/{post_id}/", "T", None, "text", 0, 4, 0.0, dense_rank, keyword_rank)


def test_post_retrieval_ranks_the_pool_posts_in_each_half_of_the_hybrid():
    # hits in fused order: post 5 (dense 4th, keyword 1st), post 3 (dense 1st only), post 5 again, post 8
    hits = [_hit(5, 4, 1), _hit(3, 1, None), _hit(5, None, 7), _hit(8, 10, 2)]
    out = post_retrieval(hits, np.array([3, 5, 8, 9]))  # post 9: sentences from a comparison side's search
    assert out.shape == (4, len(POST_RETRIEVAL))
    expected = {3: (1.0, 0.0, 1 / 2, np.log(2)), 5: (1 / 2, 1.0, 1.0, np.log(3)), 8: (1 / 3, 1 / 2, 1 / 3, np.log(2)),
                9: (0.0, 0.0, 0.0, 0.0)}
    for row, post in zip(out, (3, 5, 8, 9)):
        assert row == pytest.approx(expected[post], abs=1e-9), post


def test_the_post_model_can_follow_the_dense_half():
    from pbrbot.ranker import Model

    n, m = len(FEATURES), len(FEATURES) + len(POST_RETRIEVAL)
    post_w = np.zeros(m)
    post_w[n + POST_RETRIEVAL.index("dense_post")] = 4.0
    model = Model(np.zeros(n), 0.0, np.zeros(n), np.ones(n), np.zeros(n), {}, 0.5, 0.1, within=np.zeros(n),
                  post={"weights": post_w, "mean": np.zeros(m), "scale": np.ones(m)})
    x = np.zeros((2, n))
    weights = model.rank(x, [5, 3], [_hit(5, 9, 1), _hit(3, 1, None)])  # keyword prefers 5, dense 3
    assert weights[1] == pytest.approx(1.0) and weights[0] == pytest.approx(np.exp(4.0 * (1 / 2 - 1)))


def _post_of_blocks(parts: list[tuple[str, str]]):
    """A post of one sentence a block, from (kind, text) pairs."""
    from pbrbot.sentences import PostText

    text, blocks, spans = "", [], []
    for kind, part in parts:
        blocks.append((kind, len(text), len(text) + len(part)))
        spans.append((len(text), len(text) + len(part)))
        text += part + "\n"
    return PostText(1, "https://x/p/", "P", None, text, spans, list(range(len(parts))), blocks)


def test_quotes_widen_to_a_short_excerpt_never_taking_a_heading():
    from pbrbot.quotes import WINDOW_WORDS, Candidate, grow

    parts = [("h", "A heading here"), ("p", "One two three four five six seven eight nine ten eleven twelve."),
             ("p", "The key fact is stated in this sentence of thirteen words or so here."),
             ("p", " ".join(["word"] * (WINDOW_WORDS - 20)) + "."), ("p", "Last words.")]
    post = _post_of_blocks(parts)
    scores = {(1, 0): 0.9, (1, 1): 0.5, (1, 2): 1.0, (1, 3): 0.1, (1, 4): 0.0}
    pick = grow(Candidate(post, 2, 0, 1.0), scores)
    assert 2 in pick.indices and 0 not in pick.indices  # never the heading, though it scores well
    assert pick.words() <= WINDOW_WORDS or len(pick.indices) == 1
    assert pick.indices == [1, 2]  # the long paragraph after would pass the cap


def test_three_quotes_of_one_post_give_the_last_to_another_post_that_comes_close():
    from pbrbot.quotes import OTHER_POST_SHARE, Candidate, select
    from pbrbot.sentences import PostText

    def post(pid, sentences):
        text, blocks, spans = "", [], []
        for n, sentence in enumerate(sentences):
            blocks.append(("p", len(text), len(text) + len(sentence)))
            spans.append((len(text), len(text) + len(sentence)))
            text += sentence + "\n"
        return PostText(pid, f"https://x/{pid}/", f"P{pid}", None, text, spans, list(range(len(sentences))), blocks)

    long = " ".join(["filler"] * 50)  # one sentence a quote: two pass the widest window
    first = post(1, [f"Sentence {n} of the first post says {long} here." for n in range(9)])
    second = post(2, ["The other post states the answer in plain words.", f"Then {long} more."])

    def quotes(other_score):
        pool = [Candidate(first, i, 0, s) for i, s in ((0, 1.0), (4, 0.9), (8, 0.8))]
        pool.append(Candidate(second, 0, 1, other_score))
        return [(p.post.id, p.indices[0]) for p in select(pool, 3, floor=0.005)]

    assert quotes(OTHER_POST_SHARE * 0.8 * 1.2) == [(1, 0), (1, 4), (2, 0)]
    assert quotes(OTHER_POST_SHARE * 0.8 * 0.8) == [(1, 0), (1, 4), (1, 8)]


def test_a_well_scored_neighbour_gets_a_little_more_room_than_filler():
    from pbrbot.quotes import RELEVANT_SHARE, RELEVANT_WINDOW_WORDS, WINDOW_WORDS, Candidate, grow

    parts = [" ".join(["anchor"] * 40) + ".", " ".join(["answer"] * (WINDOW_WORDS - 30)) + "."]
    assert WINDOW_WORDS < 40 + WINDOW_WORDS - 30 <= RELEVANT_WINDOW_WORDS
    post = _post_of_blocks([("p", part) for part in parts])
    close = grow(Candidate(post, 0, 0, 1.0), {(1, 0): 1.0, (1, 1): RELEVANT_SHARE * 1.5})
    filler = grow(Candidate(post, 0, 0, 1.0), {(1, 0): 1.0, (1, 1): RELEVANT_SHARE * 0.5})
    assert close.indices == [0, 1] and filler.indices == [0]


def test_a_widened_quote_never_ends_on_an_introduction_it_cannot_finish():
    from pbrbot.quotes import Candidate, grow

    parts = [("p", "The report found poor practice in most of the contracts it read."),
             ("p", "The answer to the question is stated right here in plain words."),
             ("p", "In similar vein, the National Audit Office commented that:"),
             ("h", "A heading that is never quoted")]
    post = _post_of_blocks(parts)
    # the introduction scores better than the sentence before, so widening takes it first and then drops it
    pick = grow(Candidate(post, 1, 0, 1.0), {(1, 0): 0.1, (1, 1): 1.0, (1, 2): 0.5, (1, 3): 0.0})
    assert pick.indices == [0, 1]
    # an introduction that is the quoted sentence itself stays
    assert 2 in grow(Candidate(post, 2, 0, 1.0), {(1, 0): 0.1, (1, 1): 0.2, (1, 2): 1.0}).indices


def test_within_post_features_are_computed_per_post():
    from pbrbot.ranker import distinct_cosines, within_post_rank

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((9, 16)).astype(np.float32)
    qvec = rng.standard_normal(16).astype(np.float32)
    posts = [5, 2, 5, 9, 2, 5, 9, 9, 2]
    got = distinct_cosines(vectors, qvec, posts)
    for post in set(posts):  # by the definition: the cosine with the question less its post's mean
        mine = [i for i, p in enumerate(posts) if p == post]
        mean = vectors[mine].mean(axis=0)
        rest = qvec - (qvec @ mean) / (mean @ mean) * mean
        assert got[mine] == pytest.approx(vectors[mine] @ rest / np.linalg.norm(rest), abs=1e-5)
    values = np.array([0.3, 0.9, 0.8, 0.1, 0.2, 0.8, 0.5, 0.7, 0.4])
    # post 5: 0.3, 0.8, 0.8 (a tie keeps the candidates' order); post 2: 0.9, 0.2, 0.4; post 9: 0.1, 0.5, 0.7
    assert within_post_rank(values, posts) == pytest.approx([1 / 3, 1, 1, 1 / 3, 1 / 3, 1 / 2, 1 / 2, 1, 1 / 2])
    assert len(distinct_cosines(vectors[:0], qvec, [])) == 0 and len(within_post_rank(values[:0], [])) == 0
