#!/usr/bin/env python3
"""Generate golden fixtures for the Swift `Tokenizers` target.

Run by hand (outputs are committed):

    pip install tokenizers sentencepiece protobuf
    python3 Scripts/make_tokenizer_goldens.py             # reuse trained tokenizers, redo goldens
    python3 Scripts/make_tokenizer_goldens.py --retrain   # also retrain them (not deterministic)
    python3 Scripts/make_tokenizer_goldens.py --trained-only
        # only the trainer verdict: after running the Swift TrainerTests with
        # TOKENIZERS_WRITE_TRAINED=Tests/TokenizersTests/Fixtures

Everything is deterministic: the script generates its own corpus, trains or
builds each tokenizer with the Python libraries, and records what those
libraries return for a varied sample of texts. Files are written to
Tests/TokenizersTests/Fixtures/.

Fixture layout
--------------
<family>.tokenizer.json   the tokenizer as saved by `tokenizers`
<family>.cases.json       {"cases": [...]} where each case is
    {"text": str | null, "text_b64": str (only for invalid UTF-8),
     "pair": str | null, "add_special_tokens": bool,
     "ids", "tokens", "type_ids", "attention_mask", "special_tokens_mask",
     "offsets": [[start, end], ...] (code-point offsets, as Python returns),
     "decode": str (skip_special_tokens=True), "decode_keep": str (False)}
<name>.model / <name>.sp.json   SentencePiece model and its goldens
components.json           small tokenizers with one component swapped in (a base family
                          plus overriding top-level fields, or a full tokenizer) and encodings.
batches.json              padding / truncation / pair goldens.
trained_*.tokenizer.json  written by the Swift trainers; trained_*.cases.json are the Python
                          encodings of those files, trained_verdict.json the comparison.
<family>.repeats.json     {"cases": [{"text", "ids", "tokens" (or "pieces"), "offsets", "decode"}]}: long
                          runs of one character and repeated patterns, for every family (ties).
ascii_*, sp_ascii_*       tokenizers trained on ASCII art (runs of "#", "_", "-" ...), so that those ties arise.
json_floats.json          number literals and the double the Rust library reads for each.
"""
import base64
import json
import os

# Single-threaded training so that reruns produce identical fixtures.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import random
import sys
import tempfile

import sentencepiece as spm
from tokenizers import (Tokenizer, Regex, AddedToken, decoders, models,
                        normalizers, pre_tokenizers, processors, trainers)
from tokenizers.implementations import (BertWordPieceTokenizer,
                                        ByteLevelBPETokenizer,
                                        SentencePieceUnigramTokenizer)

# Trained tokenizers already in the fixtures are reused unless --retrain is given: the Rust
# trainers are not fully deterministic, and reuse keeps reruns from rewriting every fixture.
RETRAIN = "--retrain" in sys.argv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "TokenizersTests", "Fixtures")

# --------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------
WORDS = (
    "the of and to in is was for on that with as by at from his her it an "
    "are were which this be or has had not but its new first also after one "
    "two three year years time people world city state school university "
    "music film game team season war government company river water light "
    "house family history language english french german japanese chinese "
    "running jumped quickly beautiful tokenizer tokenization encoding decoding "
    "unbelievable internationalization hello world test testing tested "
    "I'm can't won't they'll we've you'd she's it's don't"
).split()
ACCENTED = "café naïve résumé façade über straße niño señor coöperate élève garçon Zürich São Paulo".split()
CJK = ["日本語", "東京", "中文", "北京", "한국어", "서울", "テキスト", "漢字"]
EMOJI = ["😀", "👍", "🎉", "❤️", "🚀", "👍🏽"]
PUNCT = list(".,;:!?'\"()-")


def make_corpus(n_lines=3000, seed=1234):
    rnd = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        k = rnd.randint(3, 18)
        out = []
        for _ in range(k):
            r = rnd.random()
            if r < 0.70:
                w = rnd.choice(WORDS)
            elif r < 0.80:
                w = rnd.choice(ACCENTED)
            elif r < 0.86:
                w = rnd.choice(CJK)
            elif r < 0.89:
                w = rnd.choice(EMOJI)
            elif r < 0.95:
                w = str(rnd.randint(0, 10 ** rnd.randint(1, 5)))
            else:
                w = rnd.choice(PUNCT)
            if rnd.random() < 0.1:
                w = w.capitalize()
            out.append(w)
        line = " ".join(out)
        if rnd.random() < 0.5:
            line += rnd.choice(PUNCT)
        lines.append(line)
    return lines


# --------------------------------------------------------------------------
# Sample texts
# --------------------------------------------------------------------------
SAMPLES = [
    "Hello, world!",
    "The QUICK brown fox jumped over the lazy dog.",
    "Héllo wörld: café, naïve résumé, façade, Zürich.",
    "日本語のテキストと中文字符, 한국어 문장.",
    "emoji 😀👍🏽 family 👨\u200d👩\u200d👧 rocket🚀!",
    "combining e\u0301 a\u0308 o\u0327 n\u0303 and precomposed é ä",
    "multiple   spaces\n\nnewlines\t\ttabs  \t \n end",
    "   leading and trailing   ",
    "digits 1234567890 3.14159 42nd 2024-01-01",
    "punctuation!?.,;:'\"()[]{}<>-_/\\@#$%^&*~`|+=",
    "I'm sure they'll say we've done what you'd expect, can't they?",
    "\ufb01 ligature \u2460 \u216b \uff21\uff22\uff23 full width \u00bd",
    "\u00a0non-breaking\u2003em space\u200bzero width\u3000ideographic",
    "control\x00chars\x07here\x7f",
    "",
    " ",
    "a",
    "supercalifragilisticexpialidocious" * 4,
    "x" * 150,
    "Internationalization and tokenization of unbelievable texts",
    "MiXeD CaSe WoRdS with UPPER and lower",
    "ÅÉÎÕÜ ǅ ß ẞ İ ı",
    "tab\tseparated\tvalues\r\nwindows line",
    "`` quoted '' text ``",
]
INVALID = [
    b"abc\xff\xfedef",
    b"caf\xc3 bad tail \xe2\x82",
    b"\x80\x81 start",
]


