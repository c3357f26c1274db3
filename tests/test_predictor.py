"""sentiment.predictor: predictions shaped like their input, for every kind of text."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sentiment.models.lstm
from sentiment.artifacts import load_model, save_model
from sentiment.models.lstm import LSTMClassifier, PrecisionError, lstm_contributions, native_bfloat16
from sentiment.predictor import UNCERTAIN_BAND, Explanation, Prediction, Predictor, is_uncertain
from tests.conftest import REPOSITORY
from tests.test_training import made_up


@pytest.fixture
def predictor(small_ensemble: Predictor) -> Predictor:
    return small_ensemble


EDGE_CASES = [
    "",
    "   ",
    "<br /><br />",
    "!!!",
    "日本語のレビュー",
    "superb " * 10_000,
    "\x00\x01",
    "<script>alert(1)</script>",
]


def test_one_prediction_per_text_in_order(predictor: Predictor) -> None:
    texts = ["superb moving masterpiece loved", "awful boring dreadful waste", *EDGE_CASES]
    predictions = predictor.predict(texts)
    assert len(predictions) == len(texts)
    assert all(
        isinstance(p, Prediction) and p.label in ("positive", "negative", "unknown") and 0.0 <= p.score <= 1.0
        for p in predictions
    )
    assert [p.label for p in predictions[:2]] == ["positive", "negative"]
    assert all((p.label == "positive") == (p.score >= 0.5) for p in predictions if p.label != "unknown")
    assert predictions[0].to_json() == {"label": "positive", "score": predictions[0].score}


@pytest.mark.parametrize("text", ["...", "<br /><br />", "zqxj vvkw", "日本語のレビュー", "🌟🌟"])
def test_a_text_without_a_word_the_model_knows_is_unknown(predictor: Predictor, text: str) -> None:
    (prediction,) = predictor.predict([text])
    assert prediction == Prediction(label="unknown", score=0.5)
    assert predictor.predict_proba([text]).tolist() == [0.5]
    assert set(predictor.explain([text])[0].contributions) <= {0.0}
    known = predictor.predict([f"{text} superb"])[0]  # one known word and the model decides
    assert known.label in ("positive", "negative") and known.score != 0.5


def test_no_texts_no_predictions(predictor: Predictor) -> None:
    assert predictor.predict([]) == []
    assert predictor.predict_proba([]).shape == (0,)


def test_batch_and_single_predictions_agree(predictor: Predictor) -> None:
    texts = [*made_up(30, 9).text, *EDGE_CASES]
    together = predictor.predict_proba(texts)
    alone = np.array([predictor.predict_proba([text])[0] for text in texts])
    assert np.allclose(together, alone, atol=1e-6)


def test_a_predictor_needs_its_parts(predictor: Predictor) -> None:
    only_lstm = {"lstm": predictor.members["lstm"]}
    with pytest.raises(ValueError, match="needs its linear part"):
        Predictor(
            "ensemble",
            predictor.tokenizer_settings,
            predictor.vocabulary,
            predictor.encoding,
            only_lstm,
            predictor.ensemble,
        )
    with pytest.raises(ValueError, match="needs its weights"):
        Predictor("ensemble", predictor.tokenizer_settings, predictor.vocabulary, predictor.encoding, predictor.members)
    with pytest.raises(ValueError, match="unknown model family 'xgboost'"):
        Predictor("xgboost", predictor.tokenizer_settings, predictor.vocabulary, predictor.encoding, predictor.members)
    lstm_alone = Predictor("lstm", predictor.tokenizer_settings, predictor.vocabulary, predictor.encoding, only_lstm)
    texts = ["a superb film", "an awful film"]
    assert np.array_equal(
        lstm_alone.logits(texts), predictor.part_logits([predictor.tokenize(t) for t in texts])["lstm"]
    )


@pytest.mark.skipif(not native_bfloat16(), reason="this CPU has no native bfloat16 (the refusal is tested below)")
def test_bfloat16_scoring_agrees_with_float32(predictor: Predictor) -> None:
    texts = [*made_up(40, 11).text, *EDGE_CASES]
    exact = predictor.predict_proba(texts)
    try:
        assert predictor.use_precision("bfloat16") == "bfloat16"
        approximate = predictor.predict_proba(texts)
        assert predictor.use_precision("auto") == "bfloat16"
    finally:
        predictor.use_precision("float32")
    assert np.allclose(exact, approximate, atol=0.02)
    assert np.array_equal(predictor.predict_proba(texts), exact)


# How a CPU with AVX2 but neither AVX-512 nor bfloat16 looks to torch and oneDNN (SageMaker's older instances).
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
ON_AVX2_ONLY = """
import json, sys
from sentiment.artifacts import load_model
from sentiment.models.lstm import PrecisionError
predictor = load_model(sys.argv[1])
answer = {"auto": predictor.use_precision("auto"), "scores": predictor.predict_proba(["a fine film"]).tolist()}
try:
    predictor.use_precision("bfloat16")
