// OpenBLAS's cblas (Debian: libopenblas-dev). On Apple platforms NN uses Accelerate instead.
#include <cblas.h>
