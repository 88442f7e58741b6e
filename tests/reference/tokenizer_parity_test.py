"""Tokenizer parity with Hugging Face tokenizers and transformers (run by ctest through run.sh).

  tokenizer_parity_test.py --gopd BUILD/bin/gopd --source REPO

Every comparison runs `gopd tokenize` (batched: one process per --input file, one input per
line; texts holding a newline go through --text, one process each) and asks the reference for
the same thing. Ids must be equal without and with --add-special-tokens; decoding the
reference's ids (and a few random id sequences) must give the same text with and without
--skip-special-tokens. A tokenizer without a post-processor skips the --add-special-tokens run,
and one without special tokens the --skip-special-tokens run (both would repeat the plain run).

  1. Real files: tests/assets/tokenizers/{qwen3,mistral} and the qwen3 file with the GPT-2
     pre-tokenizer override of tests/assets/tokenizer_reference/qwen3_gpt2_pretokenizer.json,
     against tokenizers.Tokenizer.from_file, on the recorded corpus plus Unicode stress strings
     (combining marks, NFC/NFD pairs, ZWJ emoji, CJK, RTL, digit and whitespace runs, tabs, \\r,
     contractions, special-token strings inside text). The recorded ids and decodes (made by a
     JavaScript port) must also equal what tokenizers gives now.
  2. Feature files, built here with the tokenizers library (BpeTrainer on an in-test corpus,
     then one component changed): every normalizer, pre-tokenizer (Split behaviours and invert,
     ByteLevel options, Metaspace schemes, Digits, Punctuation, WhitespaceSplit, Sequence), BPE
     option (unk_token, fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix,
     end_of_word_suffix, dropout 0, string merges, no model type), decoder, post-processor and
     added-token flag that gopd implements. Each case also names a baseline (the same file
     without the feature) and fails unless the feature changes the reference's ids or decodes,
     so that every feature is really exercised.
  3. Refusals: files using a component gopd does not implement (other models, normalizers,
     pre-tokenizers and decoders, BPE dropout, regex constructs that Oniguruma and PCRE2 read
     differently) load in tokenizers, and `gopd tokenize` exits 2 with nothing on stdout and a
     message naming the feature.
  4. transformers.AutoTokenizer: it loads every tokenizer directory gopd writes (`gopd tokenizer
     train` for each chat format, `gopd init-model` with a trained and with a copied HF
     tokenizer, a `gopd train` checkpoint), and its ids and decodes equal gopd's. For an
     init-model directory holding Mistral's tokenizer.json, transformers' LlamaTokenizer
     rebuilds the pipeline (a Metaspace pre-tokenizer instead of the file's Prepend normalizer,
     which differs on text that starts with a space); gopd follows the file, so that directory is
     compared with tokenizers and transformers' differences are printed, not counted.

Known divergences left out of the cases (documented in src/tokenizer/hf_tokenizer.cpp or
reported): gopd decodes a `normalized` added token as written, tokenizers as normalised; a
post_processor Sequence of two TemplateProcessing applies only the first in tokenizers; for a
sentencepiece tokenizer.model, a run of byte pieces that is not valid UTF-8 decodes as the
sentencepiece library decodes it (only the invalid bytes become U+FFFD), while transformers'
converted pipeline turns the whole run into U+FFFD: those runs are checked against the
library, and the count that AutoTokenizer decodes differently is printed.

Exit 0 when everything agrees, 1 with the first disagreements printed otherwise, 77 (skipped)
when the venv has no tokenizers or transformers.
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
try:
    import tokenizers
    import transformers
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers, processors, trainers)
except ImportError as error:
    print(f"skipped: {error} (the venv has no tokenizers/transformers)")
    sys.exit(77)

FAILURES = []
SHOWN_PER_CHECK = 3  # disagreements printed per check
WORKERS = max(2, os.cpu_count() or 2)  # concurrent gopd processes (each runs --threads 2)

# ---- corpora ---------------------------------------------------------------------------------

# Stress strings beside the recorded corpus; none holds a newline except where noted.
STRESS_TEXTS = [
    "e\u0301 a\u0308\u0304 Z\u0351\u0334\u0336 q\u0323\u0307 o\u0338 \u0301leading mark",
    "NFC \u00e9 NFD e\u0301 | \u1e69 s\u0323\u0307 | \uac01 \u1100\u1161\u11a8 | \u212b \u00c5",
    "\u00c5\u0328 \u1e0b\u0323 \u0071\u0307\u0323 combining order",
    "\U0001f469\u200d\u2764\ufe0f\u200d\U0001f48b\u200d\U0001f468 \U0001f9d1\u200d\U0001f91d"
    "\u200d\U0001f9d1 \U0001f3f4\u200d\u2620\ufe0f \U0001f441\ufe0f\u200d\U0001f5e8\ufe0f",
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f flag tags "
    "\U0001f1e9\U0001f1ea\U0001f1eb",
    "漢字かな交じり文、中文繁體與简体、한글 조합, ｶﾀｶﾅ半角",
    "مَرْحَبًا بِالعالم \u200fRTL\u200e mark \u202ereversed\u202c עִבְרִית",
    "0123456789" * 5 + " ٠١٢٣٤٥٦٧٨٩ १२३ １２３ ²³ Ⅻ 𝟏𝟐𝟑 ①②",
    " " * 200 + "x",
    "\t" * 40 + "tabs" + "\t \t \t",
    "a\rb\r\rc \r\r\r end\r",
    "mixed\u3000\u3000 \u00a0\u2009\u200a\u2028 spaces",
    "'s 'S 'LL 'll 'Ll 'lL 'RE 've 'D 'M 't don't DON'T y'all rock'n'roll o'clock ''s '''",
    "a<|im_start|>b <|im_end|>c<|endoftext|> <think>x</think>",
    "<s>hello</s> <s><s></s> <unk> [INST]",
    "<<|im_end|>> <|im_end <|im_start|><|im_start|>",
    "soft\u00adhyphen \ufeffBOM \ufffd replacement \ue000 private \U0001d518\U0001d52b\U0001d526",
    "nul\x00byte and \x1b[31mescape\x1b[0m",
    "ab" * 80,
    "word " * 60,
    "CamelCaseWordsAndHTTPServer2Go x86_64 __init__.py",
]

# Texts for the feature files (no newlines: one gopd process reads them all).
FEATURE_TEXTS = [
    "",
    " ",
    "a",
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "  leading and trailing  ",
    "\tTabs\tand\r carriage returns \r\r",
    "It's what we'll do; THEY'RE sure I'M right, don't ''s",
    "Numbers: 0 12 345 6789 1234567890 3.14159 1,000,000",
    "Unicode: café cafe\u0301 naïve ﬁne Å \u212b Ω ① ２ ²",
    "UPPER lower MiXeD İstanbul ẞ Straße ΣΑΣ Ǆ",
    "日本語のテキスト 中文 한국어",
    "Привет, мир! Ελληνικά",
    "emoji 😀 👍🏽 👨\u200d👩\u200d👧\u200d👦 🇺🇸",
    "punctuation!!! ... --- ??? (a) [b] {c} <d> \"e\" 'f'",
    "      many       spaces      ",
    "unseen: ☃ ⚡ 𝔘𝔫𝔦 ꙮ ΩΩΩ☃☃☃⚡⚡ end",
    "snake_case camelCase kebab-case x86_64 v1.2.3",
    "a\u00a0b\u3000c\u2003d",
    "mix123abc456 78.9e10",
    "The history of natural language processing generally started in the 1950s.",
    "abc" * 30,
    " " * 60 + "x",
]
NEWLINE_TEXTS = ["line one\nline two\r\nthree", "\n\n", " \n x\n"]

TRAIN_WORDS = (
    "the quick brown fox jumps over lazy dog what is seven plus five equals twelve answer "
    "history natural language processing started in it's don't we'll they're I'M THE QUICK "
    "Hello World hello world café cafe\u0301 naïve élève ﬁne Å Ω ① ２ ² İstanbul straße "
    "日本語 中文 한국어 Привет мир Ελληνικά 😀 👍🏽 snake_case camelCase kebab-case "
    "lower UPPER MiXeD text tokens many spaces trailing leading numbers unicode emoji"
).split()
TRAIN_PUNCTUATION = list(",.;:!?()[]{}<>\"'-_#*/&%$@")
TRAIN_SPACES = [" ", " ", " ", " ", "  ", "\t", " \u00a0", "\u3000", "   "]


def training_lines(count=400):
    generator = random.Random(20240607)
    lines = []
    for _ in range(count):
        parts = []
        for _ in range(generator.randint(4, 12)):
            roll = generator.random()
            if roll < 0.12:
                parts.append(str(generator.randint(0, 10 ** generator.randint(1, 7))))
            elif roll < 0.22:
                parts.append(generator.choice(TRAIN_WORDS) + generator.choice(TRAIN_PUNCTUATION))
            else:
                parts.append(generator.choice(TRAIN_WORDS))
        line = parts[0]
        for part in parts[1:]:
            line += generator.choice(TRAIN_SPACES) + part
        lines.append(line)
    return lines


# Qwen2/3's split regex: byte-level BPE behind a Split pre-tokenizer.
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
                r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---- gopd and the references -----------------------------------------------------------------


class Gopd:
    """Runs gopd; gives each input file a fresh name under work/inputs."""

    def __init__(self, binary, work):
        self.binary = binary
        self.inputs = work / "inputs"
        self.inputs.mkdir()
        self.count = 0

    def input_file(self, lines):
        self.count += 1
        path = self.inputs / f"{self.count}.txt"
        path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
        return path

    def run(self, *args):
        return subprocess.run([self.binary, "--threads", "2", *map(str, args)],
                              capture_output=True)

    def checked(self, *args):
        result = self.run(*args)
        if result.returncode != 0:
            raise SystemExit(f"gopd {' '.join(map(str, args))} exited {result.returncode}:\n"
                             f"{result.stderr.decode('utf-8', 'replace')}")
        return result


class TokenizersReference:
    """tokenizers.Tokenizer on a tokenizer.json."""

    def __init__(self, path):
        self.tokenizer = Tokenizer.from_file(str(path))
        self.json = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))

    def encode(self, text, add_special_tokens):
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens):
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def max_id(self):
        return max(self.tokenizer.get_vocab(with_added_tokens=True).values())

    def has_post_processor(self):
        return self.json.get("post_processor") is not None

    def has_special_tokens(self):
        return any(token.get("special") for token in self.json.get("added_tokens") or [])

    def random_decode_excluded(self):
        return set()


class AutoTokenizerReference:
    """transformers.AutoTokenizer.from_pretrained on a directory."""

    def __init__(self, directory):
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))

    def encode(self, text, add_special_tokens):
        return self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]

    def decode(self, ids, skip_special_tokens):
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def max_id(self):
        return max(self.tokenizer.get_vocab().values())

    def has_post_processor(self):
        return True

    def has_special_tokens(self):
        return bool(self.tokenizer.all_special_ids)

    def random_decode_excluded(self):
        return set()


class SentencepieceAutoTokenizerReference(AutoTokenizerReference):
    """AutoTokenizer on a directory whose tokenizer is a sentencepiece tokenizer.model.

    transformers converts the model into a tokenizers pipeline whose ByteFallback decoder turns
    every byte of a run of <0xNN> pieces into U+FFFD as soon as the run is not valid UTF-8;
    the sentencepiece library, which defines the file and which gopd follows, replaces only
    the invalid bytes. Random decodes therefore leave the byte pieces out; SentencepieceBytes
    checks byte runs against the sentencepiece library itself.
    """

    def __init__(self, directory):
        super().__init__(directory)
        import sentencepiece
        self.processor = sentencepiece.SentencePieceProcessor(
            model_file=str(pathlib.Path(directory) / "tokenizer.model"))

    def byte_ids(self):
        return {i for i in range(self.processor.get_piece_size()) if self.processor.is_byte(i)}

    def random_decode_excluded(self):
        return self.byte_ids()


def parse_lines(result, count, what):
    # One JSON value per "\n": str.splitlines() would also split at U+2028, U+0085 and other
    # separators that a decoded text holds unescaped.
    text = result.stdout.decode("utf-8")
    lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n") if text else []
    if len(lines) != count:
        raise SystemExit(f"{what}: gopd printed {len(lines)} lines for {count} inputs")
    return [json.loads(line) for line in lines]


class Check:
    """One tokenizer directory against one reference on a list of texts.

    jobs() lists the gopd runs (run concurrently with every other check's), finish() compares.
    `baseline`: (what, reference) for the same file without the feature; the feature must
    change the reference's ids (or, with `baseline_decodes`, its decodes) on these texts.
    """

    def __init__(self, name, directory, reference, texts, baseline=None, baseline_decodes=False,
                 specials=None, random_sequences=4, extra_decodes=()):
        self.name = name
        self.directory = directory
        self.reference = reference
        self.texts = list(texts)
        self.baseline = baseline
        self.baseline_decodes = baseline_decodes
        self.encode_special = reference.has_post_processor() if specials is None else specials
        self.decode_skip = reference.has_special_tokens() if specials is None else specials
        self.random_sequences = random_sequences
        self.extra_decodes = [list(ids) for ids in extra_decodes]

    def jobs(self, gopd):
        adds = (False, True) if self.encode_special else (False,)
        self.expected = {add: [self.reference.encode(t, add) for t in self.texts] for add in adds}
        batched = [i for i, text in enumerate(self.texts) if "\n" not in text]
        self.single = [i for i, text in enumerate(self.texts) if "\n" in text]
        for i in self.single:
            if "\x00" in self.texts[i]:
                raise SystemExit(f"{self.name}: text {i} holds both a newline and a NUL")
        generator = random.Random(len(self.name))
        excluded = self.reference.random_decode_excluded()
        allowed = [i for i in range(self.reference.max_id() + 1) if i not in excluded]
        random_ids = [[generator.choice(allowed) for _ in range(n)]
                      for n in (1, 5, 17, 40)[:self.random_sequences]]
        self.decode_inputs = ([ids for add in adds for ids in self.expected[add]] + random_ids +
                              self.extra_decodes)
        self.batched = batched
        jobs = []
        flags = {False: [], True: ["--add-special-tokens"]}
        for add in adds:
            path = gopd.input_file([self.texts[i] for i in batched])
            jobs.append((("encode", add, None),
                         ["tokenize", "--tokenizer", self.directory, "--input", path, *flags[add]]))
            for i in self.single:
                jobs.append((("encode", add, i), ["tokenize", "--tokenizer", self.directory,
                                                  "--text", self.texts[i], *flags[add]]))
        path = gopd.input_file([json.dumps(ids) for ids in self.decode_inputs])
        for skip in ((False, True) if self.decode_skip else (False,)):
            jobs.append((("decode", skip, None),
                         ["tokenize", "--tokenizer", self.directory, "--input", path, "--decode",
                          *(["--skip-special-tokens"] if skip else [])]))
        return jobs

    def finish(self, results):
        problems = []
        total_ids = 0
        for add, expected in self.expected.items():
            ours = [None] * len(self.texts)
            for i, ids in zip(self.batched, parse_lines(results[("encode", add, None)],
                                                        len(self.batched), self.name)):
                ours[i] = ids
            for i in self.single:
                ours[i] = parse_lines(results[("encode", add, i)], 1, self.name)[0]
            for text, mine, theirs in zip(self.texts, ours, expected):
                total_ids += len(theirs)
                if mine != theirs:
                    problems.append(f"encode{' +special' if add else ''} {text[:60]!r}: "
                                    f"gopd {mine[:24]} vs reference {theirs[:24]}")
        decode_runs = [key for key in results if key[0] == "decode"]
        for key in decode_runs:
            skip = key[1]
            ours = parse_lines(results[key], len(self.decode_inputs), self.name)
            for ids, mine in zip(self.decode_inputs, ours):
                theirs = self.reference.decode(ids, skip)
                if mine != theirs:
                    problems.append(f"decode{' skip-special' if skip else ''} {ids[:16]}: "
                                    f"gopd {mine[:60]!r} vs reference {theirs[:60]!r}")
        if self.baseline is not None:
            what, baseline = self.baseline
            if self.baseline_decodes:
                same = all(self.reference.decode(ids, False) == baseline.decode(ids, False)
                           for ids in self.decode_inputs)
            else:
                same = all(baseline.encode(t, False) == ids
                           for t, ids in zip(self.texts, self.expected[False]))
            if same:
                problems.append(f"not exercised: the reference gives the same "
                                f"{'decodes' if self.baseline_decodes else 'ids'} as {what}")
        status = "ok" if not problems else "MISMATCH"
        print(f"{status:8} {self.name}: {len(self.texts)} texts, {total_ids} ids"
              f"{' ±special' if self.encode_special else ''}, {len(decode_runs)}x"
              f"{len(self.decode_inputs)} decodes" + (f" ({len(problems)} disagreements)"
                                                      if problems else ""))
        for problem in problems[:SHOWN_PER_CHECK]:
            FAILURES.append(f"{self.name}: {problem}")


class SentencepieceBytes:
    """Runs of byte pieces (<0xNN>) decoded by gopd and by the sentencepiece library.

    Valid and invalid UTF-8 runs, alone and between ordinary pieces; no special tokens (the
    library drops control symbols that gopd prints without --skip-special-tokens). Where
    AutoTokenizer decodes differently (see SentencepieceAutoTokenizerReference) the count is
    printed, not counted as a failure.
    """

    def __init__(self, name, directory, reference):
        self.name = name
        self.directory = directory
        self.reference = reference
        processor = reference.processor
        byte = {processor.id_to_piece(i): i for i in reference.byte_ids()}
        b = lambda value: byte[f"<0x{value:02X}>"]
        word = [i for i in range(processor.get_piece_size())
                if not (processor.is_byte(i) or processor.is_control(i) or processor.is_unknown(i)
                        or processor.is_unused(i)) and processor.id_to_piece(i).isalpha()][:3]
        runs = [[b(0xE6), b(0x97), b(0xA5)],               # 日, valid
                [b(0xE6)], [b(0xE6), b(0x97)],             # truncated
                [b(0x41), b(0xFF), b(0x42)],               # an invalid byte between valid ones
                [b(0xBD), b(0x02)], [b(0x02)], [b(0xC3), b(0x28)], [b(0xF0), b(0x9F), b(0x98)],
                [b(0xED), b(0xA0), b(0x80)],               # an encoded surrogate
                [b(0xC0), b(0xAF)]]                        # an overlong encoding
        self.decode_inputs = runs + [word[:1] + run + word[1:] for run in runs]

    def jobs(self, gopd):
        path = gopd.input_file([json.dumps(ids) for ids in self.decode_inputs])
        return [("decode", ["tokenize", "--tokenizer", self.directory, "--input", path,
                            "--decode"])]

    def finish(self, results):
        ours = parse_lines(results["decode"], len(self.decode_inputs), self.name)
        problems = []
        differ_auto = 0
        for ids, mine in zip(self.decode_inputs, ours):
            theirs = self.reference.processor.decode(ids)
            if mine != theirs:
                problems.append(f"decode {ids}: gopd {mine!r} vs sentencepiece {theirs!r}")
            differ_auto += self.reference.decode(ids, False) != mine
        status = "ok" if not problems else "MISMATCH"
        print(f"{status:8} {self.name}: {len(self.decode_inputs)} byte-piece decodes = "
              f"sentencepiece (AutoTokenizer differs on {differ_auto}, see its docstring)")
        FAILURES.extend(f"{self.name}: {problem}" for problem in problems[:SHOWN_PER_CHECK])


REFUSAL_TEXT = "hello world 42"


class Refusal:
    """A file gopd must refuse: exit 2, nothing on stdout, `expected` in the message."""

    def __init__(self, name, directory, expected, reference_raises=False):
        self.name = name
        self.directory = directory
        self.expected = expected
        # The file is valid for tokenizers: the feature is one Hugging Face supports.
        reference = Tokenizer.from_file(str(directory / "tokenizer.json"))
        try:
            reference.encode(REFUSAL_TEXT)
            raised = False
        except Exception:  # tokenizers raises its own exception types
            raised = True
        if raised != reference_raises:
            FAILURES.append(f"refuses {name}: tokenizers {'raised' if raised else 'did not raise'}"
                            f" on encode, expected {'it to' if reference_raises else 'no error'}")

    def jobs(self, gopd):
        return [("refuse", ["tokenize", "--tokenizer", self.directory, "--text", REFUSAL_TEXT])]

    def finish(self, results):
        result = results["refuse"]
        message = result.stderr.decode("utf-8", "replace").strip()
        problems = []
        if result.returncode != 2:
            problems.append(f"exit {result.returncode}, expected 2")
        if result.stdout:
            problems.append(f"stdout {result.stdout[:80]!r}, expected nothing")
        if self.expected not in message:
            problems.append(f"message {message[-200:]!r} does not name {self.expected!r}")
        status = "ok" if not problems else "MISMATCH"
        print(f"{status:8} refuses {self.name}: {message.splitlines()[-1][-110:] if message else ''}")
        for problem in problems:
            FAILURES.append(f"refuses {self.name}: {problem}")


def run_checks(gopd, checks):
    """Runs every check's gopd jobs concurrently, then compares in order."""
    planned = [(check, check.jobs(gopd)) for check in checks]
    flat = [(index, key, args) for index, (_, jobs) in enumerate(planned) for key, args in jobs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outputs = list(pool.map(lambda job: gopd.run(*job[2]), flat))
    results = [dict() for _ in planned]
    for (index, key, _), output in zip(flat, outputs):
        results[index][key] = output
    for (check, _), result in zip(planned, results):
        check.finish(result)
    return len(flat)


# ---- building tokenizer files ----------------------------------------------------------------


class Builder:
    """Writes tokenizer directories under work/<kind>/<n>."""

    def __init__(self, work):
        self.work = work
        self.count = 0

    def directory(self, kind):
        self.count += 1
        path = self.work / kind / str(self.count)
        path.mkdir(parents=True)
        return path

    def save(self, tokenizer, kind="features"):
        directory = self.directory(kind)
        tokenizer.save(str(directory / "tokenizer.json"))
        return directory, TokenizersReference(directory / "tokenizer.json")

    def save_json(self, data, kind="features"):
        directory = self.directory(kind)
        (directory / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False),
                                                  encoding="utf-8")
        return directory, TokenizersReference(directory / "tokenizer.json")


def clone(tokenizer):
    return Tokenizer.from_str(tokenizer.to_str())


def as_json(tokenizer):
    return json.loads(tokenizer.to_str())


def train(model, vocab_size, special_tokens=(), normalizer=None, pre_tokenizer=None,
          **trainer_options):
    tokenizer = Tokenizer(model)
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    if pre_tokenizer is not None:
        tokenizer.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=list(special_tokens), **trainer_options)
    tokenizer.train_from_iterator(training_lines(), trainer)
    return tokenizer


