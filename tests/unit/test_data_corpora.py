"""corpora loader: document counts against SOURCE.md's independent token counts, detokeniser, Brown tags."""
from __future__ import annotations

import zipfile

import pytest

from lhp_core.data import corpora
from lhp_core.data.fetch import fetch


def test_names() -> None:
    assert corpora.names() == [
        "abc", "brown", "childes", "inaugural", "movie_reviews", "state_union",
        "treebank", "webtext", "wikipedia", "wikitext2_test", "wikitext2_valid",
    ]
    with pytest.raises(KeyError, match="valid corpora: abc"):
        corpora.documents("wikitext103")


@pytest.mark.parametrize(
    "name, n_docs, n_tokens",
    [
        # whitespace-token counts from data/corpora/SOURCE.md (computed there with str.split on the raw files)
        ("abc", None, 663_964),
        ("state_union", 65, 349_711),
        ("webtext", 6, 300_502),
        ("inaugural", 59, 138_096),
        ("wikitext2_valid", None, 213_886),
        ("wikitext2_test", None, 241_211),
        ("childes", None, 350_143),
        ("wikipedia", 16_316, 398_611),
        ("movie_reviews", 2000, 1_492_681),
        ("treebank", 199, None),
    ],
)
def test_raw_documents_preserve_every_token(name: str, n_docs: int | None, n_tokens: int | None) -> None:
    docs = corpora.documents(name, detokenized=False)
    if n_docs is not None:
        assert len(docs) == n_docs
    if n_tokens is not None:
        assert sum(len(d.split()) for d in docs) == n_tokens
    assert all(d.strip() for d in docs)


def test_treebank_raw_matches_zip_members() -> None:
    docs = corpora.documents("treebank")
    with zipfile.ZipFile(fetch("corpora", "nltk/treebank.zip")) as zf:
        first = zf.read("treebank/raw/wsj_0001").decode()
    assert docs[0] == first.replace(".START", "").strip()
    assert docs[0].startswith("Pierre Vinken, 61 years old")


def test_wikitext_articles_split_at_titles() -> None:
    raw = corpora.documents("wikitext2_valid", detokenized=False)
    assert all(d.startswith("= ") and not d.startswith("= =") for d in raw)
    assert raw[0].splitlines()[0] == "= Homarus gammarus ="
    detok = corpora.documents("wikitext2_valid")
    assert len(detok) == len(raw)
    assert detok[0].splitlines()[0] == "Homarus gammarus"
    assert "Homarus gammarus, known as the European lobster" in detok[0]


def test_childes_documents_are_transcripts() -> None:
    import pandas as pd

    df = pd.read_csv(fetch("corpora", "childes_vs_wiki/english/random/validation_in_context.csv"))
    docs = corpora.documents("childes", detokenized=False)
    assert len(docs) == df.transcript_id.nunique()
    assert sum(d.count("\n") + 1 for d in docs) == len(df)


@pytest.mark.parametrize(
    "tokens, text",
    [
        ("He said , `` I ca n't go . ''", 'He said, "I can\'t go."'),
        ('she said " yes " and left', 'she said "yes" and left'),
        ("a ( b ) [ c ] $ 5 costs 10 % !", "a (b) [c] $5 costs 10%!"),
        ("It 's 5 @-@ 10 @,@ 000 @.@ 5 km", "It's 5-10,000.5 km"),
        ("They 'll WON'T DO N'T", "They'll WON'T DON'T"),
    ],
)
def test_detokenize(tokens: str, text: str) -> None:
    assert corpora.detokenize(tokens) == text


def test_brown_documents_and_tagged_sentences() -> None:
    docs = corpora.documents("brown")
    assert len(docs) == 500
    assert docs[0].startswith('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent')
    sents = corpora.brown_tagged_sentences()
    # NLTK's brown.sents() has 57,340 sentences and brown.words() 1,161,192 tokens (= SOURCE.md count)
    assert len(sents) == 57_340
    assert sum(len(s) for s in sents) == 1_161_192
    assert sents[0][:3] == [("The", "DET"), ("Fulton", "NOUN"), ("County", "NOUN")]
    assert {t for s in sents for _, t in s} <= set(corpora.UNIVERSAL_TAGS)
    brown = corpora.brown_tagged_sentences("brown")
    assert brown[0][:2] == [("The", "AT"), ("Fulton", "NP")]


@pytest.mark.parametrize(
    "tag, universal, base",
    [
        ("nn-tl", "NOUN", "NN"),
        ("ppss+md", "PRON", "PPSS"),
        ("md*", "VERB", "MD"),
        ("*", "ADV", "*"),
        ("fw-nn-tl", "X", "FW-NN"),
        ("---hl", ".", "--"),
        ("pp$", "DET", "PP$"),
        ("vbd", "VERB", "VBD"),
        ("in", "ADP", "IN"),
        ("to", "PRT", "TO"),
    ],
)
def test_coarse_brown_tag(tag: str, universal: str, base: str) -> None:
    assert corpora.coarse_brown_tag(tag) == universal
    assert corpora.coarse_brown_tag(tag, "brown") == base
    with pytest.raises(ValueError, match="tagset"):
        corpora.coarse_brown_tag(tag, "penn")
