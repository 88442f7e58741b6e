// Config loading: defaults, --set overrides, round-trip through `config show`, the files
// in configs/, and the exact message + exit code for each kind of broken config.
#include <gtest/gtest.h>

#include <filesystem>

#include "gopd/core/config_loader.h"
#include "gopd/core/error.h"

namespace gopd::core {
namespace {

// Seven lines; broken cases append from line 8 on.
std::string base(const std::string& algorithm = "gopd") {
  return "algorithm: " + algorithm +
         "\n"
         "student:\n"
         "  path: models/student\n"
         "teachers:\n"
         "  math: models/teacher\n"
         "data:\n"
         "  train_file: data/train.jsonl\n";
}

// The message of the Error that loading throws; fails the test if it does not throw or the
// exit code is not 2.
std::string load_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    load_config_text(text, "x.yaml", overrides);
  } catch (const Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    return error.what();
  }
  ADD_FAILURE() << "expected an error for:\n" << text;
  return "";
}

TEST(Config, DefaultsFollowThePapers) {
  const Config config = load_config_text(base(), "x.yaml");
  EXPECT_EQ(config.algorithm, "gopd");
  ASSERT_TRUE(config.gopd.lambda.has_value());
  EXPECT_DOUBLE_EQ(*config.gopd.lambda, 1.25);  // ExOPD default
  EXPECT_EQ(config.gopd.objective, "sampled_token");
  EXPECT_DOUBLE_EQ(config.gopd.importance_cap, 5.0);
  EXPECT_DOUBLE_EQ(config.optim.lr, 1e-5);
  EXPECT_EQ(config.optim.schedule, "constant");
  EXPECT_EQ(config.rollout.batch_prompts, 1024);
  EXPECT_EQ(config.rollout.n, 1);
  EXPECT_DOUBLE_EQ(config.rollout.temperature, 1.0);
  EXPECT_DOUBLE_EQ(config.rollout.top_p, 1.0);
  EXPECT_EQ(config.rollout.max_new_tokens, 16384);
  EXPECT_EQ(config.train.epochs, 3);
  EXPECT_DOUBLE_EQ(config.grpo.clip_low, 0.2);
  EXPECT_DOUBLE_EQ(config.grpo.clip_high, 0.2);
  EXPECT_DOUBLE_EQ(config.lens.gamma, 0.05);
  EXPECT_EQ(config.reference.path, "student_init");
  ASSERT_EQ(config.teachers.size(), 1u);
  EXPECT_EQ(config.teachers.at("math").path, "models/teacher");
  EXPECT_FALSE(config.teachers.at("math").lambda.has_value());
}

TEST(Config, OpdResolvesLambdaToOne) {
  const Config config = load_config_text(base("opd"), "x.yaml");
  EXPECT_DOUBLE_EQ(*config.gopd.lambda, 1.0);
}

TEST(Config, TeachersWithOverrides) {
  const Config config = load_config_text(
      "student: {path: s}\n"
      "data: {train_file: t.jsonl}\n"
      "teachers:\n"
      "  math: {path: m, lambda: 1.5}\n"
      "  code:\n"
      "    path: c\n"
      "    reference: base/code\n",
      "x.yaml");
  ASSERT_EQ(config.teachers.size(), 2u);
  EXPECT_DOUBLE_EQ(*config.teachers.at("math").lambda, 1.5);
  EXPECT_EQ(config.teachers.at("code").reference, "base/code");
  EXPECT_EQ(config.teachers.at("code").dtype, "auto");
}

TEST(Config, SetOverridesAreTyped) {
  const Config config = load_config_text(
      base(), "x.yaml",
      {"optim.lr=3e-4", "rollout.n=4", "data.shuffle=false", "rollout.stop=[\"###\", \"END\"]",
       "teachers.code.path=models/code", "gopd.lambda=1.5", "run.name=abc"});
  EXPECT_DOUBLE_EQ(config.optim.lr, 3e-4);
  EXPECT_EQ(config.rollout.n, 4);
  EXPECT_FALSE(config.data.shuffle);
  EXPECT_EQ(config.rollout.stop, (std::vector<std::string>{"###", "END"}));
  EXPECT_EQ(config.teachers.at("code").path, "models/code");
  EXPECT_EQ(config.teachers.at("math").path, "models/teacher");
  EXPECT_DOUBLE_EQ(*config.gopd.lambda, 1.5);
  EXPECT_EQ(config.run.name, "abc");
}

