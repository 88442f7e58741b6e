// safetensors reader/writer and checkpoint directories, without LibTorch: bit-exact round
// trips, header layout (padding, metadata first, aligned data), sharding + index, one message
// for name mismatches, exact messages (file + tensor, exit 2) for every kind of corruption,
// and a fixed-seed fuzz test of parse_safetensors over 100,000 mutated files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "gopd/core/error.h"
#include "gopd/model/safetensors.h"

namespace gopd::model {
namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream input(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(input), {});
}

uint64_t header_length(const std::vector<uint8_t>& bytes) {
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  return length;
}

// A file from raw header text and a data section of `data_size` bytes (0, 1, 2, ...).
std::vector<uint8_t> make_file(const std::string& header, int64_t data_size) {
  std::vector<uint8_t> bytes(8 + header.size() + static_cast<size_t>(data_size));
  const uint64_t length = header.size();
  std::memcpy(bytes.data(), &length, 8);
  std::copy(header.begin(), header.end(), bytes.begin() + 8);
  for (int64_t i = 0; i < data_size; ++i) {
    bytes[8 + header.size() + static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  }
  return bytes;
}

// memcmp is undefined for a null pointer even at length 0 (zero-size tensors have no data).
bool same_bytes(const uint8_t* actual, const std::vector<uint8_t>& expected) {
  return expected.empty() || std::memcmp(actual, expected.data(), expected.size()) == 0;
}

// Bytes of a value, for building TensorViews of known content.
template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T));
  if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 ("gopd_safetensors_" + std::to_string(::getpid()) + "_" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(directory_);
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  std::string path(const std::string& name) const { return (directory_ / name).string(); }

  void write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    std::ofstream(path(name), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }

  // The message (directory stripped) of opening `bytes` as a file; fails if it opens.
  std::string open_error(const std::vector<uint8_t>& bytes) const {
    write("t.safetensors", bytes);
    try {
      SafetensorsFile file(path("t.safetensors"));
    } catch (const core::Error& error) {
      EXPECT_EQ(error.exit_code(), 2);
      return strip(error.what());
    }
    ADD_FAILURE() << "no error";
    return "";
  }

  std::string checkpoint_error() const {
    try {
      CheckpointFiles files(directory_.string());
    } catch (const core::Error& error) {
      EXPECT_EQ(error.exit_code(), 2);
      return strip(error.what());
    }
    ADD_FAILURE() << "no error";
    return "";
  }

  std::string strip(const std::string& message) const {
    const std::string prefix = directory_.string() + "/";
    std::string result = message;
    for (size_t found; (found = result.find(prefix)) != std::string::npos;) {
      result.erase(found, prefix.size());
    }
    return result;
  }

  std::filesystem::path directory_;
};

// Tensors of every size class with awkward shapes, in an order that is not the file order.
struct Sample {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<TensorView> views;
};

Sample make_sample() {
  Sample sample;
  const auto add = [&](const std::string& name, DType dtype, std::vector<int64_t> shape,
                       std::vector<uint8_t> bytes) {
    sample.bytes.push_back(std::move(bytes));
    sample.views.push_back({name, dtype, std::move(shape), nullptr});
  };
  // NaN payload, -0 and a denormal: a bit-exact copy keeps them all.
  uint32_t nan_payload = 0x7fc01234u;
  float nan_value;
  std::memcpy(&nan_value, &nan_payload, 4);
  add("model.norm.weight", DType::kF32, {3},
      as_bytes(std::vector<float>{nan_value, -0.0f, 1e-42f}));
  add("b.bf16", DType::kBF16, {1, 3}, as_bytes(std::vector<uint16_t>{0x3f80, 0xbf80, 0x7f81}));
  add("a.f16", DType::kF16, {5}, as_bytes(std::vector<uint16_t>{1, 2, 3, 0x7c00, 0xfc01}));
  add("step", DType::kI64, {}, as_bytes(std::vector<int64_t>{-7}));
  add("mask", DType::kBool, {2, 1}, {1, 0});
  add("empty", DType::kF32, {0, 4}, {});
  add("lm_head.weight", DType::kF32, {2, 3}, as_bytes(std::vector<float>{1, 2, 3, 4, 5, 6}));
  for (size_t i = 0; i < sample.views.size(); ++i) {
    sample.views[i].data = sample.bytes[i].empty() ? nullptr : sample.bytes[i].data();
  }
  return sample;
}

TEST(SafetensorsDTypeTest, NamesAndSizes) {
  EXPECT_EQ(dtype_name(DType::kBF16), "BF16");
  EXPECT_EQ(dtype_name(DType::kF8E4M3), "F8_E4M3");
  EXPECT_EQ(dtype_size(DType::kF64), 8);
  EXPECT_EQ(dtype_size(DType::kF16), 2);
  EXPECT_EQ(dtype_size(DType::kBool), 1);
  DType dtype = DType::kF32;
  EXPECT_TRUE(parse_dtype("I16", &dtype));
  EXPECT_EQ(dtype, DType::kI16);
  EXPECT_FALSE(parse_dtype("f32", &dtype));
}

