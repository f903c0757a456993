#include "calc.h"
long gcd(long a, long b)
{
	while (b) {
		long t = a % b;
		a = b;
		b = t;
	}
	return a < 0 ? -a : a;
}
