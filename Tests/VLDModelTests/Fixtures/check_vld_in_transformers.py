#!/usr/bin/env python3
"""Loads a vld checkpoint with transformers and compares its logits with vld's own.

usage: python3 check_vld_in_transformers.py CHECKPOINT_DIR [VLDCTL]
Runs `vldctl checkpoint logits DIR --tokens 5,17,3,9 --json` and AutoModelForCausalLM on the same
tokens, and prints the largest absolute difference (non-looped schedules only: transformers applies
each stored block once).
"""
import json
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM

ckpt = sys.argv[1]
vldctl = sys.argv[2] if len(sys.argv) > 2 else ".build/release/vldctl"
tokens = [5, 17, 3, 9]
out = subprocess.run([vldctl, "checkpoint", "logits", ckpt, "--tokens", ",".join(map(str, tokens)), "--json"],
                     check=True, capture_output=True, text=True).stdout
ref = torch.tensor(json.loads(out)["logits"])
model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
with torch.no_grad():
    got = model(torch.tensor([tokens])).logits[0]
print(type(model).__name__, "max |transformers - vld| =", (got - ref).abs().max().item())