TEST(Config, ShowRoundTrips) {
  const Config config = load_config_text(base() + "rollout:\n  stop: [\"a: b\", \"\"]\n", "x.yaml",
                                         {"optim.lr=3e-4", "run.name=123"});
  const std::string shown = config_to_yaml(config);
  const Config again = load_config_text(shown, "shown.yaml");
  EXPECT_EQ(config_to_yaml(again), shown);
  EXPECT_DOUBLE_EQ(again.optim.lr, 3e-4);
  EXPECT_EQ(again.run.name, "123");
  EXPECT_EQ(again.rollout.stop, (std::vector<std::string>{"a: b", ""}));
  EXPECT_NE(shown.find("importance_cap: 5.0"), std::string::npos) << shown;
}

TEST(Config, KeyPathsCoverEverySection) {
  const std::vector<std::string> paths = config_key_paths();
  for (const char* section :
       {"run.", "student.", "teachers.*.", "reference.", "gopd.", "grpo.", "lens.", "data.",
        "rollout.", "optim.", "train.", "reward.", "eval.", "kernels."}) {
    const bool found = std::any_of(paths.begin(), paths.end(), [&](const std::string& path) {
      return path.rfind(section, 0) == 0;
    });
    EXPECT_TRUE(found) << section;
  }
}

