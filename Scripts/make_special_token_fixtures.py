#!/usr/bin/env python3
"""Generate the special-token fixtures for the Swift `Tokenizers` target (which tokens a tokenizer's files give
the roles bos, eos, unk, sep, pad, cls and mask).

Run by hand (outputs are committed):

    pip install "transformers<5" tokenizers sentencepiece protobuf
    python3 Scripts/make_special_token_fixtures.py

Writes to Tests/TokenizersTests/Fixtures/:

sp_t5_ids.model, sp_named_ids.model   SentencePiece models whose trainer ids differ from the defaults
                                      (no bos, pad 0, eos 1, unk 2; and bos 0, eos 1, pad 2, unk 3 named [CLS],
                                      [SEP], [PAD], [UNK]).
special_tokens.json   {"cases": [{"name", "tokenizer" (a fixture file, copied as tokenizer.json or
                      tokenizer.model), "files" ({file name: text} written beside it),
                      "expected" ({role: [id, content] or null})}]}

The expected roles are what the Python libraries answer: `PreTrainedTokenizerFast.from_pretrained(directory)`
(`tokenizer.eos_token_id`, `str(tokenizer.eos_token)`, ...) for tokenizer.json directories, the `sentencepiece`
library's `bos_id()`, `eos_id()`, `pad_id()` and `unk_id()` for .model files. Where Python names no token for a
role, the tokenizer's own declaration stands, read here from the files directly: tokenizer.json's model unk_token
(or a Unigram unk_id), a BertProcessing/RobertaProcessing post-processor's cls and sep, a template
"X $A Y"'s X and Y; a SentencePiece model's ids under a tokenizer_config.json.
"""
import json
import os
import shutil
import tempfile

import sentencepiece as spm
from tokenizers import AddedToken
from transformers import PreTrainedTokenizerFast

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "Tests", "TokenizersTests", "Fixtures")
ROLES = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]


def fixture(name):
    return os.path.join(FIXTURES, name)


def declared(tokenizer_json):
    """The roles a tokenizer.json declares by itself."""
    d = json.load(open(tokenizer_json, encoding="utf-8"))
    vocab = dict(d["model"]["vocab"]) if isinstance(d["model"]["vocab"], dict) else None
    added = {t["content"]: t["id"] for t in d.get("added_tokens", [])}
    roles = {}
    model = d["model"]
    if model.get("unk_id") is not None:
        content = model["vocab"][model["unk_id"]][0]
        roles["unk"] = [model["unk_id"], content]
    elif model.get("unk_token") is not None:
        content = model["unk_token"]
        token_id = added.get(content, (vocab or {}).get(content))
        if token_id is not None:
            roles["unk"] = [token_id, content]

    def separators(p):
        if p is None:
            return {}
        if p["type"] in ("BertProcessing", "RobertaProcessing"):
            return {"cls": [p["cls"][1], p["cls"][0]], "sep": [p["sep"][1], p["sep"][0]]}
        if p["type"] == "TemplateProcessing":
            s = p["single"]
            if len(s) == 3 and "SpecialToken" in s[0] and "Sequence" in s[1] and "SpecialToken" in s[2]:
                cls, sep = (p["special_tokens"][s[i]["SpecialToken"]["id"]] for i in (0, 2))
                if len(cls["ids"]) == 1 and len(sep["ids"]) == 1:
                    return {"cls": [cls["ids"][0], cls["tokens"][0]], "sep": [sep["ids"][0], sep["tokens"][0]]}
            return {}
        if p["type"] == "Sequence":
            out = {}
            for q in p["processors"]:
                for k, v in separators(q).items():
                    out.setdefault(k, v)
            return out
        return {}

    roles.update(separators(d.get("post_processor")))
    return roles


def python_roles(directory):
    t = PreTrainedTokenizerFast.from_pretrained(directory)
    out = {}
    for role in ROLES:
        token = getattr(t, role + "_token")
        out[role] = None if token is None else [getattr(t, role + "_token_id"), str(token)]
    return out


def json_case(name, tokenizer, files=None, saved=None):
    """A tokenizer.json directory: `files` as given, or those `save_pretrained` writes with the roles `saved`."""
    directory = tempfile.mkdtemp()
    if saved is not None:
        PreTrainedTokenizerFast(tokenizer_file=fixture(tokenizer), **saved).save_pretrained(directory)
        files = {f: open(os.path.join(directory, f), encoding="utf-8").read()
                 for f in ("tokenizer_config.json", "special_tokens_map.json")}
        os.remove(os.path.join(directory, "tokenizer.json"))
    for f, text in (files or {}).items():
        open(os.path.join(directory, f), "w", encoding="utf-8").write(text)
    shutil.copy(fixture(tokenizer), os.path.join(directory, "tokenizer.json"))
    python = python_roles(directory)
    own = declared(fixture(tokenizer))
    shutil.rmtree(directory)
    return {"name": name, "tokenizer": tokenizer, "files": files or {},
            "expected": {r: python[r] if python[r] is not None else own.get(r) for r in ROLES}}