TEST_F(SafetensorsTest, RoundTripIsBitExact) {
  const Sample sample = make_sample();
  write_safetensors(path("m.safetensors"), sample.views);
  const SafetensorsFile file(path("m.safetensors"));
  EXPECT_EQ(file.header().metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(file.header().tensors.size(), sample.views.size());
  for (size_t i = 0; i < sample.views.size(); ++i) {
    const TensorView& view = sample.views[i];
    const TensorInfo* info = file.find(view.name);
    ASSERT_NE(info, nullptr) << view.name;
    EXPECT_EQ(info->dtype, view.dtype) << view.name;
    EXPECT_EQ(info->shape, view.shape) << view.name;
    ASSERT_EQ(info->byte_size(), static_cast<int64_t>(sample.bytes[i].size())) << view.name;
    EXPECT_TRUE(same_bytes(file.data(*info), sample.bytes[i])) << view.name;
  }
  EXPECT_EQ(file.find("missing"), nullptr);
  EXPECT_EQ(file.find("step")->element_count(), 1);
}

TEST_F(SafetensorsTest, LayoutIsPaddedOrderedAndAligned) {
  const Sample sample = make_sample();
  write_safetensors(path("m.safetensors"), sample.views);
  const std::vector<uint8_t> bytes = read_bytes(path("m.safetensors"));
  const uint64_t length = header_length(bytes);
  EXPECT_EQ(length % 8, 0u);
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<int64_t>(length));
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\"},", 0), 0u) << header;
  // Padding is spaces only, after the closing brace.
  const size_t close = header.find_last_of('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);

  // Element size descending, then name; every tensor aligned to its element size.
  const SafetensorsFile file(path("m.safetensors"));
  std::vector<std::string> order;
  for (const TensorInfo& info : file.header().tensors) {
    order.push_back(info.name);
    EXPECT_EQ((file.header().data_offset + info.begin) % dtype_size(info.dtype), 0) << info.name;
  }
  EXPECT_EQ(order, (std::vector<std::string>{"step", "empty", "lm_head.weight", "model.norm.weight",
                                             "a.f16", "b.bf16", "mask"}));
}

TEST_F(SafetensorsTest, PaddingIsMultipleOf8ForEveryNameLength) {
  const std::vector<uint8_t> value = {1, 2, 3, 4};
  int64_t padded = 0;
  for (int64_t length = 1; length <= 16; ++length) {
    const std::vector<TensorView> views = {
        {std::string(static_cast<size_t>(length), 'x'), DType::kF32, {1}, value.data()}};
    write_safetensors(path("p.safetensors"), views);
    const std::vector<uint8_t> bytes = read_bytes(path("p.safetensors"));
    EXPECT_EQ(header_length(bytes) % 8, 0u) << length;
    if (bytes[8 + header_length(bytes) - 1] == ' ') ++padded;
    EXPECT_EQ(SafetensorsFile(path("p.safetensors")).header().tensors.size(), 1u);
  }
  EXPECT_GE(padded, 14);  // 7 of every 8 lengths need padding
}

TEST_F(SafetensorsTest, CallerMetadataKeepsFormat) {
  write_safetensors(path("m.safetensors"), {}, {{"step", "7"}});
  const SafetensorsFile file(path("m.safetensors"));
  EXPECT_EQ(file.header().metadata,
            (std::map<std::string, std::string>{{"format", "pt"}, {"step", "7"}}));
  EXPECT_TRUE(file.header().tensors.empty());
}

TEST_F(SafetensorsTest, WriterRejectsMalformedRequests) {
  const std::vector<uint8_t> value = {1, 2, 3, 4};
  const auto error = [&](const std::vector<TensorView>& views) {
    try {
      write_safetensors(path("w.safetensors"), views);
    } catch (const core::Error& error) {
      EXPECT_EQ(error.exit_code(), 2);
      EXPECT_FALSE(std::filesystem::exists(path("w.safetensors")));
      return strip(error.what());
    }
    ADD_FAILURE() << "no error";
    return std::string();
  };
  EXPECT_EQ(error({{"a", DType::kF32, {1}, value.data()}, {"a", DType::kF32, {1}, value.data()}}),
            "w.safetensors: tensor \"a\": listed twice");
  EXPECT_EQ(
      error({{"__metadata__", DType::kF32, {1}, value.data()}}),
      "w.safetensors: tensor \"__metadata__\": the name is reserved for the header's metadata");
  EXPECT_EQ(error({{"n", DType::kF32, {2, -1}, value.data()}}),
            "w.safetensors: tensor \"n\": shape [2, -1] has a negative dimension or exceeds 2^63 "
            "bytes");
  EXPECT_EQ(error({{"z", DType::kF32, {1}, nullptr}}),
            "w.safetensors: tensor \"z\": no data for 4 bytes");
  EXPECT_EQ(error({{"bad\xff", DType::kF32, {1}, value.data()}}),
            "w.safetensors: tensor \"bad\xef\xbf\xbd\": the name is not valid UTF-8");
}

