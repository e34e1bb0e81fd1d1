#include "tests/support/postgres_server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace retrain::testing {

namespace fs = std::filesystem;

namespace {

// RETRAIN_POSTGRES_BIN_DIR, or the newest of Debian's /usr/lib/postgresql/*/bin.
std::string PostgresBinDir() {
  if (const char* dir = std::getenv("RETRAIN_POSTGRES_BIN_DIR")) return dir;
  std::string best;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const fs::path bin = entry.path() / "bin";
    if (!fs::exists(bin / "postgres")) continue;
    // Versions are whole numbers since 10: the longer name is the newer.
    const std::string name = entry.path().filename().string();
    const std::string best_name = best.empty() ? "" : fs::path(best).parent_path().filename();
    if (best.empty() || name.size() > best_name.size() ||
        (name.size() == best_name.size() && name > best_name)) {
      best = bin.string();
    }
  }
  return best;
}

std::string RandomHex(int bytes) {
  std::random_device rd;
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    const unsigned v = rd() & 0xff;
    out += kHex[v >> 4];
    out += kHex[v & 15];
  }
  return out;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Where the initialised cluster that every server of this PostgreSQL
// installation and user starts from is kept: initdb takes a second and a
// half of CPU, a copy a fifth of one.
std::string TemplateDirectory(const std::string& bin_dir) {
  const std::string version = fs::path(bin_dir).parent_path().filename().string();
  return (fs::temp_directory_path() / ("retrain-test-postgres-template-" + version + "-" +
                                       std::to_string(std::hash<std::string>()(bin_dir) % 1000000) +
                                       "-" + std::to_string(geteuid())))
      .string();
}

// Whether the template is complete: marked ready, and its cluster's control
// files still there (a temp-directory cleaner may have removed old files).
bool TemplateIsWhole(const std::string& directory) {
  for (const char* file : {"/ready", "/password", "/data/PG_VERSION", "/data/global/pg_control"}) {
    if (!fs::exists(directory + file)) return false;
  }
  return true;
}

// An exclusive lock on the template, held while it is made or copied.
class TemplateLock {
 public:
  explicit TemplateLock(std::string directory) : directory_(std::move(directory)) {
    fd_ = ::open((directory_ + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) {
      ADD_FAILURE() << "cannot lock " << directory_ << ".lock: " << std::strerror(errno);
    }
  }
  ~TemplateLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  TemplateLock(const TemplateLock&) = delete;
  TemplateLock& operator=(const TemplateLock&) = delete;
  bool ok() const { return fd_ >= 0; }
  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
  int fd_ = -1;
};

}  // namespace

PostgresServer::PostgresServer() {
  bin_dir_ = PostgresBinDir();
  if (bin_dir_.empty()) {
    ADD_FAILURE() << "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (Debian's "
                     "postgresql package; scripts/install-deps installs it), and no "
                     "RETRAIN_POSTGRES_BIN_DIR";
    return;
  }
  // PostgreSQL refuses to run as root.
  if (geteuid() == 0) {
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      ADD_FAILURE() << "running as root and there is no 'postgres' user to run PostgreSQL as";
      return;
    }
    uid_ = static_cast<int>(pw->pw_uid);
    if (chown(dir_.path().c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      ADD_FAILURE() << "cannot give " << dir_.path() << " to the postgres user";
      return;
    }
  }
  data_dir_ = dir_.path() + "/data";
  password_file_ = dir_.path() + "/password";
  {
    // One process at a time makes or copies the template.
    TemplateLock lock(TemplateDirectory(bin_dir_));
    if (!lock.ok()) return;
    if (TemplateIsWhole(lock.directory())) {
      if (!CopyTemplate(lock.directory())) return;
    } else if (!InitCluster() || !SaveTemplate(lock.directory())) {
      return;
    }
  }
  port_ = FreePort();
  Start();
}

