#include "calc.h"
long add(long a, long b) { return a + b; }
long sub(long a, long b) { return a - b; }
long mul(long a, long b) { return a * b; }
long divide(long a, long b) { return b ? a / b : 0; }