TEST_F(SafetensorsTest, SingleFileCheckpoint) {
  const Sample sample = make_sample();
  write_checkpoint(directory_.string(), sample.views);
  EXPECT_TRUE(std::filesystem::exists(path("model.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(path("model.safetensors.index.json")));
  const CheckpointFiles files(directory_.string());
  EXPECT_EQ(files.names(), (std::vector<std::string>{"a.f16", "b.bf16", "empty", "lm_head.weight",
                                                     "mask", "model.norm.weight", "step"}));
  for (size_t i = 0; i < sample.views.size(); ++i) {
    const std::string& name = sample.views[i].name;
    EXPECT_EQ(files.info(name).shape, sample.views[i].shape);
    EXPECT_TRUE(same_bytes(files.data(name), sample.bytes[i])) << name;
    EXPECT_EQ(files.file_path(name), path("model.safetensors"));
  }
  files.check_names(files.names());  // no throw
  try {
    files.info("nope");
    FAIL() << "no error";
  } catch (const core::Error& error) {
    EXPECT_EQ(strip(error.what()), directory_.string() + ": the checkpoint has no tensor \"nope\"");
  }
}

TEST_F(SafetensorsTest, ShardsAboveThresholdAndReadsBack) {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<TensorView> views;
  // 40, 40 | 40 | 100 (over the limit: alone) | 8  with max_shard_bytes = 100.
  const std::vector<std::pair<std::string, int64_t>> specs = {
      {"layers.0.w", 10}, {"layers.0.b", 10}, {"layers.1.w", 10}, {"embed", 25}, {"norm", 2}};
  for (size_t i = 0; i < specs.size(); ++i) {
    std::vector<float> values(static_cast<size_t>(specs[i].second));
    for (size_t k = 0; k < values.size(); ++k) values[k] = static_cast<float>(i * 100 + k);
    bytes.push_back(as_bytes(values));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    views.push_back({specs[i].first, DType::kF32, {specs[i].second}, bytes[i].data()});
  }
  write_checkpoint(directory_.string(), views, 100);

  EXPECT_FALSE(std::filesystem::exists(path("model.safetensors")));
  std::ifstream index_stream(path("model.safetensors.index.json"));
  const nlohmann::json index = nlohmann::json::parse(index_stream);
  const std::string s1 = "model-00001-of-00004.safetensors";
  const std::string s2 = "model-00002-of-00004.safetensors";
  const std::string s3 = "model-00003-of-00004.safetensors";
  const std::string s4 = "model-00004-of-00004.safetensors";
  EXPECT_EQ(index, nlohmann::json({{"metadata", {{"total_size", 228}}},
                                   {"weight_map",
                                    {{"layers.0.w", s1},
                                     {"layers.0.b", s1},
                                     {"layers.1.w", s2},
                                     {"embed", s3},
                                     {"norm", s4}}}}));
  for (const std::string& shard : {s1, s2, s3, s4}) {
    EXPECT_EQ(SafetensorsFile(path(shard)).header().metadata.at("format"), "pt");
  }

  const CheckpointFiles files(directory_.string());
  EXPECT_EQ(files.names().size(), 5u);
  for (size_t i = 0; i < views.size(); ++i) {
    EXPECT_TRUE(same_bytes(files.data(views[i].name), bytes[i])) << views[i].name;
  }
  EXPECT_EQ(files.file_path("embed"), path(s3));

  // Rewriting as one file removes the index and the shards; rewriting sharded again with a
  // different count removes model.safetensors.
  write_checkpoint(directory_.string(), views);
  EXPECT_FALSE(std::filesystem::exists(path("model.safetensors.index.json")));
  EXPECT_FALSE(std::filesystem::exists(path(s1)));
  EXPECT_EQ(CheckpointFiles(directory_.string()).names().size(), 5u);
  write_checkpoint(directory_.string(), views, 120);  // 40 40 40 | 100 8
  EXPECT_FALSE(std::filesystem::exists(path("model.safetensors")));
  EXPECT_TRUE(std::filesystem::exists(path("model-00002-of-00002.safetensors")));
  EXPECT_EQ(CheckpointFiles(directory_.string()).names().size(), 5u);
  int64_t file_count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(directory_)) {
    (void)entry;
    ++file_count;
  }
  EXPECT_EQ(file_count, 3);  // two shards + index
}

TEST_F(SafetensorsTest, OneTensorOverTheLimitIsASingleFile) {
  const std::vector<float> values(10, 1.0f);
  write_checkpoint(directory_.string(), {{"w", DType::kF32, {10}, values.data()}}, 8);
  EXPECT_TRUE(std::filesystem::exists(path("model.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(path("model.safetensors.index.json")));
}

TEST_F(SafetensorsTest, CheckNamesListsMissingAndUnexpectedInOneMessage) {
  const std::vector<uint8_t> value = {1, 2, 3, 4};
  write_checkpoint(directory_.string(), {{"a", DType::kF32, {1}, value.data()},
                                         {"b", DType::kF32, {1}, value.data()},
                                         {"c", DType::kF32, {1}, value.data()}});
  const CheckpointFiles files(directory_.string());
  files.check_names({"c", "b", "a"});
  try {
    files.check_names({"b", "c", "e", "d"});
    FAIL() << "no error";
  } catch (const core::Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    EXPECT_EQ(std::string(error.what()),
              directory_.string() +
                  ": checkpoint tensors do not match the model: missing 2: \"d\", \"e\"; "
                  "unexpected 1: \"a\"");
  }
  try {
    files.check_names({"a", "b"});
    FAIL() << "no error";
  } catch (const core::Error& error) {
    EXPECT_EQ(
        std::string(error.what()),
        directory_.string() + ": checkpoint tensors do not match the model: unexpected 1: \"c\"");
  }
}

TEST_F(SafetensorsTest, TruncatedFiles) {
  const std::vector<float> values(6, 2.0f);
  write_safetensors(path("v.safetensors"), {{"a", DType::kF32, {4}, values.data()},
                                            {"b", DType::kF32, {2}, values.data()}});
  const std::vector<uint8_t> bytes = read_bytes(path("v.safetensors"));
  const int64_t length = static_cast<int64_t>(header_length(bytes));

  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 4);
  EXPECT_EQ(
      open_error(cut),
      "t.safetensors: tensor \"b\": data_offsets [16, 24] exceed the data section of 20 bytes "
      "(truncated file?)");
  cut.assign(bytes.begin(), bytes.begin() + 5);
  EXPECT_EQ(open_error(cut),
            "t.safetensors: file is 5 bytes, too short for the 8-byte header length (truncated "
            "file?)");
  EXPECT_EQ(open_error({}),
            "t.safetensors: file is 0 bytes, too short for the 8-byte header length (truncated "
            "file?)");
  cut.assign(bytes.begin(), bytes.begin() + 8 + length / 2);
  EXPECT_EQ(open_error(cut), "t.safetensors: header length " + std::to_string(length) +
                                 " exceeds the " + std::to_string(length / 2) +
                                 " bytes after it (truncated file?)");
}

TEST_F(SafetensorsTest, HeaderLengthBeyondLimit) {
  std::vector<uint8_t> bytes = make_file("{}", 0);
  const uint64_t huge = ~uint64_t{0};
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_EQ(open_error(bytes),
            "t.safetensors: header length 18446744073709551615 exceeds the limit of 100000000 "
            "bytes (corrupt file?)");
}

TEST_F(SafetensorsTest, CorruptHeadersNameFileAndTensor) {
  struct Case {
    std::string header;
    int64_t data_size;
    std::string message;  // after "t.safetensors: "
  };
  const std::string f32x2 = R"({"dtype": "F32", "shape": [2], "data_offsets": )";
  const std::vector<Case> cases = {
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4])", 4,
       "header is not valid JSON (error at byte 60 of the header)"},
      {"{\"a\x01\": 1}", 0, "header is not valid JSON (error at byte 4 of the header)"},
      {R"({"a": 1e999})", 0, "header is not valid JSON (a number is out of range)"},
      {"[1, 2]", 0, "header must be a JSON object, got an array"},
      {std::string(20, '[') + std::string(20, ']'), 0,
       "header is nested more than 16 levels deep (corrupt file?)"},
      {R"({"a": 3})", 0,
       "tensor \"a\": expected an object with \"dtype\", \"shape\" and \"data_offsets\", got a "
       "number"},
      {R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4, "tensor \"w\": missing \"dtype\""},
      {R"({"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4,
       "tensor \"w\": \"dtype\" must be a string, got a number"},
      {R"({"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}})", 4,
       "tensor \"w\": unknown dtype \"F33\""},
      {R"({"w": {"dtype": "F32", "shape": 4, "data_offsets": [0, 4]}})", 4,
       "tensor \"w\": \"shape\" must be an array of non-negative integers, got a number"},
      {R"({"w": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 4]}})", 4,
       "tensor \"w\": shape dimension 1 is -3, expected a non-negative integer"},
      {R"({"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}})", 8,
       "tensor \"w\": shape dimension 0 is 2.0, expected a non-negative integer"},
      {R"({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})", 8,
       "tensor \"w\": shape dimension 0 is a string, expected a non-negative integer"},
      {R"({"w": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8,
       "tensor \"w\": shape [4294967296, 4294967296] x F64 exceeds 2^63 bytes"},
      {R"({"w": {"dtype": "F32", "shape": [2]}})", 8, "tensor \"w\": missing \"data_offsets\""},
      {"{\"w\": " + f32x2 + "[0, 8, 16]}}", 8,
       "tensor \"w\": \"data_offsets\" must be [begin, end] of non-negative integers, got [0, 8, "
       "16]"},
      {"{\"w\": " + f32x2 + "[-8, 0]}}", 8,
       "tensor \"w\": \"data_offsets\" must be [begin, end] of non-negative integers, got [-8, 0]"},
      {"{\"w\": " + f32x2 + "{}}}", 8,
       "tensor \"w\": \"data_offsets\" must be [begin, end] of non-negative integers, got an "
       "object"},
      {"{\"w\": " + f32x2 + "[8, 0]}}", 8,
       "tensor \"w\": data_offsets [8, 0] end before they begin"},
      {R"({"model.norm.weight": {"dtype": "F32", "shape": [64], "data_offsets": [0, 100]}})", 100,
       "tensor \"model.norm.weight\": data_offsets [0, 100] do not match shape [64] x F32 (256 "
       "bytes)"},
      {R"({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 16]}})", 16,
       "tensor \"w\": data_offsets [0, 16] do not match shape [2, 2] x BF16 (8 bytes)"},
      {"{\"w\": " + f32x2 + "[0, 8]}}", 4,
       "tensor \"w\": data_offsets [0, 8] exceed the data section of 4 bytes (truncated file?)"},
      {"{\"a\": " + f32x2 + "[0, 8]}, \"b\": " + f32x2 + "[4, 12]}}", 12,
       "tensor \"b\": data_offsets [4, 12] overlap tensor \"a\" [0, 8]"},
      {"{\"a\": " + f32x2 + "[0, 8]}, \"b\": " + f32x2 + "[0, 8]}}", 8,
       "tensor \"b\": data_offsets [0, 8] overlap tensor \"a\" [0, 8]"},
      {"{\"a\": " + f32x2 + "[0, 8]}, \"b\": " + f32x2 + "[12, 20]}}", 20,
       "tensor \"b\": data_offsets [12, 20] leave a gap of 4 bytes after tensor \"a\" [0, 8]"},
      {"{\"a\": " + f32x2 + "[4, 12]}}", 12,
       "tensor \"a\": data_offsets [4, 12] leave 4 unused bytes at the start of the data section"},
      {"{\"a\": " + f32x2 + "[0, 8]}}", 10,
       "the data section is 10 bytes but its tensors end at byte 8 (trailing bytes: corrupt "
       "file?)"},
      {"{\"a\": " + f32x2 + "[0, 8]}, \"a\": " + f32x2 + "[0, 8]}}", 8,
       "tensor \"a\" appears twice in the header"},
      {R"({"__metadata__": [], "w": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]}})", 1,
       "\"__metadata__\" must be an object of strings, got an array"},
      {R"({"__metadata__": {"format": "pt", "step": 7}})", 0,
       "\"__metadata__\" entry \"step\" must be a string, got a number"},
      {R"({"__metadata__": {}, "__metadata__": {}})", 0,
       "\"__metadata__\" appears twice in the header"},
      {"{\"we\\\"ird\\n\": 0}", 0,
       "tensor \"we\\\"ird\\n\": expected an object with \"dtype\", \"shape\" and "
       "\"data_offsets\", "
       "got a number"},
  };
  for (const Case& test : cases) {
    EXPECT_EQ(open_error(make_file(test.header, test.data_size)), "t.safetensors: " + test.message)
        << test.header;
  }
}

