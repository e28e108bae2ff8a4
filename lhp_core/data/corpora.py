"""Text corpora for training and evaluation: NLTK packages, WikiText-2, CHILDES vs Wikipedia.

Corpus names (:func:`names`):

``abc``, ``brown``, ``inaugural``, ``movie_reviews``, ``state_union``, ``treebank``, ``webtext``
    NLTK data packages, read inside their zips. One document per file (``abc`` has two
    files of many short news stories, so its stories, separated by blank lines, are the
    documents). Tagged/tokenised text (Brown, movie reviews, treebank) is detokenised.
``wikitext2_valid``, ``wikitext2_test``
    WikiText-2 validation/test, one document per article (split at ``= Title =`` lines).
``childes``
    CHILDES child-directed speech (English validation split), one document per transcript,
    one utterance per line.
``wikipedia``
    The size-matched Wikipedia sentences of the same study (lower-cased), one document each.

Licenses differ per corpus; see ``data_manifests/corpora.yaml``.
"""
from __future__ import annotations

import re
import zipfile
from functools import cache, lru_cache

from lhp_core.data.fetch import fetch
from lhp_core.data.tables import read_csv

DATASET_ID = "corpora"
_NLTK = ("abc", "brown", "inaugural", "movie_reviews", "state_union", "treebank", "webtext")
_OTHER = ("childes", "wikipedia", "wikitext2_test", "wikitext2_valid")

# Package metadata, not text: README, Brown's file list and genre index.
_NOT_DATA = {"README", "CONTENTS", "cats.txt"}

# Tokens that attach to the previous token / the next token when detokenising.
_NO_SPACE_BEFORE = {".", ",", ";", ":", "!", "?", "%", ")", "]", "}", "...", "''",
                    "n't", "'s", "'re", "'ve", "'m", "'ll", "'d", "'S", "N'T", "'RE", "'VE", "'M", "'LL", "'D"}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "``", "#"}
_WIKITEXT_JOINERS = {"@-@": "-", "@,@": ",", "@.@": "."}

# Brown base tag -> universal tag, following Petrov, Das & McDonald (2012) en-brown.map
# where it is known (AP -> ADJ, ABL/ABN -> PRT, PP$ -> DET); not guaranteed identical to it.
_UNIVERSAL = {
    **dict.fromkeys("nn nn$ nns nns$ np np$ nps nps$ nr nr$ nrs".split(), "NOUN"),
    **dict.fromkeys("pn pn$ pp$$ ppl ppls ppo pps ppss wpo wps".split(), "PRON"),
    **dict.fromkeys("abx at dt dt$ dti dts dtx ex pp$ wdt wp$".split(), "DET"),
    **dict.fromkeys("abl abn ap$".split(), "PRT"),
    **dict.fromkeys(
        "be bed bedz beg bem ben ber bez do dod doz hv hvd hvg hvn hvz md vb vbd vbg vbn vbz".split(), "VERB"
    ),
    **dict.fromkeys("ap jj jj$ jjr jjs jjt od".split(), "ADJ"),
    **dict.fromkeys("rb rb$ rbr rbt rn ql qlp wql wrb *".split(), "ADV"),
    **dict.fromkeys("in cs".split(), "ADP"),
    "cc": "CONJ",
    **dict.fromkeys("cd cd$".split(), "NUM"),
    **dict.fromkeys("rp to".split(), "PRT"),
    **dict.fromkeys([".", ",", ":", ";", "--", "(", ")", "``", "''", "'"], "."),
    **dict.fromkeys("uh nil".split(), "X"),
}
UNIVERSAL_TAGS = ("ADJ", "ADP", "ADV", "CONJ", "DET", "NOUN", "NUM", "PRON", "PRT", "VERB", ".", "X")


def names() -> list[str]:
    """All corpus names accepted by :func:`documents`."""
    return sorted(_NLTK + _OTHER)


