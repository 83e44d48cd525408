"""Records what transformers' slow CLIPTokenizer (the path taken without ftfy) makes of tricky
prompts, using the committed vocabulary in Tests/Fixtures/tokenizer/, into expected.json there.

Needs transformers 4.x (5.x replaced the slow tokenizer with the `tokenizers` pipeline) and no
ftfy. The Swift test CLIPTokenizerTests.testMatchesTransformersFixture reads the result; it never
runs Python. Run: python3 Tests/Fixtures/make_tokenizer_fixture.py
"""
import json
import os
import sys

import transformers
from transformers import CLIPTokenizer

folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer")

tokenizer = CLIPTokenizer.from_pretrained(folder)
if not hasattr(tokenizer, "bpe") or tokenizer.fix_text is not None:
    sys.exit("needs the slow CLIPTokenizer of transformers 4.x without ftfy installed")

prompts = [
    "a photo of a cat",
    "A PHOTO OF A CAT",
    "a cat's toy",
    "the dog's ball, the cat's toy!!",
    "  a   red\tcar \n on the   beach  ",
    "cats running on the beach...",
    "42 cats and 7 dogs",
    "1990s video, 4k, 60fps",
    "café naïve résumé",
    "Ångström Éclair ÇA",
    "ΟΔΟΣ σοφίας",
    "猫が好き 你好世界",
    "emoji 🐈‍⬛ and 👍🏽!",
    "hello<|endoftext|>world",
    "<|startoftext|>a cat<|endoftext|>",
    "it's, they're, we've, I'm, you'll, he'd",
    "don't STOP'S 'RE",
    "x\u0000y\u200bz\ufffd w",
    "tabs\tand\u00a0nbsp\u2028line",
    "(red)-[blue]_{green} #tree @sky $5 100%",
    "a--b ... c;; d?! e",
    "walking walking walking " * 30,
    "",
    "   ",
    "a cat in the style of van gogh, oil painting, highly detailed, trending on artstation, 8k, sharp focus",
]

cases = []
for prompt in prompts:
    ids = tokenizer(prompt)["input_ids"]
    padded = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)["input_ids"]
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    cases.append({"prompt": prompt, "ids": ids, "padded": padded, "decoded": decoded})

with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as handle:
    json.dump({"transformers": transformers.__version__, "cases": cases}, handle, ensure_ascii=False, indent=1)
    handle.write("\n")
print(f"wrote {len(cases)} cases with transformers {transformers.__version__}")
