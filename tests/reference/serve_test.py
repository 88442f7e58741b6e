"""`gopd serve` and served teachers, end to end (run by ctest through tests/reference/run.sh).

  serve_test.py --gopd BUILD/bin/gopd --source REPO

Everything on loopback, on ports the kernel picks (`--port 0`):

  1. client: the `openai` package, used as a user would, against `gopd serve`: echo + logprobs
     and vLLM's prompt_logprobs equal `gopd logprobs` on the same tokens (1e-5); generated
     tokens' log-probs equal `gopd logprobs` of prompt + completion; seeds reproduce; n, usage,
     /v1/models, /tokenize; bad requests are OpenAI-shaped errors naming the field.
  2. fuzz: malformed requests (random bytes, wrong types, huge numbers, invalid UTF-8,
     truncated bodies, broken HTTP) all get 4xx and the server stays up.
  3. load: concurrent clients for a fixed time against a small queue: no answer other than 200
     and 503; prints a JSON line with requests/s and p50/p99 latency.
  4. training: a G-OPD job whose teacher is behind `gopd serve` logs the same per-step
     advantages and losses as the job with the teacher in process (1e-4); killing the server
     mid-run fails the step with a message naming the teacher (exit 1), and `--resume auto`
     after a restart finishes the run with the same numbers.

Exit 0 when everything holds, 1 with the failures printed, 77 (skipped) without the openai
package.
"""

import argparse
import http.client
import json
import os
import pathlib
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import openai
except ImportError as error:
    print(f"skipped: {error} (run scripts/setup.sh: the venv pins openai)")
    sys.exit(77)

FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL:", message, flush=True)
    return condition


def run_gopd(gopd, *args, expect=0, cwd=None):
    result = subprocess.run([gopd, "--threads", "1", *args], capture_output=True, text=True, cwd=cwd)
    if expect is not None and result.returncode != expect:
        raise SystemExit(f"gopd {' '.join(args)} exited {result.returncode} (expected {expect}):\n"
                         f"{result.stderr}")
    return result


class Server:
    """`gopd serve` in the background; its log lines are kept."""

    def __init__(self, gopd, model, *extra, port=0):
        self.process = subprocess.Popen(
            [gopd, "--threads", "1", "serve", "--model", str(model), "--port", str(port),
             "--dtype", "float32", *extra],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, errors="replace")
        self.lines = []
        deadline = time.time() + 60
        self.port = None
        while time.time() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                break
        if self.port is None:
            self.process.kill()
            raise SystemExit("gopd serve did not start:\n" + "".join(self.lines))
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    def _drain(self):
        for line in self.process.stderr:
            self.lines.append(line)

    def alive(self):
        return self.process.poll() is None

    def stop(self, sig=signal.SIGKILL):
        if self.alive():
            self.process.send_signal(sig)
        self.process.wait(timeout=30)


