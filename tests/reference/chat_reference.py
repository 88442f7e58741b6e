"""Chat renders by Hugging Face transformers, for tests/unit/chat_format_test.cpp.

  chat_reference.py --gopd BUILD/bin/gopd --source REPO --out FILE.json

Renders every conversation below with add_generation_prompt false/true and enable_thinking
true/false through transformers' own apply_chat_template (its Jinja engine), for
  * Qwen3's real template: AutoTokenizer on tests/assets/tokenizers/qwen3;
  * each chat format gopd writes: a tokenizer directory written by
    `gopd tokenizer train --chat-format F`, loaded with AutoTokenizer.
Writes {"qwen3_real": {"chat_template", "cases"}, "formats": {F: {"chat_template", "cases"}}}
with cases [{name, messages, add_generation_prompt, enable_thinking, text}]; a case whose
template raises (e.g. no messages for Qwen3) is left out. The C++ test renders the same cases
with render_chat and compares byte for byte.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import transformers  # noqa: E402  (after the environment above)

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



def render_cases(tokenizer):
    cases = []
    for name, messages in CONVERSATIONS:
        for add_generation_prompt in (False, True):
            for enable_thinking in (True, False):
                try:
                    text = tokenizer.apply_chat_template(
                        messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                        enable_thinking=enable_thinking)
                except Exception:  # the template itself refuses (raise_exception, undefined)
                    continue
                cases.append({"name": name, "messages": messages,
                              "add_generation_prompt": add_generation_prompt,
                              "enable_thinking": enable_thinking, "text": text})
    return cases


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gopd", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--formats", required=True, help="comma-separated gopd chat formats")
    args = parser.parse_args()
    source = pathlib.Path(args.source)
    qwen3 = transformers.AutoTokenizer.from_pretrained(str(source / "tests/assets/tokenizers/qwen3"))
    result = {"transformers": transformers.__version__,
              "qwen3_real": {"chat_template": qwen3.chat_template, "cases": render_cases(qwen3)},
              "formats": {}}
    with tempfile.TemporaryDirectory(prefix="gopd_chat_reference_") as tmp:
        work = pathlib.Path(tmp)
        corpus = work / "corpus.txt"
        corpus.write_text("".join(f"line {i}: the answer is {i * 7} and héllo 日本\n"
                                  for i in range(200)))
        for name in args.formats.split(","):
            directory = work / name
            subprocess.run([args.gopd, "tokenizer", "train", "--input", str(corpus),
                            "--vocab-size", "300", "--chat-format", name, "--out", str(directory)],
                           check=True, capture_output=True)
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
            result["formats"][name] = {"chat_template": tokenizer.chat_template,
                                       "cases": render_cases(tokenizer)}
    pathlib.Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n",
                                      encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
