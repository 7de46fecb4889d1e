"""Compatibility with the COCO caption evaluation code (``pycocoevalcap``): its tokeniser and METEOR 1.5.

**Tokenisation.** COCO runs every caption through Stanford's Java ``PTBTokenizer`` (CoreNLP 3.4.1, options
``-preserveLines -lowerCase``) and then drops the tokens ``'' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ;``.
:func:`ptb_tokenize` reproduces that in Python with nltk's ``TreebankWordTokenizer`` (the same Penn Treebank
conventions) plus small steps where the two tokenisers differ:

1. typographic characters are mapped first, as the Java lexer maps them: ``’ ‘`` → ``'``, ``“ ”`` → ``"``,
   ``— –`` → ``--``, ``…`` → ``...``; an opening single quote used as a quotation mark is a quote;
2. brackets become ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-`` and are *kept*: Java lower-cases its bracket
   tokens under ``-lowerCase`` while COCO's punctuation list only names the upper-case forms, so in COCO's scores
   ``(`` counts as the word ``-lrb-``;
3. ``&`` and ``@`` inside a word (``at&t``) and runs of ``!``/``?`` (``!!``, a token COCO keeps) stay whole;
4. a period attached to a word ("sits. It") is dropped unless the word is an abbreviation the lexer knows
   (:data:`ABBREVIATIONS`: titles, street and company abbreviations, months, ``etc``; acronyms such as ``u.s.``;
   capitalised state abbreviations; single letters except at the end; ``no.`` before a number); a caption-final
   abbreviation keeps its period too (``"... 42nd St."`` → ``st.``).

The result: hyphenated words stay whole (``t-shirt``), possessives and contractions split (``dog 's``,
``is n't``, ``ca n't``), ``&``, ``$``, ``%`` and ``#`` are tokens, numbers such as ``10:30``, ``3.5`` and
``1,000`` stay whole. On the 303 strings of ``tests/data/captions`` (40 captions with their references and an
edge-case list) it equals the Java tokenizer on all but five rare forms: ``'n'``, ``y'all``, ``2+2=4``,
``<open>`` and a time glued to ``pm``.

**METEOR 1.5.** The COCO METEOR is Denkowski & Lavie's Java METEOR 1.5 (``-l en -norm``, exact, stem, synonym and
paraphrase modules, its own tuned parameters). :func:`meteor15` runs the copy that ships inside
``pycocoevalcap`` (``pip install eegvision[coco]``; needs ``java`` on the PATH) on captions tokenised by
:func:`ptb_tokenize`, exactly as ``COCOEvalCap`` feeds it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Sequence

import numpy as np

__all__ = ["ABBREVIATIONS", "COCO_PUNCTUATION", "STATE_ABBREVIATIONS", "meteor15", "meteor15_available",
           "ptb_tokenize", "require_meteor15"]

#: tokens that ``pycocoevalcap.tokenizer.ptbtokenizer`` removes after tokenising (case-sensitive, as there)
COCO_PUNCTUATION = frozenset({"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":",
                              "-", "--", "...", ";"})

#: words that keep their period, from the abbreviation classes of CoreNLP's PTB lexer (titles, street and
#: company abbreviations, months, Latin) and checked against the Java tokenizer; single letters, ``no.`` and
#: acronyms such as ``u.s.``/``a.m.`` are handled by :func:`_keeps_period`
_ABBREVIATION_WORDS = """
mr mrs ms miss dr drs prof profs sen sens rep reps atty attys lt col gen messrs gov govs adm rev maj sgt cpl pvt
mt capt st ste ave pres lieut hon brig cmdr comdr pfc spc supt supts det mme mmes mlle mlles jr sr bros blvd rd esq
inc co cos corp pty ptys ltd plc bancorp dept bhd assn univ intl sys invt elec natl mfg mtg
jan feb mar apr jun jul aug sep sept oct nov dec etc al seq vs cf fig figs ft pp mo
"""
ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
#: US state abbreviations, abbreviations only when capitalised ("Mass." but not "ill.")
_STATE_WORDS = ("calif mass conn fla ill mich pa va ariz tenn md ga okla wis minn ky ore nev ala del ind la neb ark "
                "vt tex colo mo kan wyo")
STATE_ABBREVIATIONS = frozenset(_STATE_WORDS.split())

_ACRONYM = re.compile(r"^[^\W\d_](\.[^\W\d_])*$")  # a, u.s, a.m, n.y.c (period at the end stripped)
_TYPOGRAPHIC = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- ",
                              "\u2013": " -- ", "\u2026": "...", "\u00a0": " "})
# characters that Treebank would split off but Java keeps: "&"/"@" inside a word (at&t), runs of "!"/"?" (!!, ?!);
# they are hidden behind private-use characters while nltk tokenises
_HIDE = {"&": "\ue000", "@": "\ue001", "!": "\ue002", "?": "\ue003"}
_SHOW = str.maketrans({v: k for k, v in _HIDE.items()})
_INWORD = re.compile(r"(?<=\w)[&@](?=\w)")
_BANGS = re.compile(r"[!?]{2,}")
# an opening single quote used as a quotation mark ('No Parking'); Java's apostrophe words keep theirs
_OPEN_QUOTE = re.compile(r"(^|\s)'(?!n'|(?:em|til|tis|twas|cause)\b)(?=[^\W\d_])")
_CLOSING = frozenset({"''", "'", "-rrb-", "-rsb-", "-rcb-"})
_TREEBANK = None


def _treebank():
    global _TREEBANK
    if _TREEBANK is None:
        try:
            from nltk.tokenize import TreebankWordTokenizer
        except ImportError as exc:  # pragma: no cover - nltk is a dependency
            raise ImportError("COCO-compatible tokenisation needs nltk: pip install nltk (a dependency of "
                              "eegvision), or score with tokenizer='simple'.") from exc
        _TREEBANK = TreebankWordTokenizer()
    return _TREEBANK


def _keeps_period(word: str, final: bool, next_token: str | None) -> bool:
    """Whether the PTB lexer keeps the period after ``word`` (original case, period stripped)."""
    low = word.lower()
    if low in ("no", "nos"):                                   # "No. 5" but "says no."
        return next_token is not None and next_token[:1].isdigit()
    if len(low) == 1 and low.isalpha():                        # initials "J. R." but "the letter A."
        return not final
    return (low in ABBREVIATIONS or bool(_ACRONYM.match(low))
            or (low in STATE_ABBREVIATIONS and word[:1].isupper()))


def ptb_tokenize(text: str) -> list[str]:
    """Tokens of ``text`` as COCO's evaluation sees them (Java PTB tokenizer, lower case, punctuation dropped).

    Parameters
    ----------
    text : str
        One caption (line breaks count as spaces).

    Returns
    -------
    list of str

    Examples
    --------
    >>> ptb_tokenize("A dog's toy (red) isn't on the T-shirt & hat.")
    ['a', 'dog', "'s", 'toy', '-lrb-', 'red', '-rrb-', 'is', "n't", 'on', 'the', 't-shirt', '&', 'hat']
    """
    text = str(text).replace("\n", " ").translate(_TYPOGRAPHIC)
    text = _INWORD.sub(lambda m: _HIDE[m.group()], text)
    text = _BANGS.sub(lambda m: " " + "".join(_HIDE[c] for c in m.group()) + " ", text)
    text = _OPEN_QUOTE.sub(r"\1` ", text)
    raw = [t.translate(_SHOW) for t in _treebank().tokenize(text, convert_parentheses=True)]
    tokens: list[str] = []
    last = -1                                                   # index in raw of the last token kept
    for i, tok in enumerate(raw):
        final = all(t.lower() in _CLOSING for t in raw[i + 1:])
        if tok == "." and final and last == i - 1 and _keeps_period(raw[i - 1], True, None):
            tokens[-1] += "."                                   # caption-final "St." stays "st."
            continue
        if len(tok) > 1 and tok.endswith(".") and not tok.endswith(".."):
            nxt = raw[i + 1] if i + 1 < len(raw) else None
            if not _keeps_period(tok[:-1], final, nxt):
                tok = tok[:-1]                                  # "sits." inside a caption: the period goes
        low = tok.lower()
        if low not in COCO_PUNCTUATION:
            tokens.append(low)
            last = i
    return tokens


# ---------------------------------------------------------------------------- METEOR 1.5
def meteor15_available() -> bool:
    """Whether METEOR 1.5 can run here: ``pycocoevalcap`` importable and ``java`` on the PATH."""
    return importlib.util.find_spec("pycocoevalcap") is not None and shutil.which("java") is not None


def require_meteor15() -> None:
    """Raise :class:`RuntimeError` saying what is missing when METEOR 1.5 cannot run here."""
    if not meteor15_available():
        missing = "pycocoevalcap (pip install 'eegvision[coco]')" if importlib.util.find_spec(
            "pycocoevalcap") is None else "java on the PATH (e.g. apt-get install default-jre-headless)"
        raise RuntimeError(f"METEOR 1.5 needs {missing}; without it score METEOR_exact_stem (nltk) instead.")


def meteor15(runs: Sequence[tuple[Sequence[Sequence[str]], Sequence[str]]],
             ) -> list[tuple[float, np.ndarray]]:
    """METEOR 1.5 (COCO) of one or more sets of captions, through ``pycocoevalcap``'s Java METEOR.

    All sets go through one Java process (starting it and loading its paraphrase table takes seconds).

    Parameters
    ----------
    runs : sequence of (references, hypotheses)
        Per set: one list of reference strings per image and one hypothesis string per image.

    Returns
    -------
    Per set: (corpus METEOR, per-caption METEOR ``(n,)``). The corpus value is METEOR's own aggregate over the
    set's matching statistics, as ``COCOEvalCap`` reports it (not the mean of the per-caption values).
    """
    require_meteor15()
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    out = []
    try:
        for references, hypotheses in runs:
            if len(references) != len(hypotheses):
                raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference sets.")
            gts = {i: [" ".join(ptb_tokenize(r)) for r in refs] for i, refs in enumerate(references)}
            res = {i: [" ".join(ptb_tokenize(h))] for i, h in enumerate(hypotheses)}
            corpus, per = scorer.compute_score(gts, res)
            out.append((float(corpus), np.asarray(per, dtype=float)))
    finally:  # stop Java now; pycocoevalcap's __del__ would wait forever on a lock left held by an error
        if scorer.lock.locked():
            scorer.lock.release()
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()
    return out
