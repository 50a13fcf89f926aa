#ifndef CONTACTS_GATEWAY_TESTS_INTEGRATION_SIM_SUITE_H_
#define CONTACTS_GATEWAY_TESTS_INTEGRATION_SIM_SUITE_H_

#include <gtest/gtest.h>

#include <memory>

#include "absl/time/time.h"
#include "server/app/gateway_server.h"
#include "tests/integration/test_support.h"

namespace contacts::testing {

// A suite around one kore-sim, which the suite's own SetUpTestSuite starts (sim_ =
// KoreSim::Start(...)) with the flags it needs: the sim is reset before each test, and the
// in-process gateway a test starts (gateway_) is shut down after it.
class SimSuite : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { sim_.reset(); }
  void SetUp() override {
    ASSERT_NE(sim_, nullptr);
    ASSERT_EQ(sim_->Control("POST", "/_sim/reset").status, 200);
  }
  void TearDown() override {
    if (gateway_) gateway_->Shutdown(absl::ZeroDuration());
  }

  static inline std::unique_ptr<KoreSim> sim_;
  std::unique_ptr<gateway::GatewayServer> gateway_;
};

}  // namespace contacts::testing

#endif  // CONTACTS_GATEWAY_TESTS_INTEGRATION_SIM_SUITE_H_