TEST_F(SafetensorsTest, AcceptsWhatTheFormatAllows) {
  // Leading/trailing whitespace, null metadata, extra keys, zero-size tensors sharing an
  // offset, other dtypes, no tensors at all.
  const std::vector<uint8_t> bytes = make_file(
      R"(  {"__metadata__": null, "e1": {"dtype": "I8", "shape": [0], "data_offsets": [0, 0]},)"
      R"( "e2": {"dtype": "F32", "shape": [3, 0], "data_offsets": [0, 0], "extra": true},)"
      R"( "x": {"dtype": "U16", "shape": [2], "data_offsets": [0, 4]}}   )",
      4);
  const SafetensorsHeader header =
      parse_safetensors(bytes.data(), static_cast<int64_t>(bytes.size()), "ok.safetensors");
  ASSERT_EQ(header.tensors.size(), 3u);
  EXPECT_EQ(header.tensors[2].name, "x");
  EXPECT_EQ(header.tensors[2].dtype, DType::kU16);
  EXPECT_TRUE(header.metadata.empty());
  const std::vector<uint8_t> empty = make_file("{}", 0);
  EXPECT_TRUE(parse_safetensors(empty.data(), 10, "e").tensors.empty());
}

TEST_F(SafetensorsTest, IndexAndShardsMustAgree) {
  const std::vector<float> values(4, 1.0f);
  const std::vector<TensorView> views = {{"a", DType::kF32, {4}, values.data()},
                                         {"b", DType::kF32, {4}, values.data()},
                                         {"c", DType::kF32, {4}, values.data()}};
  const std::string s1 = "model-00001-of-00002.safetensors";
  const std::string s2 = "model-00002-of-00002.safetensors";
  const auto rewrite_index = [&](const nlohmann::json& weight_map) {
    std::ofstream(path("model.safetensors.index.json"))
        << nlohmann::json({{"metadata", {{"total_size", 48}}}, {"weight_map", weight_map}}).dump();
  };

  write_checkpoint(directory_.string(), views, 32);
  ASSERT_TRUE(std::filesystem::exists(path(s2)));
  EXPECT_EQ(CheckpointFiles(directory_.string()).names().size(), 3u);

  rewrite_index({{"a", s1}, {"b", s1}, {"c", s2}, {"zz", s1}});
  EXPECT_EQ(checkpoint_error(), s1 + ": tensor \"zz\" is not in this file, but "
                                     "model.safetensors.index.json maps it here");
  rewrite_index({{"a", s1}, {"c", s2}});
  EXPECT_EQ(checkpoint_error(),
            s1 + ": tensor \"b\" is not in the weight_map of model.safetensors.index.json");
  rewrite_index({{"a", s1}, {"b", s1}, {"c", s1}});
  EXPECT_EQ(checkpoint_error(), s1 + ": tensor \"c\" is not in this file, but "
                                     "model.safetensors.index.json maps it here");
  rewrite_index({{"a", s1}, {"b", "../x.safetensors"}, {"c", s2}});
  EXPECT_EQ(checkpoint_error(),
            "model.safetensors.index.json: tensor \"b\" is mapped to \"../x.safetensors\", "
            "expected a file name in the same directory");
  rewrite_index({{"a", s1}, {"b", s1}, {"c", s2}});
  EXPECT_EQ(CheckpointFiles(directory_.string()).names().size(), 3u);

  std::filesystem::remove(path(s2));
  EXPECT_EQ(checkpoint_error(), "model.safetensors.index.json: tensor \"c\" is mapped to " + s2 +
                                    ", which does not exist");

  std::ofstream(path("model.safetensors.index.json")) << "{\"weight_map\": [";
  EXPECT_EQ(checkpoint_error(), "model.safetensors.index.json: not valid JSON (error at byte 17)");
  std::ofstream(path("model.safetensors.index.json")) << "{\"metadata\": {}}";
  EXPECT_EQ(
      checkpoint_error(),
      "model.safetensors.index.json: expected \"weight_map\": {tensor name: shard file name}");

  // A corrupt shard is reported by its own name.
  write_checkpoint(directory_.string(), views, 32);
  std::filesystem::resize_file(path(s2), std::filesystem::file_size(path(s2)) - 1);
  EXPECT_EQ(checkpoint_error(),
            s2 + ": tensor \"c\": data_offsets [0, 16] exceed the data section of 15 bytes "
                 "(truncated file?)");

  std::filesystem::remove_all(directory_);
  std::filesystem::create_directories(directory_);
  EXPECT_EQ(checkpoint_error(),
            directory_.string() +
                ": no model.safetensors or model.safetensors.index.json (expected a Hugging Face "
                "model directory with safetensors weights)");
}