def sp_case(name, model, config=None):
    sp = spm.SentencePieceProcessor(model_file=fixture(model))
    ids = {"bos": sp.bos_id(), "eos": sp.eos_id(), "pad": sp.pad_id(), "unk": sp.unk_id()}
    expected = {r: [ids[r], sp.id_to_piece(ids[r])] if ids.get(r, -1) >= 0 else None for r in ROLES}
    for key, content in (config or {}).items():
        expected[key[:-len("_token")]] = [sp.piece_to_id(content), content]
    files = {"tokenizer_config.json": json.dumps(config, indent=2)} if config else {}
    return {"name": name, "tokenizer": model, "files": files, "expected": expected}


def train_sentencepiece():
    corpus = fixture("train_corpus.txt")
    common = dict(input=corpus, vocab_size=120, character_coverage=0.98, normalization_rule_name="identity")
    spm.SentencePieceTrainer.train(model_prefix=fixture("sp_t5_ids"), model_type="unigram",
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, **common)
    spm.SentencePieceTrainer.train(model_prefix=fixture("sp_named_ids"), model_type="bpe",
                                   bos_id=0, eos_id=1, pad_id=2, unk_id=3, bos_piece="[CLS]", eos_piece="[SEP]",
                                   pad_piece="[PAD]", unk_piece="[UNK]", **common)
    for name in ("sp_t5_ids", "sp_named_ids"):
        os.remove(fixture(name + ".vocab"))


def added(content):
    return AddedToken(content, lstrip=False, rstrip=False, normalized=False, special=True)


def main():
    train_sentencepiece()
    legacy_config = json.dumps({
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                      "rstrip": False, "single_word": False},
        "eos_token": "<s>", "pad_token": None, "mask_token": "<mask>", "model_max_length": 512}, indent=2)
    legacy_map = json.dumps({"eos_token": {"content": "</s>", "lstrip": False, "normalized": False, "rstrip": False,
                                           "single_word": False}, "unk_token": "<unk>"}, indent=2)
    modern_config = json.dumps({
        "added_tokens_decoder": {"0": {"content": "<s>", "lstrip": False, "normalized": False, "rstrip": False,
                                       "single_word": False, "special": True}},
        "eos_token": "</s>", "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2)
    cases = [
        json_case("bert, saved with its roles", "bert_wordpiece.tokenizer.json",
                  saved=dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
                             mask_token="[MASK]")),
        json_case("byte-level BPE, roles saved as added tokens", "gpt2_bpe.tokenizer.json",
                  saved=dict(bos_token=added("<s>"), eos_token=added("</s>"), unk_token=added("<unk>"),
                             pad_token=added("</s>"), mask_token=added("<mask>"))),
        json_case("a config without added_tokens_decoder: the map's roles win", "roberta_bpe.tokenizer.json",
                  files={"tokenizer_config.json": legacy_config, "special_tokens_map.json": legacy_map}),
        json_case("a config with added_tokens_decoder: the map is not read", "roberta_bpe.tokenizer.json",
                  files={"tokenizer_config.json": modern_config,
                         "special_tokens_map.json": json.dumps({"pad_token": "<pad>", "eos_token": "<s>"})}),
        json_case("a special_tokens_map.json alone", "gpt2_bpe.tokenizer.json",
                  files={"special_tokens_map.json": json.dumps({
                      "eos_token": "</s>", "pad_token": {"content": "<pad>", "single_word": False}})}),
        json_case("tokenizer.json alone: a template's cls and sep, the model's unk", "bert_template.tokenizer.json"),
        json_case("a Unigram unk_id and an ALBERT template, with a config", "albert_unigram.tokenizer.json",
                  files={"tokenizer_config.json": json.dumps({"pad_token": "<pad>", "eos_token": "<sep>"})}),
        json_case("no declarations at all", "gpt2_bpe.tokenizer.json"),
        sp_case("SentencePiece, the default ids", "sp_unigram.model"),
        sp_case("SentencePiece, no bos, pad 0, eos 1, unk 2", "sp_t5_ids.model"),
        sp_case("SentencePiece, named pieces at other ids", "sp_named_ids.model"),
        sp_case("SentencePiece under a tokenizer_config.json", "sp_named_ids.model",
                config={"cls_token": "[CLS]", "sep_token": "[SEP]", "eos_token": "[PAD]"}),
    ]
    with open(fixture("special_tokens.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for c in cases:
        print(c["name"], {r: v for r, v in c["expected"].items() if v is not None})


if __name__ == "__main__":
    main()
