"""Regenerate ``data_manifests/<id>.yaml`` from a data folder and its ``SHA256SUMS``.

The YAML files are the source of truth; this script exists because ``pythia_evals``
alone lists ~880 files. Run it only when the shared data folder changes::

    python data_manifests/_generate.py /work/shared/data

Upstream locations (repository, commit, path mapping) are transcribed from each
folder's ``SOURCE.md``.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import yaml

RAW = "https://raw.githubusercontent.com"
VICCO = f"{RAW}/ViCCo-Group/semantic_features_gpt_3/3b132af668bc61706b944dcfd6b01672d3a49c34/data"
SOURCE_NOTE = "provenance notes written for the lhp data mirror; not an upstream file, no download URL"


def _naturalstories(p: str) -> tuple[str | None, str | None]:
    return f"{RAW}/languageMIT/naturalstories/4700daad696e942f5aba23c957a7423d0de66612/{p}", None


def _provo(p: str) -> tuple[str | None, str | None]:
    base = f"{RAW}/wilcoxeg/MoTR/bee2685ad444e4b2a8aaa3323ee4901aa631b24c"
    if p == "README.md":
        return f"{base}/README.md", None
    return f"{base}/experiments/provo/data/{p}", None


def _tuckute(p: str) -> tuple[str | None, str | None]:
    study = f"{RAW}/gretatuckute/drive_suppress_brains/9078ec3055ac3962b5211757b02ea3683a6fb5e8"
    if p == "tuckute_averaged.csv":
        return (
            f"{RAW}/Andrea-de-Varda/multilingual-models-brain/6bc237d9477155387c8f1ddf28cefd5ad812996a"
            "/additional_analyses/control/tuckute_averaged.csv",
            "reassembled page by page from a text index (no git mirror); see SOURCE.md. "
            "The upstream file is expected to be identical but this was not checked against a download.",
        )
    if p == "README_drive_suppress_brains.md":
        return f"{study}/README.md", None
    if p == "LICENSE_drive_suppress_brains":
        return f"{study}/LICENSE", None
    raise KeyError(p)


def _things(p: str) -> tuple[str | None, str | None]:
    return f"{VICCO}/things/{p}", None


def _vicco(p: str) -> tuple[str | None, str | None]:
    return f"{VICCO}/{p}", None


def _corpora(p: str) -> tuple[str | None, str | None]:
    if p.startswith("nltk/"):
        name = p.split("/", 1)[1]
        return f"{RAW}/nltk/nltk_data/5db857e6f7df11eabb5e5665836db9ec8df07e28/packages/corpora/{name}", None
    if p.startswith("wikitext-2/"):
        name = p.split("/", 1)[1]
        return (
            f"{RAW}/mschrimpf/neural-nlp/6e1a989b24fff0ffd7cac67d880a94136c4b4fb5/ressources/ml/wikitext-2/{name}",
            None,
        )
    if p.startswith("childes_vs_wiki/"):
        rest = p.split("/", 1)[1]
        note = None
        if rest.endswith("validation_random.csv"):
            note = "same rows as validation_in_context.csv, shuffled: not additional data"
        return f"{RAW}/fpadovani/childes_vs_wiki/e82531187dad58b86c2ce85d9b6b023b8f116499/dataset/{rest}", note
    raise KeyError(p)


def _pythia(p: str) -> tuple[str | None, str | None]:
    return f"{RAW}/EleutherAI/pythia/a19eecb807ec2c79a39ebf18108816e6ffffc1d5/{p}", None


def _behavioral_phases(p: str) -> tuple[str | None, str | None]:
    return f"{RAW}/jmichaelov/lm-behavioral-phases/adf36bfedbe1844b162839be31a5e06e7af1fa27/{p}", None


def _blimp(p: str) -> tuple[str | None, str | None]:
    # Mirror paths are upstream paths: pythia/<file> in the tutorial folder, LICENSE at the root.
    return f"{RAW}/ANN-HumLang/ANN-HumLang-tutorials/8d9246375a7b154db01cee12bdafbf74706e7d65/{p}", None


def _inverse_scaling(p: str) -> tuple[str | None, str | None]:
    return f"{RAW}/jmichaelov/emergent-inabilities/eb36a6c85b852601f283c4a045221b44373fb987/{p}", None


def _wordbank(p: str) -> tuple[str | None, str | None]:
    return f"{RAW}/langcog/wordbank-datapage/a4a13722a40a8c3de5eaebfdd5d642f4d6850095/{p}", None


DATASETS: dict[str, dict] = {
    "naturalstories": dict(
        title="Natural Stories (self-paced reading)",
        description="10 stories (10,256 words) with per-word mean self-paced reading times (processed_wordinfo.tsv, "
        "2021 file, pre-2025 alignment: see SOURCE.md), the token table, Google Books n-gram frequencies and "
        "GPT-3 token log-probabilities.",
        license="CC BY-NC-SA 4.0",
        citation="@article{futrell2021natural,\n  title={The Natural Stories corpus: a reading-time corpus of English "
        "texts containing rare syntactic constructions},\n  author={Futrell, Richard and Gibson, Edward and Tily, "
        "Harry J. and Blank, Idan and Vishnevetsky, Anastasia and Piantadosi, Steven T. and Fedorenko, Evelina},\n"
        "  journal={Language Resources and Evaluation},\n  volume={55},\n  number={1},\n  pages={63--77},\n"
        "  year={2021},\n  doi={10.1007/s10579-020-09503-7}\n}",
        loader="lhp_core.data.naturalstories",
        url=_naturalstories,
    ),
    "provo_motr": dict(
        title="Provo passages read with Mouse Tracking for Reading (MoTR)",
        description="55 Provo passages; word-level MoTR reading measures (first fixation, gaze, total duration, "
        "go-past, regressions) for 51 readers, plus by-word predictability statistics.",
        license="no license file upstream (cite the MoTR paper and the Provo Corpus)",
        citation="@article{wilcox2024motr,\n  title={Mouse Tracking for Reading (MoTR): A new naturalistic "
        "incremental processing measurement tool},\n  author={Wilcox, Ethan G. and Ding, Cui and Sachan, Mrinmaya "
        "and J{\\\"a}ger, Lena A.},\n  journal={Journal of Memory and Language},\n  year={2024}\n}\n"
        "@article{luke2018provo,\n  title={The Provo Corpus: A large eye-tracking corpus with predictability norms},\n"
        "  author={Luke, Steven G. and Christianson, Kiel},\n  journal={Behavior Research Methods},\n  volume={50},\n"
        "  number={2},\n  pages={826--833},\n  year={2018}\n}",
        loader="lhp_core.data.provo",
        url=_provo,
    ),
    "brain_tuckute2024": dict(
        title="Tuckute et al. (2024) drive/suppress fMRI sentences",
        description="Left-hemisphere language-network response averaged over participants for 2,000 sentences "
        "(1,000 baseline, 500 drive, 500 suppress).",
        license="no license in the redistributing repo; original study code MIT",
        citation="@article{tuckute2024driving,\n  title={Driving and suppressing the human language network using "
        "large language models},\n  author={Tuckute, Greta and Sathe, Aalok and Srikant, Shashank and Taliaferro, "
        "Maya and Wang, Mingye and Schrimpf, Martin and Kay, Kendrick and Fedorenko, Evelina},\n"
        "  journal={Nature Human Behaviour},\n  year={2024},\n  doi={10.1038/s41562-023-01783-7}\n}",
        loader="lhp_core.data.tuckute",
        url=_tuckute,
    ),
    "things": dict(
        title="THINGS concepts and SPoSE similarity embeddings",
        description="1,854 object concepts with word metadata and categories, and the 49-d and 66-d SPoSE "
        "embeddings derived from human odd-one-out similarity judgements.",
        license="no license file upstream (THINGS terms apply)",
        citation="@article{hebart2019things,\n  title={THINGS: A database of 1,854 object concepts and more than "
        "26,000 naturalistic object images},\n  author={Hebart, Martin N. and Dickter, Adam H. and Kidder, Alexis "
        "and Kwok, Wan Y. and Corriveau, Anna and Van Wicklin, Caitlin and Baker, Chris I.},\n"
        "  journal={PLoS ONE},\n  volume={14},\n  number={10},\n  pages={e0223792},\n  year={2019}\n}\n"
        "@article{hebart2020revealing,\n  title={Revealing the multidimensional mental representations of natural "
        "objects underlying human similarity judgements},\n  author={Hebart, Martin N. and Zheng, Charles Y. and "
        "Pereira, Francisco and Baker, Chris I.},\n  journal={Nature Human Behaviour},\n  volume={4},\n"
        "  pages={1173--1185},\n  year={2020}\n}\n"
        "@article{hebart2023thingsdata,\n  title={THINGS-data, a multimodal collection of large-scale datasets for "
        "investigating object representations in human brain and behavior},\n  author={Hebart, Martin N. and "
        "Contier, Oliver and Teichmann, Lina and others},\n  journal={eLife},\n  volume={12},\n  pages={e82580},\n"
        "  year={2023}\n}",
        loader="lhp_core.data.things",
        url=_things,
    ),
    "word_similarity": dict(
        title="Word similarity and relatedness benchmarks",
        description="SimLex-999, MEN, WordSim-353, MTurk-287 and MTurk-771 word pairs with human ratings.",
        license="no license file upstream (original dataset terms apply)",
        citation="@article{hill2015simlex,\n  title={SimLex-999: Evaluating semantic models with (genuine) "
        "similarity estimation},\n  author={Hill, Felix and Reichart, Roi and Korhonen, Anna},\n"
        "  journal={Computational Linguistics},\n  volume={41},\n  number={4},\n  pages={665--695},\n  year={2015}\n}\n"
        "@article{bruni2014multimodal,\n  title={Multimodal distributional semantics},\n  author={Bruni, Elia and "
        "Tran, Nam Khanh and Baroni, Marco},\n  journal={Journal of Artificial Intelligence Research},\n"
        "  volume={49},\n  pages={1--47},\n  year={2014}\n}\n"
        "@article{finkelstein2002placing,\n  title={Placing search in context: The concept revisited},\n"
        "  author={Finkelstein, Lev and Gabrilovich, Evgeniy and Matias, Yossi and Rivlin, Ehud and Solan, Zach and "
        "Wolfman, Gadi and Ruppin, Eytan},\n  journal={ACM Transactions on Information Systems},\n  volume={20},\n"
        "  number={1},\n  pages={116--131},\n  year={2002}\n}\n"
        "@inproceedings{radinsky2011word,\n  title={A word at a time: computing word relatedness using temporal "
        "semantic analysis},\n  author={Radinsky, Kira and Agichtein, Eugene and Gabrilovich, Evgeniy and "
        "Markovitch, Shaul},\n  booktitle={Proceedings of WWW},\n  year={2011}\n}\n"
        "@inproceedings{halawi2012large,\n  title={Large-scale learning of word relatedness with constraints},\n"
        "  author={Halawi, Guy and Dror, Gideon and Gabrilovich, Evgeniy and Koren, Yehuda},\n"
        "  booktitle={Proceedings of KDD},\n  year={2012}\n}",
        loader="lhp_core.data.word_similarity",
        url=_vicco,
    ),
    "feature_norms": dict(
        title="Semantic feature production norms (McRae 2005, CSLB 2014)",
        description="McRae et al. (2005) and CSLB concept-property norms with production frequencies, plus a "
        "THINGS-to-norms concept-name map.",
        license="no license file upstream (original terms of the McRae and CSLB norms apply)",
        citation="@article{mcrae2005semantic,\n  title={Semantic feature production norms for a large set of living "
        "and nonliving things},\n  author={McRae, Ken and Cree, George S. and Seidenberg, Mark S. and McNorgan, "
        "Chris},\n  journal={Behavior Research Methods},\n  volume={37},\n  number={4},\n  pages={547--559},\n"
        "  year={2005}\n}\n"
        "@article{devereux2014cslb,\n  title={The Centre for Speech, Language and the Brain (CSLB) concept property "
        "norms},\n  author={Devereux, Barry J. and Tyler, Lorraine K. and Geertzen, Jeroen and Randall, Billi},\n"
        "  journal={Behavior Research Methods},\n  volume={46},\n  number={4},\n  pages={1119--1127},\n  year={2014},\n"
        "  doi={10.3758/s13428-013-0420-4}\n}",
        loader="lhp_core.data.feature_norms",
        url=_vicco,
    ),
    "corpora": dict(
        title="Text corpora (NLTK packages, WikiText-2, CHILDES vs Wikipedia)",
        description="Seven NLTK corpora (zipped), WikiText-2 validation and test, and CHILDES child-directed speech "
        "with size-matched Wikipedia (English validation splits).",
        license="per corpus: Brown non-commercial; movie_reviews CC BY 4.0; state_union and inaugural public domain; "
        "treebank LDC fair use, non-commercial; WikiText CC BY-SA; CHILDES TalkBank ground rules; "
        "abc/webtext none stated",
        citation="@book{bird2009nltk,\n  title={Natural Language Processing with Python},\n  author={Bird, Steven and "
        "Klein, Ewan and Loper, Edward},\n  publisher={O'Reilly},\n  year={2009}\n}\n"
        "@book{francis1979brown,\n  title={Brown Corpus Manual},\n  author={Francis, W. Nelson and Ku{\\v{c}}era, "
        "Henry},\n  publisher={Brown University},\n  year={1979}\n}\n"
        "@inproceedings{pang2004sentimental,\n  title={A sentimental education: Sentiment analysis using "
        "subjectivity summarization based on minimum cuts},\n  author={Pang, Bo and Lee, Lillian},\n"
        "  booktitle={Proceedings of ACL},\n  year={2004}\n}\n"
        "@article{marcus1993building,\n  title={Building a large annotated corpus of English: The Penn Treebank},\n"
        "  author={Marcus, Mitchell P. and Santorini, Beatrice and Marcinkiewicz, Mary Ann},\n"
        "  journal={Computational Linguistics},\n  volume={19},\n  number={2},\n  year={1993}\n}\n"
        "@article{merity2016pointer,\n  title={Pointer sentinel mixture models},\n  author={Merity, Stephen and "
        "Xiong, Caiming and Bradbury, James and Socher, Richard},\n  journal={arXiv:1609.07843},\n  year={2016}\n}\n"
        "@article{padovani2025child,\n  title={Child-directed language does not consistently boost syntax learning "
        "in language models},\n  author={Padovani, Francesca and others},\n  journal={arXiv:2505.23689},\n"
        "  year={2025}\n}\n"
        "@book{macwhinney2000childes,\n  title={The CHILDES Project: Tools for Analyzing Talk},\n"
        "  author={MacWhinney, Brian},\n  publisher={Lawrence Erlbaum},\n  year={2000}\n}",
        loader="lhp_core.data.corpora",
        url=_corpora,
    ),
    "pythia_evals": dict(
        title="Pythia v1 per-checkpoint LM Evaluation Harness results",
        description="Zero- and five-shot benchmark results (incl. LAMBADA perplexity) for the 16 Pythia v1 models "
        "at training checkpoints, plus the batch-size and gender-intervention variants.",
        license="Apache-2.0",
        citation="@inproceedings{biderman2023pythia,\n  title={Pythia: A suite for analyzing large language models "
        "across training and scaling},\n  author={Biderman, Stella and Schoelkopf, Hailey and Anthony, Quentin and "
        "Bradley, Herbie and O'Brien, Kyle and Hallahan, Eric and Khan, Mohammad Aflah and Purohit, Shivanshu and "
        "Prashanth, USVSN Sai and Raff, Edward and others},\n  booktitle={Proceedings of ICML},\n  year={2023}\n}",
        loader="lhp_core.data.pythia_evals",
        url=_pythia,
    ),
    "pythia_behavioral_phases": dict(
        title="Pythia behavioural phases: word log-probabilities vs n-gram statistics over training",
        description="Michaelov, Levy & Bergen (2025): per checkpoint, the correlation (Pearson, Spearman) over the "
        "words of NaWoCo between the model's word log-probability and 1- to 5-gram log-probabilities (Pile, "
        "OpenWebText) or contextual semantic similarity; Pythia 14m-12b (PolyPythia seeds for 14m-410m), "
        "GPT-2 (Mistral runs) and OpenWebText-trained 160M-class models; plus regression R².",
        license="Apache-2.0",
        citation="@inproceedings{michaelov2025behavioral,\n  title={Language Model Behavioral Phases are Consistent "
        "Across Architecture, Training Data, and Scale},\n  author={Michaelov, James A. and Levy, Roger P. and "
        "Bergen, Benjamin K.},\n  booktitle={Advances in Neural Information Processing Systems (NeurIPS)},\n"
        "  year={2025}\n}",
        loader="lhp_core.data.pythia_behavioral_phases",
        url=_behavioral_phases,
    ),
    "pythia_blimp": dict(
        title="BLiMP accuracy of Pythia-160m over training, ten seeds",
        description="Accuracy on the 67 BLiMP minimal-pair paradigms of Pythia-160m (PolyPythia seeds 0-9) at 24 "
        "checkpoints, from the tutorial materials of the ANN-HumLang workshop (Amsterdam, 2024).",
        license="MIT",
        citation="@inproceedings{vanderwal2025polypythias,\n  title={PolyPythias: Stability and Outliers across "
        "Fifty Language Model Pre-Training Runs},\n  author={van der Wal, Oskar and Lesci, Pietro and "
        "M{\\\"u}ller-Eberstein, Max and Saphra, Naomi and Schoelkopf, Hailey and Zuidema, Willem and Biderman, "
        "Stella},\n  booktitle={Proceedings of ICLR},\n  year={2025}\n}\n"
        "@article{warstadt2020blimp,\n  title={BLiMP: The Benchmark of Linguistic Minimal Pairs for English},\n"
        "  author={Warstadt, Alex and Parrish, Alicia and Liu, Haokun and Mohananey, Anhad and Peng, Wei and Wang, "
        "Sheng-Fu and Bowman, Samuel R.},\n  journal={Transactions of the Association for Computational "
        "Linguistics},\n  volume={8},\n  pages={377--392},\n  year={2020}\n}",
        loader="lhp_core.data.pythia_blimp",
        url=_blimp,
    ),
    "pythia_inverse_scaling": dict(
        title="Inverse Scaling Prize tasks and TruthfulQA over Pythia's pre-training",
        description="Michaelov & Bergen (2023): zero-shot accuracy of 8 Pythia sizes (70m-12b) at 8 checkpoints "
        "(steps 2,000-143,000) on the 10 multiple-choice Inverse Scaling Prize tasks and TruthfulQA (MC1, MC2), "
        "and the paper's per-task tests of parameters, tokens and their interaction.",
        license="MIT",
        citation="@inproceedings{michaelov2023emergent,\n  title={Emergent Inabilities? Inverse Scaling Over the "
        "Course of Pretraining},\n  author={Michaelov, James A. and Bergen, Benjamin K.},\n"
        "  booktitle={Findings of the Association for Computational Linguistics: EMNLP 2023},\n  year={2023}\n}\n"
        "@article{mckenzie2023inverse,\n  title={Inverse Scaling: When Bigger Isn't Better},\n  author={McKenzie, "
        "Ian R. and Lyzhov, Alexander and Pieler, Michael and Parrish, Alicia and Mueller, Aaron and Prabhu, Ameya "
        "and McLean, Euan and Kirtland, Aaron and Ross, Alexis and Liu, Alisa and others},\n"
        "  journal={Transactions on Machine Learning Research},\n  year={2023}\n}\n"
        "@inproceedings{lin2022truthfulqa,\n  title={TruthfulQA: Measuring How Models Mimic Human Falsehoods},\n"
        "  author={Lin, Stephanie and Hilton, Jacob and Evans, Owain},\n  booktitle={Proceedings of ACL},\n"
        "  year={2022}\n}",
        loader="lhp_core.data.pythia_inverse_scaling",
        url=_inverse_scaling,
    ),
    "wordbank": dict(
        title="Wordbank: children's word production on the MacArthur-Bates CDI (American English, Words & Sentences)",
        description="Parent reports of whether each of 9,093 American English-learning children aged 16-30 months "
        "produces each of the 680 words of the CDI Words & Sentences form (with the word's CDI category), and "
        "Wordbank's own age-of-acquisition estimates (months, rounded) for 588 of those words.",
        license="CC BY 4.0 for Wordbank, some contributing datasets CC BY-NC 4.0 (the pooled files do not say which: "
        "treat as CC BY-NC 4.0); site code MIT",
        citation="@article{frank2017wordbank,\n  title={Wordbank: an open repository for developmental vocabulary "
        "data},\n  author={Frank, Michael C. and Braginsky, Mika and Yurovsky, Daniel and Marchman, Virginia A.},\n"
        "  journal={Journal of Child Language},\n  volume={44},\n  number={3},\n  pages={677--694},\n"
        "  year={2017},\n  doi={10.1017/S0305000916000209}\n}\n"
        "@book{fenson2007cdi,\n  title={MacArthur-Bates Communicative Development Inventories: User's Guide and "
        "Technical Manual},\n  author={Fenson, Larry and Marchman, Virginia A. and Thal, Donna J. and Dale, Philip S. "
        "and Reznick, J. Steven and Bates, Elizabeth},\n  edition={2},\n  publisher={Paul H. Brookes},\n"
        "  year={2007}\n}",
        loader="lhp_core.data.wordbank",
        url=_wordbank,
    ),
}


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # BibTeX reads far better as a literal block than as an escaped one-liner.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


yaml.SafeDumper.add_representer(str, _str_representer)


def _checksums(root: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        folder, _, rel = path.partition("/")
        if rel:
            out.setdefault(folder, {})[rel] = digest
    return out


def main(root: Path) -> None:
    sums = _checksums(root)
    here = Path(__file__).parent
    for dataset_id, meta in DATASETS.items():
        url_of: Callable[[str], tuple[str | None, str | None]] = meta["url"]
        files = []
        for rel in sorted(sums[dataset_id]):
            entry: dict = {"path": rel, "sha256": sums[dataset_id][rel],
                           "size": (root / dataset_id / rel).stat().st_size}
            if rel == "SOURCE.md":
                url, note = None, SOURCE_NOTE
            else:
                url, note = url_of(rel)
            entry["url"] = url
            if note:
                entry["note"] = note
            files.append(entry)
        doc = {k: v for k, v in meta.items() if k != "url"}
        doc = {"id": dataset_id, **doc, "files": files}
        with open(here / f"{dataset_id}.yaml", "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=False, allow_unicode=True, width=120)
        print(f"{dataset_id}: {len(files)} files")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"))