def with_model(tokenizer, extra_vocab=(), **options):
    """The same vocabulary and merges in a BPE model with other options (and more tokens)."""
    model = as_json(tokenizer)["model"]
    vocab = dict(model["vocab"])
    for token in extra_vocab:
        vocab.setdefault(token, max(vocab.values()) + 1)
    merges = [tuple(merge) for merge in model["merges"]]
    result = clone(tokenizer)
    result.model = models.BPE(vocab=vocab, merges=merges, **options)
    return result


def with_merges(tokenizer, new_merges, **options):
    """The same model with merges appended (lowest rank) and the tokens they make."""
    model = as_json(tokenizer)["model"]
    vocab = dict(model["vocab"])
    merges = [tuple(merge) for merge in model["merges"]]
    for left, right in new_merges:
        vocab.setdefault(left + right, max(vocab.values()) + 1)
        merges.append((left, right))
    result = clone(tokenizer)
    result.model = models.BPE(vocab=vocab, merges=merges, **options)
    return result


def changed(tokenizer, **components):
    result = clone(tokenizer)
    for key, value in components.items():
        setattr(result, key, value)
    return result


# ---- 1. real files ---------------------------------------------------------------------------


def apply_overrides(data, overrides):
    """tokenizer_json_overrides: {"dotted.key.path": value} (as tests/unit/hf_tokenizer_test)."""
    for key_path, value in overrides.items():
        target = data
        keys = key_path.split(".")
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value


