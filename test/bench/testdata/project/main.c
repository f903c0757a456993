#include <stdio.h>
#include "calc.h"
int main(int argc, char **argv)
{
	long a = 12, b = 18;
	if (argc == 3 && !(parse(argv[1], &a) && parse(argv[2], &b))) {
		fprintf(stderr, "usage: calc A B\n");
		return 2;
	}
	printf("%ld %ld %ld %ld %ld %ld %ld\n", add(a, b), sub(a, b), mul(a, b), divide(a, b), power(a, 3), gcd(a, b),
	       fib((unsigned)b % 64));
	return 0;
}
