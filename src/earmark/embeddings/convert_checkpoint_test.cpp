// tools/convert_checkpoint.py against checkpoints written the ways the published ones were: a
// plain OrderedDict, a legacy (non-zip) pickle holding numpy scalars, a half-precision training
// checkpoint, a LAION-style {'state_dict': ...} with the text side; and files it must refuse.
// Run with Debian's python3-torch, as the README says.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/fixtures_test_util.h"
#include "earmark/common/safetensors.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/embeddings/clap_htsat.h"
#include "earmark/embeddings/panns_cnn14.h"

namespace earmark {
namespace {

using testutil::kFixtures;
using testutil::shell_quote;

const std::string kPython = "/usr/bin/python3";
const std::string kConverter = EARMARK_SOURCE_DIR "/tools/convert_checkpoint.py";
const std::string kCnn14 = kFixtures + "/models/panns_cnn14_r16.weights.safetensors";
const std::string kClap = kFixtures + "/models/laion_clap_htsat_r16.weights.safetensors";

// Saves a fixture's weights with torch.save in the ways published checkpoints were saved.
const char* const kWriter = R"PY(
import collections, json, os, struct, sys
import numpy, torch
kind, source, out = sys.argv[1], sys.argv[2], sys.argv[3]
raw = open(source, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
state = collections.OrderedDict()
for key, info in header.items():
    if key == '__metadata__':
        continue
    begin, end = info['data_offsets']
    dtype = {'F32': numpy.float32, 'I64': numpy.int64}[info['dtype']]
    values = numpy.frombuffer(raw[8 + n + begin:8 + n + end], dtype=dtype).copy()
    state[key] = torch.from_numpy(values.reshape(info['shape']))
if kind == 'plain':
    torch.save(state, out)
elif kind == 'legacy':  # PANNs: {'iteration', 'model', 'sampler'}, an old non-zip pickle
    torch.save({'iteration': numpy.int64(660000), 'model': state,
                'sampler': {'position': numpy.float64(0.5)}}, out,
               _use_new_zipfile_serialization=False)
elif kind == 'half':
    torch.save({'epoch': 3, 'state_dict': collections.OrderedDict(
        (k, v.half() if v.is_floating_point() else v) for k, v in state.items())}, out)
elif kind == 'laion':  # LAION-CLAP: {'epoch', 'state_dict' (DDP keys, text side too), 'optimizer'}
    state['module.text_branch.embeddings.word_embeddings.weight'] = torch.ones(8, 4)
    state['module.text_projection.0.weight'] = torch.ones(4, 4)
    torch.save({'epoch': 45, 'name': 'run', 'state_dict': state,
                'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-4}]}}, out)
elif kind == 'evil':  # runs a command when unpickled
    class Evil:
        def __reduce__(self):
            return (os.system, ('touch ' + out + '.ran',))
    torch.save({'model': state, 'extra': Evil()}, out)
)PY";

class ConvertCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kCnn14)) GTEST_SKIP() << "fixtures not found: " << kFixtures;
    if (testutil::run_status(kPython + " -c 'import torch' >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "no python3-torch for " << kPython;
    testutil::write_file(dir_.path() + "/writer.py", kWriter);
  }
  std::string write(const std::string& kind, const std::string& source, const std::string& name) {
    const std::string out = dir_.path() + "/" + name;
    EXPECT_EQ(testutil::run_status(kPython + " " + shell_quote(dir_.path() + "/writer.py") + " " +
                                   kind + " " + shell_quote(source) + " " + shell_quote(out)),
              0);
    return out;
  }
  testutil::CommandResult convert(const std::string& args) {
    return testutil::run_capture(kPython + " " + shell_quote(kConverter) + " " + args, dir_.path());
  }
  testutil::TempDir dir_;
};

// Every tensor comes out with its name, dtype, shape and bits.
TEST_F(ConvertCheckpoint, PlainAndLegacyPicklesKeepEveryTensorExactly) {
  SafetensorsFile original(kCnn14);
  for (const std::string kind : {"plain", "legacy"}) {
    SCOPED_TRACE(kind);
    const std::string pth = write(kind, kCnn14, kind + ".pth");
    const std::string out = dir_.path() + "/" + kind + ".safetensors";
    const auto r = convert(shell_quote(pth) + " " + shell_quote(out));
    ASSERT_EQ(r.status, 0) << r.err;
    SafetensorsFile converted(out);
    EXPECT_EQ(converted.names(), original.names());
    for (const std::string& key : original.names()) {
      EXPECT_EQ(converted.info(key).dtype, original.info(key).dtype) << key;
      EXPECT_EQ(converted.info(key).shape, original.info(key).shape) << key;
      EXPECT_EQ(converted.raw(key), original.raw(key)) << key;
    }
    EXPECT_EQ(converted.metadata().at("state_dict_key"), kind == "legacy" ? "model" : "");
    // And the port takes it.
    auto model = PannsCnn14::load(out);
    EXPECT_EQ(model->embedding_dim(), 128);
  }
}

// Half precision becomes float32 (what the ports compute in); a LAION-style checkpoint with its
// text side loads into the CLAP port, which skips the text keys.
TEST_F(ConvertCheckpoint, TrainingCheckpointsLoadIntoThePorts) {
  const std::string half = write("half", kCnn14, "half.pt");
  const std::string half_out = dir_.path() + "/half.safetensors";
  auto r = convert(shell_quote(half) + " " + shell_quote(half_out));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("converted to float32"), std::string::npos) << r.err;
  EXPECT_EQ(SafetensorsFile(half_out).info("fc1.weight").dtype, "F32");
  EXPECT_NO_THROW(PannsCnn14::load(half_out));

