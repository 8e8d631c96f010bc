#!/usr/bin/env python3
"""Writes Tests/AlbertMoETests/Fixtures/reference_models/: model directories trained and saved by the reference
Python package's own code, and what its own code answers with them.

    pip install torch sentencepiece protobuf "transformers<5" datasets
    python3 Scripts/make_reference_model_fixtures.py PATH/TO/albertmoe-checkout [OUTPUT_DIRECTORY]

The reference package (github mlnomadpy/albertmoe) is imported from the checkout. Nothing is downloaded: the corpus
is the first lines of Examples/demo-corpus/train.txt, and the tokenizer is a SentencePiece unigram model trained on
it with ALBERT's special pieces (<pad> 0, <unk> 1, [CLS] 2, [SEP] 3, [MASK] 4), wrapped in transformers'
AlbertTokenizerFast and saved with save_pretrained, as albert-base-v2's files are.

Written:
- mlm/, clm/: epoch_2/ of a run of the reference's scripts/train_mlm.py and train_clm.py training functions
  (pytorch_model.bin, spiece.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json; no config.json).
  clm/ keeps only its pytorch_model.bin: its tokenizer files are mlm/'s, byte for byte (the tests copy them in).
  The reference builds its config from flags only, so both use RoPE; without torchtune (which does not install
  beside current torch) its RoPE is the fallback that rotates by head index, whose buffers are in the weights.
- spiece_only/: the same SentencePiece model saved by the slow AlbertTokenizer with an added token (spiece.model,
  tokenizer_config.json, special_tokens_map.json, added_tokens.json; no tokenizer.json).
- expected.json: the flags; the ids AutoTokenizer gives for texts, from both tokenizer directories; the sentence
  embeddings of the reference's SentenceAlbert(config, mlm/); the fill-mask top 5 of its serve mode
  (MLMTrainer.predict_masked_tokens); the causal model's greedy continuations by the loop of its
  CLMTrainer.generate_text (the whole sequence recomputed per token, no causal mask, stop at eos), with the next
  token taken as the most likely instead of sampled.
"""
import json
import os
import shutil
import sys
import tempfile
import types

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "AlbertMoETests", "Fixtures", "reference_models")
SIZES = ["--embedding_size", "16", "--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "4",
         "--intermediate_size", "48", "--num_experts", "4", "--top_k_experts", "2", "--max_position_embeddings", "64",
         "--vocab_size", "256"]
TOKENIZER_TEXTS = ["the big mouse found the orange cat .", "The  Favourite   COLOUR of Alice is BLUE!",
                   "Café naïve résumé ``quoted'' text", "after 9,000 tuesdays comes 12,5 wednesday",
                   "emma [MASK] the hamster", "<extra_token> appears here<extra_token>", "  leading and trailing  ", ""]
EMBED_TEXTS = ["the big mouse found the orange cat near the river .", "alice works as a pilot .",
               "after tuesday comes wednesday , and then thursday .", "The Farmer WALKS the hamster every thursday",
               "emma", "in vienna , tina the farmer walks the cat every monday . the favourite colour of tina is white ."]
MASK_TEXTS = ["the favourite colour of alice is [MASK] .", "after tuesday comes [MASK] , and then [MASK] .",
              "emma the [MASK] walks the hamster every thursday ."]
PROMPTS = ["the big mouse found", "after monday comes", "the favourite colour of tina is"]


