// retrain-test-postgres: a real PostgreSQL server in a temporary directory
// (PostgresServer) for tests that are not C++ (the Python client's). Prints
// one JSON line, {"uri": ..., "password_file": ...}, then serves until its
// standard input closes, and exits 1 when the server does not come up.
#include <cstdio>
#include <iostream>
#include <string>

#include "tests/support/postgres_server.h"

int main() {
  retrain::testing::PostgresServer server;
  if (!server.ok()) {
    std::cerr << "retrain-test-postgres: the PostgreSQL server did not start\n";
    return 1;
  }
  // Paths and a URI of our own making: nothing here needs JSON escaping.
  std::cout << "{\"uri\": \"" << server.uri() << "\", \"password_file\": \""
            << server.password_file() << "\"}" << std::endl;
  while (std::getchar() != EOF) {
  }
  return 0;
}
