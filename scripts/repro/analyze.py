"""The results page of one scripts/repro/ experiment: tables, intervals, plots and JSON.

usage: analyze.py EXPERIMENT --out REPRO_OUT --results RESULTS_DIR [--eval-k K] [--quick]

Reads $out/<experiment>/manifest.tsv (written by the experiment's script), the per-sample
records of every evaluation ($out/eval/<name>-t1|greedy/samples.jsonl) and every run's
metrics.jsonl, and writes into RESULTS_DIR: README.md, results.json and PNG plots.

Statistics. A problem's score is the fraction of its samples judged correct (avg@k at
temperature 1) or its greedy answer's correctness. An arm's accuracy is the mean over problems
and seeds. Every interval is a 95% percentile interval of a two-level paired bootstrap: seeds
are resampled (paired by seed between two arms: same seed = same data order and sampling
stream), and problems are resampled (paired by problem: the same draw for both arms). A
difference is called only when its interval excludes 0.
"""
import argparse
import json
import math
import os
import subprocess
import sys
from collections import defaultdict

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BOOTSTRAP_DRAWS = 4000
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fail(message):
    print(f"analyze.py: {message}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------------------------
# inputs

def read_manifest(path):
    """Rows of manifest.tsv: ('ref', label, eval, run[, family]) and
    ('arm', label, eval, run, seed[, lambda[, family]])."""
    if not os.path.exists(path):
        fail(f"{path}: no manifest (run the experiment's script first)")
    refs, arms = [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            cells = line.rstrip("\n").split("\t")
            if cells[0] == "ref" and len(cells) >= 4:
                refs.append({"label": cells[1], "eval": cells[2], "run": cells[3],
                             "family": cells[4] if len(cells) > 4 else None})
            elif cells[0] == "arm" and len(cells) >= 5:
                arms.append({"label": cells[1], "eval": cells[2], "run": cells[3],
                             "seed": int(cells[4]),
                             "lambda": float(cells[5]) if len(cells) > 5 and cells[5] else None,
                             "family": cells[6] if len(cells) > 6 else None})
            else:
                fail(f"{path}:{number}: malformed manifest line")
    return refs, arms


def problem_scores(out, name, mode):
    """Per-problem score vector of one evaluation (ordered by prompt_index)."""
    path = os.path.join(out, "eval", f"{name}-{mode}", "samples.jsonl")
    if not os.path.exists(path):
        fail(f"{path}: missing (the evaluation did not finish)")
    totals, counts = defaultdict(float), defaultdict(int)
    with open(os.path.join(out, "eval", f"{name}-{mode}", "summary.json")) as f:
        want = int(json.load(f)["samples_per_prompt"])
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                index, reward = int(record["prompt_index"]), float(record["reward"])
            except (ValueError, KeyError) as error:
                fail(f"{path}:{number}: bad sample record ({error})")
            totals[index] += 1.0 if reward >= 1.0 else 0.0
            counts[index] += 1
    if not totals:
        fail(f"{path}: no samples")
    n = max(totals) + 1
    if sorted(totals) != list(range(n)):
        fail(f"{path}: prompt indices are not 0..{n - 1}")
    if set(counts.values()) != {want}:
        fail(f"{path}: expected {want} samples per prompt (summary.json), found {sorted(set(counts.values()))}")
    return np.array([totals[i] / counts[i] for i in range(n)])


def read_wall(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def metrics_lines(out, run):
    """The run's metrics, one dict per step (a step written twice: its last line's keys win)."""
    path = os.path.join(out, "runs", run, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    steps = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                steps.setdefault(record.get("step"), {}).update(record)
    return [steps[step] for step in sorted(steps, key=lambda s: (s is None, s))]


# ---------------------------------------------------------------------------------------------
# statistics

class Boot:
    """Shared bootstrap draws, so every comparison of one experiment resamples alike."""

    def __init__(self, n_problems, n_seeds, seed=12345):
        rng = np.random.default_rng(seed)
        self.problems = rng.integers(0, n_problems, size=(BOOTSTRAP_DRAWS, n_problems))
        self.seeds = rng.integers(0, max(n_seeds, 1), size=(BOOTSTRAP_DRAWS, max(n_seeds, 1)))

    def draws(self, matrix):
        """Bootstrap means of a [seeds, problems] matrix (one row: a model without seeds)."""
        matrix = np.atleast_2d(matrix)
        per_seed = np.stack([row[self.problems].mean(axis=1) for row in matrix])  # [S, B]
        if matrix.shape[0] == 1:
            return per_seed[0]
        picks = self.seeds[:, :matrix.shape[0]] % matrix.shape[0]
        return per_seed[picks, np.arange(BOOTSTRAP_DRAWS)[:, None]].mean(axis=1)


def interval(draws):
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def summary(boot, matrix):
    matrix = np.atleast_2d(matrix)
    low, high = interval(boot.draws(matrix))
    return {"mean": float(matrix.mean()), "ci95": [low, high],
            "per_seed": [float(row.mean()) for row in matrix]}


def compare(boot, a, b, seeds_a=None, seeds_b=None):
    """a - b, paired by problem (and by seed when both have seeds)."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.shape[0] > 1 and b.shape[0] > 1 and seeds_a != seeds_b:
        fail(f"arms with different seeds cannot be paired: {seeds_a} vs {seeds_b}")
    if a.shape[0] > 1 and b.shape[0] > 1:
        draws = boot.draws(a - b)
    else:
        draws = boot.draws(a) - boot.draws(b)
    low, high = interval(draws)
    return {"diff": float(a.mean() - b.mean()), "ci95": [low, high],
            "called": "higher" if low > 0 else "lower" if high < 0 else "no difference"}


# ---------------------------------------------------------------------------------------------
# formatting

def pct(x):
    return f"{100 * x:.1f}"


def fmt_summary(s):
    return f"{pct(s['mean'])} [{pct(s['ci95'][0])}, {pct(s['ci95'][1])}]"


def fmt_compare(c):
    sign = "+" if c["diff"] >= 0 else "−"
    low, high = c["ci95"]
    return f"{sign}{pct(abs(c['diff']))} [{pct(low)}, {pct(high)}] ({c['called']})"


def commit_of():
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src", "include",
                                "configs", "scripts"], capture_output=True, text=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# What a run's training depends on: the engine, its build, the configs and the repro scripts.
# The benchmark commands (src/cli/bench_*) are left out: they change no run.
TRAINING_PATHS = ["src", "include", "CMakeLists.txt", "configs", "scripts/repro",
                  ":(exclude)src/cli/bench_*"]
ENGINE_PATHS = ["src", "include", "CMakeLists.txt", "configs", ":(exclude)src/cli/bench_*"]


def training_commit(commit):
    """The last commit at or before `commit` that changed what a run's training depends on
    (a commit recorded with +dirty is kept as is)."""
    if commit.endswith("+dirty") or commit in ("not recorded", "unknown"):
        return commit
    try:
        found = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h", commit, "--"]
                               + TRAINING_PATHS, capture_output=True, text=True, check=True)
        return found.stdout.strip() or commit
    except (OSError, subprocess.CalledProcessError):
        return commit


def engine_identical(commits):
    """True when the engine and configs are the same at every commit (scripts may differ)."""
    clean = [c for c in commits if not c.endswith("+dirty") and c not in ("not recorded", "unknown")]
    if len(clean) != len(commits):
        return False
    for other in clean[1:]:
        diff = subprocess.run(["git", "-C", REPO, "diff", "--quiet", clean[0], other, "--"]
                              + ENGINE_PATHS, capture_output=True)
        if diff.returncode != 0:
            return False
    return True


def minutes(seconds):
    return f"{seconds / 60:.1f} min"


# ---------------------------------------------------------------------------------------------
# plots

def curve_series(out, runs):
    """Per run: (steps, eval/accuracy) of the in-training greedy curve."""
    series = []
    for run in runs:
        points = [(line["step"], line["eval/accuracy"]) for line in metrics_lines(out, run)
                  if "eval/accuracy" in line]
        if points:
            series.append(points)
    return series


def band(series):
    """Mean and min/max over seeds at the steps every seed has."""
    steps = sorted(set.intersection(*[set(s for s, _ in points) for points in series]))
    values = np.array([[dict(points)[s] for s in steps] for points in series])
    return np.array(steps), values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def plot_curves(path, out, arm_runs, title, ylabel, key=None, smooth=1, extra=None):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = 0
    for i, (label, runs) in enumerate(arm_runs.items()):
        if key is None:
            series = curve_series(out, runs)
        else:
            series = []
            for run in runs:
                points = [(line["step"], line[key]) for line in metrics_lines(out, run) if key in line]
                if points and smooth > 1:
                    values = np.array([v for _, v in points])
                    kernel = np.ones(smooth) / smooth
                    padded = np.concatenate([np.full(smooth - 1, values[0]), values])
                    values = np.convolve(padded, kernel, mode="valid")
                    points = [(s, v) for (s, _), v in zip(points, values)]
                if points:
                    series.append(points)
        if not series:
            continue
        steps, mean, low, high = band(series)
        color = colors[i % len(colors)]
        ax.plot(steps, mean, label=f"{label} (mean of {len(series)})", color=color)
        if len(series) > 1:
            ax.fill_between(steps, low, high, color=color, alpha=0.2)
        drawn += 1
    if extra:
        extra(ax)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn > 0


# ---------------------------------------------------------------------------------------------
# experiments

PAPER = {
    "exopd_lambda": """\
G-OPD paper (Yang et al., "Learning beyond Teacher: Generalized On-Policy Distillation with
Reward Extrapolation", arXiv 2602.12125 v2), **Table 2**, single-teacher rows: Qwen3-4B
(non-thinking) student, teachers made by GRPO from that same base, reference = the student's
initial weights, 50 steps. Math = average over AIME24/AIME25/HMMT25 Feb/HMMT25 Nov (avg@32);
code = HumanEval+/MBPP+/LiveCodeBench (avg@4), temperature 1.0.

| row | paper: math avg | paper: code avg |
|---|---|---|
| student (base) | 15.4 | 52.4 |
| teacher (GRPO from the base) | 46.0 | 61.2 |
| OPD (λ = 1) | 46.5 | 60.8 |
| ExOPD (λ = 1.25) | 48.0 | 62.1 |

The λ sweep (λ ∈ {0, 0.25, 0.5, 0.75, 1, 1.25, 1.5}) is plotted per benchmark in the paper's
Figures 2 (math) and 3 (code) without a table: 0 < λ < 1 lands between base and teacher, and
λ = 1.5 "may lead to instability and degrade performance".""",
    "multi_teacher": """\
G-OPD paper (arXiv 2602.12125 v2), **Table 2**, multi-teacher rows: the math and code experts
(GRPO from Qwen3-4B non-thinking) merged into that base, λ = 1.25, reference = the base.
"Teacher" is the math expert on math and the code expert on code.

| row | paper: math avg | paper: code avg |
|---|---|---|
| student (base) | 15.4 | 52.4 |
| domain teacher | 46.0 | 61.2 |
| multi-teacher OPD (λ = 1) | 46.4 | 60.6 |
| multi-teacher ExOPD (λ = 1.25) | 47.7 | 62.0 |""",
    "strong_to_weak": """\
G-OPD paper (arXiv 2602.12125 v2), **Figure 6** (reward correction; bar labels read from the
PDF, matched to methods by their order, which agrees with the text's ranking): Qwen3-1.7B
(non-thinking) student, Qwen3-4B RL-Math / RL-Code teachers, reward-correction reference =
Qwen3-4B (the teachers' pre-RL base). The figure has no student-base bar; **Table 3** (default
strong-to-weak, Qwen3-30B-A3B-Instruct teacher, reference = student base) gives the 1.7B base
at 8.8 math avg, OPD 23.1 and ExOPD 25.4 (teacher 59.7).

| row | paper (Fig. 6): math avg | paper (Fig. 6): code avg |
|---|---|---|
| SFT | 47.0 | 22.7 |
| OPD (λ = 1) | 50.5 | 27.5 |
| ExOPD (λ = 1.25, reference = student base) | 51.3 | 28.1 |
| ExOPD + reward correction (reference = teacher base) | 52.3 | 28.7 |""",
    "lens_vs_grpo": """\
LENS paper (Guo, Hu, Sun, Lin, "Less Noise, More Voice: Reinforcement Learning for Reasoning
via Instruction Purification", arXiv 2601.21244), **abstract**: "3.88% average gain and over
1.6× speedup" over GRPO on math reasoning. The zero-reward prompt fractions (~80% under GRPO,
~40% under LENS, on DeepMath) and the per-model averages below come from public paper notes,
not from the paper's text (its experimental section was not readable from here): unverified.

| row | paper: 7-benchmark math avg (Llama-3.2-3B-Instruct, paper notes) | zero-reward prompts |
|---|---|---|
| GRPO | 23.98 | ~80% |
| LENS | 27.03 (+3.05; +3.88 averaged over the paper's models) | ~40% |
| steps to GRPO's best | 1.6× fewer (abstract) | |""",
}

CLAIM = {
    "exopd_lambda": "ExOPD (λ = 1.25) beats OPD (λ = 1) when the teacher is an RL'd descendant "
                    "of the student's base and the reference is that base.",
    "multi_teacher": "Merging two domain experts by ExOPD gives a student that beats each domain "
                     "teacher on that teacher's domain (and beats OPD merging).",
    "strong_to_weak": "With a larger RL'd teacher, ExOPD with reward correction (reference = the "
                      "teacher's pre-RL base) improves over ExOPD (reference = the student's "
                      "base), which improves over OPD.",
    "lens_vs_grpo": "On noisy prompts LENS beats GRPO, reaches GRPO's best accuracy in ~1.6× "
                    "fewer steps, and halves the fraction of zero-reward prompts.",
}

# Experiment 1 at the larger base: the same claim, paper rows and GPU commands.
PAPER["exopd_lambda_strong"] = PAPER["exopd_lambda"]
CLAIM["exopd_lambda_strong"] = CLAIM["exopd_lambda"] + " (At a base where RL transfers.)"

FULL_SCALE = {
    "exopd_lambda": ["gopd train configs/paper/grpo_qwen3_4b_base.yaml   # (the teacher's RL; "
                     "the paper RL'd Qwen3-4B non-thinking)",
                     "gopd train configs/paper/exopd_qwen3_4b.yaml --set gopd.lambda=1.0   # OPD",
                     "gopd train configs/paper/exopd_qwen3_4b.yaml --set gopd.lambda=1.25  # ExOPD"],
    "multi_teacher": ["gopd train configs/paper/exopd_qwen3_4b.yaml --set gopd.lambda=1.0   # multi OPD",
                      "gopd train configs/paper/exopd_qwen3_4b.yaml   # multi ExOPD, lambda 1.25"],
    "strong_to_weak": ["gopd train configs/paper/exopd_strong_to_weak_qwen3_1p7b.yaml   # reward correction",
                       "gopd train configs/paper/exopd_strong_to_weak_qwen3_1p7b.yaml "
                       "--set reference.path=student_init   # ExOPD without it",
                       "gopd train configs/paper/exopd_strong_to_weak_qwen3_1p7b.yaml "
                       "--set gopd.lambda=1.0   # OPD"],
    "lens_vs_grpo": ["gopd train configs/paper/grpo_qwen3_4b_base.yaml",
                     "gopd train configs/paper/lens_qwen3_4b_base.yaml",
                     "gopd train configs/paper/lens_qwen3_8b_base.yaml",
                     "gopd train configs/paper/lens_llama3p2_3b_instruct.yaml"],
}
FULL_SCALE["exopd_lambda_strong"] = FULL_SCALE["exopd_lambda"]


def scores_of(out, rows, mode):
    return np.stack([problem_scores(out, row["eval"], mode) for row in rows])


def group_arms(arms, family=None):
    grouped = {}
    for row in arms:
        if family is not None and row["family"] != family:
            continue
        grouped.setdefault(row["label"], []).append(row)
    for label in grouped:
        grouped[label].sort(key=lambda row: row["seed"])
    return grouped


def analyse_block(out, refs, arms, eval_k, baseline, pairs):
    """Summaries of refs and arms and the comparisons `pairs` ((a, b) labels; b may be a
    ref label) for both metrics; returns a dict."""
    block = {"refs": {}, "arms": {}, "comparisons": []}
    modes = {"t1": f"avg@{eval_k}", "greedy": "greedy"}
    grouped = group_arms(arms)
    n_seeds = max([len(rows) for rows in grouped.values()] or [1])
    matrices = {}
    seeds = {label: [r["seed"] for r in rows] for label, rows in grouped.items()}
    for a, b in pairs:
        for label in (a, b):
            if label not in grouped and label not in {ref["label"] for ref in refs}:
                fail(f"comparison {a} vs {b}: no row '{label}' in the manifest")
    for mode in modes:
        for ref in refs:
            matrices[(ref["label"], mode)] = scores_of(out, [ref], mode)
        for label, rows in grouped.items():
            matrices[(label, mode)] = scores_of(out, rows, mode)
    n_problems = {m.shape[1] for m in matrices.values()}
    if len(n_problems) != 1:
        fail(f"evaluations of different sizes: {sorted(n_problems)}")
    boot = Boot(n_problems.pop(), n_seeds)
    for mode, metric in modes.items():
        for ref in refs:
            block["refs"].setdefault(ref["label"], {})[metric] = summary(boot, matrices[(ref["label"], mode)])
        for label, rows in grouped.items():
            entry = block["arms"].setdefault(label, {"seeds": [r["seed"] for r in rows],
                                                     "runs": [r["run"] for r in rows]})
            entry[metric] = summary(boot, matrices[(label, mode)])
        for a, b in pairs:
            result = compare(boot, matrices[(a, mode)], matrices[(b, mode)], seeds.get(a), seeds.get(b))
            block["comparisons"].append({"a": a, "b": b, "metric": metric, **result})
    block["problems"] = int(next(iter(matrices.values())).shape[1])
    return block


def table(block, eval_k, paper_column=None):
    metric = f"avg@{eval_k}"
    head = "| row | ours: " + metric + " at T = 1 [95% CI] | ours: greedy [95% CI] | per-seed " + metric + " |"
    if paper_column:
        head = "| row | paper | ours: " + metric + " at T = 1 [95% CI] | ours: greedy [95% CI] | per-seed " + metric + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for kind in ("refs", "arms"):
        for label, entry in block[kind].items():
            seeds = ", ".join(pct(x) for x in entry[metric]["per_seed"]) if kind == "arms" else "—"
            cells = [label]
            if paper_column:
                cells.append(paper_column.get(label, "—"))
            cells += [fmt_summary(entry[metric]), fmt_summary(entry["greedy"]), seeds]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_table(block):
    lines = ["| comparison | metric | difference, points [95% CI] |", "|---|---|---|"]
    for c in block["comparisons"]:
        lines.append(f"| {c['a']} − {c['b']} | {c['metric']} | {fmt_compare(c)} |")
    return "\n".join(lines)


def wall_times(out, refs, arms, exp):
    runs = sorted({row["run"] for row in refs + arms})
    evals = sorted({row["eval"] for row in refs + arms})
    train = sum(read_wall(os.path.join(out, "runs", run, "WALL")) for run in runs)
    evaluation = sum(read_wall(os.path.join(out, "eval", f"{name}-{mode}", "WALL"))
                     for name in evals for mode in ("t1", "greedy"))
    shared = read_wall(os.path.join(out, "runs", refs[0]["run"], "WALL"))  # the base it starts from
    commits = {}
    for run in runs + ["base-sft"]:
        try:
            with open(os.path.join(out, "runs", run, "COMMIT")) as f:
                commit = f.read().strip()
        except OSError:
            commit = "not recorded"
        commits.setdefault(training_commit(commit), []).append(run)
    return {"train_s": train, "eval_s": evaluation, "total_s": train + evaluation,
            "shared_base_sft_s": shared, "run_commits": {c: len(r) for c, r in sorted(commits.items())},
            "engine_identical": engine_identical(sorted(commits)),
            "note": "sum of the runs and evaluations this page uses (2 threads); the shared base's "
                    "SFT is counted in every experiment that uses it"}


def steps_to_reach(steps, curve, target):
    for step, value in zip(steps, curve):
        if value >= target - 1e-12:
            return int(step)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=sorted(PAPER))
    parser.add_argument("--out", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--eval-k", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    exp, out, k = args.experiment, args.out, args.eval_k
    os.makedirs(args.results, exist_ok=True)
    refs, arms = read_manifest(os.path.join(out, exp, "manifest.tsv"))
    result = {"experiment": exp, "claim": CLAIM[exp], "commit": commit_of(), "quick": args.quick,
              "eval_k": k, "wall": wall_times(out, refs, arms, exp)}
    plots = []
    sections = []
    metric = f"avg@{k}"

    if exp in ("exopd_lambda", "exopd_lambda_strong"):
        base, teacher = refs[0]["label"], refs[1]["label"]
        labels = list(group_arms(arms))
        pairs = [("lambda=1.25", "lambda=1.0"), ("lambda=1.5", "lambda=1.0"),
                 ("lambda=0.5", "lambda=1.0"), ("lambda=1.25", teacher), ("lambda=1.0", base),
                 (teacher, base)]
        block = analyse_block(out, refs, arms, k, base, pairs)
        result["table"] = block
        paper = {base: "15.4 (math) / 52.4 (code)", teacher: "46.0 / 61.2",
                 "lambda=1.0": "46.5 / 60.8 (OPD)", "lambda=1.25": "48.0 / 62.1 (ExOPD)"}
        sections.append(("Our table (held-out arithmetic)", table(block, k, paper) + "\n\n" + comparison_table(block)))
        # λ sweep plot
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
        lambdas = sorted({row["lambda"] for row in arms})
        for ax, m in zip(axes, (metric, "greedy")):
            means = [block["arms"][f"lambda={l}"][m]["mean"] for l in lambdas]
            lows = [block["arms"][f"lambda={l}"][m]["ci95"][0] for l in lambdas]
            highs = [block["arms"][f"lambda={l}"][m]["ci95"][1] for l in lambdas]
            ax.errorbar(lambdas, means, yerr=[np.subtract(means, lows), np.subtract(highs, means)],
                        marker="o", capsize=4, label="student after distillation")
            for ref, style in ((base, ":"), (teacher, "--")):
                ax.axhline(block["refs"][ref][m]["mean"], linestyle=style, color="gray",
                           label=ref)
            ax.set_xlabel("λ (reward scale)")
            ax.set_ylabel(f"held-out accuracy, {m}")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle("ExOPD λ sweep: mean of seeds, each arm's own 95% interval (problem and seed "
                     "resampling;\nthe paired differences in the table are much tighter)", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(args.results, "lambda_sweep.png"), dpi=110)
        plt.close(fig)
        plots.append(("λ sweep", "lambda_sweep.png"))
        arm_runs = {label: [r["run"] for r in rows] for label, rows in group_arms(arms).items()}
        if plot_curves(os.path.join(args.results, "curves.png"), out, arm_runs,
                       "greedy accuracy on the curve set during distillation (band: min-max of seeds)",
                       "greedy accuracy"):
            plots.append(("accuracy vs step", "curves.png"))
        verdict = [c for c in block["comparisons"] if c["a"] == "lambda=1.25" and c["b"] == "lambda=1.0"]

    elif exp == "multi_teacher":
        blocks = {}
        for family in ("addsub", "muldiv"):
            family_refs = [r for r in refs if r["family"] == family]
            family_arms = [a for a in arms if a["family"] == family]
            expert = next(r["label"] for r in family_refs if r["label"].startswith(family))
            pairs = [("lambda=1.25", expert), ("lambda=1.0", expert),
                     ("lambda=1.25", "lambda=1.0"), ("lambda=1.25", family_refs[0]["label"]),
                     (expert, family_refs[0]["label"])]
            blocks[family] = analyse_block(out, family_refs, family_arms, k, None, pairs)
            sections.append((f"Our table: {family} problems ({blocks[family]['problems']} held-out)",
                             table(blocks[family], k) + "\n\n" + comparison_table(blocks[family])))
        result["table"] = blocks
        arm_runs = {label: sorted({r["run"] for r in rows}) for label, rows in group_arms(arms).items()}
        if plot_curves(os.path.join(args.results, "curves.png"), out, arm_runs,
                       "greedy accuracy on the curve set (both families) during merging",
                       "greedy accuracy"):
            plots.append(("accuracy vs step", "curves.png"))
        verdict = [c for f in blocks.values() for c in f["comparisons"]
                   if c["a"] == "lambda=1.25" and "expert" in c["b"]]

    elif exp == "strong_to_weak":
        labels = list(group_arms(arms))
        pairs = [("ExOPD + reward correction", "ExOPD"), ("ExOPD", "OPD"),
                 ("ExOPD + reward correction", "OPD"), ("OPD", refs[0]["label"]),
                 (refs[2]["label"], refs[1]["label"])]
        block = analyse_block(out, refs, arms, k, None, pairs)
        result["table"] = block
        paper = {"OPD": "50.5 / 27.5", "ExOPD": "51.3 / 28.1", "ExOPD + reward correction": "52.3 / 28.7",
                 refs[0]["label"]: "8.8 (Table 3, math)"}
        sections.append(("Our table (held-out arithmetic)", table(block, k, paper) + "\n\n" + comparison_table(block)))
        arm_runs = {label: [r["run"] for r in rows] for label, rows in group_arms(arms).items()}
        if plot_curves(os.path.join(args.results, "curves.png"), out, arm_runs,
                       "greedy accuracy on the curve set during distillation (band: min-max of seeds)",
                       "greedy accuracy"):
            plots.append(("accuracy vs step", "curves.png"))
        verdict = [c for c in block["comparisons"] if c["a"].startswith("ExOPD") and c["b"] in ("ExOPD", "OPD")]

    else:  # lens_vs_grpo
        pairs = [("LENS", "GRPO"), ("GRPO", refs[0]["label"]), ("LENS", refs[0]["label"])]
        block = analyse_block(out, refs, arms, k, None, pairs)
        result["table"] = block
        grouped = group_arms(arms)
        arm_runs = {label: [r["run"] for r in rows] for label, rows in grouped.items()}
        # curves, zero-reward fractions, steps to GRPO's best
        dynamics = {}
        for label, runs in arm_runs.items():
            series = curve_series(out, runs)
            if series:
                steps, mean, _, _ = band(series)
                dynamics[label] = {"curve_steps": steps.tolist(), "curve_mean": mean.tolist()}
            for key in ("grpo/zero_reward_prompt_fraction", "lens/zero_reward_prompt_fraction"):
                values = [line[key] for run in runs for line in metrics_lines(out, run) if key in line]
                if values:
                    dynamics.setdefault(label, {})[key + "_mean"] = float(np.mean(values))
        if "GRPO" in dynamics and "LENS" in dynamics and "curve_mean" in dynamics["GRPO"]:
            best = max(dynamics["GRPO"]["curve_mean"])
            best_step = dynamics["GRPO"]["curve_steps"][int(np.argmax(dynamics["GRPO"]["curve_mean"]))]
            lens_step = steps_to_reach(dynamics["LENS"]["curve_steps"], dynamics["LENS"]["curve_mean"], best)
            dynamics["steps_to_grpo_best"] = {"grpo_best": best, "grpo_step": best_step, "lens_step": lens_step,
                                              "speedup": (best_step / lens_step) if lens_step else None}
            if best_step == 0:
                dynamics["steps_to_grpo_best"]["note"] = "GRPO never exceeded its step-0 accuracy"
        result["dynamics"] = dynamics
        zero_rows = ["| arm | zero-reward prompts (mean over steps and seeds) |", "|---|---|"]
        for label in arm_runs:
            d = dynamics.get(label, {})
            if "grpo/zero_reward_prompt_fraction_mean" in d:
                zero_rows.append(f"| {label}: sampled groups | {pct(d['grpo/zero_reward_prompt_fraction_mean'])}% |")
            if "lens/zero_reward_prompt_fraction_mean" in d:
                zero_rows.append(f"| {label}: groups trained on (after purified successes replace failures) "
                                 f"| {pct(d['lens/zero_reward_prompt_fraction_mean'])}% |")
        reach = dynamics.get("steps_to_grpo_best")
        reach_text = "steps to GRPO's best curve accuracy: not measured"
        if reach and reach["grpo_step"] == 0:
            reach_text = (f"GRPO's mean curve never rose above its step-0 accuracy ({pct(reach['grpo_best'])}%): "
                          "steps to GRPO's best are undefined")
        elif reach:
            reach_text = (f"GRPO's best mean curve accuracy {pct(reach['grpo_best'])}% at step {reach['grpo_step']}; "
                          + (f"LENS first reaches it at step {reach['lens_step']} "
                             f"({reach['speedup']:.2f}× fewer steps)" if reach["lens_step"] is not None
                             else "LENS never reaches it"))
        paper = {"GRPO": "23.98 (notes)", "LENS": "27.03 (notes)"}
        sections.append(("Our table (clean held-out arithmetic; RL on noisy prompts)",
                         table(block, k, paper) + "\n\n" + comparison_table(block) + "\n\n"
                         + "\n".join(zero_rows) + "\n\n" + reach_text + "."))
        if plot_curves(os.path.join(args.results, "curves.png"), out, arm_runs,
                       "greedy accuracy on clean held-out problems (band: min-max of seeds)",
                       "greedy accuracy"):
            plots.append(("accuracy vs step", "curves.png"))
        if plot_curves(os.path.join(args.results, "zero_reward.png"), out, arm_runs,
                       "prompts whose sampled group got no reward\n(10-step mean; band: min-max of seeds)",
                       "zero-reward prompt fraction", key="grpo/zero_reward_prompt_fraction", smooth=10):
            plots.append(("zero-reward prompt fraction vs step (sampled groups)", "zero_reward.png"))
        if plot_curves(os.path.join(args.results, "train_accuracy.png"), out, arm_runs,
                       "training reward accuracy on noisy prompts (10-step mean)",
                       "train accuracy", key="reward/accuracy", smooth=10):
            plots.append(("training accuracy vs step", "train_accuracy.png"))
        verdict = [c for c in block["comparisons"] if c["a"] == "LENS" and c["b"] == "GRPO"]

    result["verdict"] = verdict
    with open(os.path.join(args.results, "results.json.tmp"), "w") as f:
        json.dump(result, f, indent=1)
    os.replace(os.path.join(args.results, "results.json.tmp"), os.path.join(args.results, "results.json"))

    discussion_path = os.path.join(args.results, "discussion.md")
    discussion = (open(discussion_path).read().strip() if os.path.exists(discussion_path)
                  else "_No discussion written for this run (results/<experiment>/discussion.md)._")
    wall = result["wall"]
    page = [f"# {exp}: {CLAIM[exp]}", ""]
    if args.quick:
        page += ["**--quick run: a few steps per arm; these numbers mean nothing.**", ""]
    page += ["This page is written by `scripts/repro/analyze.py`; only the discussion at the end "
             "(`discussion.md`) is written by hand.", "",
             "## The paper", "", PAPER[exp], ""]
    for title, body in sections:
        page += [f"## {title}", "", body, ""]
    page += ["Rows: the paper's benchmarks and ours differ, so compare directions and gaps, not levels. "
             f"Ours: % of held-out problems solved, {metric} = mean over {k} samples at temperature 1 "
             "(the rollout temperature), greedy = one greedy answer; mean over seeds (each seed's data "
             "order and sampling differ; base and teachers are shared, built once). Intervals: 95% "
             "two-level paired bootstrap over seeds and problems; a difference is called only when its "
             "interval excludes 0.", ""]
    for title, name in plots:
        page += [f"### {title}", "", f"![{title}]({name})", ""]
    page += ["## How it was run", "",
             "```", f"bash scripts/repro/{exp}.sh     # or scripts/repro/all.sh; resumable", "```", "",
             f"- commit of this page: {result['commit']}; runs trained at (the last commit that "
             "changed the engine, configs or scripts/repro before each run): "
             + ", ".join(f"{c} ({n} runs)" for c, n in wall["run_commits"].items())
             + ("; the engine and configs are identical at all of them"
                if len(wall["run_commits"]) > 1 and wall.get("engine_identical") else ""),
             f"- wall time on this machine (2 cores, 2 threads): {minutes(wall['total_s'])} "
             f"(training {minutes(wall['train_s'])}, evaluation {minutes(wall['eval_s'])}; of it the "
             f"shared base's SFT {minutes(wall['shared_base_sft_s'])})",
             "- settings: `configs/repro/*.yaml` with the scripts' `--set` overrides; each run's "
             "resolved config is in its run directory (repro_out/runs/NAME/config.resolved.yaml)",
             "- calibration of task, tokenizer, sizes and SFT length: "
             "[scripts/repro/CALIBRATION.md](../../scripts/repro/CALIBRATION.md)",
             "- the numbers behind the tables: [results.json](results.json)", "",
             "Full scale on GPUs (the paper's settings):", "", "```"] + FULL_SCALE[exp] + ["```", "",
             "## What reproduced", "", discussion, ""]
    with open(os.path.join(args.results, "README.md.tmp"), "w") as f:
        f.write("\n".join(page))
    os.replace(os.path.join(args.results, "README.md.tmp"), os.path.join(args.results, "README.md"))
    for c in verdict:
        print(f"{exp}: {c['a']} − {c['b']} ({c['metric']}): {fmt_compare(c)}")
    print(f"{exp}: results in {args.results}/README.md")


if __name__ == "__main__":
    main()