def main():
    global OUT
    reference = os.path.abspath(sys.argv[1])
    if len(sys.argv) > 2:
        OUT = os.path.abspath(sys.argv[2])
    sys.path[:0] = [reference, os.path.join(reference, "scripts")]
    sys.modules.setdefault("wandb", types.ModuleType("wandb"))   # imported by the scripts, unused without --use_wandb
    import sentencepiece as spm
    from transformers import AlbertTokenizer, AlbertTokenizerFast, AutoTokenizer
    from albertmoe.config import AlbertMoEConfig
    from albertmoe.models import SentenceAlbert
    from albertmoe.training import CLMTrainer, MLMTrainer, get_common_parser
    import train_clm
    import train_mlm

    work = tempfile.mkdtemp()
    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus)
    with open(os.path.join(ROOT, "Examples", "demo-corpus", "train.txt")) as f:
        lines = [next(f) for _ in range(600)]
    with open(os.path.join(corpus, "train.txt"), "w") as f:
        f.writelines(lines)

    spm.SentencePieceTrainer.train(input=os.path.join(corpus, "train.txt"), model_prefix=os.path.join(work, "sp"),
                                   vocab_size=160, model_type="unigram", pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
                                   control_symbols="[CLS],[SEP],[MASK]", character_coverage=1.0, seed_sentencepiece_size=10000,
                                   num_threads=1)
    tokenizer_dir = os.path.join(work, "tokenizer")
    AlbertTokenizerFast(vocab_file=os.path.join(work, "sp.model")).save_pretrained(tokenizer_dir)
    slow = AlbertTokenizer(vocab_file=os.path.join(work, "sp.model"))
    slow.add_tokens(["<extra_token>"])
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    slow.save_pretrained(os.path.join(OUT, "spiece_only"))

    expected = {"flags": SIZES, "tokenizer": {}}
    for name, directory in [("mlm", tokenizer_dir), ("spiece_only", os.path.join(OUT, "spiece_only"))]:
        tok = AutoTokenizer.from_pretrained(directory)
        expected["tokenizer"][name] = [{"text": t, "ids": tok(t)["input_ids"]} for t in TOKENIZER_TEXTS]

    def train(task, trainer_type, script):
        torch.manual_seed(0)
        args = get_common_parser().parse_args(
            ["--task_type", task, "--mode", "pretrain", "--model_path", os.path.join(work, task), "--dataset", corpus,
             "--dataset_config", "none", "--tokenizer_name", tokenizer_dir, "--num_epochs", "2", "--batch_size", "16",
             "--max_length", "32", "--save_every", "1", "--max_lr", "0.01"] + SIZES)
        trainer = trainer_type.create_trainer(args)
        getattr(script, f"train_{task}_model")(trainer, args)
        shutil.copytree(os.path.join(work, task, "epoch_2"), os.path.join(OUT, task))
        serving = trainer_type.create_trainer(args)
        assert serving.load_for_serving(os.path.join(OUT, task))
        return args, serving

    args, mlm = train("mlm", MLMTrainer, train_mlm)
    config = AlbertMoEConfig(vocab_size=args.vocab_size, embedding_size=args.embedding_size, hidden_size=args.hidden_size,
                             num_hidden_layers=args.num_hidden_layers, num_attention_heads=args.num_attention_heads,
                             intermediate_size=args.intermediate_size, num_experts=args.num_experts,
                             max_position_embeddings=args.max_position_embeddings, top_k_experts=args.top_k_experts)
    sentence = SentenceAlbert(config, os.path.join(OUT, "mlm"))
    expected["embeddings"] = {"texts": EMBED_TEXTS, "batch_size": 4,
                              "vectors": sentence.encode(EMBED_TEXTS, batch_size=4).tolist()}
    fills = []
    for text in MASK_TEXTS:
        answers = mlm.predict_masked_tokens(text, top_k=5)
        ids = mlm.tokenizer(text)["input_ids"]
        with torch.no_grad():
            logits = mlm.model(torch.tensor([ids]))["logits"][0]
        masks = [{"position": a["position"], "tokens": [p["token"] for p in a["predictions"]],
                  "probabilities": [p["probability"] for p in a["predictions"]],
                  "ids": torch.topk(logits[a["position"]], 5).indices.tolist()} for a in answers]
        fills.append({"text": text, "ids": ids, "masks": masks})
    expected["fill_mask"] = fills

    _, clm = train("clm", CLMTrainer, train_clm)
    for name in os.listdir(os.path.join(OUT, "clm")):
        if name != "pytorch_model.bin":
            with open(os.path.join(OUT, "clm", name), "rb") as a, open(os.path.join(OUT, "mlm", name), "rb") as b:
                assert a.read() == b.read(), name
            os.remove(os.path.join(OUT, "clm", name))
    continuations = []
    for prompt in PROMPTS:
        ids = clm.tokenizer(prompt, return_tensors="pt")["input_ids"]
        start = ids.size(1)
        with torch.no_grad():
            for _ in range(24 - ids.size(1)):                         # generate_text(prompt, max_length=24)
                next_token = clm.model(ids)["logits"][0, -1, :].argmax().view(1, 1)
                if next_token.item() == clm.tokenizer.eos_token_id:
                    break
                ids = torch.cat([ids, next_token], dim=-1)
        continuations.append({"prompt": prompt, "prompt_ids": ids[0, :start].tolist(), "generated": ids[0, start:].tolist(),
                              "text": clm.tokenizer.decode(ids[0], skip_special_tokens=True)})
    expected["greedy"] = {"gen_max_length": 24, "continuations": continuations}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