def special_sample(specials):
    a = specials
    return [
        f"{a[0]} hello {a[1]} world",
        f"text with{a[-1]}inside and {a[-1]} spaced",
        f"{a[0]}{a[1]}{a[-1]}",
    ]


def enc_dict(tok, enc, add_special):
    return {
        "ids": enc.ids,
        "tokens": enc.tokens,
        "type_ids": enc.type_ids,
        "attention_mask": enc.attention_mask,
        "special_tokens_mask": enc.special_tokens_mask,
        "offsets": [list(o) for o in enc.offsets],
        "decode": tok.decode(enc.ids, skip_special_tokens=True),
        "decode_keep": tok.decode(enc.ids, skip_special_tokens=False),
    }


def make_cases(tok, specials=(), pairs=True):
    cases = []
    texts = [(t, None) for t in SAMPLES]
    if specials:
        texts += [(t, None) for t in special_sample(list(specials))]
    texts += [(None, b) for b in INVALID]
    for text, raw in texts:
        s = text if raw is None else raw.decode("utf-8", errors="replace")
        for add in (True, False):
            enc = tok.encode(s, add_special_tokens=add)
            c = {"text": text, "pair": None, "add_special_tokens": add}
            if raw is not None:
                c["text_b64"] = base64.b64encode(raw).decode()
            c.update(enc_dict(tok, enc, add))
            cases.append(c)
    if pairs:
        for a, b in [("Hello, world!", "How are you?"),
                     ("café naïve", "日本語 テキスト"),
                     ("", "only second"),
                     ("only first", "")]:
            enc = tok.encode(a, b, add_special_tokens=True)
            c = {"text": a, "pair": b, "add_special_tokens": True}
            c.update(enc_dict(tok, enc, True))
            cases.append(c)
    return cases


