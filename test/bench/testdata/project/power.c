#include "calc.h"
long power(long base, unsigned exp)
{
	long r = 1;
	while (exp) {
		if (exp & 1)
			r *= base;
		base *= base;
		exp >>= 1;
	}
	return r;
}
