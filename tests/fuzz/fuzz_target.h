// The entry point every fuzz target defines (libFuzzer's). Built with
// clang's -fsanitize=fuzzer it is fuzzed; built with standalone_main.cc it
// runs the files of its checked-in corpus once each, as a regression test in
// the ordinary test suite.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