bool PostgresServer::InitCluster() {
  password_ = RandomHex(16);
  WritePassword();
  auto initdb = Process::Start(
      {bin_dir_ + "/initdb", "-D", data_dir_, "-U", "retrain", "--pwfile=" + password_file_,
       "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync", "--no-instructions"},
      dir_.path() + "/initdb.log", uid_);
  if (initdb->Wait() != 0) {
    ADD_FAILURE() << "initdb failed:\n" << ReadAll(dir_.path() + "/initdb.log");
    return false;
  }
  port_ = FreePort();
  Start();
  if (!ok_) return false;
  Sql("CREATE DATABASE retrain", "postgres");
  Stop();
  return true;
}

bool PostgresServer::SaveTemplate(const std::string& directory) {
  const std::string partial = directory + ".partial-" + std::to_string(getpid());
  std::error_code ec;
  fs::remove_all(partial, ec);
  fs::create_directories(partial, ec);
  WriteFile(partial + "/password", password_);
  const CommandResult copied = RunCommand({"/bin/cp", "-a", data_dir_, partial + "/data"});
  if (copied.exit_code == 0) {
    WriteFile(partial + "/ready", "");
    fs::remove_all(directory, ec);
    fs::rename(partial, directory, ec);
  }
  if (copied.exit_code != 0 || ec) {
    ADD_FAILURE() << "cannot keep the PostgreSQL template in " << directory << ": " << copied.err
                  << ec.message();
    fs::remove_all(partial, ec);
    return false;
  }
  return true;
}

bool PostgresServer::CopyTemplate(const std::string& directory) {
  password_ = ReadAll(directory + "/password");
  WritePassword();
  CommandResult copied = RunCommand({"/bin/cp", "-a", directory + "/data", data_dir_});
  if (copied.exit_code != 0) {
    ADD_FAILURE() << "cannot copy the PostgreSQL template " << directory << ": " << copied.err;
    return false;
  }
  return true;
}

void PostgresServer::WritePassword() {
  WriteFile(password_file_, password_ + "\n");
  fs::permissions(password_file_, fs::perms::owner_read | fs::perms::owner_write |
                                      fs::perms::group_read | fs::perms::others_read);
}

PostgresServer::~PostgresServer() {
  if (server_ != nullptr && server_->Running()) {
    server_->Signal(SIGINT);
    server_->Wait();
  }
}

std::string PostgresServer::uri() const { return DatabaseUri("retrain"); }

std::string PostgresServer::DatabaseUri(const std::string& database) const {
  return "postgresql://retrain@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

std::string PostgresServer::NewDatabase(const std::string& name) {
  Sql("CREATE DATABASE " + name, "postgres");
  return DatabaseUri(name);
}

void PostgresServer::Start() {
  // After a SIGKILL the old server's backends take a moment to notice and
  // release its shared memory; until then a new server refuses to start.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  do {
    server_ = Process::Start({bin_dir_ + "/postgres", "-D", data_dir_, "-p", std::to_string(port_),
                              "-k", data_dir_, "-c", "listen_addresses=127.0.0.1"},
                             dir_.path() + "/postgres.log", uid_);
    ok_ = WaitUntilReady();
    if (!ok_) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (!ok_ && std::chrono::steady_clock::now() < deadline);
  if (!ok_) ADD_FAILURE() << "PostgreSQL did not start:\n" << Log();
}

void PostgresServer::Kill() {
  server_->Signal(SIGKILL);
  server_->Wait();
}

void PostgresServer::Stop() {
  server_->Signal(SIGINT);
  server_->Wait();
}

bool PostgresServer::WaitUntilReady() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!server_->Running()) return false;
    if (RunCommand({bin_dir_ + "/pg_isready", "-q", "-h", "127.0.0.1", "-p", std::to_string(port_)})
            .exit_code == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string PostgresServer::Sql(const std::string& sql, const std::string& database) {
  CommandResult r = RunCommand({"/usr/bin/env", "PGPASSWORD=" + password_, bin_dir_ + "/psql", "-X",
                                "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                                std::to_string(port_), "-U", "retrain", "-d", database, "-c", sql});
  EXPECT_EQ(r.exit_code, 0) << sql << ": " << r.err;
  return r.out;
}

std::string PostgresServer::Log() const { return ReadAll(dir_.path() + "/postgres.log"); }

}  // namespace retrain::testing