def real_file_checks(source, builder):
    """The checks, and the recorded corpus (the same texts in all three files)."""
    checks = []
    for name in ("qwen3", "mistral", "qwen3_gpt2_pretokenizer"):
        recorded = json.loads((source / "tests/assets/tokenizer_reference" / f"{name}.json")
                              .read_text(encoding="utf-8"))
        tokenizer_json = source / recorded["tokenizer_json"]
        if recorded["tokenizer_json_overrides"]:
            data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
            apply_overrides(data, recorded["tokenizer_json_overrides"])
            directory, reference = builder.save_json(data, kind="real")
        else:
            directory = tokenizer_json.parent  # with its tokenizer_config.json
            reference = TokenizersReference(tokenizer_json)
        mismatches = []
        for case in recorded["cases"]:
            text = case["text"]
            for key, actual in (
                    ("ids", reference.encode(text, False)),
                    ("ids_with_special_tokens", reference.encode(text, True)),
                    ("decoded", reference.decode(case["ids"], False)),
                    ("decoded_skip_special_tokens", reference.decode(case["ids"], True))):
                if actual != case[key]:
                    mismatches.append(f"{key} of {text[:50]!r}: tokenizers {str(actual)[:80]} vs "
                                      f"recorded {str(case[key])[:80]}")
        status = "ok" if not mismatches else "MISMATCH"
        print(f"{status:8} recorded {name}.json ({recorded['reference'].split(' (')[0]}) = "
              f"tokenizers {tokenizers.__version__}: {len(recorded['cases'])} cases"
              + (f" ({len(mismatches)} differ)" if mismatches else ""))
        FAILURES.extend(f"recorded {name}: {m}" for m in mismatches[:SHOWN_PER_CHECK])
        texts = [case["text"] for case in recorded["cases"]] + STRESS_TEXTS
        checks.append(Check(f"real {name}", directory, reference, texts, specials=True))
    return checks, [case["text"] for case in recorded["cases"]]


