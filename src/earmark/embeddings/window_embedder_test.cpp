#include "earmark/embeddings/window_embedder.h"

#include <gtest/gtest.h>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/embeddings/fingerprint_net.h"

namespace earmark {
namespace {

FingerprintNetConfig small() {
  FingerprintNetConfig c;
  c.channels = {8, 16, 16};
  c.dim = 16;
  return c;
}

TEST(WindowEmbedder, StreamsWindowsAtTheHop) {
  auto net = random_fingerprint_net(small(), 2);
  const std::vector<float> audio = testutil::synth_music(4, 3.0);
  WindowEmbedder whole(*net, 25);
  whole.consume(audio.data(), audio.size());
  whole.finish();
  KaldiFbank fbank;
  const size_t frames = fbank.num_frames(audio.size());
  ASSERT_EQ(whole.windows(), 1 + (frames - 96) / 25);

  // Any block sizes give the same vectors.
  WindowEmbedder streamed(*net, 25, 3);
  for (size_t pos = 0; pos < audio.size();) {
    const size_t n = std::min<size_t>(audio.size() - pos, 1 + (pos * 7919) % 3001);
    streamed.consume(audio.data() + pos, n);
    pos += n;
  }
  streamed.finish();
  ASSERT_EQ(streamed.vectors().size(), whole.vectors().size());
  for (size_t i = 0; i < whole.vectors().size(); ++i)
    ASSERT_NEAR(streamed.vectors()[i], whole.vectors()[i], 1e-5);

  // Window 3 is the embedding of fbank frames [75, 171).
  const std::vector<float> fb = fbank.compute(audio.data(), audio.size());
  std::vector<float> direct(16);
  net->embed(fb.data() + 75 * 128, 1, direct.data());
  for (int k = 0; k < 16; ++k) EXPECT_NEAR(whole.vectors()[3 * 16 + k], direct[k], 1e-5);
  EXPECT_DOUBLE_EQ(whole.window_start(3), 0.75);
}

TEST(WindowEmbedder, ShortInputGivesOneWindowAndBadHopIsRefused) {
  auto net = random_fingerprint_net(small(), 2);
  const std::vector<float> audio = testutil::synth_music(4, 0.5);
  WindowEmbedder we(*net, 10);
  we.consume(audio.data(), audio.size());
  we.finish();
  EXPECT_EQ(we.windows(), 1u);
  WindowEmbedder empty(*net, 10);
  empty.finish();
  EXPECT_EQ(empty.windows(), 0u);
  EXPECT_THROW(WindowEmbedder(*net, 0), Error);
}

}  // namespace
}  // namespace earmark