def dump(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


def save_family(name, tok, specials=(), pairs=True):
    tok.save(os.path.join(OUT, f"{name}.tokenizer.json"))
    # Reload from disk to make sure the goldens are what a loader sees.
    tok = Tokenizer.from_file(os.path.join(OUT, f"{name}.tokenizer.json"))
    dump(f"{name}.cases.json", {"cases": make_cases(tok, specials, pairs)})
    return tok


# --------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------
def saved(name):
    path = os.path.join(OUT, f"{name}.tokenizer.json")
    if not RETRAIN and os.path.exists(path):
        return Tokenizer.from_file(path)
    return None


def bert_family(corpus_file):
    tok = saved("bert_wordpiece")
    if tok is not None:
        save_family("bert_wordpiece", tok, specials=("[CLS]", "[SEP]", "[MASK]"))
        save_family("bert_template", saved("bert_template"), specials=("[CLS]", "[SEP]", "[MASK]"))
        save_family("bert_cased", saved("bert_cased"), specials=("[CLS]", "[SEP]", "[MASK]"))
        return
    t = BertWordPieceTokenizer(lowercase=True)
    t.train([corpus_file], vocab_size=1200, min_frequency=2,
            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok = t._tokenizer
    # The implementation class only installs BertProcessing when built from a vocab file.
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    save_family("bert_wordpiece", tok, specials=("[CLS]", "[SEP]", "[MASK]"))
    # Same model with TemplateProcessing instead of BertProcessing.
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    save_family("bert_template", tok, specials=("[CLS]", "[SEP]", "[MASK]"))
    # Cased variant, no chinese char handling, no accent stripping.
    t2 = BertWordPieceTokenizer(lowercase=False, strip_accents=False,
                                handle_chinese_chars=False)
    t2.train([corpus_file], vocab_size=1000, min_frequency=2,
             special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok2 = t2._tokenizer
    tok2.post_processor = processors.BertProcessing(("[SEP]", tok2.token_to_id("[SEP]")),
                                                    ("[CLS]", tok2.token_to_id("[CLS]")))
    save_family("bert_cased", tok2, specials=("[CLS]", "[SEP]", "[MASK]"))


def bytelevel_family(corpus_file):
    if saved("roberta_bpe") is not None:
        save_family("roberta_bpe", saved("roberta_bpe"), specials=("<s>", "</s>", "<mask>"))
        save_family("gpt2_bpe", saved("gpt2_bpe"), specials=("<s>", "</s>", "<mask>"))
        return
    t = ByteLevelBPETokenizer(add_prefix_space=False)
    t.train([corpus_file], vocab_size=1500, min_frequency=2,
            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok = t._tokenizer
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=False)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    save_family("roberta_bpe", tok, specials=("<s>", "</s>", "<mask>"))
    # GPT-2 style: ByteLevel post-processor with trim_offsets, prefix space.
    tok2 = Tokenizer.from_str(tok.to_str())
    tok2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok2.post_processor = processors.ByteLevel(trim_offsets=True)
    save_family("gpt2_bpe", tok2, specials=("<s>", "</s>", "<mask>"))


def unigram_family(corpus_file, lines):
    if saved("unigram_metaspace") is not None:
        save_family("unigram_metaspace", saved("unigram_metaspace"), specials=("<s>", "</s>", "<pad>"), pairs=False)
        return
    t = SentencePieceUnigramTokenizer()
    t.train([corpus_file], vocab_size=800, special_tokens=["<pad>", "<unk>", "<s>", "</s>"],
            unk_token="<unk>", show_progress=False)
    tok = t._tokenizer
    save_family("unigram_metaspace", tok, specials=("<s>", "</s>", "<pad>"), pairs=False)


def sp_case(sp, s):
    ids = sp.encode(s, out_type=int)
    pieces = sp.encode(s, out_type=str)
    # Character offsets of each piece (the library reports UTF-8 byte offsets).
    proto = sp.encode(s, out_type="proto")
    b2c = {}
    pos = 0
    for ci, ch in enumerate(s):
        for _ in range(len(ch.encode("utf-8"))):
            b2c[pos] = ci
            pos += 1
    b2c[pos] = len(s)
    offsets = [[b2c[x.begin], b2c[x.end]] for x in proto.pieces]
    return {"text": s, "ids": ids, "pieces": pieces, "offsets": offsets, "decode": sp.decode(ids)}


def sentencepiece_family(corpus_file):
    from sentencepiece import sentencepiece_model_pb2 as pb
    results = {}
    for name, mtype, extra in [
        ("sp_unigram", "unigram", {}),
        ("sp_bpe", "bpe", {"byte_fallback": True}),
        # No dummy prefix, whitespace kept as is, identity normalization, byte fallback.
        ("sp_unigram_raw", "unigram", {"byte_fallback": True, "add_dummy_prefix": False,
                                       "remove_extra_whitespaces": False,
                                       "normalization_rule_name": "identity"}),
    ]:
        prefix = os.path.join(OUT, name)
        spm.SentencePieceTrainer.train(
            input=corpus_file, model_prefix=prefix, vocab_size=600,
            model_type=mtype, character_coverage=0.9995,
            pad_id=0, unk_id=1, bos_id=2, eos_id=3,
            user_defined_symbols=["<sep>", "<cls>"],
            num_threads=1, minloglevel=2,
            **{"normalization_rule_name": "nmt_nfkc", **extra})
        os.remove(prefix + ".vocab")
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
        cases = []
        texts = SAMPLES + ["hello <sep> world<cls>"] + [b.decode("utf-8", "replace") for b in INVALID]
        for i, s in enumerate(texts):
            c = sp_case(sp, s)
            if i >= len(texts) - len(INVALID):
                c["text"] = None
                c["text_b64"] = base64.b64encode(INVALID[i - (len(texts) - len(INVALID))]).decode()
            cases.append(c)
        dump(f"{name}.sp.json", {
            "vocab_size": sp.get_piece_size(), "unk_id": sp.unk_id(), "bos_id": sp.bos_id(),
            "eos_id": sp.eos_id(), "pad_id": sp.pad_id(), "cases": cases})
        results[name] = prefix + ".model"
    return results


def albert_family(sp_model_path, name="albert_unigram"):
    """SentencePiece unigram model converted to tokenizer.json the way the
    ALBERT converter of `transformers` does it (Precompiled normalizer; none for a
    model with identity normalization). The scores are float32 values, which the
    Rust library reads back from the file one unit in the last place off for some."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    m = pb.ModelProto()
    with open(sp_model_path, "rb") as f:
        m.ParseFromString(f.read())
    vocab = [(p.piece, p.score) for p in m.pieces]
    unk_id = m.trainer_spec.unk_id
    tok = Tokenizer(models.Unigram(vocab, unk_id, False))
    charsmap = m.normalizer_spec.precompiled_charsmap
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace("``", '"'), normalizers.Replace("''", '"'),
        normalizers.Lowercase()]
        + ([normalizers.Precompiled(charsmap)] if charsmap else [])
        + [normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    cls, sep = "<cls>", "<sep>"
    tok.post_processor = processors.TemplateProcessing(
        single="<cls>:0 $A:0 <sep>:0", pair="<cls>:0 $A:0 <sep>:0 $B:1 <sep>:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    tok.add_special_tokens(["<pad>", "<unk>", "<cls>", "<sep>"])
    if name != "albert_unigram":
        tok.save(os.path.join(OUT, f"{name}.tokenizer.json"))
        return
    save_family("albert_unigram", tok, specials=("<cls>", "<sep>", "<pad>"))


# --------------------------------------------------------------------------
# Components: each entry swaps one component into a small tokenizer.
# --------------------------------------------------------------------------
def component_cases(tok, texts):
    out = []
    for s in texts:
        enc = tok.encode(s, add_special_tokens=True)
        out.append({"text": s, **enc_dict(tok, enc, True)})
    return out


def components(bert_tok, bpe_tok, unigram_tok):
    entries = []
    texts = SAMPLES + ["[CLS] a [SEP]", "don't STOP 12345 ab-cd__ef a.b.c"]

    def add(name, tok):
        # Only the top-level fields that differ from the base family are stored.
        j = json.loads(tok.to_str())
        base_name = "roberta_bpe" if name.startswith("bl_") else "bert_wordpiece"
        b = json.loads(bpe_tok.to_str() if name.startswith("bl_") else bert_tok.to_str())
        over = {k: v for k, v in j.items() if b.get(k) != v}
        entries.append({"name": name, "base": base_name, "overrides": over,
                        "cases": component_cases(tok, texts)})

    base = bert_tok.to_str()
    N = normalizers
    for name, norm in [
        ("norm_lowercase", N.Lowercase()),
        ("norm_nfc", N.NFC()), ("norm_nfd", N.NFD()),
        ("norm_nfkc", N.NFKC()), ("norm_nfkd", N.NFKD()),
        ("norm_nfd_strip_accents", N.Sequence([N.NFD(), N.StripAccents()])),
        ("norm_strip", N.Strip(left=True, right=True)),
        ("norm_strip_left", N.Strip(left=True, right=False)),
        ("norm_replace_str", N.Replace("o", "0")),
        ("norm_replace_regex", N.Replace(Regex(r"\s+"), " ")),
        ("norm_prepend", N.Prepend("▁")),
        ("norm_bert_nolower", N.BertNormalizer(lowercase=False, clean_text=True,
                                               handle_chinese_chars=True, strip_accents=None)),
        ("norm_bert_strip_nolower", N.BertNormalizer(lowercase=False, strip_accents=True)),
        ("norm_none", None),
        ("norm_bytelevel", N.ByteLevel()),
    ]:
        t = Tokenizer.from_str(base)
        t.normalizer = norm
        add(name, t)
    P = pre_tokenizers
    for name, pre in [
        ("pre_whitespace", P.Whitespace()),
        ("pre_whitespace_split", P.WhitespaceSplit()),
        ("pre_punctuation", P.Punctuation()),
        ("pre_punctuation_isolated", P.Sequence([P.WhitespaceSplit(), P.Punctuation("isolated")])),
        ("pre_punctuation_merged_prev", P.Sequence([P.WhitespaceSplit(), P.Punctuation("merged_with_previous")])),
        ("pre_punctuation_merged_next", P.Sequence([P.WhitespaceSplit(), P.Punctuation("merged_with_next")])),
        ("pre_punctuation_contiguous", P.Sequence([P.WhitespaceSplit(), P.Punctuation("contiguous")])),
        ("pre_digits", P.Sequence([P.Whitespace(), P.Digits(individual_digits=False)])),
        ("pre_digits_individual", P.Sequence([P.Whitespace(), P.Digits(individual_digits=True)])),
        ("pre_split_removed", P.Split(" ", "removed")),
        ("pre_split_isolated", P.Split("a", "isolated")),
        ("pre_split_merged_prev", P.Split("-", "merged_with_previous")),
        ("pre_split_merged_next", P.Split("-", "merged_with_next")),
        ("pre_split_contiguous", P.Split("x", "contiguous")),
        ("pre_split_regex_removed", P.Split(Regex(r"\s+"), "removed")),
        ("pre_split_regex_isolated", P.Split(Regex(r"\w+|[^\w\s]+"), "isolated", invert=True)),
        ("pre_split_regex_invert", P.Split(Regex(r"\d+"), "removed", invert=True)),
        ("pre_char_delimiter", P.CharDelimiterSplit("a")),
        ("pre_fixed_length", P.FixedLength(length=3)),
        ("pre_metaspace_split", P.Metaspace(replacement="▁", prepend_scheme="always", split=True)),
        ("pre_metaspace_first", P.Metaspace(replacement="▁", prepend_scheme="first", split=True)),
        ("pre_metaspace_never_nosplit", P.Metaspace(replacement="▁", prepend_scheme="never", split=False)),
    ]:
        t = Tokenizer.from_str(base)
        t.pre_tokenizer = pre
        add(name, t)
    # Byte-level BPE with variants.
    bbase = bpe_tok.to_str()
    for name, pre, post in [
        ("bl_no_regex", P.ByteLevel(add_prefix_space=False, use_regex=False), None),
        ("bl_prefix", P.ByteLevel(add_prefix_space=True), processors.ByteLevel(trim_offsets=False)),
        ("bl_split_then_bytelevel", P.Sequence([P.Split(Regex(r"\p{N}{1,3}"), "isolated"),
                                                P.ByteLevel(add_prefix_space=False, use_regex=False)]), None),
        # The Llama-3 / cl100k style pattern (case-insensitive group, look-ahead, \r\n classes).
        ("bl_llama3_pattern", P.Sequence([
            P.Split(Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
                    "isolated"),
            P.ByteLevel(add_prefix_space=False, use_regex=False)]), None),
    ]:
        t = Tokenizer.from_str(bbase)
        t.pre_tokenizer = pre
        t.post_processor = post
        add(name, t)
    # Decoders on the bert vocab.
    D = decoders
    for name, dec in [
        ("dec_wordpiece_nocleanup", D.WordPiece(prefix="##", cleanup=False)),
        ("dec_seq_replace_strip", D.Sequence([D.Replace("##", ""), D.Strip(" ", 1, 0), D.Fuse()])),
    ]:
        t = Tokenizer.from_str(base)
        t.decoder = dec
        add(name, t)
    # Added tokens with every option.
    t = Tokenizer.from_str(base)
    t.add_tokens([AddedToken("wor", single_word=True), AddedToken("ELL", normalized=True),
                  AddedToken("XYZ", normalized=False, rstrip=True),
                  AddedToken("Quick", lstrip=True, normalized=True)])
    t.add_special_tokens([AddedToken("<special>", lstrip=True, rstrip=True)])
    entries.append({"name": "added_tokens", "base": "bert_wordpiece",
                    "overrides": {"added_tokens": json.loads(t.to_str())["added_tokens"]},
                    "cases": component_cases(t, texts + [
                        "the wor is XYZ   here <special>  and hello", "aworb wor_ wor, _wor",
                        "a  Quick  one XYZ", "xyz Xyz XYZXYZ", "<special><special> quick"])})
    # A Sequence post-processor (ByteLevel offsets trimming, then a template).
    t = Tokenizer.from_str(bbase)
    t.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=True),
        processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B:1 </s>:1",
                                      special_tokens=[("<s>", t.token_to_id("<s>")), ("</s>", t.token_to_id("</s>"))])])
    add("bl_sequence_post", t)
    # WordLevel model on the BERT vocabulary, with a CTC decoder.
    j = json.loads(base)
    wl = Tokenizer(models.WordLevel(j["model"]["vocab"], unk_token="[UNK]"))
    wl.normalizer = normalizers.Lowercase()
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    wl.decoder = decoders.CTC(pad_token="[PAD]", word_delimiter_token="|", cleanup=True)
    entries.append({"name": "wordlevel_ctc", "tokenizer": json.loads(wl.to_str()),
                    "cases": component_cases(wl, texts + ["the the the [PAD] a | b", "aa aa"])})
    # Unigram with byte fallback.
    j = json.loads(unigram_tok.to_str())
    j["model"]["vocab"] += [["<0x%02X>" % i, -20.0] for i in range(256)]
    j["model"]["byte_fallback"] = True
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    t = Tokenizer.from_str(json.dumps(j))
    entries.append({"name": "unigram_byte_fallback", "tokenizer": json.loads(t.to_str()),
                    "cases": component_cases(t, texts)})
    return entries


def bpe_variants(corpus_file):
    """Char-level BPE with suffix / prefix / byte fallback / fuse_unk."""
    entries = []
    texts = SAMPLES
    old_path = os.path.join(OUT, "components.json")
    if not RETRAIN and os.path.exists(old_path):
        with open(old_path, encoding="utf-8") as f:
            old = {e["name"]: e for e in json.load(f)["entries"]}
        names = ["bpe_suffix", "bpe_prefix", "bpe_fallback", "bpe_suffix_string_merges"]
        if all(n in old for n in names):
            for n in names:
                tok = Tokenizer.from_str(json.dumps(old[n]["tokenizer"]))
                entries.append({"name": n, "tokenizer": old[n]["tokenizer"], "cases": component_cases(tok, texts)})
            return entries
    for name, kw in [
        ("bpe_suffix", dict(end_of_word_suffix="</w>")),
        ("bpe_prefix", dict(continuing_subword_prefix="##")),
        ("bpe_fallback", dict()),
    ]:
        model = models.BPE(unk_token="<unk>", fuse_unk=(name != "bpe_fallback"),
                           byte_fallback=(name == "bpe_fallback"), **kw)
        tok = Tokenizer(model)
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        specials = ["<unk>", "<s>", "</s>"]
        alphabet = []
        if name == "bpe_fallback":
            specials += ["<0x%02X>" % i for i in range(256)]
        tr = trainers.BpeTrainer(vocab_size=700, min_frequency=2, special_tokens=specials,
                                 show_progress=False, limit_alphabet=60, **kw)
        tok.train([corpus_file], tr)
        if name == "bpe_suffix":
            tok.decoder = decoders.BPEDecoder(suffix="</w>")
        elif name == "bpe_prefix":
            tok.decoder = decoders.WordPiece(prefix="##")
        else:
            tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
        entries.append({"name": name, "tokenizer": json.loads(tok.to_str()),
                        "cases": component_cases(tok, texts)})
    # Merges in the legacy "a b" string form.
    j = json.loads(json.dumps(entries[0]["tokenizer"]))
    j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    tok = Tokenizer.from_str(json.dumps(j))
    entries.append({"name": "bpe_suffix_string_merges", "tokenizer": j,
                    "cases": component_cases(tok, texts)})
    return entries


def batches(bert_tok, bpe_tok):
    out = []
    texts = ["Hello, world!", "a much longer sentence with many words in it", "", "short"]
    pairs = [("Hello, world!", "How are you doing today, my friend?"),
             ("a much longer first sentence with many words", "tiny"),
             ("one", "two")]
    configs = [
        ("pad_longest_right", dict(padding=dict(direction="right"))),
        ("pad_fixed_left", dict(padding=dict(direction="left", length=20))),
        ("trunc_longest_first", dict(truncation=dict(max_length=10, strategy="longest_first"))),
        ("trunc_only_first", dict(truncation=dict(max_length=12, strategy="only_first"))),
        ("trunc_only_second", dict(truncation=dict(max_length=12, strategy="only_second"))),
        ("trunc_left_pad", dict(truncation=dict(max_length=8, direction="left"),
                                padding=dict(direction="right", pad_to_multiple_of=4))),
    ]
    for tname, base in [("bert", bert_tok), ("roberta", bpe_tok)]:
        for cname, cfg in configs:
            t = Tokenizer.from_str(base.to_str())
            if "padding" in cfg:
                p = dict(cfg["padding"])
                pad = "[PAD]" if tname == "bert" else "<pad>"
                t.enable_padding(pad_id=t.token_to_id(pad), pad_token=pad, **p)
            if "truncation" in cfg:
                t.enable_truncation(**cfg["truncation"])
            try:
                single = [enc_dict(t, e, True) for e in t.encode_batch(texts)]
            except Exception as e:
                single = {"error": str(e)}
            try:
                paired = [enc_dict(t, e, True) for e in t.encode_batch(pairs)]
            except Exception as e:  # e.g. only_second cannot fit
                paired = {"error": str(e)}
            j = json.loads(t.to_str())
            out.append({"name": f"{tname}_{cname}",
                        "base": "bert_wordpiece" if tname == "bert" else "roberta_bpe",
                        "overrides": {"padding": j["padding"], "truncation": j["truncation"]},
                        "texts": texts, "pairs": [list(p) for p in pairs],
                        "single": single,
                        "paired": paired})
    return out


TRAINED_SAMPLES = [
    "Hello, world!", "The QUICK brown fox jumped over the lazy dog.", "Héllo wörld: café, naïve résumé",
    "日本語のテキストと中文字符, 한국어 문장.", "emoji 😀👍🏽 family 👨\u200d👩\u200d👧 rocket🚀!",
    "multiple   spaces\n\nnewlines\t\ttabs", "digits 1234567890 3.14159", "I'm sure they'll say we've done it",
    "", "supercalifragilisticexpialidocious", "<s> special </s> [CLS] x [SEP] <mask>",
]


def check_trained():
    """Loads the tokenizer.json files written by the Swift trainers (see TrainerTests.swift),
    records the Python encodings, and compares them with the Swift encodings the Swift test wrote
    next to them (<name>.swift_encodings.json, committed too)."""
    verdict = {}
    for name in ("trained_bpe", "trained_wordpiece", "trained_unigram"):
        path = os.path.join(OUT, f"{name}.tokenizer.json")
        if not os.path.exists(path):
            continue
        try:
            tok = Tokenizer.from_file(path)
        except Exception as e:  # noqa: BLE001
            verdict[name] = {"python_loads": False, "error": str(e)}
            continue
        cases = []
        for s in TRAINED_SAMPLES:
            enc = tok.encode(s)
            cases.append({"text": s, "pair": None, "add_special_tokens": True, **enc_dict(tok, enc, True)})
        dump(f"{name}.cases.json", {"cases": cases})
        v = {"python_loads": True, "vocab_size": tok.get_vocab_size()}
        swift = os.path.join(OUT, f"{name}.swift_encodings.json")
        if os.path.exists(swift):
            with open(swift, encoding="utf-8") as f:
                sw = json.load(f)["cases"]
            same = len(sw) == len(cases) and all(
                a["ids"] == b["ids"] and a["offsets"] == b["offsets"] and a["decode"] == b["decode"]
                for a, b in zip(sw, cases))
            v["identical_encodings"] = same
        verdict[name] = v
    if verdict:
        dump("trained_verdict.json", verdict)
        print("trained:", verdict)


# --------------------------------------------------------------------------
# Repeats: long runs of one character and repeated patterns, where several
# segmentations have equal scores (Unigram), merges of equal rank apply at
# several positions (BPE) or the longest match repeats (WordPiece). The
# ascii_* tokenizers are trained on ASCII art so that pieces such as "#",
# "##" and "####" exist and those ties actually arise.
# --------------------------------------------------------------------------
def repeat_texts():
    texts = ["#" * n for n in list(range(1, 25)) + [32, 33, 40]]
    for c in "_-=*.a":
        texts += [c * n for n in (2, 3, 4, 5, 7, 9, 16, 17, 20, 24, 33)]
    texts += ["a" + " " * n + "b" for n in (2, 3, 5, 8, 16)] + [" " * 7]
    for p in ("ab", "abc", "-=", "#_", "ha", "123", "😀", "日", "=-", "<>", "/\\", "+-", "|#"):
        texts += [p * n for n in (2, 3, 5, 13)]
    texts += [
        "hello ##### world", "#####hello#####", "title\n" + "=" * 20, "+" + "-" * 14 + "+",
        "|" + "#" * 14 + "|", "  _____   ____  ", " |  __ \\ / __ \\ ", "##   ##  #######",
        "*~*~*~*~*~*", ">>>>>>>> <<<<<<<", "a---b x____y ...", "!!!???!!!", "-_-_-_-",
        "aaaab abababa hahahaha!", "1231231 12341234", "😀😀😀 hi 👍👍👍👍", "日日日本本本",
        "café café café", "the the the the", "==> #### <==", "#" * 5 + " " + "#" * 9 + " " + "#" * 13,
        "ab" * 3 + "a", "____init____", "--- ### ===", "#_#_#_ #__#__#", "x" + "#" * 21 + "y",
        "##" + "-" * 18 + "##", ". . . . . .", "0000000001", "1000000000000",
        # Ties that the ALBERT-converted ASCII-art model breaks by a last bit of a score.
        "_" * 18, "_" * 22, "_" * 26, "x " + "_" * 36, "__init__ " + "_" * 19,
    ]
    return texts


ASCII_ART = ["#", "_", "-", "=", "*", ".", "~", "+", "|", "/", "\\", "<", ">", "0", " "]
ASCII_PATTERNS = ["-=", "#_", "ha", "ab", "abc", "123", "/\\", "<>", "*~", "+-", "|#", "=-"]


def ascii_art_corpus(n_lines=1200, seed=4321):
    """Lines of words mixed with runs of one character, repeated patterns and boxes."""
    rnd = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        out = []
        for _ in range(rnd.randint(2, 8)):
            r = rnd.random()
            if r < 0.35:
                out.append(rnd.choice(WORDS))
            elif r < 0.70:
                out.append(rnd.choice(ASCII_ART[:-1]) * rnd.randint(1, 32))
            elif r < 0.90:
                out.append(rnd.choice(ASCII_PATTERNS) * rnd.randint(2, 12))
            else:
                k = rnd.randint(2, 20)
                c = rnd.choice("#=*")
                out.append(rnd.choice(["+" + "-" * k + "+", "|" + c * k + "|", c * k + " " + c * k]))
        lines.append(rnd.choice(["", " ", "  "]).join(out))
    return lines


def ascii_families(corpus_file):
    """Tokenizers trained on the ASCII-art corpus (reused unless --retrain)."""
    if saved("ascii_unigram") is None:
        t = SentencePieceUnigramTokenizer()
        t.train([corpus_file], vocab_size=400, special_tokens=["<pad>", "<unk>", "<s>", "</s>"],
                unk_token="<unk>", show_progress=False)
        t._tokenizer.save(os.path.join(OUT, "ascii_unigram.tokenizer.json"))
    if saved("ascii_bpe") is None:
        t = ByteLevelBPETokenizer(add_prefix_space=False)
        t.train([corpus_file], vocab_size=500, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>"],
                show_progress=False)
        t._tokenizer.save(os.path.join(OUT, "ascii_bpe.tokenizer.json"))
    if saved("ascii_wordpiece") is None:
        # Whitespace split only, so that "####" stays one word, whose continuations start with "##".
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.decoder = decoders.WordPiece(prefix="##")
        tok.train([corpus_file], trainers.WordPieceTrainer(vocab_size=400, min_frequency=2,
                                                           special_tokens=["[PAD]", "[UNK]"],
                                                           show_progress=False))
        tok.save(os.path.join(OUT, "ascii_wordpiece.tokenizer.json"))
    for name, mtype in [("sp_ascii_unigram", "unigram"), ("sp_ascii_bpe", "bpe")]:
        prefix = os.path.join(OUT, name)
        if not RETRAIN and os.path.exists(prefix + ".model"):
            continue
        # Identity normalization: no precompiled charsmap, so the model file stays small.
        spm.SentencePieceTrainer.train(
            input=corpus_file, model_prefix=prefix, vocab_size=560, model_type=mtype,
            character_coverage=1.0, normalization_rule_name="identity", byte_fallback=True,
            pad_id=0, unk_id=1, bos_id=2, eos_id=3, user_defined_symbols=["<sep>", "<cls>"],
            num_threads=1, minloglevel=2)
        os.remove(prefix + ".vocab")
    albert_family(os.path.join(OUT, "sp_ascii_unigram.model"), "ascii_albert_unigram")
    # Merges listed twice: the Rust library keeps the last rank of a pair.
    j = json.loads(Tokenizer.from_file(os.path.join(OUT, "ascii_bpe.tokenizer.json")).to_str())
    merges = j["model"]["merges"]
    j["model"]["merges"] = merges + merges[:40:3][::-1]
    with open(os.path.join(OUT, "ascii_bpe_duplicate_merges.tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    # Normal pieces that cover the user-defined symbols with a better score than the
    # library's user-defined score (length * max(scores, FLT_MIN) - 0.1) would be with
    # the largest normal score instead of FLT_MIN.
    from sentencepiece import sentencepiece_model_pb2 as pb
    m = pb.ModelProto()
    with open(os.path.join(OUT, "sp_ascii_unigram.model"), "rb") as f:
        m.ParseFromString(f.read())
    for piece in ("<s", "ep>", "<c", "ls>"):
        m.pieces.add(piece=piece, score=-1.0, type=pb.ModelProto.SentencePiece.NORMAL)
    with open(os.path.join(OUT, "sp_ascii_user_defined.model"), "wb") as f:
        f.write(m.SerializeToString())


REPEAT_FAMILIES = ("bert_wordpiece", "bert_cased", "roberta_bpe", "gpt2_bpe", "unigram_metaspace",
                   "albert_unigram", "trained_bpe", "trained_wordpiece", "trained_unigram",
                   "ascii_unigram", "ascii_albert_unigram", "ascii_bpe", "ascii_bpe_duplicate_merges",
                   "ascii_wordpiece")
REPEAT_SP = ("sp_unigram", "sp_bpe", "sp_unigram_raw", "sp_ascii_unigram", "sp_ascii_bpe", "sp_ascii_user_defined")


def repeats():
    """<family>.repeats.json: the Python encodings of repeat_texts() for every family, loaded from
    its committed file (ids, tokens / pieces, offsets, decode)."""
    texts = repeat_texts()
    for name in REPEAT_FAMILIES:
        tok = Tokenizer.from_file(os.path.join(OUT, f"{name}.tokenizer.json"))
        cases = []
        for s in texts:
            enc = tok.encode(s)
            cases.append({"text": s, "ids": enc.ids, "tokens": enc.tokens,
                          "offsets": [list(o) for o in enc.offsets],
                          "decode": tok.decode(enc.ids, skip_special_tokens=True)})
        dump(f"{name}.repeats.json", {"cases": cases})
    for name in REPEAT_SP:
        sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, f"{name}.model"))
        dump(f"{name}.repeats.json", {"cases": [sp_case(sp, s) for s in texts + ["<sep>" * 3 + "#<sep>##", "a<sep>b <cls> <s ep> <sep<cls>"]]})


def json_floats():
    """Number literals and the f64 the Rust library reads for each (serde_json's default parser,
    which can be one unit in the last place away from the nearest double), as exact reprs."""
    import struct
    rnd = random.Random(77)
    lits = ["0.1", "-0.0", "1e-7", "1.5E+3", "2.5e-3", "-10", "10", "0", "1e0", "0e5", "-7.2240214347839355",
            "123456789012345678901234", "-18446744073709551615", "18446744073709551616", "-9223372036854775809",
            "12345678901234567890.5", "1.00000000000000000000001", "0.000000000000000000000000123",
            "3.141592653589793238462643383279", "4.9e-324", "2.2250738585072014e-308", "1e-320",
            "1.7976931348623157e308", "-1e-400", "9007199254740993", "9007199254740993.0", "-12.345678901234567"]
    for _ in range(120):  # float32 scores widened to double, as SentencePiece models store them
        lits.append(repr(struct.unpack("f", struct.pack("f", -rnd.uniform(0, 20)))[0]))
    for _ in range(120):
        lits.append(repr(-rnd.uniform(0, 20)))
    for _ in range(20):
        lits.append(repr(rnd.uniform(-1, 1) * 10.0 ** rnd.randint(-30, 30)))
    vocab = ", ".join(f'["t{i}", {lit}]' for i, lit in enumerate(lits))
    doc = '{"version": "1.0", "model": {"type": "Unigram", "unk_id": null, "vocab": [%s]}}' % vocab
    tok = Tokenizer.from_str(doc)
    read = [v for _, v in json.loads(tok.to_str())["model"]["vocab"]]
    dump("json_floats.json", {"literals": lits, "rust": [repr(v) for v in read]})


FUZZ_POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 3
    + list("     \t\n\r.,;:!?'\"()[]{}-_/\\@#$%^&*~`|+=<>")
    + list("éèêëàâäôöûüçñßøåæœÉÀÖÜ") + [chr(c) for c in range(0x300, 0x370, 7)]
    + list("日本語中文字符東京한국어서울テキスト漢字") + ["\u1100", "\u1161", "\u11a8"]
    + ["😀", "👍", "🏽", "🚀", "❤", "\ufe0f", "\u200d", "👨", "👩"]
    + ["\x00", "\x07", "\x1f", "\x7f", "\x85", "\u00a0", "\u2003", "\u200b", "\u3000", "\ufeff", "\ufffd"]
    + list("ﬁﬂ①Ⅻ½²ＡＢＣ") + list("مرحبا שלום नमस्ते") + ["\u0600", "\u0601", "\u0e33", "\u0bcd"]
    + ["[CLS]", "[SEP]", "<s>", "</s>", "<mask>", "<sep>", "<cls>", "'s", "'ll"]
)


def fuzz_texts(n=120, seed=99):
    rnd = random.Random(seed)
    return ["".join(rnd.choice(FUZZ_POOL) for _ in range(rnd.randint(0, 40))) for _ in range(n)]


def fuzz():
    """Random strings from an adversarial character pool, encoded by every family."""
    texts = fuzz_texts()
    out = {"texts": texts, "families": {}}
    for name in ("bert_wordpiece", "bert_cased", "roberta_bpe", "gpt2_bpe", "unigram_metaspace", "albert_unigram"):
        tok = Tokenizer.from_file(os.path.join(OUT, f"{name}.tokenizer.json"))
        out["families"][name] = [enc_dict(tok, tok.encode(t), True) for t in texts]
    for name in ("sp_unigram", "sp_bpe", "sp_unigram_raw"):
        sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, f"{name}.model"))
        out["families"][name] = [{"ids": sp.encode(t), "decode": sp.decode(sp.encode(t))} for t in texts]
    dump("fuzz.json", out)


def main():
    os.makedirs(OUT, exist_ok=True)
    if "--trained-only" in sys.argv:
        check_trained()
        repeats()
        return
    lines = make_corpus()
    # A fixed path: SentencePiece stores the input path inside the .model file.
    tmp = os.path.join(tempfile.gettempdir(), "tokenizer_goldens_corpus")
    os.makedirs(tmp, exist_ok=True)
    corpus_file = os.path.join(tmp, "corpus.txt")
    with open(corpus_file, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    bert_family(corpus_file)
    bytelevel_family(corpus_file)
    unigram_family(corpus_file, lines)
    sp = sentencepiece_family(corpus_file)
    albert_family(sp["sp_unigram"])

    bert_tok = Tokenizer.from_file(os.path.join(OUT, "bert_wordpiece.tokenizer.json"))
    bpe_tok = Tokenizer.from_file(os.path.join(OUT, "roberta_bpe.tokenizer.json"))
    unigram_tok = Tokenizer.from_file(os.path.join(OUT, "unigram_metaspace.tokenizer.json"))
    dump("components.json", {"entries": components(bert_tok, bpe_tok, unigram_tok) + bpe_variants(corpus_file)})
    dump("batches.json", {"entries": batches(bert_tok, bpe_tok)})
    # Corpus used by the Swift trainer tests (small slice).
    with open(os.path.join(OUT, "train_corpus.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines[:800]) + "\n")
    check_trained()
    fuzz()
    ascii_file = os.path.join(tmp, "ascii_art.txt")
    with open(ascii_file, "w", encoding="utf-8") as f:
        f.write("\n".join(ascii_art_corpus()) + "\n")
    ascii_families(ascii_file)
    repeats()
    json_floats()
    print("wrote fixtures to", OUT)


if __name__ == "__main__":
    main()