# ---- 2. feature files ------------------------------------------------------------------------


def feature_checks(builder):
    checks = []

    def add(name, tokenizer, baseline=None, texts=FEATURE_TEXTS, baseline_decodes=False,
            specials=None, extra_decodes=()):
        directory, reference = builder.save(tokenizer)
        if baseline is not None:
            what, other = baseline
            baseline = (what, other if isinstance(other, TokenizersReference)
                        else TokenizersReference_from(other))
        checks.append(Check(name, directory, reference, texts, baseline, baseline_decodes,
                            specials, extra_decodes=extra_decodes))
        return reference

    # Character-level BPE, no pre-tokenizer: merges cross spaces and punctuation, so every
    # splitting choice changes the ids.
    plain = train(models.BPE(unk_token="[UNK]"), 420, special_tokens=["[UNK]"])
    plain_ref = add("BPE unk_token, no normalizer/pre-tokenizer/decoder", plain)
    add("BPE without unk_token (unknown characters dropped)", with_model(plain),
        ("unk_token [UNK]", plain))
    add("BPE fuse_unk", with_model(plain, unk_token="[UNK]", fuse_unk=True),
        ("fuse_unk false", plain))
    add("BPE dropout 0 (deterministic)", with_model(plain, unk_token="[UNK]", dropout=0.0))
    add("decoder Fuse", changed(plain, decoder=decoders.Fuse()), ("no decoder", plain),
        baseline_decodes=True)
    add("decoder Sequence[Replace String, Strip left 2 right 1, Fuse]",
        changed(plain, decoder=decoders.Sequence([decoders.Replace(" ", "_"),
                                                  decoders.Strip(" ", 2, 1), decoders.Fuse()])),
        ("no decoder", plain), baseline_decodes=True)
    add("decoder Replace Regex + Fuse",
        changed(plain, decoder=decoders.Sequence([decoders.Replace(Regex(r"[aeiou]+"), "*"),
                                                  decoders.Fuse()])),
        ("no decoder", plain), baseline_decodes=True)

    # Normalizers.
    nfc = changed(plain, normalizer=normalizers.NFC())
    for name, normalizer, baseline in [
            ("NFC", normalizers.NFC(), ("no normalizer", plain)),
            ("NFD", normalizers.NFD(), ("NFC", nfc)),
            ("NFKC", normalizers.NFKC(), ("NFC", nfc)),
            ("NFKD", normalizers.NFKD(), ("NFC", nfc)),
            ("Lowercase", normalizers.Lowercase(), ("no normalizer", plain)),
            ("Strip both", normalizers.Strip(), ("no normalizer", plain)),
            ("Strip left", normalizers.Strip(left=True, right=False),
             ("Strip both", changed(plain, normalizer=normalizers.Strip()))),
            ("Strip right", normalizers.Strip(left=False, right=True),
             ("Strip both", changed(plain, normalizer=normalizers.Strip()))),
            ("Replace String", normalizers.Replace("  ", "\t"), ("no normalizer", plain)),
            ("Replace Regex", normalizers.Replace(Regex(r"[0-9]+|\s{2,}"), "#"),
             ("no normalizer", plain)),
            ("Prepend", normalizers.Prepend("__"), ("no normalizer", plain)),
            ("Sequence[NFKD, Lowercase, Replace, Strip]", normalizers.Sequence(
                [normalizers.NFKD(), normalizers.Lowercase(), normalizers.Replace("ss", "s"),
                 normalizers.Strip()]), ("NFKD", changed(plain, normalizer=normalizers.NFKD())))]:
        add(f"normalizer {name}", changed(plain, normalizer=normalizer), baseline)

    # Pre-tokenizers on the same model.
    behaviors = ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]
    isolated_space = changed(plain, pre_tokenizer=pre_tokenizers.Split(" ", "isolated"))
    for behavior in behaviors:
        add(f"pre_tokenizer Split String ' ' {behavior}",
            changed(plain, pre_tokenizer=pre_tokenizers.Split(" ", behavior)),
            ("no pre-tokenizer", plain) if behavior == "isolated"
            else ("behavior isolated", isolated_space))
    pattern = Regex(r"\s+|[,.!?;]+|\p{N}+")
    for behavior in behaviors:
        for invert in (False, True):
            tokenizer = changed(plain, pre_tokenizer=pre_tokenizers.Split(pattern, behavior,
                                                                          invert=invert))
            # contiguous merges runs of matches and runs of gaps alike, so inverting it changes
            # nothing: its inverted form is compared with isolated instead.
            if not invert or behavior == "isolated":
                baseline = None
            elif behavior == "contiguous":
                baseline = ("isolated invert true", changed(plain, pre_tokenizer=pre_tokenizers.Split(
                    pattern, "isolated", invert=True)))
            else:
                baseline = ("invert false", changed(plain, pre_tokenizer=pre_tokenizers.Split(
                    pattern, behavior)))
            add(f"pre_tokenizer Split Regex {behavior} invert={str(invert).lower()}",
                tokenizer, baseline)
    add("pre_tokenizer Split Regex, translated constructs (\\u, \\x{}, (?i:), lookahead, "
        "possessive, lazy)",
        changed(plain, pre_tokenizer=pre_tokenizers.Split(Regex(
            r"(?i:the|qu)|\p{Lu}\p{Ll}*+|\d{1,2}?|\u00e9|\x{1F600}|[\t\v\f]+|\s+(?!\S)|"
            r"[^\s\p{L}\p{N}]{2,}"), "isolated")),
        ("no pre-tokenizer", plain))
    add("pre_tokenizer WhitespaceSplit", changed(plain, pre_tokenizer=pre_tokenizers.WhitespaceSplit()),
        ("no pre-tokenizer", plain))
    # Merges of repeated punctuation, which only a pre-tokenizer that keeps "!!!" in one piece
    # (contiguous) lets BPE apply.
    punctuated = with_merges(plain, [("!", "!"), ("!!", "!"), (".", "."), ("..", "."),
                                     ("?", "?"), ("??", "?")], unk_token="[UNK]")
    for behavior in behaviors:
        add(f"pre_tokenizer Punctuation {behavior}",
            changed(punctuated, pre_tokenizer=pre_tokenizers.Punctuation(behavior)),
            ("no pre-tokenizer", punctuated) if behavior == "isolated" else
            ("Punctuation isolated", changed(punctuated,
                                             pre_tokenizer=pre_tokenizers.Punctuation())))
    add("pre_tokenizer Digits individual",
        changed(plain, pre_tokenizer=pre_tokenizers.Digits(individual_digits=True)),
        ("Digits grouped", changed(plain, pre_tokenizer=pre_tokenizers.Digits())))
    add("pre_tokenizer Digits grouped", changed(plain, pre_tokenizer=pre_tokenizers.Digits()),
        ("no pre-tokenizer", plain))
    add("pre_tokenizer Sequence[WhitespaceSplit, Punctuation, Digits individual]",
        changed(plain, pre_tokenizer=pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(),
             pre_tokenizers.Digits(individual_digits=True)])),
        ("WhitespaceSplit", changed(plain, pre_tokenizer=pre_tokenizers.WhitespaceSplit())))

    # Post-processors (their tokens are added special tokens).
    specials = clone(plain)
    specials.add_special_tokens(["<s>", "</s>", "[CLS]", "[SEP]"])
    ids = {token: specials.token_to_id(token) for token in ("<s>", "</s>", "[CLS]", "[SEP]")}
    special_texts = FEATURE_TEXTS + ["<s>inside</s> text [CLS]x[SEP]"]
    add("post_processor TemplateProcessing <s> $A </s>",
        changed(specials, post_processor=processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])])),
        texts=special_texts)
    add("post_processor TemplateProcessing, a special token of two ids",
        changed(specials, post_processor=processors.TemplateProcessing(
            single="[BOTH] $A", special_tokens=[{"id": "[BOTH]", "ids": [ids["[CLS]"], ids["<s>"]],
                                                 "tokens": ["[CLS]", "<s>"]}])),
        texts=special_texts)
    add("post_processor BertProcessing",
        changed(specials, post_processor=processors.BertProcessing(
            ("[SEP]", ids["[SEP]"]), ("[CLS]", ids["[CLS]"]))), texts=special_texts)
    add("post_processor RobertaProcessing",
        changed(specials, post_processor=processors.RobertaProcessing(
            ("</s>", ids["</s>"]), ("<s>", ids["<s>"]))), texts=special_texts)
    add("post_processor Sequence[BertProcessing, TemplateProcessing]",
        changed(specials, post_processor=processors.Sequence([
            processors.BertProcessing(("[SEP]", ids["[SEP]"]), ("[CLS]", ids["[CLS]"])),
            processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[
                ("<s>", ids["<s>"]), ("</s>", ids["</s>"])])])), texts=special_texts)

    # Added tokens: each flag against the same token without it.
    def with_added(tokens, base=plain, normalizer=None):
        tokenizer = clone(base)
        if normalizer is not None:
            tokenizer.normalizer = normalizer
        for token in tokens:
            if token.special:
                tokenizer.add_special_tokens([token])
            else:
                tokenizer.add_tokens([token])
        return tokenizer

    added_texts = FEATURE_TEXTS + [
        "x<mask>y  <mask>  z <mask>", "the cat sat; cat catalog concat cat", "<a><b><c> <a><b> <a>c",
        "Hello HELLO hello hElLo", "[TOK]  [TOK]\t[TOK]x", "a fine \ufb01ne day"]
    add("added tokens special + non-special, overlapping (leftmost-longest)",
        with_added([AddedToken("<mask>", special=True, normalized=False),
                    AddedToken("<a>", special=True, normalized=False),
                    AddedToken("<a><b>", special=False, normalized=False),
                    AddedToken("<a><b><c>", special=True, normalized=False)]),
        ("no added tokens", plain), texts=added_texts, specials=True)
    add("added token single_word",
        with_added([AddedToken("cat", single_word=True, normalized=False)]),
        ("single_word false", with_added([AddedToken("cat", normalized=False)])),
        texts=added_texts)
    for flags in ({"lstrip": True}, {"rstrip": True}, {"lstrip": True, "rstrip": True}):
        add(f"added token {'+'.join(flags)}",
            with_added([AddedToken("[TOK]", special=True, normalized=False, **flags),
                        AddedToken("<mask>", special=True, normalized=False, **flags)]),
            ("no strip", with_added([AddedToken("[TOK]", special=True, normalized=False),
                                     AddedToken("<mask>", special=True, normalized=False)])),
            texts=added_texts)
    # Lowercase content, so that the normalised form is the content (see the docstring).
    add("added token normalized=true after Lowercase",
        with_added([AddedToken("hello", normalized=True)], normalizer=normalizers.Lowercase()),
        ("normalized false", with_added([AddedToken("hello", normalized=False)],
                                        normalizer=normalizers.Lowercase())),
        texts=added_texts)
    add("added token normalized=false before NFKC",
        with_added([AddedToken("ﬁne", special=True, normalized=False)],
                   normalizer=normalizers.NFKC()),
        ("normalized true", with_added([AddedToken("ﬁne", special=True, normalized=True)],
                                       normalizer=normalizers.NFKC())),
        texts=added_texts)

    # Byte-level BPE (GPT-2 style).
    byte_level = train(models.BPE(), 640, pre_tokenizer=pre_tokenizers.ByteLevel(
        add_prefix_space=False), initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    byte_level.decoder = decoders.ByteLevel()
    byte_texts = FEATURE_TEXTS + NEWLINE_TEXTS
    add("ByteLevel add_prefix_space=false use_regex=true + ByteLevel decoder", byte_level,
        texts=byte_texts)
    add("ByteLevel add_prefix_space=true",
        changed(byte_level, pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=True)),
        ("add_prefix_space false", byte_level), texts=byte_texts)
    add("ByteLevel use_regex=false",
        changed(byte_level, pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                   use_regex=False)),
        ("use_regex true", byte_level), texts=byte_texts)
    # trim_offsets only moves offsets, which gopd does not produce: same ids.
    add("ByteLevel trim_offsets=false + post_processor ByteLevel",
        changed(byte_level, pre_tokenizer=pre_tokenizers.ByteLevel(
            add_prefix_space=False, trim_offsets=False), post_processor=processors.ByteLevel()),
        texts=byte_texts)
    chat = clone(byte_level)
    chat.add_special_tokens(["<|im_start|>", "<|im_end|>", "<|endoftext|>"])
    chat.add_tokens([AddedToken("<think>", normalized=False), AddedToken("</think>",
                                                                         normalized=False)])
    chat.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|im_start|> $A <|im_end|>", special_tokens=[
            ("<|im_start|>", chat.token_to_id("<|im_start|>")),
            ("<|im_end|>", chat.token_to_id("<|im_end|>"))])])
    add("ByteLevel + added tokens + post_processor Sequence[ByteLevel, TemplateProcessing]", chat,
        ("no added tokens", byte_level),
        texts=byte_texts + ["<|im_start|>user hi<|im_end|><|endoftext|>", "a<think>b</think>c"])

    # Qwen-style: Split regex + ByteLevel without regex, NFC; ignore_merges with a whole-word
    # token no merge sequence builds.
    qwen = train(models.BPE(), 640, normalizer=normalizers.NFC(),
                 pre_tokenizer=pre_tokenizers.Sequence([
                     pre_tokenizers.Split(Regex(QWEN_PATTERN), "isolated"),
                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    qwen.decoder = decoders.ByteLevel()
    qwen.post_processor = processors.ByteLevel(trim_offsets=False)
    qwen_texts = FEATURE_TEXTS + NEWLINE_TEXTS + ["zqxj zqxjzqxj Ġzqxj"]
    add("Split Qwen regex + ByteLevel(use_regex=false), NFC", qwen, texts=qwen_texts,
        specials=True)
    add("BPE ignore_merges", with_model(qwen, extra_vocab=["zqxj", "Ġzqxj"], ignore_merges=True),
        ("ignore_merges false", with_model(qwen, extra_vocab=["zqxj", "Ġzqxj"])),
        texts=qwen_texts)

    # Metaspace (sentencepiece-style), with a special token so that "first" differs.
    metaspace = train(models.BPE(unk_token="[UNK]"), 420, special_tokens=["[UNK]", "<sep>"],
                      pre_tokenizer=pre_tokenizers.Metaspace())
    metaspace.decoder = decoders.Metaspace()
    meta_texts = FEATURE_TEXTS + ["hello<sep>world", "a <sep> b<sep> c", "<sep>start", "x<sep>"]
    add("Metaspace always split=true + Metaspace decoder", metaspace, texts=meta_texts)
    for scheme in ("first", "never"):
        add(f"Metaspace prepend_scheme {scheme}", changed(
            metaspace, pre_tokenizer=pre_tokenizers.Metaspace(prepend_scheme=scheme),
            decoder=decoders.Metaspace(prepend_scheme=scheme)),
            ("always", metaspace), texts=meta_texts)
    # Trained without splitting, so that its merges cross word boundaries (▁ inside a token).
    unsplit = train(models.BPE(unk_token="[UNK]"), 420, special_tokens=["[UNK]", "<sep>"],
                    pre_tokenizer=pre_tokenizers.Metaspace(split=False))
    unsplit.decoder = decoders.Metaspace(split=False)
    add("Metaspace split=false", unsplit,
        ("split true", changed(unsplit, pre_tokenizer=pre_tokenizers.Metaspace(split=True))),
        texts=meta_texts)
    add("Metaspace replacement '_'", changed(
        metaspace, pre_tokenizer=pre_tokenizers.Metaspace(replacement="_"),
        decoder=decoders.Metaspace(replacement="_")), ("replacement \u2581", metaspace),
        texts=meta_texts)
    legacy = as_json(metaspace)
    legacy["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581",
                               "add_prefix_space": True}
    directory, reference = builder.save_json(legacy)
    checks.append(Check("Metaspace legacy add_prefix_space=true (no prepend_scheme)", directory,
                        reference, meta_texts))

    # continuing_subword_prefix / end_of_word_suffix, trained with them.
    prefix = train(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"), 420,
                   special_tokens=["[UNK]"], pre_tokenizer=pre_tokenizers.WhitespaceSplit(),
                   continuing_subword_prefix="##")
    add("BPE continuing_subword_prefix ##", prefix,
        ("no prefix", train(models.BPE(unk_token="[UNK]"), 420, special_tokens=["[UNK]"],
                            pre_tokenizer=pre_tokenizers.WhitespaceSplit())))
    suffix = train(models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"), 420,
                   special_tokens=["[UNK]"], pre_tokenizer=pre_tokenizers.WhitespaceSplit(),
                   end_of_word_suffix="</w>")
    suffix.decoder = decoders.BPEDecoder(suffix="</w>")
    add("BPE end_of_word_suffix </w> + BPEDecoder", suffix,
        ("no decoder", changed(suffix, decoder=None)), baseline_decodes=True)

    # Llama 2 / Mistral style: Prepend + Replace normalizer, byte_fallback, <s> template.
    llama = train(models.BPE(unk_token="<unk>", fuse_unk=True), 420,
                  special_tokens=["<unk>", "<s>", "</s>"],
                  normalizer=normalizers.Sequence([normalizers.Prepend("\u2581"),
                                                   normalizers.Replace(" ", "\u2581")]))
    byte_tokens = [f"<0x{byte:02X}>" for byte in range(256)]
    llama_unk = with_model(llama, extra_vocab=byte_tokens, unk_token="<unk>", fuse_unk=True)
    llama = with_model(llama, extra_vocab=byte_tokens, unk_token="<unk>", fuse_unk=True,
                       byte_fallback=True)
    for tokenizer in (llama, llama_unk):
        tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "),
                                               decoders.ByteFallback(), decoders.Fuse(),
                                               decoders.Strip(" ", 1, 0)])
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))])
    add("BPE byte_fallback + Replace/ByteFallback/Fuse/Strip decoders, <s> template", llama,
        ("byte_fallback false", llama_unk))
    byte_id = {byte: llama.token_to_id(f"<0x{byte:02X}>") for byte in range(256)}
    partial = [[byte_id[0xE6]], [byte_id[0xE6], byte_id[0x97]], [byte_id[0xE6], byte_id[0x97],
               byte_id[0xA5]], [byte_id[0x41], byte_id[0xFF], byte_id[0x42]],
               [byte_id[0xF0], byte_id[0x9F], llama.token_to_id("<s>"), byte_id[0x98]]]
    add("decoder ByteFallback on partial UTF-8", llama,
        ("no ByteFallback decoder", changed(llama, decoder=decoders.Fuse())),
        texts=["日本", "é ☃", "\U0001f600"], baseline_decodes=True, extra_decodes=partial)
    # Files from before tokenizers 0.20 ("left right" merges) and before 0.10 (no model type).
    old = as_json(llama)
    old["model"]["merges"] = [" ".join(merge) for merge in old["model"]["merges"]]
    directory, reference = builder.save_json(old)
    checks.append(Check("BPE merges as \"left right\" strings", directory, reference,
                        FEATURE_TEXTS))
    del old["model"]["type"]
    directory, reference = builder.save_json(old)
    checks.append(Check("BPE model without \"type\"", directory, reference, FEATURE_TEXTS))
    return checks, plain