TEST(Config, EveryShippedConfigIsValid) {
  int64_t checked = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(std::string(GOPD_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(load_config(entry.path().string()));
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

struct BrokenCase {
  std::string name;
  std::string text;
  std::vector<std::string> overrides;
  std::string message;
};

TEST(Config, BrokenConfigsGiveExactMessages) {
  const std::vector<BrokenCase> cases = {
      {"wrong type",
       base() + "optim:\n  lr: fast\n",
       {},
       "x.yaml:9:7: optim.lr: expected a positive number, got \"fast\""},
      {"negative lr",
       base() + "optim:\n  lr: -1e-5\n",
       {},
       "x.yaml:9:7: optim.lr: expected a positive number, got -1e-5"},
      {"unknown key",
       base() + "optim:\n  lrr: 1e-4\n",
       {},
       "x.yaml:9:3: optim.lrr: unknown key; did you mean optim.lr?"},
      {"unknown section",
       base() + "optimizer:\n  lr: 1e-4\n",
       {},
       "x.yaml:8:1: optimizer: unknown key; did you mean optim?"},
      {"key of another section",
       base() + "optim:\n  temperature: 0.7\n",
       {},
       "x.yaml:9:3: optim.temperature: unknown key; did you mean rollout.temperature?"},
      {"bad choice",
       base() + "gopd:\n  objective: full\n",
       {},
       "x.yaml:9:14: gopd.objective: expected one of sampled_token, full_vocab, top_k, got "
       "\"full\" (did you mean full_vocab?)"},
      {"out of range",
       base() + "rollout:\n  top_p: 1.5\n",
       {},
       "x.yaml:9:10: rollout.top_p: expected a number in (0, 1], got 1.5"},
      {"not an integer",
       base() + "rollout:\n  n: 2.5\n",
       {},
       "x.yaml:9:6: rollout.n: expected an integer >= 1, got 2.5"},
      {"negative token budget",
       base() + "optim:\n  micro_batch_tokens: -8\n",
       {},
       "x.yaml:9:23: optim.micro_batch_tokens: expected an integer >= 0, got -8"},
      {"not a bool",
       base() + "reward:\n  code:\n    allow_unsandboxed: maybe\n",
       {},
       "x.yaml:10:24: reward.code.allow_unsandboxed: expected true or false, got \"maybe\""},
      {"section is a scalar",
       base() + "run: 5\n",
       {},
       "x.yaml:8:6: run: expected a mapping of keys, got 5"},
      {"group too small",
       base("grpo") + "rollout:\n  n: 1\n",
       {},
       "x.yaml:9:6: rollout.n: algorithm grpo needs a group of at least 2 rollouts per prompt, "
       "got 1"},
      {"greedy training",
       base("grpo") + "rollout:\n  n: 4\n  temperature: 0\n",
       {},
       "x.yaml:10:16: rollout.temperature: training samples on policy and scores log-probs at "
       "the rollout temperature, which must be > 0 (greedy decoding is for gopd eval / gopd "
       "generate); got 0"},
      {"dual clip bound",
       base("grpo") + "rollout:\n  n: 4\ngrpo:\n  clip_ratio_c: 0.5\n",
       {},
       "x.yaml:11:17: grpo.clip_ratio_c: the dual clip bound must be > 1 (verl's default is 3), "
       "or 0 to turn it off; got 0.5"},
      {"removed weight scheme",
       base("lens") + "rollout:\n  n: 4\nlens:\n  weight_scheme: crpo_sample\n",
       {},
       "x.yaml:11:18: lens.weight_scheme: expected one of crpo, crpo_literal, uniform, got "
       "\"crpo_sample\" (did you mean crpo?)"},
      {"no teacher",
       "student:\n  path: s\ndata:\n  train_file: t.jsonl\n",
       {},
       "x.yaml: teachers: algorithm gopd needs at least one teacher"},
      {"opd with lambda",
       base("opd") + "gopd:\n  lambda: 1.25\n",
       {},
       "x.yaml:9:11: gopd.lambda: algorithm opd is G-OPD with lambda = 1; use algorithm: gopd "
       "for lambda = 1.25"},
      {"duplicate key",
       base() + "optim:\n  lr: 1e-4\n  lr: 2e-4\n",
       {},
       "x.yaml:10:3: optim.lr: duplicate key"},
      {"teacher without path",
       "student: {path: s}\ndata: {train_file: t.jsonl}\nteachers:\n  math:\n    lambda: 1.5\n",
       {},
       "x.yaml:5:5: teachers.math.path: required: the teacher model directory (path) or a served "
       "teacher's address (url)"},
      {"teacher with path and url",
       "student: {path: s}\ndata: {train_file: t.jsonl}\nteachers:\n  math:\n    path: m\n"
       "    url: http://h:1\n",
       {},
       "x.yaml:5:5: teachers.math.path: give path (a model directory) or url (a served teacher), "
       "not both"},
      {"served teacher without a scheme",
       "student: {path: s}\ndata: {train_file: t.jsonl}\nteachers:\n  math: {url: h:8000}\n",
       {},
       "x.yaml:4:15: teachers.math.url: expected an http:// or https:// address, got \"h:8000\""},
      {"served teacher and full_vocab",
       "student: {path: s}\ndata: {train_file: t.jsonl}\nteachers:\n  math: http://h:1\n",
       {"gopd.objective=full_vocab"},
       "--set gopd.objective=full_vocab: gopd.objective: full_vocab needs every teacher's logits in this process; a served "
       "teacher or reference (url) gives log-probs: use sampled_token or top_k"},
      {"served teacher and a rollout temperature",
       "student: {path: s}\ndata: {train_file: t.jsonl}\nteachers:\n  math: {url: http://h:1}\n",
       {"rollout.temperature=0.7"},
       "--set rollout.temperature=0.7: rollout.temperature: served teachers and references (url) give log-probs at "
       "temperature 1 (the server's raw logits), so the rollout must sample at 1; got 0.7"},
      {"served reference for grpo",
       base("grpo") + "reference: {url: http://h:1}\n",
       {},
       "x.yaml:8:18: reference.url: a served reference scores distillation (opd, gopd) only; algorithm "
       "grpo needs reference.path"},
      {"served teacher on a device",
       "student: {path: s}\ndata: {train_file: t.jsonl}\nteachers:\n  math: {url: http://h:1, device: cpu}\n",
       {},
       "x.yaml:4:35: teachers.math.device: a served teacher (url) runs where its server runs"},
      {"bad teacher name",
       "student: {path: s}\ndata: {train_file: t.jsonl}\nteachers:\n  a/b: m\n",
       {},
       "x.yaml:4:3: teachers.a/b: a teacher name uses letters, digits, '_' and '-' only"},
      {"student path missing",
       "teachers: {math: m}\ndata: {train_file: t.jsonl}\n",
       {},
       "x.yaml: student.path: required: the student model directory (Hugging Face layout)"},
      {"top level not a mapping",
       "- a\n- b\n",
       {},
       "x.yaml:1:1: expected a mapping of sections at the top level, got a list"},
      {"invalid yaml",
       base() + "optim: [1, 2\n",
       {},
       "x.yaml:9:1: invalid YAML: end of sequence flow not found"},
      {"set wrong type",
       base(),
       {"optim.lr=fast"},
       "--set optim.lr=fast: optim.lr: expected a positive number, got \"fast\""},
      {"set unknown key",
       base(),
       {"rollout.temprature=0.7"},
       "--set rollout.temprature=0.7: rollout.temprature: unknown key; did you mean "
       "rollout.temperature?"},
      {"set without value",
       base(),
       {"optim.lr"},
       "--set optim.lr: expected key.path=value, e.g. --set optim.lr=3e-4"},
      {"set through a value",
       base() + "optim:\n  lr: 1e-4\n",
       {"optim.lr.x=1"},
       "--set optim.lr.x=1: optim.lr is a value, not a section"},
      {"set a section into a value",
       base(),
       {"optim.lr.x=1"},
       "--set optim.lr.x=1: optim.lr: expected a positive number, got a mapping"},
  };
  for (const BrokenCase& broken : cases) {
    SCOPED_TRACE(broken.name);
    EXPECT_EQ(load_error(broken.text, broken.overrides), broken.message);
  }
}

TEST(Config, MissingFileIsBadInput) {
  try {
    load_config("/nonexistent/job.yaml");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    EXPECT_STREQ(error.what(), "/nonexistent/job.yaml: cannot open config file");
  }
}

}  // namespace
}  // namespace gopd::core
