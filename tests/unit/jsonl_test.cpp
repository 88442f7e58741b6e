// JSONL reading/writing, dataset-record validation and UTF-8 checks: exact messages with
// file:line, exit code 2, blank lines skipped, atomic writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/core/utf8.h"
#include "gopd/data/jsonl.h"

namespace gopd::data {
namespace {

class JsonlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ =
        std::filesystem::temp_directory_path() /
        ("gopd_jsonl_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(directory_);
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (directory_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::string dataset_error(const std::string& content) {
    const std::string path = write("d.jsonl", content);
    try {
      read_dataset(path);
    } catch (const core::Error& error) {
      EXPECT_EQ(error.exit_code(), 2);
      const std::string message = error.what();
      // Strip the directory so expectations read "d.jsonl:...".
      return message.substr(message.find("d.jsonl"));
    }
    ADD_FAILURE() << "no error for " << content;
    return "";
  }

  std::filesystem::path directory_;
};

TEST_F(JsonlTest, ReadsRecordsAndSkipsBlankLines) {
  const std::string path = write(
      "d.jsonl",
      "{\"prompt\": \"1+1?\", \"answer\": 2, \"id\": \"a\"}\n\n   \n"
      "{\"prompt\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
      "\"content\": \"yo\"}], \"answer\": \"x\", \"teacher\": \"math\", \"difficulty\": 3}\n");
  const std::vector<Record> records = read_dataset(path);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].answer, "2");
  EXPECT_EQ(records[0].id, "a");
  EXPECT_EQ(records[0].line, 1);
  EXPECT_EQ(records[0].prompt_text(), "1+1?");
  EXPECT_EQ(records[1].line, 4);
  EXPECT_EQ(records[1].teacher, "math");
  EXPECT_EQ(records[1].prompt_text(), "hi\nyo");
  EXPECT_EQ(records[1].extra.at("difficulty"), 3);
  EXPECT_EQ(to_json(records[1]).at("difficulty"), 3);
  EXPECT_EQ(to_json(records[0]).dump(), "{\"answer\":\"2\",\"id\":\"a\",\"prompt\":\"1+1?\"}");
}

TEST_F(JsonlTest, BadLinesNameFileAndLine) {
  EXPECT_EQ(dataset_error("{\"prompt\": \"a\"}\n{\"prompt\": \"b\",}\n"),
            "d.jsonl:2: malformed JSON at column 16: expected one JSON object per line");
  EXPECT_EQ(dataset_error("[1, 2]\n"), "d.jsonl:1: expected a JSON object, got an array");
  EXPECT_EQ(dataset_error("{\"answer\": \"1\"}\n"), "d.jsonl:1: missing field \"prompt\"");
  EXPECT_EQ(dataset_error("{\"prompt\": \"\"}\n"), "d.jsonl:1: field \"prompt\" is empty");
  EXPECT_EQ(dataset_error("{\"prompt\": 5}\n"),
            "d.jsonl:1: field \"prompt\": expected a string or an array of chat messages, got a "
            "number");
  EXPECT_EQ(dataset_error("{\"prompt\": [{\"role\": \"user\"}]}\n"),
            "d.jsonl:1: prompt[0]: expected a string field \"content\"");
  EXPECT_EQ(dataset_error("{\"prompt\": \"a\", \"teacher\": 3}\n"),
            "d.jsonl:1: field \"teacher\": expected a string, got a number");
  EXPECT_EQ(dataset_error("{\"prompt\": \"a\", \"tests\": \"x\"}\n"),
            "d.jsonl:1: field \"tests\": expected an object or an array, got a string");
  EXPECT_EQ(dataset_error("\n\n"), "d.jsonl: dataset has no records");
  // A number beyond a double's range (nlohmann throws out_of_range, not parse_error; found by
  // fuzzing).
  EXPECT_EQ(dataset_error("{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"answer\": 1e999}\n").substr(0, 28),
            "d.jsonl:2: malformed JSON: [");
  EXPECT_EQ(dataset_error("{\"prompt\": \"a\"}\n{\"prompt\": \"caf\xC3\"}\n"),
            "d.jsonl:2: invalid UTF-8 at byte 16 of the line");
}

TEST_F(JsonlTest, MissingFileIsBadInput) {
  try {
    read_jsonl((directory_ / "absent.jsonl").string());
    FAIL();
  } catch (const core::Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    EXPECT_NE(std::string(error.what()).find("absent.jsonl: cannot open file"), std::string::npos);
  }
}

TEST_F(JsonlTest, WriteIsAtomic) {
  const std::string path = (directory_ / "out" / "o.jsonl").string();
  write_jsonl(path, {nlohmann::json{{"a", 1}}, nlohmann::json{{"b", "x"}}});
  std::ifstream input(path);
  std::string first, second, third;
  std::getline(input, first);
  std::getline(input, second);
  EXPECT_EQ(first, "{\"a\":1}");
  EXPECT_EQ(second, "{\"b\":\"x\"}");
  EXPECT_FALSE(std::getline(input, third));
  // An abandoned writer leaves neither the target nor its temporary.
  const std::string abandoned = (directory_ / "abandoned.jsonl").string();
  {
    core::AtomicFileWriter writer(abandoned);
    writer.stream() << "partial";
  }
  EXPECT_FALSE(std::filesystem::exists(abandoned));
  int64_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(directory_)) {
    files += entry.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(files, 0);
}

TEST(Utf8, FindsFirstInvalidByte) {
  EXPECT_FALSE(core::find_invalid_utf8("plain ascii").has_value());
  EXPECT_FALSE(core::find_invalid_utf8("π ≈ 3.14 — 😀").has_value());
  EXPECT_EQ(core::find_invalid_utf8("ab\xFF"), 2);
  EXPECT_EQ(core::find_invalid_utf8("\xC0\xAF"), 0);          // overlong '/'
  EXPECT_EQ(core::find_invalid_utf8("x\xED\xA0\x80"), 1);     // surrogate U+D800
  EXPECT_EQ(core::find_invalid_utf8("\xF4\x90\x80\x80"), 0);  // above U+10FFFF
  EXPECT_EQ(core::find_invalid_utf8("ok\xE2\x82"), 2);        // truncated
}

}  // namespace
}  // namespace gopd::data
