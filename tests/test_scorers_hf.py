"""The transformers-model scorers (`hf_lm`, `hf_classifier`) on tiny models built from configs.

The models are 2-layer Llamas of width 32 with a word-level tokenizer trained here with
`tokenizers`, saved with `save_pretrained` into a temp folder: nothing comes from a hub.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from curriculum.errors import UserError
from curriculum.scorers import build_scorer

_TRAIN_TEXT = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "free money click here now",
    "how many apples are left",
    "python is a programming language",
] * 4


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(_TRAIN_TEXT, trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>"]))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def tiny_model_folders(base: Path) -> dict[str, Path]:
    """Build (once per base folder) a causal LM, a 2-label classifier and a regression classifier."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    root = Path(base) / "tiny_hf_models"
    folders = {"lm": root / "lm", "classifier": root / "classifier", "regression": root / "regression"}
    if all((f / "config.json").exists() for f in folders.values()):
        return folders
    tokenizer = _tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    models = {
        "lm": LlamaForCausalLM(LlamaConfig(**common)),
        "classifier": LlamaForSequenceClassification(
            LlamaConfig(**common, num_labels=2, id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1})
        ),
        "regression": LlamaForSequenceClassification(LlamaConfig(**common, num_labels=1)),
    }
    for key, model in models.items():
        model.save_pretrained(folders[key])
        tokenizer.save_pretrained(folders[key])
    return folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    return tiny_model_folders(tmp_path_factory.getbasetemp())


def test_hf_lm_score_is_the_mean_token_log_probability(folders):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    scorer = build_scorer({"name": "hf_lm", "path": str(folders["lm"]), "device": "cpu"})
    text = "the cat sat on the mat"
    tok = AutoTokenizer.from_pretrained(folders["lm"])
    model = AutoModelForCausalLM.from_pretrained(folders["lm"]).eval()
    ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"], tok.eos_token_id]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).mean().item()
    batch = ["a dog ran", text, "", "free money click here now " * 10]
    scores = scorer.score_texts(batch)
    assert scores[1] == pytest.approx(logp, abs=1e-5)
    # padding and batch composition do not change a document's score
    assert scorer.score_texts([text])[0] == pytest.approx(scores[1], abs=1e-5)
    assert np.isfinite(scores).all() and scores[2] > -math.inf


def test_hf_classifier_log_odds_and_regression(folders):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = ["the cat sat on the mat", "free money click here now", "a"]
    two = build_scorer({"name": "hf_classifier", "path": str(folders["classifier"]), "label": "good"})
    tok = AutoTokenizer.from_pretrained(folders["classifier"])
    model = AutoModelForSequenceClassification.from_pretrained(folders["classifier"]).eval()
    with torch.no_grad():
        logits = model(torch.tensor([tok(texts[0])["input_ids"]])).logits[0]
    assert two.score_texts(texts)[0] == pytest.approx((logits[1] - logits[0]).item(), abs=1e-5)
    flipped = build_scorer({"name": "hf_classifier", "path": str(folders["classifier"]), "label": 0})
    np.testing.assert_allclose(flipped.score_texts(texts), -two.score_texts(texts), atol=1e-5)
    regression = build_scorer({"name": "hf_classifier", "path": str(folders["regression"])})
    assert np.isfinite(regression.score_texts(texts)).all()
    with pytest.raises(UserError, match="not one of the model's labels"):
        build_scorer({"name": "hf_classifier", "path": str(folders["classifier"]), "label": "great"})


def test_model_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        build_scorer({"name": "hf_lm", "path": str(tmp_path / "missing")})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_hf_lm_on_cuda_matches_cpu(folders):
    cpu = build_scorer({"name": "hf_lm", "path": str(folders["lm"]), "device": "cpu"})
    gpu = build_scorer({"name": "hf_lm", "path": str(folders["lm"]), "device": "cuda", "dtype": "float32"})
    texts = ["the cat sat on the mat", "free money"]
    np.testing.assert_allclose(gpu.score_texts(texts), cpu.score_texts(texts), atol=1e-3)
