#include "calc.h"
long fib(unsigned n)
{
	long a = 0, b = 1;
	while (n--) {
		long t = a + b;
		a = b;
		b = t;
	}
	return a;
}
