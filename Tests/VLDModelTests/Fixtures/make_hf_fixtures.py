#!/usr/bin/env python3
"""Writes the Hugging Face checkpoints the vld loader is tested against.

Run with torch and transformers installed (pip install torch transformers):
    python3 Tests/VLDModelTests/Fixtures/make_hf_fixtures.py
It writes hf-gpt2/ (GPT2LMHeadModel, tied head) and hf-llama/ (LlamaForCausalLM with grouped-query
attention, untied head) through save_pretrained in float32, and expected.json with each model's
logits for the tokens [5, 17, 3, 8, 0, 21] as computed by transformers.
"""
import json
import os

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

here = os.path.dirname(os.path.abspath(__file__))
tokens = [5, 17, 3, 8, 0, 21]
torch.manual_seed(0)
expected = {"tokens": tokens}

gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=24, n_positions=12, n_embd=16, n_layer=2, n_head=2,
                                  activation_function="gelu_new", resid_pdrop=0, embd_pdrop=0, attn_pdrop=0))
llama = LlamaForCausalLM(LlamaConfig(vocab_size=24, hidden_size=16, intermediate_size=40, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=12,
                                     rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False))
for name, model in [("hf-gpt2", gpt2), ("hf-llama", llama)]:
    with torch.no_grad():  # make norms and biases non-trivial
        for n, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.2 if p.dim() == 1 else 0.05))
    model.eval()
    model.save_pretrained(os.path.join(here, name), safe_serialization=True)
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0]
    expected[name] = logits.tolist()
with open(os.path.join(here, "expected.json"), "w") as f:
    json.dump(expected, f)
print("wrote", here)
