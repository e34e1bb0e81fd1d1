#include "tests/support/two_host_network.h"

#include <unistd.h>

#include <atomic>

#include "tests/support/process.h"

namespace retrain::testing {

namespace {

std::string FindIp() {
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

}  // namespace

TwoHostNetwork::TwoHostNetwork() : ip_(FindIp()) {
  if (ip_.empty()) {
    error_ = "no `ip` command (Debian: apt-get install iproute2)";
    return;
  }
  // Names unique to this process and object; interface names have at most
  // 15 characters.
  static std::atomic<int> made{0};
  const std::string tag = std::to_string(getpid() % 1000000) + "n" + std::to_string(made++);
  const std::string links[2] = {"rt" + tag + "a", "rt" + tag + "b"};
  names_[0] = "retrain-test-" + tag + "-a";
  names_[1] = "retrain-test-" + tag + "-b";
  std::vector<std::vector<std::string>> steps = {
      {ip_, "netns", "add", names_[0]},
      {ip_, "netns", "add", names_[1]},
      {ip_, "link", "add", links[0], "type", "veth", "peer", "name", links[1]},
  };
  for (int host : {0, 1}) {
    const std::string& ns = names_[host];
    steps.push_back({ip_, "link", "set", links[host], "netns", ns});
    steps.push_back({ip_, "-n", ns, "addr", "add", addresses_[host] + "/30", "dev", links[host]});
    steps.push_back({ip_, "-n", ns, "link", "set", links[host], "up"});
    steps.push_back({ip_, "-n", ns, "link", "set", "lo", "up"});
  }
  for (const auto& step : steps) {
    const CommandResult r = RunCommand(step, std::chrono::seconds(20));
    if (r.exit_code != 0) {
      std::string command;
      for (const auto& word : step) command += (command.empty() ? "" : " ") + word;
      error_ = "`" + command + "` failed (exit " + std::to_string(r.exit_code) + "): " + r.err;
      return;
    }
  }
}

TwoHostNetwork::~TwoHostNetwork() {
  // Deleting a namespace deletes the veth end in it, and so the pair.
  for (const std::string& ns : names_) {
    if (!ns.empty()) RunCommand({ip_, "netns", "delete", ns}, std::chrono::seconds(20));
  }
}

std::vector<std::string> TwoHostNetwork::On(int host, const std::vector<std::string>& argv) const {
  std::vector<std::string> wrapped = {ip_, "netns", "exec", names_[host]};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

}  // namespace retrain::testing
