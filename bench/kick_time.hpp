// kick_time.hpp — registers the forward-kick timing benchmarks for a backend.
#pragma once

#include "backend.hpp"

void register_kick_time(sctape::Backend backend);