def TokenizersReference_from(tokenizer):
    """A reference on an in-memory tokenizer (baselines are never given to gopd)."""
    reference = TokenizersReference.__new__(TokenizersReference)
    reference.tokenizer = tokenizer
    reference.json = as_json(tokenizer)
    return reference


# ---- 3. refusals -----------------------------------------------------------------------------


def refusal_checks(builder, plain):
    checks = []

    def refuse(name, tokenizer, expected, reference_raises=False):
        directory, _ = builder.save(tokenizer, kind="refusals")
        checks.append(Refusal(name, directory, expected, reference_raises))

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "h": 3, "e": 4, "##llo": 5, "4": 6, "2": 7}
    refuse("model WordPiece", Tokenizer(models.WordPiece(vocab, unk_token="[UNK]")),
           'model type "WordPiece"')
    refuse("model WordLevel", Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")),
           'model type "WordLevel"')
    refuse("model Unigram", Tokenizer(models.Unigram([("<unk>", 0.0), ("hello", -1.0),
                                                      ("h", -2.0), ("e", -2.0)], 0)),
           'model type "Unigram"')
    refuse("BPE dropout 0.1", with_model(plain, unk_token="[UNK]", dropout=0.1), "model.dropout")
    for name, normalizer in [("BertNormalizer", normalizers.BertNormalizer()),
                             ("StripAccents", normalizers.StripAccents()),
                             ("Nmt", normalizers.Nmt()),
                             ("ByteLevel", normalizers.ByteLevel())]:
        refuse(f"normalizer {name}", changed(plain, normalizer=normalizers.Sequence(
            [normalizers.NFD(), normalizer])), f'normalizer.normalizers[1] type "{name}"')
    for name, pre_tokenizer in [("Whitespace", pre_tokenizers.Whitespace()),
                                ("BertPreTokenizer", pre_tokenizers.BertPreTokenizer()),
                                ("CharDelimiterSplit", pre_tokenizers.CharDelimiterSplit("-")),
                                ("UnicodeScripts", pre_tokenizers.UnicodeScripts()),
                                ("FixedLength", pre_tokenizers.FixedLength(4))]:
        refuse(f"pre_tokenizer {name}", changed(plain, pre_tokenizer=pre_tokenizer),
               f'pre_tokenizer type "{name}"')
    refuse("pre_tokenizer Metaspace prepend_scheme first after another pre-tokenizer",
           changed(plain, pre_tokenizer=pre_tokenizers.Sequence([
               pre_tokenizers.Digits(), pre_tokenizers.Metaspace(prepend_scheme="first")])),
           'pre_tokenizer.pretokenizers[1] Metaspace with prepend_scheme "first"')
    refuse("decoder WordPiece", changed(plain, decoder=decoders.WordPiece()),
           'decoder type "WordPiece"')
    refuse("decoder CTC", changed(plain, decoder=decoders.Sequence([decoders.Fuse(),
                                                                    decoders.CTC()])),
           'decoder.decoders[1] type "CTC"')
    for pattern, expected in [(r"\w+", r"the escape \w"), (r"\h+", r"the escape \h"),
                              (r"^a", "the anchor ^"), (r"a$", "the anchor $"),
                              (r"(?m:a.b)", "the group syntax (?m:"),
                              (r"[[:alpha:]]+", "a nested character class or POSIX bracket"),
                              (r"[a-z&&b]", "class intersection &&"),
                              (r"a{,3}", "the quantifier {,n}"),
                              (r"(?i:maße)", "a non-ASCII literal under (?i)"),
                              (r"(?i:class)", 'the letters "ss" under (?i)')]:
        refuse(f"Split regex {pattern}", changed(plain, pre_tokenizer=pre_tokenizers.Split(
            Regex(pattern), "isolated")), expected)
    refuse("normalizer Replace regex \\w", changed(plain, normalizer=normalizers.Replace(
        Regex(r"\w"), "x")), r"normalizer.pattern regex")
    # Both libraries load this file and refuse to encode text that needs the unknown token.
    refuse("unk_token missing from the vocabulary",
           Tokenizer(models.BPE(vocab={"h": 0, "e": 1}, merges=[], unk_token="<missing>")),
           'model.unk_token "<missing>" is not in model.vocab', reference_raises=True)
    return checks