def request(port, method, path, body=None, headers=None, timeout=60):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        connection.request(method, path, body=payload,
                           headers=headers or {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def gopd_logprobs(gopd, model, sequences, work):
    path = work / "logprobs_in.jsonl"
    path.write_text("".join(json.dumps({"tokens": s}) + "\n" for s in sequences))
    out = run_gopd(gopd, "logprobs", "--model", str(model), "--input", str(path)).stdout
    return [json.loads(line)["logprobs"] for line in out.splitlines()]


def close(a, b, tolerance):
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


# --- 1. the openai client ----------------------------------------------------------------------
def client_checks(gopd, teacher, work):
    server = Server(gopd, teacher)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="unused",
                               max_retries=0)
        models = client.models.list()
        name = models.data[0].id
        check(name == teacher.name, f"/v1/models lists {name}, expected {teacher.name}")
        text = "12+34=46. The answer is 46."
        ids = json.loads(request(server.port, "POST", "/tokenize",
                                 {"prompt": text, "add_special_tokens": False})[1])["tokens"]
        reference = gopd_logprobs(gopd, teacher, [ids], work)[0]

        # Scoring a text: echo + logprobs, max_tokens 0, and vLLM's prompt_logprobs.
        scored = client.completions.create(model=name, prompt=text, max_tokens=0, echo=True,
                                           logprobs=3,
                                           extra_body={"prompt_logprobs": 3,
                                                       "add_special_tokens": False})
        choice = scored.choices[0].model_dump()
        check(choice["text"] == text, f"echo text {choice['text']!r} != {text!r}")
        token_logprobs = choice["logprobs"]["token_logprobs"]
        check(len(token_logprobs) == len(ids) and token_logprobs[0] is None,
              f"echo logprobs cover {len(token_logprobs)} tokens, expected {len(ids)}, first null")
        for j in range(1, len(ids)):
            check(close(token_logprobs[j], reference[j], 1e-5),
                  f"echo logprob {j}: serve {token_logprobs[j]} vs gopd logprobs {reference[j]}")
        prompt_logprobs = choice["prompt_logprobs"]
        check(len(prompt_logprobs) == len(ids) and prompt_logprobs[0] is None,
              "prompt_logprobs: one entry per prompt token, the first null")
        for j in range(1, len(ids)):
            entry = prompt_logprobs[j]
            actual = entry.get(str(ids[j]))
            if not check(actual is not None, f"prompt_logprobs[{j}] lacks the prompt token"):
                continue
            check(close(actual["logprob"], reference[j], 1e-5),
                  f"prompt_logprobs[{j}] {actual['logprob']} vs gopd logprobs {reference[j]}")
            check(3 <= len(entry) <= 4, f"prompt_logprobs[{j}] has {len(entry)} entries for k=3")
            best = max(entry.values(), key=lambda v: v["logprob"])
            check(best["rank"] == 1, f"prompt_logprobs[{j}]: the most likely token has rank {best['rank']}")
            above = sum(1 for v in entry.values() if v["logprob"] > actual["logprob"])
            check(actual["rank"] >= above + 1, f"prompt_logprobs[{j}]: rank {actual['rank']} too small")
        check(scored.usage.prompt_tokens == len(ids), "usage.prompt_tokens")

        # Generation: n samples with a seed, generated tokens' log-probs at temperature 1.
        generated = client.completions.create(model=name, prompt=[ids], max_tokens=8, n=3, seed=7,
                                              logprobs=2, temperature=1.0,
                                              extra_body={"return_tokens_as_token_ids": True,
                                                          "ignore_eos": True})
        again = client.completions.create(model=name, prompt=[ids], max_tokens=8, n=3, seed=7,
                                          logprobs=2, temperature=1.0,
                                          extra_body={"return_tokens_as_token_ids": True,
                                                      "ignore_eos": True})
        check([c.index for c in generated.choices] == [0, 1, 2], "n=3 gives choices 0, 1, 2")
        check([c.text for c in generated.choices] == [c.text for c in again.choices],
              "the same seed gives the same samples")
        check(generated.usage.completion_tokens == 24, f"usage.completion_tokens "
              f"{generated.usage.completion_tokens}, expected 3 × 8 (ignore_eos)")
        completions = []
        for c in generated.choices:
            check(c.finish_reason == "length", f"finish_reason {c.finish_reason}")
            tokens = [int(t.split(":")[1]) for t in c.logprobs.tokens]
            check(len(tokens) == 8, f"{len(tokens)} generated tokens reported")
            completions.append(tokens)
        rescored = gopd_logprobs(gopd, teacher, [ids + t for t in completions], work)
        for c, tokens, ref in zip(generated.choices, completions, rescored):
            for t, value in enumerate(c.logprobs.token_logprobs):
                check(close(value, ref[len(ids) + t], 1e-5),
                      f"generated token {t}: serve {value} vs gopd logprobs {ref[len(ids) + t]}")

        # Stop strings end the text before them (vLLM's default), with finish_reason "stop".
        free_run = client.completions.create(model=name, prompt=[ids], max_tokens=16, seed=3,
                                             extra_body={"ignore_eos": True})
        full = free_run.choices[0].text
        stop = full[len(full) // 2:len(full) // 2 + 2]
        if check(len(stop) == 2, f"a 16-token sample gives text to cut: {full!r}"):
            stopped = client.completions.create(model=name, prompt=[ids], max_tokens=16, seed=3,
                                                stop=[stop], extra_body={"ignore_eos": True})
            c = stopped.choices[0]
            check(c.text == full[:full.find(stop)] and c.finish_reason == "stop" and
                  c.model_extra.get("stop_reason") == stop,
                  f"stop {stop!r}: text {c.text!r} ({c.finish_reason}, {c.model_extra.get('stop_reason')!r})"
                  f" from {full!r}")
        # Requests that would overflow or ask for too many log-prob entries are 400s.
        for body, field in [({"prompt": [ids], "max_tokens": 2**62}, "max_tokens"),
                            ({"prompt": [ids[:1] * 4000] * 8, "max_tokens": 0, "n": 16,
                              "prompt_logprobs": 20}, "prompt_logprobs")]:
            status, answer = request(server.port, "POST", "/v1/completions", body)
            check(status == 400 and json.loads(answer)["error"]["param"] == field,
                  f"{field}: {status} {answer[:300]!r}")

        # Errors: OpenAI-shaped, naming the field.
        try:
            client.completions.create(model=name, prompt="x", max_tokens=-3)
            check(False, "max_tokens -3 was accepted")
        except openai.BadRequestError as error:
            body = error.response.json()
            check(body["error"]["param"] == "max_tokens", f"error names {body['error']['param']}")
        try:
            client.completions.create(model="other-model", prompt="x", max_tokens=1)
            check(False, "an unknown model was accepted")
        except openai.NotFoundError:
            pass
        try:
            client.completions.create(model=name, prompt=[[1] * 100000], max_tokens=1)
            check(False, "an over-long prompt was accepted")
        except openai.BadRequestError as error:
            check("maximum context length" in str(error), f"over-long prompt: {error}")
        check(server.alive(), "the server died during the client checks")
        logged = [l for l in server.lines if "POST /v1/completions" in l]
        check(len(logged) >= 5, f"one log line per request: {len(logged)} completions lines")
    finally:
        server.stop()
    print("client: ok" if not FAILURES else "client: failures above", flush=True)


# --- 2. fuzzing --------------------------------------------------------------------------------
def fuzz_cases(rng):
    good = {"prompt": "1+1=", "max_tokens": 2, "temperature": 1.0, "logprobs": 1, "n": 1,
            "echo": False, "prompt_logprobs": 1, "seed": 3, "stop": ["\n"], "top_p": 0.9}
    odd_values = [None, "x", "", [], {}, [[]], [None], 1e308, -1, -2**63, 2**64, 10**30, 1.5, True,
                  False, "\udcff", [2**70], {"a": 1}, [[1, "a"]], -1e-300, [-5], "💥" * 1000]
    cases = []
    for key in list(good) + ["model", "best_of", "top_k", "min_p", "stop_token_ids",
                             "ignore_eos", "stream", "suffix", "logit_bias"]:
        for value in odd_values:
            body = dict(good)
            body[key] = value
            cases.append(json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    for _ in range(150):  # random bytes, invalid UTF-8 among them
        cases.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))))
    for _ in range(150):  # random JSON values
        cases.append(json.dumps(random_json(rng, 4)).encode())
    text = json.dumps(good).encode()
    for cut in range(1, len(text) - 1, 3):  # truncated bodies
        cases.append(text[:cut])
    cases += [b'{"prompt": "\xff\xfe\xfd"}', b'{"prompt": [1, 2, 3', b"[" * 100000,
              b'{"prompt": ' + b"[" * 50000 + b"]" * 50000 + b"}", b'{"prompt": 1e99999}',
              json.dumps({"prompt": [999999999]}).encode(), json.dumps({"prompt": []}).encode(),
              json.dumps({"prompt": [[]]}).encode(), json.dumps({"prompt": ""}).encode(),
              json.dumps({"max_tokens": 3}).encode(), b"null", b"", b"{}"]
    return cases


