#!/usr/bin/env python3
"""Checks that the reference Python package's own code runs on an epoch_N/ directory written by this package's
train-clm / train-mlm (--save_every), from its pytorch_model.bin and tokenizer files (it reads no config.json and
no safetensors).

    pip install torch sentencepiece protobuf "transformers<5"
    albertmoe embed --model DIR --input TEXTS --output OURS.jsonl   # a causal model: with --attention bidirectional
    python3 Scripts/check_reference_runs_ours.py PATH/TO/albertmoe-checkout DIR TEXTS OURS.jsonl

It builds the reference's config from DIR/config.json (as a user passes the same sizes as flags), then runs
- its SentenceAlbert(config, DIR).encode on the lines of TEXTS, compared with OURS.jsonl (this package's
  `albertmoe embed` of the same lines; the reference runs a causal model without its causal mask, hence
  --attention bidirectional there): they agree for "none" and "absolute" models; a "rope" model loads there
  but its RoPE without torchtune does not rotate by position, so its embeddings differ;
- its serve path: CLMTrainer / MLMTrainer.create_trainer from the size flags, load_for_serving(DIR) (a strict
  load_state_dict of pytorch_model.bin), then generate_text or predict_masked_tokens. Its serve mode builds a RoPE
  model from flags, so an "absolute" model cannot take this path there.
"""
import json
import os
import sys
import types

import numpy as np
import torch


def main():
    reference, directory, texts_file, ours_file = sys.argv[1:5]
    sys.path.insert(0, os.path.abspath(reference))
    sys.modules.setdefault("wandb", types.ModuleType("wandb"))
    from albertmoe.config import AlbertMoEConfig
    from albertmoe.models import SentenceAlbert
    from albertmoe.training import CLMTrainer, MLMTrainer, get_common_parser

    with open(os.path.join(directory, "config.json")) as f:
        ours = json.load(f)
    sizes = {k: ours[k] for k in ["vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                  "intermediate_size", "num_experts", "top_k_experts", "max_position_embeddings"]}
    position = ours["position_embedding_type"]
    config = AlbertMoEConfig(**sizes, position_embedding_type="absolute" if position == "absolute" else "rope")
    with open(texts_file) as f:
        texts = [line.rstrip("\n") for line in f]
    with open(ours_file) as f:
        expected = np.array([json.loads(line) for line in f], dtype=np.float32)
    encoder = SentenceAlbert(config, directory)
    got = encoder.encode(texts, batch_size=8)
    worst = float(np.abs(got - expected).max())
    print(f"SentenceAlbert(config, {directory}): {len(texts)} embeddings, largest difference from ours {worst:.2e} "
          f"({position} positions)")
    if position != "rope":
        assert worst < 1e-4, worst

    if position == "absolute":
        print("serve path: skipped (the reference's serve mode builds a RoPE model from its flags)")
        return
    causal = ours["architectures"] == ["AlbertForCausalLM"]
    flags = [item for k, v in sizes.items() for item in (f"--{k}", str(v))]
    args = get_common_parser().parse_args(["--task_type", "clm" if causal else "mlm", "--mode", "serve", "--model_path",
                                           directory, "--tokenizer_name", directory] + flags)
    trainer = (CLMTrainer if causal else MLMTrainer).create_trainer(args)
    assert trainer.load_for_serving(directory), "load_for_serving failed"
    if causal:
        print("generate_text:", repr(trainer.generate_text(texts[0][:20], max_length=24)))
    else:
        words = texts[0].split()
        words[len(words) // 2] = "[MASK]"
        answers = trainer.predict_masked_tokens(" ".join(words), top_k=3)
        assert isinstance(answers, list), answers
        print("predict_masked_tokens:", [[p["token"] for p in a["predictions"]] for a in answers])


if __name__ == "__main__":
    main()
