#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/seed-*) from the
repository's fixtures and hand-written cases. Deterministic; run it again after changing it.
Inputs kept from fuzzing runs (`scripts/fuzz.sh --merge`) sit next to the seeds under their
libFuzzer (SHA-1) names and are left alone."""
import glob
import json
import os
import struct

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(directory, "seed-" + name), "wb") as f:
        f.write(data)


# ---- safetensors ------------------------------------------------------------------------
def safetensors(tensors, metadata=None, pad=True):
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


write("safetensors", "empty", safetensors([]))
write("safetensors", "f32", safetensors([("w", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))], {"format": "pt"}))
write("safetensors", "dtypes", safetensors([
    ("a", "BF16", [3], b"\x80\x3f" * 3), ("b", "F16", [1, 2], b"\x00\x3c" * 2),
    ("c", "I64", [1], struct.pack("<q", -7)), ("d", "BOOL", [2], b"\x01\x00"),
    ("e", "F8_E4M3", [4], b"\x38" * 4), ("f", "U8", [0], b""), ("g", "F64", [], struct.pack("<d", 0.5)),
    ("h", "I32", [1, 1, 1], struct.pack("<i", 3)), ("i", "F8_E5M2", [1], b"\x3c"),
    ("j", "I16", [1], b"\x01\x00"), ("k", "I8", [1], b"\x01"), ("l", "U16", [1], b"\x01\x00"),
    ("m", "U32", [1], b"\x01\x00\x00\x00"), ("n", "U64", [1], b"\x01" + b"\x00" * 7)],
    {"format": "pt", "note": "seed"}))
write("safetensors", "unpadded", safetensors([("x", "F32", [1], struct.pack("<f", 1))], pad=False))
write("safetensors", "model-layers", safetensors([
    ("model.embed_tokens.weight", "BF16", [4, 2], b"\x00\x00" * 8),
    ("model.layers.0.self_attn.q_proj.weight", "BF16", [2, 2], b"\x80\x3f" * 4),
    ("model.norm.weight", "F32", [2], struct.pack("<2f", 1, 1))], {"format": "pt"}))

# ---- checkpoint_index (the shards are fixed by the target: a | b, c) -------------------
index = {"metadata": {"total_size": 16},
         "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
                        "c": "model-00002-of-00002.safetensors"}}
write("checkpoint_index", "valid", json.dumps(index, indent=2))
write("checkpoint_index", "missing-tensor", json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))
write("checkpoint_index", "wrong-shard", json.dumps({"weight_map": {
    "a": "model-00002-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
    "c": "model-00002-of-00002.safetensors"}}))
write("checkpoint_index", "escape", json.dumps({"weight_map": {"a": "../model-00001-of-00002.safetensors"}}))
write("checkpoint_index", "not-object", "[1, 2]")

# ---- tokenizer ---------------------------------------------------------------------------
texts = []
for name in ("qwen3", "mistral"):
    cases = json.load(open(os.path.join(ROOT, "tests", "assets", "tokenizer_reference", name + ".json")))["cases"]
    texts += [c["text"] for c in cases if c["text"]]
texts = sorted(set(texts))
for i, text in enumerate(texts[::3]):  # a third of the recorded cases, both tokenizers
    write("tokenizer", "qwen3-%02d" % i, b"\x00" + text.encode())
    write("tokenizer", "mistral-special-%02d" % i, b"\x06" + text.encode())

bytes_to_unicode = {}
visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
extra = 0
for b in range(256):
    if b in visible:
        bytes_to_unicode[b] = chr(b)
    else:
        bytes_to_unicode[b] = chr(256 + extra)
        extra += 1


def tiny(model_extra, normalizer=None, pre_tokenizer=None, post_processor=None, decoder=None,
         added=(), vocab=None, merges=()):
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
             "vocab": vocab, "merges": [list(m) for m in merges]}
    model.update(model_extra)
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": list(added),
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
            "decoder": decoder, "model": model}


def added_token(id_, content, special=True, **flags):
    token = {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": special}
    token.update(flags)
    return token


byte_vocab = {bytes_to_unicode[b]: b for b in range(256)}
byte_vocab.update({"Ġt": 256, "he": 257, "Ġthe": 258, "in": 259})
byte_merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n")]
qwen = json.load(open(os.path.join(ROOT, "tests", "assets", "tokenizers", "qwen3", "tokenizer.json")))
mistral = json.load(open(os.path.join(ROOT, "tests", "assets", "tokenizers", "mistral", "tokenizer.json")))
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True}

sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    sp_vocab["<0x%02X>" % b] = 3 + b
for piece in ["▁", "t", "h", "e", "▁t", "he", "▁the", "a", "b", "1", "2"]:
    sp_vocab.setdefault(piece, len(sp_vocab))
sp_merges = [("▁", "t"), ("h", "e"), ("▁t", "he")]

tokenizers = {
    "qwen3-pipeline": tiny({}, qwen["normalizer"], qwen["pre_tokenizer"], qwen["post_processor"], qwen["decoder"],
                           [added_token(260, "<|im_start|>"), added_token(261, "<|im_end|>"),
                            added_token(262, "<think>", special=False)], byte_vocab, byte_merges),
    "gpt2-bytelevel": tiny({}, None, byte_level, byte_level, byte_level, [added_token(260, "<|endoftext|>")],
                           byte_vocab, byte_merges),
    "llama2-pipeline": tiny({"unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True}, mistral["normalizer"],
                            None, mistral["post_processor"], mistral["decoder"],
                            [added_token(0, "<unk>"), added_token(1, "<s>"), added_token(2, "</s>")],
                            sp_vocab, sp_merges),
    "metaspace": tiny({"unk_token": "<unk>"},
                      {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"},
                                                           {"type": "Strip", "strip_left": True, "strip_right": True}]},
                      {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
                      {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                  {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                       "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                                          "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
                      {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
                      [added_token(1, "<s>"), added_token(2, "</s>"),
                       added_token(300, "[MASK]", lstrip=True, rstrip=True, single_word=True, normalized=True)],
                      sp_vocab, sp_merges),
    "splits": tiny({"ignore_merges": True},
                   {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]},
                   {"type": "Sequence", "pretokenizers": [
                       {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": True},
                       {"type": "Punctuation", "behavior": "Isolated"},
                       {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithPrevious", "invert": False},
                       {"type": "Split", "pattern": {"Regex": "x+"}, "behavior": "Contiguous", "invert": True}]},
                   {"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]},
                   {"type": "BPEDecoder", "suffix": "</w>"},
                   [added_token(1, "<s>"), added_token(2, "</s>")], sp_vocab, sp_merges),
    "roberta": tiny({}, {"type": "NFKD"}, byte_level,
                    {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1], "trim_offsets": True,
                     "add_prefix_space": True},
                    byte_level, [added_token(1, "<s>"), added_token(2, "</s>")],
                    {**{k: v + 3 for k, v in byte_vocab.items()}, "<unk>": 0, "<s>": 1, "</s>": 2}, byte_merges),
}
samples = ["the theme in the hex 1234", "Hello  world -x- <s> 12ab", "<|im_start|>user\nhi<|im_end|>\n<think>\n",
           "Ünïcödé ﬁ ½ 你好 😀", "   leading and trailing   ", "a[MASK]b [MASK] c"]
for i, (name, tokenizer) in enumerate(sorted(tokenizers.items())):
    text = json.dumps(tokenizer, ensure_ascii=False).encode()
    for j, sample in enumerate(samples[:3] if i % 2 else samples[3:]):
        write("tokenizer", "json-%s-%d" % (name, j), bytes([1 | (4 if j == 1 else 0)]) + text + b"\x00" + sample.encode())

# ---- config --------------------------------------------------------------------------------
configs = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
overrides = ["optim.lr=1e-5", "train.max_steps=3", "rollout.temperature=0.7", "gopd.lambda=1.25",
             "teachers.extra.path=/tmp/t", "lens.gamma=0.2", "run.seed=7", "train.save_every=0"]
for i, path in enumerate(configs):
    text = open(path, "rb").read()
    name = os.path.relpath(path, os.path.join(ROOT, "configs")).replace("/", "-")
    write("config", name, text + (b"\x00" + overrides[i % len(overrides)].encode() if i % 2 else b""))
write("config", "flow", "{algorithm: sft, student: {path: m}, data: {train_file: d.jsonl}}")

# ---- dataset -------------------------------------------------------------------------------
datasets = sorted(glob.glob(os.path.join(ROOT, "examples", "*.jsonl"))) + [
    os.path.join(ROOT, "tests", "golden", "lens", "lens_dump.jsonl"),
    os.path.join(ROOT, "tests", "golden", "sft", "metrics.jsonl")]
for path in datasets:
    lines = open(path, "rb").read().splitlines(keepends=True)[:6]
    write("dataset", os.path.basename(path), b"".join(lines))
write("dataset", "messages", "\n".join(json.dumps(r) for r in [
    {"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}], "answer": 4},
    {"prompt": "What is 1/2?", "answer": "\\frac{1}{2}", "id": 7, "task": "math"},
    {"prompt": "Write f.", "tests": ["assert f() == 1"], "task": "code"}]) + "\n\n")

# ---- model_config --------------------------------------------------------------------------
qwen3 = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024,
         "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
         "head_dim": 128, "hidden_act": "silu", "max_position_embeddings": 40960, "rms_norm_eps": 1e-06,
         "rope_theta": 1000000, "rope_scaling": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
         "attention_bias": False, "bos_token_id": 151643, "eos_token_id": 151645, "use_sliding_window": False}
llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256, "hidden_size": 2048,
         "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
         "hidden_act": "silu", "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
         "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                          "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "tie_word_embeddings": True, "torch_dtype": "bfloat16", "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}
qwen2 = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
         "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
         "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": True,
         "sliding_window": 32768, "use_sliding_window": False, "torch_dtype": "bfloat16"}
for name, config in [("qwen3", qwen3), ("llama3p2", llama), ("qwen2p5", qwen2)]:
    write("model_config", name, json.dumps(config, indent=2))
write("model_config", "tiny", json.dumps({**qwen3, "vocab_size": 300, "hidden_size": 16, "intermediate_size": 32,
                                          "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                                          "head_dim": 8}))

# ---- chat ----------------------------------------------------------------------------------
conversations = [
    (0x30, [(0, "You are terse."), (1, "What is 2+2?"), (2, "<think>add</think>\n\n4"), (1, "And 3+3?")]),
    (0x11, [(1, "hi"), (2, "hello"), (1, "bye")]),
    (0x12, [(0, "  padded system  "), (1, "\nq\n"), (2, "a")]),
    (0x03, [(1, "only"), (2, "two")]),
    (0x10, [(3, "tool output"), (1, "x")]),
    (0x21, [(0xF4, "critic says hi")]),
]
for i, (head, messages) in enumerate(conversations):
    data = bytes([head]) + b"\x00".join(bytes([role]) + content.encode() for role, content in messages)
    write("chat", "conversation-%d" % i, data)
write("chat", "template", bytes([0]) + b"{% for message in messages %}<|im_start|>{{ message.role }}")

# ---- math_verifier -------------------------------------------------------------------------
for i, line in enumerate(open(os.path.join(ROOT, "examples", "math_responses.jsonl"), encoding="utf-8")):
    record = json.loads(line)
    write("math_verifier", "example-%02d" % i, record["response"].encode() + b"\x00" + str(record["answer"]).encode())
for i, (response, gold) in enumerate([
        ("so \\boxed{\\frac{3}{4}}", "0.75"), ("The answer is $-12$.", "-12"), ("\\boxed{50\\%}", "0.5"),
        ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}"), ("\\fbox{x = 3}", "3"), ("\\boxed{1,000}", "1000"),
        ("\\boxed{\\text{(B)}}", "B"), ("\\boxed{ {1}/{2} }", "\\tfrac12"), ("\\boxed{3\\text{ cm}}", "3"),
        ("\\boxed{\\left( 1, 2 \\right)}", "(1,2)"), ("\\boxed{", "1"), ("\\boxed{2^{10}}", "1024"),
        ("answer: 1e3", "1000"), ("\\boxed{-\\dfrac{7}{-14}}", "1/2"), ("\\boxed{\\infty}", "\\infty")]):
    write("math_verifier", "case-%02d" % i, response.encode() + b"\x00" + gold.encode())

# ---- serve_request -------------------------------------------------------------------------
bodies = [
    {"model": "m", "prompt": "Hello", "max_tokens": 8, "temperature": 0.7, "top_p": 0.9, "seed": 3},
    {"prompt": [[1, 2, 3], [4, 5]], "max_tokens": 0, "echo": True, "prompt_logprobs": 5},
    {"prompt": ["a", "b"], "n": 2, "logprobs": 3, "stop": ["\n", "END"], "stop_token_ids": [7], "ignore_eos": True},
    {"prompt": "x", "max_tokens": None, "top_k": 20, "min_p": 0.05, "skip_special_tokens": False,
     "add_special_tokens": False, "return_tokens_as_token_ids": True, "best_of": 1, "stop": "."},
    {"prompt": "x", "stream": True}, {"prompt": [], "max_tokens": -1},
    {"model": "m", "prompt": "tokenize me", "add_special_tokens": True},
]
for i, body in enumerate(bodies):
    write("serve_request", "body-%d" % i, json.dumps(body))
write("serve_request", "not-json", "{\"prompt\": ")

# ---- tokenizer_dir (byte 0: 0 tokenizer_config.json, 1 generation_config.json, 2 tokenizer.model)
base = os.path.join(ROOT, "tests", "fuzz", "tokenizer_dir")
write("tokenizer_dir", "config-gopd", b"\x00" + open(os.path.join(base, "tokenizer_config.json"), "rb").read())
for name in ("qwen3", "mistral"):
    path = os.path.join(ROOT, "tests", "assets", "tokenizers", name, "tokenizer_config.json")
    write("tokenizer_dir", "config-" + name, b"\x00" + open(path, "rb").read())
gopd_config = json.load(open(os.path.join(base, "tokenizer_config.json")))
gopd_config["gopd_chat_format"] = "qwen3"
gopd_config.pop("chat_template", None)
write("tokenizer_dir", "config-chat-format", b"\x00" + json.dumps(gopd_config).encode())
write("tokenizer_dir", "generation-one", b"\x01" + json.dumps({"bos_token_id": 1, "eos_token_id": 2}).encode())
write("tokenizer_dir", "generation-list", b"\x01" + json.dumps({"eos_token_id": [2, 3], "pad_token_id": 0}).encode())
write("tokenizer_dir", "model", b"\x02" + open(os.path.join(base, "tokenizer.model"), "rb").read())
