#!/usr/bin/env python3
"""Writes Tests/AlbertMoETests/Fixtures/reference_sentence/: a masked-LM encoder made by the reference Python
package, saved with a tokenizer.json that declares fixed padding and truncation at 128 (as published
sentence-embedding tokenizers do), and the embeddings the reference's own SentenceAlbert.encode gives for
sentences of mixed lengths in batches of 32.

    pip install torch safetensors "tokenizers<0.23" "transformers<5" "datasets<4"
    python3 Scripts/make_reference_embeddings.py PATH/TO/albertmoe-checkout

The reference package (github mlnomadpy/albertmoe) is imported from the checkout. The encoder uses absolute
positions: the reference's RoPE rotates by position only through torchtune, which does not install beside
current torch releases, and its fallback rotates by head index (see SPEC.md).
"""
import json
import os
import random
import sys
import tempfile

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "AlbertMoETests", "Fixtures",
                   "reference_sentence")
WORDS = ("the a cat dog bird sat ran sang on in under over mat rug tree house river quick slow brown lazy red "
         "green blue today yesterday because although while it they we was were is are and or but").split()


def sentences(rng, count):
    out = []
    for i in range(count):
        n = rng.choice([1, 2, 3, 5, 8, 13, 21, 40, 90, 150]) if i % 5 == 0 else rng.randint(1, 30)
        words = [rng.choice(WORDS) for _ in range(n)]
        if i % 7 == 0:
            words.append(rng.choice(["!", "?", ".", "42", "naïve"]))
        out.append(" ".join(words))
    out[3] = ""
    return out


def main():
    sys.path.insert(0, os.path.abspath(sys.argv[1]))
    from albertmoe.config import AlbertMoEConfig
    from albertmoe.models import SentenceAlbert, AlbertForMaskedLM

    rng = random.Random(7)
    corpus = sentences(rng, 400)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.enable_padding(length=128, pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length=128)

    config = AlbertMoEConfig(vocab_size=tok.get_vocab_size(), embedding_size=64, hidden_size=128, num_hidden_layers=3,
                             num_attention_heads=4, intermediate_size=256, num_experts=4, top_k_experts=2,
                             max_position_embeddings=256, position_embedding_type="absolute")
    torch.manual_seed(0)
    model = AlbertForMaskedLM(config)
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as ref_dir:
        # The reference's own directory: pytorch_model.bin and save_pretrained tokenizer files.
        torch.save(model.state_dict(), os.path.join(ref_dir, "pytorch_model.bin"))
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]")
        fast.save_pretrained(ref_dir)
        encoder = SentenceAlbert(config, ref_dir)
        texts = sentences(random.Random(11), 200)
        expected = torch.from_numpy(encoder.encode(texts, batch_size=32)).contiguous()
        lengths = [len(ids) for ids in fast(texts, truncation=True, max_length=128)["input_ids"]]

    params = {name: p.detach().contiguous() for name, p in model.named_parameters()}
    save_file(params, os.path.join(OUT, "model.safetensors"))
    ours = dict(vocab_size=config.vocab_size, embedding_size=config.embedding_size, hidden_size=config.hidden_size,
                num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
                intermediate_size=config.intermediate_size, max_position_embeddings=config.max_position_embeddings,
                position_embedding_type="absolute", num_experts=config.num_experts, top_k_experts=config.top_k_experts,
                architectures=["AlbertForMaskedLM"])
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(ours, f, indent=2)
    tok.save(os.path.join(OUT, "tokenizer.json"))
    save_file({"embeddings": expected}, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "sentences.json"), "w") as f:
        json.dump({"sentences": texts, "token_counts": lengths, "batch_size": 32}, f, ensure_ascii=False, indent=0)
    print(f"{len(texts)} sentences, {min(lengths)}..{max(lengths)} tokens, written to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