def random_json(rng, depth):
    kind = rng.randrange(7 if depth > 0 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randrange(-2**70, 2**70)
    if kind == 2:
        return rng.uniform(-1e300, 1e300)
    if kind == 3:
        return "".join(chr(rng.randrange(1, 0xD7FF)) for _ in range(rng.randrange(10)))
    if kind == 4:
        return rng.choice(["prompt", "max_tokens", "n", "logprobs"])
    if kind == 5:
        return [random_json(rng, depth - 1) for _ in range(rng.randrange(4))]
    keys = ["prompt", "max_tokens", "n", "logprobs", "prompt_logprobs", "echo", "seed", "model"]
    return {rng.choice(keys): random_json(rng, depth - 1) for _ in range(rng.randrange(5))}


def raw_exchange(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def fuzz_checks(gopd, teacher):
    server = Server(gopd, teacher)
    rng = random.Random(20261207)
    try:
        cases = fuzz_cases(rng)
        statuses = {}
        for i, body in enumerate(cases):
            status, answer = request(server.port, "POST", "/v1/completions", body)
            statuses[status] = statuses.get(status, 0) + 1
            ok = 400 <= status < 500
            if status == 200:  # a random case can be a valid request; it must then be one
                ok = json.loads(answer)["object"] == "text_completion"
            if not check(ok, f"fuzz case {i} ({body[:80]!r}) answered {status}: {answer[:200]!r}"):
                break
            if status != 200:
                error = json.loads(answer)["error"]
                check(isinstance(error["message"], str) and error["code"] == status,
                      f"fuzz case {i}: error body {answer[:200]!r}")
            if i % 50 == 0:
                check(request(server.port, "GET", "/health")[0] == 200, f"/health after case {i}")
        # Broken HTTP: the server answers 4xx or closes the connection, and stays up.
        for data in [b"GARBAGE\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 999999"
                     b"9999999999\r\n\r\n{}", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n"
                     b"\r\n{\"prompt\": \"a\"", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
                     b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
                     bytes(rng.randrange(256) for _ in range(4096))]:
            answer = raw_exchange(server.port, data)
            status = int(answer.split(b" ")[1]) if answer.startswith(b"HTTP/1.1 ") else None
            check(status is None or 400 <= status < 500,
                  f"broken HTTP {data[:40]!r} answered {answer[:100]!r}")
        check(request(server.port, "GET", "/health")[0] == 200, "/health after broken HTTP")
        check(request(server.port, "GET", "/nowhere")[0] == 404, "unknown path → 404")
        check(server.alive(), "the server died under fuzzing")
        print(json.dumps({"test": "serve_fuzz", "requests": len(cases), "statuses": statuses}),
              flush=True)
    finally:
        server.stop()


# --- 3. load -----------------------------------------------------------------------------------
def load_checks(gopd, teacher, seconds=4.0, clients=16):
    server = Server(gopd, teacher, "--max-queue", "4")
    try:
        latencies, statuses, lock = [], {}, threading.Lock()
        deadline = time.time() + seconds

        def client(index):
            body = {"prompt": f"{index}+{index}=", "max_tokens": 4, "logprobs": 1,
                    "temperature": 1.0, "seed": index}
            while time.time() < deadline:
                start = time.time()
                try:
                    status, _ = request(server.port, "POST", "/v1/completions", body, timeout=60)
                except OSError as error:
                    status = f"error: {error}"
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        latencies.append(time.time() - start)

        # A seeded request answered alone, then again and again while the others load the
        # server (joining running batches): the same sample every time.
        probe = {"prompt": "7+8=", "max_tokens": 6, "temperature": 1.0, "seed": 99,
                 "ignore_eos": True}
        alone = json.loads(request(server.port, "POST", "/v1/completions", probe)[1])
        alone_text = alone["choices"][0]["text"]
        probe_answers = []

        def prober():
            while time.time() < deadline:
                status, answer = request(server.port, "POST", "/v1/completions", probe)
                if status == 200:
                    probe_answers.append(json.loads(answer)["choices"][0]["text"])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        threads.append(threading.Thread(target=prober))
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - started
        latencies.sort()
        total = sum(v for v in statuses.values())
        check(set(statuses) <= {200, 503}, f"load: answers other than 200/503: {statuses}")
        check(statuses.get(200, 0) > 0, f"load: no request succeeded: {statuses}")
        check(server.alive(), "the server died under load")
        check(probe_answers and all(t == alone_text for t in probe_answers),
              f"a seeded request under load gives its sample alone ({alone_text!r}): "
              f"{sorted(set(probe_answers))[:5]} over {len(probe_answers)} answers")
        joined = sum(1 for line in server.lines if "joined_running_batch" in line)
        check(joined > 0, "no request joined a running batch under load (continuous batching)")

        def percentile(p):
            return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

        print(json.dumps({"bench": "serve_load", "clients": clients, "seconds": round(elapsed, 2),
                          "max_queue": 4, "requests": total,
                          "requests_per_s": round(total / elapsed, 1),
                          "ok_per_s": round(statuses.get(200, 0) / elapsed, 1),
                          "p50_ms": percentile(0.5), "p99_ms": percentile(0.99),
                          "joined_running_batch": joined,
                          "statuses": {str(k): v for k, v in statuses.items()}}), flush=True)
    finally:
        server.stop()


# --- 4. a G-OPD job with a served teacher --------------------------------------------------------
STEP_KEYS = ["loss/gopd_kl", "gopd/top_k_teacher_mass", "teacher/code/reverse_kl_estimate",
             "loss/policy", "gopd/advantage_mean", "gopd/advantage_std", "gopd/reverse_kl_estimate",
             "gopd/reward_mean", "teacher/math/reverse_kl_estimate", "optim/grad_norm"]


def job_yaml(work, name, teacher_line, steps, extra="", data="train.jsonl"):
    return (f"algorithm: gopd\n"
            f"run: {{name: {name}, output_dir: {work}/runs, threads: 1, seed: 5}}\n"
            f"student: {{path: {work}/student}}\n"
            f"teachers: {{math: {teacher_line}}}\n"
            f"reference: {{dtype: float32}}\n"
            f"data: {{train_file: {work}/{data}}}\n"
            f"{extra}"
            f"rollout: {{batch_prompts: 4, n: 2, max_new_tokens: 12}}\n"
            f"optim: {{lr: 1.0e-2, micro_batch_size: 3}}\n"
            f"train: {{max_steps: {steps}, save_every: 1}}\n")


def metrics(work, name):
    path = work / "runs" / name / "metrics.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def compare_steps(a, b, what):
    check(len(a) == len(b), f"{what}: {len(a)} vs {len(b)} metric lines")
    for step, (x, y) in enumerate(zip(a, b)):
        for key in STEP_KEYS:
            if key not in x:
                continue
            check(key in y and close(x[key], y[key], 1e-4),
                  f"{what}, step {step + 1}, {key}: {x[key]} vs {y.get(key)}")


def training_checks(gopd, work):
    steps = 4
    (work / "local.yaml").write_text(job_yaml(work, "local", f"{{path: {work}/teacher, dtype: float32}}", steps))
    run_gopd(gopd, "train", str(work / "local.yaml"))
    local = metrics(work, "local")

    server = Server(gopd, work / "teacher")
    remote_line = f"{{url: http://127.0.0.1:{server.port}, timeout_s: 3}}"
    try:
        (work / "remote.yaml").write_text(job_yaml(work, "remote", remote_line, steps))
        run_gopd(gopd, "train", str(work / "remote.yaml"))
        remote = metrics(work, "remote")
        compare_steps(local, remote, "served teacher vs in-process teacher")
        check(all(line.get("perf/served_prefetched_rows") == 8 for line in remote),
              "every row scored while the rollout ran (perf/served_prefetched_rows = 8): "
              f"{[line.get('perf/served_prefetched_rows') for line in remote]}")
        # The reference path: requests only after the rollout.
        (work / "unpipelined.yaml").write_text(job_yaml(
            work, "unpipelined", remote_line.replace("}", ", pipeline: false}"), 2))
        run_gopd(gopd, "train", str(work / "unpipelined.yaml"))
        unpipelined = metrics(work, "unpipelined")
        compare_steps(local[:2], unpipelined, "served teacher without pipelining vs in-process")
        check(all(line.get("perf/served_prefetched_rows") == 0 for line in unpipelined),
              "pipeline: false prefetches nothing")
        # The top_k objective: the server's top k stand in for the teacher's logits.
        top_k = "gopd: {objective: top_k, top_k: 4}\n"
        (work / "local_top_k.yaml").write_text(job_yaml(
            work, "local_top_k", f"{{path: {work}/teacher, dtype: float32}}", 2, top_k))
        (work / "remote_top_k.yaml").write_text(job_yaml(work, "remote_top_k", remote_line, 2, top_k))
        run_gopd(gopd, "train", str(work / "local_top_k.yaml"))
        run_gopd(gopd, "train", str(work / "remote_top_k.yaml"))
        compare_steps(metrics(work, "local_top_k"), metrics(work, "remote_top_k"),
                      "top_k objective, served vs in-process teacher")
        check("loss/gopd_kl" in metrics(work, "remote_top_k")[0], "the top_k run logs loss/gopd_kl")
        # Mixed: one teacher served, one in process, records routed between them.
        routed = [json.loads(l) for l in (work / "train.jsonl").read_text().splitlines()]
        (work / "routed.jsonl").write_text("".join(
            json.dumps({**r, "teacher": ["math", "code"][i % 2]}) + "\n" for i, r in enumerate(routed)))
        code_line = f"  code: {{path: {work}/student, dtype: float32, lambda: 1.0}}\n"
        for name, math_line in [("local_mixed", f"{{path: {work}/teacher, dtype: float32}}"),
                                ("remote_mixed", remote_line)]:
            (work / f"{name}.yaml").write_text(
                job_yaml(work, name, math_line, 2, data="routed.jsonl")
                .replace(f"teachers: {{math: {math_line}}}\n",
                         f"teachers:\n  math: {math_line}\n{code_line}"))
            run_gopd(gopd, "train", str(work / f"{name}.yaml"))
        mixed = metrics(work, "remote_mixed")
        check(mixed and mixed[0].get("teacher/code/responses", 0) > 0 and
              mixed[0].get("teacher/math/responses", 0) > 0, f"both teachers scored: {mixed[:1]}")
        compare_steps(metrics(work, "local_mixed"), mixed, "mixed served + in-process teachers")
        # A teacher whose server has another tokenizer is refused before training.
        other = Server(gopd, work / "other_tok_model")
        try:
            (work / "wrong.yaml").write_text(job_yaml(
                work, "wrong", f"{{url: http://127.0.0.1:{other.port}}}", steps))
            result = run_gopd(gopd, "train", str(work / "wrong.yaml"), expect=None)
            check(result.returncode == 2 and "tokenizer" in result.stderr and "teachers.math" in result.stderr,
                  f"a served teacher with another tokenizer: exit {result.returncode}: {result.stderr[-400:]}")
        finally:
            other.stop()

        # Kill the server after step 2: the next step fails cleanly; resume finishes the run.
        (work / "killed.yaml").write_text(job_yaml(work, "killed", remote_line, steps))
        log = open(work / "killed.log", "w+")
        job = subprocess.Popen([gopd, "--threads", "1", "train", str(work / "killed.yaml")],
                               stderr=log, stdout=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and len(metrics(work, "killed")) < 2 and job.poll() is None:
            time.sleep(0.02)
        port = server.port
        server.stop()
        job.wait(timeout=120)
        log.seek(0)
        stderr = log.read()
        log.close()
        finished = len(metrics(work, "killed"))
        check(job.returncode == 1 or finished == steps,
              f"killing the teacher's server: train exited {job.returncode}: {stderr[-600:]}")
        if job.returncode == 1:
            check("teachers.math" in stderr and "--resume auto" in stderr,
                  f"the failure names the teacher and the way on: {stderr[-600:]}")
            check("internal failure" not in stderr and "terminate called" not in stderr,
                  f"the failure is a clear message: {stderr[-600:]}")
        server = Server(gopd, work / "teacher", port=port)
        result = run_gopd(gopd, "train", str(work / "killed.yaml"), "--resume", "auto", expect=None)
        check(result.returncode == 0, f"--resume auto after restarting the server: exit "
              f"{result.returncode}: {result.stderr[-600:]}")
        compare_steps(local, metrics(work, "killed"), "killed and resumed vs in-process")
        print(f"training: served teacher run and resumed run compared over {steps} steps "
              f"(the kill landed after {finished} step(s))", flush=True)
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gopd", required=True)
    parser.add_argument("--source", required=True)
    args = parser.parse_args()
    gopd = os.path.abspath(args.gopd)
    with tempfile.TemporaryDirectory(prefix="gopd_serve_test_") as tmp:
        work = pathlib.Path(tmp)
        run_gopd(gopd, "data", "--task", "arith", "--n", "64", "--difficulty", "2", "--split",
                 "train", "--out", str(work / "train.jsonl"))
        run_gopd(gopd, "tokenizer", "train", "--input", str(work / "train.jsonl"), "--vocab-size",
                 "400", "--chat-format", "chatml", "--out", str(work / "tok"))
        tiny = ["--arch", "qwen3", "--hidden", "32", "--layers", "2", "--heads", "4",
                "--kv-heads", "2", "--intermediate", "64"]
        for name, seed in [("student", 1), ("teacher", 2)]:
            run_gopd(gopd, "init-model", *tiny, "--tokenizer", str(work / "tok"), "--out",
                     str(work / name), "--seed", str(seed))
        run_gopd(gopd, "tokenizer", "train", "--input", str(work / "train.jsonl"), "--vocab-size",
                 "360", "--chat-format", "chatml", "--out", str(work / "tok360"))
        run_gopd(gopd, "init-model", *tiny, "--tokenizer", str(work / "tok360"), "--out",
                 str(work / "other_tok_model"), "--seed", "3")
        client_checks(gopd, work / "teacher", work)
        fuzz_checks(gopd, work / "teacher")
        load_checks(gopd, work / "teacher")
        training_checks(gopd, work)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print("serve_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
