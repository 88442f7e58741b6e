// `gopd serve --model DIR [--host 127.0.0.1] [--port 8000] [--device …] [--max-batch-tokens N]`:
// the model behind the OpenAI/vLLM completions API (see gopd/serve/server.h).
#include "cli/commands.h"
#include "gopd/serve/server.h"

namespace gopd::cli {

Command add_serve_command(CLI::App& parent) {
  CLI::App* command = parent.add_subcommand(
      "serve", "serve a model over the OpenAI/vLLM completions API (teachers for distillation)");
  auto options = std::make_shared<serve::ServeOptions>();
  command->add_option("--model", options->model, "model directory")->required();
  command->add_option("--served-model-name", options->served_name,
                      "the name clients give as \"model\" (default: the directory's name)");
  command->add_option("--host", options->host,
                      "address to listen on (loopback by default; anything else exposes the "
                      "model without authentication)")
      ->capture_default_str();
  command->add_option("--port", options->port, "TCP port (0 = any free port)")
      ->capture_default_str();
  command->add_option("--device", options->device, "cpu, cuda or cuda:N")->capture_default_str();
  command->add_option("--dtype", options->dtype, "auto, float32 or bfloat16")
      ->check(CLI::IsMember({"auto", "float32", "bfloat16"}))
      ->capture_default_str();
  command->add_option("--max-batch-tokens", options->max_batch_tokens,
                      "prompt + new tokens of all rows of one engine batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--max-queue", options->max_queue,
                      "requests queued or running at once; more are answered 503")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--max-logprobs", options->max_logprobs,
                      "largest logprobs / prompt_logprobs a request may ask for (vLLM's flag)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return {command, [options] { serve::serve(*options); }};
}

}  // namespace gopd::cli