// ---- fuzz ----

// Mutates a safetensors file the ways corruption and hostile files do: bit flips anywhere,
// truncation, insertion, a wrong header length, and edits of the header text (numbers,
// strings, deletions, swaps) with the header length kept consistent so that they reach the
// semantic checks rather than stopping at the length check.
class Mutator {
 public:
  explicit Mutator(uint64_t seed) : random_(seed) {}

  void mutate(std::vector<uint8_t>* bytes) {
    switch (pick(10)) {
      case 0:  // flip bits in a few bytes
        for (int64_t n = 1 + pick(4); n > 0 && !bytes->empty(); --n) {
          (*bytes)[static_cast<size_t>(pick(static_cast<int64_t>(bytes->size())))] ^=
              static_cast<uint8_t>(1 + pick(255));
        }
        break;
      case 1:  // truncate
        bytes->resize(static_cast<size_t>(pick(static_cast<int64_t>(bytes->size()) + 1)));
        break;
      case 2: {  // insert random bytes
        const int64_t at = pick(static_cast<int64_t>(bytes->size()) + 1);
        std::vector<uint8_t> inserted(static_cast<size_t>(1 + pick(8)));
        for (uint8_t& byte : inserted) byte = static_cast<uint8_t>(pick(256));
        bytes->insert(bytes->begin() + at, inserted.begin(), inserted.end());
        break;
      }
      case 3: {  // header length: off by a little, random, or huge
        if (bytes->size() < 8) break;
        uint64_t length = header_length(*bytes);
        const int64_t kind = pick(3);
        if (kind == 0) length += static_cast<uint64_t>(pick(33) - 16);
        if (kind == 1)
          length = static_cast<uint64_t>(pick(static_cast<int64_t>(bytes->size()) + 8));
        if (kind == 2) length = random_();
        std::memcpy(bytes->data(), &length, 8);
        break;
      }
      case 4:  // grow or shrink the data section only
        if (pick(2) == 0) {
          bytes->resize(bytes->size() + static_cast<size_t>(1 + pick(16)), 0x55);
        } else if (!bytes->empty()) {
          bytes->resize(bytes->size() - static_cast<size_t>(std::min<int64_t>(
                                            static_cast<int64_t>(bytes->size()), 1 + pick(16))));
        }
        break;
      case 5: {  // flip bits in the data section only: the file must still parse
        if (bytes->size() < 8 || header_length(*bytes) >= bytes->size() - 8) break;
        const int64_t start = 8 + static_cast<int64_t>(header_length(*bytes));
        (*bytes)[static_cast<size_t>(start + pick(static_cast<int64_t>(bytes->size()) - start))] ^=
            static_cast<uint8_t>(1 + pick(255));
        break;
      }
      default:
        edit_header(bytes);
    }
  }

