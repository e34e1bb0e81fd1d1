# Sourced by scripts/fuzz and scripts/sanitize. The clang builds, without
# the trainer (LibTorch is not built with the sanitizers):
#   build-asan/  AddressSanitizer and UndefinedBehaviorSanitizer, the tests
#                and the fuzz targets as libFuzzer binaries (one build
#                serves scripts/fuzz and scripts/sanitize);
#   build-tsan/  ThreadSanitizer, the tests.
# clang_build address|thread [TARGET...]: configures the build for the
# sanitizer and builds TARGETs (everything if none); prints its directory
# in CLANG_BUILD_DIR.
# The CLI links gRPC's shared libraries there: the suppressions name them
# (called_from_lib), and uninstrumented gRPC code linked into the program
# would be reported as ours.
# The ThreadSanitizer build compiles at -O0 (line tables kept for the
# reports): its build takes half the time, its tests a fifth more. The
# AddressSanitizer build optimises what the tests run (at -O0 the dataset
# builds in its tests take twice as long); as in every build, the test
# programs' own files compile at -O0 (tests/CMakeLists.txt).
clang_build() {
  local mode="$1" flags
  shift
  case "$mode" in
    address) CLANG_BUILD_DIR=build-asan flags=(-DRETRAIN_SANITIZE=ON -DRETRAIN_FUZZ=ON) ;;
    thread) CLANG_BUILD_DIR=build-tsan
            flags=(-DRETRAIN_TSAN=ON -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 -g1 -DNDEBUG") ;;
    *) echo "clang_build: unknown sanitizer '$mode' (address or thread)" >&2; return 2 ;;
  esac
  CC=clang CXX=clang++ cmake -S . -B "$CLANG_BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "${flags[@]}" -DRETRAIN_BUILD_TRAINER=OFF \
    -DRETRAIN_BUILD_BENCH=OFF -DRETRAIN_STATIC_CLI=OFF >/dev/null
  ninja -C "$CLANG_BUILD_DIR" -j"$(nproc)" "$@"
}