except PrecisionError as error:
    answer["refused"] = str(error)
answer["after"] = predictor.precision
print(json.dumps(answer))
"""


def test_without_native_bfloat16_auto_is_float32_and_bfloat16_is_refused(predictor: Predictor, tmp_path: Path) -> None:
    save_model(predictor, tmp_path / "model")
    result = subprocess.run(
        [sys.executable, "-c", ON_AVX2_ONLY, str(tmp_path / "model")],
        env={**os.environ, **AVX2_ONLY},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["auto"] == "float32" and answer["after"] == "float32"
    assert "bfloat16 scoring is not possible on this CPU (AVX2, without native bfloat16)" in answer["refused"]
    assert "use float32 or auto" in answer["refused"]
    assert answer["scores"] == pytest.approx(predictor.predict_proba(["a fine film"]).tolist(), abs=1e-5)


def test_a_bfloat16_that_disagrees_with_float32_is_refused(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sentiment.models.lstm.lstm_logits

    def broken_bfloat16(
        model: LSTMClassifier, encoded: object, device: object = None, bfloat16: bool = False
    ) -> np.ndarray:
        # A kernel that runs but computes nonsense: the same network's float32 logits, moved far off.
        logits = real(copy.deepcopy(model).float(), encoded, device)  # type: ignore[arg-type]
        return logits + 5.0 if bfloat16 else logits

    monkeypatch.setattr(sentiment.models.lstm, "native_bfloat16", lambda: True)
    monkeypatch.setattr(sentiment.models.lstm, "lstm_logits", broken_bfloat16)
    with pytest.raises(PrecisionError, match="differs from float32"):
        predictor.use_precision("bfloat16")
    assert predictor.use_precision("auto") == "float32"
    assert predictor.precision == "float32"


def test_the_ensemble_explains_with_its_own_weights(small_ensemble: Predictor) -> None:
    (explanation,) = small_ensemble.explain(["A superb, moving film. I loved it, not awful at all!"])
    assert explanation.tokens == tuple(small_ensemble.tokenize("A superb, moving film. I loved it, not awful at all!"))
    tokens = list(explanation.tokens)
    weights = small_ensemble.ensemble
    assert weights is not None and weights.short_weights is not None
    linear = small_ensemble.members["linear"].scorer  # type: ignore[attr-defined]
    lstm = small_ensemble.members["lstm"].network  # type: ignore[attr-defined]
    at_length, _ = weights.weights_at(np.array([len(tokens)]))  # this text's length decides
    assert at_length["lstm"][0] != weights.weights["lstm"]  # a short text: blended weights
    assert linear.negation_window > 0  # "not awful at all": a negation scope, explained with its own features
    linear_part = linear.contributions(small_ensemble.vocabulary, tokens)
    lstm_part = lstm_contributions(lstm, small_ensemble.vocabulary, tokens, 500, "head_tail")
    members = at_length["linear"][0] * linear_part + at_length["lstm"][0] * lstm_part
    # Plus the baseline's logit (what the members measure against), an equal part on each token.
    logit = small_ensemble.logits_of_tokens([tokens])[0]
    expected = members + (logit - members.sum()) / len(tokens)
    assert np.allclose(explanation.contributions, expected, atol=1e-6)
    shares = dict(zip(explanation.tokens, explanation.contributions, strict=True))
    assert shares["superb"] > 0 and shares["loved"] > 0


@pytest.mark.parametrize(
    "text",
    ["A superb, moving film. I loved it!", "I didn't like it at all.", "An awful, boring film.", "superb " * 600],
)
def test_the_shares_add_up_to_the_verdicts_distance_from_even(small_ensemble: Predictor, text: str) -> None:
    (explanation,) = small_ensemble.explain([text])
    assert sum(explanation.contributions) == pytest.approx(small_ensemble.logits([text])[0], abs=1e-6)


BUNDLED_NEGATIVES = [
    ("I didn't like it at all.", {"at", "all"}),
    ("A dull, lifeless film.", {"dull", "lifeless"}),
    ("The acting was terrible and the plot made no sense.", {"terrible", "no", "acting", "plot"}),
]


@pytest.mark.parametrize(("text", "red"), BUNDLED_NEGATIVES)
def test_a_clearly_negative_sentence_shows_its_words_pushing_negative(text: str, red: set[str]) -> None:
    """Measured against a review of unknown words, which the bundled model scores near 0.3, every word of
    "I didn't like it at all." pushed positive; measured from 0.5, the verdict's words push negative."""
    model = load_model()
    (explanation,) = model.explain([text])
    shares = dict(zip(explanation.tokens, explanation.contributions, strict=True))
    assert sum(shares.values()) < 0
    assert all(shares[word] < 0 for word in red)
    assert sum(share > 0 for share in shares.values()) <= 1  # at most one word (here "i") leans the other way
    assert explanation.top_words(1)[0]["contribution"] < 0


