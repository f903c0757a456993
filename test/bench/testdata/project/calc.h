#ifndef CALC_H
#define CALC_H
long add(long a, long b);
long sub(long a, long b);
long mul(long a, long b);
long divide(long a, long b);
long power(long base, unsigned exp);
long gcd(long a, long b);
long fib(unsigned n);
int parse(const char *s, long *out);
#endif
