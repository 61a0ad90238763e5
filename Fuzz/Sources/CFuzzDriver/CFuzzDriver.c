// The `LLVMFuzzerTestOneInput` symbol libFuzzer's runtime references, forwarding to the Swift
// fuzz target registered with HeraldFuzzSetCallback.
#include "CFuzzDriver.h"

static HeraldFuzzCallback herald_callback;

void HeraldFuzzSetCallback(HeraldFuzzCallback callback) { herald_callback = callback; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return herald_callback ? herald_callback(data, size) : 0;
}
