// libFuzzer's entry points (compiler-rt FuzzerInterface.h), for Swift. The runtime comes with
// `-sanitize=fuzzer`. SwiftPM links an executable target with `--defsym main=<Module>_main`,
// which hides libFuzzer's own main, so Swift's main calls `LLVMFuzzerRunDriver` itself.
#ifndef HERALD_CFUZZDRIVER_H
#define HERALD_CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

typedef int (*HeraldFuzzCallback)(const uint8_t *data, size_t size);

/// Parses libFuzzer's flags from argv and runs `callback` on every input.
int LLVMFuzzerRunDriver(int *argc, char ***argv, HeraldFuzzCallback callback);

/// Sets what `LLVMFuzzerTestOneInput` (defined in CFuzzDriver.c) calls. libFuzzer's archived
/// main.o references that symbol, so it must exist even though the driver gets the callback.
void HeraldFuzzSetCallback(HeraldFuzzCallback callback);

#endif
