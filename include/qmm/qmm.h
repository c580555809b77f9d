// Umbrella header: everything in the public qmm API.
#pragma once

#include "qmm/array.h"
#include "qmm/config.h"
#include "qmm/device.h"
#include "qmm/half.h"
#include "qmm/io.h"
#include "qmm/ops.h"
#include "qmm/version.h"