def detokenize(tokens: list[str] | str) -> str:
    """Join Treebank-style tokens into ordinary text.

    Handles punctuation spacing, clitics (``ca n't`` -> ``can't``), ````…''`` and
    straight double quotes (alternating open/close), and WikiText's ``@-@`` joiners.

    Parameters
    ----------
    tokens
        Tokens, or one whitespace-separated string of tokens.
    """
    toks = tokens.split() if isinstance(tokens, str) else list(tokens)
    out: list[str] = []
    glue_next = True  # no space before the first token
    open_quote = False
    for tok in toks:
        if tok in _WIKITEXT_JOINERS:
            out.append(_WIKITEXT_JOINERS[tok])
            glue_next = True
            continue
        if tok == '"':
            tok = "``" if not open_quote else "''"
        if tok == "``":
            open_quote = True
            out.append(("" if glue_next else " ") + '"')
            glue_next = True
            continue
        if tok == "''":
            open_quote = False
            out.append('"')
            glue_next = False
            continue
        attach = glue_next or tok in _NO_SPACE_BEFORE or (tok[0] in "'nN" and tok.lower() in _NO_SPACE_BEFORE)
        out.append(("" if attach else " ") + tok)
        glue_next = tok in _NO_SPACE_AFTER
    return "".join(out)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # several NLTK packages predate UTF-8
        return raw.decode("latin-1")


def _zip_members(name: str) -> list[tuple[str, str]]:
    """(member name, text) of every data file of an NLTK package, README excluded."""
    path = fetch(DATASET_ID, f"nltk/{name}.zip")
    with zipfile.ZipFile(path) as zf:
        members = sorted(
            i.filename
            for i in zf.infolist()
            if not i.is_dir() and i.filename.rsplit("/", 1)[-1] not in _NOT_DATA and "/README" not in i.filename
        )
        return [(m, _decode(zf.read(m))) for m in members]


# Words may themselves contain '/', e.g. '1/2/cd': greedy matching puts the tag after the last one.
_WORD_TAG = re.compile(r"(\S+)/(\S+)")


def _brown_word_tags(line: str) -> list[tuple[str, str]]:
    return _WORD_TAG.findall(line)


@lru_cache(maxsize=1)
def _brown_files() -> list[tuple[str, list[list[list[tuple[str, str]]]]]]:
    """Brown files as paragraphs of sentences of (word, Brown tag); parsed once per process."""
    out = []
    for member, text in _zip_members("brown"):
        paragraphs = []
        for block in re.split(r"\n\s*\n", text):
            sentences = [_brown_word_tags(line) for line in block.splitlines() if line.strip()]
            if sentences:
                paragraphs.append(sentences)
        out.append((member, paragraphs))
    return out


def coarse_brown_tag(tag: str, tagset: str = "universal") -> str:
    """Coarse POS of a Brown tag.

    The base tag is the first part of the Brown tag: title/headline/cited suffixes
    (``-tl``, ``-hl``, ``-nc``), contraction parts (``+bez``) and negation (``*``) are
    dropped (``nn-tl`` -> ``nn``, ``ppss+md`` -> ``ppss``, ``md*`` -> ``md``). With
    ``tagset="universal"`` that base is mapped to the 12 universal tags
    (:data:`UNIVERSAL_TAGS`); foreign words (``fw-*``) are ``X``. With ``tagset="brown"``
    the upper-cased base tag is returned.
    """
    if tagset not in ("universal", "brown"):
        raise ValueError(f"tagset must be 'universal' or 'brown', not {tagset!r}")
    t = tag.lower()
    foreign = t.startswith("fw-")
    if foreign:
        t = t[3:]
    while len(t) > 3 and t[-3:] in ("-tl", "-hl", "-nc"):
        t = t[:-3]
    t = t.split("+", 1)[0] if not t.startswith("+") else t
    if len(t) > 1 and t.endswith("*"):
        t = t[:-1]
    if tagset == "brown":
        return ("FW-" if foreign else "") + t.upper()
    if foreign:
        return "X"
    return _UNIVERSAL.get(t, "X")


