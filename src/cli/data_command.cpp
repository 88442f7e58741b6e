// `gopd data --task NAME --n N [--seed S] [--difficulty D] [--noise R] [--split S]
// [--exclude FILE]... --out FILE.jsonl`: writes a built-in synthetic dataset.
#include <spdlog/spdlog.h>

#include <unordered_set>

#include "cli/commands.h"
#include "gopd/data/jsonl.h"
#include "gopd/data/tasks.h"

namespace gopd::cli {

Command add_data_command(CLI::App& parent) {
  CLI::App* command = parent.add_subcommand("data", "generate a built-in synthetic task dataset");
  struct Options {
    data::TaskOptions task;
    std::vector<std::string> exclude;
    std::string out;
  };
  auto options = std::make_shared<Options>();
  options->task.seed = 0;
  std::string task_list;
  for (const std::string& name : data::task_names())
    task_list += (task_list.empty() ? "" : ", ") + name;
  command->add_option("--task", options->task.task, "task: " + task_list)->required();
  command->add_option("--n", options->task.count, "number of records")->required();
  command->add_option("--seed", options->task.seed, "random seed")->capture_default_str();
  command->add_option("--difficulty", options->task.difficulty, "1 (easiest) to 5")
      ->capture_default_str();
  command
      ->add_option("--noise", options->task.noise,
                   "fraction of prompt positions given a distractor token, in [0, 1)")
      ->capture_default_str();
  command
      ->add_option("--split", options->task.split,
                   "train or eval: disjoint parts of the problem space (all = both)")
      ->capture_default_str();
  command->add_option("--exclude", options->exclude,
                      "JSONL file(s) whose problems must not appear (repeatable)");
  command->add_option("--out", options->out, "output JSONL file")->required();

  return {command, [options] {
            std::unordered_set<std::string> exclude;
            for (const std::string& path : options->exclude) {
              for (const data::Record& record : data::read_dataset(path)) {
                const auto clean = record.extra.find("clean_prompt");
                exclude.insert(clean != record.extra.end() && clean->is_string()
                                   ? clean->get<std::string>()
                                   : record.prompt_text());
              }
            }
            const std::vector<data::Record> records = data::generate_task(options->task, exclude);
            std::vector<nlohmann::json> lines;
            lines.reserve(records.size());
            for (const data::Record& record : records) lines.push_back(data::to_json(record));
            data::write_jsonl(options->out, lines);
            spdlog::info("wrote {} {} records (difficulty {}, split {}, noise {}, seed {}) to {}",
                         records.size(), options->task.task, options->task.difficulty,
                         options->task.split, options->task.noise, options->task.seed,
                         options->out);
          }};
}

}  // namespace gopd::cli