 private:
  int64_t pick(int64_t bound) {
    return static_cast<int64_t>(random_() % static_cast<uint64_t>(bound));
  }

  void edit_header(std::vector<uint8_t>* bytes) {
    if (bytes->size() < 8 || header_length(*bytes) > bytes->size() - 8) return;
    const size_t length = static_cast<size_t>(header_length(*bytes));
    std::string header(bytes->begin() + 8, bytes->begin() + 8 + static_cast<int64_t>(length));
    const std::vector<uint8_t> data(bytes->begin() + 8 + static_cast<int64_t>(length),
                                    bytes->end());
    if (header.empty()) return;
    static const char* const kNumbers[] = {"0",
                                           "1",
                                           "-1",
                                           "2",
                                           "3",
                                           "4",
                                           "8",
                                           "16",
                                           "24",
                                           "1.5",
                                           "1e3",
                                           "-0",
                                           "9223372036854775807",
                                           "9223372036854775808",
                                           "18446744073709551615",
                                           "18446744073709551616",
                                           "4294967296",
                                           "null",
                                           "[]",
                                           "\"4\""};
    static const char* const kStrings[] = {
        "\"F32\"",          "\"BF16\"", "\"F16\"", "\"I64\"",          "\"U8\"",    "\"BOOL\"",
        "\"F8_E4M3\"",      "\"x\"",    "\"\"",    "\"__metadata__\"", "\"shape\"", "\"dtype\"",
        "\"data_offsets\"", "[0, 4]"};
    const size_t at = static_cast<size_t>(pick(static_cast<int64_t>(header.size())));
    switch (pick(7)) {
      case 5: {  // move a tensor's byte range, keeping its size: overlaps, gaps, trailing bytes
        const std::string marker = "\"data_offsets\":[";
        const size_t found = header.find(marker, at);
        if (found == std::string::npos) return;
        const size_t start = found + marker.size();
        const size_t close = header.find(']', start);
        const size_t comma = header.find(',', start);
        if (close == std::string::npos || comma == std::string::npos || comma > close) return;
        const int64_t shift = pick(33) - 16;
        int64_t begin = 0;
        int64_t end = 0;
        if (__builtin_add_overflow(std::strtoll(header.c_str() + start, nullptr, 10), shift,
                                   &begin) ||
            __builtin_add_overflow(std::strtoll(header.c_str() + comma + 1, nullptr, 10), shift,
                                   &end)) {
          return;
        }
        header.replace(start, close - start, std::to_string(begin) + "," + std::to_string(end));
        break;
      }
      case 6: {  // not an object at all
        static const char* const kValues[] = {"[]", "null", "7", "\"s\"", "true"};
        header = pick(2) == 0 ? kValues[pick(std::size(kValues))] : "[" + header + "]";
        break;
      }
      case 0: {  // replace the number starting at or after `at`
        const size_t start = header.find_first_of("-0123456789", at);
        if (start == std::string::npos) return;
        const size_t end = header.find_first_not_of("-0123456789.eE+", start);
        header.replace(start, (end == std::string::npos ? header.size() : end) - start,
                       kNumbers[pick(std::size(kNumbers))]);
        break;
      }
      case 1: {  // replace the string starting at or after `at`
        const size_t start = header.find('"', at);
        if (start == std::string::npos) return;
        const size_t end = header.find('"', start + 1);
        if (end == std::string::npos) return;
        header.replace(start, end + 1 - start, kStrings[pick(std::size(kStrings))]);
        break;
      }
      case 2:  // delete a few characters
        header.erase(at, static_cast<size_t>(1 + pick(6)));
        break;
      case 3: {  // duplicate a span
        const std::string span = header.substr(at, static_cast<size_t>(1 + pick(40)));
        header.insert(static_cast<size_t>(pick(static_cast<int64_t>(header.size()) + 1)), span);
        break;
      }
      default:  // swap two characters
        std::swap(header[at],
                  header[static_cast<size_t>(pick(static_cast<int64_t>(header.size())))]);
    }
    bytes->assign(8, 0);
    const uint64_t new_length = header.size();
    std::memcpy(bytes->data(), &new_length, 8);
    bytes->insert(bytes->end(), header.begin(), header.end());
    bytes->insert(bytes->end(), data.begin(), data.end());
  }