# ---- 4. transformers.AutoTokenizer on what gopd writes ---------------------------------------


def auto_tokenizer_checks(gopd, source, work, recorded_texts):
    checks = []

    def auto_check(name, directory):
        """AutoTokenizer on a directory gopd wrote (+ byte runs for a sentencepiece one)."""
        if (directory / "tokenizer.json").exists():
            checks.append(Check(name, directory, AutoTokenizerReference(directory), texts))
            return
        reference = SentencepieceAutoTokenizerReference(directory)
        checks.append(Check(name, directory, reference, texts))
        checks.append(SentencepieceBytes(f"{name}: byte pieces", directory, reference))

    texts = [t for t in recorded_texts if "\n" not in t] + [
        t for t in STRESS_TEXTS if "\n" not in t] + NEWLINE_TEXTS[:2] + [
        "<|im_start|>user hi<|im_end|> <|begin_of_text|><|start_header_id|>x<|end_header_id|>"
        "<|eot_id|> <think>y</think> <pad><s></s><unk>"]
    corpus = work / "spm_corpus.txt"
    corpus.write_text("".join(line + "\n" for line in training_lines()), encoding="utf-8")
    trained = {}
    for chat_format in ("qwen3", "chatml", "llama3", "none"):
        directory = work / f"spm_{chat_format}"
        gopd.checked("tokenizer", "train", "--input", corpus, "--vocab-size", "420",
                     "--chat-format", chat_format, "--out", directory)
        trained[chat_format] = directory
        auto_check(f"AutoTokenizer on gopd tokenizer train --chat-format {chat_format}",
                   directory)
    model_flags = ["--hidden", "16", "--layers", "1", "--heads", "2", "--kv-heads", "1",
                   "--intermediate", "32"]
    for name, tokenizer in (("chatml-trained", trained["chatml"]),
                            ("qwen3", source / "tests/assets/tokenizers/qwen3")):
        directory = work / f"init_{name}"
        gopd.checked("init-model", "--arch", "qwen3", *model_flags, "--tokenizer", tokenizer,
                     "--out", directory)
        auto_check(f"AutoTokenizer on gopd init-model --tokenizer {name}", directory)
    directory = work / "init_mistral"
    gopd.checked("init-model", "--arch", "llama", *model_flags, "--tokenizer",
                 source / "tests/assets/tokenizers/mistral", "--out", directory)
    checks.append(Check("tokenizers on gopd init-model --tokenizer mistral", directory,
                        TokenizersReference(directory / "tokenizer.json"), texts))
    # transformers' rebuilt pipeline differs from the file only where a section (text between
    # added tokens) starts with a space; anything else would be a new difference.
    auto = AutoTokenizerReference(directory)
    file_reference = TokenizersReference(directory / "tokenizer.json")
    differ = [t for t in texts if auto.encode(t, True) != file_reference.encode(t, True)]
    print(f"note     AutoTokenizer ({type(auto.tokenizer).__name__}) on the init-model mistral "
          f"directory differs from its tokenizer.json (and gopd) on {len(differ)} of {len(texts)} "
          f"texts, each with a section that starts with a space")
    for text in differ:
        sections = re.split(r"<s>|</s>|<unk>", text)
        if not any(section.startswith(" ") for section in sections):
            FAILURES.append(f"AutoTokenizer vs tokenizer.json on the init-model mistral "
                            f"directory: {text[:60]!r} differs but no section starts with a space")
    # A gopd train checkpoint (one SFT step of a tiny model).
    data = work / "train.jsonl"
    gopd.checked("data", "--task", "arith", "--n", "8", "--difficulty", "1", "--split", "train",
                 "--out", data)
    student = work / "student"
    gopd.checked("init-model", "--arch", "qwen3", *model_flags, "--tokenizer", trained["qwen3"],
                 "--out", student)
    config = work / "sft.yaml"
    config.write_text(
        "algorithm: sft\n"
        f"run: {{name: sft, output_dir: {work}/runs, threads: 2}}\n"
        f"student: {{path: {student}, dtype: float32}}\n"
        f"data: {{train_file: {data}}}\n"
        "rollout: {batch_prompts: 4}\n"
        "optim: {lr: 1.0e-2, micro_batch_size: 4}\n"
        "train: {max_steps: 1, save_every: 1}\n")
    gopd.checked("train", config)
    checkpoints = sorted((work / "runs" / "sft" / "checkpoints").glob("step_*"))
    if not checkpoints:
        FAILURES.append("gopd train wrote no checkpoints/step_*")
    else:
        auto_check(f"AutoTokenizer on a gopd train checkpoint ({checkpoints[-1].name})",
                   checkpoints[-1])
    return checks


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gopd", required=True)
    parser.add_argument("--source", required=True)
    args = parser.parse_args()
    source = pathlib.Path(args.source).resolve()
    print(f"tokenizers {tokenizers.__version__}, transformers {transformers.__version__}")
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="gopd_tokenizer_parity_") as tmp:
        work = pathlib.Path(tmp)
        gopd = Gopd(args.gopd, work)
        builder = Builder(work)
        checks, recorded_texts = real_file_checks(source, builder)
        features, plain = feature_checks(builder)
        checks += features
        checks += refusal_checks(builder, plain)
        checks += auto_tokenizer_checks(gopd, source, work, recorded_texts)
        processes = run_checks(gopd, checks)
    print(f"{len(checks)} checks, {processes} gopd runs, {time.time() - start:.1f} s")
    if FAILURES:
        print("FAILED:\n  " + "\n  ".join(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
