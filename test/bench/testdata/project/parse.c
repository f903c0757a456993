#include <stdlib.h>
#include "calc.h"
int parse(const char *s, long *out)
{
	char *end;
	*out = strtol(s, &end, 10);
	return *s != '\0' && *end == '\0';
}