@lru_cache(maxsize=2)
def _brown_tagged(tagset: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    coarse: dict[str, str] = {}  # ~470 distinct tags for 1.16M tokens: map each once
    for _, paragraphs in _brown_files():
        for para in paragraphs:
            for sent in para:
                for _, t in sent:
                    if t not in coarse:
                        coarse[t] = coarse_brown_tag(t, tagset)
    return tuple(
        tuple((w, coarse[t]) for w, t in sent)
        for _, paragraphs in _brown_files()
        for para in paragraphs
        for sent in para
    )


def brown_tagged_sentences(tagset: str = "universal") -> list[list[tuple[str, str]]]:
    """Every Brown sentence as ``[(word, coarse tag), ...]`` for POS probing.

    Parameters
    ----------
    tagset
        ``"universal"`` (12 tags, :data:`UNIVERSAL_TAGS`) or ``"brown"`` (the base Brown
        tag, e.g. ``NN``, ``VBD``); see :func:`coarse_brown_tag`.

    Returns
    -------
    list of list of (str, str)
        57,340 sentences in corpus order (files ``ca01`` … ``cr09``).
    """
    return [list(s) for s in _brown_tagged(tagset)]


def _wikitext_articles(text: str, detok: bool) -> list[str]:
    articles: list[list[str]] = []
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        is_title = re.fullmatch(r"= [^=].* =", s) is not None
        heading = re.fullmatch(r"(=+) (.*) \1", s)
        if is_title or not articles:
            articles.append([])
        if detok:
            articles[-1].append(detokenize(heading.group(2) if heading else s))
        else:
            articles[-1].append(s)
    return ["\n".join(a) for a in articles]


@cache
def _documents(name: str, detok: bool) -> tuple[str, ...]:
    if name in ("wikitext2_valid", "wikitext2_test"):
        fname = "val.txt" if name.endswith("valid") else "test.txt"
        text = fetch(DATASET_ID, f"wikitext-2/{fname}").read_text(encoding="utf-8")
        return tuple(_wikitext_articles(text, detok))
    if name == "childes":
        df = read_csv(fetch(DATASET_ID, "childes_vs_wiki/english/random/validation_in_context.csv"))
        fix = detokenize if detok else str.strip
        # groupby(sort=False) keeps the file's transcript/age order
        return tuple("\n".join(fix(u) for u in g["text"].astype(str))
                     for _, g in df.groupby("transcript_id", sort=False))
    if name == "wikipedia":
        df = read_csv(fetch(DATASET_ID, "childes_vs_wiki/english/wikipedia/validation.csv"))
        fix = detokenize if detok else str.strip
        return tuple(fix(s) for s in df["text"].astype(str))
    if name == "brown":
        return tuple(
            "\n".join(" ".join((detokenize if detok else " ".join)([w for w, _ in sent]) for sent in para)
                      for para in paras)
            for _, paras in _brown_files()
        )
    members = _zip_members(name)
    if name == "treebank":
        members = [(m, t) for m, t in members if m.startswith("treebank/raw/")]
        return tuple(re.sub(r"^\s*\.START\s*", "", t).strip() for _, t in members)
    if name == "movie_reviews":
        fix = detokenize if detok else str.strip
        return tuple(" ".join(fix(line) for line in t.splitlines() if line.strip()) for _, t in members)
    if name == "abc":
        return tuple(story.strip() for _, t in members for story in re.split(r"\n\s*\n", t) if story.strip())
    return tuple(t.strip() for _, t in members)


def documents(name: str, detokenized: bool = True) -> list[str]:
    """Documents of one corpus as plain strings.

    Parameters
    ----------
    name
        One of :func:`names`.
    detokenized
        Join tokenised corpora (Brown, movie reviews, WikiText-2, CHILDES, Wikipedia)
        into ordinary text (default). ``False`` keeps their tokenisation (space-separated
        tokens; WikiText headings kept as ``= = Heading = =``), e.g. to compare with
        published WikiText perplexities. Raw-text corpora are unaffected.

    Returns
    -------
    list of str
        One entry per document, in corpus order.
    """
    if name not in names():
        raise KeyError(f"unknown corpus {name!r}; valid corpora: {', '.join(names())}")
    return list(_documents(name, detokenized))