  const std::string laion = write("laion", kClap, "630k-audioset-best.pt");
  const std::string laion_out = dir_.path() + "/clap.safetensors";
  r = convert(shell_quote(laion) + " " + shell_quote(laion_out));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(SafetensorsFile(laion_out).contains("module.text_projection.0.weight"));
  auto clap = ClapHtsat::load(laion_out);
  EXPECT_EQ(clap->joint_dim(), 512);
  // --drop leaves the text side out.
  const std::string audio_only = dir_.path() + "/clap_audio.safetensors";
  r = convert("--drop module.text_ " + shell_quote(laion) + " " + shell_quote(audio_only));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(SafetensorsFile(audio_only).contains("module.text_projection.0.weight"));
  EXPECT_NO_THROW(ClapHtsat::load(audio_only));
}

// A pickle that would run code is refused, and nothing runs; broken files get a clear error and
// no output.
TEST_F(ConvertCheckpoint, RefusesCodeAndBrokenFiles) {
  const std::string evil = write("evil", kCnn14, "evil.pth");
  const std::string out = dir_.path() + "/out.safetensors";
  auto r = convert(shell_quote(evil) + " " + shell_quote(out));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("refusing"), std::string::npos) << r.err;
  EXPECT_FALSE(testutil::file_exists(evil + ".ran"));
  EXPECT_FALSE(testutil::file_exists(out));

  const std::string plain = write("plain", kCnn14, "plain.pth");
  const std::string bytes = testutil::read_file(plain);
  const std::string truncated = dir_.path() + "/truncated.pth";
  testutil::write_file(truncated, bytes.substr(0, bytes.size() / 2));
  testutil::write_file(dir_.path() + "/empty.pth", "");
  testutil::write_file(dir_.path() + "/text.pth", "not a checkpoint\n");
  for (const std::string name : {"truncated.pth", "empty.pth", "text.pth", "absent.pth"}) {
    SCOPED_TRACE(name);
    r = convert(shell_quote(dir_.path() + "/" + name) + " " + shell_quote(out));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
    EXPECT_FALSE(testutil::file_exists(out));
  }
}

}  // namespace
}  // namespace earmark