  std::mt19937_64 random_;
};

TEST_F(SafetensorsTest, FuzzedFilesParseOrThrowBadInput) {
  // A small seed keeps 100,000 parses fast; its data section is about as large as its header
  // so that many mutations land in data (and must still parse).
  const std::vector<float> values(40, 0.5f);
  const std::vector<TensorView> views = {{"w", DType::kF32, {2, 3}, values.data()},
                                         {"b", DType::kBF16, {3}, values.data()},
                                         {"e", DType::kF16, {0}, nullptr},
                                         {"m", DType::kBool, {}, values.data()},
                                         {"d", DType::kF32, {2, 16}, values.data()}};
  write_safetensors(path("seed.safetensors"), views);
  const std::vector<uint8_t> seed = read_bytes(path("seed.safetensors"));

  // Distinct validation steps the mutations must reach (a substring of each one's message).
  const char* const kChecks[] = {"too short for the 8-byte",
                                 "exceeds the limit",
                                 "bytes after it",
                                 "not valid JSON (error at byte",
                                 "must be a JSON object",
                                 "appears twice",
                                 "expected an object with",
                                 "missing \"",
                                 "unknown dtype",
                                 "shape dimension",
                                 "\"data_offsets\" must be",
                                 "end before they begin",
                                 "do not match shape",
                                 "exceed the data section",
                                 "overlap tensor",
                                 "leave a gap",
                                 "unused bytes at the start",
                                 "trailing bytes",
                                 "\"__metadata__\""};
  std::map<std::string, int64_t> hits;
  Mutator mutator(20240611);
  constexpr int64_t kIterations = 100'000;
  int64_t parsed = 0;
  int64_t rejected = 0;
  uint64_t checksum = 0;
  for (int64_t iteration = 0; iteration < kIterations; ++iteration) {
    std::vector<uint8_t> bytes = seed;
    const int64_t mutations = 1 + iteration % 3;
    for (int64_t m = 0; m < mutations; ++m) mutator.mutate(&bytes);
    // An exactly sized buffer, so that a sanitizer sees any read past the end.
    const int64_t size = static_cast<int64_t>(bytes.size());
    const std::unique_ptr<uint8_t[]> buffer(new uint8_t[bytes.size()]);
    if (size > 0) std::memcpy(buffer.get(), bytes.data(), bytes.size());
    try {
      const SafetensorsHeader header = parse_safetensors(buffer.get(), size, "fuzz.safetensors");
      ++parsed;
      ASSERT_GE(header.data_offset, 8);
      ASSERT_LE(header.data_offset, size);
      int64_t covered = 0;
      for (const TensorInfo& info : header.tensors) {
        ASSERT_EQ(info.begin, covered);
        ASSERT_LE(info.begin, info.end);
        ASSERT_LE(header.data_offset + info.end, size);
        ASSERT_EQ(info.byte_size(), info.element_count() * dtype_size(info.dtype));
        for (int64_t i = info.begin; i < info.end; ++i)
          checksum += buffer[static_cast<size_t>(header.data_offset + i)];
        covered = info.end;
      }
      ASSERT_EQ(header.data_offset + covered, size);
    } catch (const core::Error& error) {
      ++rejected;
      ASSERT_EQ(error.exit_code(), 2);
      const std::string message = error.what();
      ASSERT_EQ(message.rfind("fuzz.safetensors: ", 0), 0u) << message;
      for (const char* check : kChecks) {
        if (message.find(check) != std::string::npos) ++hits[check];
      }
    }
  }
  EXPECT_EQ(parsed + rejected, kIterations);
  // Both outcomes are common, so the mutations reach deep into the validation.
  EXPECT_GT(parsed, kIterations / 50);
  EXPECT_GT(rejected, kIterations / 2);
  for (const char* check : kChecks) EXPECT_GT(hits[check], 0) << "never reached: " << check;
  std::printf("fuzz: %lld parsed, %lld rejected (checksum %llu)\n", static_cast<long long>(parsed),
              static_cast<long long>(rejected), static_cast<unsigned long long>(checksum));
}

}  // namespace
}  // namespace gopd::model