def test_explanations_say_where_each_token_stands_and_which_words_decided(small_ensemble: Predictor) -> None:
    text = "I didn't hate it: a SUPERB ﬁlm &amp; I loved it 😍"
    (explanation,) = small_ensemble.explain([text])
    assert [text[start:end] for start, end in explanation.spans][:3] == ["I", "did", "n't"]
    assert "SUPERB" in [text[start:end] for start, end in explanation.spans]
    documents = explanation.to_json()
    assert documents[0] == {"token": "i", "contribution": documents[0]["contribution"], "span": [0, 1]}
    words = explanation.top_words(3)
    assert len(words) == 3 and len({w["word"] for w in words}) == 3
    assert explanation.top_words(100) == sorted(explanation.top_words(100), key=lambda w: -abs(w["contribution"]))
    repeated = Explanation(tokens=("good", "plot", "good", "the"), contributions=(0.5, 0.1, 0.5, 0.0))
    assert repeated.top_words() == [{"word": "good", "contribution": 1.0}, {"word": "plot", "contribution": 0.1}]


def test_explanations_of_nothing_are_empty(small_ensemble: Predictor) -> None:
    assert small_ensemble.explain([]) == []
    (empty,) = small_ensemble.explain([""])
    assert empty.tokens == () and empty.contributions == () and empty.to_json() == []


def test_an_explanation_answers_each_token_with_its_rounded_share() -> None:
    explanation = Explanation(tokens=("good", "plot"), contributions=(0.123456, -2.0))
    assert explanation.to_json() == [{"token": "good", "contribution": 0.1235}, {"token": "plot", "contribution": -2.0}]


def test_the_uncertain_band_is_the_one_the_page_shows() -> None:
    app = (REPOSITORY / "web" / "app.js").read_text()
    band = re.search(r"const UNCERTAIN = \[([\d.]+), ([\d.]+)\]", app)
    assert band is not None, "web/app.js no longer declares its uncertain band as UNCERTAIN = [low, high]"
    assert (float(band[1]), float(band[2])) == UNCERTAIN_BAND
    assert is_uncertain("positive", 0.59) and is_uncertain("negative", 0.41)
    assert not is_uncertain("positive", 0.6) and not is_uncertain("negative", 0.4)
    assert not is_uncertain("unknown", 0.5)  # no word known: "Can't tell" on the page, not a verdict
