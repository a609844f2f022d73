#include "earmark/common/fixtures_test_util.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace earmark {
namespace {

using testutil::kFixtures;

// The formula weights the full-size parity checks are built from: the fixtures hold the first 16
// values of 17 tensors of the three models, which our generator must reproduce bit for bit.
TEST(FormulaWeights, ReproduceTheFixturesOwnCheck) {
  const std::string check = kFixtures + "/fullsize/formula_check.safetensors";
  if (!std::filesystem::exists(check)) GTEST_SKIP() << "fixtures not found: " << kFixtures;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const char* m : {"panns_cnn14_32k", "laion_clap_htsat_tiny", "ast_base384_10_10"})
    for (const auto& [key, t] :
         testutil::read_manifest(kFixtures + "/manifests/" + m + ".manifest.json"))
      shapes[key] = t.first;
  SafetensorsFile file(check);
  ASSERT_EQ(file.size(), 17u);
  for (const std::string& key : file.names()) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(shapes.count(key));
    const std::vector<float> ref = file.read_f32(key);
    const std::vector<float> ours = testutil::formula_values(key, shapes.at(key), ref.size());
    ASSERT_EQ(ours.size(), ref.size());
    EXPECT_EQ(std::memcmp(ours.data(), ref.data(), ref.size() * 4), 0);
  }
}

}  // namespace
}  // namespace earmark
